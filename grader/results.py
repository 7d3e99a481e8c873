"""A check's result, as data: one CaseResult per case, made once where the check decides (the
checks' plugin, from the CheckFailed a check raised and the Cause it carries), serialised once into
pytest's JSON report (`to_data`), read back by grade.py (`from_data`), and kept in the score report
as each case's `cause`. The report, the terminal, the gradebook, the pages and Gradescope read the
cause, never the text shown to the student: that text is written for a person, not to be parsed.
"""
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Cause:
    """Why a case did not pass. Each kind of cause is a subclass with its own fields; `kind` is its
    name in a report (the report's `cases[].cause.kind`)."""
    kind: ClassVar[str] = ""

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, **{field.name: _data(getattr(self, field.name)) for field in fields(self)}}

    @staticmethod
    def from_data(data: dict[str, Any]) -> "Cause":
        """The cause `to_data` wrote; a field a report written before it existed lacks is its default."""
        cause = CAUSES[data["kind"]]
        return cause(**{field.name: _cause(data[field.name]) for field in fields(cause)
                        if field.name in data or field.default is MISSING})


def _data(value: Any) -> Any:
    return value.to_data() if isinstance(value, Cause) else value


def _cause(value: Any) -> Any:
    """A field's value as a report holds it: a cause within the cause (a dict with its kind) read as one."""
    return Cause.from_data(value) if isinstance(value, dict) and value.get("kind") in CAUSES else value


@dataclass(frozen=True)
class NotStarted(Cause):
    """The op still raises the starter's NotImplementedError; its message is the starter's hint."""
    kind: ClassVar[str] = "not started"
    phase: str   # forward, backward, l2_penalty, …: what was called
    hint: str    # the NotImplementedError's message: what to do next


@dataclass(frozen=True)
class NotImported(Cause):
    """A graded module the check needs did not import: it raised, or its import stopped the worker."""
    kind: ClassVar[str] = "could not be imported"
    module: str  # its file: ops.py
    why: str     # how its import ended, one line: "raised SyntaxError: …", "stopped the worker: …"
    ended: "Raised | WorkerStopped | None" = None  # the same, as data: what the import raised, or how the worker stopped


@dataclass(frozen=True)
class Raised(Cause):
    """Student code raised (anything but the starter's NotImplementedError)."""
    kind: ClassVar[str] = "raised"
    phase: str
    type: str
    message: str
    traceback: str  # the student's own frames, as the worker wrote them ('' when none)


@dataclass(frozen=True)
class Wrong(Cause):
    """An answer came back and is wrong (a value, a shape, a type, an input changed in place, …)."""
    kind: ClassVar[str] = "wrong value"
    diagnosis: str  # the first problem found, as the feedback's first line says it


@dataclass(frozen=True)
class OverBudget(Cause):
    """Too slow: a call over its own time budget (the scale checks), or the group's or the whole
    grading's share of worker time spent before the case could run."""
    kind: ClassVar[str] = "over budget"
    seconds: float | None  # what the call took; None when it was stopped, or never ran
    budget: float | None   # the call's budget in seconds; None for a group's or the grading's share


@dataclass(frozen=True)
class WorkerStopped(Cause):
    """The worker gave no answer: it died, sent what the protocol does not carry, or ran past a
    call's timeout."""
    kind: ClassVar[str] = "worker stopped"
    status: str   # error or timeout
    message: str


@dataclass(frozen=True)
class GraderFailed(Cause):
    """The grader itself failed on the case: no verdict, and so no score for the report."""
    kind: ClassVar[str] = "grader failed"
    type: str
    message: str


@dataclass(frozen=True)
class NotRun(Cause):
    """A check of the rubric without a case: the submission could not be read, or the checks did not run."""
    kind: ClassVar[str] = "not run"


CAUSES = {cause.kind: cause for cause in (NotStarted, NotImported, Raised, Wrong, OverBudget, WorkerStopped, GraderFailed, NotRun)}


@dataclass(frozen=True)
class CaseResult:
    """One case of one check: a graded name (`group`), a kind of check (its `kind` marker), a case id."""
    group: str | None
    kind: str | None
    id: str
    status: str                 # passed, failed (a wrong answer), error (crashed), timeout
    output: str = ""            # what the student reads; '' when passed
    cause: Cause | None = None  # None exactly when passed
    fraction: float = 1.0       # of the check's points this case earns
    seconds: float = 0.0
    verdict: bool = True        # passed, or failed by the check itself; False: the grader failed (no verdict)
    mnist: dict[str, Any] | None = None  # the MNIST check's training: accuracy, curve, epochs, seconds

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "cause": self.cause and self.cause.to_data()}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "CaseResult":
        cause = data.get("cause")
        return cls(**{**{field.name: data[field.name] for field in fields(cls) if field.name in data},
                      "cause": cause and Cause.from_data(cause)})


def cause_of(case: dict[str, Any]) -> Cause | None:
    """The cause of a case of a report (its `cases[]` entry); None when it passed, or when the
    report was written before reports carried causes."""
    data = case.get("cause")
    return Cause.from_data(data) if isinstance(data, dict) and data.get("kind") in CAUSES else None
