"""How a worker process is started and stopped: the one place where isolation is arranged, in the
steps every isolation level has (levels.py says what each level does in each).

Every level: a separate `python -I` process (the supervisor, supervisor.py) in its own session
(so the whole process group can be killed), started by its first program (contain.py: rlimits
and a fresh, empty session keyring, set in that process itself while it has one thread), a
minimal environment, stdin/stdout as the protocol pipes, the student's output sent to a capped
log file (worker.log, handed over as a descriptor of its own) and the launcher's stderr to
sandbox.log, which only contain.py, bubblewrap and the supervisor's own start-up can write: the
sandbox's own errors are read from there. Where the level has a uid of its own, subprocess drops
to it before anything of the sandbox runs, so bubblewrap runs as that uid. Windows has no
`pass_fds`: there the supervisor opens worker.log by its path (LOG_BY_PATH), and stopping a
worker ends its process tree with `taskkill /T` (no process groups).
"""
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ..mnist import transport
from . import reaping, seccomp
from .levels import CONTAIN, ENTRY, IsolationLevel, isolation_level
from .uidpool import UidClaim

# Copied side by side into the sandbox's runtime folder, where each imports the others by bare name
# (the supervisor first: the sandbox's entry point; contain.py, the first program of the worker's
# process); MNIST's transport goes with them: the worker's end of the steps' transfer
# (grader/mnist/transport.py).
SANDBOX_FILES = [*(Path(__file__).resolve().parent / name
                   for name in (ENTRY, "worker.py", "protocol.py", "contract.py", "failures.py", "cells.py", CONTAIN)),
                 Path(transport.__file__).resolve()]
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


def worker_environment() -> dict[str, str]:
    """Nothing of the grader's environment leaks in; BLAS pinned to one thread so that results
    are the same on every machine and N workers don't oversubscribe the cores."""
    environment = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                   "PYTHONDONTWRITEBYTECODE": "1", **ONE_BLAS_THREAD}
    if os.name == "nt" and "SYSTEMROOT" in os.environ:  # without it, Windows cannot start sockets (MNIST's channel)
        environment["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return environment


if TYPE_CHECKING:
    class SandboxProcess(subprocess.Popen):
        """What start_worker returns, for the type checker: a Popen (made by subprocess.Popen itself)
        with the attributes its start sets: the level, the pooled uid's claim and the uid (None where
        the level has none), the exchange file's descriptor (None once closed)."""
        level: IsolationLevel
        claim: UidClaim | None
        uid: int | None
        exchange: int | None
        stdin: IO[bytes]   # the protocol's pipes: always there
        stdout: IO[bytes]


def start_worker(scratch: str | os.PathLike[str], limits: Limits = Limits(),
                 isolation: str | IsolationLevel = "process") -> "SandboxProcess":
    """Start the sandbox's supervisor serving the submission prepared in `scratch`; returns the Popen.
    `isolation`: a level's name, or the level (levels.isolation_level)."""
    level = isolation_level(isolation)
    scratch = Path(scratch)
    runtime = scratch / ".worker"
    runtime.mkdir(exist_ok=True)
    for file in SANDBOX_FILES:
        shutil.copyfile(file, runtime / file.name)
    claim = level.prepare(scratch)
    uid = None if claim is None else claim.uid
    exchange = _fresh_exchange(scratch, uid)
    log: int | Path
    passed: list[int]
    if LOG_BY_PATH:
        log, passed = scratch / "worker.log", []
    else:
        log = os.open(scratch / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        passed = [log]
    with open(scratch / "sandbox.log", "ab") as sandbox_log:
        try:
            rules = seccomp.filter_descriptor() if level.bubblewrap else None  # bubblewrap loads it (--seccomp FD)
            passed += [] if rules is None else [rules]
            command, cwd = level.command(scratch, limits, log, rules)
            containment = level.contain(limits)
            if containment is not None:
                command = [*containment.program(level.python(), runtime), *command]
            privileges: dict[str, Any] = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
            reaping.become_subreaper()
            process = cast("SandboxProcess", subprocess.Popen(command, cwd=cwd, env={**worker_environment(), "HOME": level.home(scratch)},
                                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sandbox_log,
                                                              start_new_session=True, pass_fds=passed, **privileges))
        except BaseException:
            os.close(exchange)
            if claim is not None:
                claim.release()
            raise
        finally:
            for descriptor in passed:
                os.close(descriptor)
    process.level, process.claim, process.uid, process.exchange = level, claim, uid, exchange
    reaping.running.add(process.pid)
    return process


def stop_worker(process: "SandboxProcess") -> None:
    """Kill the worker's process group, then every process this one adopted from it, then (where
    the level has one) whatever still runs as its sandbox uid, which is then free again."""
    isolation_level(getattr(process, "level", "process")).reap(process)
    exchange = getattr(process, "exchange", None)
    if exchange is not None:
        os.close(exchange)
        process.exchange = None


def _fresh_exchange(scratch: Path, uid: int | None) -> int:
    """The sandbox's exchange file (EXCHANGE), made anew for each start and opened here before any
    worker runs: the grader reads it through this descriptor only, never by its path again, so
    whatever a worker puts at that path later (a link, a FIFO) is never opened by the grader."""
    path = scratch / EXCHANGE
    path.unlink(missing_ok=True)  # a link is removed, not followed
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
    if uid is not None:
        os.fchown(descriptor, uid, uid)
    return descriptor


def scratch_parent() -> Path:
    """Where scratch folders go: the temporary folder if other users can pass through every folder
    on its path (a sandboxed worker runs as another uid and must reach its scratch), else /tmp."""
    folder = Path(tempfile.gettempdir()).resolve()
    if all(path.stat().st_mode & stat.S_IXOTH for path in [folder, *folder.parents]):
        return folder
    return Path("/tmp")
