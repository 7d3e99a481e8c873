"""MNIST trained by the trusted side (grader/mnist/): its loop is the course's, and whatever the
worker sends for a step is checked before use — a gradient of the wrong shape, nan, complex, an
object, a forged frame: a clear failure of the check, never a crash of the grader.

The worker's side is played here by a thread speaking the protocol of worker.mnist_gradients (the
FIFOs, the exchange file's ring),
so that each reply can be forged; the graded runs of real submissions are the slow tests at the end
(the MNIST attacks themselves are in tests/support/attacks.py, run by test_attacks.py)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from grader.mnist import transport
from grader.mnist.loop import SLOT_BYTES, StepRefused, checked_step, train
from grader.mnist.model import PARAMETER_NAMES, initial_parameters, predict
from grader.sandbox import protocol
from tests.support.grading import FAST_RUBRIC, grade_and_validate, graded_once, reference_copy
from tests.support.paths import ROOT, SOLUTIONS, import_autodiff

import_autodiff(SOLUTIONS)
from autodiff.nn import MLP3  # noqa: E402
from autodiff.train import predict as course_predict  # noqa: E402
from autodiff.train import prepare_images  # noqa: E402

SHAPES = [p.shape for p in initial_parameters(0)]


def described(grads):
    return [{"kind": "none"} if g is None else {"kind": "ndarray", "array": g} for g in grads]


def test_initial_weights_are_mlp3s():
    for seed in (0, 7):
        for ours, course in zip(initial_parameters(seed), MLP3(seed=seed).parameters(), strict=True):
            assert ours.dtype == np.float32 and np.array_equal(ours, course.data)


def test_the_trusted_side_builds_mlp3_from_the_courses_copy_and_imports_no_autodiff():
    """MLP3's parameters come from the course's own nn.py (its copy in the grader: graded bodies
    blank), in a process where no `autodiff` package, the student's or any, is imported."""
    probe = ("import inspect, sys; from pathlib import Path; from grader.course import COURSE_PACKAGE; from grader.mnist import loop, model; "
             "assert Path(inspect.getfile(model.MLP3)) == COURSE_PACKAGE.resolve() / 'nn.py', inspect.getfile(model.MLP3); "
             "assert not [name for name in sys.modules if name.partition('.')[0] == 'autodiff']")
    completed = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_the_worker_gets_the_trusted_sides_transport_and_its_rule(tmp_path):
    """The worker's end of the transfer is the trusted side's own file, shipped beside the worker
    (launch.SANDBOX_FILES) and imported there by its bare name; the trusted loop checks each step
    by the rule it holds."""
    from grader.mnist import loop
    from grader.sandbox import launch

    assert loop.accepted_update is transport.accepted_update and Path(transport.__file__).resolve() in launch.SANDBOX_FILES
    for file in launch.SANDBOX_FILES:
        shutil.copyfile(file, tmp_path / file.name)
    probe = "import sys; sys.path.insert(0, '.'); import transport, worker; assert worker.transport is transport; print(transport.EXCHANGE)"
    completed = subprocess.run([sys.executable, "-I", "-c", probe], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout.strip() == transport.EXCHANGE, completed.stderr


def test_predict_is_the_course_forward():
    model = MLP3(seed=3)
    images = np.random.default_rng(0).integers(0, 256, (500, 28, 28), dtype=np.uint8)
    ours = predict([p.data for p in model.parameters()], images, batch_size=128)
    assert np.array_equal(ours, course_predict(model, prepare_images(images)))


def test_the_worker_is_given_the_training_set_only(tmp_path):
    from grader.course import expose_mnist

    folder, test_images, test_labels = expose_mnist(tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ["train_images.npy", "train_labels.npy"]
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)


def test_a_correct_step_is_accepted_none_leaves_a_parameter_be():
    grads = [np.ones(shape, dtype=np.float64) for shape in SHAPES]
    grads[1] = None
    grads[2] = grads[2].astype(">f4")  # big-endian: a real floating-point array all the same
    loss, checked = checked_step({"loss": 2.5, "updates": described(grads)}, initial_parameters(0))
    assert loss == 2.5 and checked[1] is None and checked[0].dtype == np.float64 and checked[2].dtype == np.dtype(">f4")


@pytest.mark.parametrize("bad, says", [
    (lambda g: g[:-1], "shape (783, 256), expected (784, 256)"),
    (lambda g: g.astype(np.complex64), "dtype complex64; a real floating-point array is expected"),
    (lambda g: g.astype(np.int32), "dtype int32; a real floating-point array is expected"),
    (lambda g: g.view([("x", np.float32)]), "a real floating-point array is expected"),
])
def test_a_bad_gradient_is_refused_with_what_is_wrong(bad, says):
    grads = [np.zeros(shape, dtype=np.float32) for shape in SHAPES]
    grads[0] = bad(grads[0] + 1)
    with pytest.raises(StepRefused, match=f"the gradient of the {PARAMETER_NAMES[0]}"):
        checked_step({"loss": 1.0, "updates": described(grads)}, initial_parameters(0))
    with pytest.raises(StepRefused) as refused:
        checked_step({"loss": 1.0, "updates": described(grads)}, initial_parameters(0))
    assert says in str(refused.value)


@pytest.mark.parametrize("reply", [
    {"loss": "1.0", "updates": []}, {"loss": True, "updates": []}, {"loss": 1.0, "updates": "no"}, {"loss": 1.0},
    {"loss": 1.0, "updates": [{"kind": "ndarray", "array": None}] * 6},
    {"loss": 1.0, "updates": [{"kind": "unsendable array", "dtype": "object", "shape": [784, 256]}] * 6},
    {"loss": 1.0, "grads": described([np.zeros(shape, np.float32) for shape in SHAPES])},  # gradients, not SGD's updates
])
def test_a_malformed_step_is_refused(reply):
    with pytest.raises(StepRefused):
        checked_step(reply, initial_parameters(0))


def test_frames_carry_arrays_as_raw_bytes():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.asfortranarray(np.eye(3)), np.float64(2.0) * np.ones((0, 4))]
    frame = b"".join(protocol.encode_frame({"loss": 1.5, "grads": arrays}))
    header_size, body_size = protocol.FRAME_PREFIX.unpack_from(frame)
    assert body_size == sum(a.nbytes for a in arrays)
    start = protocol.FRAME_PREFIX.size
    message = protocol.decode_frame(frame[start:start + header_size], frame[start + header_size:])
    assert message["loss"] == 1.5
    for got, sent in zip(message["grads"], arrays, strict=True):
        assert got.dtype == sent.dtype and np.array_equal(got, sent)


def sent_through_the_ring(tmp_path, steps):
    """Each (loss, described gradients) through StepRing.send_updates as the worker sends them; for
    each, what it sent and the message the grader decodes from the frame's header and the slot."""
    exchange = tmp_path / "exchange"
    exchange.touch()
    ring = transport.StepRing(exchange, 2, SLOT_BYTES, 4096)
    read, write = os.pipe()
    results = []
    with open(write, "wb") as out, open(read, "rb") as pipe:
        for index, (loss, grads) in enumerate(steps):
            ring.map[:8] = transport.RING_COUNTER.pack(index)  # the grader took out every earlier step
            sent = ring.send_updates(loss, grads, SHAPES, 0.1, out, lambda: False)
            header_size, body_size = protocol.FRAME_PREFIX.unpack(pipe.read(protocol.FRAME_PREFIX.size))
            header = pipe.read(header_size)
            slot = 4096 + index % 2 * SLOT_BYTES
            body = bytearray(exchange.read_bytes()[slot:slot + body_size])
            assert header == protocol.encode_frame({"loss": loss, "updates": sent})[0][protocol.FRAME_PREFIX.size:]
            sent = [{**update, "array": update["array"].copy()} if "array" in update else update for update in sent]
            results.append((sent, protocol.decode_frame(header, body)))  # copies: the slot is rewritten two steps on
    return results


def test_the_worker_sends_sgds_updates_computed_in_the_slot_and_a_refusable_gradient_as_it_came(tmp_path):
    """StepRing.send_updates: lr · gradient, bit for bit as SGD's float32 update, laid in the ring's
    slot in the frame's order, under the header encode_frame gives (cached by layout: the loss
    changes, and so can the layout); a gradient the grader refuses (integers, a wrong shape, a
    number) goes unchanged, for it to say why."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
    scaled = [np.float32(0.1) * grad for grad in grads]
    odd = [grads[0], grads[1].astype(np.float64), np.ones(SHAPES[2], np.int32), None, grads[4], np.ones(11, np.float32)]
    odd_sent = [scaled[0], grads[1].astype(np.float64) * 0.1, odd[2], None, scaled[4], odd[5]]
    number = {"kind": "python number", "array": np.asarray(3.0)}
    steps = [(2.5, described(grads), scaled), (float("nan"), described(grads), scaled), (1.5, described(odd), odd_sent),
             (0.5, described(grads), scaled), (1.0, [*described(grads[:5]), number], [*scaled[:5], np.asarray(3.0)]),
             (0.25, described([grads[0].astype(np.float64), *grads[1:]]), [grads[0].astype(np.float64) * 0.1, *scaled[1:]]),
             # correct but unusual: a Fortran-order gradient (a backward's `(g.T @ x).T`), a read-only broadcast, big-endian
             (0.75, described([np.asfortranarray(grads[0]), np.broadcast_to(grads[1][:1], SHAPES[1]), grads[2].astype(">f4"),
                               *grads[3:]]),
              [scaled[0], np.float32(0.1) * np.broadcast_to(grads[1][:1], SHAPES[1]), scaled[2].astype(">f4"), *scaled[3:]])]
    results = sent_through_the_ring(tmp_path, [(loss, described_grads) for loss, described_grads, _ in steps])
    for (sent, message), (loss, _, expected) in zip(results, steps, strict=True):
        assert message["loss"] == loss or np.isnan(loss) and np.isnan(message["loss"])
        for got, update, want in zip(message["updates"], sent, expected, strict=True):
            if want is None:
                assert got == update == {"kind": "none"}
                continue
            assert got["array"].dtype == want.dtype and np.array_equal(got["array"], want)
            assert np.array_equal(update["array"], want)  # what the worker applies itself is what it sent


@pytest.mark.parametrize("make, accepted", [
    (lambda g: g, True), (lambda g: g.astype(np.float64), True), (lambda g: g.astype(">f4"), True),
    (lambda g: g.astype(np.int32), False), (lambda g: g.astype(np.complex64), False), (lambda g: g[:-1], False),
], ids=["float32", "float64", "big-endian", "integers", "complex", "wrong shape"])
def test_the_worker_scales_exactly_the_gradients_the_trusted_side_accepts(tmp_path, make, accepted):
    """One rule on both sides (transport.accepted_update): what the trusted side accepts the worker
    sends as lr · gradient (and applies to its own copy of the weights); what it refuses goes as it
    came, for the trusted side to say why."""
    grads = [np.full(shape, 3.0, np.float32) for shape in SHAPES]
    grads[0] = make(grads[0])
    (_, message), = sent_through_the_ring(tmp_path, [(1.0, described(grads))])
    if accepted:
        _, checked = checked_step(message, initial_parameters(0))
        assert checked[0].dtype == grads[0].dtype and np.array_equal(checked[0], grads[0] * 0.1)
    else:
        with pytest.raises(StepRefused, match=f"the gradient of the {PARAMETER_NAMES[0]}"):
            checked_step(message, initial_parameters(0))
        assert message["updates"][0]["array"].dtype == grads[0].dtype and np.array_equal(message["updates"][0]["array"], grads[0])


@pytest.mark.parametrize("header, body", [
    (b'{"a": {"__raw__": ["O", [2]]}}', bytes(16)),          # objects would need pickle
    (b'{"a": {"__raw__": ["<f4", [4]]}}', bytes(8)),          # more than the body holds
    (b'{"a": {"__raw__": ["<f4", [-1]]}}', bytes(8)),
    (b'{"a": {"__raw__": ["(2,)f4", [2]]}}', bytes(16)),
    (b'{"a": {"__raw__": ["no such dtype", [1]]}}', bytes(8)),
    (b'{"a": {"__raw__": ["<f4", [1]], "b": 1}}', bytes(4)),
    (b'{"a": {"__raw__": "x"}}', b""), (b"[1, 2]", b""), (b"{", b""),
])
def test_a_malformed_frame_is_refused(header, body):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_frame(header, body)


# -- the loop against a worker played here ---------------------------------------------------------

def play_worker(folder, exchange, reply_for_step):
    """serve(**fields) for train(): the worker's own end of the transfer (transport.worker_end)
    answering each step with reply_for_step(step, weights) — a message sent as the worker sends
    it (its arrays through the exchange file's ring), or raw bytes on the gradients FIFO."""
    def serve(data_dir, batch_size, **fields):
        with transport.worker_end(folder, {**fields, "exchange": exchange}) as end:
            step = 0
            for order, weights in end.epochs():
                for _ in range(0, len(order), batch_size):
                    reply = reply_for_step(step, weights)
                    if isinstance(reply, bytes):
                        end.out.write(reply)
                        end.out.flush()
                    elif not end.ring.put(protocol.encode_frame(reply), end.out, end.stopped):
                        return
                    step += 1
                    if step > 10:  # the loop under test stops at the first refused step
                        return
    return serve


def run(reply_for_step, train_examples=64 * 3, exchange=None):
    """train() against play_worker; the exchange file at `exchange` (default: a temporary one)."""
    with tempfile.TemporaryDirectory(dir=tempfile.gettempdir()) as folder, tempfile.NamedTemporaryFile() as temporary:
        exchange = exchange or temporary.name
        Path(exchange).touch()
        images = np.zeros((10, 28, 28), dtype=np.uint8)
        training = train(play_worker(Path(folder), exchange, reply_for_step), lambda: os.open(exchange, os.O_RDWR), Path(folder),
                         images, np.zeros(10, dtype=np.uint8), epochs=2, batch_size=64, lr=0.1, seed=0, train_examples=train_examples)
        assert os.listdir(folder) == []  # the FIFOs are gone
    return training


def zero_step(step, weights):
    return {"loss": 2.0, "updates": described([np.zeros(shape, np.float32) for shape in SHAPES])}


def test_the_loop_trains_on_what_the_worker_sends_and_measures_itself():
    training = run(zero_step)
    assert training.refused is None and training.losses == [2.0, 2.0] and len(training.accuracy_per_epoch) == 2
    assert training.accuracy_per_epoch[-1] == 100.0  # zero weights: class 0, the label of every image here
    assert training.seconds > 0


def test_the_worker_gets_the_trusted_weights_and_the_update_is_what_it_sent():
    seen = []

    def step(step, weights):  # SGD's update, lr · gradient, for a gradient of ones
        seen.append(weights.copy())
        return {"loss": 1.0, "updates": described([np.full(shape, np.float32(0.1)) for shape in SHAPES])}

    run(step)
    first, = [w for i, w in enumerate(seen) if i == 0]
    assert np.array_equal(first, np.concatenate([p.ravel() for p in initial_parameters(0)]))
    # epoch 2 starts from the weights after the 3 steps of epoch 1: each p - 3 · lr · 1, in float32
    expected = np.concatenate([p.ravel() for p in initial_parameters(0)])
    for _ in range(3):
        expected -= np.float32(0.1) * np.ones_like(expected)
    assert np.array_equal(seen[3], expected)


@pytest.mark.parametrize("bad, says", [
    (lambda g: g[:, :-1], "has shape (784, 255), expected (784, 256)"),
    (lambda g: g * np.nan, "the layer 1 weight became nan or inf"),
    (lambda g: np.where(g == 0, np.inf, g), "the layer 1 weight became nan or inf"),
    (lambda g: np.full(g.shape, 1e39), "the layer 1 weight became nan or inf"),  # finite, past float32's range
    (lambda g: g.astype(np.complex128), "dtype complex128"),
])
def test_a_bad_gradient_from_the_worker_stops_the_training_with_a_reason(bad, says):
    def step(step, weights):
        grads = [np.zeros(shape, np.float32) for shape in SHAPES]
        if step == 2:
            grads[0] = bad(grads[0])
        return {"loss": 1.0, "updates": described(grads)}

    training = run(step)
    assert says in training.refused and training.accuracy_per_epoch == []


def test_a_nan_is_told_at_the_end_of_its_epoch_by_the_parameter_it_reached():
    """Finiteness is read off the weights once an epoch (a nan or inf stays in the weight it
    reached), not off every update: the training stops in the epoch where it happened."""
    def step(step, weights):
        grads = [np.zeros(shape, np.float32) for shape in SHAPES]
        if step == 4:  # epoch 2's second step
            grads[3][5] = np.nan
        return {"loss": 1.0, "updates": described(grads)}

    training = run(step)
    assert training.refused.startswith("the layer 2 bias became nan or inf") and training.losses == [1.0]


def header_of(message, loss_text):
    """The header of a step's message (encode_frame's), its loss written as loss_text."""
    header = bytes(protocol.encode_frame(message)[0][protocol.FRAME_PREFIX.size:])
    start, end = len(b'{"loss": '), header.index(b', "updates": ')
    return header[:start] + loss_text + header[end:]


ZERO_BYTES = sum(4 * int(np.prod(shape)) for shape in SHAPES)  # a zero step's body: its float32 updates


def test_a_header_like_the_last_one_but_for_its_loss_is_read_as_a_full_decoding_reads_it():
    """Each correct step's header is the last one's but for the loss, and only the loss is read
    then; the values are each step's own, and another layout is decoded in full."""
    sent = []

    def updates(value, dtype=np.float32):
        return described([np.full(shape, value, dtype) for shape in SHAPES])

    def step(step, weights):
        sent.append(weights.copy())
        if step in (1, 2):  # the same layout, other values and losses
            return {"loss": [0.5, 2.5][step - 1], "updates": updates(0.01 * step)}
        if step == 3:  # another layout (float64): decoded in full, applied in float32 as before
            return {"loss": 4.0, "updates": updates(0.25, np.float64)}
        return {"loss": 1.0, "updates": updates(0.0)}

    training = run(step, train_examples=64 * 4)
    assert training.refused is None and training.losses == [2.0, 1.0]
    expected = np.concatenate([p.ravel() for p in initial_parameters(0)])
    for update in (np.float32(0.01), np.float32(0.02), np.float32(0.25)):
        expected -= update
    assert np.array_equal(sent[4], expected)


@pytest.mark.parametrize("loss_text", [b'"2.0"', b"true", b"[2.0]", b'{"a": 2}', b"null", b"0x10", b"2.0 2", b"",
                                       b"1\x00", b"\xef\xbb\xbf2"])
def test_a_loss_that_is_no_number_after_a_correct_step_is_refused(loss_text):
    header = header_of(zero_step(0, None), loss_text)
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(header), ZERO_BYTES) + header if step == 1
                   else zero_step(step, weights))
    assert "could not be read" in training.refused


def test_a_header_with_one_more_field_after_the_loss_is_read_as_a_full_decoding_reads_it():
    header = header_of(zero_step(0, None), b'3.0, "note": "hi"')
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(header), ZERO_BYTES) + header if step == 1
                   else zero_step(step, weights))
    assert training.refused is None and training.losses == [(2.0 + 3.0 + 2.0) / 3, 2.0]


def test_a_header_like_the_last_one_with_a_loss_nested_deep_is_refused_not_a_grader_error():
    header = header_of(zero_step(0, None), b"[" * 30000 + b"]" * 30000)
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(header), ZERO_BYTES) + header if step == 1
                   else zero_step(step, weights))
    assert "could not be read" in training.refused


def test_a_loss_no_float_holds_is_refused_not_a_grader_error():
    header = header_of(zero_step(0, None), b"1" + b"0" * 400)
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(header), ZERO_BYTES) + header if step == 1
                   else zero_step(step, weights))
    assert "could not be read" in training.refused


def test_a_header_with_a_duplicate_key_is_read_as_a_full_decoding_reads_it_and_so_is_the_next():
    """A first header a full decoding reads otherwise than its bytes suggest (its loss given twice)
    is not remembered: the next one, like it but for the first loss, is decoded in full too."""
    odd = header_of(zero_step(0, None), b"1.0")[:-1] + b', "loss": 7.0}'
    headers = {0: odd, 1: odd.replace(b"1.0", b"3.5", 1)}
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(headers[step]), ZERO_BYTES) + headers[step]
                   if step in headers else zero_step(step, weights))
    assert training.refused is None and training.losses[0] == pytest.approx((7.0 + 7.0 + 2.0) / 3)


def test_a_header_whose_updates_key_first_appears_inside_another_value_is_not_remembered():
    """`, "updates": ` first seen inside another value: the next header, the same from there on but
    for what comes before, is no JSON at all, and is refused as a full decoding refuses it."""
    canonical = header_of(zero_step(0, None), b"1.0")
    first = b'{"x": {"a": 1, "updates": 2}, "loss": 1.0' + canonical[len(b'{"loss": 1.0'):]
    second = b'{"loss": 5.0' + first[first.index(b', "updates": '):]
    headers = {0: first, 1: second}
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(headers[step]), ZERO_BYTES) + headers[step]
                   if step in headers else zero_step(step, weights))
    assert "could not be read" in training.refused


def test_a_header_like_the_last_one_with_another_body_size_is_refused():
    header = header_of(zero_step(0, None), b"1.0")
    training = run(lambda step, weights: protocol.FRAME_PREFIX.pack(len(header), ZERO_BYTES + 8) + header if step == 1
                   else zero_step(step, weights))
    assert "bytes of arrays" in training.refused


@pytest.mark.parametrize("frame", [
    b"garbage that is no frame at all, long enough",
    protocol.FRAME_PREFIX.pack(1 << 40, 0),
    protocol.FRAME_PREFIX.pack(5, 0) + b"{1: 2",
])
def test_a_forged_frame_stops_the_training_with_a_reason(frame):
    training = run(lambda step, weights: frame if step == 1 else zero_step(step, weights))
    assert "the worker" in training.refused


@pytest.mark.parametrize("channel", [transport.Channel, transport.SocketChannel])
def test_the_trusted_side_reads_each_step_through_the_protocols_one_reader(monkeypatch, channel):
    """n bytes are read by one loop (protocol.read_exactly), on either channel: each step's lengths
    and header from the worker's stream, its arrays from the exchange file's slot into the same memory."""
    calls, read_exactly = [], protocol.read_exactly

    def counted(source, size, into=None):
        calls.append((getattr(source, "__self__", None), size, into))
        return read_exactly(source, size, into)

    monkeypatch.setattr(protocol, "read_exactly", counted)
    monkeypatch.setattr(transport, "CHANNEL", channel)
    training = run(zero_step)
    assert training.refused is None and training.losses == [2.0, 2.0]
    header_reads = [size for owner, size, _ in calls if isinstance(owner, channel)]
    slot_reads = [(size, into) for owner, size, into in calls if into is not None]
    assert header_reads[::2] == [protocol.FRAME_PREFIX.size] * 6 and len(header_reads) == 12
    assert [size for size, _ in slot_reads] == [ZERO_BYTES] * 6 and len({id(into) for _, into in slot_reads}) == 1


def test_steps_stream_through_the_ring_many_times_over():
    """More steps than slots, each with its own values: the worker rewrites a slot only once this
    side took it out (a slot rewritten early would train on another step's gradients)."""
    seen = []

    def step(step, weights):
        seen.append(weights.copy())
        return {"loss": float(step), "updates": described([np.float32(0.1) * np.full(shape, step % 3, np.float32) for shape in SHAPES])}

    training = run(step, train_examples=64 * 5)  # 2 epochs of 5 steps each, through 4 slots
    expected = np.concatenate([p.ravel() for p in initial_parameters(0)])
    for step in range(5):
        expected -= np.float32(0.1) * np.full_like(expected, step % 3)
    assert training.refused is None and np.array_equal(seen[5], expected)
    assert training.losses == [2.0, 7.0]  # the mean of the steps' losses, epoch by epoch


def test_an_exchange_file_cut_short_stops_the_training_with_a_reason(tmp_path):
    exchange = tmp_path / "exchange"

    def step(step, weights):
        if step == 0:
            return zero_step(step, weights)
        os.truncate(exchange, 100)  # then announces a step whose arrays the file no longer holds
        return protocol.encode_frame(zero_step(step, weights))[0]

    training = run(step, exchange=exchange)
    assert "exchange file ended before the step's gradients" in training.refused


def test_a_step_larger_than_a_slot_is_refused_unread():
    huge = {"loss": 1.0, "updates": described([np.zeros(shape, np.float32) for shape in SHAPES])}
    huge["updates"][0] = {"kind": "ndarray", "array": np.zeros(SLOT_BYTES // 4 + 1, np.float32)}
    training = run(lambda step, weights: huge if step == 1 else zero_step(step, weights))
    assert "the worker sent a step of" in training.refused


def test_a_worker_that_stops_answering_ends_the_loop():
    done = threading.Event()

    def serve(**fields):  # the request ends (as when the worker died) without a single step served
        done.set()

    with tempfile.TemporaryDirectory() as folder:
        training = train(serve, lambda: None, Path(folder), np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), epochs=1,
                         batch_size=64, lr=0.1, seed=0, train_examples=640)
    assert done.is_set() and training.accuracy_per_epoch == [] and training.refused is None


def test_a_worker_whose_request_ends_too_soon_fails_the_check_with_a_reason(tmp_path, monkeypatch):
    """The worker's request ending with no error before the last epoch (student code that returned
    from it): the check says so, where it used to fail on an empty accuracy curve (IndexError)."""
    from types import SimpleNamespace

    from grader.checks import test_mnist
    from grader.checks.checking import CheckFailed

    monkeypatch.setattr(test_mnist, "ask", lambda *args, **fields: None)  # the request ends at once
    with pytest.raises(CheckFailed, match="training MLP3 stopped in epoch 1: the worker stopped computing its steps"):
        test_mnist.test_accuracy(SimpleNamespace(exchange=lambda: None), FAST_RUBRIC,
                                (tmp_path, np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8)), {})


# -- graded runs ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_reference_gets_full_mnist_credit(tmp_path):
    report = graded_once(reference_copy(tmp_path))
    (mnist,) = [test for test in report["tests"] if test["name"].startswith("MNIST")]
    assert mnist["score"] == mnist["max_score"] and report["mnist"]["training_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("edit, says", [
    ("grad_b = grad_b * np.nan", "the update of the layer 1 weight holds nan or inf"),
    ("grad_b = grad_b.astype(np.complex64)", "dtype complex64"),
])
def test_a_bad_matmul_gradient_fails_the_mnist_check_clearly(tmp_path, edit, says):
    old = "        return grad_a, grad_b\n"
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [(old, f"        {edit}\n" + old)]}))
    (mnist,) = [test for test in report["tests"] if test["name"].startswith("MNIST")]
    assert mnist["score"] == 0 and says in mnist["output"] and "the grader failed" not in mnist["output"]


def test_mlp3_ops_are_the_graded_names_mlp3_trains_through():
    """contract.MLP3_OPS, which the MNIST check's feedback names: the course's layers and the worker's loss."""
    import re

    from grader import GRADED
    from grader.sandbox.contract import MLP3_OPS

    source = (SOLUTIONS / "autodiff" / "nn.py").read_text() + (SOLUTIONS.parent / "grader" / "sandbox" / "worker.py").read_text()
    used = {name for name in GRADED if re.search(rf"\b{name}\.apply\(", source)}
    assert set(MLP3_OPS) == used


@pytest.mark.slow
def test_nan_from_a_wrong_softmax_backward_blames_a_gradient_and_names_softmax_not_stability(tmp_path):
    """The Jacobian's terms confused, dividing by 1 − Σy (0, or nearly): nan or inf from the first
    step. It said "check the stability of Softmax, Log and the losses", naming no op's checks."""
    old = "        return y * (grad_output - (grad_output * y).sum(axis=ctx.axis, keepdims=True))\n"
    wrong = old.replace("))\n", ")) / (1 - y.sum(axis=ctx.axis, keepdims=True))\n")
    report = grade_and_validate(reference_copy(tmp_path, {"activations": [(old, wrong)]}))
    (mnist,) = [test for test in report["tests"] if test["name"].startswith("MNIST")]
    assert mnist["score"] == 0 and "holds nan or inf" in mnist["output"] and "stability" not in mnist["output"]
    assert "a wrong backward of Matmul, ReLU, Softmax or CrossEntropyLoss, or an unstable one" in mnist["output"]
    assert mnist["output"].endswith("the checks of Softmax (which MLP3 trains through) failed too: start there")


NUMERICAL_BACKWARD = """\
        a, b = (np.array(x, dtype=np.float64) for x in ctx.saved_tensors)

        def central_differences(x):  # of this op's own forward: right, and far too slow for MLP3
            grad = np.zeros_like(x)
            for index in np.ndindex(x.shape):
                saved = x[index]
                x[index] = saved + 1e-3
                up = np.sum(np.matmul(a, b) * grad_output)
                x[index] = saved - 1e-3
                down = np.sum(np.matmul(a, b) * grad_output)
                x[index] = saved
                grad[index] = (up - down) / 2e-3
            return grad

        return central_differences(a), central_differences(b)
"""


@pytest.mark.slow
def test_a_numerical_backward_fails_matmuls_checks_and_runs_out_of_mnists_budget(tmp_path):
    """Central differences are some 10⁵ roundings from SPEC's exact gradients (the checks' tolerance is
    10³: checking.ROUNDINGS); they once passed Matmul's checks and only MNIST's budget stopped them."""
    from tests.support.attacks import MATMUL_BACKWARD

    report = grade_and_validate(reference_copy(tmp_path, {"ops": [(MATMUL_BACKWARD, MATMUL_BACKWARD + NUMERICAL_BACKWARD)]}))
    (mnist,) = [test for test in report["tests"] if test["name"].startswith("MNIST")]
    assert mnist["status"] == "timeout" and mnist["score"] == 0
    backward = next(test for test in report["tests"] if test["name"] == "Matmul · backward")
    assert backward["score"] < backward["max_score"] and "the gradient for A is wrong" in backward["output"]


@pytest.mark.slow
def test_float64_gradients_from_a_correct_matmul_train_as_before(tmp_path):
    """Correct but unusual: a Matmul.backward computing in float64. The course's SGD subtracts them
    from float32 weights; so does the trusted side, and the credit is full."""
    old = "        return grad_a, grad_b\n"
    edit = "        grad_b = grad_b.astype(np.float64)\n"
    report = grade_and_validate(reference_copy(tmp_path, {"ops": [(old, edit + old)]}))
    (mnist,) = [test for test in report["tests"] if test["name"].startswith("MNIST")]
    assert mnist["score"] == mnist["max_score"]


@pytest.mark.slow
def test_mnist_as_the_first_request_of_a_fresh_sandbox_trains(tmp_path):
    """The sandbox starts with its first request. When that is MNIST's (a run of that check alone),
    its FIFOs exist before the sandbox's first start makes the scratch folder readable to the
    worker's uid, which must leave their modes be (it made the gradients FIFO unwritable to it:
    "the worker closed the protocol channel")."""
    from grader.grade import run_checks
    from grader.sandbox.launch import scratch_parent
    from grader.sandbox.levels import strongest_level
    from grader.submission import load_submission, prepare_scratch

    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(reference_copy(tmp_path)), scratch)
        cases, problem, _ = run_checks(Path(scratch), FAST_RUBRIC, strongest_level(), tmp_path / "results.json", select="mnist")
    assert problem is None and [(case.group, case.status) for case in cases] == [("MNIST", "passed")], cases


def test_a_hidden_unit_on_relus_kink_may_be_on_or_off_in_an_honest_float32_run():
    """A unit whose pre-activation is within float32's rounding of 0 is on in float64 and may be off
    in the student's float32 (any summation order): the step is accepted either way, and a
    gradient off by more than that unit carries is still refused."""
    from grader.mnist.loop import StepCheck
    from grader.mnist.model import true_updates

    rng = np.random.default_rng(3)
    parameters = initial_parameters(0)
    images, labels = rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8), rng.integers(10, size=8)
    x = images.reshape(8, -1).astype(np.float32) / 255
    parameters[1][0] = -float((x[0] @ parameters[0])[0]) + 1e-7  # unit 0 of layer 1 sits on its kink for image 0
    updates, kink_norms = true_updates(parameters, images, labels, 0.1)
    assert kink_norms()[0] > 0 and kink_norms()[4:] == [0.0, 0.0]
    w1, b1 = (p.astype(np.float64) for p in parameters[:2])
    h1 = x.astype(np.float64) @ w1 + b1
    assert h1[0, 0] > 0
    parameters_off = [p.copy() for p in parameters]
    parameters_off[1][0] -= 2e-7  # the same unit just off: the update an honest run may send
    off, _ = true_updates(parameters_off, images, labels, 0.1)
    check = StepCheck(images, labels, 0.1, salt="")
    check.check("step 1", True, parameters, np.arange(8), [u.astype(np.float32) for u in off])
    with pytest.raises(StepRefused, match="layer 1 weight"):
        wrong = [u.astype(np.float32) for u in off]
        wrong[0] = wrong[0] + 0.01 * np.abs(updates[0]).max()
        StepCheck(images, labels, 0.1, salt="").check("step 1", True, parameters, np.arange(8), wrong)


@pytest.mark.slow
def test_the_reference_keeps_its_mnist_points_under_a_salt_whose_sample_meets_a_kink():
    """Under this salt the step sample verified a step where the reference's float32 update was 7e-3
    from float64's in the first layer: a unit on ReLU's kink (it lost the 20 points before)."""
    text, found = re.subn(r"(?m)^salt\s*=.*$", 'salt = "the test suite\'s salt"', Path(FAST_RUBRIC.path).read_text())
    assert found == 1
    rubric_file = Path(tempfile.mkdtemp(prefix="rubric-kink-")) / "rubric.toml"
    rubric_file.write_text(text)
    from grader.rubric import load_rubric

    report = grade_and_validate(SOLUTIONS, load_rubric(rubric_file))
    assert [t["score"] for t in report["tests"] if t["group"] == "MNIST"] == [20.0], report["tests"][-1]["output"]
