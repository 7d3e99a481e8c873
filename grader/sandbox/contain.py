"""The sandbox's first program: what a worker's process does to itself before it becomes the
sandbox (bubblewrap, or the supervisor), while it has one thread and runs nothing of the grader's.

The launcher starts `python -I -S contain.py PLAN COMMAND…`, already as the worker's uid where the
level has one (subprocess drops it before this runs); PLAN is JSON, the level's `contain` step
(levels.Containment): {"limits": [[RLIMIT_NAME, value], …], "strict": bool, "keyctl": number or
null}. Each limit is set (soft and hard, never above the hard limit it inherited), a fresh, empty
session keyring joined (nothing the grader's session holds, keys of other students' runs, is in
it), then COMMAND replaces this program in the same process. Nothing of this is done in a forked
copy of the grader, where a lock held by one of its threads at the fork would never be released.

It imports the standard library only: it runs on the sandbox's own Python."""
import ctypes
import errno
import json
import os
import resource
import sys

KEYCTL_JOIN_SESSION_KEYRING = 1  # linux/keyctl.h


def set_limits(limits: list[list], strict: bool) -> None:
    """Each (name, value) as both soft and hard limit. Not strict (a student's own check): a limit
    the system refuses (macOS refuses RLIMIT_AS) or lacks is left as it is."""
    for name, wanted in limits:
        try:
            limit = getattr(resource, name)
            hard = resource.getrlimit(limit)[1]
            value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(limit, (value, value))
        except (AttributeError, ValueError, OSError):
            if strict:
                raise


def join_fresh_keyring(keyctl: int) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new, anonymous, empty session keyring."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(keyctl, KEYCTL_JOIN_SESSION_KEYRING, None) < 0 and ctypes.get_errno() != errno.ENOSYS:
        raise OSError(ctypes.get_errno(), "cannot join a fresh session keyring")


def main(argv: list[str]) -> None:
    plan, command = json.loads(argv[1]), argv[2:]
    try:
        set_limits(plan["limits"], plan["strict"])
        if plan["keyctl"] is not None:
            join_fresh_keyring(plan["keyctl"])
        os.execvp(command[0], command)
    except (OSError, ValueError, AttributeError) as error:  # to sandbox.log: the sandbox's own error, in one line
        sys.exit(f"contain: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main(sys.argv)
