"""The sandbox's own defences, tried from inside it: the seccomp filter, the keyring, the supervisor
out of reach, the time budgets. (The attack suite, tests/support/attacks.py, grades whole submissions that
forge replies, write on inherited pipes, print the sandbox's errors and read the grader's keys.)
"""
import errno
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyseccomp
import pytest

from grader.rubric import load_rubric
from grader.sandbox import launch, levels
from grader.sandbox.client import SandboxError, StudentException, WorkerClient
from grader.sandbox.launch import scratch_parent
from grader.sandbox.levels import isolation_level, level_available
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import FAST_RUBRIC_FILE, feedback, full_marks_except, grade_and_validate, reference_copy

SANDBOXED = [pytest.param(level, marks=pytest.mark.skipif(not level_available(level), reason=f"{level!r} is not available"))
             for level in ("namespace", "user-namespace")]
MUL_RETURN = "        return a * b\n"


def number(name):
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)


# name → the call's arguments: each must fail with EPERM inside the sandbox, and getpid must not.
CALLS = {
    "keyctl": [0, -3, 0],                # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": [0, 0, 0, 0, -3],
    "request_key": [0, 0, 0, 0],
    "ptrace": [16, 1, 0, 0],             # PTRACE_ATTACH to the supervisor
    "process_vm_readv": [1, 0, 0, 0, 0, 0],
    "perf_event_open": [0, 0, -1, -1, 0],
    "bpf": [0, 0, 0],
    "unshare": [0x10000000],             # CLONE_NEWUSER
    "io_uring_setup": [1, 0],
    "prlimit64": [1, 7, 0, 0],           # the supervisor's RLIMIT_NOFILE
    "setpriority": [0, 1, 19],           # the supervisor's priority
    "getpid": [],
}
PROBE = f"""\
        import ctypes, json
        _libc = ctypes.CDLL(None, use_errno=True)
        _errors = {{}}
        for _name, (_number, _args) in {({name: (number(name), args) for name, args in CALLS.items()})!r}.items():
            ctypes.set_errno(0)
            _result = _libc.syscall(_number, *[ctypes.c_long(arg) for arg in _args])
            _errors[_name] = ctypes.get_errno() if _result < 0 else 0
        raise RuntimeError(json.dumps(_errors))
"""


@pytest.mark.parametrize("level", SANDBOXED)
def test_the_calls_a_worker_never_needs_fail_with_eperm(tmp_path, level):
    submission = reference_copy(tmp_path / "submission", {"ops": [(MUL_RETURN, PROBE)]})
    with (tempfile.TemporaryDirectory(prefix="autodiff-channel-", dir=scratch_parent()) as folder,
          WorkerClient(prepare_scratch(load_submission(submission), folder), isolation=level) as client):
        client.ensure_imported("ops", group="Mul")
        with pytest.raises(StudentException) as raised:
            client.request("call", 10, group="Mul", name="Mul", inputs=[np.ones(2), np.ones(2)], options={},
                           grad_output=None, needs_input_grad=[True, True])
    errors = json.loads(raised.value.details["message"])
    assert errors.pop("getpid") == 0
    assert errors == {name: errno.EPERM for name in errors}


@pytest.mark.skipif(not level_available("namespace"), reason="'namespace' is not available")
def test_a_sandbox_that_cannot_start_is_the_graders_error_with_bubblewraps_words(tmp_path, monkeypatch):
    """Not 'importing ops.py stopped the worker': the student did nothing wrong."""
    monkeypatch.setattr(levels, "runtime_folders", lambda python: [Path("/nonexistent/venv")])  # bubblewrap cannot bind it
    with (tempfile.TemporaryDirectory(prefix="autodiff-channel-", dir=scratch_parent()) as folder,
          WorkerClient(prepare_scratch(load_submission(reference_copy(tmp_path / "s")), folder), isolation="namespace") as client):
        with pytest.raises(SandboxError, match="the sandbox could not start a worker .*bwrap: .*/nonexistent"):
            client.ensure_imported("ops", group="Mul")
        assert "ops" not in client.fatal_imports


# -- time budgets ---------------------------------------------------------------------------------

def rubric_with_limits(folder, **limits):
    text = FAST_RUBRIC_FILE.read_text()
    for key, value in limits.items():
        text, found = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text)
        assert found == 1
    path = Path(folder) / "rubric.toml"
    path.write_text(text)
    return load_rubric(path)


SLEEP = "        import time\n        time.sleep(9)  # just under the 10 s a call may take\n"


@pytest.mark.slow
def test_sleeping_just_under_the_call_limit_costs_only_its_own_group(tmp_path):
    rubric = rubric_with_limits(tmp_path, group_seconds=15)
    report = grade_and_validate(reference_copy(tmp_path / "submission", {"ops": [(MUL_RETURN, SLEEP + MUL_RETURN)]}), rubric)
    assert full_marks_except(report, "Mul") == {}
    assert "the time budget of 15 s for the checks of Mul is spent" in feedback(report, "Mul")
    assert report["duration_seconds"] < 15 + 10 + 45  # its share, one call over it, and the other groups' own time


@pytest.mark.slow
@pytest.mark.long  # sleeps until the total budget of 40 s is spent
def test_sleeping_in_every_op_ends_within_the_total_budget(tmp_path):
    returns = {"ops": [MUL_RETURN, "        return np.matmul(a, b)\n"],
               "activations": ["        return np.maximum(x, 0)\n", "        return np.log(clipped)\n"]}
    sleepy = {module: [(line, SLEEP + line) for line in lines] for module, lines in returns.items()}
    rubric = rubric_with_limits(tmp_path, group_seconds=15, total_seconds=40)
    report = grade_and_validate(reference_copy(tmp_path / "submission", sleepy), rubric)
    assert "the grading's total time budget of 40 s is spent" in json.dumps(report)
    assert report["duration_seconds"] < 40 + 10 + 45


WITHOUT_PIDFD = ("import os, runpy, sys\n"
                 "del os.pidfd_open  # as on macOS\n"
                 "sys.argv = sys.argv[1:]\n"
                 "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def test_without_a_watchable_child_the_supervisor_serves_in_process(monkeypatch):
    """macOS has no pidfd: a student's own check is served by the supervisor itself, with the same
    replies, groups and student exceptions (simulated here by removing os.pidfd_open)."""
    from grader.checks.checking import call_op

    def command(scratch, limits, log, seccomp):
        return [sys.executable, "-c", WITHOUT_PIDFD, str(scratch / ".worker" / launch.ENTRY), str(log)], scratch

    monkeypatch.setattr(isolation_level("process"), "command", command)
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
        scratch = prepare_scratch(load_submission(reference_copy(Path(folder) / "submission", {"ops": [
            ("        a, b, y = ctx.saved_tensors\n", "        raise NotImplementedError('Pow.backward: later')\n")]})),
            Path(folder) / "scratch")
        with WorkerClient(scratch, isolation="process") as client:
            a, b, g = np.ones((2, 3)), np.full((2, 3), 2.0), np.full((2, 3), 3.0)
            reply = call_op(client, "Mul", [a, b], grad_output=g)
            np.testing.assert_array_equal(reply["output"]["array"], a * b)
            np.testing.assert_array_equal(reply["grads"]["items"][1]["array"], g * a)
            with pytest.raises(Exception, match="Pow.backward is not implemented yet"):
                call_op(client, "Pow", [a, b], grad_output=g)
            assert client.process.poll() is None and client.starts == 1  # one supervisor served both groups


def test_the_grader_reads_the_exchange_file_it_opened_not_what_is_at_its_path(tmp_path):
    """Whatever comes to be at the exchange file's path after the sandbox started (a FIFO would
    block a reader; a link would lead anywhere), the grader's descriptor is the file it made."""
    import os
    import stat

    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(reference_copy(tmp_path / "submission")), scratch)
        with WorkerClient(Path(scratch), isolation="process") as client:
            client.request("hello", 30)
            path = Path(scratch) / launch.EXCHANGE
            made = os.stat(path)
            path.unlink()
            os.mkfifo(path)
            descriptor = client.exchange()
            try:
                opened = os.fstat(descriptor)
                assert stat.S_ISREG(opened.st_mode) and (opened.st_dev, opened.st_ino) == (made.st_dev, made.st_ino)
            finally:
                os.close(descriptor)
        assert client.exchange() is None  # no sandbox runs: no file to read
