"""The trusted side's handle on the worker: requests with a deadline, restarts after a death.

A worker that dies or times out fails only the request it was serving: the next request gets a
fresh worker, as it does after a worker that says it is worn out (student code left threads
running or holds most of its memory). An operation that timed out once is not run again (its
later checks fail at once), so one infinite loop costs seconds, not minutes.
"""
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from . import protocol
from .launch import Limits, start_worker, stop_worker


class WorkerFailure(Exception):
    """The worker could not answer: status is 'error' (it died, or sent garbage) or 'timeout'."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class StudentException(Exception):
    """Student code raised inside the worker; details has phase, type, message, traceback."""

    def __init__(self, details):
        self.details = details if isinstance(details, dict) else {}
        super().__init__(f"{self.details.get('phase', '?')}: {self.details.get('type', '?')}: {self.details.get('message', '')}")


class WorkerClient:
    def __init__(self, scratch, isolation="process", limits=Limits()):
        self.scratch, self.isolation, self.limits = scratch, isolation, limits
        self.process = None
        self.timed_out = {}    # key → message, for operations that must not be run again
        self.fatal_imports = {}  # module → (status, message), for modules whose import killed the worker
        self.failed_imports = {}  # module → the exception's details, for modules whose import raised
        self._next_id = 0
        self._imported = set()   # graded modules imported by the current worker process
        self.starts = 0

    # -- requests ---------------------------------------------------------------------------
    def request(self, command, timeout, key=None, **fields):
        """Send one request and return the reply's fields; raise StudentException or WorkerFailure."""
        if key in self.timed_out:
            raise WorkerFailure("timeout", self.timed_out[key])
        if self.process is None:
            self._start()
        self._next_id += 1
        message = {"id": self._next_id, "command": command, **fields}
        try:
            self.process.stdin.write(protocol.encode(message))
            self.process.stdin.flush()
            reply = self._read_reply(timeout)
        except WorkerFailure as failure:
            self.stop()
            if failure.status == "timeout" and key is not None:
                self.timed_out[key] = f"{failure} (an earlier check; not run again)"
            raise
        except OSError:  # the worker closed its end: it is gone or going
            try:
                self.process.wait(timeout=5)
            except Exception:
                pass
            reason = self._exit_reason()
            self.stop()
            raise WorkerFailure("error", f"the worker exited{reason}") from None
        if reply.get("id") != self._next_id:
            self.stop()
            raise WorkerFailure("error", "the worker's reply did not match the request (was the protocol channel written to?)")
        if reply.get("restart") is True:  # the worker found itself unfit for another check (worker.worn_out)
            self.stop()
        if reply.get("ok") is not True:
            raise StudentException(reply.get("error"))
        return reply

    def ensure_imported(self, module, timeout=30):
        """Import a graded module in this worker before it is used, so that an import that kills
        the worker is told apart from an operation that does; the former fails the module's
        later checks at once instead of killing one worker per check. An import that raised is
        not tried again either (a memory bomb at import would cost seconds per check)."""
        if module in self.fatal_imports:
            raise WorkerFailure(*self.fatal_imports[module])
        if module in self.failed_imports:
            raise StudentException(self.failed_imports[module])
        if module in self._imported and self.process is not None:
            return
        try:
            self.request("import", timeout, key=("import", module), module=module)
        except StudentException as raised:
            self.failed_imports[module] = raised.details
            raise
        except WorkerFailure as failure:
            self.fatal_imports[module] = (failure.status, f"importing {module}.py stopped the worker: {failure}")
            raise WorkerFailure(*self.fatal_imports[module]) from None
        self._imported.add(module)

    # -- process ----------------------------------------------------------------------------
    def _start(self):
        self.process = start_worker(self.scratch, self.limits, self.isolation)
        self.starts += 1
        self._imported = set()
        self._buffer = b""

    def _read_reply(self, timeout):
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerFailure("timeout", f"no answer within the time limit of {timeout:g} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(out.fileno(), 1 << 20)
                if not chunk:
                    try:
                        self.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:  # alive, but it closed its end: the caller stops it
                        raise WorkerFailure("error", "the worker closed the protocol channel "
                                                     "(did the code close file descriptors?)") from None
                    raise WorkerFailure("error", f"the worker exited{self._exit_reason()}")
                self._buffer += chunk
                if len(self._buffer) > protocol.MAX_MESSAGE_BYTES:
                    raise WorkerFailure("error", f"the worker sent a message over {protocol.MAX_MESSAGE_BYTES >> 20} MB")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return protocol.decode(line)
        except protocol.ProtocolError as error:
            raise WorkerFailure("error", f"the worker sent an unreadable message ({error})") from None

    def _exit_reason(self):
        code = self.process.poll() if self.process else None
        if code is None:
            return ""
        sandbox_error = self._sandbox_error()
        if sandbox_error:
            return f": the sandbox could not start it ({sandbox_error})"
        if code > 128 and self.isolation != "process":
            code = 128 - code  # bubblewrap reports a worker killed by signal N as 128 + N
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            hint = {"SIGXCPU": ": CPU time limit", "SIGKILL": ": killed (memory or time limit?)",
                    "SIGXFSZ": ": file size limit", "SIGSEGV": ": segmentation fault"}.get(name, "")
            return f" on signal {name}{hint}"
        return f" with status {code} (did the code call sys.exit or os._exit?)"

    def _sandbox_error(self):
        """bubblewrap's own complaint, if the log ends with one."""
        try:
            with open(Path(self.scratch) / "worker.log", "rb") as log:
                log.seek(max(0, log.seek(0, 2) - 400))
                last = log.read().decode(errors="replace").strip().splitlines()[-1:]
        except OSError:
            return None
        return last[0] if last and last[0].startswith("bwrap:") else None

    def stop(self):
        if self.process is None:
            return
        stop_worker(self.process)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
