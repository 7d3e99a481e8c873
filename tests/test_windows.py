"""The `process` level as it runs on native Windows, simulated on Linux (no Windows machine here).

What differs on Windows, and how each difference is made here:
- pipes cannot be selected: the client's PipeThreads (client.SELECTABLE_PIPES = False);
- no pass_fds: the supervisor opens its log by path (launch.LOG_BY_PATH = True);
- no fork, pidfd, readv, fcntl, resource in the sandbox: removed before the supervisor starts
  (SANDBOX_AS_ON_WINDOWS), which then serves the requests itself (InProcess);
- no FIFOs: MNIST's steps through a local connection (transport.SocketChannel);
- no process groups: stop_worker's taskkill (its command checked; it does not exist here).
What this cannot show: Windows' own pipes, sockets, process creation and taskkill.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader import GRADED_MODULES
from grader.checks.checking import call_op
from grader.course import expose_mnist
from grader.mnist import transport
from grader.mnist.loop import train
from grader.mnist.model import initial_parameters
from grader.mnist.transport import EPOCH_HEADER
from grader.sandbox import client as client_module
from grader.sandbox import launch, levels, protocol
from grader.sandbox.client import StudentException, WorkerClient, WorkerFailure
from grader.sandbox.launch import EXCHANGE, scratch_parent
from grader.sandbox.levels import isolation_level
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import reference_copy
from tests.support.paths import SOLUTIONS
from tests.test_faults import FAKE_WORKER, MISBEHAVIOURS
from tools import make_handout

# The supervisor without what Windows' Python lacks; it must then serve in-process.
SANDBOX_AS_ON_WINDOWS = """\
import os, sys
for name in ("fork", "pidfd_open", "readv"):
    delattr(os, name)
sys.modules.update(fcntl=None, resource=None)  # importing them fails, as on Windows
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
import supervisor
assert supervisor.WORKER is supervisor.InProcess
supervisor.main()
"""


def windows_command(scratch, limits, log, seccomp):
    return [sys.executable, "-I", "-c", SANDBOX_AS_ON_WINDOWS, str(scratch / ".worker" / launch.ENTRY), str(log)], scratch


def simulate_windows(monkeypatch):
    """The trusted side's Windows paths, and a sandbox without what Windows lacks."""
    for name in ("set_blocking", "mkfifo", "killpg"):  # the trusted side without them (readv: see the check below)
        monkeypatch.delattr(os, name)
    monkeypatch.setattr(client_module, "SELECTABLE_PIPES", False)
    monkeypatch.setattr(launch, "LOG_BY_PATH", True)
    monkeypatch.setattr(levels, "resource", None)  # no rlimits: the worker's command is started as it is
    monkeypatch.setattr(isolation_level("process"), "command", windows_command)
    monkeypatch.setattr(transport, "CHANNEL", transport.SocketChannel)


# -- the client's threads ------------------------------------------------------------------------

def test_the_reference_is_served_through_threads_in_process_with_its_log_by_path(monkeypatch):
    simulate_windows(monkeypatch)
    popens = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: popens.append((args, kwargs)) or real_popen(*args, **kwargs))
    printing = ("        return a * b\n", "        print('printed by Mul.forward', flush=True)\n        return a * b\n")
    raising = ("        a, b, y = ctx.saved_tensors\n", "        raise NotImplementedError('Pow.backward: later')\n")
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
        submission = reference_copy(Path(folder) / "submission", {"ops": [printing, raising]})
        scratch = prepare_scratch(load_submission(submission), Path(folder) / "scratch")
        with WorkerClient(scratch, isolation="process") as client:
            a, b, g = np.ones((300, 400)), np.full((300, 400), 2.0), np.full((300, 400), 3.0)  # 1 MB each: many reads
            reply = call_op(client, "Mul", [a, b], grad_output=g)
            np.testing.assert_array_equal(reply["output"]["array"], a * b)
            np.testing.assert_array_equal(reply["grads"]["items"][1]["array"], g * a)
            with pytest.raises(Exception, match="Pow.backward is not implemented yet"):
                call_op(client, "Pow", [a, b], grad_output=g)
            assert isinstance(client._threads, client_module.PipeThreads)
            assert client.process.poll() is None and client.starts == 1  # one supervisor served both groups
            process = client.process
        assert process.poll() is not None and wait_until(lambda: process.stdin.closed and process.stdout.closed)
        assert "printed by Mul.forward" in (scratch / "worker.log").read_text()
    (command,), options = popens[0]
    assert options["pass_fds"] == [] and command[-1] == str(scratch / "worker.log")


@pytest.mark.parametrize("windows", [False, True], ids=["child", "in-process"])
def test_a_result_that_cannot_be_sent_is_the_students_exception_in_process_as_in_a_child(monkeypatch, windows):
    """A Python int past int64 becomes an object array, which no frame carries: the reply says
    so, as what student code raised, wherever the worker runs."""
    if windows:
        simulate_windows(monkeypatch)
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
        submission = reference_copy(Path(folder) / "submission", {"ops": [("        return a * b\n", "        return 10 ** 30\n")]})
        with WorkerClient(prepare_scratch(load_submission(submission), Path(folder) / "scratch"), isolation="process") as client:
            client.ensure_imported("ops", group="Mul")
            with pytest.raises(StudentException, match="replying: ProtocolError: array of dtype object"):
                client.request("call", 10, group="Mul", name="Mul", inputs=[np.ones(2), np.ones(2)], options={},
                               grad_output=None, needs_input_grad=None)


def wait_until(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.fixture
def fake_supervisor(tmp_path, monkeypatch):
    """A WorkerClient whose supervisor is the given script."""
    def start(script):
        (tmp_path / "fake").mkdir()
        (tmp_path / "fake" / launch.ENTRY).write_text(script)
        monkeypatch.setattr(launch, "SANDBOX_FILES", [tmp_path / "fake" / launch.ENTRY, *launch.SANDBOX_FILES[1:]])
        monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 2 << 20)  # the real 64 MB, scaled down
        (tmp_path / "scratch").mkdir()
        return WorkerClient(tmp_path / "scratch", isolation="process")
    return start


def misbehaving(misbehaviour):
    return FAKE_WORKER.format(misbehaviour=textwrap.indent(misbehaviour, " " * 4))


@pytest.mark.parametrize("misbehaviour, message", MISBEHAVIOURS.values(), ids=MISBEHAVIOURS.keys())
def test_through_threads_a_misbehaving_worker_fails_the_request_as_through_a_selector(
        fake_supervisor, monkeypatch, misbehaviour, message):
    """test_faults' misbehaviours, with the same messages."""
    monkeypatch.setattr(client_module, "SELECTABLE_PIPES", False)
    with fake_supervisor(misbehaving(misbehaviour)) as client:
        if misbehaviour == "time.sleep(60)":  # killed from outside while it serves the request
            client.request("hello", 10)
            threading.Timer(0.5, os.kill, (client.process.pid, signal.SIGKILL)).start()
        with pytest.raises(WorkerFailure) as failure:
            client.request("call", timeout=20)
        assert failure.value.status == "error" and message in str(failure.value)
        assert client.process is None and client._threads is None
        assert client.request("hello", 10) == {"fake": True}
        assert client.starts == 2


@pytest.mark.parametrize("selectable", [True, False], ids=["selector", "threads"])
def test_a_worker_that_never_answers_times_out_with_the_requests_own_limit(fake_supervisor, monkeypatch, selectable):
    monkeypatch.setattr(client_module, "SELECTABLE_PIPES", selectable)
    monkeypatch.setattr(client_module, "SUPERVISOR_GRACE", 0.5)
    with fake_supervisor(misbehaving("time.sleep(60)")) as client:
        started = time.monotonic()
        with pytest.raises(WorkerFailure) as failure:
            client.request("call", timeout=1, key=("Mul", "forward"))
        assert 1.5 <= time.monotonic() - started < 5
        assert failure.value.status == "timeout" and str(failure.value) == "no answer within the time limit of 1 s"
        assert client.process is None
        with pytest.raises(WorkerFailure, match=r"time limit of 1 s \(an earlier check; not run again\)"):
            client.request("call", timeout=1, key=("Mul", "forward"))


STOPS_READING = """\
import json, struct, sys, time
header = json.dumps({"ready": True}).encode()
sys.stdout.buffer.write(struct.pack("<QQ", len(header), 0) + header)
sys.stdout.buffer.flush()
time.sleep(60)  # and never reads a request
"""


@pytest.mark.parametrize("selectable", [True, False], ids=["selector", "threads"])
def test_a_request_the_worker_does_not_read_times_out_while_it_is_written(fake_supervisor, monkeypatch, selectable):
    monkeypatch.setattr(client_module, "SELECTABLE_PIPES", selectable)
    monkeypatch.setattr(client_module, "SUPERVISOR_GRACE", 0.5)
    with fake_supervisor(STOPS_READING) as client:
        started = time.monotonic()
        with pytest.raises(WorkerFailure) as failure:
            client.request("call", timeout=1, inputs=[np.zeros(1 << 20)])  # 8 MB: more than any pipe holds
        assert 1.5 <= time.monotonic() - started < 5
        assert failure.value.status == "timeout" and str(failure.value) == "no answer within the time limit of 1 s"
        assert client.process is None


# -- the launcher and the protocol without POSIX ---------------------------------------------------

def test_without_process_groups_a_worker_is_stopped_with_its_tree(monkeypatch):
    commands = []
    monkeypatch.delattr(os, "killpg")
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))  # no taskkill here
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    launch.stop_worker(process)
    assert commands == [["taskkill", "/F", "/T", "/PID", str(process.pid)]]
    assert process.returncode is not None and time.monotonic() - started < 5  # then killed itself


def test_on_windows_the_worker_keeps_systemroot(monkeypatch):
    """Without SYSTEMROOT, Windows cannot start sockets (MNIST's connection) in the worker."""
    monkeypatch.setenv("SYSTEMROOT", r"C:\Windows")
    assert "SYSTEMROOT" not in launch.worker_environment()
    monkeypatch.setattr(os, "name", "nt")
    environment = launch.worker_environment()
    monkeypatch.undo()
    assert environment["SYSTEMROOT"] == r"C:\Windows"


def test_frames_are_read_without_readv(monkeypatch):
    import importlib.util

    monkeypatch.delattr(os, "readv")
    spec = importlib.util.spec_from_file_location("protocol_without_readv", protocol.__file__)
    without_readv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(without_readv)
    sent = {"big": np.arange(1 << 19, dtype=np.float64), "text": "é"}  # 4 MB: several reads
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (protocol.write_frame(write_end, protocol.encode_frame(sent)), os.close(write_end)))
    writer.start()
    header, body = without_readv.read_frame(read_end)
    assert without_readv.read_frame(read_end) is None  # its end
    writer.join()
    os.close(read_end)
    message = protocol.decode_frame(header, body)
    assert message["text"] == "é" and np.array_equal(message["big"], sent["big"])


def reader_of(data, most):
    """A read_into over data, at most `most` bytes a call (a pipe, a socket, a file object)."""
    position = 0

    def read_into(view):
        nonlocal position
        count = min(most, len(view), len(data) - position)
        view[:count] = data[position:position + count]
        position += count
        return count
    return read_into


def test_a_frame_reads_the_same_through_any_reader_and_cut_short_is_its_end():
    sent = {"big": np.arange(3000, dtype=np.float64), "text": "é"}
    data = b"".join(bytes(part) for part in protocol.encode_frame(sent))
    read_into = reader_of(data, 7)
    message = protocol.decode_frame(*protocol.read_frame(read_into))
    assert message["text"] == "é" and np.array_equal(message["big"], sent["big"]) and message["big"].flags.writeable
    assert protocol.read_frame(read_into) is None
    for cut in (4, protocol.FRAME_PREFIX.size + 3, len(data) - 1):
        assert protocol.read_frame(reader_of(data[:cut], 1 << 20)) is None


# -- MNIST through a connection --------------------------------------------------------------------

SHAPES = [p.shape for p in initial_parameters(0)]


def zero_step(step, weights):
    return {"loss": 2.0, "updates": [{"kind": "ndarray", "array": np.zeros(shape, np.float32)} for shape in SHAPES]}


def play_worker(reply_for_step, seen=None, steps_before_leaving=None):
    """serve(**fields) for train(), speaking as worker.mnist_gradients does over the connection."""
    def serve(port, batch_size, exchange, slots, slot_bytes, first_slot, **fields):
        ring = transport.StepRing(exchange, slots, slot_bytes, first_slot)
        with socket.create_connection(("127.0.0.1", port)) as connection, \
                connection.makefile("rb") as down, connection.makefile("wb") as up:
            step = 0
            while True:
                count, weight_bytes = EPOCH_HEADER.unpack(down.read(EPOCH_HEADER.size))
                if not count:
                    return
                down.read(4 * count)
                weights = np.frombuffer(down.read(weight_bytes), "<f4")
                if seen is not None:
                    seen.append(weights)
                for _ in range(0, count, batch_size):
                    if step == steps_before_leaving:
                        return  # as a worker that died: its end of the connection closes
                    if not ring.put(protocol.encode_frame(reply_for_step(step, weights)), up,
                                    lambda: bool(select.select([connection], [], [], 0.01)[0])):
                        return
                    step += 1
    return serve


def run_on_a_connection(serve, monkeypatch, epochs=2):
    monkeypatch.setattr(transport, "CHANNEL", transport.SocketChannel)
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        exchange = Path(folder) / EXCHANGE
        exchange.touch()
        training = train(lambda **fields: serve(**{**fields, "exchange": exchange}), lambda: os.open(exchange, os.O_RDWR),
                         Path(folder), images, np.zeros(10, dtype=np.uint8), epochs=epochs, batch_size=64, lr=0.1, seed=0,
                         train_examples=64 * 3)
        assert os.listdir(folder) == [EXCHANGE]  # no FIFO was made
    return training


def test_through_a_connection_the_loop_trains_on_what_the_worker_sends(monkeypatch):
    seen = []
    training = run_on_a_connection(play_worker(zero_step, seen), monkeypatch)
    assert training.refused is None and training.losses == [2.0, 2.0] and training.accuracy_per_epoch == [100.0, 100.0]
    assert np.array_equal(seen[0], np.concatenate([p.ravel() for p in initial_parameters(0)]))


def test_through_a_connection_a_bad_gradient_stops_the_training_with_a_reason(monkeypatch):
    def step(step, weights):
        reply = zero_step(step, weights)
        if step == 1:
            reply["updates"][0]["array"] = reply["updates"][0]["array"][:, :-1]
        return reply

    training = run_on_a_connection(play_worker(step), monkeypatch)
    assert "has shape (784, 255), expected (784, 256)" in training.refused and training.accuracy_per_epoch == []


def test_through_a_connection_a_worker_that_leaves_or_never_connects_ends_the_loop(monkeypatch):
    training = run_on_a_connection(play_worker(zero_step, steps_before_leaving=4), monkeypatch)
    assert training.refused is None and training.losses == [2.0] and training.accuracy_per_epoch == [100.0]
    training = run_on_a_connection(lambda **fields: None, monkeypatch)
    assert training.refused is None and training.losses == [] and training.accuracy_per_epoch == []


@pytest.mark.slow
def test_the_reference_trains_the_same_through_a_connection_as_through_fifos(monkeypatch):
    """The real worker (transport.step_streams) in a Windows-like sandbox: one short epoch, step for
    step the same as through FIFOs with the sandbox as it is on Linux."""
    trainings = {}
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as folder:
        scratch = prepare_scratch(load_submission(SOLUTIONS), folder)
        data, test_images, test_labels = expose_mnist(scratch)
        for transfer in ("fifos", "connection"):
            if transfer == "connection":
                simulate_windows(monkeypatch)
            with WorkerClient(scratch, isolation="process") as client:
                def serve(**fields):
                    for module in ("ops", "activations", "losses"):
                        client.ensure_imported(module, group="MNIST")
                    client.request("mnist_gradients", 120, group="MNIST", **fields)

                trainings[transfer] = train(serve, client.exchange, data, test_images[:2000], test_labels[:2000], epochs=1, batch_size=64,
                                            lr=0.1, seed=0, train_examples=6400)
                assert (client._threads is None) == (transfer == "fifos")
    fifos, connection = trainings["fifos"], trainings["connection"]
    assert fifos.refused is None and connection.refused is None
    assert connection.losses == fifos.losses and connection.accuracy_per_epoch == fifos.accuracy_per_epoch
    assert fifos.accuracy_per_epoch[0] > 80


# -- a student's `python -m grader check`, all of the above at once ----------------------------------

# Loaded by the checks' pytest process (-p, through PYTEST_ADDOPTS) before the grader: the trusted
# side as on Windows, and a count of the Windows paths taken, written where the test reads it.
AS_ON_WINDOWS_PLUGIN = f'''\
import json, os, sys

assert "grader.sandbox.protocol" not in sys.modules, "loaded too late to simulate Windows"
for name in ("readv", "set_blocking", "mkfifo", "killpg"):
    delattr(os, name)
sys.modules.update(fcntl=None, resource=None)

from grader.mnist import transport
from grader.sandbox import client, launch, levels

SANDBOX_AS_ON_WINDOWS = {SANDBOX_AS_ON_WINDOWS!r}
client.SELECTABLE_PIPES = False
launch.LOG_BY_PATH = True
levels.LEVELS["process"].command = lambda scratch, limits, log, seccomp: (
    [sys.executable, "-I", "-c", SANDBOX_AS_ON_WINDOWS, str(scratch / ".worker" / launch.ENTRY), str(log)], scratch)
assert transport.CHANNEL is transport.SocketChannel and levels.fcntl is None and levels.resource is None
taken = {{"pipe threads": 0, "connections": 0}}


def counted(cls, key):
    original = cls.__init__

    def init(self, *args):
        taken[key] += 1
        original(self, *args)
    cls.__init__ = init


counted(client.PipeThreads, "pipe threads")
counted(transport.SocketChannel, "connections")


def pytest_unconfigure(config):
    with open(os.environ["WINDOWS_PATHS_TAKEN"], "w") as record:
        json.dump(taken, record)
'''


@pytest.mark.slow
def test_a_students_check_of_the_reference_gives_full_visible_marks_as_on_windows(tmp_path):
    archive = tmp_path / "autodiff-handout.zip"
    make_handout.build(archive)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    folder = tmp_path / "autodiff-handout"
    for name in GRADED_MODULES:
        shutil.copy(SOLUTIONS / "autodiff" / f"{name}.py", folder / "autodiff" / f"{name}.py")
    for module in ("fcntl", "resource"):  # the grader's own process, as in test_packages
        (folder / f"{module}.py").write_text(f"raise ImportError('simulated: no {module} on this platform')\n")
    (folder / "as_on_windows.py").write_text(AS_ON_WINDOWS_PLUGIN)
    record = tmp_path / "taken.json"
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))},
                   "PYTEST_ADDOPTS": "-p as_on_windows", "WINDOWS_PATHS_TAKEN": str(record)}
    completed = subprocess.run([sys.executable, "-m", "grader", "check"], cwd=folder, env=environment,
                               capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    taken = json.loads(record.read_text())
    assert taken["pipe threads"] >= 1 and taken["connections"] == 1  # a supervisor, and MNIST's training
    assert "warning" not in (completed.stdout + completed.stderr).lower()
    assert "86/86 visible points" in completed.stdout, completed.stdout
    report = json.loads((folder / "build" / "report.json").read_text())
    assert report["grader"]["isolation"] == "process" and report["score"] == report["max_score"]
