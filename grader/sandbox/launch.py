"""How a worker process is started: the one place where isolation is arranged.

Every level: a separate `python -I` process (the supervisor, supervisor.py) in its own session
(so the whole process group can be killed) and a fresh, empty session keyring, a minimal
environment, rlimits, stdin/stdout as the protocol pipes, the student's output sent to a capped
log file (worker.log, handed over as a descriptor of its own) and the launcher's stderr to
sandbox.log, which only bubblewrap and the supervisor's own start-up can write: the sandbox's own
errors are read from there. The levels, strongest first:

- `namespace` (the grader runs as root): the worker gets a uid of its own (one per concurrent
  worker, from a pool of numbered uids claimed with a lock file) *before* any namespace is made,
  then runs inside bubblewrap: no network, its own PID namespace, a read-only view of the Python
  runtime and of the scratch folder only (but for one file, EXCHANGE, MNIST's gradients; its size
  bounded by RLIMIT_FSIZE), a size-capped private /tmp, the supervisor as PID 1 of
  the namespace (no process inside can signal it), and a seccomp filter (`seccomp_filter`)
  denying with EPERM the calls a worker never needs. RLIMIT_NPROC on its own uid bounds a fork or
  thread bomb.
- `uid` (root, but no namespaces: a Docker container such as Gradescope's): the same pooled
  uid, rlimits and RLIMIT_NPROC, without bubblewrap: the worker runs the sandbox runtime in its
  scratch folder, which stays the grader's (open to the worker's group, read-only: it cannot put
  a link in place of anything the grader opens there). What it must not read is kept from it by file permissions alone
  (`protect_from_workers`: the grader's checks, rubric, solutions and MNIST test labels lose
  every permission for others). The network is NOT blocked at this level.
- `user-namespace` (not root, unprivileged user namespaces available): the same bubblewrap
  sandbox as the grader's own user.
- `process`: rlimits and a separate process only; without `fcntl`/`resource` (Windows), a
  separate process only, its time bounded by the caller's timeouts. Windows has no `pass_fds`:
  there the supervisor opens worker.log by its path (LOG_BY_PATH), and stopping a worker ends its
  process tree with `taskkill /T` (no process groups).

At every level, on Linux, the process that starts workers adopts whatever they leave behind (it is
a child subreaper), so that stopping a worker also kills a process that left its group (setsid, a
double fork) and reaps bubblewrap's own processes at once, rather than leaving them as zombies
that count against the next worker's RLIMIT_NPROC until the machine's init reaps them.

The sandboxed runtime must be readable by the worker's uid: Debian's /usr/bin/python3 with a
virtual environment outside /root (the Makefile makes one at SANDBOX_PYTHON when run as root).
"""
import contextlib
import ctypes
import errno
import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..mnist import transport
from . import protocol

try:  # POSIX only: without them (Windows), only the `process` level exists
    import fcntl
    import resource
except ImportError:
    fcntl = resource = None

# Copied side by side into the sandbox's runtime folder, where each imports the others by bare name
# (the supervisor first: the sandbox's entry point); MNIST's transport goes with them: the worker's
# end of the steps' transfer (grader/mnist/transport.py).
SANDBOX_FILES = [*(Path(__file__).resolve().parent / name
                   for name in ("supervisor.py", "worker.py", "protocol.py", "contract.py", "failures.py", "cells.py")),
                 Path(transport.__file__).resolve()]
ENTRY = SANDBOX_FILES[0].name  # the sandbox's entry point: the supervisor
SANDBOX_PYTHON = Path(os.environ.get("AUTODIFF_SANDBOX_PYTHON", "/opt/autodiff-grader/venv/bin/python"))
ISOLATION_LEVELS = ("namespace", "uid", "user-namespace", "process")  # strongest first: what `auto` tries in order
UID_POOL = range(61000, 61064)  # numeric uids with no account: nothing on the machine belongs to them
UID_LOCKS = Path("/tmp/.autodiff-grader-uids")
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
KEYCTL_JOIN_SESSION_KEYRING = 1  # linux/keyctl.h
_running = set()  # pids of the workers started and not yet stopped
# POSIX hands the supervisor its log as a descriptor (the bubblewrap levels mount the scratch folder
# read-only: it could not open the file itself); Windows cannot pass one (no pass_fds), and has
# the process level only: there the supervisor opens the log by its path.
LOG_BY_PATH = os.name != "posix"


EXCHANGE = transport.EXCHANGE


# Also for the checks' own process, which evaluates MNIST's test accuracy (grade.py).
ONE_BLAS_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600
    memory_bytes: int = 4 << 30
    file_bytes: int = 32 << 20
    open_files: int = 64
    processes: int = 64        # per sandbox uid (namespace and uid levels only: RLIMIT_NPROC ignores root)
    tmp_bytes: int = 64 << 20  # the sandbox's private /tmp


def worker_environment():
    """Nothing of the grader's environment leaks in; BLAS pinned to one thread so that results
    are the same on every machine and N workers don't oversubscribe the cores."""
    environment = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                   "PYTHONDONTWRITEBYTECODE": "1", **ONE_BLAS_THREAD}
    if os.name == "nt" and "SYSTEMROOT" in os.environ:  # without it, Windows cannot start sockets (MNIST's channel)
        environment["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return environment


def start_worker(scratch, limits=Limits(), isolation="process"):
    """Start the sandbox's supervisor serving the submission prepared in `scratch`; returns the Popen."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"unknown isolation level {isolation!r}; expected one of {', '.join(ISOLATION_LEVELS)}")
    scratch = Path(scratch)
    runtime = scratch / ".worker"
    runtime.mkdir(exist_ok=True)
    for file in SANDBOX_FILES:
        shutil.copyfile(file, runtime / file.name)
    uid_lock = uid = None
    if isolation in ("namespace", "uid"):
        uid_lock, uid = _claim_uid()
        _make_readable(scratch)
        # The folder stays the grader's, opened to the worker's group only (not to the other workers
        # of a batch): a worker that owned it could put links in place of the grader's files in it
        # (its logs, its runtime, the folder itself), for the grader to follow at the next start.
        os.chown(scratch, os.geteuid(), uid)
        os.chmod(scratch, 0o750)
    exchange = _fresh_exchange(scratch, uid)
    if LOG_BY_PATH:
        log, passed = scratch / "worker.log", []
    else:
        log = os.open(scratch / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        passed = [log]
    sandbox_log = open(scratch / "sandbox.log", "ab")
    seccomp = _memfd("seccomp", seccomp_filter()) if isolation in ("namespace", "user-namespace") else None
    command, cwd = _command(scratch, isolation, limits, log, seccomp)
    environment = {**worker_environment(), "HOME": "/tmp" if isolation in ("namespace", "user-namespace") else str(scratch)}
    keyctl = _keyctl_number()
    libc = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None  # no C library by that name on Windows

    def before_exec():  # in the child, before the supervisor (or bubblewrap) starts
        if resource is None:
            return
        for limit, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
                             (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                             (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):  # macOS refuses some (RLIMIT_AS): a student's own check runs without it
                if isolation != "process":
                    raise
        if uid is not None:  # drop root before any namespace exists: bwrap then runs as that uid
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        # A new, empty session keyring: nothing the grader's session holds (keys of other students' runs) is in it.
        if keyctl is not None and libc.syscall(keyctl, KEYCTL_JOIN_SESSION_KEYRING, None) < 0 \
                and ctypes.get_errno() != errno.ENOSYS:
            raise OSError(ctypes.get_errno(), "cannot join a fresh session keyring")

    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=sandbox_log, start_new_session=True,
                                   preexec_fn=before_exec if os.name == "posix" else None,
                                   pass_fds=passed + ([seccomp] if seccomp is not None else []))
    except BaseException:
        os.close(exchange)
        if uid_lock is not None:
            os.close(uid_lock)
        raise
    finally:
        for descriptor in passed:
            os.close(descriptor)
        sandbox_log.close()
        if seccomp is not None:
            os.close(seccomp)
    process.uid_lock, process.uid, process.exchange = uid_lock, uid, exchange
    _running.add(process.pid)
    return process


def _fresh_exchange(scratch, uid):
    """The sandbox's exchange file (EXCHANGE), made anew for each start and opened here before any
    worker runs: the grader reads it through this descriptor only, never by its path again, so
    whatever a worker puts at that path later (a link, a FIFO) is never opened by the grader."""
    path = scratch / EXCHANGE
    path.unlink(missing_ok=True)  # a link is removed, not followed
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
    if uid is not None:
        os.fchown(descriptor, uid, uid)
    return descriptor


def _memfd(name, data):
    descriptor = os.memfd_create(name, 0)
    os.write(descriptor, data)
    os.lseek(descriptor, 0, os.SEEK_SET)
    return descriptor


# What a worker never needs, denied with EPERM (docs/security.md says why, call by call).
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
def _keyctl_number():
    """keyctl's system call number on this machine; None without kernel keyrings or libseccomp
    (not Linux: a student's practice run at `process` level)."""
    if sys.platform != "linux":
        return None
    try:
        import pyseccomp
    except (ImportError, OSError):
        return None
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")


@functools.lru_cache(maxsize=None)
def seccomp_filter():
    """The sandbox's seccomp filter, as the BPF program bubblewrap loads (`--seccomp FD`)."""
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


def scratch_parent():
    """Where scratch folders go: the temporary folder if other users can pass through every folder
    on its path (a sandboxed worker runs as another uid and must reach its scratch), else /tmp."""
    folder = Path(tempfile.gettempdir()).resolve()
    if all(path.stat().st_mode & stat.S_IXOTH for path in [folder, *folder.parents]):
        return folder
    return Path("/tmp")


def _command(scratch, isolation, limits, log, seccomp):
    if isolation == "process":
        return [sys.executable, "-I", str(scratch / ".worker" / ENTRY), str(log)], scratch
    if isolation == "uid":
        return [str(SANDBOX_PYTHON), "-I", str(scratch / ".worker" / ENTRY), str(log), "own-uid"], scratch
    python = SANDBOX_PYTHON if isolation == "namespace" else Path(sys.executable)
    binds = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if Path(f"/{link}").is_symlink():
            binds += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    for folder in _runtime_folders(python):
        binds += ["--ro-bind", str(folder), str(folder)]
    command = ["bwrap", "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--hostname", "sandbox",
               *binds, "--ro-bind", str(scratch), "/scratch", "--bind", str(scratch / EXCHANGE), f"/scratch/{EXCHANGE}",
               "--proc", "/proc", "--dev", "/dev",
               "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/scratch", "--seccomp", str(seccomp),
               str(python), "-I", f"/scratch/.worker/{ENTRY}", str(log)]
    return command, "/"


def _make_readable(scratch):
    """What the grader put in scratch, readable by the worker's uid: copies keep their source's mode,
    and the grader's own files may be 0600 (Gradescope's recipe). Links are left alone, and so are
    FIFOs (MNIST's, made with the modes they need before a sandbox started lazily for them)."""
    for path in scratch.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        elif path.is_file() and not path.is_symlink():
            path.chmod(0o644)


def _runtime_folders(python):
    """What the interpreter needs besides /usr: its virtual environment and the base Python."""
    folders = []
    venv = python.parent.parent
    config = venv / "pyvenv.cfg"
    if config.is_file():
        folders.append(venv.resolve())
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                folders.append(Path(value.strip()).resolve().parent)
    else:
        folders.append(Path(python).resolve().parent.parent)
    return [f for f in dict.fromkeys(folders) if f != Path("/usr") and not str(f).startswith("/usr/")]


def _claim_uid():
    """A uid no other running worker has: hold an exclusive lock on its file until the worker stops."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for uid in UID_POOL:
        descriptor = os.open(UID_LOCKS / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor, uid
        except BlockingIOError:
            os.close(descriptor)
    raise RuntimeError(f"all {len(UID_POOL)} sandbox uids are in use")


@functools.lru_cache(maxsize=None)
def level_available(isolation):
    """Can this machine start a worker at this level? (Tried once: a sandboxed `import numpy`.)"""
    if isolation == "process":
        return True
    if resource is None or fcntl is None:
        return False
    if isolation == "uid" and (os.geteuid() != 0 or not SANDBOX_PYTHON.is_file()):
        return False
    if isolation != "uid" and (shutil.which("bwrap") is None or (isolation == "namespace" and os.geteuid() != 0)):
        return False
    if isolation == "user-namespace" and os.geteuid() == 0:
        return False  # as root, bubblewrap without the uid drop is no drop at all: use namespace
    with tempfile.TemporaryDirectory(prefix="autodiff-probe-", dir=scratch_parent()) as scratch:
        try:
            process = start_worker(scratch, isolation=isolation)
            process.stdin.close()
            ready = protocol.read_frame(process.stdout.fileno())  # the supervisor's first frame, once numpy is imported
            stop_worker(process)
        except (OSError, RuntimeError, ImportError, protocol.ProtocolError):  # no libseccomp: no filter, no sandbox here
            return False
        return ready is not None and protocol.decode_frame(*ready).get("ready") is True


def strongest_level():
    return next(level for level in ISOLATION_LEVELS if level_available(level))


def protect_from_workers(paths):
    """At the `uid` level, file permissions alone keep the grader's own files from the worker's
    uid (Gradescope's recipe): take every permission for others from these files and folders (a
    pooled uid has no group: the group's permissions, course staff's, stay). Returns those changed."""
    changed = []
    for path in map(Path, paths):
        try:
            mode = path.stat().st_mode
            if mode & stat.S_ISVTX or len(path.resolve().parts) <= 2:  # never a shared folder (/tmp) or a top one (/home)
                continue
            if mode & 0o007:
                path.chmod(stat.S_IMODE(mode) & ~0o007)
                changed.append(path)
        except FileNotFoundError:
            pass
    return changed


def readable_by_workers(path):
    """Could a pooled uid (no group of its own, so `other` permissions) open this file or list this
    folder? Every folder above it must let others through."""
    path = Path(path).resolve()
    try:
        if not all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents):
            return False
        return bool(path.stat().st_mode & stat.S_IROTH)
    except FileNotFoundError:
        return False


def stop_worker(process):
    """Kill the worker's process group, then every process this one adopted from it, then whatever
    still runs as its sandbox uid."""
    try:
        os.killpg(process.pid, signal.SIGKILL) if hasattr(os, "killpg") else _kill_tree(process)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    _running.discard(process.pid)
    for _ in range(100):  # each round kills the adopted; their own children are adopted for the next
        adopted = _left_behind()
        if not adopted:
            break
        for pid in adopted:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if getattr(process, "exchange", None) is not None:
        os.close(process.exchange)
        process.exchange = None
    if getattr(process, "uid_lock", None) is not None:
        _kill_everything_of(process.uid)
        os.close(process.uid_lock)  # the uid is free again: nothing of this worker survives it
        process.uid_lock = None


def _kill_tree(process):
    """Windows, which has no process groups: the process and every process it started (taskkill
    /T follows their parent ids), or the process alone if taskkill could not."""
    try:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    process.kill()  # nothing if taskkill ended it


@contextlib.contextmanager
def paused(process):
    """Every process of a sandbox stopped (SIGSTOP) while the grader times itself, then resumed:
    nothing a worker left running competes with the grader's own measurement of a budget. Where
    the sandbox has a uid of its own (namespace, uid), that is every process of the uid, found
    again until none is left running (one forked meanwhile included); elsewhere nothing is paused."""
    uid = getattr(process, "uid", None)
    if uid is None or process.poll() is not None:
        yield
        return
    stopped = set()
    try:
        for _ in range(100):
            running = _processes_of(uid) - stopped
            if not running:
                break
            for pid in running:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= running
        deadline = time.monotonic() + 1.0  # SIGSTOP takes effect when the process is next scheduled: wait for it
        while time.monotonic() < deadline and any(_state(pid) not in "TtZX" for pid in stopped):
            time.sleep(0.001)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)


def _state(pid):
    """A process's state letter (R running, T stopped, …; X once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "X"


def _processes_of(uid):
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.add(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return pids


def _kill_everything_of(uid, timeout=10):
    """Kill what still runs as a sandbox uid and wait until it is gone. Killed processes (a fork or
    thread bomb's) count against the uid's RLIMIT_NPROC until they exit: handed out before, the
    uid could not start the next worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        remaining = _processes_of(uid)
        if not remaining:
            return
        for pid in remaining:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _left_behind():
    """This process's children that workers left behind: in a session other than ours (workers
    start their own), and not a running worker. Our own children share our session."""
    try:
        tasks = Path(f"/proc/{os.getpid()}/task").iterdir()
        children = {int(pid) for task in tasks for pid in (task / "children").read_text().split()}
    except OSError:  # not Linux: nothing was adopted
        return set()
    ours, found = os.getsid(0), set()
    for pid in children - _running:
        try:
            if os.getsid(pid) != ours:
                found.add(pid)
        except ProcessLookupError:
            pass
    return found
