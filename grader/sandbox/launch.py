"""How a worker process is started: the one place where isolation is arranged.

Level `process`: a separate `python -I` process in its own session (so the whole process group
can be killed), with a minimal environment, rlimits, stdin/stdout as the protocol pipes and the
student's output sent to a capped log file in the scratch folder. On Linux the process that starts
workers adopts whatever they leave behind (it is a child subreaper), so that stopping a worker also
kills a process that left its group (setsid, a double fork): nothing the student started outlives
the worker, to rewrite the results once the checks are done, say.
"""
import ctypes
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "worker.py"
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
_running = set()  # pids of the workers started and not yet stopped


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600
    memory_bytes: int = 4 << 30
    file_bytes: int = 32 << 20
    open_files: int = 64


ISOLATION_LEVELS = ("process",)


def worker_environment():
    """Nothing of the grader's environment leaks in; BLAS pinned to one thread so that results
    are the same on every machine and N workers don't oversubscribe the cores."""
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", **threads}


def start_worker(scratch, limits=Limits(), isolation="process"):
    """Start a worker serving the submission prepared in `scratch`; returns the Popen."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"unknown isolation level {isolation!r}; expected one of {ISOLATION_LEVELS}")
    scratch = Path(scratch)
    log = open(scratch / "worker.log", "ab")

    def apply_limits():
        for limit, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
                             (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                             (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))

    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        process = subprocess.Popen([sys.executable, "-I", str(WORKER)], cwd=scratch, env={**worker_environment(), "HOME": str(scratch)},
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   start_new_session=True, preexec_fn=apply_limits)
    finally:
        log.close()
    _running.add(process.pid)
    return process


def stop_worker(process):
    """Kill the worker's process group, then every process this one adopted from it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    _running.discard(process.pid)
    for _ in range(100):  # each round kills the adopted; their own children are adopted for the next
        adopted = _left_behind()
        if not adopted:
            return
        for pid in adopted:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


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
