"""The sandbox's entry point: a supervisor that never runs student code.

It imports numpy, the protocol and the course's engine, then serves the grader's requests (one
frame each on stdin, replies on stdout). For each group of checks (the request says which) it
forks a fresh worker child that imports the student's modules and answers on two pipes made for
that child only (worker.serve); consecutive requests of one group go to the same child, the first
request of another group ends it and everything it started. What a child writes is untrusted data:
one length-prefixed frame per request, sized, parsed and checked for its shape here; the fields
the grader acts on (id, restart, ok, a failure and its status) are written by the supervisor only,
around the child's frame. So student code can answer only the request it was handed, in its own
group: a forged reply, a fork bomb holding the pipe, a dead or stuck child cost that group alone.

Out of the children's reach: under bubblewrap the supervisor is PID 1 of the sandbox's PID
namespace (`--as-pid-1`), which no process inside can signal, and it is not dumpable, so its
descriptors (the grader's pipes) cannot be opened through /proc/1/fd nor its memory read; the
seccomp filter denies ptrace and the calls that reach another process's limits or scheduling.

Where the system cannot fork a watched child (no os.pidfd_open: macOS; no fork: Windows; a
student's own check on their own machine, `process` level only), the requests are served in the
supervisor itself (InProcess): the grader's client still times every request and replaces a supervisor that
overstays or dies.
"""
import contextlib
import ctypes
import io
import json
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol  # noqa: E402  (beside this file)
import transport  # noqa: E402  (grader/mnist/transport.py, beside this file: MNIST's exchange file)
import worker  # noqa: E402  (numpy, the commands; it imports no student code until a child asks)
from failures import WorkerFailure, channel_closed, exited, no_answer, unreadable  # noqa: E402  (beside this file)

fcntl: "ModuleType | None"
resource: "ModuleType | None"
try:  # POSIX
    import fcntl
    import resource
except ImportError:
    fcntl = resource = None

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36  # linux/prctl.h
CHANNEL_CLOSED = 86   # a child's exit status when its pipes were closed under it
LINGER_SECONDS = 1.0  # a child that closed its reply pipe has this long to exit before it is said to linger
_libc = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None
# At the uid level the sandbox's processes are all of a uid no other process has (launch.py):
# kill(-1) then reaches them all, and never the supervisor itself, as PID 1's does in a namespace.
OWN_UID = sys.argv[2:3] == ["own-uid"]


class Child:
    """A forked worker serving one group, and the supervisor's ends of its two pipes."""

    def __init__(self, group: str | None) -> None:
        assert fcntl is not None and _libc is not None  # a Child is made only where os.fork and os.pidfd_open are: POSIX
        self.group = group
        self.status: int | None = None
        requests_read, self.requests = os.pipe()
        self.replies, replies_write = os.pipe()
        for descriptor in (self.requests, self.replies):
            protocol.widen_pipe(descriptor)
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing of the supervisor's is left open in it
            code = 70  # the worker's own code failed
            try:
                os.setsid()  # a group of its own: it cannot join the supervisor's to signal it
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc entries readable by the supervisor
                low, high = sorted((requests_read, replies_write))
                os.closerange(3, low)
                os.closerange(low + 1, high)
                os.closerange(high + 1, 1 << 16)
                worker.serve(requests_read, replies_write)
                code = 0
            except OSError:  # its pipes were closed under it (student code closed descriptors)
                code = CHANNEL_CLOSED
            finally:
                os._exit(code)
        os.close(requests_read)
        os.close(replies_write)
        for descriptor in (self.requests, self.replies):
            fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.pidfd = os.pidfd_open(self.pid)

    def ask(self, header: bytes, body: bytearray, timeout: float) -> tuple[bytes, bytearray, bool]:
        """Hand the child one request frame; (its reply's header and body, whether it holds a
        result), or WorkerFailure."""
        deadline = time.monotonic() + timeout
        try:
            if os.read(self.replies, 1):
                raise WorkerFailure("error", "the worker wrote to its reply channel outside a reply (from another process?)")
        except BlockingIOError:  # nothing there, as it should be
            pass
        protocol.write_frame(lambda view: self._write(view, deadline, timeout),
                             [protocol.FRAME_PREFIX.pack(len(header), len(body)), header, body])
        try:
            frame = protocol.read_frame(lambda view: self._read_into(view, deadline, timeout))
        except protocol.ProtocolError as error:
            raise unreadable(error) from None
        if frame is None:
            raise self._ended()
        return (*frame, result_reply(frame[0]))

    def _write(self, view, deadline, timeout):
        """Write what the request pipe takes of view, once it takes any (the bytes written)."""
        if not self._wait(deadline, timeout, write=True):
            raise self._ended()
        try:
            return os.write(self.requests, view)
        except BlockingIOError:
            return 0
        except OSError:  # its end is closed: it is gone
            raise self._ended() from None

    def _read_into(self, view, deadline, timeout):
        """Read from the reply pipe into view, once it holds anything (the bytes read); 0 at its end:
        every writer closed it, or the child exited and left nothing more in it."""
        while True:
            try:
                return os.readv(self.replies, [view])
            except BlockingIOError:
                pass
            if not self._wait(deadline, timeout):  # the child exited: what it wrote before it went, then the end
                try:
                    return os.readv(self.replies, [view])
                except BlockingIOError:
                    return 0

    def _wait(self, deadline, timeout, write=False):
        """Wait until the pipe is ready (True) or the child has exited (False); WorkerFailure at the deadline."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise no_answer(timeout)
            pipe = [self.requests] if write else [self.replies]
            readable, writable, _ = select.select([self.pidfd] + ([] if write else pipe), pipe if write else [], [], remaining)
            if writable or self.replies in readable:
                return True
            if self.pidfd in readable:
                return False

    def _ended(self):
        """Why the child stopped answering, from its exit status (waited for a moment): a WorkerFailure."""
        if self.status is None and select.select([self.pidfd], [], [], LINGER_SECONDS)[0]:
            self.status = os.waitpid(self.pid, 0)[1]
        code = None if self.status is None else os.waitstatus_to_exitcode(self.status)
        return channel_closed() if code in (None, CHANNEL_CLOSED) else exited(code)

    def fit_for_more(self) -> bool:
        """Alive, one thread, and under half the address space it may use? Otherwise the next
        check would fail for it (after a thread or memory bomb, say), so it is ended."""
        if os.waitpid(self.pid, os.WNOHANG)[0]:
            self.status = 0
            return False
        try:
            threads = len(os.listdir(f"/proc/{self.pid}/task"))
            with open(f"/proc/{self.pid}/statm") as statm:
                size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return False
        assert resource is not None  # a Child runs only on POSIX
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        return threads == 1 and (limit == resource.RLIM_INFINITY or size <= limit // 2)

    def end(self) -> None:
        """Kill the child and every process it left (orphans come to the supervisor: it is the
        namespace's PID 1, or a subreaper), and reap them all, so none holds a pipe or a process
        slot; remove its notebook's folder."""
        for descriptor in (self.requests, self.replies, self.pidfd):
            os.close(descriptor)
        self._kill_all()
        shutil.rmtree(worker.cells.work_folder(self.pid), ignore_errors=True)  # never a link's target: rmtree does not follow

    def _kill_all(self):
        for _ in range(1000):
            if os.getpid() == 1 or OWN_UID:  # every process of the sandbox but itself, at once: a fork bomb cannot outrun it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)
            left = children()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


def result_reply(header: bytes) -> bool:
    """Whether a child's reply header holds a result (else what student code raised); WorkerFailure
    unless it is one JSON object, {"result": {...}} or {"raised": {...}}. The arrays in the body
    are the grader's to read: it decodes them with the header, and refuses a frame whose arrays
    do not fill its body exactly."""
    try:
        reply = json.loads(header)
    except (ValueError, RecursionError) as error:
        raise unreadable(f"not a JSON message: {str(error)[:100]}") from None
    if not (isinstance(reply, dict) and len(reply) == 1 and isinstance(reply.get("result", reply.get("raised")), dict)):
        raise unreadable("not a reply")
    return "result" in reply


class InProcess:
    """A group's requests served by the supervisor itself, where no child can be watched: the
    same replies as a child's, without the isolation between groups (see the module's docstring)."""

    def __init__(self, group: str | None) -> None:
        self.group = group

    def ask(self, header: bytes, body: bytearray, timeout: float) -> tuple[bytes, bytes, bool]:
        parts, result = worker.answer(protocol.decode_frame(header, body))
        return parts[0][protocol.FRAME_PREFIX.size:], b"".join(parts[1:]), result

    def fit_for_more(self) -> bool:
        return True

    def end(self) -> None:
        pass


WORKER = Child if hasattr(os, "fork") and hasattr(os, "pidfd_open") else InProcess


def children() -> set[int]:
    try:
        tasks = Path(f"/proc/{os.getpid()}/task").iterdir()
        return {int(pid) for task in tasks for pid in (task / "children").read_text().split()}
    except OSError:
        return set()


def replied(request: dict[str, Any], reply_header: bytes, reply_body: bytes | bytearray, ok: bool, restart: bool) -> list[bytes | bytearray]:
    """The supervisor's reply frame (its buffers) to a request a worker answered: the worker's reply
    (worker.answer's header, parsed as one whole JSON object: spliced in, it is one value, and its
    body) inside the supervisor's own fields, as the value of "reply"."""
    head = b'{"id": %s, "restart": %s, "ok": %s, "reply": %s}' % (
        json.dumps(request["id"]).encode(), b"true" if restart else b"false", b"true" if ok else b"false", reply_header)
    return [protocol.FRAME_PREFIX.pack(len(head), len(reply_body)) + head, reply_body]


class Supervisor:
    def __init__(self) -> None:
        self.child: Child | InProcess | None = None

    def handle(self, header: bytes, body: bytearray) -> list[Any]:
        """One request frame → one reply frame (its buffers). The grader's request is read for its
        id, command, group and time limit only: its arrays are the child's to decode. The child's
        reply goes back inside the supervisor's own fields, as the value of "reply"."""
        request = json.loads(header)
        if request["command"] in protocol.SUPERVISOR_COMMANDS:  # answered here, by the worker's own answer
            return replied(request, *InProcess(None).ask(header, body, float(request["timeout"])), restart=False)
        group = request.get("group")
        if self.child is not None and self.child.group != group:
            self.end_child()
        try:
            if self.child is None:
                self.child = WORKER(group)
        except OSError as error:  # fork or pipe refused, before any student code: the sandbox's failure, not the submission's
            return self.failed(request, {**WorkerFailure("error", f"no worker could be started ({error})").as_data(), "sandbox": True})
        try:
            reply_header, reply_body, ok = self.child.ask(header, body, float(request["timeout"]))
        except WorkerFailure as failure:
            return self.failed(request, failure.as_data())
        except OSError as error:
            return self.failed(request, WorkerFailure("error", f"the worker could not be reached ({error})").as_data())
        restart = not self.child.fit_for_more()
        if restart:
            self.end_child()
        return replied(request, reply_header, reply_body, ok, restart)

    def failed(self, request: dict[str, Any], failure: dict[str, Any]) -> list[Any]:
        """The reply to a request its child could not answer (failure: WorkerFailure.as_data, and
        "sandbox": True when no student code ran); the child is ended."""
        self.end_child()
        return protocol.encode_frame({"id": request["id"], "restart": True, "ok": False, "failure": failure})

    def end_child(self) -> None:
        if self.child is not None:
            self.child.end()
            self.child = None
            clear_shared_folders()
            empty_exchange()


def empty_exchange() -> None:
    """The exchange file emptied (MNIST's ring sizes it anew): the one file of the scratch copy a
    worker may write must not carry what one group's worker wrote to the next. What a worker put in
    its place at the process level is never waited on nor followed: a FIFO (no reader: the open
    fails at once, O_NONBLOCK) or a link is left as it is."""
    with contextlib.suppress(OSError):
        flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        descriptor = os.open(worker.SCRATCH / transport.EXCHANGE, flags)
        try:
            os.ftruncate(descriptor, 0)
        finally:
            os.close(descriptor)


# Where a worker can write outside its scratch copy: nothing it leaves there may reach the next
# group's worker (or, at the uid level, where /tmp is the machine's, the next grading with this uid).
SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def _remove_folder(path):
    """rmtree, after giving back to the owner (this uid) the write and search permissions a worker
    took from its own folders (a folder of 0500 would keep what it holds)."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for top, folders, _ in os.walk(path):  # top-down: each folder opened before it is walked
        for folder in (os.path.join(top, name) for name in folders):
            if not os.path.islink(folder):  # a link is removed, never followed
                with contextlib.suppress(OSError):
                    os.chmod(folder, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def clear_shared_folders() -> None:
    """Remove what this uid owns in SHARED_FOLDERS (in a namespace, everything there is this
    sandbox's): no process of the sandbox but the supervisor runs now. Links are removed, never followed."""
    if os.name != "posix" or not (os.getpid() == 1 or OWN_UID):  # the process level: the grader's own user, its own files
        return
    for folder in SHARED_FOLDERS:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    _remove_folder(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


class LogOutput(io.TextIOBase):
    """The student's prints: into the capped log while it has room, then dropped. In the student's
    own Jupyter a print never fails; here, past the log's file-size limit, a write would raise
    (EFBIG) in whatever op printed, a training step included."""

    encoding, errors = "utf-8", "backslashreplace"

    def __init__(self, descriptor: int) -> None:
        self.descriptor, self.full = descriptor, False
        self.buffer = self  # sys.stdout.buffer.write(b"…") too

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.descriptor

    def write(self, text: str | bytes | bytearray) -> int:  # bytes too: it is its own .buffer
        if not self.full:
            try:
                os.write(self.descriptor, text if isinstance(text, (bytes, bytearray)) else str(text).encode("utf-8", "backslashreplace"))
            except OSError:
                self.full = True
        return len(text)


def main() -> None:
    argument = sys.argv[1]  # the student's output: a capped log file, opened by the launcher (Windows: its path)
    log = int(argument) if argument.isdigit() else os.open(argument, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0))
    if sys.platform == "linux" and _libc is not None:
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        if os.getpid() != 1:  # not the PID namespace's init (process level): adopt what children leave behind
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # PID 1 gets from inside only the signals it handles: none
    if (worker.SCRATCH / "autodiff").is_dir():  # not when the launcher only probes the sandbox
        import autodiff  # noqa: F401  (the course's package and engine, no student module: ready in every child)
    if worker.NOTEBOOK.is_file():
        worker.cells.preload()  # IPython's modules, no shell: ready in every child
    worker.leave_names_to_the_student()  # the sandbox's modules are all imported by now
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # code reading stdin must not eat requests
    os.dup2(log, 1)
    os.dup2(log, 2)  # from here on, the launcher's stderr (the sandbox's own errors) is out of reach
    os.close(null)
    os.close(log)
    sys.stdin = open(os.devnull)  # noqa: SIM115  (the process's stdin from here on: never closed)
    sys.stdout, sys.stderr = LogOutput(1), LogOutput(2)
    for descriptor in (requests, replies):
        protocol.widen_pipe(descriptor)
    clear_shared_folders()  # what an earlier sandbox of this uid left, before any student code runs
    protocol.write_frame(replies, protocol.encode_frame({"ready": True, **worker.hello({})}))
    supervisor = Supervisor()
    while (frame := protocol.read_frame(requests)) is not None:
        protocol.write_frame(replies, supervisor.handle(*frame))

if __name__ == "__main__":
    main()
