"""The handout's notebook (handout/autodiff.ipynb): generated from the solutions like the starter,
kept in sync, and graded like any notebook submission: blank, every group is "not started" and
scores 0; filled with the reference's bodies, full marks."""
import sys

import nbformat
import pytest

from _grading import FAST_RUBRIC
from _paths import ROOT
from grader import GRADED
from grader.grade import grade
from grader.report import format_table

sys.path.insert(0, str(ROOT / "tools"))
from make_notebook import NOTEBOOK, build_notebook  # noqa: E402


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
