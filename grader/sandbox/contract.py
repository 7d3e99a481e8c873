"""The assignment's contract: what students implement (docs/SPEC.md), declared once.

The worker, the checks, the rubric loader, the package builders and the project's tests all
derive from it. Shipped to the sandbox beside the worker (launch.SANDBOX_FILES), which imports it
as `contract`; the grader imports it as `grader.sandbox.contract`: standard library only.
"""
import shlex
from pathlib import PurePosixPath

# Graded name → the module of the autodiff package that defines it.
GRADED = {
    "Mul": "ops", "Matmul": "ops", "Pow": "ops", "Sum": "ops",
    "ReLU": "activations", "Softmax": "activations", "Log": "activations",
    "CrossEntropyLoss": "losses", "NLLLoss": "losses",
    "l2_penalty": "regularizers", "l2_grad": "regularizers",
}
GRADED_MODULES = tuple(dict.fromkeys(GRADED.values()))
# The course's given modules: the engine and what trains with it. Students do not submit these.
GIVEN_MODULES = ("tensor", "nn", "optim", "data", "train")
COURSE_MODULES = ("tensor", *GRADED_MODULES, "nn", "optim", "data", "train")
# The checks a graded name can have, by kind (grader/checks/test_*.py defines one test per kind):
# Functions (forward/backward ops) and the regularizers' own kinds, and the whole-model check.
FUNCTION_KINDS = ("forward", "backward", "robustness", "stability", "scale", "search")
CHECK_KINDS = (*FUNCTION_KINDS, "value", "update", "accuracy")
WHOLE_MODEL = "MNIST"  # the group of the check that trains MLP3 from the student's ops
MLP3_OPS = ("Matmul", "ReLU", "Softmax", "CrossEntropyLoss")  # the graded names it trains through (autodiff/nn.py, worker.py)
NOTEBOOK_GROUP = "notebook"  # the group of a notebook's first run, cell by cell (grader/notebook.py)


def writefile_arguments(line: str) -> tuple[str, bool]:
    """The path and whether it appends, of a `%%writefile [-a] path` line, as Jupyter reads it (a
    Windows path's backslashes as separators): (path, appends), path "" when none is given."""
    line = line.replace("\\", "/")
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    appends = bool(words) and words[0] in ("-a", "--append")
    words = words[1:] if appends else words
    return (words[-1] if words else ""), appends


def writefile_module(line: str) -> tuple[str | None, bool]:
    """The module a `%%writefile [-a] path` cell writes: (name, appends), or (None, False) when the
    path is no module's (`notes.txt`, `my-utils.py`). Both sides read these cells: the trusted side
    for the report, the sandbox to record when it was written."""
    path, appends = writefile_arguments(line)
    file = PurePosixPath(path)
    return (file.stem, appends) if file.suffix == ".py" and file.stem.isidentifier() else (None, False)
