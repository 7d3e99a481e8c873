"""Every form a student may hand in (SPEC.md, "Submissions"): the reference scores 100 in each; what
cannot be read scores 0 with a message; a graded module that fails to import costs only its own
names; the course's modules are always the course's. (Archives and notebooks built to attack the
grader: tests/test_attacks.py.)"""
import ast
import functools
import hashlib
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader import GRADED, GRADED_MODULES
from grader.submission import MAX_HELPER_MODULES, load_submission
from tests.support.grading import feedback, full_marks_except, grade_and_validate, graded_once, group_scores, reference_copy
from tests.support.paths import SOLUTIONS

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
    path.write_text(reference_notebook_text())
    return path


@functools.cache
def reference_notebook_text():
    """The same bytes for every test of this process (nbformat draws each cell's id at random), so
    that graded_once grades it once."""
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    cells = [markdown("# Homework: autodiff"),
             code("%matplotlib inline\n!pip install -q tqdm\nimport matplotlib.pyplot as plt"),
             code("from autodiff.tensor import Function, reduce_grad_to_shape, EPS\nimport numpy as np")]
    cells += [code(definition) for module in GRADED_MODULES for definition in reference_definitions(module)]
    cells += [code(text) for text in SKIPPED_CELLS]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


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
# The reference notebook's grading, shared with test_notebook_lists_the_statements_it_skipped
# (graded_once, in one test process: its bytes are this process's).
REFERENCE_NOTEBOOK = pytest.mark.xdist_group("reference-notebook")


@pytest.mark.slow
@pytest.mark.parametrize("make, form", [pytest.param(make, form, id=name, marks=[REFERENCE_NOTEBOOK] if form == "notebook" else [])
                                        for name, (make, form) in FORMS.items()])
def test_reference_scores_full_marks_in_every_form(tmp_path, make, form):
    report = graded_once(make(tmp_path))  # the folder with autodiff/ is the reference other tests grade too
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
@REFERENCE_NOTEBOOK
def test_notebook_reports_what_each_cell_did(tmp_path):
    report = graded_once(reference_notebook(tmp_path / "hw.ipynb"))
    cells = report["submission"]["cells"]
    assert [cell["cell"] for cell in cells] == list(range(2, 2 + 2 + len(GRADED) + len(SKIPPED_CELLS)))  # 1 is markdown
    assert cells[0]["neutralised"][:2] == ["%matplotlib", "!pip install -q tqdm"]  # matplotlib: in the sandbox's runtime or not
    # the first: MLP3 is not defined, the cell goes on into its endless loop; then train not defined; then a raise
    assert [cell["outcome"] for cell in cells[-3:]] == ["over budget", "raised", "raised"]
    notes = "\n".join(report["submission"]["notes"])
    assert "cell 2: neutralised: %matplotlib, !pip install -q tqdm" in notes
    assert f"cell {cells[-1]['cell']}: raised: RuntimeError: run the cells above first" in notes
    assert f"cell {cells[-2]['cell']}: raised: NameError: name 'train' is not defined" in notes


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
    assert len(submission.cells) == 2 + len(GRADED) + len(SKIPPED_CELLS)
    assert submission.hashes == {"hw.ipynb": hashlib.sha256(notebook.read_bytes()).hexdigest()}


def test_files_saved_with_a_byte_order_mark_are_read_like_any_other(tmp_path):
    folder = reference_copy(tmp_path / "submission")
    notebook = reference_notebook(tmp_path / "hw.ipynb")
    for path in [folder / "autodiff" / f"{module}.py" for module in GRADED_MODULES] + [notebook]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Notepad saves UTF-8
    submission = load_submission(folder)
    assert submission.error is None and submission.found == list(GRADED)
    assert not any("syntax error" in note or "cannot be read" in note for note in submission.notes)
    assert load_submission(notebook).cells == load_submission(reference_notebook(tmp_path / "plain.ipynb")).cells


# -- helper modules of the student's own -------------------------------------------------------------

UTILS = """import numpy as np


def unbroadcast(grad, shape):
    \"\"\"The student's own reduce_grad_to_shape: sum the broadcast axes away, one at a time.\"\"\"
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad
"""
OWN_REDUCE = [("from .tensor import Function, reduce_grad_to_shape",
               "from .tensor import Function\nfrom .utils import unbroadcast as reduce_grad_to_shape")]


def package_with_a_helper(tmp_path):
    return reference_copy(tmp_path / "submission", {"ops": OWN_REDUCE}, files={"autodiff/utils.py": UTILS})


def flat_with_a_helper(tmp_path):
    folder = flat_copy(tmp_path / "flat", "from tensor import")
    (folder / "ops.py").write_text((folder / "ops.py").read_text().replace(
        "from tensor import Function, reduce_grad_to_shape", "from tensor import Function\nfrom utils import unbroadcast as reduce_grad_to_shape"))
    (folder / "utils.py").write_text(UTILS)
    return folder


@pytest.mark.slow
def test_package_with_a_helper_module_of_its_own_scores_full_marks(tmp_path):
    report = grade_and_validate(package_with_a_helper(tmp_path))
    assert report["score"] == 100, full_marks_except(report)
    assert report["submission"]["helpers"] == ["utils"]
    assert "autodiff/utils.py" in report["submission"]["files"]


@pytest.mark.slow
def test_flat_modules_import_their_helper_by_its_bare_name(tmp_path):
    report = grade_and_validate(flat_with_a_helper(tmp_path))
    assert report["score"] == 100, full_marks_except(report)
    assert report["submission"]["helpers"] == ["utils"]


def test_helper_modules_are_bounded_and_a_course_name_stays_the_courses(tmp_path):
    helpers = {f"autodiff/helper{i:02}.py": "X = 1\n" for i in range(MAX_HELPER_MODULES + 1)}
    folder = reference_copy(tmp_path, files={**helpers, "autodiff/nn.py": "raise SystemExit", "autodiff/my-utils.py": "",
                                             "autodiff/sub/deep.py": ""})
    submission = load_submission(folder)
    assert len(submission.helpers) == MAX_HELPER_MODULES
    assert f"autodiff/helper{MAX_HELPER_MODULES:02}.py (not used: more than {MAX_HELPER_MODULES} helper modules)" in submission.ignored
    assert "autodiff/nn.py (the course's copy is used)" in submission.ignored
    assert "autodiff/my-utils.py (not graded: not a module name Python can import)" in submission.ignored
    assert f"autodiff/sub/deep.py (not used: more than {MAX_HELPER_MODULES} helper modules)" in submission.ignored
    assert "nn" not in submission.helpers


# -- notebooks ---------------------------------------------------------------------

def notebook_of(path, *cells):
    path.write_text(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])))
    return path


def notebook_feeding_its_definitions(tmp_path):
    """EPS = np.float64(1e-12), a call the graded classes use; autodiff.nn imported first."""
    definitions = [d for module in GRADED_MODULES for d in reference_definitions(module)]
    return notebook_of(tmp_path / "hw.ipynb",
                       "import numpy as np\nfrom autodiff.nn import MLP3\nfrom autodiff.train import train\n"
                       "from autodiff.tensor import Function, reduce_grad_to_shape",
                       "EPS = np.float64(1e-12)\nLOG_FLOOR = float(np.log(EPS))", *definitions,
                       "model = MLP3(seed=0)\nhistory = train(model, None, None, epochs=10**6, batch_size=1, lr=0.1)")


@pytest.mark.slow
def test_notebook_runs_the_calls_that_feed_its_definitions_and_its_early_course_imports(tmp_path):
    """EPS = np.float64(1e-12) is a call the graded classes use; importing autodiff.nn first must
    not make MLP3 bind the starter's classes; the course's train answers without training."""
    report = grade_and_validate(notebook_feeding_its_definitions(tmp_path))
    assert report["score"] == 100, full_marks_except(report)
    assert {cell["outcome"] for cell in report["submission"]["cells"]} == {"ran"}


WRITTEN = {module: (SOLUTIONS / "autodiff" / f"{module}.py").read_text() for module in GRADED_MODULES}


def writefile_notebook(tmp_path):
    """%%writefile cells for every graded module and a helper; a Mul of its own before them (with a
    sign flip: the later file wins), a ReLU of its own after them (it wins)."""
    sign_flip = next(d for d in reference_definitions("ops") if d.startswith("class Mul")).replace(
        "grad_a = grad_output * b", "grad_a = -grad_output * b")
    relu = next(d for d in reference_definitions("activations") if d.startswith("class ReLU"))
    notebook = notebook_of(
        tmp_path / "hw.ipynb",
        "import numpy as np\nfrom autodiff.tensor import Function, reduce_grad_to_shape, EPS",
        sign_flip,                                                            # cell 2: replaced by the later file
        "%%writefile autodiff/utils.py\n" + UTILS,
        "%%writefile autodiff/ops.py\n" + WRITTEN["ops"].replace(*OWN_REDUCE[0]),
        *[f"%%writefile autodiff/{m}.py\n{WRITTEN[m]}" for m in ("activations", "losses", "regularizers")],
        "%%writefile autodiff/tensor.py\nraise SystemExit('sabotage')",
        "from autodiff.ops import Mul, Matmul, Pow, Sum",
        relu)                                                                 # cell 10: the notebook's own, after the file
    return notebook


@pytest.mark.slow
def test_writefile_cells_become_the_submissions_modules_and_the_later_definition_wins(tmp_path):
    notebook = writefile_notebook(tmp_path)
    submission = load_submission(notebook)
    assert set(submission.sources) == set(GRADED_MODULES) and list(submission.helpers) == ["utils"]
    report = grade_and_validate(notebook)
    assert report["score"] == 100, full_marks_except(report)
    notes = "\n".join(report["submission"]["notes"])
    assert "cell 4: %%writefile autodiff/ops.py is module ops of the submission" in notes
    assert "cell 8: %%writefile autodiff/tensor.py: the course's tensor.py is used" in notes
    assert not any(cell["neutralised"] for cell in report["submission"]["cells"])  # %%writefile is not neutralised: laid out


@pytest.mark.slow
def test_a_writefile_module_written_after_the_notebooks_own_definition_is_graded(tmp_path):
    """Cell 2's Mul flips a sign; ops.py, written later, is right: graded, though the namespace
    still holds cell 2's (the later of the two in the notebook is graded)."""
    notebook = writefile_notebook(tmp_path)
    data = nbformat.read(notebook, as_version=4)
    data.cells = [cell for cell in data.cells if not cell.source.startswith("from autodiff.ops import")]
    nbformat.write(data, notebook)
    report = grade_and_validate(notebook)
    assert report["score"] == 100, full_marks_except(report)


def notebook_with_its_own_engine(tmp_path):
    engine = "class Function:\n    @classmethod\n    def apply(cls, *inputs, **options):\n        raise RuntimeError('my own engine')"
    notebook = reference_notebook(tmp_path / "hw.ipynb")
    data = nbformat.read(notebook, as_version=4)
    data.cells.insert(3, nbformat.v4.new_code_cell(engine))
    nbformat.write(data, notebook)
    return notebook


@pytest.mark.slow
def test_a_notebooks_own_engine_is_replaced_by_the_courses(tmp_path):
    report = grade_and_validate(notebook_with_its_own_engine(tmp_path))
    assert report["score"] == 100, full_marks_except(report)
    assert any("class Function (the course's is used)" in note for note in report["submission"]["notes"])


# The correct-but-unusual submissions of this file, for the flake audit (benchmarks/flake_audit.py).
CORRECT_FORMS = {"package with a helper module": package_with_a_helper, "flat modules with a helper": flat_with_a_helper,
                 "notebook feeding its definitions": notebook_feeding_its_definitions, "%%writefile notebook": writefile_notebook,
                 "notebook with its own engine": notebook_with_its_own_engine, **{f"form: {name}": make for name, (make, _) in FORMS.items()}}
