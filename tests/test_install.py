"""The project is installed into its venv (editable): every tool of the venv — a Dask worker
started from any folder, say — can import `grader`, and it is this checkout's."""
import os
import shutil
import subprocess
import sys

import pytest

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


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_shared_sandbox_runtime_is_not_rebuilt_for_a_newer_checkout_with_the_same_pins(tmp_path):
    """Every checkout of a machine shares /opt/autodiff-grader/venv, and gradings may be using it:
    a fresh clone (its requirements.txt newer than the runtime) once rebuilt it under them."""
    runtime = tmp_path / "venv"
    runtime.mkdir()
    pins = subprocess.run(["grep", "-oE", "^(numpy|ipython)==[^ ]+", "requirements.txt"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split()
    (runtime / ".ready").write_text(" ".join(pins) + "\n")
    os.utime(runtime / ".ready", (0, 0))  # older than any checkout
    completed = subprocess.run(["make", "-s", "sandbox-runtime", f"SANDBOX_VENV={runtime}"], check=False, cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and completed.stdout + completed.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["venv"] and os.listdir(runtime) == [".ready"]
    stale = subprocess.run(["make", "-n", "sandbox-runtime", f"SANDBOX_VENV={runtime}"], check=False, cwd=ROOT,
                           capture_output=True, text=True, timeout=60).stdout
    assert f"{runtime}.new/bin/python -m pip install" in stale  # other pins: built aside, then swapped in
