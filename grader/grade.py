"""Grade one submission: read it, run the checks in a separate trusted pytest process, score, report.

    submission ──load_submission──▶ scratch copy ──pytest (grader/checks, its plugin)──▶ results
                                          ▲                    │ asks
                                          └──── worker (sandbox, student code) ◀┘
    results + rubric ──build_report──▶ report

This process never imports student code; the pytest process only talks to the worker.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import CHECKS, ROOT
from .course import DatasetError, load_mnist
from .report import build_report
from .sandbox.launch import scratch_parent
from .submission import load_submission, prepare_scratch

GRADER = Path(__file__).resolve().parent
CHECKS_TIMEOUT = 30 * 60  # seconds for all checks of one submission: far beyond any per-check limit


class GraderError(Exception):
    """The grader itself cannot run (its own files are missing or broken): no report is possible."""


def check_dataset():
    """Refuse before grading anyone if MNIST is missing or corrupt."""
    try:
        load_mnist()
    except DatasetError as error:
        raise GraderError(str(error)) from None


def grade(path, rubric, isolation="process"):
    started = time.perf_counter()
    submission = load_submission(path)
    if submission.error:
        return build_report(submission, rubric, [], isolation, time.perf_counter() - started,
                            messages=[f"not graded: {submission.error}"])
    # The results file lives apart from the scratch folder, which is the worker's working directory.
    with tempfile.TemporaryDirectory(prefix="autodiff-scratch-", dir=scratch_parent()) as scratch, \
            tempfile.TemporaryDirectory(prefix="autodiff-results-") as results:
        prepare_scratch(submission, scratch)
        cases, problem = run_checks(Path(scratch), rubric, isolation, Path(results) / "checks.json")
    return build_report(submission, rubric, cases, isolation, time.perf_counter() - started,
                        messages=[problem] if problem else [])


def run_checks(scratch, rubric, isolation, results, select=None):
    """Run grader/checks in a fresh pytest process with the grader's own configuration; return
    (cases, problem), problem being set when the checks could not run at all. select: a pytest -k
    expression (benchmarks only; grading runs every check)."""
    command = [sys.executable, "-m", "pytest", "-c", str(CHECKS / "grading.ini"), "--rootdir", str(ROOT),
               "-p", "grader.checks.plugin", "-q", "--json-report", f"--json-report-file={results}",
               "--json-report-omit", "collectors", "log", "streams", "warnings", "traceback",
               "--scratch", str(scratch), "--rubric", str(rubric.path), "--isolation", isolation, str(CHECKS),
               *(["-k", select] if select else [])]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        completed = subprocess.run(command, cwd=ROOT, env={**environment, "PYTHONDONTWRITEBYTECODE": "1"},
                                   capture_output=True, text=True, timeout=CHECKS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [], f"the checks did not finish within {CHECKS_TIMEOUT} s"
    if not results.is_file():
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-5:])
        return [], f"the checks could not run (pytest exited with status {completed.returncode}):\n{tail}"
    return [case_result(test) for test in json.loads(results.read_text())["tests"]], None


def case_result(test):
    """One pytest test → one case of a check, from the metadata our plugin attached to it."""
    metadata = test.get("metadata", {})
    passed = test["outcome"] == "passed"
    parameters = test["nodeid"].partition("[")[2].removesuffix("]")
    group = metadata.get("group")
    return {"group": group, "kind": metadata.get("kind"),
            "id": parameters.removeprefix(f"{group}-") or "-",
            "status": "passed" if passed else metadata.get("status", "error"),
            "feedback": "" if passed else metadata.get("feedback", f"the check ended with outcome {test['outcome']}"),
            "fraction": 1.0 if passed else float(metadata.get("fraction", 0.0)),
            "seconds": sum(test.get(stage, {}).get("duration", 0.0) for stage in ("setup", "call", "teardown")),
            "mnist": metadata.get("mnist")}
