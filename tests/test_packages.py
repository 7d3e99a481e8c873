"""What students and course staff receive: the handout zip and the Gradescope autograder zip,
each unpacked into an empty folder and used there, with nothing from the repository on the path."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import jsonschema
import pytest

from _paths import ROOT, SOLUTIONS
from grader import GRADED_MODULES

sys.path.insert(0, str(ROOT / "tools"))
import make_gradescope  # noqa: E402
import make_handout  # noqa: E402

pytestmark = pytest.mark.slow  # every test here grades whole submissions

GRADED_FILES = [f"{module}.py" for module in GRADED_MODULES]
# Gradescope's results.json, as its autograder documentation specifies it.
GRADESCOPE_RESULTS = {
    "type": "object",
    "required": ["score", "tests"],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["score", "max_score", "name"],
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "number": {"type": "string"}, "output": {"type": "string"},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
            }}},
    },
}


def clean_environment():
    """The grading environment of a student's machine: no PYTHONPATH, nothing of this repository."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handout")
    archive = folder / "autodiff-handout.zip"
    make_handout.build(archive)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(folder)
    return archive, folder / "autodiff-handout"


def make_check(folder):
    completed = subprocess.run(["make", "check", f"PYTHON={sys.executable}"], cwd=folder, env=clean_environment(),
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((folder / "build" / "report.json").read_text()), completed.stdout


def test_handout_check_on_the_untouched_starter_scores_zero_with_clear_messages(handout):
    _, folder = handout
    report, output = make_check(folder)
    assert report["score"] == 0
    assert all(test["status"] == "failed" and "not implemented yet" in test["output"] for test in report["tests"])
    assert "Mul.forward is not implemented yet" in output
    assert (folder / "build" / "feedback.html").is_file()


def test_handout_check_on_the_reference_modules_gives_the_full_visible_score(handout, tmp_path):
    _, folder = handout
    copy = tmp_path / "student"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    for name in GRADED_FILES:
        shutil.copy(SOLUTIONS / "autodiff" / name, copy / "autodiff" / name)
    report, _ = make_check(copy)
    assert report["score"] == report["max_score"] > 0


def test_handout_carries_no_solution_and_no_hidden_check(handout):
    archive, folder = handout
    names = zipfile.ZipFile(archive).namelist()
    assert not any("solutions" in name for name in names)
    assert "autodiff-handout/grader/checks/test_edge_cases.py" not in names
    shipped = "".join(path.read_text(errors="replace") for path in folder.rglob("*.py"))
    for hidden in ("def test_robustness", "def test_stability", "extreme_inputs"):
        assert hidden not in shipped
    rubric = (folder / "grader" / "rubric.toml").read_text()
    assert "robustness" not in rubric and "stability" not in rubric
    for name in GRADED_FILES:  # the reference's graded bodies are nowhere
        assert "# BEGIN SOLUTION" not in (folder / "autodiff" / name).read_text()
    assert "reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)" not in shipped


def test_handout_readme_exists_in_english_and_korean(handout):
    _, folder = handout
    assert "reduce_grad_to_shape" in (folder / "README.md").read_text()
    assert "브로드캐스팅" in (folder / "README.ko.md").read_text()
    assert "[SPEC.md](SPEC.md)" in (folder / "README.md").read_text() and (folder / "SPEC.md").is_file()


def test_gradescope_autograder_writes_valid_results_with_rubric_visibility(tmp_path):
    archive = tmp_path / "autograder.zip"
    make_gradescope.build(archive)
    source, submission = tmp_path / "source", tmp_path / "submission"
    with zipfile.ZipFile(archive) as zipped:
        assert {"setup.sh", "run_autograder"} <= set(zipped.namelist())
        zipped.extractall(source)
    submission.mkdir()
    for name in GRADED_FILES:
        shutil.copy(SOLUTIONS / "autodiff" / name, submission / name)
    environment = {**clean_environment(), "AUTOGRADER_ROOT": str(tmp_path), "AUTOGRADER_PYTHON": sys.executable}
    completed = subprocess.run(["bash", str(source / "run_autograder")], env=environment, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(results, GRADESCOPE_RESULTS)
    assert results["score"] == 100
    visibility = {test["name"].split(" · ")[1]: test["visibility"] for test in results["tests"]}
    assert visibility["robustness"] == "after_due_date" and visibility["forward"] == "visible"
