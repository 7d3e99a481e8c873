"""The trusted side's handle on the sandbox: requests with a deadline and a group, time budgets.

Each request names its group (a graded name; "MNIST" for the training): the sandbox's supervisor
runs consecutive requests of one group in one worker child and starts a fresh child for the next
group, so a child that dies, hangs, forks or writes on its pipe fails only requests of its own
group (supervisor.py). The supervisor times each request and says why a child failed; the
client keeps its own deadline on the supervisor, and restarts the whole sandbox if the
supervisor itself stops answering. An operation that timed out once is not run again (its later
checks fail at once), so one infinite loop costs seconds, not minutes.

Time budgets: each group may spend a share of worker time, and the grading a total (rubric
`[limits]`); a group whose share is spent fails its remaining checks at once. Every duration is
measured here, on the trusted side (`last_seconds`, `spent`), never read from the worker.

The pipes to the supervisor are waited on with a selector (POSIX). Windows can select sockets
only: there a thread per pipe reads and writes them (PipeThreads) and the client waits on those
threads with the same deadlines, and says the same things when they pass.
"""
import concurrent.futures
import contextlib
import os
import queue
import selectors
import subprocess
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import failures, protocol
from .failures import StudentException, WorkerFailure
from .launch import Limits, start_worker, stop_worker
from .levels import IsolationLevel, isolation_level
from .reaping import paused

if TYPE_CHECKING:
    from .launch import SandboxProcess

SUPERVISOR_GRACE = 15  # seconds the supervisor may take, beyond a request's limit, to end a child and answer
START_TIMEOUT = 60     # seconds for a fresh sandbox to say it is ready (numpy imported)
SELECTABLE_PIPES = os.name == "posix"  # can a selector wait on a pipe? (Windows: sockets only)


class BudgetSpent(WorkerFailure):
    """A group's share of time, or the grading's total, is spent: a timeout of that group only."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class ImportStopped(WorkerFailure):
    """A graded module's import stopped the worker: which module, and the failure it met (as data,
    for the check's cause); said to the student as "importing M.py stopped the worker: …"."""

    def __init__(self, module: str, stopped: WorkerFailure) -> None:
        super().__init__(stopped.status, f"importing {module}.py stopped the worker: {stopped}")
        self.module, self.stopped = module, stopped


class SandboxError(Exception):
    """The sandbox could not start: the grader's problem (its machine, its set-up), not the submission's."""


@dataclass(frozen=True)
class TimeBudget:
    """Seconds of worker time a grading may spend: each group its share, all groups the total
    (the rubric's [limits] say how many)."""
    total_seconds: float
    group_seconds: float
    extra_seconds: dict[str, float] = field(default_factory=dict)  # group → seconds added to its share (MNIST: its training)

    def share(self, group: str) -> float:
        return self.group_seconds + self.extra_seconds.get(group, 0)


class WorkerClient:
    def __init__(self, scratch: str | os.PathLike[str], isolation: str | IsolationLevel = "process", limits: Limits = Limits(),
                 budget: TimeBudget | None = None) -> None:
        self.scratch, self.isolation, self.limits, self.budget = scratch, isolation, limits, budget
        self.level = isolation_level(isolation)
        self.process: SandboxProcess | None = None
        self.timed_out: dict[Hashable, str] = {}  # key → message, for operations that must not be run again
        self.fatal_imports: dict[str, WorkerFailure] = {}  # module → the WorkerFailure its import met, for modules whose import killed the worker
        self.failed_imports: dict[str, dict[str, Any]] = {}  # module → the exception's details, for modules whose import raised
        self.spent: dict[str | None, float] = {}  # group → seconds of worker time its requests took, measured here
        self.last_seconds = 0.0  # how long the last request took, measured here
        self._next_id = 0
        self._group: str | None = None  # the group of the supervisor's current worker child
        self._imported: set[str] = set()  # graded modules imported by the current worker child
        self.fresh_child = True  # will the next request of this group go to a worker child that has run nothing?
        self._threads: PipeThreads | None = None  # the supervisor's PipeThreads, where its pipes cannot be selected
        self.starts = 0
        self.import_seconds = 30  # a graded module's import; a notebook's replay of its cells comes with it (notebook.py)

    # -- requests ---------------------------------------------------------------------------
    def request(self, command: str, timeout: float, key: Hashable | None = None, group: str | None = None,
                **fields: Any) -> dict[str, Any]:
        """Send one request of `group` and return the reply's fields; raise StudentException or WorkerFailure."""
        if key in self.timed_out:
            raise WorkerFailure("timeout", self.timed_out[key])
        cut_short = None
        if command not in protocol.SUPERVISOR_COMMANDS:
            self._enter(group)
            if self.budget is not None:
                timeout, cut_short = self._allowance(self.budget, group, timeout)
        if self.process is None:
            self._start()
        self._next_id += 1
        message = {"id": self._next_id, "command": command, "group": group, "timeout": timeout, **fields}
        started = time.monotonic()
        try:
            # The supervisor's own deadline comes first; past this one, the student is told of theirs.
            self._write(protocol.encode_frame(message), timeout + SUPERVISOR_GRACE, said=timeout)
            reply = self._read_reply(timeout + SUPERVISOR_GRACE, said=timeout)
        except WorkerFailure as failure:  # the supervisor itself failed: a fresh sandbox for the next request
            self.stop()
            raise self._failed(failure, key, cut_short) from None
        except OSError:  # the supervisor closed its end: it is gone or going
            try:
                if self.process is not None:
                    self.process.wait(timeout=5)
            except Exception:
                pass
            exited = self._exited()
            self.stop()
            raise exited from None
        finally:
            self.last_seconds = time.monotonic() - started
            if command not in protocol.SUPERVISOR_COMMANDS:
                self.spent[group] = self.spent.get(group, 0.0) + self.last_seconds
        if reply.get("id") != self._next_id:
            self.stop()
            raise WorkerFailure("error", "the worker's reply did not match the request (was the protocol channel written to?)")
        self.fresh_child = reply.get("restart") is not False
        if self.fresh_child:  # the supervisor ended the child: the next request gets a fresh one
            self._imported = set()
        said = reply.get("failure")  # the supervisor's failure, as data
        if isinstance(said, dict) and said.get("sandbox") is True:  # the supervisor's own words: no student code ran
            raise SandboxError(f"the sandbox could not start a worker ({self.level.name} isolation): {said.get('message')}")
        if isinstance(said, dict):
            raise self._failed(WorkerFailure.from_data(said), key, cut_short)
        body = reply.get("reply") if isinstance(reply.get("reply"), dict) else {}
        if reply.get("ok") is not True:
            raise StudentException(body.get("raised"))
        result = body.get("result")
        return result if isinstance(result, dict) else {}

    def _failed(self, failure, key, cut_short):
        """The failure to raise for a request that failed so: a time-out the budget cut short is
        BudgetSpent; another, of an operation (key), is remembered so that it is not run again."""
        if failure.status == "timeout" and cut_short:
            return BudgetSpent(cut_short)
        if failure.status == "timeout" and key is not None:
            self.timed_out[key] = f"{failure} (an earlier check; not run again)"
        return failure

    def _enter(self, group):
        """A request of another group than the current child's: the supervisor starts a fresh child."""
        if group != self._group:
            self._group, self._imported, self.fresh_child = group, set(), True

    def _allowance(self, budget, group, timeout):
        """The time this request may take within the budgets: (seconds, the message if the budget
        cuts it short); BudgetSpent if nothing is left."""
        share = budget.share(group)
        left_in_group = share - self.spent.get(group, 0.0)
        left_in_total = budget.total_seconds - sum(self.spent.values())
        if left_in_group <= left_in_total:
            left, why = left_in_group, (f"the time budget of {share:g} s for the checks of {group} is spent "
                                        f"(the checks so far took it all): its remaining checks are not run")
        else:
            left, why = left_in_total, (f"the grading's total time budget of {budget.total_seconds:g} s is "
                                        f"spent: the remaining checks are not run")
        if left <= 0:
            raise BudgetSpent(why)
        return (timeout, None) if timeout <= left else (left, why)

    def ensure_imported(self, module: str, timeout: float | None = None, group: str | None = None) -> None:
        """Import a graded module in the worker child of `group` before it is used, so that an
        import that kills the worker is told apart from an operation that does; the former fails
        the module's later checks at once instead of killing one worker per check. An import that
        raised is not tried again either (a memory bomb at import would cost seconds per check)."""
        if module in self.fatal_imports:
            raise ImportStopped(module, self.fatal_imports[module])
        if module in self.failed_imports:
            raise StudentException(self.failed_imports[module])
        self._enter(group)
        if module in self._imported and self.process is not None:
            return
        try:
            self.request("import", timeout or self.import_seconds, key=("import", module), group=group, module=module)
        except StudentException as raised:
            self.failed_imports[module] = raised.details
            raise
        except BudgetSpent:  # the group's time is spent, not the module's fault: other groups still import it
            raise
        except WorkerFailure as failure:
            self.fatal_imports[module] = failure
            raise ImportStopped(module, failure) from None
        self._imported.add(module)

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """The sandbox's processes stopped while the grader times itself (reaping.paused)."""
        return paused(self.process) if self.process is not None else contextlib.nullcontext()

    # -- process ----------------------------------------------------------------------------
    def _start(self):
        try:
            self.process = start_worker(self.scratch, self.limits, self.level)
        except OSError as error:
            raise SandboxError(f"the sandbox could not start a worker: {error}") from None
        self.starts += 1
        self._imported, self.fresh_child = set(), True
        if SELECTABLE_PIPES:
            for stream in (self.process.stdin, self.process.stdout):
                protocol.widen_pipe(stream.fileno())
            os.set_blocking(self.process.stdin.fileno(), False)  # written with a deadline (_write): a stopped supervisor can't hang the grader
        else:
            self._threads = PipeThreads(self.process)
        try:  # the supervisor imports no student code before it is ready: a failure here is the sandbox's
            ready = self._read_reply(START_TIMEOUT)
        except WorkerFailure as failure:
            ready = {"failure": str(failure)}
        if ready.get("ready") is not True:
            why = self._sandbox_error() or ready.get("failure") or "it did not say it was ready"
            self.stop()
            raise SandboxError(f"the sandbox could not start a worker ({self.level.name} isolation): {why}")

    def _write(self, parts, timeout, said=None):
        """A request frame's buffers to the supervisor, before the deadline."""
        if self._threads is not None:
            try:
                return self._threads.write(parts).result(timeout)
            except concurrent.futures.TimeoutError:
                raise failures.no_answer(timeout if said is None else said) from None
        assert self.process is not None  # requests are written to a running supervisor only
        deadline, descriptor = time.monotonic() + timeout, self.process.stdin.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(descriptor, selectors.EVENT_WRITE)

            def write(view):  # what the pipe takes of view now (0: none yet); past the deadline, no answer in time
                if not selector.select(self._remaining(deadline, timeout if said is None else said)):
                    return 0
                try:
                    return os.write(descriptor, view)
                except BlockingIOError:
                    return 0

            protocol.write_frame(write, parts)

    def _read_reply(self, timeout, said=None):
        """The supervisor's next frame, decoded; WorkerFailure if it takes longer than timeout,
        ends, or is not a frame."""
        if self._threads is not None:
            reply = self._threads.read_reply(timeout, timeout if said is None else said)
            return reply if reply is not None else self._channel_ended()
        assert self.process is not None  # replies are read from a running supervisor only
        deadline, descriptor = time.monotonic() + timeout, self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(descriptor, selectors.EVENT_READ)

            def read_into(view):  # what the pipe holds now, once it holds anything; past the deadline, no answer in time
                while not selector.select(self._remaining(deadline, timeout if said is None else said)):
                    pass
                return protocol.read_into(descriptor, view)

            try:
                frame = protocol.read_frame(read_into)
            except protocol.ProtocolError as error:
                raise failures.unreadable(error) from None
        return self._channel_ended() if frame is None else _decoded(frame)

    @staticmethod
    def _remaining(deadline, limit):
        """Seconds left before the deadline; past it, WorkerFailure: no answer within `limit`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise failures.no_answer(limit)
        return remaining

    def _channel_ended(self):
        """The supervisor's end of the reply pipe is closed: WorkerFailure saying why."""
        assert self.process is not None  # its pipe was just read
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # alive, but it closed its end: the caller stops it
            raise failures.channel_closed() from None
        raise self._exited()

    def _exited(self):
        """The supervisor is gone or going: WorkerFailure saying why (its exit status, or what the
        sandbox said when it could not start it)."""
        code = self.process.poll() if self.process else None
        sandbox_error = None if code is None else self._sandbox_error()
        if sandbox_error:
            return WorkerFailure("error", f"the worker exited: the sandbox could not start it ({sandbox_error})")
        if code is not None and code > 128 and self.level.bubblewrap:
            code = 128 - code  # bubblewrap reports a worker killed by signal N as 128 + N
        return failures.exited(code)

    def _sandbox_error(self):
        """What bubblewrap or the supervisor's start-up said: sandbox.log, which student code cannot write."""
        try:
            with open(Path(self.scratch) / "sandbox.log", "rb") as log:
                log.seek(max(0, log.seek(0, 2) - 400))
                last = log.read().decode(errors="replace").strip().splitlines()[-1:]
        except OSError:
            return None
        return last[0] if last else None

    def stop(self) -> None:
        if self.process is None:
            return
        stop_worker(self.process)
        if self._threads is not None:  # the threads close the pipes themselves
            self._threads.stop()
            self._threads = None
        else:
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        self.process = None

    def exchange(self) -> int | None:
        """A descriptor of the running sandbox's exchange file (launch.EXCHANGE: MNIST's gradients),
        the caller's own to close; None if no sandbox runs."""
        return None if self.process is None or self.process.exchange is None else os.dup(self.process.exchange)

    def __enter__(self) -> "WorkerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decoded(frame):
    """The message of a frame (header, body) from the supervisor; WorkerFailure if it is none."""
    try:
        return protocol.decode_frame(*frame)
    except protocol.ProtocolError as error:
        raise failures.unreadable(error) from None


class PipeThreads:
    """The supervisor's pipes where no selector can wait on them (Windows): one thread reads its
    frames into a queue as they come, another writes the requests it is handed, and the client
    waits on either with its deadline. Each thread closes its own pipe when it ends, never another
    thread (a descriptor closed under a blocked read could be reused by the next worker's pipe)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._frames: queue.Queue[tuple[bytes, bytearray] | protocol.ProtocolError | None] = queue.Queue()
        self._requests: queue.Queue[tuple[list[Any], concurrent.futures.Future[None]] | None] = queue.Queue()
        threading.Thread(target=self._read_frames, args=(process.stdout,), name="sandbox-replies", daemon=True).start()
        threading.Thread(target=self._write_requests, args=(process.stdin,), name="sandbox-requests", daemon=True).start()

    def write(self, parts: list[Any]) -> concurrent.futures.Future[None]:
        """Hand over a frame's buffers; a Future, done once they are written (OSError if the pipe is closed)."""
        written: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._requests.put((parts, written))
        return written

    def read_reply(self, timeout: float, limit: float) -> dict[str, Any] | None:
        """The next frame, decoded, or None at the end of the pipe; WorkerFailure after timeout (no
        answer within `limit`) or if it is not a frame."""
        try:
            frame = self._frames.get(timeout=timeout)
        except queue.Empty:
            raise failures.no_answer(limit) from None
        if isinstance(frame, protocol.ProtocolError):
            raise failures.unreadable(frame)
        return None if frame is None else _decoded(frame)

    def stop(self) -> None:
        """The worker is stopped: the writer ends (the reader ends at the pipe's end)."""
        self._requests.put(None)

    def _read_frames(self, stream):
        """Each frame (header, body) into the queue; then None at the pipe's end, after a
        ProtocolError if sizes that are no frame's came first."""
        try:
            while (frame := protocol.read_frame(stream.fileno())) is not None:
                self._frames.put(frame)
        except protocol.ProtocolError as error:
            self._frames.put(error)
        except OSError:  # the pipe broke: its end, as for the client
            pass
        finally:
            stream.close()
            self._frames.put(None)

    def _write_requests(self, stream):
        descriptor = stream.fileno()
        try:
            while (request := self._requests.get()) is not None:
                parts, written = request
                try:
                    protocol.write_frame(descriptor, parts)
                    written.set_result(None)
                except OSError as error:
                    written.set_exception(error)
        finally:
            stream.close()
