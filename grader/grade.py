"""Grade one submission: read it, run the checks in a separate trusted pytest process, score, report.

    submission ──load_submission──▶ scratch copy ──pytest (grader/checks, its plugin)──▶ results
                                          ▲                    │ asks
                                          └──── worker (sandbox, student code) ◀┘
    results + rubric ──build_report──▶ report

This process never imports student code; the pytest process only talks to the worker.
"""
import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import CHECKS, ROOT
from .course import DatasetError, load_mnist, mnist_directory
from .report import build_report
from .results import CaseResult, GraderFailed
from .rubric import Rubric
from .sandbox.launch import ONE_BLAS_THREAD, scratch_parent
from .sandbox.levels import isolation_level
from .sandbox.permissions import protect_from_workers, readable_by_workers
from .submission import load_submission, prepare_scratch

GRADER = Path(__file__).resolve().parent
RUNTIME = ".venv"  # the checkout's Python runtime (the Makefile's): the only part of it left open
CHECKS_OVERHEAD = 10 * 60  # seconds for the checks' own work, beyond the worker time the rubric's [limits] allow


class GraderError(Exception):
    """The grader itself cannot run (its own files are missing or broken): no report is possible."""


def check_dataset() -> None:
    """Refuse before grading anyone if MNIST is missing or corrupt."""
    try:
        load_mnist()
    except DatasetError as error:
        raise GraderError(str(error)) from None


UID_LEVEL_NOTE = ("isolation 'uid': student code ran as an unprivileged user, kept from the grader's files by their "
                  "permissions; its network access was not blocked (this level makes no namespaces)")


def protect_grader_files(rubric: Rubric, inputs: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """At the `uid` level: make what the worker must not read unreadable to others: the grader's
    checkout but its Python runtime (the checks, the solutions, the .git history, the MNIST test
    labels), the rubric and the test labels wherever they are, and each of `inputs` (a submission,
    a class's folder of them, the reports of the others). Messages naming what still is."""
    checkout = [path for path in ROOT.iterdir() if path.name != RUNTIME]  # all but a Python runtime: nothing a worker may read
    # Besides the checkout (its checks, rubric and solutions among it), what may lie outside it.
    secrets = [*checkout, Path(rubric.path), mnist_directory() / "t10k-labels-idx1-ubyte.gz", *map(Path, inputs)]
    protect_from_workers(secrets)
    with contextlib.suppress(OSError):  # the checkout itself: others may pass through to its runtime, not list it
        ROOT.chmod(stat.S_IMODE(ROOT.stat().st_mode) & ~0o006)
    exposed = [str(path) for path in secrets if readable_by_workers(path)]
    return [UID_LEVEL_NOTE] + ([f"grader: still readable by student code at the uid level: {', '.join(exposed[:5])}"]
                               if exposed else [])


def grade(path: str | os.PathLike[str], rubric: Rubric, isolation: str = "process") -> dict[str, Any]:
    started = time.perf_counter()
    messages = protect_grader_files(rubric, [path]) if isolation_level(isolation).guarded_by_permissions else []
    submission = load_submission(path)
    if submission.error:
        return build_report(submission, rubric, [], isolation, time.perf_counter() - started,
                            messages=messages + [f"not graded: {submission.error}"])
    # The results file lives apart from the scratch folder, which is the worker's working directory.
    with tempfile.TemporaryDirectory(prefix="autodiff-scratch-", dir=scratch_parent()) as scratch, \
            tempfile.TemporaryDirectory(prefix="autodiff-results-") as results:
        prepare_scratch(submission, scratch)
        cases, problem, notebook = run_checks(Path(scratch), rubric, isolation, Path(results) / "checks.json")
    if notebook:
        submission.notebook_ran(notebook["cells"], notebook["defined"], notebook["notes"])
    return build_report(submission, rubric, cases, isolation, time.perf_counter() - started,
                        messages=messages + ([problem] if problem else []))


# BLAS on one thread as in the worker: the test accuracy the checks compute from MLP3's weights is then
# the same on every machine, and a busy machine's cores are not spun on.
CHECKS_ENVIRONMENT = {"PYTHONDONTWRITEBYTECODE": "1", **ONE_BLAS_THREAD}


def run_checks(scratch: Path, rubric: Rubric, isolation: str, results: Path,
               select: str | None = None) -> tuple[list[CaseResult], str | None, dict[str, Any] | None]:
    """Run grader/checks in a fresh pytest process with the grader's own configuration; return
    (cases, problem, notebook), problem being set when the checks could not run at all, notebook
    what a notebook's first run did (plugin.NOTEBOOK_RUN; None for other forms). select: a pytest
    -k expression (benchmarks only; grading runs every check)."""
    timeout = rubric.limits["total_seconds"] + CHECKS_OVERHEAD
    # The checks read this rubric's own text, beside the results (out of the worker's reach): its salt
    # may be the course's secret, in no rubric file, and an edit of the file mid-batch changes nothing.
    rubric_file = results.with_name(f"{results.name}.rubric.toml")
    rubric_file.write_bytes(rubric.text)
    command = [sys.executable, "-m", "pytest", "-c", str(CHECKS / "grading.ini"), "--rootdir", str(ROOT),
               "-p", "grader.checks.plugin", "-q", "--json-report", f"--json-report-file={results}",
               "--json-report-omit", "collectors", "log", "streams", "warnings", "traceback",
               "--scratch", str(scratch), "--rubric", str(rubric_file), "--isolation", isolation, str(CHECKS),
               *(["-k", select] if select else [])]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        completed = subprocess.run(command, cwd=ROOT, env={**environment, **CHECKS_ENVIRONMENT},
                                   capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [], f"the checks did not finish within {timeout:g} s", None
    finally:
        rubric_file.unlink(missing_ok=True)
    if not results.is_file():
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-5:])
        return [], f"the checks could not run (pytest exited with status {completed.returncode}):\n{tail}", None
    checks = json.loads(results.read_text())
    if checks.get("exitcode") not in (0, 1):  # neither all passed nor some failed: interrupted (a check file that does not
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-5:])  # import), or pytest's own error
        return [case_result(test) for test in checks.get("tests", [])], (
            f"the checks could not run to the end (pytest exited with status {checks.get('exitcode')}):\n{tail}"), None
    notebook = checks.get("notebook")
    if notebook and notebook.get("error"):
        return [], f"the notebook could not be run: {notebook['error']}", None
    return [case_result(test) for test in checks["tests"]], None, notebook


def case_result(test: dict[str, Any]) -> CaseResult:
    """One pytest test's CaseResult, as the checks' plugin made it (plugin.case_result). A test it
    said nothing of, or whose outcome its result does not account for, has no verdict."""
    data = test.get("metadata", {}).get("case")
    if data is not None and (test["outcome"] == "passed") == (data["status"] == "passed"):
        return CaseResult.from_data(data)
    seconds = sum(test.get(stage, {}).get("duration", 0.0) for stage in ("setup", "call", "teardown"))
    known = CaseResult.from_data(data) if data is not None else CaseResult(None, None, "-", "error")
    ended = f"the check ended with outcome {test['outcome']}"
    return replace(known, status="error", output=ended, fraction=0.0, seconds=seconds, verdict=False,
                   cause=GraderFailed("pytest", ended))
