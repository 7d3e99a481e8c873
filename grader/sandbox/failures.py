"""How a request to the sandbox fails, in the words the student reads: one vocabulary for the
grader's client, the sandbox's supervisor and its worker.

Two ways, one exception each. WorkerFailure: the worker could not answer (it died, overstayed,
closed its channel, sent what is no reply), status "error" or "timeout"; the supervisor sends it
as data (as_data) and the client raises it again from what it reads (from_data), untrusted.
StudentException: student code raised, and the worker answered with its details (phase, type,
message, traceback).

Shipped to the sandbox beside the worker (launch.SANDBOX_FILES), which imports it as `failures`;
the grader imports it as `grader.sandbox.failures`: standard library only.
"""
import signal

STATUSES = ("error", "timeout")
CHANNEL_CLOSED = "the worker closed the protocol channel (did the code close file descriptors?)"
SIGNAL_HINTS = {"SIGXCPU": ": CPU time limit", "SIGKILL": ": killed (memory or time limit?)",
                "SIGXFSZ": ": file size limit", "SIGSEGV": ": segmentation fault"}


class WorkerFailure(Exception):
    """The worker could not answer: status 'error' (it died, or sent garbage) or 'timeout', and
    what to tell the student."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status

    def as_data(self) -> dict[str, str]:
        """What the supervisor's reply says of it."""
        return {"status": self.status, "message": str(self)}

    @staticmethod
    def from_data(data: dict) -> "WorkerFailure":
        """The failure a reply says (as_data), read as untrusted: an unknown status is an error."""
        status = data.get("status")
        return WorkerFailure(str(status) if status in STATUSES else "error", str(data.get("message")))


def no_answer(seconds: float) -> WorkerFailure:
    """The request's time limit passed."""
    return WorkerFailure("timeout", f"no answer within the time limit of {seconds:g} s")


def unreadable(why: object) -> WorkerFailure:
    """What came back is no frame, or no reply."""
    return WorkerFailure("error", f"the worker sent an unreadable message ({why})")


def channel_closed() -> WorkerFailure:
    return WorkerFailure("error", CHANNEL_CLOSED)


def exited(code: int | None) -> WorkerFailure:
    """The worker ended with this exit code (negative: the signal that ended it; None: not known)."""
    if code is None:
        return WorkerFailure("error", "the worker exited")
    if code >= 0:
        return WorkerFailure("error", f"the worker exited with status {code} (did the code call sys.exit or os._exit?)")
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    return WorkerFailure("error", f"the worker exited on signal {name}{SIGNAL_HINTS.get(name, '')}")


class StudentException(Exception):
    """Student code raised inside the worker; details has phase, type, message, traceback (what
    the worker made of the exception: worker.student_exception)."""

    def __init__(self, details: object) -> None:
        self.details = details if isinstance(details, dict) else {}
        super().__init__(f"{self.details.get('phase', '?')}: {self.details.get('type', '?')}: {self.details.get('message', '')}")
