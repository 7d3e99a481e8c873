"""Ending a worker and everything it started.

On Linux the process that starts workers adopts whatever they leave behind (it is a child
subreaper), so that stopping a worker also kills a process that left its group (setsid, a double
fork) and reaps bubblewrap's own processes at once, rather than leaving them as zombies that count
against the next worker's RLIMIT_NPROC until the machine's init reaps them. Where the worker has a
uid of its own, whatever still runs as that uid is killed too before the uid is handed out again."""
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
running: set[int] = set()  # pids of the workers started and not yet stopped


def become_subreaper() -> None:
    """Adopt what workers leave behind (Linux; elsewhere nothing is adopted)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_group(process: subprocess.Popen) -> None:
    """Kill the worker's process group (Windows: its process tree), wait for it, then every process
    this one adopted from it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL) if hasattr(os, "killpg") else kill_tree(process)
    process.wait()
    running.discard(process.pid)
    for _ in range(100):  # each round kills the adopted; their own children are adopted for the next
        adopted = left_behind()
        if not adopted:
            break
        for pid in adopted:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def kill_tree(process: subprocess.Popen) -> None:
    """Windows, which has no process groups: the process and every process it started (taskkill
    /T follows their parent ids), or the process alone if taskkill could not."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, timeout=30, check=False)
    process.kill()  # nothing if taskkill ended it


def kill_everything_of(uid: int, timeout: float = 10) -> None:
    """Kill what still runs as a sandbox uid and wait until it is gone. Killed processes (a fork or
    thread bomb's) count against the uid's RLIMIT_NPROC until they exit: handed out before, the
    uid could not start the next worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        remaining = processes_of(uid)
        if not remaining:
            return
        for pid in remaining:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def left_behind() -> set[int]:
    """This process's children that workers left behind: in a session other than ours (workers
    start their own), and not a running worker. Our own children share our session."""
    try:
        tasks = Path(f"/proc/{os.getpid()}/task").iterdir()
        children = {int(pid) for task in tasks for pid in (task / "children").read_text().split()}
    except OSError:  # not Linux: nothing was adopted
        return set()
    ours, found = os.getsid(0), set()
    for pid in children - running:
        try:
            if os.getsid(pid) != ours:
                found.add(pid)
        except ProcessLookupError:
            pass
    return found


def processes_of(uid: int) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.add(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return pids


def state(pid: int) -> str:
    """A process's state letter (R running, T stopped, …; X once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "X"


@contextlib.contextmanager
def paused(process: subprocess.Popen) -> Iterator[None]:
    """Every process of a sandbox stopped (SIGSTOP) while the grader times itself, then resumed:
    nothing a worker left running competes with the grader's own measurement of a budget. Where
    the sandbox has a uid of its own (namespace, uid), that is every process of the uid, found
    again until none is left running (one forked meanwhile included); elsewhere nothing is paused."""
    uid = getattr(process, "uid", None)
    if uid is None or process.poll() is not None:
        yield
        return
    stopped: set[int] = set()
    try:
        for _ in range(100):
            found = processes_of(uid) - stopped
            if not found:
                break
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= found
        deadline = time.monotonic() + 1.0  # SIGSTOP takes effect when the process is next scheduled: wait for it
        while time.monotonic() < deadline and any(state(pid) not in "TtZX" for pid in stopped):
            time.sleep(0.001)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
