"""The isolation levels, strongest first, as objects with the same steps (nsjail's containment,
one mechanism per module: uidpool.py, seccomp.py, permissions.py, reaping.py, contain.py):

- `available()`: can this machine start a worker at this level? (its requirements, then once a
  sandboxed `import numpy`);
- `prepare(scratch)`: what the level arranges before its worker starts (a uid from the pool, the
  scratch folder opened to it); returns the uid's claim, or None;
- `command(scratch, limits, log, seccomp_fd)`: the program that becomes the sandbox (bubblewrap
  around the supervisor, or the supervisor), and its working directory;
- `contain(limits)`: what the worker's process does to itself first, with one thread (contain.py
  carries it out): its rlimits and a fresh session keyring; None where there is no `resource`
  module (Windows);
- `reap(process)`: end the worker and everything it started, and give back what `prepare` took.

What each level can and cannot stop is docs/platforms.md's table and docs/security.md's; the
callers (cli, grade, batch, client) ask a level's attributes, never its name. Looked up by name
once (`isolation_level`); `ISOLATION_LEVELS` is the names, strongest first: what `auto` tries in
order and the CLI offers.

The levels:

- `namespace` (the grader runs as root): the worker gets a uid of its own (one per concurrent
  worker, from a pool of numbered uids claimed with a lock file) *before* any namespace is made,
  then runs inside bubblewrap: no network, its own PID namespace, a read-only view of the Python
  runtime and of the scratch folder only (but for one file, EXCHANGE, MNIST's gradients; its size
  bounded by RLIMIT_FSIZE), a size-capped private /tmp, the supervisor as PID 1 of the namespace
  (no process inside can signal it), and the seccomp filter (seccomp.py). RLIMIT_NPROC on its own
  uid bounds a fork or thread bomb.
- `uid` (root, but no namespaces: a Docker container such as Gradescope's): the same pooled uid,
  rlimits and RLIMIT_NPROC, without bubblewrap: the worker runs the sandbox runtime in its scratch
  folder, which stays the grader's (open to the worker's group, read-only: it cannot put a link in
  place of anything the grader opens there). What it must not read is kept from it by file
  permissions alone (permissions.protect_from_workers: the grader's checks, rubric, solutions and
  MNIST test labels lose every permission for others). The network is NOT blocked at this level.
- `user-namespace` (not root, unprivileged user namespaces available): the same bubblewrap
  sandbox as the grader's own user.
- `process`: rlimits and a separate process only; without `resource` (Windows), a separate
  process only, its time bounded by the caller's timeouts.

The sandboxed runtime must be readable by the worker's uid: Debian's /usr/bin/python3 with a
virtual environment outside /root (the Makefile makes one at SANDBOX_PYTHON when run as root).
"""
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..mnist import transport
from . import permissions, protocol, reaping, seccomp, uidpool

if TYPE_CHECKING:
    from .launch import Limits

fcntl: ModuleType | None
resource: ModuleType | None
try:  # POSIX only: without them (Windows), only the `process` level exists, without rlimits
    import fcntl
    import resource
except ImportError:
    fcntl = resource = None

SANDBOX_PYTHON = Path(os.environ.get("AUTODIFF_SANDBOX_PYTHON", "/opt/autodiff-grader/venv/bin/python"))
ENTRY = "supervisor.py"  # the sandbox's entry point, in its runtime folder (scratch/.worker)
CONTAIN = "contain.py"  # the first program of a worker's process, beside it


@dataclass(frozen=True)
class Containment:
    """What the worker's process does to itself before it becomes the sandbox (contain.py)."""
    limits: tuple[tuple[str, int], ...]  # (RLIMIT_NAME, value) pairs, each set as soft and hard limit
    strict: bool   # a limit the system refuses stops the start (not at `process`: a laptop's macOS refuses RLIMIT_AS)
    keyctl: int | None  # keyctl's call number, to join a fresh session keyring; None: no kernel keyrings

    def program(self, python: Path | str, runtime: Path) -> list[str]:
        """The command that carries it out, before the sandbox's own command."""
        plan = {"limits": [list(pair) for pair in self.limits], "strict": self.strict, "keyctl": self.keyctl}
        return [str(python), "-I", "-S", str(Path(runtime) / CONTAIN), json.dumps(plan)]


class IsolationLevel:
    name = ""
    needs = ""                 # what the machine must offer, for the message when it does not
    bubblewrap = False         # inside bubblewrap: namespaces, the seccomp filter, a private /tmp (its exit status 128 + N for signal N)
    pooled_uid = False         # a uid of its own from the pool, with RLIMIT_NPROC on it
    guarded_by_permissions = False  # only file permissions keep the grader's files (and a class's reports) from the worker
    sandboxed = True           # False: the worker runs as the grader's own user (`grade` warns)

    def __repr__(self) -> str:
        return f"<isolation level {self.name}>"

    # -- the steps ------------------------------------------------------------------------------
    def available(self) -> bool:
        """Can this machine start a worker at this level? (Tried: a sandboxed `import numpy`.)"""
        return self.requirements_met() and probe(self)

    def requirements_met(self) -> bool:
        return resource is not None and fcntl is not None

    def prepare(self, scratch: Path) -> uidpool.UidClaim | None:
        return None

    def command(self, scratch: Path, limits: "Limits", log: int | Path, seccomp_fd: int | None) -> tuple[list[str], Path | str]:
        """(argv, working directory) of the sandbox: the supervisor with its log (a descriptor, or a
        path on Windows); seccomp_fd: the filter's descriptor, for bubblewrap to load."""
        return [str(self.python()), "-I", str(Path(scratch) / ".worker" / ENTRY), str(log)], scratch

    def contain(self, limits: "Limits") -> Containment | None:
        if resource is None:
            return None
        return Containment(limits=(("RLIMIT_CPU", limits.cpu_seconds), ("RLIMIT_AS", limits.memory_bytes),
                                   ("RLIMIT_FSIZE", limits.file_bytes), ("RLIMIT_NOFILE", limits.open_files),
                                   ("RLIMIT_CORE", 0))
                           + ((("RLIMIT_NPROC", limits.processes),) if self.pooled_uid else ()),
                           strict=self.sandboxed, keyctl=seccomp.keyctl_number())

    def reap(self, process: subprocess.Popen) -> None:
        reaping.kill_group(process)

    # -- what the steps share -------------------------------------------------------------------
    def python(self) -> Path:
        """The interpreter the sandbox runs on: the worker's uid must be able to read it."""
        return SANDBOX_PYTHON if self.pooled_uid else Path(sys.executable)

    def home(self, scratch: Path) -> str:
        return str(scratch)


class PooledUid(IsolationLevel):
    """The levels where the worker has a uid of its own: claimed, and the scratch folder opened
    to it, before it starts; everything of that uid killed before the uid is handed out again."""
    pooled_uid = True

    def requirements_met(self) -> bool:
        return super().requirements_met() and os.geteuid() == 0

    def prepare(self, scratch: Path) -> uidpool.UidClaim:
        claim = uidpool.claim_uid()
        try:
            permissions.make_readable(scratch)
            permissions.open_to_worker(scratch, claim.uid)
        except BaseException:
            claim.release()
            raise
        return claim

    def reap(self, process: subprocess.Popen) -> None:
        super().reap(process)
        claim = getattr(process, "claim", None)
        if claim is not None and claim.lock is not None:
            reaping.kill_everything_of(claim.uid)
            claim.release()  # nothing of this worker survives it


class Bubblewrap(IsolationLevel):
    bubblewrap = True

    def requirements_met(self) -> bool:
        return super().requirements_met() and shutil.which("bwrap") is not None

    def command(self, scratch: Path, limits: "Limits", log: int | Path, seccomp_fd: int | None) -> tuple[list[str], Path | str]:
        python = self.python()
        binds = ["--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin"):
            if Path(f"/{link}").is_symlink():
                binds += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        for folder in runtime_folders(python):
            binds += ["--ro-bind", str(folder), str(folder)]
        exchange = transport.EXCHANGE
        command = ["bwrap", "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session", "--hostname", "sandbox",
                   *binds, "--ro-bind", str(scratch), "/scratch", "--bind", str(Path(scratch) / exchange), f"/scratch/{exchange}",
                   "--proc", "/proc", "--dev", "/dev",
                   "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/scratch", "--seccomp", str(seccomp_fd),
                   str(python), "-I", f"/scratch/.worker/{ENTRY}", str(log)]
        return command, "/"

    def home(self, scratch: Path) -> str:
        return "/tmp"


class Namespace(PooledUid, Bubblewrap):
    name = "namespace"
    needs = "root and bubblewrap"


class Uid(PooledUid):
    name = "uid"
    needs = "root and the sandbox runtime"
    guarded_by_permissions = True

    def requirements_met(self) -> bool:
        return super().requirements_met() and SANDBOX_PYTHON.is_file()

    def command(self, scratch: Path, limits: "Limits", log: int | Path, seccomp_fd: int | None) -> tuple[list[str], Path | str]:
        argv, cwd = super().command(scratch, limits, log, seccomp_fd)
        # The supervisor's processes are then all of a uid no other process has: it may kill(-1).
        return [*argv, "own-uid"], cwd


class UserNamespace(Bubblewrap):
    name = "user-namespace"
    needs = "bubblewrap and a non-root user"

    def requirements_met(self) -> bool:
        # as root, bubblewrap without the uid drop is no drop at all: `namespace` instead
        return super().requirements_met() and os.geteuid() != 0


class Process(IsolationLevel):
    name = "process"
    sandboxed = False

    def available(self) -> bool:
        return True


LEVELS = {level.name: level for level in (Namespace(), Uid(), UserNamespace(), Process())}
ISOLATION_LEVELS = tuple(LEVELS)  # strongest first: what `auto` tries in order


def isolation_level(name: str | IsolationLevel) -> IsolationLevel:
    """The level called `name` (an IsolationLevel is returned as it is)."""
    if isinstance(name, IsolationLevel):
        return name
    try:
        return LEVELS[name]
    except KeyError:
        raise ValueError(f"unknown isolation level {name!r}; expected one of {', '.join(ISOLATION_LEVELS)}") from None


@functools.lru_cache(maxsize=None)
def level_available(name: str) -> bool:
    return isolation_level(name).available()


def strongest_level() -> str:
    return next(name for name in ISOLATION_LEVELS if level_available(name))


def probe(level: IsolationLevel) -> bool:
    """Start a sandbox at this level on an empty scratch folder: did its supervisor say it was ready?"""
    from . import launch

    with tempfile.TemporaryDirectory(prefix="autodiff-probe-", dir=launch.scratch_parent()) as scratch:
        try:
            process = launch.start_worker(scratch, isolation=level)
            process.stdin.close()
            ready = protocol.read_frame(process.stdout.fileno())  # the supervisor's first frame, once numpy is imported
            launch.stop_worker(process)
        except (OSError, RuntimeError, ImportError, protocol.ProtocolError):  # no libseccomp: no filter, no sandbox here
            return False
        return ready is not None and protocol.decode_frame(*ready).get("ready") is True


def runtime_folders(python: Path) -> list[Path]:
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
