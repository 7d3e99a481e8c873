"""Results as data: each case's cause is made where the check decides it (checking.ask, the checks,
their plugin), carried through pytest's JSON report and into the score report, and read there by
the states, the gradebook and the pages, never recovered from the text a student reads."""
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from grader.classroom.gradebook import row_problems, summarize
from grader.classroom.roster import Roster
from grader.grade import run_checks
from grader.report import CASE_LIMIT, build_report, cause_data, state_of
from grader.results import CAUSES, CaseResult, GraderFailed, NotImported, NotRun, NotStarted, OverBudget, Raised, WorkerStopped, Wrong, cause_of
from grader.sandbox.launch import scratch_parent
from grader.submission import Submission, load_submission, prepare_scratch
from tests.support.grading import FAST_RUBRIC, reference_copy
from tests.support.paths import ROOT

SUBMISSION = Submission(path="x", form="folder", sha256="0" * 64)


def checked(tmp_path, folder, select):
    """The CaseResults of the checks `select` picks, run on the submission in `folder`."""
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(folder), scratch)
        cases, problem, _ = run_checks(Path(scratch), FAST_RUBRIC, "process", tmp_path / "results.json", select=select)
    assert problem is None and cases
    return cases


@pytest.mark.slow
def test_the_starters_stub_is_a_cause_not_started_with_its_hint_under_the_search_too(tmp_path):
    cases = [case for case in checked(tmp_path, ROOT / "starter", "Mul and (test_forward or test_search)") if case.group == "Mul"]
    assert {case.kind for case in cases} == {"forward", "search"} and "Mul" in {case.id for case in cases if case.kind == "search"}
    assert all(isinstance(case.cause, NotStarted) and case.cause.hint.startswith("Mul.forward: compute y = a * b")
               for case in cases), cases


@pytest.mark.slow
@pytest.mark.parametrize("head, why, ended", [
    ("def broken(:\n    pass", "raised SyntaxError: ", lambda e: e.type == "SyntaxError" and e.phase == "importing ops.py"),
    ("import os\nos._exit(0)", "stopped the worker: the worker exited with status 0",
     lambda e: e == WorkerStopped("error", "the worker exited with status 0 (did the code call sys.exit or os._exit?)"))])
def test_a_module_that_does_not_import_is_named_by_the_cause(tmp_path, head, why, ended):
    folder = reference_copy(tmp_path / "submission", {"ops": [("import numpy as np\n", f"import numpy as np\n{head}\n")]})
    cases = [case for case in checked(tmp_path, folder, "test_forward and Mul") if case.group == "Mul"]
    assert all(isinstance(case.cause, NotImported) and case.cause.module == "ops.py" and case.cause.why.startswith(why)
               and ended(case.cause.ended) for case in cases), cases


@pytest.mark.slow
def test_a_case_id_is_the_cases_own_not_pytests_ascii_escaped_one(tmp_path):
    """The report once said `logits \\u2212 1000`: the id was cut back out of pytest's node id."""
    cases = checked(tmp_path, reference_copy(tmp_path / "submission"), "test_stability and Softmax")
    assert "logits − 1000" in {case.id for case in cases}
    assert all(case.status == "passed" and case.cause is None and case.kind == "stability" for case in cases)


def every_group_failing(output, cause):
    return build_report(SUBMISSION, FAST_RUBRIC, [CaseResult(group, kind, "c", "failed", output, cause, fraction=0.0)
                                                  for group, kind in FAST_RUBRIC.points], "process", 1.0)


def test_feedback_that_reads_like_a_stub_or_an_import_failure_is_taken_for_neither():
    """Student code's own words are no cause: the state was once found by searching the feedback."""
    stub = every_group_failing("Mul.forward raised ValueError: is not implemented yet (NotImplementedError: said the student)",
                               Raised("forward", "ValueError", "is not implemented yet (NotImplementedError: said the student)", ""))
    imports = every_group_failing("importing ops.py raised SyntaxError: invalid syntax", Wrong("importing ops.py raised SyntaxError"))
    for report in (stub, imports):
        assert {group["state"] for group in report["groups"]} == {"failed"}
        assert "could not be imported" not in row_problems(report)
    assert summarize({"s": stub, "i": imports}, Roster(), FAST_RUBRIC)["modules_not_imported"] == []


CAUSE_OF_EACH_KIND = [NotStarted("forward", "Mul.forward: compute y = a * b"),
                      NotImported("ops.py", "raised SyntaxError: x", Raised("importing ops.py", "SyntaxError", "x", '  File "ops.py", line 1')),
                      NotImported("losses.py", "stopped the worker: it exited", WorkerStopped("error", "it exited")),
                      Raised("backward", "ValueError", "bad", '  File "ops.py", line 9, in backward'), Wrong("values differ"),
                      OverBudget(3.5, 1.25), OverBudget(None, None), WorkerStopped("timeout", "the call took over 10 s"),
                      GraderFailed("RuntimeError", "a bug in a check"), NotRun()]


def test_every_kind_of_cause_goes_through_pytests_report_and_the_score_report_as_data():
    assert {type(cause) for cause in CAUSE_OF_EACH_KIND} == set(CAUSES.values())
    checks = list(FAST_RUBRIC.points)
    results = [CaseResult(*checks[index], "c", "failed", "text", cause, fraction=0.0)
               for index, cause in enumerate(CAUSE_OF_EACH_KIND)]
    assert [CaseResult.from_data(result.to_data()) for result in results] == results  # plugin → grade.py
    report = build_report(SUBMISSION, FAST_RUBRIC, results, "process", 1.0)
    assert not any("schema" in message for message in report["messages"])
    causes = {(test["group"], test["kind"]): cause_of(test["cases"][0]) for test in report["tests"]}
    assert [causes[check] for check in checks[:len(results)]] == CAUSE_OF_EACH_KIND
    assert state_of([report["tests"][0]]) == "not started" and state_of([report["tests"][1]]) == "could not be imported"


def test_an_import_that_stopped_the_worker_is_a_cause_with_its_failure_as_data():
    """The client hands the module and the failure it met to the check; nothing is cut back out of the words."""
    from grader.checks.checking import CheckFailed, ask
    from grader.sandbox.client import ImportStopped
    from grader.sandbox.failures import WorkerFailure

    class Student:
        def ensure_imported(self, module, group=None):
            raise ImportStopped(module, WorkerFailure("error", "the worker exited with status 0\n(its log: importing ops.py)"))

    with pytest.raises(CheckFailed) as failed:
        ask(Student(), "call", ["ops"], key=("Mul", "forward", ""))
    assert str(failed.value).startswith("importing ops.py stopped the worker: the worker exited with status 0")
    assert failed.value.cause == NotImported("ops.py", "stopped the worker: the worker exited with status 0",
                                             WorkerStopped("error", "the worker exited with status 0\n(its log: importing ops.py)"))


def test_an_import_that_raised_is_a_cause_with_the_exception_as_the_worker_reported_it():
    from grader.checks.checking import CheckFailed, ask
    from grader.sandbox.failures import StudentException

    details = {"phase": "importing ops.py", "type": "SyntaxError", "message": "invalid syntax (ops.py, line 3)",
               "traceback": '  File "ops.py", line 3'}

    class Student:
        def ensure_imported(self, module, group=None):
            raise StudentException(details)

    with pytest.raises(CheckFailed) as failed:
        ask(Student(), "call", ["ops"], key=("Mul", "forward", ""))
    assert failed.value.cause == NotImported("ops.py", "raised SyntaxError: invalid syntax (ops.py, line 3)",
                                             Raised("importing ops.py", "SyntaxError", "invalid syntax (ops.py, line 3)",
                                                    '  File "ops.py", line 3'))


def test_reports_written_before_causes_are_read_by_every_classroom_tool(tmp_path):
    """A report without a case's `cause`, or with a cause without the fields added since: its cause
    is unknown (None), and the gradebook, the pages, the diff, the terminal and Gradescope read it."""
    import json

    from grader.classroom.diff import compare
    from grader.classroom.gradebook import write_class_files
    from grader.classroom.pages import class_index, student_page
    from grader.report import format_table, to_gradescope

    results = [CaseResult(g, k, "c", "failed", "importing ops.py raised SyntaxError: x", NotImported("ops.py", "raised SyntaxError: x"),
                          fraction=0.0) if k == "forward" else CaseResult(g, k, "c", "passed") for g, k in FAST_RUBRIC.points]
    new = build_report(SUBMISSION, FAST_RUBRIC, results, "process", 1.0)
    old = json.loads(json.dumps(new))
    for test in old["tests"]:
        for case in test["cases"]:
            del case["cause"]
    older_cause = json.loads(json.dumps(new))
    for test in older_cause["tests"]:
        for case in test["cases"]:
            if case["cause"]:
                del case["cause"]["ended"]
    assert {cause_of(case) for test in old["tests"] for case in test["cases"]} == {None}
    assert {cause_of(case) for test in older_cause["tests"] for case in test["cases"]} - {None} == {NotImported("ops.py", "raised SyntaxError: x")}
    reports = {"old": old, "older": older_cause, "new": new}
    summary = write_class_files(tmp_path, reports, Roster(), FAST_RUBRIC)
    assert summary["modules_not_imported"] == [{"module": "ops.py", "students": 2}]  # the old report's cause is unknown
    assert "could not be imported" not in row_problems(old) and "Mul" in student_page(old, reveal="all")
    assert "old" in class_index(reports, summary, {s: f"{s}.html" for s in reports})
    assert compare({"s": old}, {"s": new}) == [] and format_table(old) and to_gradescope(old)["tests"]


HOSTILE = "\x1b[2J\ud800" + "x" * 50_000  # a terminal escape, a lone surrogate, far past any limit


def hostile_cause(cause_type, depth=0):
    """The cause of this kind with every text field what a hostile worker could make it say, and
    a cause within it wherever one may stand."""
    values = {}
    for field in fields(cause_type):
        if field.name == "ended":
            values[field.name] = hostile_cause(Raised if depth % 2 == 0 else WorkerStopped, depth + 1) if depth < 2 else None
        elif field.type in (str, "str"):
            values[field.name] = HOSTILE
        else:
            values[field.name] = None
    return cause_type(**values)


def strings_in(data):
    if isinstance(data, dict):
        for value in data.values():
            yield from strings_in(value)
    elif isinstance(data, str):
        yield data


@pytest.mark.parametrize("cause_type", CAUSES.values(), ids=CAUSES)
def test_every_text_of_every_cause_is_bounded_and_safe_in_the_report(cause_type):
    """What the worker said reaches a report only cleaned: each string of each kind of cause, and of
    a cause within it, bounded, without control characters, writable as UTF-8."""
    data = cause_data(hostile_cause(cause_type))
    for text in strings_in(data):
        assert len(text) < CASE_LIMIT + 100 and "\x1b" not in text
        text.encode("utf-8")
    assert cause_of({"cause": data}).kind == cause_type.kind
