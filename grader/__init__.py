"""The autograder for the autodiff assignment.

Trusted side (scores and reports): cli, grade, submission, notebook, rubric, report, checking,
oracle, pytest_plugin. Untrusted side (runs student code): sandbox/worker.py, started by
sandbox/launch.py and spoken to through sandbox/client.py with sandbox/protocol.py.
"""
from pathlib import Path

VERSION = "1.0.0"

ROOT = Path(__file__).resolve().parent.parent
# The course's given code, graded bodies blank: the starter in the repository; grader/course/ in
# the packages built from it (the student handout, the Gradescope autograder).
COURSE_PACKAGE = next((p for p in (ROOT / "starter" / "autodiff", ROOT / "grader" / "course" / "autodiff") if p.is_dir()),
                      ROOT / "starter" / "autodiff")
CHECKS = ROOT / "tests" / "checks"
DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubric.toml"

# Graded name → the module of the autodiff package that defines it (SPEC.md).
GRADED = {
    "Mul": "ops", "Matmul": "ops", "Pow": "ops", "Sum": "ops",
    "ReLU": "activations", "Softmax": "activations", "Log": "activations",
    "CrossEntropyLoss": "losses", "NLLLoss": "losses",
    "l2_penalty": "regularizers", "l2_grad": "regularizers",
}
GRADED_MODULES = ("ops", "activations", "losses", "regularizers")
