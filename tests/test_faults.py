"""Faults on the worker's side of the pipe, and in the grader's own data.

A worker that dies mid-check, closes its end, sends garbage, an oversized message or a pickled
object array fails the request it was serving with a clear message, and the next request gets a
fresh worker; in a grade, the check becomes status "error" and every other group is graded. A
corrupt or missing MNIST file makes the grader refuse before grading anyone.
"""
import gzip
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from grader import GRADED
from grader.sandbox import client as client_module
from grader.sandbox import launch, protocol
from grader.sandbox.client import WorkerClient, WorkerFailure
from grader.sandbox.launch import scratch_parent
from grader.sandbox.levels import level_available
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import feedback, full_marks_except, grade_and_validate, group_scores, reference_copy
from tests.support.paths import ROOT, SOLUTIONS

OPS_GROUPS = [name for name, module in GRADED.items() if module == "ops"]

# -- the client, against a fake sandbox (its supervisor misbehaving) ----------------------------------

FAKE_WORKER = """\
import json, os, struct, sys, time
import numpy as np

PREFIX = struct.Struct("<QQ")  # the protocol's frame: header and body lengths, the JSON header, the body


def send(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def frame(message, body=b""):
    header = json.dumps(message).encode()
    return PREFIX.pack(len(header), len(body)) + header + body


def requests():
    while len(prefix := sys.stdin.buffer.read(PREFIX.size)) == PREFIX.size:
        header_size, body_size = PREFIX.unpack(prefix)
        header = sys.stdin.buffer.read(header_size)
        sys.stdin.buffer.read(body_size)
        yield json.loads(header)


send(frame({{"ready": True}}))
for request in requests():
    if request["command"] == "hello":
        send(frame({{"id": request["id"], "restart": False, "ok": True, "reply": {{"result": {{"fake": True}}}}}}))
        continue
{misbehaviour}
"""

OBJECT_ARRAY = ("send(frame({'id': request['id'], 'restart': False, 'ok': True, 'reply': {'result': "
                "{'output': {'kind': 'ndarray', 'array': {'__raw__': ['|O', [1]]}}}}}, bytes(8)))\ntime.sleep(60)")
MISBEHAVIOURS = {  # name → (the fake worker's answer to a call, what the failure must say)
    "exits mid-request": ("os._exit(3)", "the worker exited with status 3"),
    "is killed mid-request": ("time.sleep(60)", "the worker exited on signal SIGKILL"),
    "closes its stdout and lingers": ("os.close(1)\ntime.sleep(60)", "the worker closed the protocol channel"),
    "sends garbage": ("send(PREFIX.pack(17, 0) + b'PASSED all tests\\n')\ntime.sleep(60)",
                      "the worker sent an unreadable message (not a JSON message"),
    "sends bytes that are no frame": ("send(b'PASSED all tests\\n' * 100)\ntime.sleep(60)",
                                      "the worker sent an unreadable message (a frame of"),
    "announces an oversized message": ("send(PREFIX.pack(3 << 20, 0))\ntime.sleep(60)", "over the 2 MB allowed"),
    "answers another request": ("send(frame({'id': request['id'] + 1, 'ok': True}))\ntime.sleep(60)",
                                "the worker's reply did not match the request"),
    "sends an object array": (OBJECT_ARRAY, "malformed array: dtype object and shape (1,) are not sendable"),
    "sends arrays that do not fill the body": (
        "send(frame({'id': request['id'], 'restart': False, 'ok': True, 'reply': {'result': {}}}, bytes(8)))\n"
        "time.sleep(60)", "a frame's body of 8 bytes holds 0 bytes of arrays"),
}


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    """A WorkerClient whose worker misbehaves on every call as told (and answers hello properly)."""
    def start(misbehaviour):
        (tmp_path / "fake").mkdir()
        (tmp_path / "fake" / launch.ENTRY).write_text(FAKE_WORKER.format(misbehaviour=textwrap.indent(misbehaviour, " " * 4)))
        monkeypatch.setattr(launch, "SANDBOX_FILES", [tmp_path / "fake" / launch.ENTRY, *launch.SANDBOX_FILES[1:]])
        monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 2 << 20)  # the real 64 MB, scaled down
        (tmp_path / "scratch").mkdir()
        return WorkerClient(tmp_path / "scratch", isolation="process")
    return start


@pytest.mark.parametrize("misbehaviour, message", MISBEHAVIOURS.values(), ids=MISBEHAVIOURS.keys())
def test_misbehaving_worker_fails_the_request_clearly_and_is_replaced(fake_worker, misbehaviour, message):
    with fake_worker(misbehaviour) as client:
        if misbehaviour == "time.sleep(60)":  # killed from outside while it serves the request
            client.request("hello", 10)
            killer = threading.Timer(0.5, os.kill, (client.process.pid, signal.SIGKILL))
            killer.start()
        with pytest.raises(WorkerFailure) as failure:
            client.request("call", timeout=20)
        assert failure.value.status == "error"
        assert message in str(failure.value)
        assert client.process is None  # stopped: nothing of it is left to answer the next request
        assert client.request("hello", 10) == {"fake": True}
        assert client.starts == 2


@pytest.mark.skipif(not level_available("namespace"), reason="isolation level 'namespace' is not available")
def test_stopped_namespace_worker_leaves_nothing_running_as_its_uid(monkeypatch):
    """Killed processes count against the uid's RLIMIT_NPROC until they are gone (and reaped): the
    uid goes to the next worker only then, or a thread or fork bomb would stop that worker starting."""
    forks = ("for _ in range(20):\n    if os.fork() == 0:\n        time.sleep(60)\n"
             "send(frame({'id': request['id'], 'restart': False, 'ok': True, 'reply': {'result': {}}}))")
    with tempfile.TemporaryDirectory(prefix="autodiff-faults-") as folder:
        Path(folder).chmod(0o755)  # the sandbox's uid must reach the scratch folder inside
        (Path(folder) / "fake").mkdir()
        (Path(folder) / "fake" / launch.ENTRY).write_text(FAKE_WORKER.format(misbehaviour=textwrap.indent(forks, " " * 4)))
        monkeypatch.setattr(launch, "SANDBOX_FILES", [Path(folder) / "fake" / launch.ENTRY, *launch.SANDBOX_FILES[1:]])
        (Path(folder) / "scratch").mkdir()
        with WorkerClient(Path(folder) / "scratch", isolation="namespace") as client:
            client.request("call", timeout=20)
            uid = client.process.uid
            assert len(processes_of(uid)) > 20
            client.stop()
            assert processes_of(uid) == []


def processes_of(uid):
    return [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit() and owner(entry) == uid]


def owner(path):
    try:
        return path.stat().st_uid
    except OSError:
        return None


# -- in a grade: the check errs, the rest is graded ---------------------------------------------------

PROTOCOL_CHANNEL = """\
import fcntl, os, sys
def _protocol_channel():  # the worker's private copy of its stdout: the write end of a pipe
    for fd in range(3, 64):
        try:
            writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
            if writable and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                return fd
        except OSError:
            pass
"""
FAULTS_IN_A_GRADE = {  # what l2_penalty does instead of returning → what its checks must say
    "killed": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "the worker exited on signal SIGKILL"),
    "garbage on the protocol channel": ("os.write(_protocol_channel(), b'PASSED\\n' * 4)", "the worker sent an unreadable message"),
    "an object array on the protocol channel": (
        "import json, struct\n"
        "header = json.dumps({'result': {'value': {'kind': 'ndarray', 'array': {'__raw__': ['|O', [1]]}}}}).encode()\n"
        "os.write(_protocol_channel(), struct.pack('<QQ', len(header), 8) + header + bytes(8))  # a well-formed frame\n"
        "import time\ntime.sleep(60)",
        "malformed array: dtype object and shape (1,) are not sendable"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault, message", FAULTS_IN_A_GRADE.values(), ids=FAULTS_IN_A_GRADE.keys())
def test_worker_fault_in_a_grade_is_an_error_of_its_own_check_only(tmp_path, fault, message):
    head = "def l2_penalty(weights, lam):\n"
    faulty = PROTOCOL_CHANNEL + "\n\n" + head + textwrap.indent(fault, " " * 4) + "\n"
    submission = reference_copy(tmp_path, {"regularizers": [(head, faulty)]})
    report = grade_and_validate(submission)
    penalty = next(test for test in report["tests"] if test["group"] == "l2_penalty")
    assert penalty["status"] == "error" and penalty["score"] == 0
    assert message in penalty["output"]
    assert full_marks_except(report, "l2_penalty") == {}


@pytest.mark.slow
def test_worker_that_closes_its_pipes_and_lingers_costs_only_its_module(tmp_path):
    linger = ("import numpy as np\n", "import numpy as np\nimport atexit, os, time\n"
                                        "atexit.register(time.sleep, 20)\nos.closerange(3, 256)\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [linger]}))
    assert full_marks_except(report, *OPS_GROUPS, "MNIST") == {}
    assert all(group_scores(report)[group][0] == 0 for group in OPS_GROUPS)
    assert "importing ops.py stopped the worker: the worker closed the protocol channel" in feedback(report, "Mul")
    assert not any("the grader failed" in test["output"] for test in report["tests"])
    # Not a time-out per check: those would add 15 s of the supervisor's grace each, over a dozen checks.
    assert report["duration_seconds"] < 120


# -- the supervisor, of its worker child: the same words as the client's, of a supervisor ------------

MUL_RETURN = "        return a * b\n"
CHILD_MISBEHAVIOURS = {  # what Mul.forward does in the worker child → the failure's status and what it must say
    "exits": ("os._exit(3)", "error", "the worker exited with status 3 (did the code call sys.exit or os._exit?)"),
    "is killed": ("os.kill(os.getpid(), signal.SIGKILL)", "error", "the worker exited on signal SIGKILL: killed (memory or time limit?)"),
    "closes its reply channel and lingers": ("os.close(_protocol_channel())\ntime.sleep(60)", "error",
                                             "the worker closed the protocol channel (did the code close file descriptors?)"),
    "sends bytes that are no frame": ("os.write(_protocol_channel(), b'PASSED\\n' * 4)\ntime.sleep(60)", "error",
                                      "the worker sent an unreadable message (a frame of"),
    "sends a header that is no JSON": ("os.write(_protocol_channel(), struct.pack('<QQ', 5, 0) + b'{1: 2')\ntime.sleep(60)", "error",
                                       "the worker sent an unreadable message (not a JSON message: "),
    "sends JSON that is no reply": ("os.write(_protocol_channel(), struct.pack('<QQ', 12, 0) + b'{\"ok\": true}')\ntime.sleep(60)",
                                    "error", "the worker sent an unreadable message (not a reply)"),
    "sends half a frame and exits": ("os.write(_protocol_channel(), struct.pack('<QQ', 100, 0) + b'{')\nos._exit(3)", "error",
                                     "the worker exited with status 3"),
    "overstays": ("time.sleep(60)", "timeout", "no answer within the time limit of 2 s"),
}


def misbehaving_mul(folder, misbehaviour):
    """A WorkerClient (process level) of the reference whose Mul.forward misbehaves as told."""
    preamble = ("import numpy as np\n", "import numpy as np\n" + PROTOCOL_CHANNEL + "import signal, struct, time\n")
    submission = reference_copy(Path(folder) / "submission", {"ops": [preamble, (MUL_RETURN, textwrap.indent(misbehaviour, " " * 8) + "\n")]})
    return WorkerClient(prepare_scratch(load_submission(submission), Path(folder) / "scratch"), isolation="process")


def call_mul(client, timeout=2):
    return client.request("call", timeout, group="Mul", name="Mul", inputs=[np.ones(2), np.ones(2)], options={},
                          grad_output=None, needs_input_grad=None)


@pytest.mark.parametrize("misbehaviour, status, message", CHILD_MISBEHAVIOURS.values(), ids=CHILD_MISBEHAVIOURS.keys())
def test_a_misbehaving_child_fails_its_request_in_the_words_the_client_uses(misbehaviour, status, message):
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder, misbehaving_mul(folder, misbehaviour) as client:
        client.ensure_imported("ops", group="Mul")
        with pytest.raises(WorkerFailure) as failure:
            call_mul(client)
        assert failure.value.status == status and message in str(failure.value)
        assert client.fresh_child and client.starts == 1  # the child ended, the supervisor still serves
        assert "numpy" in client.request("hello", 10)


def test_what_a_child_leaves_on_its_reply_channel_after_a_reply_fails_its_next_request():
    late_writer = "if os.fork() == 0:\n    time.sleep(0.3)\n    os.write(_protocol_channel(), b'x')\n    os._exit(0)\nreturn a * b"
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder, misbehaving_mul(folder, late_writer) as client:
        client.ensure_imported("ops", group="Mul")
        assert call_mul(client)["output"]["kind"] == "ndarray"
        time.sleep(1)
        with pytest.raises(WorkerFailure, match="the worker wrote to its reply channel outside a reply"):
            call_mul(client)


# -- the grader's own data ------------------------------------------------------------------------

MNIST_FILES = sorted(path.name for path in (ROOT / "datasets" / "mnist").glob("*.gz"))


@pytest.fixture
def mnist_copy(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in MNIST_FILES:
        shutil.copyfile(ROOT / "datasets" / "mnist" / name, folder / name)
    return folder


def corrupt(path):
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 0xFF  # one label changed: still a valid IDX file
    path.write_bytes(gzip.compress(bytes(content)))


DATASET_FAULTS = {
    "a corrupt file": (corrupt, "is corrupt (its SHA-256 does not match"),
    "a truncated file": (lambda path: path.write_bytes(path.read_bytes()[:1000]), "is not a readable gzip file"),
    "a missing file": (lambda path: path.unlink(), "is missing"),
}


def grade_with_mnist_from(folder, out):
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(ROOT / "solutions"), "--out", str(out)],
                          cwd=ROOT, env={**os.environ, "MNIST_DIR": str(folder)}, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("damage, message", DATASET_FAULTS.values(), ids=DATASET_FAULTS.keys())
def test_damaged_mnist_makes_the_grader_refuse_before_grading(tmp_path, mnist_copy, damage, message):
    damaged = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    damage(damaged)
    completed = grade_with_mnist_from(mnist_copy, tmp_path / "report.json")
    assert completed.returncode == 1
    assert f"grader: cannot grade: MNIST file {damaged} {message}" in completed.stderr
    assert "grading" not in completed.stdout
    assert not (tmp_path / "report.json").exists()


def test_missing_dataset_folder_makes_the_grader_refuse(tmp_path):
    completed = grade_with_mnist_from(tmp_path / "nowhere", tmp_path / "report.json")
    assert completed.returncode == 1
    assert f"grader: cannot grade: MNIST file {tmp_path / 'nowhere'}" in completed.stderr
    assert "is missing" in completed.stderr
    assert not (tmp_path / "report.json").exists()


def test_a_private_temporary_folder_does_not_hold_the_scratch_copies(tmp_path, monkeypatch):
    """A sandboxed worker runs as another uid: under a TMPDIR only its owner can enter, it could
    not reach its scratch copy, and the grader would quietly fall back to a weaker level."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    assert launch.scratch_parent() == Path("/tmp")


@pytest.mark.slow
def test_a_returned_object_that_raises_when_read_fails_only_its_own_check(tmp_path):
    """The worker reads what student code returned (its length, its items): that runs student code
    too, so it must fail the check, not the worker."""
    hostile = ("        grad_b = grad_output * a\n        return reduce_grad_to_shape(grad_a, a.shape), "
               "reduce_grad_to_shape(grad_b, b.shape)\n",
               "        grad_b = grad_output * a\n"
               "        class Hostile(tuple):\n"
               "            def __len__(self):\n"
               "                raise RuntimeError('read me if you can')\n"
               "        return Hostile((grad_a, grad_b))\n")
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [hostile]}))
    assert full_marks_except(report, "Mul") == {}
    assert "Mul.backward raised RuntimeError: read me if you can" in feedback(report, "Mul")
    assert "the worker exited" not in feedback(report, "Mul")


@pytest.mark.slow
def test_a_regularizer_whose_result_raises_when_read_fails_only_its_own_check(tmp_path):
    """The same for l2_penalty: reading its result (a list whose __len__ raises) runs student code."""
    hostile = ("    return lam * sum(float(np.sum(np.square(w.data))) for w in weights)\n",
               "    class Hostile(list):\n"
               "        def __len__(self):\n"
               "            raise RuntimeError('read me if you can')\n"
               "    return Hostile([lam * sum(float(np.sum(np.square(w.data))) for w in weights)])\n")
    report = grade_and_validate(reference_copy(tmp_path, {"regularizers": [hostile]}))
    assert full_marks_except(report, "l2_penalty") == {}
    said = feedback(report, "l2_penalty")
    assert "l2_penalty raised RuntimeError: read me if you can" in said
    assert "the worker exited" not in said and "sys.exit" not in said


def test_a_supervisor_that_overstays_is_replaced_and_the_student_told_of_their_own_time_limit(fake_worker, monkeypatch):
    """The supervisor's grace is the sandbox's, not the student's: the message names the request's limit."""
    monkeypatch.setattr(client_module, "SUPERVISOR_GRACE", 1)
    with fake_worker("time.sleep(60)") as client:
        with pytest.raises(WorkerFailure) as failure:
            client.request("call", timeout=2)
        assert failure.value.status == "timeout"
        assert str(failure.value) == "no answer within the time limit of 2 s"
        assert client.process is None


def test_the_process_level_leaves_the_graders_own_temporary_files_alone():
    """The supervisor clears what its uid owns in /tmp between groups only where that uid is the
    sandbox's own (a namespace, the uid level): at the process level it is the grader's user."""
    marker = Path(tempfile.gettempdir()) / f"the-graders-own-{os.getpid()}"
    marker.write_text("kept")
    try:
        with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
            scratch = prepare_scratch(load_submission(SOLUTIONS), folder)
            with WorkerClient(scratch, isolation="process") as client:
                for group in ("Mul", "Pow"):
                    client.ensure_imported("ops", group=group)
        assert marker.read_text() == "kept"
    finally:
        marker.unlink(missing_ok=True)
