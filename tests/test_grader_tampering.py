"""Submissions that try to cheat or to take the grader down earn nothing they did not earn honestly,
and every other group is still graded.

Each cheating submission also has a wrong Mul.forward, so that a trick that worked would show as
points for it: its honest score is the maximum less the Mul forward points.
"""
import os
import signal
import tempfile

import pytest
from _grading import FAST_RUBRIC, feedback, full_marks_except, grade_and_validate, group_scores, reference_copy

from grader import GRADED

WRONG_MUL = ("        return a * b\n", "        return a * b + 1.0\n")
HONEST_WITH_WRONG_MUL = FAST_RUBRIC.max_score - FAST_RUBRIC.points[("Mul", "forward")]
OPS_GROUPS = [name for name, module in GRADED.items() if module == "ops"]


def assert_only_mul_forward_lost(report):
    assert report["score"] == HONEST_WITH_WRONG_MUL
    assert next(t for t in report["tests"] if t["name"] == "Mul · forward")["score"] == 0
    assert full_marks_except(report, "Mul") == {}


def test_numpy_comparisons_patched_by_the_submission_do_not_reach_the_checks(tmp_path):
    always_equal = ("import numpy as np\n",
                    "import numpy as np\n"
                    "np.allclose = np.array_equal = lambda *args, **kwargs: True\n"
                    "np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)\n"
                    "np.testing.assert_allclose = np.testing.assert_array_equal = lambda *args, **kwargs: None\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [always_equal, WRONG_MUL]}))
    assert_only_mul_forward_lost(report)


PASS_EVERYTHING_CONFTEST = """import pytest

def pytest_collection_modifyitems(items):
    items[:] = [item for item in items if "Mul" not in item.nodeid]

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    report.outcome, report.longrepr = "passed", None
"""
SKIP_MUL_INI = "[pytest]\naddopts = -k 'not Mul' -p no:grader.pytest_plugin\n"
PATCHING_SITECUSTOMIZE = "import numpy\nnumpy.allclose = lambda *args, **kwargs: True\n"


def test_pytest_and_python_configuration_in_the_submission_is_ignored(tmp_path):
    files = {"conftest.py": PASS_EVERYTHING_CONFTEST, "pytest.ini": SKIP_MUL_INI, "sitecustomize.py": PATCHING_SITECUSTOMIZE,
             "autodiff/conftest.py": PASS_EVERYTHING_CONFTEST, "autodiff/sitecustomize.py": PATCHING_SITECUSTOMIZE}
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [WRONG_MUL]}, files))
    assert {f"{path} (not graded)" for path in files} <= set(report["submission"]["ignored"])
    assert_only_mul_forward_lost(report)


def fake_full_marks_at_exit(marker):
    """regularizers.py that registers an atexit handler writing a fake perfect score over every
    JSON file in the worker's folder and the folder of the grade's temporary folders, then closes
    the worker's pipes so that the worker exits on its own and the handler does run."""
    return ("import numpy as np\n"
            "import atexit, json, os, pathlib\n\n"
            "def _fake_full_marks():\n"
            "    fake = json.dumps({'score': 100, 'max_score': 100, 'tests': []})\n"
            "    for folder in (pathlib.Path.cwd(), pathlib.Path.cwd().parent):\n"
            "        for path in folder.rglob('*.json'):\n"
            "            path.write_text(fake)\n"
            "        (folder / 'checks.json').write_text(fake)\n"
            f"    pathlib.Path({str(marker)!r}).write_text('ran')\n\n"
            "atexit.register(_fake_full_marks)\n"
            "os.closerange(3, 256)\n")


def test_atexit_handler_that_rewrites_json_files_does_not_change_the_report(tmp_path, monkeypatch):
    grade_folders = tmp_path / "tmp"  # the scratch and results folders go here, in reach of the handler
    grade_folders.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(grade_folders))
    marker = tmp_path / "handler-ran"
    submission = reference_copy(tmp_path / "submission",
                                {"ops": [WRONG_MUL], "regularizers": [("import numpy as np\n", fake_full_marks_at_exit(marker))]})
    report = grade_and_validate(submission)
    assert marker.read_text() == "ran"  # the attack did run
    assert report["score"] == HONEST_WITH_WRONG_MUL - FAST_RUBRIC.points[("l2_penalty", "value")] \
        - FAST_RUBRIC.points[("l2_grad", "update")]
    assert full_marks_except(report, "Mul", "l2_penalty", "l2_grad") == {}
    assert report["score"] == round(sum(test["score"] for test in report["tests"]), 2)


def detached_results_rewriter(pid_file):
    """regularizers.py that leaves a process behind, out of the worker's session (double fork and
    setsid), which waits for the checks' results file and marks every check passed: the grader
    reads that file only after the worker is stopped, so nothing may survive the worker."""
    return ("import numpy as np\n"
            "import json, os, pathlib, time\n\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
            "        end = time.time() + 30\n"
            "        while time.time() < end:\n"
            "            for path in pathlib.Path.cwd().parent.glob('autodiff-results-*/checks.json'):\n"
            "                try:\n"
            "                    results = json.loads(path.read_text())\n"
            "                except ValueError:\n"
            "                    continue\n"
            "                if any(test['outcome'] != 'passed' for test in results['tests']):\n"
            "                    for test in results['tests']:\n"
            "                        test['outcome'] = 'passed'\n"
            "                    path.write_text(json.dumps(results))\n"
            "            time.sleep(0.001)\n"
            "    os._exit(0)\n")


@pytest.fixture
def leftover(tmp_path):
    """Where a submission's detached process writes its pid; killed after the test if still alive."""
    pid_file = tmp_path / "leftover.pid"
    yield pid_file
    if pid_file.exists() and process_alive(int(pid_file.read_text()), tmp_path):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def process_alive(pid, folder):
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(folder))
    except OSError:
        return False


def test_process_left_behind_by_the_worker_cannot_rewrite_the_results(tmp_path, monkeypatch, leftover):
    grade_folders = tmp_path / "tmp"
    grade_folders.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(grade_folders))
    submission = reference_copy(tmp_path / "submission",
                                {"ops": [WRONG_MUL], "regularizers": [("import numpy as np\n", detached_results_rewriter(leftover))]})
    report = grade_and_validate(submission)
    assert leftover.exists()  # the process was left behind
    assert not process_alive(int(leftover.read_text()), tmp_path), "the grader did not kill it"
    assert_only_mul_forward_lost(report)


def test_os_exit_at_import_costs_only_the_groups_that_need_the_module(tmp_path):
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [("import numpy as np\n", "import os\nos._exit(0)\n")]}))
    assert full_marks_except(report, *OPS_GROUPS, "MNIST") == {}
    assert all(group_scores(report)[group][0] == 0 for group in OPS_GROUPS + ["MNIST"])
    assert "importing ops.py stopped the worker" in feedback(report, "Mul")
    assert "did the code call sys.exit or os._exit?" in feedback(report, "Mul")


def test_worker_that_closes_its_pipes_and_lingers_costs_only_its_module(tmp_path):
    linger = ("import numpy as np\n", "import numpy as np\nimport atexit, os, time\n"
                                        "atexit.register(time.sleep, 20)\nos.closerange(3, 256)\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [linger]}))
    assert full_marks_except(report, *OPS_GROUPS, "MNIST") == {}
    assert "importing ops.py stopped the worker: the worker closed the protocol channel" in feedback(report, "Mul")
    assert not any("the grader failed" in test["output"] for test in report["tests"])
    assert report["duration_seconds"] < 20


def test_infinite_loop_in_a_backward_times_out_alone_and_quickly(tmp_path):
    loop = ("        a, b, y = ctx.saved_tensors\n", "        a, b, y = ctx.saved_tensors\n        while True:\n            pass\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [loop]}))
    pow_tests = {test["kind"]: test for test in report["tests"] if test["group"] == "Pow"}
    assert pow_tests["backward"]["status"] == "timeout" and pow_tests["backward"]["score"] == 0
    assert pow_tests["robustness"]["status"] == "timeout"  # it calls backward too
    assert pow_tests["forward"]["status"] == "passed"
    assert full_marks_except(report, "Pow") == {}
    assert "time limit" in pow_tests["backward"]["output"]
    assert report["duration_seconds"] < 30


FAKE_OUTPUT = ("        return a * b + 1.0\n",
               "        print('PASSED')\n"
               "        print('{\"id\": 1, \"ok\": true, \"output\": {\"kind\": \"ndarray\"}}', flush=True)\n"
               "        print('tests/checks/test_functions.py::test_forward[Mul-3x4 * 3x4] PASSED', file=sys.stderr)\n"
               "        sys.__stdout__.write('{\"score\": 100, \"tests\": []}\\n')\n"
               "        sys.__stdout__.flush()\n"
               "        os.write(1, b'{\"id\": 2, \"ok\": true}\\n')\n"
               "        os.write(2, b'{\"id\": 3, \"ok\": true}\\n')\n"
               "        return a * b + 1.0\n")


def test_fake_results_printed_by_an_op_do_not_reach_the_protocol_or_the_score(tmp_path):
    imports = ("import numpy as np\n", "import os\nimport sys\n\nimport numpy as np\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [imports, WRONG_MUL, FAKE_OUTPUT]}))
    assert_only_mul_forward_lost(report)
    assert "values differ" in feedback(report, "Mul")
