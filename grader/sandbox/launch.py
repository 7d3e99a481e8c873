"""How a worker process is started: the one place where isolation is arranged.

Level `process`: a separate `python -I` process in its own session (so the whole process group
can be killed), with a minimal environment, rlimits, stdin/stdout as the protocol pipes and the
student's output sent to a capped log file in the scratch folder.
"""
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "worker.py"


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

    try:
        return subprocess.Popen([sys.executable, "-I", str(WORKER)], cwd=scratch, env={**worker_environment(), "HOME": str(scratch)},
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                start_new_session=True, preexec_fn=apply_limits)
    finally:
        log.close()
