"""A grading that did not run is an error, everywhere, and never a score; and one way to run the grader.

A report is `graded` only if every check of the rubric has a verdict from a check that ran
(report.build_report): a check file that does not import, a check the grader failed on, a sandbox
that cannot fork a worker each leave it `error`, with no score. Then: exit status 1, an error row
with empty points in the gradebook, an empty cell in the LMS files (even with --missing-as-zero),
no upload to Canvas, a page that says "not graded", Gradescope's failure results, and a rerun that
grades it again. `python -m grader` from a Python without the grader's packages refuses before it
does anything, naming the command to run instead (`make VERB` or `.venv/bin/autodiff-grader`).
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest

from grader.classroom import batch as batch_module
from grader.classroom.diff import compare
from grader.classroom.gradebook import summarize
from grader.classroom.pages import class_index, student_page
from grader.classroom.roster import Roster
from grader.cli import main
from grader.grade import case_result
from grader.report import SCHEMA, build_report, format_table, is_scored, to_gradescope
from grader.results import CaseResult, GraderFailed, Wrong
from grader.submission import Submission, load_submission
from tests.support.grading import FAST_RUBRIC, FAST_RUBRIC_FILE, all_passed, reference_copy
from tests.support.paths import ROOT

SUBMISSION = Submission(path="x", form="folder", sha256="0" * 64)


# -- the report, by construction ------------------------------------------------------------------

def case(group, kind, status="passed", verdict=True, feedback="wrong"):
    cause = None if status == "passed" else Wrong(feedback) if verdict else GraderFailed("RuntimeError", feedback)
    return CaseResult(group, kind, "c", status, "" if status == "passed" else feedback, cause,
                      fraction=1.0 if status == "passed" else 0.0, verdict=verdict)


def test_a_report_is_graded_only_when_every_check_has_a_verdict():
    graded = build_report(SUBMISSION, FAST_RUBRIC, all_passed(FAST_RUBRIC, case("Mul", "forward", "failed")), "process", 1.0)
    assert (graded["status"], graded["score"]) == ("graded", FAST_RUBRIC.max_score - FAST_RUBRIC.points[("Mul", "forward")])
    # A check file that did not import: its checks have no case at all (they once read as 0, "not run").
    collected = [c for c in all_passed(FAST_RUBRIC) if c.group != "l2_penalty"]
    # The grader failed on one case (plugin: an exception that is not CheckFailed): no verdict.
    crashed = all_passed(FAST_RUBRIC, case("Mul", "forward", "error", verdict=False, feedback="the grader failed while running"))
    for results in (collected, crashed, []):
        report = build_report(SUBMISSION, FAST_RUBRIC, results, "process", 1.0)
        assert (report["status"], report["score"]) == ("error", None) and not is_scored(report)
        assert any(m.startswith("not graded: ") for m in report["messages"]), report["messages"]
        jsonschema.validate(report, SCHEMA)
    unreadable = build_report(Submission(path="x", form="unreadable", error="not a zip"), FAST_RUBRIC, [], "process", 1.0)
    assert (unreadable["status"], unreadable["score"]) == ("unreadable", 0)  # the submission's fault: a 0 is due


def test_the_schema_ties_a_null_score_to_the_error_status():
    report = build_report(SUBMISSION, FAST_RUBRIC, all_passed(FAST_RUBRIC), "process", 1.0)
    for status, score in (("error", 0), ("graded", None), ("unreadable", None)):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**report, "status": status, "score": score}, SCHEMA)
    assert not is_scored({**report, "status": "error"})  # a report an older grader wrote, error and 0: still no score


def test_only_a_pass_or_the_checks_own_failure_is_a_verdict():
    from grader.checks.checking import CheckFailed
    from grader.checks.plugin import pytest_json_runtest_metadata
    from grader.sandbox.client import SandboxError

    def test(outcome, error=None, when="call"):
        item, metadata = checked_item(), {}
        for phase in ("setup", "call", "teardown") if when == "call" else (when, "teardown"):
            raised = SimpleNamespace(value=error) if error and phase == when else None
            metadata.update(pytest_json_runtest_metadata(item, SimpleNamespace(when=phase, excinfo=raised, duration=0.5)))
        return case_result({"nodeid": "grader/checks/test_functions.py::test_forward[Mul-c]", "outcome": outcome, "metadata": metadata})

    assert test("passed").verdict and test("failed", CheckFailed("wrong", "error")).verdict
    assert not test("failed", SandboxError("the sandbox could not start a worker")).verdict
    assert not test("error", RuntimeError("a bug in the check"), when="setup").verdict
    assert not case_result({"nodeid": "x::test_forward[Mul-c]", "outcome": "skipped", "metadata": {}}).verdict


class checked_item:
    """What the checks' plugin reads of a pytest item: Mul's `op`, the kind and case markers, the stash."""
    callspec = SimpleNamespace(params={"op": "Mul"})
    MARKERS = {"kind": pytest.mark.kind("forward").mark, "case": pytest.mark.case("c").mark}

    def __init__(self):
        self.stash = pytest.Stash()

    def get_closest_marker(self, name):
        return self.MARKERS.get(name)


def test_a_worker_that_cannot_be_forked_is_the_sandboxs_failure_not_the_submissions(tmp_path, monkeypatch):
    """The supervisor could not fork a group's worker (before any student code): SandboxError, which
    the checks' plugin reports as no verdict, where it was once an `error` verdict and 0 points."""
    from grader.checks.checking import call_op
    from grader.sandbox import launch
    from grader.sandbox.client import SandboxError, WorkerClient
    from grader.sandbox.launch import scratch_parent
    from grader.sandbox.levels import isolation_level
    from grader.submission import load_submission, prepare_scratch

    no_fork = ("import errno, os, runpy, sys\n"
               "def fork():\n    raise BlockingIOError(errno.EAGAIN, 'Resource temporarily unavailable')\n"
               "os.fork = fork\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    monkeypatch.setattr(isolation_level("process"), "command", lambda scratch, limits, log, seccomp: (
        [sys.executable, "-c", no_fork, str(scratch / ".worker" / launch.ENTRY), str(log)], scratch))
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
        scratch = prepare_scratch(load_submission(reference_copy(Path(folder) / "submission")), Path(folder) / "scratch")
        with WorkerClient(scratch, isolation="process") as client, pytest.raises(SandboxError, match="no worker could be started"):
            call_op(client, "Mul", [np.ones(2), np.ones(2)])


@pytest.mark.slow
def test_a_check_file_that_does_not_import_gives_an_error_report_and_exit_status_1(tmp_path, monkeypatch, capsys):
    """The checks' pytest process with test_regularizers.py failing to import (as a broken import
    in grader/checks would): pytest runs no check at all. This once wrote a report of 0/100 and
    exit status 0. (Only test_functions.py would run besides, to keep it short.)"""
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!{sys.executable}\n" + (
        "import os, runpy, sys\n"
        "class Broken:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name == 'grader.checks.test_regularizers':\n"
        "            raise ModuleNotFoundError(\"No module named 'a_helper_renamed_by_mistake'\")\n"
        "sys.meta_path.insert(0, Broken)\n"
        "sys.path.insert(0, os.getcwd())  # the checkout the grader runs from, as `python -m pytest` has it\n"
        "sys.argv = ['pytest', *sys.argv[3:], '-k', 'test_functions or test_regularizers']\n"
        "runpy.run_module('pytest', run_name='__main__', alter_sys=True)\n"))
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))  # grade.run_checks starts the checks with sys.executable
    out = tmp_path / "report.json"
    status = main(["grade", str(reference_copy(tmp_path / "submission")), "--out", str(out), "--rubric", str(FAST_RUBRIC_FILE),
                   "--isolation", "process"])
    report = json.loads(out.read_text())
    assert (status, report["status"], report["score"]) == (1, "error", None)
    assert "ERROR grader/checks/test_regularizers.py" in report["messages"][0]  # pytest stops at a collection error:
    assert report["messages"][-1].startswith("not graded: 52 of 52 checks have no verdict")  # no check ran
    shown = capsys.readouterr()
    assert "NOT GRADED" in shown.out and "failed: its report (status error) has no score" in shown.err


# -- everywhere downstream: a class with one failed grading ----------------------------------------

CANVAS_EXPORT = "Student,ID,SIS User ID,Section,Autodiff (4242)\n    Points Possible,,,,100.00\nKim,11111,,A,\nLee,22222,,A,\n"


@pytest.fixture
def class_with_a_failure(tmp_path, monkeypatch):
    """11111 graded (full marks), 22222's grading failed (its checks did not run)."""
    source = tmp_path / "class"
    for student in ("11111", "22222"):
        reference_copy(source / student)

    def graded(path, rubric, isolation):
        if Path(path).name == "22222":
            return build_report(load_submission(path), rubric, [], isolation, 1.0,
                                messages=["the checks could not run (pytest exited with status 4)"])
        return build_report(load_submission(path), rubric, all_passed(rubric), isolation, 1.0)

    monkeypatch.setattr(batch_module, "grade", graded)
    (tmp_path / "export.csv").write_text(CANVAS_EXPORT)
    return source, tmp_path


def batch_cli(source, out, *options):
    return main(["batch", str(source), "--out", str(out), "--rubric", str(FAST_RUBRIC_FILE), "--isolation", "process",
                 "--jobs", "1", *options])


def test_a_failed_grading_is_an_error_row_with_no_points_anywhere(class_with_a_failure, capsys):
    source, folder = class_with_a_failure
    out = folder / "out"
    assert batch_cli(source, out, "--html", "--gradescope", "--canvas-export", str(folder / "export.csv"), "--missing-as-zero") == 1
    said = capsys.readouterr().err
    assert "1 gradings failed, with no score" in said and "22222; rerun to grade them again" in said
    with open(out / "gradebook.csv", newline="", encoding="utf-8-sig") as file:
        book = {row["student_id"]: row for row in csv.DictReader(file)}
    assert book["11111"]["total"] == "100" and book["11111"]["status"] == "graded"
    failed = book["22222"]
    assert failed["status"] == "error" and "the checks could not run" in failed["problem"]
    points = [key for key in failed if key not in ("student_id", "name", "status", "problem")]
    assert [failed[key] for key in points] == [""] * (1 + len({group for group, _ in FAST_RUBRIC.points}))  # the total and every group: empty
    with open(out / "canvas-import.csv", newline="") as file:
        canvas = {row[1]: row[4] for row in csv.reader(file)}
    assert (canvas["11111"], canvas["22222"]) == ("100", "")  # empty, --missing-as-zero or not
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["count"], summary["mean"], summary["not_graded"]) == (1, 100, ["22222"])
    assert "**Not graded: 1**" in (out / "summary.md").read_text()
    page = (out / "html" / "22222.html").read_text()
    assert "not graded" in page and "the checks could not run" in page and "/ 100" not in page and "/ 8" not in page
    assert "<b>not graded</b>" in (out / "html" / "index.html").read_text()
    gradescope = json.loads((out / "reports" / "22222.gradescope.json").read_text())
    assert gradescope["extra_data"]["grader_failed"] and gradescope["output"].startswith("The autograder failed")


def test_a_rerun_grades_a_failed_grading_again_and_keeps_the_rest(class_with_a_failure, monkeypatch):
    source, folder = class_with_a_failure
    out = folder / "out"
    assert batch_cli(source, out) == 1
    monkeypatch.setattr(batch_module, "grade", lambda path, rubric, isolation: build_report(
        load_submission(path), rubric, all_passed(rubric), isolation, 1.0))
    roster, graded, kept, _ = batch_module.run_batch(source, out, FAST_RUBRIC, isolation="process", progress=False)
    assert (graded, kept) == (["22222"], ["11111"])
    assert json.loads((out / "reports" / "22222.json").read_text())["score"] == FAST_RUBRIC.max_score


def test_moodle_leaves_a_failed_grading_empty(tmp_path):
    from grader.classroom.lms import fill_moodle

    (tmp_path / "worksheet.csv").write_text("Identifier,Full name,Grade\nParticipant 1,A,\nParticipant 2,B,\n")
    filled = fill_moodle(tmp_path / "worksheet.csv", tmp_path / "moodle-import.csv", {"1": 50, "2": None}, missing_as_zero=True)
    assert (tmp_path / "moodle-import.csv").read_text().splitlines()[1:] == ["Participant 1,A,50", "Participant 2,B,"]
    assert filled.not_graded == ["2"]


def test_canvas_upload_sends_no_grade_for_a_failed_grading(tmp_path, monkeypatch, capsys):
    from grader import cli

    (tmp_path / "reports").mkdir()
    for student, status, score in (("11111", "graded", 90), ("22222", "error", None)):
        (tmp_path / "reports" / f"{student}.json").write_text(json.dumps({"student": student, "status": status, "score": score}))
    sent = {}
    monkeypatch.setattr(cli, "upload_grades", lambda url, token, course, assignment, scores: sent.update(scores) or
                        {"workflow_state": "queued", "url": "u"})
    monkeypatch.setenv("CANVAS_TOKEN", "t")
    assert main(["canvas-upload", str(tmp_path), "--url", "http://127.0.0.1:9", "--course", "1", "--assignment", "2"]) == 1
    assert sent == {"11111": 90} and "not sent, their grading failed (no score): 22222" in capsys.readouterr().err


def test_the_terminal_the_diff_and_the_class_index_show_no_number_for_a_failed_grading():
    failed = build_report(SUBMISSION, FAST_RUBRIC, [], "process", 1.0)
    graded = build_report(SUBMISSION, FAST_RUBRIC, all_passed(FAST_RUBRIC), "process", 1.0)
    table = format_table(failed)
    assert "NOT GRADED" in table and not re.search(r"\d+ / \d+", table) and "visible points" not in table
    [row] = compare({"a": graded}, {"a": failed})
    assert (row["old"], row["new"], row["change"]) == (100, None, None) and "the new grading failed: no score" in row["why"]
    reports = {"a": graded, "b": failed}
    summary = summarize(reports, Roster(), FAST_RUBRIC)
    assert summary["histogram"]["counts"][-1] == 1 and sum(summary["histogram"]["counts"]) == 1
    assert "1 of 1" in class_index(reports, summary, {"a": "a.html", "b": "b.html"})  # pass rates over graded reports only
    assert "not graded" in student_page(failed, "all") and to_gradescope(failed)["extra_data"]["grader_failed"]


# -- one way to run the grader ----------------------------------------------------------------------

SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's: none of the grader's packages


def without_packages():
    """Skip unless /usr/bin/python3 exists and lacks the grader's packages (as on this project's machines)."""
    if not SYSTEM_PYTHON.exists() or subprocess.run([SYSTEM_PYTHON, "-c", "import jsonschema"], capture_output=True, check=False).returncode == 0:
        pytest.skip("needs a /usr/bin/python3 without the grader's packages")


def documented_verbs():
    """Each verb with arguments that would make it act: (verb, arguments, what it must not create)."""
    return {
        "grade": (["grade", "solutions", "--out", "{tmp}/report.json"], "{tmp}/report.json"),
        "check": (["check", "solutions/autodiff", "--out", "{tmp}/check.json"], "{tmp}/check.json"),
        "batch": (["batch", "{tmp}/class", "--out", "{tmp}/out"], "{tmp}/out/previous"),
        "diff": (["diff", "{tmp}/out", "{tmp}/out", "--out", "{tmp}/regrade"], "{tmp}/regrade"),
        "similarity": (["similarity", "{tmp}/out"], "{tmp}/out/similarity.json"),
        "canvas-upload": (["canvas-upload", "{tmp}/out", "--url", "http://127.0.0.1:9", "--course", "1", "--assignment", "2"], None),
    }


@pytest.mark.parametrize("verb", list(documented_verbs()))
def test_every_verb_from_a_python_without_the_packages_says_what_to_run_and_does_nothing(verb, tmp_path):
    """/usr/bin/python3 -m grader: once a traceback (a batch's after it had changed its output folder's
    mode and made previous/), or a 0/100 report and exit status 0. Now: what to run, and nothing else."""
    without_packages()
    reference_copy(tmp_path / "class" / "alice")
    (tmp_path / "out" / "reports").mkdir(parents=True)
    (tmp_path / "out" / "reports" / "alice.json").write_text("{}")
    (tmp_path / "out").chmod(0o755)
    before = sorted((str(p), p.stat().st_mode) for p in tmp_path.rglob("*"))
    arguments, created = documented_verbs()[verb]
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    completed = subprocess.run([str(SYSTEM_PYTHON), "-m", "grader", *arguments], cwd=ROOT, capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "TMPDIR": tempfile.gettempdir()}, timeout=60, check=False)
    assert completed.returncode == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert f".venv/bin/autodiff-grader {verb}" in completed.stderr and "lacks numpy, jsonschema" in completed.stderr
    if verb != "check":
        assert f"make {verb}" in completed.stderr
    assert sorted((str(p), p.stat().st_mode) for p in tmp_path.rglob("*")) == before  # no folder made, no mode changed
    assert created is None or not Path(created.format(tmp=tmp_path)).exists()


def test_a_python_with_some_packages_but_not_the_checks_plugin_refuses_before_grading(tmp_path):
    """A Python with numpy and jsonschema but no pytest-json-report (a pyenv's, say) once graded every
    check "not run": a report of 0/100, exit status 0."""
    hide = ("import runpy, sys\n"
            "class Hidden:\n"
            "    @staticmethod\n"
            "    def find_spec(name, path=None, target=None):\n"
            "        if name.partition('.')[0] == 'pytest_jsonreport':\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Hidden)\n"
            "runpy.run_module('grader', run_name='__main__', alter_sys=True)\n")
    out = tmp_path / "report.json"
    completed = subprocess.run([sys.executable, "-c", hide, "grade", "solutions", "--out", str(out), "--isolation", "process"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 1 and "lacks pytest_jsonreport, which `grade` needs" in completed.stderr, completed.stderr
    assert "make grade SUBMISSION=" in completed.stderr and not out.exists()


def test_the_console_script_runs_every_verb_from_the_venv():
    script = Path(sys.executable).parent / "autodiff-grader"
    assert os.access(script, os.X_OK), "`make` installs the console script (pip install -e .: pyproject.toml's [project.scripts])"
    completed = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0 and completed.stdout.startswith("usage: autodiff-grader")
    assert all(verb in completed.stdout for verb in documented_verbs())


MAKE_COMMANDS = {  # each verb's target, with the arguments the docs give it → the command it runs
    "grade SUBMISSION=s.zip HTML=p.html": "grade s.zip --out build/report.json --format native --html p.html --reveal visible",
    "batch SUBMISSIONS=d.zip CANVAS_EXPORT=e.csv RUBRIC=r.toml": "batch d.zip --out build/batch --html --reveal visible "
                                                                "--canvas-export e.csv --rubric r.toml",
    "batch SUBMISSIONS=d.zip MOODLE_WORKSHEET=w.csv SCHEDULER=tcp://h:1 SIMILARITY=1":
        "batch d.zip --out build/batch --html --reveal visible --moodle-worksheet w.csv --scheduler tcp://h:1 --similarity",
    "diff OLD=a NEW=b OUT=r": "diff a b --out r",
    "similarity OUT=o THRESHOLD=0.4": "similarity o --threshold 0.4",
    "canvas-upload URL=u COURSE=1 ASSIGNMENT=2": "canvas-upload build/batch --url u --course 1 --assignment 2",
}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", list(MAKE_COMMANDS))
def test_each_make_target_runs_the_console_script(target):
    completed = subprocess.run(["make", "-n", *target.split()], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    commands = [" ".join(line.split()) for line in completed.stdout.replace("\\\n", " ").splitlines()]
    assert f".venv/bin/autodiff-grader {MAKE_COMMANDS[target]}" in commands, completed.stdout + completed.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["bench-grading", "bench-notebook", "report-identity", "mnist-cost"])
def test_a_benchmark_against_a_revision_names_the_revision_it_needs(target):
    """No revision is compared with by default: without BEFORE, make says what to pass and runs nothing."""
    completed = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode != 0 and f"usage: make {target} BEFORE=" in completed.stderr, completed.stdout + completed.stderr
    completed = subprocess.run(["make", "-n", target, "BEFORE=abc1234"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert "--before abc1234" in completed.stdout, completed.stdout + completed.stderr


def test_the_docs_run_the_grader_through_make_or_the_console_script():
    """`python -m grader` only for a student's own `check` (the handout has no console script), and
    every `make` target the docs name exists (the handout's Makefile's too: `make check`)."""
    targets = {target for makefile in (ROOT / "Makefile", ROOT / "handout" / "Makefile")
               for target in re.findall(r"(?m)^([a-z][\w-]*)(?:\s[^:=]*)?:(?!=)", makefile.read_text())}
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text()
        assert set(re.findall(r"python -m grader ([\w-]+)", text)) <= {"check"}, document.name
        for target in re.findall(r"`(?:CANVAS_TOKEN=\S+ )?make ([a-z][\w-]*)", text):
            assert target in targets, f"{document.name}: make {target}"
