"""The handout's notebook (handout/autodiff.ipynb): generated from the solutions like the starter,
kept in sync, and graded like any notebook submission: blank, every group is "not started" and
scores 0; filled with the reference's bodies, full marks."""
import json
import os
import re
import subprocess
import sys
import zipfile

import nbformat
import pytest

from grader import GRADED
from grader.grade import grade
from grader.notebook import is_setup_cell
from grader.report import format_table
from tests.support.grading import FAST_RUBRIC
from tests.support.paths import ROOT
from tools.make_notebook import NOTEBOOK, build_notebook


def test_the_committed_notebook_is_the_generated_one():
    assert NOTEBOOK.read_text() == build_notebook(), "handout/autodiff.ipynb is out of date: run `make notebook`"


def test_the_notebook_has_one_cell_per_graded_name_a_check_cell_and_a_training_cell():
    cells = [cell.source for cell in nbformat.reads(build_notebook(), as_version=4).cells if cell.cell_type == "code"]
    defined = [source.split("(")[0].split()[1] for source in cells if source.startswith(("class ", "def "))]
    assert defined == list(GRADED)
    assert sum("check_cells_run(In)" in source for source in cells) == 1
    assert sum("run_experiment" in source for source in cells) == 1
    assert not any("urlopen" in source or "http" in source for source in cells)  # nothing is downloaded
    assert "# BEGIN SOLUTION" not in build_notebook() and "# BEGIN SOLUTION" not in build_notebook(filled=True)


def test_the_blank_notebook_scores_zero_and_says_not_started(tmp_path):
    path = tmp_path / "autodiff.ipynb"
    path.write_text(build_notebook())
    report = grade(path, FAST_RUBRIC)
    assert report["score"] == 0 and report["submission"]["form"] == "notebook"
    rows = {line.split()[0]: line for line in format_table(report).splitlines() if line[:1].strip()}
    groups = {test["group"] for test in report["tests"]}
    assert all("not started" in rows[group] for group in groups), format_table(report)


@pytest.mark.slow
def test_the_notebook_filled_with_the_reference_gets_full_marks(tmp_path):
    path = tmp_path / "autodiff.ipynb"
    path.write_text(build_notebook(filled=True))
    report = grade(path, FAST_RUBRIC)
    assert report["score"] == report["max_score"] == 100, format_table(report)


# -- the handout as a student meets it ------------------------------------------------------------

HANDOUT_TEXTS = ("README.md", "README.ko.md", "Makefile", "autodiff.ipynb")


@pytest.mark.parametrize("name", HANDOUT_TEXTS)
def test_the_handout_calls_python3_never_a_bare_python(name):
    """Debian and Ubuntu have only `python3` (a venv's own `.venv/bin/python` is there everywhere)."""
    text = (ROOT / "handout" / name).read_text()
    assert re.findall(r"(?<![\w/\\.-])python(?= )", text) == []


RUN_TOP_TO_BOTTOM = """\
import json, sys
import nbformat
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
installs = []
def pip(line):  # %pip, as a fresh kernel would run it: tqdm installed, and what was imported by then
    installs.append({"line": line, "numpy imported": "numpy" in sys.modules})
    del sys.modules["tqdm"]
shell.register_magic_function(pip, "line", "pip")
sys.modules["tqdm"] = None  # a kernel without tqdm: importlib.util.find_spec says it is not there
errors = []
for cell in nbformat.read(sys.argv[1], as_version=4).cells:
    if cell.cell_type == "code" and "run_experiment" not in cell.source:  # the training: minutes, and blank here
        result = shell.run_cell(cell.source)
        errors += [] if result.success else [repr(result.error_before_exec or result.error_in_exec)]
print(json.dumps({"installs": installs, "errors": errors}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["jupyter next to the handout", "colab with the zip uploaded"])
def test_the_notebook_runs_top_to_bottom_in_a_fresh_kernel_installing_first(tmp_path, where):
    """Its first cell installed nothing and imported numpy, the install was in the check cell near
    the end: a fresh local kernel failed there, then on every cell after it."""
    from tools import make_handout

    archive = tmp_path / "autodiff-handout.zip"
    make_handout.build(archive)
    if where.startswith("jupyter"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(tmp_path)
        folder = tmp_path / "autodiff-handout"
    else:
        folder = tmp_path  # Colab's /content: the zip, and the notebook opened from elsewhere
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    completed = subprocess.run([sys.executable, "-c", RUN_TOP_TO_BOTTOM, str(NOTEBOOK)], cwd=folder, env=environment,
                               capture_output=True, text=True, timeout=600, check=False)
    ran = json.loads(completed.stdout.strip().splitlines()[-1])
    assert ran["errors"] == [], completed.stdout + completed.stderr
    assert ran["installs"] == [{"line": "install --quiet -r requirements.txt", "numpy imported": False}]
    assert "0/86 visible points" in completed.stdout  # the check cell ran the grader on the cells above it


def test_the_setup_cell_is_the_first_code_cell_and_the_check_cell_installs_nothing():
    cells = [cell.source for cell in nbformat.reads(build_notebook(), as_version=4).cells if cell.cell_type == "code"]
    assert is_setup_cell(cells[0]) and not any(is_setup_cell(source) for source in cells[1:])
    assert not any("%pip" in source for source in cells[1:])


@pytest.mark.slow
def test_the_handouts_setup_cell_is_never_reported_but_a_copy_without_its_marker_is(tmp_path):
    """Known by the marker the generator writes as its first line, not by its text: the same cell
    without that line is the student's, and what it had neutralised (its %pip) is reported."""
    notebook = nbformat.reads(build_notebook(), as_version=4)
    wanting = "if not all(importlib.util.find_spec(_module) for _module in _required):"
    assert wanting in notebook.cells[1].source
    notebook.cells[1].source = setup = notebook.cells[1].source.replace(wanting, "if True:")  # whatever the sandbox has
    notebook.cells.insert(2, nbformat.v4.new_code_cell(setup.partition("\n")[2]))
    path = tmp_path / "autodiff.ipynb"
    path.write_text(nbformat.writes(notebook))
    notes = grade(path, FAST_RUBRIC)["submission"]["notes"]
    assert not any(note.startswith("cell 2:") for note in notes), notes
    assert "cell 3: neutralised: %pip" in notes


def test_the_check_cell_numbers_cells_as_jupyter_shows_them(tmp_path, monkeypatch):
    """Cell n of its report is In[n], the cell Jupyter marks [n]; it numbered the code cells it kept."""
    import grader.notebook as notebook

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, "", ""))
    inputs = ["", "import numpy as np", "", "x = 1", "check_cells_run(In)", "y = 2"]  # In[0] is always empty
    notebook.check_cells_run(inputs)
    cells = notebook.read_notebook((tmp_path / "build" / "notebook.ipynb").read_text()).cells
    assert [(cell["number"], cell["source"]) for cell in cells] == [(1, "import numpy as np"), (3, "x = 1"), (5, "y = 2")]
