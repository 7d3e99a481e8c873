"""The project is installed into its venv (editable): every tool of the venv — a Dask worker
started from any folder, say — can import `grader`, and it is this checkout's."""
import subprocess
import sys

from tests.support.paths import ROOT


def test_grader_imports_from_any_folder_with_the_venvs_python(tmp_path):
    completed = subprocess.run([sys.executable, "-c", "import grader; print(grader.__file__)"], cwd=tmp_path,
                               capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert completed.returncode == 0, f"`make` installs the project into .venv (pip install -e .): {completed.stderr}"
    assert completed.stdout.strip() == str(ROOT / "grader" / "__init__.py")


def modules_imported_by(module):
    code = f"import sys, {module}; print(' '.join(sorted({{'pytest', 'nbformat'}} & set(sys.modules))))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_grading_a_folder_imports_pytest_and_nbformat_only_where_they_are_used():
    """A third of a second of every grading: the command line imports neither (pytest runs in the
    checks' own process), and the checks' process reads no notebook for a folder."""
    assert modules_imported_by("grader.cli") == []
    assert modules_imported_by("grader.checks.plugin") == ["pytest"]
