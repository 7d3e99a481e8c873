"""The autograder for the autodiff assignment.

The pipeline, in the order a submission goes through it:

    submission.py, notebook.py   read what the student handed in (as text, never run)
    sandbox/                     the one place that runs student code: launch, client, the
                                 supervisor and its worker children; contract.py holds the
                                 assignment's contract both sides share
    checks/                      the graded checks (pytest), their plugin, the oracle and helpers
    course/                      the course's given code for the trusted side: where its copy of
                                 the package is, its modules and MNIST loaded from that copy
    mnist/                       the MNIST check: its training loop, owned by the trusted side,
                                 and the transfer of its steps, both ends
    grade.py                     run the checks against the sandbox in a trusted pytest process
    rubric.py, report.py         score the results and write the report
    classroom/                   a whole class: batch, LMS layouts and exports, gradebook,
                                 feedback pages, regrade diff, similarity
    cli.py                       `autodiff-grader grade|check|batch|diff|similarity|canvas-upload`
    preflight.py                 before `python -m grader` imports any of that: are its packages here?
"""
from pathlib import Path

# The contract (sandbox/contract.py): standard library only, so that `python -m grader` from a Python
# without the grader's packages can still say so (preflight.py), not crash.
from .sandbox.contract import COURSE_MODULES, GIVEN_MODULES, GRADED, GRADED_MODULES  # noqa: F401  (grader.GRADED, …)

VERSION = "1.0.0"

ROOT = Path(__file__).resolve().parent.parent
CHECKS = Path(__file__).resolve().parent / "checks"
DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubric.toml"
