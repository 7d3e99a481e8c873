"""The seccomp filter bubblewrap loads into the sandbox (`--seccomp FD`), built on the trusted side
with libseccomp (`pyseccomp`). Policy as data: everything is allowed but the calls listed here,
which fail with EPERM, so a library that probes for them takes its fallback instead of dying.
docs/security.md ("Seccomp and keyring") says why, call by call."""
import errno
import functools
import os
import sys
import tempfile

# What a worker never needs.
DENIED_CALLS = (
    "keyctl", "add_key", "request_key",                                   # the kernel keyrings
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",     # another process's memory and descriptors
    "kcmp", "process_madvise",
    "perf_event_open", "bpf", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",  # kernel attack surface
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "unshare", "setns",                                  # new namespaces and mounts
    "name_to_handle_at", "open_by_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "syslog", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
)
# Calls that act on another process chosen by its pid: denied on PID 1, the supervisor (its limits,
# its scheduling). Signals need no rule: PID 1 gets from inside its namespace only those it handles.
DENIED_ON_PID_1 = ("prlimit64", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr",
                   "pidfd_open")
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)  # CLONE_NEW*


@functools.lru_cache(maxsize=None)
def seccomp_filter() -> bytes:
    """The filter, as the BPF program bubblewrap loads."""
    import pyseccomp  # libseccomp: needed for the bubblewrap levels only

    deny = pyseccomp.ERRNO(errno.EPERM)
    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_CALLS:
        rules.add_rule(deny, name)
    pid_is_1 = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, 0xFFFFFFFF, 1)  # a pid_t: compare its 32 bits only
    for name in DENIED_ON_PID_1:
        rules.add_rule(deny, name, pid_is_1)
    rules.add_rule(deny, "setpriority", pyseccomp.Arg(0, pyseccomp.NE, 0))  # a process group or a user: not only itself
    rules.add_rule(deny, "setpriority", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, 1))
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of a filter's sight: C libraries fall back to clone
    with tempfile.TemporaryFile() as program:
        rules.export_bpf(program)
        program.seek(0)
        return program.read()


def filter_descriptor() -> int:
    """The filter in an anonymous file, for bubblewrap to read (the caller closes it once the sandbox started)."""
    descriptor = os.memfd_create("seccomp", 0)
    os.write(descriptor, seccomp_filter())
    os.lseek(descriptor, 0, os.SEEK_SET)
    return descriptor


@functools.lru_cache(maxsize=None)
def keyctl_number() -> int | None:
    """keyctl's system call number on this machine, for the sandbox's first process to join a fresh
    session keyring (contain.py); None without kernel keyrings or libseccomp (not Linux: a
    student's practice run at `process` level)."""
    if sys.platform != "linux":
        return None
    try:
        import pyseccomp
    except (ImportError, OSError):
        return None
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
