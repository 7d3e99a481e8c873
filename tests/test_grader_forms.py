"""Every form a student may hand in (SPEC.md, "Submissions"): the reference scores 100 in each; what
cannot be read scores 0 with a message; a graded module that fails to import costs only its own
names; the course's modules are always the course's. (Archives and notebooks built to attack the
grader: tests/test_attacks.py.)"""
import ast
import hashlib
import zipfile
from pathlib import Path

import nbformat
import pytest

from _grading import feedback, full_marks_except, grade_and_validate, group_scores, reference_copy
from _paths import SOLUTIONS
from grader import GRADED, GRADED_MODULES
from grader.submission import load_submission

IMPORT_FAILS_MNIST = {"ops", "activations", "losses"}  # MLP3 is built from these


# -- the forms ---------------------------------------------------------------------------------

def flat_copy(folder, tensor_import="from .tensor import"):
    """The graded modules at the top of folder, importing the course's tensor module as given."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for module in GRADED_MODULES:
        source = (SOLUTIONS / "autodiff" / f"{module}.py").read_text()
        (folder / f"{module}.py").write_text(source.replace("from .tensor import", tensor_import))
    return folder


def zip_of(folder, archive):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, path.relative_to(folder).as_posix())
    return archive


def reference_definitions(module):
    """The source of each graded class or function of the reference's module, without the
    # BEGIN/END SOLUTION lines."""
    source = (SOLUTIONS / "autodiff" / f"{module}.py").read_text()
    for node in ast.parse(source).body:
        if getattr(node, "name", None) in GRADED:
            lines = ast.get_source_segment(source, node).splitlines()
            yield "\n".join(line for line in lines if "# BEGIN SOLUTION" not in line and "# END SOLUTION" not in line)


SKIPPED_CELLS = ["model = MLP3(seed=0)\nfor epoch in range(10**9):\n    pass",
                 "train(model, images, labels, epochs=10**6, batch_size=1, lr=0.1)",
                 "raise RuntimeError('run the cells above first')"]


def reference_notebook(path):
    """A notebook as students hand it in from a hosted notebook: magics, shell lines, an optional
    import, the graded definitions, then a long training run and a cell that raises."""
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    cells = [markdown("# Homework: autodiff"),
             code("%matplotlib inline\n!pip install -q tqdm\nimport matplotlib.pyplot as plt"),
             code("from autodiff.tensor import Function, reduce_grad_to_shape, EPS\nimport numpy as np")]
    cells += [code(definition) for module in GRADED_MODULES for definition in reference_definitions(module)]
    cells += [code(text) for text in SKIPPED_CELLS]
    path.write_text(nbformat.writes(nbformat.v4.new_notebook(cells=cells)))
    return path


def folder_with_autodiff(tmp_path):
    return reference_copy(tmp_path / "submission")


def nested_folder(tmp_path):
    reference_copy(tmp_path / "submission" / "hw")
    return tmp_path / "submission"


def flat_folder(tmp_path):
    return flat_copy(tmp_path / "submission")


FORMS = {  # form → (how to make it, the form the report names)
    "folder with autodiff/": (folder_with_autodiff, "folder with autodiff/"),
    "hw/autodiff/ one level down": (nested_folder, "folder with autodiff/"),
    "flat folder": (flat_folder, "folder with the modules at its top"),
    "zip of a folder with autodiff/": (lambda t: zip_of(folder_with_autodiff(t), t / "hw.zip"), "zip with autodiff/"),
    "zip of hw/autodiff/": (lambda t: zip_of(nested_folder(t), t / "hw.zip"), "zip with autodiff/"),
    "zip of a flat folder": (lambda t: zip_of(flat_folder(t), t / "hw.zip"), "zip with the modules at its top"),
    "notebook": (lambda t: reference_notebook(t / "hw.ipynb"), "notebook"),
}


@pytest.mark.slow
@pytest.mark.parametrize("make, form", FORMS.values(), ids=FORMS.keys())
def test_reference_scores_full_marks_in_every_form(tmp_path, make, form):
    report = grade_and_validate(make(tmp_path))
    assert report["submission"]["form"] == form
    assert report["submission"]["missing"] == []
    assert report["score"] == report["max_score"] == 100, full_marks_except(report)


@pytest.mark.slow
@pytest.mark.parametrize("tensor_import", ["from tensor import", "from autodiff.tensor import",
                                           "import tensor\nfrom tensor import"])
def test_flat_modules_may_import_the_course_modules_by_their_bare_names(tmp_path, tensor_import):
    report = grade_and_validate(flat_copy(tmp_path / "flat", tensor_import))
    assert report["score"] == 100, full_marks_except(report)


@pytest.mark.slow
def test_bare_course_module_names_are_the_autodiff_modules_themselves(tmp_path):
    check = ("import tensor, ops, autodiff.tensor, autodiff.ops\n"
             "assert tensor is autodiff.tensor and ops is autodiff.ops, 'a second copy of the course modules'\n"
             "assert tensor.__spec__.name == 'autodiff.tensor', tensor.__spec__\n")
    folder = flat_copy(tmp_path / "flat", "from tensor import")
    (folder / "losses.py").write_text(check + (folder / "losses.py").read_text())
    report = grade_and_validate(folder)
    assert report["score"] == 100, feedback(report, "CrossEntropyLoss")


def test_nested_folder_says_where_the_modules_were_read(tmp_path):
    submission = load_submission(nested_folder(tmp_path))
    assert "graded modules read from hw/autodiff/" in submission.notes


@pytest.mark.slow
def test_notebook_lists_the_statements_it_skipped(tmp_path):
    report = grade_and_validate(reference_notebook(tmp_path / "hw.ipynb"))
    notes = "\n".join(report["submission"]["notes"])
    assert "4 other statements were skipped" in notes  # magics and !pip are dropped without a note
    for first_line in ("model = MLP3(seed=0)", "for epoch in range(10**9):", "train(model, images, labels",
                       "raise RuntimeError"):
        assert f": {first_line}" in notes


# -- what costs what -----------------------------------------------------------------------------

IMPORT_FAILURES = {
    "syntax error in losses.py": ("losses", "import numpy as np\n\ndef broken(:\n    pass"),
    "RuntimeError at import of activations.py": ("activations", "import numpy as np\nraise RuntimeError('not ready')"),
    "sys.exit(0) at import of regularizers.py": ("regularizers", "import numpy as np\nimport sys\nsys.exit(0)"),
    "os._exit(0) at import of losses.py": ("losses", "import numpy as np\nimport os\nos._exit(0)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("module, head", IMPORT_FAILURES.values(), ids=IMPORT_FAILURES.keys())
def test_module_that_fails_to_import_costs_only_its_own_names(tmp_path, module, head):
    report = grade_and_validate(reference_copy(tmp_path, {module: [("import numpy as np", head)]}))
    lost = [name for name, home in GRADED.items() if home == module] + (["MNIST"] if module in IMPORT_FAILS_MNIST else [])
    assert full_marks_except(report, *lost) == {}
    assert all(group_scores(report)[name][0] == 0 for name in lost)
    assert f"{module}.py" in feedback(report, lost[0])


@pytest.mark.slow
def test_missing_modules_and_names_are_listed_and_cost_only_themselves(tmp_path):
    folder = reference_copy(tmp_path, {"ops": [("class Sum(Function):", "class Total(Function):")]})
    (folder / "autodiff" / "losses.py").unlink()
    report = grade_and_validate(folder)
    assert report["submission"]["missing"] == ["Sum", "CrossEntropyLoss", "NLLLoss"]
    assert full_marks_except(report, "Sum", "CrossEntropyLoss", "NLLLoss", "MNIST") == {}
    assert group_scores(report)["Sum"][0] == 0
    assert "Sum is not defined in ops.py" in feedback(report, "Sum")


@pytest.mark.slow
def test_students_tensor_module_is_ignored_and_its_sabotage_has_no_effect(tmp_path):
    sabotage = [("        self.saved_tensors = arrays", "        self.saved_tensors = ()  # sabotaged"),
                ("    if grad.shape == shape:", "    return grad * 0\n    if grad.shape == shape:")]
    report = grade_and_validate(reference_copy(tmp_path, {"tensor": sabotage}))
    assert "autodiff/tensor.py (the course's copy is used)" in report["submission"]["ignored"]
    assert "autodiff/tensor.py" not in report["submission"]["files"]
    assert report["score"] == 100, full_marks_except(report)


# -- what cannot be read -------------------------------------------------------------------------

def text_file(tmp_path):
    (tmp_path / "answers.txt").write_text("class Mul: ...")
    return tmp_path / "answers.txt"


def corrupt_zip(tmp_path):
    (tmp_path / "hw.zip").write_bytes(b"PK\x03\x04" + b"\x00 not really a zip" * 20)
    return tmp_path / "hw.zip"


def invalid_notebook(tmp_path):
    (tmp_path / "hw.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    return tmp_path / "hw.ipynb"


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


UNREADABLE = {"a .txt file": text_file, "a path that does not exist": lambda t: t / "nowhere",
              "a corrupt zip": corrupt_zip, "a notebook that is not JSON": invalid_notebook,
              "an empty folder": empty_folder}


@pytest.mark.slow
@pytest.mark.parametrize("make", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_submission_scores_zero_and_says_what_was_expected(tmp_path, make):
    report = grade_and_validate(make(tmp_path))
    error = report["submission"]["error"]
    assert report["score"] == 0 and report["submission"]["form"] == "unreadable"
    assert "expected a folder holding autodiff/" in error and ".ipynb" in error
    assert report["messages"] == [f"not graded: {error}"]
    assert "Traceback" not in error
    assert all(test["score"] == 0 and test["status"] == "error" for test in report["tests"])


# -- what is read (zip safety, links, bombs: tests/test_attacks.py) --------------------------------

def test_notebook_files_hash_the_bytes_handed_in(tmp_path):
    notebook = reference_notebook(tmp_path / "hw.ipynb")
    notebook.write_bytes(notebook.read_bytes().replace(b"\n", b"\r\n"))  # saved on Windows
    submission = load_submission(notebook)
    assert submission.found == list(GRADED)
    assert submission.hashes == {"hw.ipynb": hashlib.sha256(notebook.read_bytes()).hexdigest()}


def test_files_saved_with_a_byte_order_mark_are_read_like_any_other(tmp_path):
    folder = reference_copy(tmp_path / "submission")
    notebook = reference_notebook(tmp_path / "hw.ipynb")
    for path in [folder / "autodiff" / f"{module}.py" for module in GRADED_MODULES] + [notebook]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Notepad saves UTF-8
    for submission in (load_submission(folder), load_submission(notebook)):
        assert submission.error is None and submission.found == list(GRADED)
        assert not any("syntax error" in note for note in submission.notes)
