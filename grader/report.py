"""The score report: built from the checks' results and the rubric, written by this module only.

Formats: `native` (ours, described by report.schema.json) and `gradescope` (their results.json).
Files are written atomically: a temporary file in the same folder, then a rename, so a reader
(or a rerun after a crash) never sees half a report.
"""
import json
import os
import platform
import re
import tempfile
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import jsonschema
import numpy as np

from . import VERSION
from .results import CaseResult, Cause, NotImported, NotRun, NotStarted, cause_of
from .rubric import Rubric
from .sandbox.contract import GRADED, MLP3_OPS, WHOLE_MODEL

if TYPE_CHECKING:
    from .submission import Submission

SCHEMA = json.loads((Path(__file__).resolve().parent / "report.schema.json").read_text())
# The groups a report may name: the contract's, declared once (contract.GRADED), and MNIST's.
SCHEMA["properties"]["tests"]["items"]["properties"]["group"]["enum"] = [*GRADED, WHOLE_MODEL]
STATUS_ORDER = ("timeout", "error", "failed", "passed")  # a check takes its worst case's status
TEXT_LIMIT = 20_000   # characters of any one string in a report
CASE_LIMIT = 4_000    # characters of one case's feedback, before a check's cases are joined
# Control characters (terminal escape codes start with one), Unicode's line separators, and the
# bidirectional overrides that reorder what a reader sees; newline and tab stay: feedback has lines.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def caused_by(cause: type[Cause], cases: Iterable[dict[str, Any]]) -> bool:
    """Did every one of `cases` (a report's) fail for a cause of that type (results.py)?"""
    return all(isinstance(cause_of(case), cause) for case in cases)


@dataclass(frozen=True)
class State:
    """One word of the vocabulary for where a student stands on a group of checks (a graded name)
    or on one check: when it holds, given the cases that did not pass and the checks; its color on
    a page; what a page shows of a group in it (`checks`: a box per failing check; `once`: one box
    for the groups that fail the same way; `line`: one quiet line; '': nothing)."""
    holds: Callable[[list[dict[str, Any]], list[dict[str, Any]]], bool]  # (the failing cases, the checks) → does it hold
    color: str
    shown: str


# A student's state, the one vocabulary of the terminal table, the report's `groups`, the pages,
# the gradebook's "needs a human look" and Gradescope: the first state, in this order, that holds.
STATES = {
    "passed": State(lambda failing, checks: not failing, "#2e7d32", ""),
    "could not be imported": State(lambda failing, checks: caused_by(NotImported, failing), "#ef6c00", "once"),
    "not started": State(lambda failing, checks: all(t["status"] != "passed" for t in checks)
                         and caused_by(NotStarted, failing), "#6e6e73", "line"),
    "failed": State(lambda failing, checks: True, "#c62828", "checks"),
}


def state_of(checks: list[dict[str, Any]]) -> str:
    """The state of a group's checks (or of one check, as a list of one)."""
    failing = [case for check in checks for case in check["cases"] if case["status"] != "passed"]
    return next(name for name, state in STATES.items() if state.holds(failing, checks))


def state_line(checks: list[dict[str, Any]], state: str) -> str:
    """The group's feedback in one line: the starter's hint while it is not started (what to do
    next), else the first failing check's kind, case and first line."""
    failing = [(check, case) for check in checks for case in check["cases"] if case["status"] != "passed"]
    if not failing:
        return ""
    if state == "not started":  # every failing case's cause holds the hint
        return cast(NotStarted, cause_of(failing[0][1])).hint.partition("\n")[0]
    check, case = failing[0]
    return f"{check['kind']} [{case['id']}]: {case['output'].splitlines()[0] if case['output'] else ''}"


def clean_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """Text that may hold what student code said (exception types and messages, tracebacks, printed
    output, notes), made safe for a report, a terminal and a page: lone surrogates replaced (they
    cannot be written as UTF-8), control characters shown as escapes, the length bounded."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters cut)"


def cleaned(value: Any) -> Any:
    """A report with clean_text applied to every string in it, keys included: the one place
    where what came from student code is made safe, on its way into a report."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): cleaned(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [cleaned(item) for item in value]
    return value


def build_report(submission: "Submission", rubric: Rubric, case_results: list[CaseResult], isolation: str, seconds: float,
                 messages: Iterable[str] = ()) -> dict[str, Any]:
    """case_results: the checks' cases (grade.case_result). The report is `graded`, with a score, only
    if every check of the rubric has cases and each case a verdict (`verdict`: it passed, or the
    check itself failed it); otherwise, the submission being readable, the grading failed: status
    `error`, score None."""
    by_check: dict[tuple[str | None, str | None], list[CaseResult]] = {}
    for case in case_results:
        by_check.setdefault((case.group, case.kind), []).append(case)
    tests: list[dict[str, Any]]
    tests, mnist, unjudged = [], None, []
    for (group, kind), points in rubric.points.items():
        cases = [replace(c, output=clean_text(str(c.output), CASE_LIMIT)) for c in by_check.pop((group, kind), [])]
        if not cases:  # the submission could not be read, or the checks did not run
            cases = [CaseResult(group, kind, "-", "error", "not run", NotRun(), fraction=0.0, verdict=False)]
        earned = points * sum(c.fraction for c in cases) / len(cases)
        status = min((c.status for c in cases), key=STATUS_ORDER.index)
        output = merged_feedback(cases)
        mnist = next((c.mnist for c in cases if c.mnist), mnist)
        if not all(c.verdict for c in cases):
            unjudged.append(f"{group} · {kind}")
        tests.append({"name": f"{group} · {kind}", "group": group, "kind": kind, "score": round(earned, 2),
                      "max_score": points, "status": status, "output": output, "visibility": rubric.visibility_of(kind),
                      "duration": round(sum(c.seconds for c in cases), 3),
                      "cases": [{"id": c.id, "status": c.status, "output": c.output, "cause": cause_data(c.cause)} for c in cases]})
    mnist_lead(tests)
    messages = list(messages) + [f"a check outside the rubric was ignored: {group} · {kind}" for group, kind in by_check]
    if mnist and mnist.get("accuracy") is not None:
        messages.append(f"MNIST: {mnist['accuracy']:.2f}% test accuracy after {mnist['epochs']} epochs "
                        f"({mnist['training_seconds']:.1f} s of training"
                        + (f"; {mnist['verified_steps']} steps checked against MLP3's true gradients)" if "verified_steps" in mnist else ")"))
    status = "unreadable" if submission.error else "error" if unjudged else "graded"
    if status == "error":
        messages.append(f"not graded: {len(unjudged)} of {len(tests)} checks have no verdict (the grader failed on them, "
                        f"or they did not run): {', '.join(unjudged[:5])}{', …' if len(unjudged) > 5 else ''}")
    return checked(cleaned({
        "status": status,
        "score": None if status == "error" else round(sum(t["score"] for t in tests), 2),
        "max_score": rubric.max_score,
        "groups": [{"group": group, "state": summary.state, "score": summary.score, "max_score": summary.max_score,
                    "feedback": summary.feedback} for group, summary in group_summaries(tests).items()],
        "tests": tests,
        "submission": submission.to_dict(),
        "mnist": mnist,
        "messages": messages,
        "grader": {"version": VERSION, "rubric": rubric.path, "rubric_sha256": rubric.sha256, "isolation": isolation,
                   "python": platform.python_version(), "numpy": np.__version__},
        "duration_seconds": round(seconds, 2),
    }))


def cause_data(cause: Cause | None) -> dict[str, Any] | None:
    """A case's cause as a report holds it, each text in it (and in a cause within it) bounded as
    the case's output is."""
    return None if cause is None else bounded(cause.to_data())


def bounded(data: dict[str, Any]) -> dict[str, Any]:
    return {key: clean_text(value, CASE_LIMIT) if isinstance(value, str) else bounded(value) if isinstance(value, dict) else value
            for key, value in data.items()}


VISIBILITY_ORDER = ("visible", "after_due_date", "after_published", "hidden")  # when a check is shown, soonest first


def mnist_lead(tests: list[dict[str, Any]]) -> None:
    """A failed MNIST check names the ops MLP3 trains through whose own checks failed, shown no
    later than it is (a hidden check's verdict is not told): the training only says that some
    gradient is wrong (or nan, or inf), their checks say which."""
    for test in tests:
        if test["group"] != WHOLE_MODEL or state_of([test]) != "failed":  # not started, not imported: nothing to add
            continue
        shown_by = VISIBILITY_ORDER.index(test["visibility"])
        failed = [group for group in MLP3_OPS if any(t["group"] == group and t["status"] != "passed"
                                                      and VISIBILITY_ORDER.index(t["visibility"]) <= shown_by for t in tests)]
        if failed:
            test["output"] += f"\nthe checks of {', '.join(failed)} (which MLP3 trains through) failed too: start there"


# What changes from one case of a check to the next without changing the diagnosis: numbers,
# shapes and the one-letter names of the op's inputs. Masked, they leave the diagnosis itself.
CASE_SPECIFICS = re.compile(r"\((?:\s*-?\d+\s*,?)*\)|-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b|\bnan\b|\binf\b|\b[a-z]\b")


def diagnosis_key(problem: str) -> str:
    return CASE_SPECIFICS.sub("#", problem.splitlines()[0])


def merged_feedback(cases: list[CaseResult]) -> str:
    """A check's feedback saying each diagnosis once, with the cases it applies to: identical
    diagnoses across cases (differing only in shapes, values or which input) are one paragraph,
    shown with the first case's details. A problem is a line of a case's feedback, with the
    indented lines (a traceback) under it."""
    failing = [c for c in cases if c.status != "passed"]
    if not failing:
        return "passed" if len(cases) == 1 else f"all {len(cases)} cases passed"
    groups: dict[str, tuple[list[str], list[str]]] = {}  # diagnosis → (case ids, its problems)
    for case in failing:
        for problem in re.split(r"\n(?=\S)", case.output.strip()) or [""]:
            ids, texts = groups.setdefault(diagnosis_key(problem), ([], []))
            if case.id not in ids:
                ids.append(case.id)
            texts.append(problem)
    if len(cases) == 1:
        return "\n".join(texts[0] for _, texts in groups.values())
    lines = [] if len(groups) == 1 and len(failing) == len(cases) else [f"{len(cases) - len(failing)} of {len(cases)} cases passed"]
    for ids, texts in groups.values():
        where = f"all {len(cases)} cases" if len(ids) == len(cases) else f"{len(ids)} of {len(cases)} cases ({', '.join(ids)})"
        detail = f" [details for {ids[0]}]" if len(set(texts)) > 1 else ""
        lines.append(f"{where}{detail}: {texts[0]}")
    return "\n".join(lines)


def validate(report: dict[str, Any]) -> None:
    jsonschema.validate(report, SCHEMA)


def checked(report: dict[str, Any]) -> dict[str, Any]:
    """The report, flagged if it does not match its schema: it is written all the same (a lost
    report is worse than an odd one), with the failure as a message, the status `error` and no
    score, which puts it in front of a human."""
    try:
        validate(report)
    except jsonschema.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        report["messages"].append(f"grader: this report does not match its schema at {where} "
                                  f"({error.message[:200]}); a human should look at it")
        report["status"], report["score"] = "error", None
    return report


def is_scored(report: dict[str, Any]) -> bool:
    """Does the report carry a score: a grading whose checks all ran (`graded`), or a submission
    the grader could not read (`unreadable`: 0)? An `error` report has none, whatever it holds."""
    return report.get("status") in ("graded", "unreadable") and isinstance(report.get("score"), (int, float))


def to_gradescope(report: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's results.json. Gradescope hides the total while any test is hidden, so the
    top-level output says the visible points and how many more come after the due date; texts are
    Markdown; each test is tagged with its group and kind; extra_data keeps what staff need to
    trust the score: the MNIST curve, the rubric's hash and the isolation level. A grading that
    failed is said as run_autograder says it: not graded, and why in a test only staff see."""
    if not is_scored(report):
        return failed_for_gradescope(report)
    group_numbers: dict[str, int]
    checks_in_group: dict[int, int]
    group_numbers, checks_in_group, tests = {}, {}, []
    for test in report["tests"]:
        group = group_numbers.setdefault(test["group"], len(group_numbers) + 1)
        checks_in_group[group] = checks_in_group.get(group, 0) + 1
        tests.append({"score": test["score"], "max_score": test["max_score"],
                      "status": "passed" if test["status"] == "passed" else "failed",
                      "name": test["name"], "number": f"{group}.{checks_in_group[group]}",
                      "output": _markdown_output(test), "output_format": "md",
                      "tags": [test["group"], test["kind"]], "visibility": test["visibility"]})
    visible, later = visible_points(report["tests"])
    summary = f"**{format_points(visible[0])} / {format_points(visible[1])} visible points**" + (
        f"; {format_points(later)} more points are checked after the due date." if later else ".")
    states: dict[str, list[str]] = {}
    for name, group_summary in group_summaries(report["tests"]).items():
        states.setdefault(group_summary.state, []).append(name)
    # the groups a page shows in one line or one box (STATES' `shown`), named here, where their checks are not
    summary += "".join(f"\n\n{state}: {', '.join(groups)}" for state, groups in states.items() if STATES[state].shown in ("line", "once"))
    mnist = report.get("mnist") or {}
    return {"score": report["score"], "execution_time": report["duration_seconds"],
            "output": "\n\n".join([summary] + [_markdown_text("\n".join(report["messages"] + report["submission"]["notes"]))]
                                    * bool(report["messages"] + report["submission"]["notes"])),
            "output_format": "md", "test_output_format": "md", "tests": tests,
            "visibility": "visible", "stdout_visibility": "hidden",
            "extra_data": {"isolation": report["grader"]["isolation"], "rubric_sha256": report["grader"]["rubric_sha256"],
                           "grader_version": report["grader"]["version"], "mnist_curve": mnist.get("accuracy_per_epoch"),
                           "mnist_accuracy": mnist.get("accuracy")}}


# run_autograder's words when the grader fails: a grading that failed is one, whoever noticed it.
GRADER_FAILED = ("The autograder failed; course staff have been told. Your submission was not graded: "
                 "this is not about your code.")


def failed_for_gradescope(report: dict[str, Any]) -> dict[str, Any]:
    """results.json for a grading that failed: Gradescope has no empty score, so 0, with the
    message of run_autograder's own failure and `grader_failed` for staff and scripts."""
    why = "\n".join(report["messages"]) or f"report status {report['status']}"
    return {"score": 0, "execution_time": report["duration_seconds"], "output": GRADER_FAILED, "output_format": "md",
            "visibility": "visible", "stdout_visibility": "hidden",
            "tests": [{"name": "autograder failure (for course staff)", "number": "0", "score": 0, "max_score": 0,
                       "status": "failed", "visibility": "hidden", "output": _markdown_text(why), "output_format": "md"}],
            "extra_data": {"grader_failed": True, "report_status": report["status"], "isolation": report["grader"]["isolation"],
                           "rubric_sha256": report["grader"]["rubric_sha256"], "grader_version": report["grader"]["version"]}}


def _markdown_text(text):
    """Text that may hold what student code said, as Markdown that shows it as it is and nothing
    else: a fenced code block (no link, image or HTML is live in one), fenced with more backticks
    than the text holds in a row, so the text cannot close it."""
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


def _markdown_output(test):
    """A check's output under its state (STATES); not started, only the starter's hint."""
    state = state_of([test])
    if state == "passed":
        return test["output"]  # the grader's own words ("all 8 cases passed")
    shown = state_line([test], state) if state == "not started" else test["output"]
    return f"**{state}**\n\n{_markdown_text(shown)}"


def visible_points(tests: list[dict[str, Any]]) -> tuple[tuple[float, float], float]:
    """((score, max) of the visible checks, the max of the others): what a student sees before the due date."""
    shown = [t for t in tests if t["visibility"] == "visible"]
    later = sum(t["max_score"] for t in tests if t["visibility"] != "visible")
    return (round(sum(t["score"] for t in shown), 2), sum(t["max_score"] for t in shown)), later


def write_report(report: dict[str, Any], path: str | os.PathLike[str], format: str = "native") -> None:
    """Written whatever the content: cleaned again (a report may come from elsewhere than
    build_report), and anything that is not JSON written as its text."""
    content = cleaned(to_gradescope(report) if format == "gradescope" else report)
    write_atomically(Path(path), json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o644)  # mkstemp's 0600 would hide reports from the course's other staff
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class GroupSummary:
    score: float
    max_score: float
    state: str      # one of STATES
    feedback: str   # state_line: what the terminal's table and the report's `groups` say of it
    checks: list[dict[str, Any]]


def group_summaries(tests: list[dict[str, Any]]) -> dict[str, GroupSummary]:
    """{group: GroupSummary}, in the tests' order: the one place the report's `groups`, the
    terminal, the gradebook, the pages and Gradescope sum a group and name its state."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for test in tests:
        groups.setdefault(test["group"], []).append(test)
    summaries = {}
    for group, checks in groups.items():
        state = state_of(checks)
        summaries[group] = GroupSummary(round(sum(t["score"] for t in checks), 2), sum(t["max_score"] for t in checks),
                                        state, state_line(checks, state), checks)
    return summaries


TABLE_WIDTH = 100


def format_table(report: dict[str, Any], unshipped_points: float = 0) -> str:
    """The terminal summary, in lines of at most TABLE_WIDTH columns: one line per group with its
    points, its state (STATES) and its feedback line (the starter's hint while not started),
    wrapped; then the total and the visible points.
    unshipped_points: the points of checks this rubric does not carry (a handout's hidden ones).
    A grading that failed shows no points at all: it has none to show."""
    scored = is_scored(report)
    groups = group_summaries(report["tests"])
    width = max([len("status"), *(len(summary.state) for summary in groups.values())])  # as wide as its states
    head = f"{'group':<16} {'points':>13}  {'status':<{width}} "
    lines = [head + "feedback"]
    for group, summary in groups.items():
        wrapped = textwrap.wrap(summary.feedback, TABLE_WIDTH - len(head), break_on_hyphens=False) or [""]
        points = f"{format_points(summary.score):>6} / {format_points(summary.max_score):<4}" if scored else f"{'':>6}   {'':<4}"
        lines.append(f"{group:<16} {points}  {summary.state:<{width}} {wrapped[0]}".rstrip())
        lines += [" " * len(head) + more for more in wrapped[1:]]
    if not scored:
        return "\n".join(lines + [f"{'total':<16} NOT GRADED: the grading failed (report status {report['status']}), "
                                  f"so there is no score; see the messages above"])
    lines.append(f"{'total':<16} {format_points(report['score']):>6} / {format_points(report['max_score'])}")
    (score, most), later = visible_points(report["tests"])
    later += unshipped_points
    lines.append(f"\n{format_points(score)}/{format_points(most)} visible points"
                 + (f"; {format_points(later)} more points are checked after the due date" if later else ""))
    return "\n".join(lines)


def format_points(value: float) -> str:
    """Points as the gradebook writes them too: 96, 96.5, 98.67 (scores are rounded to 2 places)."""
    return f"{round(float(value), 2):g}"
