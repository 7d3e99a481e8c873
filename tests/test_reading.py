"""A submission is read the way the student's own tool reads it: Python (a coding line, a BOM,
any module name the package can import), unzip and Explorer (backslashes, folder entries, names
in a code page), Jupyter and Colab (cells run in order through IPython, magics and all). Each
correct fixture here is written the way the tool in question writes it and scores 100 at the
isolation levels a course grades with; each broken one loses what its broken part costs and
nothing more. (The forms themselves: test_grader_forms.py; notebooks built to attack the grader:
test_attacks.py.)"""
import ast
import json
import shutil
import struct
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from grader import GRADED, GRADED_MODULES
from grader.course import COURSE_PACKAGE
from grader.grade import grade
from grader.notebook import MAX_LISTED, CellResult, as_data, cell_notes
from grader.report import validate
from grader.sandbox.launch import SANDBOX_FILES
from grader.sandbox.levels import level_available
from grader.submission import MAX_LISTED as SUBMISSION_LISTED
from grader.submission import MAX_ZIP_MEMBERS, Submission, load_submission
from tests.support.grading import FAST_RUBRIC, feedback, full_marks_except, group_scores, reference_copy
from tests.support.paths import SOLUTIONS
from tests.test_grader_forms import reference_definitions

LEVELS = [pytest.param(level, marks=pytest.mark.skipif(not level_available(level), reason=f"no {level} level here"))
          for level in ("namespace", "uid")]
KOREAN_DOC = "# 곱셈 연산: 브로드캐스팅된 축은 reduce_grad_to_shape 로 합친다\n"


def graded(path, isolation):
    report = grade(path, FAST_RUBRIC, isolation)
    validate(report)
    return report


def definitions():
    """{graded name: its reference source} (the classes and functions, solution markers removed)."""
    return {ast.parse(source).body[0].name: source for module in GRADED_MODULES for source in reference_definitions(module)}


# -- source files, as Python reads them --------------------------------------------------------

def cp949_package(tmp_path):
    """Saved by a Korean Windows editor: cp949 with its coding line, Korean comments, CRLF."""
    folder = reference_copy(tmp_path / "submission")
    for module in GRADED_MODULES:
        path = folder / "autodiff" / f"{module}.py"
        text = "# -*- coding: cp949 -*-\n" + KOREAN_DOC + path.read_text().replace('"""', '"""한글 설명. ', 1)
        path.write_bytes(text.replace("\n", "\r\n").encode("cp949", "replace"))  # ⊙ and ᵀ are not in cp949
    return folder


def bom_package(tmp_path):
    """Saved by Notepad as UTF-8: a byte-order mark, then a Korean comment."""
    folder = reference_copy(tmp_path / "submission")
    for module in GRADED_MODULES:
        path = folder / "autodiff" / f"{module}.py"
        path.write_bytes(b"\xef\xbb\xbf" + (KOREAN_DOC + path.read_text()).encode())
    return folder


def helper_named_like_the_standard_library(tmp_path):
    """autodiff/types.py and autodiff/random.py, imported relatively: unambiguous inside the package."""
    utils = "import numpy as np\n\n\ndef unbroadcast(grad, shape):\n    while grad.ndim > len(shape):\n" \
            "        grad = grad.sum(axis=0)\n    for axis, size in enumerate(shape):\n" \
            "        if size == 1 and grad.shape[axis] != 1:\n            grad = grad.sum(axis=axis, keepdims=True)\n    return grad\n"
    return reference_copy(tmp_path / "submission",
                          {"ops": [("from .tensor import Function, reduce_grad_to_shape",
                                    "from .tensor import Function\nfrom .types import unbroadcast as reduce_grad_to_shape\n"
                                    "from .random import SEED  # noqa")]},
                          files={"autodiff/types.py": utils, "autodiff/random.py": "SEED = 0\n"})


# -- zips, as unzip and Explorer read them -------------------------------------------------------

class RawName(zipfile.ZipInfo):
    """An entry whose name is written as these bytes, without the UTF-8 flag (as Windows' own
    tools write names in the machine's code page)."""

    def __init__(self, raw, *args, **kwargs):
        super().__init__(raw.decode("cp437"), *args, **kwargs)
        self.raw = raw

    def _encodeFilenameFlags(self):
        return self.raw, self.flag_bits & ~0x800


def files_of(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def powershell_zip(tmp_path):
    """Windows PowerShell 5.1's Compress-Archive: backslashes as separators, no folder entries."""
    folder = reference_copy(tmp_path / "hw")
    with zipfile.ZipFile(tmp_path / "hw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_of(folder):
            archive.writestr(zipfile.ZipInfo(str(path.relative_to(tmp_path)).replace("/", "\\")), path.read_bytes())
    return tmp_path / "hw.zip"


def explorer_zip(tmp_path):
    """Explorer's "Send to > Compressed folder" on Korean Windows: a folder entry for each folder
    (the MS-DOS directory attribute), names in cp949 without the UTF-8 flag: the folder 과제1 and
    a helper module 유틸.py (a name Python imports)."""
    folder = reference_copy(tmp_path / "과제1", {"ops": [("from .tensor import Function, reduce_grad_to_shape",
                                                         "from .tensor import Function\nfrom .유틸 import 줄이기 as reduce_grad_to_shape")]},
                            files={"autodiff/유틸.py": "from .tensor import reduce_grad_to_shape as 줄이기  # noqa\n"})
    with zipfile.ZipFile(tmp_path / "hw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for directory in ("과제1/", "과제1/autodiff/"):
            entry = RawName(directory.encode("cp949"))
            entry.external_attr = 0x10
            archive.writestr(entry, b"")
        for path in files_of(folder):
            archive.writestr(RawName(str(path.relative_to(tmp_path)).encode("cp949")), path.read_bytes())
    return tmp_path / "hw.zip"


def zip_with_its_virtual_environment(tmp_path):
    """The whole project folder zipped: .venv/ and venv/ (thousands of files), caches, checkpoints."""
    folder = reference_copy(tmp_path / "project")
    with zipfile.ZipFile(tmp_path / "hw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_of(folder):
            archive.writestr(str(path.relative_to(tmp_path)), path.read_bytes())
        for i in range(MAX_ZIP_MEMBERS + 500):
            archive.writestr(f"project/.venv/lib/python3.11/site-packages/pkg/module{i}.py", "x = 1\n")
            archive.writestr(f"project/venv/lib/module{i}.py", "x = 1\n")
        archive.writestr("project/autodiff/__pycache__/ops.cpython-311.pyc", b"\0" * 100)
        archive.writestr("project/.ipynb_checkpoints/hw-checkpoint.ipynb", "{}")
    return tmp_path / "hw.zip"


# -- notebooks, as Jupyter, Colab and VS Code write them ------------------------------------------------

def colab_notebook(cells):
    """The JSON Colab saves: nbformat 4.0, ids in each cell's metadata, sources as lists of lines,
    outputs and execution counts."""
    def code(number, source):
        return {"cell_type": "code", "execution_count": number, "metadata": {"id": f"cell{number:04}", "colab": {}},
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["done\n"]}],
                "source": source.splitlines(keepends=True)}
    return {"nbformat": 4, "nbformat_minor": 0,
            "metadata": {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"},
                         "language_info": {"name": "python"}},
            "cells": [{"cell_type": "markdown", "metadata": {"id": "title"}, "source": ["# 과제 2: 자동 미분\n"]}] +
                     [code(number, source) for number, source in enumerate(cells, 1)]}


def vscode_notebook(cells):
    """The JSON VS Code saves: nbformat 4.5 with cell ids, Windows line ends inside the sources."""
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": ".venv", "language": "python"},
                         "language_info": {"name": "python", "version": "3.11.4"}, "vscode": {"interpreter": {"hash": "ab12"}}},
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{number}", "metadata": {}, "outputs": [],
                       "source": source.replace("\n", "\r\n").splitlines(keepends=True)} for number, source in enumerate(cells, 1)]}


def written(path, notebook):
    path.write_text(json.dumps(notebook, ensure_ascii=False, indent=1))
    return path


COURSE_IMPORTS = "import numpy as np\nimport matplotlib.pyplot as plt\nfrom autodiff.tensor import Function, reduce_grad_to_shape, EPS"
TRAIN_FOR_AN_HOUR = """\
import importlib
import autodiff.nn, autodiff.ops, autodiff.activations, autodiff.losses
from autodiff.data import load_mnist
from autodiff.train import train, prepare_images
autodiff.ops.Mul, autodiff.ops.Matmul, autodiff.ops.Pow, autodiff.ops.Sum = Mul, Matmul, Pow, Sum
autodiff.activations.ReLU, autodiff.activations.Softmax, autodiff.activations.Log = ReLU, Softmax, Log
autodiff.losses.CrossEntropyLoss, autodiff.losses.NLLLoss = CrossEntropyLoss, NLLLoss
importlib.reload(autodiff.nn)
data = load_mnist()
model = autodiff.nn.MLP3(seed=0)
train(model, prepare_images(data.train_images), data.train_labels, epochs=3000, batch_size=1, lr=0.01)
plt.plot([1, 2, 3])
"""


def colab(tmp_path):
    """Drive mounted, %cd into it, !pip, matplotlib (not in the sandbox), the definitions, then the
    course's training for an hour and a training loop of the student's own after a definition."""
    names = definitions()
    cells = ["from google.colab import drive\ndrive.mount('/content/drive')\n%cd /content/drive/MyDrive/hw\n!pip install -q tqdm",
             "import os\nos.chdir('/content/drive/MyDrive/hw')\n" + COURSE_IMPORTS + "\nplt.rcParams['figure.figsize'] = (8, 4)"]
    cells += [names[name] for name in GRADED if name != "ReLU"]
    cells += [names["ReLU"] + "\n\nlosses = []\nfor step in range(10**12):\n    losses.append(step % 7)\n",
              TRAIN_FOR_AN_HOUR]
    return written(tmp_path / "hw.ipynb", colab_notebook(cells))


def attached_backward(source, name):
    """The class without its backward, then the backward attached to it by assignment."""
    tree = ast.parse(source)
    backward = next(n for n in tree.body[0].body if isinstance(n, ast.FunctionDef) and n.name == "backward")
    lines = source.splitlines()
    start = backward.decorator_list[0].lineno if backward.decorator_list else backward.lineno
    body = textwrap.dedent("\n".join(lines[start:backward.end_lineno])).replace("def backward(", f"def _{name.lower()}_backward(")
    return "\n".join(lines[:start - 1] + lines[backward.end_lineno:]) + f"\n\n{body}\n\n{name}.backward = staticmethod(_{name.lower()}_backward)\n"


def vscode(tmp_path):
    """`from __future__ import annotations` atop a cell, magics inside `if`, a backward attached
    by assignment and one by a decorator, a class under an `if` on a flag, the course's engine
    pasted in, a cell that tries the ops on the course's data."""
    names = definitions()
    engine = (SOLUTIONS / "autodiff" / "tensor.py").read_text()
    matmul = attached_backward(names["Matmul"], "Matmul").replace(
        "Matmul.backward = staticmethod(_matmul_backward)",
        "def method_of(cls):\n    def attach(function):\n        setattr(cls, 'backward', staticmethod(function))\n"
        "        return function\n    return attach\n\n\n@method_of(Matmul)\ndef _attached(ctx, grad_output):\n"
        "    return _matmul_backward(ctx, grad_output)")
    sum_annotated = "from __future__ import annotations\n\n" + names["Sum"].replace(
        "def forward(ctx, a, axis=None, keepdims=False):",
        "def forward(ctx, a: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:")
    cells = ["import sys\nIN_COLAB = 'google.colab' in sys.modules\nif IN_COLAB:\n    !pip install -q numpy\n    %cd /content\n"
             "else:\n    %matplotlib inline\n    %load_ext autoreload\n    %autoreload 2",
             engine,
             attached_backward(names["Mul"], "Mul"), matmul,
             "USE_STABLE_POW = True\nif USE_STABLE_POW:\n" + textwrap.indent(names["Pow"], "    ") + "\nelse:\n    Pow = None",
             sum_annotated]
    cells += [names[name] for name in GRADED if name not in ("Mul", "Matmul", "Pow", "Sum")]
    cells += ["%%time\nfrom autodiff.data import load_mnist\nfrom autodiff.train import prepare_images\nfrom autodiff.nn import MLP3\n"
              "data = load_mnist()\nx = Tensor(prepare_images(data.train_images[:8]))\nprint(Softmax.apply(x).data.sum(axis=1))\n"
              "print(MLP3(seed=0)(x).data.shape)",
              "Mul.apply(Tensor(np.ones(3)), Tensor(np.ones(3))).data"]
    return written(tmp_path / "hw.ipynb", vscode_notebook(cells))


def deflate64_zip(tmp_path):
    """Entries in Deflate64 (7-Zip's option, and Windows' own for some files), which zipfile
    cannot read and unzip and Explorer do: the zip written by hand, as those tools lay it out."""
    import inflate64

    folder = reference_copy(tmp_path / "hw")
    archive, central = bytearray(), bytearray()
    entries = [(str(path.relative_to(tmp_path)).encode(), path.read_bytes()) for path in files_of(folder)]
    for name, data in entries:
        deflater = inflate64.Deflater()
        packed, crc, offset = deflater.deflate(data) + deflater.flush(), zlib.crc32(data), len(archive)
        archive += struct.pack("<IHHHHHIIIHH", 0x04034B50, 21, 0, 9, 0, 0, crc, len(packed), len(data), len(name), 0) + name + packed
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 21, 21, 0, 9, 0, 0, crc, len(packed), len(data), len(name),
                               0, 0, 0, 0, 0, offset) + name
    archive += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(archive), 0)
    (tmp_path / "hw.zip").write_bytes(archive)
    return tmp_path / "hw.zip"


def handout_zipped_whole(tmp_path):
    """The handout's folder zipped as it was: its blank autodiff/, the work in its notebook, the
    check cell's build/notebook.ipynb beside it."""
    from tools.make_notebook import build_notebook

    folder = tmp_path / "autodiff-handout"
    shutil.copytree(COURSE_PACKAGE, folder / "autodiff")
    (folder / "autodiff.ipynb").write_text(build_notebook(filled=True))
    (folder / "build").mkdir()
    (folder / "build" / "notebook.ipynb").write_text(build_notebook())
    with zipfile.ZipFile(tmp_path / "hw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_of(folder):
            archive.write(path, str(path.relative_to(tmp_path)))
    return tmp_path / "hw.zip"


def without(source, name):
    """A module's source without the top-level definition of name."""
    node = next(node for node in ast.parse(source).body if getattr(node, "name", None) == name)
    lines = source.splitlines()
    return "\n".join(lines[:node.lineno - 1] + lines[node.end_lineno:]) + "\n"


def notebook_writing_its_own_files(tmp_path):
    """Files written as Jupyter writes them, then imported or run: a %%writefile after a blank
    line, holding only some of its module's names (Pow stays the notebook's own); one to a path
    in a variable; a module written by open().write; a script written, then %run."""
    source = {module: (SOLUTIONS / "autodiff" / f"{module}.py").read_text().replace("from .tensor", "from autodiff.tensor")
              for module in GRADED_MODULES}
    names = definitions()
    cells = [COURSE_IMPORTS + "\nimport os", names["Pow"],
             "\n%%writefile autodiff/ops.py\n" + without(source["ops"], "Pow"),
             "from autodiff.ops import Mul, Matmul, Sum",
             "ACTIVATIONS = os.path.join('autodiff', 'activations.py')",
             "%%writefile $ACTIVATIONS\n" + source["activations"],
             "from autodiff.activations import ReLU, Softmax, Log",
             f"with open('my_losses.py', 'w') as file:\n    file.write({source['losses']!r})\nfrom my_losses import CrossEntropyLoss, NLLLoss",
             "%%writefile l2.py\n" + source["regularizers"],
             "%run l2.py"]
    return written(tmp_path / "hw.ipynb", vscode_notebook(cells))


def notebook_after_a_broken_draft(tmp_path):
    """A %%writefile draft of ops.py that does not parse, then every graded name defined in cells:
    Jupyter never imports the draft, and neither may the grader."""
    cells = ["%%writefile autodiff/ops.py\nclass Mul(Function:\n    pass\n", COURSE_IMPORTS, *definitions().values()]
    return written(tmp_path / "hw.ipynb", colab_notebook(cells))


def colab_setup_that_needs_the_students_world(tmp_path):
    """A setup cell that asks for the student's id and unpacks the handout from their Drive, then
    imports the course's engine: in Colab all of it runs; here the first two raise, and the cell
    goes on."""
    setup = ("import zipfile\nSTUDENT_ID = input('student id: ')\n"
             "zipfile.ZipFile('/content/drive/MyDrive/autodiff-handout.zip').extractall('.')\n" + COURSE_IMPORTS)
    return written(tmp_path / "hw.ipynb", colab_notebook([setup, *definitions().values()]))


def notebook_writing_where_jupyter_stood(tmp_path):
    """Files written as the student's Jupyter wrote them: a Windows path, a %cd into autodiff/ and
    back, a notebook kept in a subfolder writing ../autodiff/, a folder of its own put on sys.path."""
    source = {module: (SOLUTIONS / "autodiff" / f"{module}.py").read_text().replace("from .tensor", "from autodiff.tensor")
              for module in GRADED_MODULES}
    cells = [COURSE_IMPORTS + "\nimport os, sys",
             "%%writefile autodiff\\ops.py\n" + source["ops"],
             "%cd autodiff", "%%writefile activations.py\n" + source["activations"], "%cd ..",
             "%%writefile ../autodiff/losses.py\n" + source["losses"],
             "os.makedirs('src', exist_ok=True)\nsys.path.append('src')", "%%writefile src/l2.py\n" + source["regularizers"],
             "from autodiff.ops import Mul, Matmul, Pow, Sum\nfrom autodiff.activations import ReLU, Softmax, Log\n"
             "from autodiff.losses import CrossEntropyLoss, NLLLoss\nfrom l2 import l2_penalty, l2_grad"]
    return written(tmp_path / "hw.ipynb", vscode_notebook(cells))


def printing_everything(tmp_path):
    """A loss that prints what it computes, far past the worker log's 32 MB: in the student's own
    Jupyter a print never fails."""
    return reference_copy(tmp_path / "submission", {"losses": [("    def forward(ctx, p, t):\n",
                                                                "    def forward(ctx, p, t):\n        print('p =', p, '.' * 500_000)\n")]})


def handout_zipped_from_windows_with_data(tmp_path):
    """The handout's folder from a Windows checkout (CRLF), its blank notebook beside Colab's
    "Copy of autodiff.ipynb", and 70 MB of data the student downloaded: only the copy is graded."""
    from tools.make_notebook import build_notebook

    folder = tmp_path / "autodiff-handout"
    for path in COURSE_PACKAGE.glob("*.py"):
        (folder / "autodiff").mkdir(parents=True, exist_ok=True)
        (folder / "autodiff" / path.name).write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    (folder / "autodiff.ipynb").write_text(build_notebook())
    (folder / "Copy of autodiff.ipynb").write_text(build_notebook(filled=True))
    with zipfile.ZipFile(tmp_path / "hw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files_of(folder):
            archive.write(path, str(path.relative_to(tmp_path)))
        archive.writestr("autodiff-handout/data/MNIST/raw/train-images-idx3-ubyte", bytes(70 << 20))
    return tmp_path / "hw.zip"


CORRECT = {"cp949 modules with a coding line": cp949_package, "UTF-8 modules with a BOM": bom_package,
           "helpers named like the standard library's": helper_named_like_the_standard_library,
           "zip from PowerShell's Compress-Archive": powershell_zip, "zip from Explorer, cp949 names": explorer_zip,
           "zip with its virtual environment": zip_with_its_virtual_environment,
           "notebook saved by Colab": colab, "notebook saved by VS Code": vscode,
           "zip in Deflate64": deflate64_zip, "the handout zipped whole, the work in its notebook": handout_zipped_whole,
           "notebook writing its own files": notebook_writing_its_own_files,
           "notebook after a broken %%writefile draft": notebook_after_a_broken_draft,
           "Colab setup that needs the student's world": colab_setup_that_needs_the_students_world,
           "notebook writing where Jupyter stood": notebook_writing_where_jupyter_stood,
           "printing everything": printing_everything,
           "the handout from Windows, a Colab copy, 70 MB of data": handout_zipped_from_windows_with_data}


@pytest.mark.slow
@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("make", CORRECT.values(), ids=CORRECT.keys())
def test_correct_work_written_by_the_students_own_tools_scores_full_marks(tmp_path, make, isolation):
    report = graded(make(tmp_path), isolation)
    assert report["submission"]["missing"] == [], report["submission"]
    assert report["score"] == report["max_score"], (full_marks_except(report), report["submission"]["notes"])


# -- what each reader says -------------------------------------------------------------------------------

def test_a_zip_from_windows_tools_is_read_with_its_own_names_and_never_shows_the_graders_paths(tmp_path):
    explorer = load_submission(explorer_zip(tmp_path / "explorer"))
    assert explorer.error is None and explorer.form == "zip with autodiff/"
    assert "graded modules read from 과제1/autodiff/" in explorer.notes
    assert list(explorer.helpers) == ["유틸"]
    powershell = load_submission(powershell_zip(tmp_path / "powershell"))
    assert powershell.error is None and "graded modules read from hw/autodiff/" in powershell.notes
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as archive:  # a name that is a file, then a folder
        archive.writestr("autodiff", "x")
        for module in GRADED_MODULES:
            archive.writestr(f"hw/autodiff/{module}.py", (SOLUTIONS / "autodiff" / f"{module}.py").read_text())
        archive.writestr("autodiff/ops.py", "x")
    submission = load_submission(clash)
    assert submission.error is None, submission.error
    assert "/tmp" not in "\n".join(submission.notes)


def test_a_zips_limits_count_what_could_be_graded_not_its_junk(tmp_path):
    submission = load_submission(zip_with_its_virtual_environment(tmp_path))
    assert submission.error is None and submission.found == list(GRADED)
    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as archive:
        for i in range(MAX_ZIP_MEMBERS + 1):
            archive.writestr(f"hw/notes/n{i}.py", "x = 1\n")
    assert "more than 2000" in load_submission(crowded).error


def test_a_module_python_cannot_decode_is_said_so_never_replaced_by_the_starter(tmp_path):
    folder = reference_copy(tmp_path / "submission")
    ops = folder / "autodiff" / "ops.py"
    ops.write_bytes((KOREAN_DOC + ops.read_text()).encode("cp949", "replace"))  # no coding line: not UTF-8, as Python reads it
    submission = load_submission(folder)
    assert submission.sources["ops"] == ops.read_bytes()  # what the worker imports: the bytes handed in
    assert any("ops.py cannot be read by Python: it is not UTF-8 and names no encoding" in note for note in submission.notes)


@pytest.mark.slow
def test_a_module_python_cannot_decode_costs_its_own_names_with_pythons_own_reason(tmp_path):
    folder = reference_copy(tmp_path / "submission")
    ops = folder / "autodiff" / "ops.py"
    ops.write_bytes((KOREAN_DOC + ops.read_text()).encode("cp949", "replace"))
    report = graded(folder, "namespace" if level_available("namespace") else "process")
    lost = [name for name, home in GRADED.items() if home == "ops"]
    assert full_marks_except(report, *lost, "MNIST") == {}
    assert all(group_scores(report)[name][0] == 0 for name in lost)
    assert "'utf-8' codec can't decode" in feedback(report, "Mul") and "not implemented" not in feedback(report, "Mul")
    assert any("ops.py cannot be read by Python" in note for note in report["submission"]["notes"])


def test_helper_names_are_any_module_name_and_the_flat_form_warns_only_where_a_bare_import_finds_another(tmp_path):
    package = load_submission(helper_named_like_the_standard_library(tmp_path / "package"))
    assert sorted(package.helpers) == ["random", "types"]
    assert not any("Python's own" in note for note in package.notes)
    flat = tmp_path / "flat"
    for module in GRADED_MODULES:
        (flat / f"{module}.py").parent.mkdir(parents=True, exist_ok=True)
        (flat / f"{module}.py").write_text((SOLUTIONS / "autodiff" / f"{module}.py").read_text().replace("from .tensor", "from tensor"))
    (flat / "ops.py").write_text("import random\n" + (flat / "ops.py").read_text())
    (flat / "random.py").write_text("SEED = 0\n")
    (flat / "types.py").write_text("X = 0\n")  # named like Python's own module, but nothing imports it so
    notes = load_submission(flat).notes
    assert [note for note in notes if "Python's own" in note] == [
        "ops.py imports random: that is Python's own random module, not your random.py (rename the helper, or import it as autodiff.random)"]


def flat_reference_importing(folder, helpers):
    """The reference in the flat form, whose ops.py imports each of `helpers` bare (`import cells`)
    and needs what it finds to be the student's own: each helper module holds FACTOR = 1.0."""
    for graded in GRADED_MODULES:
        (folder / f"{graded}.py").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{graded}.py").write_text((SOLUTIONS / "autodiff" / f"{graded}.py").read_text().replace("from .tensor", "from tensor"))
    for helper in helpers:
        (folder / f"{helper}.py").write_text("FACTOR = 1.0\n")
    (folder / "ops.py").write_text(f"import {', '.join(helpers)}\n"
                                   f"assert all(helper.FACTOR == 1.0 for helper in ({', '.join(helpers)},))\n" + (folder / "ops.py").read_text())
    return folder


SANDBOX_MODULES = sorted(path.stem for path in SANDBOX_FILES)


@pytest.mark.parametrize("module", SANDBOX_MODULES)
def test_a_flat_helper_named_like_a_module_the_sandbox_runs_on_is_not_noted_as_taken(tmp_path, module):
    """The sandbox's own modules leave their names before student code runs: nothing to warn of."""
    notes = load_submission(flat_reference_importing(tmp_path / "flat", [module])).notes
    assert not any(note.startswith(f"ops.py imports {module}: ") for note in notes)


def scratch_names(tmp_path, isolation):
    """The names a bare import could find in the worker's folder, as the worker sees it: its
    importable entries (folders, .py files), listed by a submission whose ops.py says them."""
    probe = reference_copy(tmp_path / "probe", {"ops": [("import numpy as np", "import os, numpy as np\n"
                                                          "raise Exception(sorted(os.listdir('.')))")]})
    said = feedback(graded(probe, isolation), "Mul")
    entries = ast.literal_eval(said[said.index("raised Exception: ") + len("raised Exception: "):].split("\n")[0])
    return sorted({entry.removesuffix(".py") for entry in entries
                   if entry.removesuffix(".py").isidentifier() and ("." not in entry or entry.endswith(".py"))} - {"autodiff"})


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["process", *LEVELS])
def test_flat_helpers_named_like_what_the_sandbox_holds_are_the_students_own(tmp_path, isolation):
    """`import cells` in ops.py finds the student's cells.py, as on their own machine, for every
    module the sandbox ships (the worker, the protocol, the notebook runner, …) and every entry the
    grader puts in the worker's folder beside the package (mnist/, …): full marks."""
    beside = scratch_names(tmp_path, isolation)
    assert "mnist" in beside  # the listing works: the training data is there
    report = graded(flat_reference_importing(tmp_path / "flat", [*SANDBOX_MODULES, *beside]), isolation)
    assert full_marks_except(report) == {}, feedback(report, "Mul")


@pytest.mark.slow
@pytest.mark.parametrize("isolation", LEVELS)
def test_the_colab_notebook_reports_every_cell_as_jupyter_numbers_them(tmp_path, isolation):
    """The hour of training is answered at once (the cell ran within its budget), the endless loop
    cut at its budget in its statement 3: what keeps the grading to its usual time."""
    report = graded(colab(tmp_path), isolation)
    cells = {cell["cell"]: cell for cell in report["submission"]["cells"]}
    relu, training = 2 + 2 + len(GRADED) - 1, 2 + 2 + len(GRADED)  # cell 1 is the markdown title
    assert sorted(cells) == list(range(2, training + 1))
    assert cells[2]["outcome"] == "ran" and cells[2]["neutralised"] == ["%cd", "!pip install -q tqdm"]
    assert cells[3]["neutralised"] == ["os.chdir('/content/drive/MyDrive/hw') (no such folder here)",
                                       "import matplotlib (not installed here: a stand-in that does nothing)"]
    relu, training = cells[relu], cells[training]
    assert relu["outcome"] == "over budget" and "statement 3" in relu["detail"]
    assert training["outcome"] == "ran"  # the course's training answered at once, plt a stand-in


@pytest.mark.slow
def test_a_notebook_graded_twice_gives_the_same_report(tmp_path):
    """Timings aside (a check's duration, a cell's seconds), the same notebook, the same report."""
    notebook = vscode(tmp_path)

    def without_timings(report):
        cells = [{key: value for key, value in cell.items() if key != "seconds"} for cell in report["submission"]["cells"]]
        return ([{key: value for key, value in test.items() if key != "duration"} for test in report["tests"]],
                {**report["submission"], "cells": cells}, report["mnist"]["accuracy_per_epoch"])

    first, second = (graded(notebook, "namespace" if level_available("namespace") else "process") for _ in range(2))
    assert first["score"] == 100 and without_timings(first) == without_timings(second)


# -- what a broken cell costs ----------------------------------------------------------------------------

def broken_notebook(tmp_path, replaced, cell, dropped=()):
    """The Colab notebook's definitions, `cell` in place of the one defining `replaced`, without
    those defining `dropped`."""
    names = definitions()
    cells = [COURSE_IMPORTS] + [cell if name == replaced else names[name] for name in GRADED if name not in dropped]
    return written(tmp_path / "hw.ipynb", colab_notebook(cells))


BROKEN = {  # (the cell replaced, the new cell, cells dropped, the graded names it should cost, the outcome reported)
    "raises between two definitions": (  # the cell goes on after a statement that raises: the class that raised is lost
        "Pow", lambda names: names["Pow"] + "\n\n" + names["Sum"].replace("class Sum(Function):\n",
                                                                          "class Sum(Function):\n    raise RuntimeError('not yet')\n"),
        ["Sum"], ["Sum"], "raised"),
    "catches the interruption and never ends": (
        "Log", lambda names: names["Log"] + "\nimport time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                                            "    except BaseException:\n        pass", [],
        ["Log"], "stopped the worker"),
}


@pytest.mark.slow
@pytest.mark.parametrize("replaced, make_cell, dropped, lost, outcome", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_cell_costs_only_what_it_defines(tmp_path, replaced, make_cell, dropped, lost, outcome):
    notebook = broken_notebook(tmp_path, replaced, make_cell(definitions()), dropped)
    report = graded(notebook, "namespace" if level_available("namespace") else "process")
    assert full_marks_except(report, *lost, "MNIST") == {}
    assert all(group_scores(report)[name][0] == 0 for name in lost)
    outcomes = [cell["outcome"] for cell in report["submission"]["cells"]]
    assert outcomes.count(outcome) == 1, outcomes


def test_the_report_lists_a_bounded_number_of_cells_whatever_the_notebook():
    results = [CellResult(number, "raised", "NameError: x") for number in range(1, 30_001)]
    assert len(as_data(results)) == MAX_LISTED
    notes = cell_notes(results)
    assert len(notes) == MAX_LISTED + 1 and notes[-1] == f"… and {30_000 - MAX_LISTED} more cells that did not simply run"


def test_a_module_the_parser_cannot_build_is_noted_never_a_crash(tmp_path):
    folder = reference_copy(tmp_path / "submission")
    ops = folder / "autodiff" / "ops.py"
    ops.write_text(ops.read_text() + "\nDEEP = " + "-" * 100_000 + "1\nLONG = " + "+".join(["1"] * 50_000) + "\n")
    submission = load_submission(folder)
    assert submission.error is None and "ops" in submission.sources
    assert any("autodiff/ops.py" in note and ("could not be parsed" in note or "syntax error" in note) for note in submission.notes)


def test_the_reports_lists_are_bounded_whatever_was_handed_in():
    submission = Submission(path="hw", notes=[f"note {i}" for i in range(30_000)], ignored=[f"f{i}.txt" for i in range(3_000)])
    listed = submission.to_dict()
    assert len(listed["notes"]) == len(listed["ignored"]) == SUBMISSION_LISTED + 1
    assert listed["notes"][-1] == f"… and {30_000 - SUBMISSION_LISTED} more notes"


def test_a_writefile_module_is_bounded_like_a_submitted_one(tmp_path):
    notebook = written(tmp_path / "hw.ipynb", colab_notebook(["%%writefile autodiff/big.py\n" + "x = 1\n" * 500_000]))
    submission = load_submission(notebook)
    assert "big" not in submission.helpers and "%%writefile big.py is over 2 MB: not used" in submission.notes


@pytest.mark.parametrize("line, expected", [
    ("autodiff/ops.py", ("autodiff/ops.py", False)), ("-a autodiff\\ops.py", ("autodiff/ops.py", True)),
    ('"/content/drive/My Drive/hw/autodiff/ops.py"', ("/content/drive/My Drive/hw/autodiff/ops.py", False)),
    ("--append l2.py", ("l2.py", True)), ("", ("", False)), ("'unbalanced.py", ("'unbalanced.py", False))])
def test_writefile_arguments_are_read_as_jupyter_reads_them(line, expected):
    from grader.sandbox.contract import writefile_arguments

    assert writefile_arguments(line) == expected
