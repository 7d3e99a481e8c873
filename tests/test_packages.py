"""What students and course staff receive: the handout zip and the Gradescope autograder zip,
each unpacked into an empty folder and used there, with nothing from the repository on the path."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from grader import GRADED_MODULES
from grader.sandbox import launch
from grader.sandbox.levels import ISOLATION_LEVELS, level_available
from tests.support.paths import ROOT, SOLUTIONS
from tools import make_gradescope, make_handout, make_notebook

pytestmark = pytest.mark.slow  # every test here grades whole submissions
# The tests of a module-scoped fixture run in one test process, which builds it once.
HANDOUT = pytest.mark.xdist_group("handout")
GRADESCOPE = pytest.mark.xdist_group("gradescope")

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
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["score", "max_score", "name"],
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "number": {"type": "string"}, "output": {"type": "string"},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                "tags": {"type": "array", "items": {"type": "string"}},
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
                               capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((folder / "build" / "report.json").read_text()), completed.stdout


@HANDOUT
def test_handout_check_on_the_untouched_starter_scores_zero_with_clear_messages(handout):
    _, folder = handout
    report, output = make_check(folder)
    assert report["score"] == 0
    assert all(test["status"] == "failed" and "not implemented yet" in test["output"] for test in report["tests"])
    table = output[output.index("group "):]
    assert all(len(line) <= 100 for line in table.splitlines()), table
    assert re.search(r"\nMul +0 / 7 +not started +Mul\.forward: compute y = a \* b", table), table
    hint = "Log.forward: compute np.log(np.maximum(x, EPS)) and save what backward needs"
    assert hint not in table and hint in " ".join(table.split())  # wrapped onto the next line, not cut
    assert "\n0/86 visible points; 14 more points are checked after the due date\n" in table
    assert (folder / "build" / "feedback.html").is_file()


@HANDOUT
def test_handout_check_on_the_reference_modules_gives_the_full_visible_score(handout, tmp_path):
    _, folder = handout
    copy = tmp_path / "student"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    for name in GRADED_FILES:
        shutil.copy(SOLUTIONS / "autodiff" / name, copy / "autodiff" / name)
    report, output = make_check(copy)
    assert report["score"] == report["max_score"] > 0
    assert "86/86 visible points; 14 more points are checked after the due date" in output


@HANDOUT
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


@HANDOUT
def test_handout_readme_exists_in_english_and_korean(handout):
    _, folder = handout
    assert "reduce_grad_to_shape" in (folder / "README.md").read_text()
    assert "브로드캐스팅" in (folder / "README.ko.md").read_text()
    assert "[SPEC.md](SPEC.md)" in (folder / "README.md").read_text() and (folder / "SPEC.md").is_file()


@pytest.fixture(scope="module")
def gradescope_reference(tmp_path_factory):
    """The Gradescope autograder run once on the reference with this project's Python: (results, the
    unpacked zip). The tests on what it wrote share it."""
    return gradescope_run(tmp_path_factory.mktemp("gradescope"))


@GRADESCOPE
def test_gradescope_autograder_writes_valid_results_with_rubric_visibility(gradescope_reference):
    results, _ = gradescope_reference
    assert results["score"] == 100
    visibility = {test["name"].split(" · ")[1]: test["visibility"] for test in results["tests"]}
    assert visibility["robustness"] == "after_due_date" and visibility["forward"] == "visible"


def as_user(uid):
    """preexec_fn: run the child as this unprivileged uid (a student's account)."""
    def drop():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    return drop


@HANDOUT
def test_handout_check_without_fcntl_and_resource_runs_unsandboxed_without_a_warning(handout, tmp_path):
    """Windows has neither module: simulated by modules of those names that fail to import, first on
    the path of the grader and of its checks' process (both start in the handout's folder)."""
    _, folder = handout
    copy = tmp_path / "student"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    for name in GRADED_FILES:
        shutil.copy(SOLUTIONS / "autodiff" / name, copy / "autodiff" / name)
    for module in ("fcntl", "resource"):
        (copy / f"{module}.py").write_text(f"raise ImportError('simulated: no {module} on this platform')\n")
    probe = subprocess.run([sys.executable, "-c", "import grader.sandbox.levels as l; print(l.strongest_level(), l.fcntl)"],
                           cwd=copy, env=clean_environment(), capture_output=True, text=True, timeout=60, check=False)
    assert probe.stdout.split() == ["process", "None"], probe.stdout + probe.stderr
    completed = subprocess.run([sys.executable, "-m", "grader", "check"], cwd=copy, env=clean_environment(),
                               capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "warning" not in (completed.stdout + completed.stderr).lower()
    assert "86/86 visible points" in completed.stdout
    assert json.loads((copy / "build" / "report.json").read_text())["grader"]["isolation"] == "process"


@HANDOUT
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_handout_check_as_a_student_who_is_not_root_gives_no_warning(handout, tmp_path):
    _, folder = handout
    home = Path(tempfile.mkdtemp(prefix="student-"))  # pytest's tmp_path is root's alone
    copy = home / "autodiff-handout"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    for path in [home, *home.rglob("*")]:
        os.chown(path, 61050, 61050)
    try:
        completed = subprocess.run([sys.executable, "-m", "grader", "check"], cwd=copy, capture_output=True, text=True,
                                   timeout=600, env={**clean_environment(), "HOME": str(home)}, preexec_fn=as_user(61050), check=False)
    finally:
        shutil.rmtree(home)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "warning" not in (completed.stdout + completed.stderr).lower()
    assert "not started" in completed.stdout


@HANDOUT
@pytest.mark.skipif(not level_available("uid"), reason="the uid level needs root and the sandbox runtime")
def test_handout_check_as_root_without_bubblewrap_leaves_the_files_alone_and_prints_no_isolation_note(handout, tmp_path):
    """A TA's server: root, the course's sandbox runtime, no bubblewrap. `make check` chose the
    `uid` level there, printed the grader's isolation note and closed the handout's files to others."""
    _, folder = handout
    copy = tmp_path / "student"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    modes = {path: path.stat().st_mode for path in copy.rglob("*")}
    no_bubblewrap = tmp_path / "bin"  # the whole PATH: make is called by its path, its recipe by /bin/sh and $(PYTHON)
    no_bubblewrap.mkdir()
    completed = subprocess.run([shutil.which("make"), "check", f"PYTHON={sys.executable}"], cwd=copy, capture_output=True,
                               text=True, timeout=600, env={**clean_environment(), "PATH": str(no_bubblewrap)}, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "isolation 'uid'" not in completed.stdout + completed.stderr and "warning" not in completed.stderr.lower()
    assert {path: mode for path, mode in modes.items() if path.stat().st_mode != mode} == {}
    assert "0/86 visible points" in completed.stdout


def gradescope_run(tmp_path, python=sys.executable, break_it=lambda source: None):
    """Unpack the Gradescope zip into a fresh folder, hand in the reference, run run_autograder."""
    archive = tmp_path / "autograder.zip"
    make_gradescope.build(archive)
    source, submission = tmp_path / "source", tmp_path / "submission"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(source)
    break_it(source)
    submission.mkdir()
    for name in GRADED_FILES:
        shutil.copy(SOLUTIONS / "autodiff" / name, submission / name)
    environment = {**clean_environment(), "AUTOGRADER_ROOT": str(tmp_path), "AUTOGRADER_PYTHON": str(python)}
    completed = subprocess.run(["bash", str(source / "run_autograder")], env=environment, capture_output=True,
                               text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(results, GRADESCOPE_RESULTS)
    return results, source


@GRADESCOPE
def test_gradescope_results_show_the_visible_points_in_markdown_with_tags_and_extra_data(gradescope_reference):
    results, source = gradescope_reference
    assert results["output"].startswith("**86 / 86 visible points**; 14 more points are checked after the due date")
    assert results["output_format"] == results["test_output_format"] == "md"
    assert all(test["tags"] == test["name"].split(" · ") for test in results["tests"])
    extra = results["extra_data"]
    assert extra["isolation"] in ISOLATION_LEVELS and len(extra["rubric_sha256"]) == 64
    assert len(extra["mnist_curve"]) == 5 and extra["mnist_accuracy"] > 90
    assert not (source / "grader" / "checks").stat().st_mode & 0o077  # closed to student code's uid


def test_gradescope_writes_results_when_the_grader_itself_fails(tmp_path):
    results, _ = gradescope_run(tmp_path, break_it=lambda source: shutil.rmtree(source / "datasets" / "mnist"))
    assert results["score"] == 0
    assert "the autograder failed; course staff have been told" in results["output"].lower()
    [staff] = results["tests"]
    assert staff["visibility"] == "hidden" and "MNIST" in staff["output"] and "status 1" in staff["output"]


def test_gradescope_writes_results_when_its_python_is_missing(tmp_path):
    results, _ = gradescope_run(tmp_path, python=tmp_path / "no-such-python")
    assert results["score"] == 0 and "status 127" in results["tests"][0]["output"]


def test_the_gradescope_zip_ships_the_courses_secret_made_on_its_first_build_and_the_handout_no_salt(tmp_path, monkeypatch, capsys):
    """The course's rubric ships no salt: the first build makes the course's secret (said, with where it
    is kept), every build reuses it (the same zip, byte for byte), and the student handout carries none."""
    from grader.rubric import load_rubric, parse_rubric, read_secret

    secret = tmp_path / "course-secret.txt"
    monkeypatch.setenv("AUTODIFF_COURSE_SECRET", str(secret))
    make_gradescope.build(tmp_path / "first.zip")
    assert f"made and kept in {secret}" in capsys.readouterr().out
    make_gradescope.build(tmp_path / "second.zip")
    assert f"kept in {secret}" in capsys.readouterr().out
    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()
    shipped = parse_rubric(zipfile.ZipFile(tmp_path / "first.zip").read("grader/rubric.toml"), "rubric.toml")
    assert shipped.salt == read_secret(secret) and load_rubric(ROOT / "grader" / "rubric.toml").salt == ""
    make_handout.build(tmp_path / "handout.zip")
    with zipfile.ZipFile(tmp_path / "handout.zip") as handout:
        assert not any(read_secret(secret).encode() in handout.read(name) for name in handout.namelist())
        assert parse_rubric(handout.read("autodiff-handout/grader/rubric.toml"), "rubric.toml").salt == ""


def test_gradescope_setup_in_a_folder_without_the_autograder_says_so_before_running_anything(tmp_path):
    """It printed grep's error and went on to a pip install of no package."""
    completed = subprocess.run(["bash", str(ROOT / "gradescope" / "setup.sh")], capture_output=True, text=True, timeout=60,
                               env={**clean_environment(), "SETUP_DRY_RUN": "1", "AUTOGRADER_ROOT": str(tmp_path)}, check=False)
    assert completed.returncode == 1
    assert completed.stderr == (f"setup.sh: {tmp_path}/source/requirements.txt is missing or does not pin numpy and ipython: "
                                f"the autograder zip must be unpacked into {tmp_path}/source first (Gradescope does; "
                                "AUTOGRADER_ROOT stands for /autograder)\n")
    assert not [line for line in completed.stdout.splitlines() if line.startswith("+ ")]


def test_gradescope_says_the_autograder_failed_when_no_check_ran(tmp_path):
    """A check file that does not import stops pytest before any check: once a results.json of
    0 / 86 visible points, written by the grader as a grade. Now the grading is an error (exit
    status 1), and run_autograder writes its failure results."""
    def break_it(source):
        (source / "grader" / "checks" / "test_regularizers.py").write_text("import a_helper_renamed_by_mistake\n")

    results, _ = gradescope_run(tmp_path, break_it=break_it)
    assert results["output"].startswith("The autograder failed") and results["extra_data"]["grader_failed"]
    [staff] = results["tests"]
    assert "status 1" in staff["output"] and "test_regularizers.py" in staff["output"]


@pytest.mark.skipif(not Path("/usr/bin/python3").exists() or subprocess.run(
    ["/usr/bin/python3", "-c", "import jsonschema"], capture_output=True, check=False).returncode == 0, reason="needs a Python without the packages")
def test_gradescope_with_a_python_without_the_packages_says_the_autograder_failed(tmp_path):
    results, _ = gradescope_run(tmp_path, python="/usr/bin/python3")
    [staff] = results["tests"]
    assert results["extra_data"]["grader_failed"] and "lacks numpy" in staff["output"] and "Traceback" not in staff["output"]


# What Gradescope's base images offer (Ubuntu's archives, universe included): python3's version
# and the packages setup.sh may ask for.
UBUNTU = {
    "22.04": {"python3": "3.10", "packages": {"python3", "python3-venv", "python3.11", "python3.11-venv", "bubblewrap",
                                              "libseccomp2"},
              "pythons": {"python3": "3.10", "python3.11": "3.11"}},
    "24.04": {"python3": "3.12", "packages": {"python3", "python3-venv", "python3.12", "python3.12-venv", "bubblewrap",
                                              "libseccomp2"},
              "pythons": {"python3": "3.12", "python3.12": "3.12"}},
}


@pytest.mark.parametrize("version", sorted(UBUNTU))
def test_gradescope_setup_installs_a_python_the_pins_support_on_each_ubuntu_image(version, tmp_path):
    image = UBUNTU[version]
    (tmp_path / "os-release").write_text(f'NAME="Ubuntu"\nVERSION="{version} LTS"\nID=ubuntu\nVERSION_ID="{version}"\n')
    (tmp_path / "source").mkdir()
    shutil.copy(ROOT / "requirements.txt", tmp_path / "source" / "requirements.txt")
    completed = subprocess.run(["bash", str(ROOT / "gradescope" / "setup.sh")], capture_output=True, text=True, timeout=60,
                               env={**clean_environment(), "SETUP_DRY_RUN": "1", "SETUP_OS_RELEASE": str(tmp_path / "os-release"),
                                    "AUTOGRADER_ROOT": str(tmp_path)}, check=False)
    assert completed.returncode == 0, completed.stderr
    commands = [line[2:].split() for line in completed.stdout.splitlines() if line.startswith("+ ")]
    install = next(command for command in commands if "install" in command and "apt-get" in command)
    assert set(install[install.index("--no-install-recommends") + 1:]) <= image["packages"]
    venvs = [command[0] for command in commands if command[1:3] == ["-m", "venv"]]
    assert len(venvs) == 2 and len(set(venvs)) == 1
    assert tuple(map(int, image["pythons"][venvs[0]].split("."))) >= (3, 11)
    assert f"image 'ubuntu {version}'" in completed.stdout  # it says what it chose


@pytest.mark.slow
@pytest.mark.long  # a venv built and installed, then a grading with the real rubric
@pytest.mark.skipif(not os.path.isfile("/usr/bin/python3"), reason="needs the system's python3")
def test_gradescope_autograder_runs_with_a_fresh_python_built_like_setup_sh(tmp_path):
    """Nothing of this project's venv: a venv from the system's python3 with the zip's pinned
    requirements, as setup.sh makes one on Gradescope (pip's configured index must be reachable)."""
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
    archive = tmp_path / "requirements.zip"
    make_gradescope.build(archive)
    (tmp_path / "requirements.txt").write_bytes(zipfile.ZipFile(archive).read("requirements.txt"))
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                "-r", str(tmp_path / "requirements.txt")], capture_output=True, text=True, timeout=1200, check=False)
    if installed.returncode != 0:
        pytest.skip(f"pip could not install the pinned requirements here: {installed.stderr[-300:]}")
    grading = tmp_path / "autograder"
    grading.mkdir()
    results, _ = gradescope_run(grading, python=venv / "bin" / "python")
    assert results["score"] == 100


@pytest.mark.slow
@HANDOUT
def test_the_handout_notebooks_check_cell_checks_the_cells_run_so_far(handout, tmp_path):
    """What the notebook's check cell does in Jupyter or Colab, with IPython's `In` holding the
    cells of the notebook filled with the reference's bodies (run in order, the check cell last)."""
    archive, folder = handout
    assert "autodiff-handout/autodiff.ipynb" in zipfile.ZipFile(archive).namelist()
    copy = tmp_path / "student"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build"))
    cells = nbformat.reads(make_notebook.build_notebook(filled=True), as_version=4).cells
    ran = [""] + [cell.source for cell in cells if cell.cell_type == "code" and "run_experiment" not in cell.source]
    script = f"from grader.notebook import check_cells_run\ncheck_cells_run({ran!r})\n"
    completed = subprocess.run([sys.executable, "-c", script], cwd=copy, env=clean_environment(), capture_output=True,
                               text=True, timeout=600, check=False)
    assert "86/86 visible points; 14 more points are checked after the due date" in completed.stdout, completed.stdout
    assert json.loads((copy / "build" / "report.json").read_text())["submission"]["form"] == "notebook"


@HANDOUT
def test_training_in_the_handout_pins_blas_to_one_thread_with_or_without_make(handout):
    _, folder = handout
    environment = {k: v for k, v in clean_environment().items() if not k.endswith("_NUM_THREADS")}
    probe = "import autodiff.train, os; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    completed = subprocess.run([sys.executable, "-c", probe], cwd=folder, env=environment, capture_output=True, text=True, check=False)
    assert completed.stdout.split() == ["1", "1"], completed.stderr
    assert "OPENBLAS_NUM_THREADS=1" in (folder / "Makefile").read_text()


# contain.py on a system that refuses RLIMIT_AS (macOS), as its first program's Python would.
REFUSING_RLIMIT_AS = ("import resource, runpy, sys\n"
                      "real = resource.setrlimit\n"
                      "def setrlimit(limit, values):\n"
                      "    if limit == resource.RLIMIT_AS:\n"
                      "        raise ValueError('current limit exceeds maximum limit')\n"
                      "    real(limit, values)\n"
                      "resource.setrlimit = setrlimit\n"
                      "sys.argv = sys.argv[1:]\n"
                      "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def test_a_limit_the_system_refuses_does_not_stop_a_students_own_check(monkeypatch, tmp_path):
    """macOS refuses RLIMIT_AS: the `process` level (a laptop) starts its worker without it; a
    sandboxed level would not start at all."""
    from grader.sandbox import levels, protocol

    program = levels.Containment.program
    monkeypatch.setattr(levels.Containment, "program", lambda containment, python, runtime: [
        sys.executable, "-c", REFUSING_RLIMIT_AS, *program(containment, python, runtime)[3:]])
    process = launch.start_worker(tmp_path, isolation="process")
    try:
        assert protocol.decode_frame(*protocol.read_frame(process.stdout.fileno()))["ready"] is True  # the supervisor, numpy imported
    finally:
        launch.stop_worker(process)
    strict = levels.isolation_level("namespace").contain(launch.Limits())
    refused = subprocess.run([*strict.program(sys.executable, tmp_path / ".worker"), "true"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "contain: ValueError: current limit exceeds maximum limit" in refused.stderr
