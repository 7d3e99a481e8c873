"""Grading submissions inside the tests: the reference with small edits, graded with a fast rubric.

A buggy submission is the reference with one edit (`reference_copy(tmp_path, {"ops": [(old, new)]})`),
so each fixture shows exactly the bug it plants and stays in step with the reference.

The same submission graded with the same rubric by several tests is graded once per test run
(`graded_once`), each test asserting what it is about on that one report.
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from grader import DEFAULT_RUBRIC
from grader.grade import grade
from grader.report import validate
from grader.results import CaseResult
from grader.rubric import load_rubric
from grader.submission import submission_sha256
from tests.support.paths import SOLUTIONS

# The course's rubric with a small MNIST budget, so that the suite can grade many submissions
# quickly: derived from grader/rubric.toml here, so it never drifts from it.
FAST_MNIST = {"epochs": 1, "train_examples": 6000, "time_budget_seconds": 30,
              "full_credit_accuracy": 85.0, "zero_credit_accuracy": 50.0}
# Its salt: the official inputs, the same in every run of the suite (any salt: under "the test suite's
# salt" the MNIST check once refused the reference at a unit on ReLU's kink, test_mnist_trusted.py).
TESTS_SALT = "the test suite's own salt"


def fast_rubric_text(salt=TESTS_SALT):
    """salt None: none, as the course's rubric ships (an official run then uses the course's secret)."""
    text = DEFAULT_RUBRIC.read_text()
    for key, value in FAST_MNIST.items():
        text, found = re.subn(rf"(?m)^{key}\s*=[^#\n]*", f"{key} = {value} ", text)
        assert found == 1, f"grader/rubric.toml has no single mnist key {key}"
    text, found = re.subn(r"(?m)^\[limits\]$", "[limits]\ncell_seconds = 3  # a notebook's cell that overruns costs less waiting", text)
    assert found == 1, "grader/rubric.toml has no [limits] table"
    text += "\n[scale]\nside = 40  # the scale checks on small inputs: their own tests (tests/test_scale_budget.py) use the real side\n"
    return text + (f"\n[inputs]\nsalt = {json.dumps(salt)}\n" if salt is not None else "")


FAST_RUBRIC_FILE = Path(tempfile.mkdtemp(prefix="rubric-fast-")) / "rubric-fast.toml"
FAST_RUBRIC_FILE.write_text(fast_rubric_text())
FAST_RUBRIC = load_rubric(FAST_RUBRIC_FILE)


def reference_copy(folder, edits=None, files=None):
    """solutions/autodiff copied to folder/autodiff, with edits {module: [(old, new), ...]} applied
    (each `old` must occur exactly once) and extra files {relative path: text} written."""
    folder = Path(folder)
    shutil.copytree(SOLUTIONS / "autodiff", folder / "autodiff", ignore=shutil.ignore_patterns("__pycache__"))
    for module, replacements in (edits or {}).items():
        path = folder / "autodiff" / f"{module}.py"
        source = path.read_text()
        for old, new in replacements:
            assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times in {module}.py"
            source = source.replace(old, new)
        path.write_text(source)
    for relative, text in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def grade_and_validate(path, rubric=FAST_RUBRIC):
    report = grade(path, rubric)
    validate(report)
    return report


# Where graded_once keeps its reports for every test process of the run (tests/conftest.py sets it);
# None outside pytest (the benchmarks): then each process keeps its own.
SHARED_GRADINGS = None
_graded = {}  # key → the report as JSON text, when there is no shared folder


def graded_once(path, rubric=FAST_RUBRIC):
    """grade_and_validate(path, rubric), graded once per test run for each submission: tests that
    grade the same submission (the same files, by name and bytes, as the report's sha256 counts
    them; a file's own name too) with the same rubric get the same report, each a fresh copy. Its
    path and the rubric's are set to this call's, as grading it here would have written them.
    Not for what a grading does besides its report (time, side effects), nor for determinism."""
    path = Path(path)
    key = hashlib.sha256("\0".join([submission_sha256(path), path.name if path.is_file() else "/",
                                     rubric.sha256]).encode()).hexdigest()[:32]
    if SHARED_GRADINGS is None:
        if key not in _graded:
            _graded[key] = json.dumps(grade_and_validate(path, rubric))
        text = _graded[key]
    else:
        stored = Path(SHARED_GRADINGS) / f"{key}.json"
        with open(stored.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test process grading it: wait for its report
            if not stored.is_file():
                partial = stored.with_suffix(f".{os.getpid()}.tmp")
                partial.write_text(json.dumps(grade_and_validate(path, rubric)))
                partial.replace(stored)
            text = stored.read_text()
    report = json.loads(text)
    report["submission"]["path"], report["grader"]["rubric"] = str(path), rubric.path
    return report


def all_passed(rubric, *cases):
    """The checks' results build_report reads (grade.case_result's): `cases`, and a passed case, with its
    verdict, for every other check of the rubric. Without a case each, a report has no score."""
    given = {(case.group, case.kind) for case in cases}
    return [*cases, *(CaseResult(group, kind, "-", "passed") for group, kind in rubric.points if (group, kind) not in given)]


def group_scores(report):
    """{group: (score, max_score)} of a report."""
    scores = {}
    for test in report["tests"]:
        score, most = scores.get(test["group"], (0, 0))
        scores[test["group"]] = (round(score + test["score"], 2), most + test["max_score"])
    return scores


def feedback(report, group):
    return "\n".join(test["output"] for test in report["tests"] if test["group"] == group)


def full_marks_except(report, *groups):
    """The groups, other than `groups`, that lost points (empty when only `groups` did)."""
    return {g: s for g, s in group_scores(report).items() if g not in groups and s[0] != s[1]}
