"""MLP3 on MNIST, trained here, on the trusted side, with gradients from the student's ops.

The weights, the batch order, the SGD update and the test accuracy live in this process: the
worker only computes, per step, MLP3's loss and gradients (the course's MLP3 built from the
student's ops) for the batches it is given, and sends SGD's updates, lr · gradient (computing
them where sending them would copy them anyway). Whatever it sends is checked before use, so
replacing the course's `train`, `predict`, optimizer or model inside the worker changes nothing,
and the test images never enter it. The loop is the course's (autodiff.train.train) step for
step: the same initial weights as MLP3(seed), the same permutation per epoch, the same float32
update; a correct submission trains exactly as it would on the student's machine.

Transfer: down, per epoch, through a FIFO made in the scratch folder for one training, its order
of the training set and a copy of this side's weights. Up, per step, the loss and updates as a
frame (protocol.encode_frame) whose lengths and header come through a second FIFO and whose raw
bytes the worker has put in a slot of the sandbox's exchange file (launch.EXCHANGE, opened by the
grader before any worker ran): a ring of RING_SLOTS slots, step k in slot k mod RING_SLOTS, the
file's first bytes counting the steps this side has taken out, so that the worker rewrites a slot
only once it has been read. (A megabyte a step through a pipe cost a millisecond a step, a third
of the step itself; a copy into a mapping of the file costs a fifth of that.) This side reads the slot
into memory of its own, and only then checks it: whatever the worker writes to the file, or
wherever, reaches nothing but its own steps. Within an epoch the worker applies the same update to
its own copy of the weights, so the steps stream without a round trip each; nothing it does to
that copy reaches this side, and what it computes from it is checked like any other reply. Where
there are no FIFOs (Windows: a student's own check, process level), the FIFOs' bytes go through
one TCP connection on 127.0.0.1 instead (SocketChannel).
"""
import hashlib
import io
import json
import math
import os
import re
import select
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .sandbox import protocol
from .sandbox.launch import EXCHANGE

LAYER_SIZES = (784, 256, 128, 10)  # MLP3's defaults
PARAMETER_NAMES = tuple(f"layer {layer} {kind}" for layer in (1, 2, 3) for kind in ("weight", "bias"))
EPOCH_HEADER = struct.Struct("<II")  # the epoch's size, the weights' bytes; (0, 0) ends the training
POLL_SECONDS = 0.05  # how soon the loop notices that the worker's request ended
MAX_HEADER_BYTES = 1 << 16  # a step's header: the loss and six arrays' dtypes and shapes
RING_SLOTS = 4  # steps in flight: the worker computes ahead while this side checks and applies the last ones
# A slot holds MLP3's gradients even as float128 (16 bytes a number), in whole pages after the counter's.
SLOT_BYTES = -(-16 * sum(n_in * n_out + n_out for n_in, n_out in zip(LAYER_SIZES, LAYER_SIZES[1:])) // 4096) * 4096
LOSS_KEY, UPDATES_KEY = b'{"loss": ', b', "updates": '  # how each step's header starts, and goes on after its loss
NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|-?Infinity")  # a JSON number, as json.dumps writes one
RING = {"exchange": EXCHANGE, "slots": RING_SLOTS, "slot_bytes": SLOT_BYTES, "first_slot": 4096}


def initial_parameters(seed):
    """As autodiff.nn.MLP3(seed=seed) draws them: He-initialised float32 weights, zero biases."""
    rng = np.random.default_rng(seed)
    parameters = []
    for n_in, n_out in zip(LAYER_SIZES, LAYER_SIZES[1:]):
        weight = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)).astype(np.float32)
        parameters += [weight, np.zeros(n_out, dtype=np.float32)]
    return parameters


def predict(parameters, images, batch_size=2000):
    """The most probable class of each image (uint8, (N, 28, 28)): MLP3's forward in plain numpy,
    float32 as the course computes it. Softmax keeps the order of the logits: their argmax."""
    classes = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].reshape(-1, LAYER_SIZES[0]).astype(np.float32) / 255
        for layer in range(0, len(parameters), 2):
            x = x @ parameters[layer] + parameters[layer + 1]
            if layer + 2 < len(parameters):
                x = np.maximum(x, 0)
        classes.append(x.argmax(axis=1))
    return np.concatenate(classes)


class StepRefused(Exception):
    """What the worker sent for a step cannot be used as MLP3's loss and gradients."""


def true_updates(parameters, images, labels, lr):
    """lr · MLP3's gradients on this batch, from the oracle's math (SPEC.md) in float64: the
    course's forward (Linear → ReLU → Linear → ReLU → Linear → Softmax, the images as the course
    prepares them) and CrossEntropyLoss with its clip at EPS, differentiated in closed form; and a
    function giving, for each parameter, how far an honest float32 run may be from it at ReLU's
    kink: a hidden unit whose pre-activation is within float32's rounding of 0 may be on or off
    there (its mask, any summation order), and the norm of what its gradient would carry is allowed
    on top (computed only when asked: it costs as much as the gradients)."""
    x = images.reshape(len(images), -1).astype(np.float32).astype(np.float64) / 255
    w1, b1, w2, b2, w3, b3 = (parameter.astype(np.float64) for parameter in parameters)
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2 + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3 + b3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    targets = np.eye(LAYER_SIZES[-1])[labels]
    grad_p = -targets / (len(x) * np.maximum(p, EPS))
    grad_z = p * (grad_p - (grad_p * p).sum(axis=1, keepdims=True))
    grad_h2 = grad_z @ w3.T * (h2 > 0)
    grad_h1 = grad_h2 @ w2.T * (h1 > 0)
    updates = [lr * g for g in (x.T @ grad_h1, grad_h1.sum(axis=0), a1.T @ grad_h2, grad_h2.sum(axis=0), a2.T @ grad_z, grad_z.sum(axis=0))]

    def kink_norms():
        on_kink1 = np.abs(h1) <= FLOAT32_DOT * len(w1) * (x @ np.abs(w1) + np.abs(b1))
        on_kink2 = np.abs(h2) <= FLOAT32_DOT * len(w2) * (a1 @ np.abs(w2) + np.abs(b2))
        flipped2 = np.abs(grad_z @ w3.T) * on_kink2  # what a unit of layer 2 on its kink may carry, or not
        flipped1 = np.abs(grad_h2 @ w2.T) * on_kink1 + (flipped2 @ np.abs(w2).T) * (h1 > 0)
        return [lr * float(np.linalg.norm(g)) for g in (x.T @ flipped1, flipped1.sum(axis=0), a1.T @ flipped2, flipped2.sum(axis=0))] + [0.0, 0.0]
    return updates, kink_norms


FLOAT32_DOT = 2.0 ** -24  # a float32 dot product of n terms is within n × this of the sum of their magnitudes


EPS = 1e-12  # SPEC.md's clip of log and of divisors
# Why MLP3's gradients hold nan or inf, the likelier cause first: a wrong backward (a wrong Softmax.backward
# gives nan as surely as an unstable one) before a missing maximum or clip; the report then names the ops
# whose own checks failed (report.mnist_lead).
NON_FINITE_CAUSE = ("a wrong backward of Matmul, ReLU, Softmax or CrossEntropyLoss, or an unstable one (no maximum "
                    "subtracted in Softmax, no clip at EPS in the loss)")
# A step's update of a parameter matches when ‖sent − lr · true gradient‖ ≤ RTOL ‖lr · true gradient‖ + ATOL,
# plus what the hidden units on ReLU's kink may carry (true_updates):
# float32 arithmetic in any order the student chose stays within 1e-5 of it (docs/grading.md, "MNIST").
RTOL, ATOL = 1e-3, 1e-8
SAMPLE_ONE_IN = 8  # besides the first step of each epoch and every outlier, one step in this many, drawn from the salt
OUTLIER = 4        # an update over this many times its parameter's typical verified update is verified
TYPICAL_WEIGHT = 0.1  # how much each verified step moves a parameter's typical update (an average over ~10 of them)


class StepCheck:
    """Verifies steps' updates against MLP3's true gradients, computed here from this side's own
    weights and batch: the first step of every epoch, a sample of the others drawn from the rubric's
    salt (secret to students, the same at every regrade), and every step that would move a parameter
    more than OUTLIER times its typical verified update, which bounds what an unverified step may
    move a weight. A mismatch refuses the step: the training stops there."""

    def __init__(self, images, labels, lr, salt):
        self.images, self.labels, self.lr = images, labels, lr
        self.sample = np.random.default_rng(int.from_bytes(hashlib.sha256(f"mnist-steps:{salt}".encode()).digest()[:8], "little"))
        self.typical = None  # per parameter: the typical norm of its true update, from the verified steps
        self.verified = 0
        self.largest_deviation = 0.0  # max over verified steps and parameters of ‖sent − true‖ / ‖true‖

    def check(self, where, first, parameters, batch, updates):
        sampled = self.sample.random() < 1 / SAMPLE_ONE_IN  # drawn at every step: the sample does not depend on what was sent
        norms = [0.0 if update is None else float(np.sqrt(np.vdot(update, update))) for update in updates]
        outlier = self.typical is not None and any(not norm <= OUTLIER * typical for norm, typical in zip(norms, self.typical))
        if not (first or sampled or outlier or self.typical is None):
            return
        expected, kink_norms = true_updates(parameters, self.images[batch], self.labels[batch], self.lr)
        true_norms = [float(np.linalg.norm(e)) for e in expected]
        on_kinks = None
        for index, (name, update, wanted, size) in enumerate(zip(PARAMETER_NAMES, updates, expected, true_norms)):
            difference = float(np.linalg.norm(wanted if update is None else update.astype(np.float64) - wanted))
            if not math.isfinite(difference):
                raise StepRefused(f"{where}: the update of the {name} holds nan or inf, where MLP3's true gradient on "
                                  f"this batch is finite: {NON_FINITE_CAUSE}")
            if not difference <= RTOL * size + ATOL:
                on_kinks = on_kinks or kink_norms()  # rare: only then worth their cost
            if not difference <= RTOL * size + ATOL + (on_kinks[index] if on_kinks else 0.0):
                raise StepRefused(f"{where}: the update of the {name} is not lr × MLP3's gradient on this batch "
                                  f"(‖sent − expected‖ = {difference:.3g}, ‖expected‖ = {size:.3g}); the forward and "
                                  f"backward checks show which op is wrong")
            self.largest_deviation = max(self.largest_deviation, difference / size if size else 0.0)
        self.verified += 1
        self.typical = true_norms if self.typical is None else [
            (1 - TYPICAL_WEIGHT) * typical + TYPICAL_WEIGHT * size for typical, size in zip(self.typical, true_norms)]


def checked_step(reply, parameters):
    """The loss and SGD's updates (lr · gradient) of a step's reply: each a real floating-point array
    of its parameter's shape, or None (no gradient reached it: SGD leaves it as it is). Whether they
    are finite is told by the weights at the epoch's end (non_finite): a nan or inf never leaves
    the weight it reached."""
    loss = reply.get("loss")
    updates = reply.get("updates")
    if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not isinstance(updates, list) or len(updates) != len(parameters) \
            or isinstance(loss, int) and abs(loss) > sys.float_info.max:  # an integer no float holds
        raise StepRefused("the worker's answer for this step could not be read as MLP3's loss and gradients")
    checked = []
    for name, parameter, described in zip(PARAMETER_NAMES, parameters, updates):
        kind = described.get("kind") if isinstance(described, dict) else None
        update = described.get("array") if kind == "ndarray" else None
        if kind == "none":
            checked.append(None)
            continue
        if not isinstance(update, np.ndarray):
            shown = (described.get("type") or kind) if isinstance(described, dict) else "something unreadable"
            raise StepRefused(f"the gradient of the {name} is {shown}, not a numpy array")
        if update.dtype.kind != "f":
            raise StepRefused(f"the gradient of the {name} has dtype {update.dtype}; a real floating-point array is expected")
        if update.shape != parameter.shape:
            raise StepRefused(f"the gradient of the {name} has shape {update.shape}, expected {parameter.shape} (the parameter's): "
                              f"a gradient missing its reduction over the batch?")
        checked.append(update)
    return float(loss), checked


def non_finite(parameters):
    """The name of the first parameter holding nan or inf, else None (‖p‖² first: one BLAS call)."""
    for name, parameter in zip(PARAMETER_NAMES, parameters):
        if not np.isfinite(np.vdot(parameter, parameter)) and not np.isfinite(parameter).all():
            return name
    return None


@np.errstate(all="ignore")  # an update holding nan or inf, or overflowing: non_finite tells it after the epoch
def sgd_step(parameters, updates):
    """Each parameter less its update, in place, in its dtype (float32), as the course's SGD.step."""
    for parameter, update in zip(parameters, updates):
        if update is not None:
            parameter -= update


@dataclass
class Training:
    """What the trusted loop measured: test accuracy (%) and mean loss per epoch, its own time."""
    accuracy_per_epoch: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    seconds: float = 0.0
    refused: str = None   # why a step's gradients were refused; training stopped there


class Channel:
    """The trusted side's ends of the step transfer: two FIFOs made fresh in `folder` for one
    training, and the sandbox's exchange file, whose descriptor `exchange()` gives once the
    worker's first step arrived (the sandbox serving the request is then the one running)."""

    def __init__(self, folder, exchange):
        self._init_ring(exchange)
        token = os.urandom(8).hex()
        self.names = {"steps": f"steps-{token}", "gradients": f"gradients-{token}"}
        self.paths = {key: folder / name for key, name in self.names.items()}
        self.finished = threading.Event()  # set when the worker's request ended, however
        for key, mode in (("steps", 0o644), ("gradients", 0o622)):  # the worker reads steps, writes gradients
            os.mkfifo(self.paths[key])
            os.chmod(self.paths[key], mode)
        # Opened read-write: never blocks waiting for the worker, never sees an end of file.
        self.steps = os.open(self.paths["steps"], os.O_RDWR | os.O_NONBLOCK)
        self.gradients = os.open(self.paths["gradients"], os.O_RDWR | os.O_NONBLOCK)
        self.reader = io.FileIO(self.gradients, "r", closefd=False)

    def _init_ring(self, exchange):
        self.exchange, self.ring, self.taken = exchange, None, 0
        self.body = bytearray(SLOT_BYTES)  # each step's arrays, copied into the same memory: used before the next step
        self.last = None  # (the last frame's header after its loss, its body's size), the message decoded from it

    def send_epoch(self, order, parameters):
        """An epoch: its order of the training set and the current weights (a copy: nothing the
        worker does to it comes back)."""
        weights = [memoryview(parameter).cast("B") for parameter in parameters]
        for data in (EPOCH_HEADER.pack(len(order), sum(map(len, weights))), order.astype("<i4").data.cast("B"), *weights):
            self._write(data)

    def stop(self):
        """End the training; what the worker still sends is read and dropped until its request ends."""
        self._write(EPOCH_HEADER.pack(0, 0))
        while self._read(MAX_HEADER_BYTES, partial=True) is not None:
            pass

    def _write(self, data):
        view = memoryview(data)
        while view and not self.finished.is_set():
            if select.select([], [self.steps], [], POLL_SECONDS)[1]:
                try:
                    view = view[os.write(self.steps, view):]
                except BlockingIOError:
                    pass

    def receive(self):
        """The next step's message; None if the worker's request ended first."""
        prefix = self._read(protocol.FRAME_PREFIX.size)
        if prefix is None:
            return None
        header_size, body_size = protocol.FRAME_PREFIX.unpack(prefix)
        if header_size > MAX_HEADER_BYTES or body_size > SLOT_BYTES:
            raise StepRefused(f"the worker sent a step of {header_size + body_size} bytes; MLP3's gradients take about 1 MB")
        header = self._read(header_size)
        body = None if header is None else self._take(body_size)
        if body is None:
            return None
        return self._decode(bytes(header), body)

    def _decode(self, header, body):
        """decode_frame's message. Every correct step's header is the last one's but for its loss,
        a number: then only that number is read, and the arrays are the last message's, views of
        the same memory (self.body) holding this step's bytes. Remembered so: a header that starts
        with its loss, a plain number, then the updates, and reads exactly as encode_frame writes
        its message (no key given twice); anything else is decoded in full."""
        end = header.find(UPDATES_KEY)
        plain = header.startswith(LOSS_KEY) and NUMBER.fullmatch(header, len(LOSS_KEY), end) is not None
        if plain and self.last is not None and self.last[0] == (header[end:], len(body)):
            return {**self.last[1], "loss": json.loads(header[len(LOSS_KEY):end])}
        try:
            message = protocol.decode_frame(header, body)
        except protocol.ProtocolError as error:
            raise StepRefused(f"the worker's answer for this step could not be read: {error}") from None
        remembered = plain and protocol.encode_frame(message)[0][protocol.FRAME_PREFIX.size:] == header  # arrays: views, no copy
        self.last = ((header[end:], len(body)), message) if remembered else None
        return message

    def _take(self, size):
        """The arrays of the step just announced, copied from their slot into this side's memory;
        the slot is then the worker's to rewrite. None if there is no sandbox's file to read."""
        if self.ring is None:
            descriptor = self.exchange()
            if descriptor is None:
                return None
            self.ring = io.FileIO(descriptor, "r+")
        view, got = memoryview(self.body)[:size], 0
        self.ring.seek(RING["first_slot"] + self.taken % RING_SLOTS * SLOT_BYTES)
        while got < size:
            count = self.ring.readinto(view[got:])
            if not count:
                raise StepRefused("the worker's exchange file ended before the step's gradients (was it cut short?)")
            got += count
        self.taken += 1
        self.ring.seek(0)
        self.ring.write(protocol.RING_COUNTER.pack(self.taken))
        return view

    def _read(self, size, partial=False):
        """size bytes (with partial, what there is, at least one, up to size) from the gradients
        FIFO, or None once the request ended."""
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size and not (partial and got):
            if not select.select([self.gradients], [], [], POLL_SECONDS)[0]:
                if self.finished.is_set():
                    return None
                continue
            got += self.reader.readinto(view[got:]) or 0
        return buffer

    def close(self):
        self.reader.close()
        for descriptor in (self.steps, self.gradients):
            os.close(descriptor)
        for path in self.paths.values():
            path.unlink(missing_ok=True)
        if self.ring is not None:
            self.ring.close()


class SocketChannel(Channel):
    """The same transfer where there are no FIFOs (Windows): one TCP connection, which the worker
    opens to a port this side listens on, on 127.0.0.1, for one training. No token: only a
    student's own check takes this path, whose worker is the student's own code anyway, and
    whatever comes through is checked as any step is."""

    def __init__(self, folder, exchange):
        self._init_ring(exchange)
        self.finished = threading.Event()  # set when the worker's request ended, however
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.names = {"port": self.listener.getsockname()[1]}
        self.connection = None

    def _connected(self):
        """Accept the worker's connection (once); False if its request ended before it connected."""
        while self.connection is None:
            if self.finished.is_set():
                return False
            if select.select([self.listener], [], [], POLL_SECONDS)[0]:
                self.connection = self.listener.accept()[0]
                self.connection.setblocking(False)
        return True

    def _write(self, data):
        view = memoryview(data).cast("B")
        while view and self._connected() and not self.finished.is_set():
            if select.select([], [self.connection], [], POLL_SECONDS)[1]:
                try:
                    view = view[self.connection.send(view):]
                except BlockingIOError:
                    pass
                except OSError:  # the worker closed the connection: its request is ending
                    return

    def _read(self, size, partial=False):
        """As Channel._read; None also once the worker closed the connection."""
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size and not (partial and got):
            if not self._connected():
                return None
            if not select.select([self.connection], [], [], POLL_SECONDS)[0]:
                if self.finished.is_set():
                    return None
                continue
            try:
                count = self.connection.recv_into(view[got:])
            except BlockingIOError:
                continue
            except OSError:  # reset: the worker is gone
                return None
            if not count:
                return None
            got += count
        return buffer

    def close(self):
        for end in (self.connection, self.listener, self.ring):
            if end is not None:
                end.close()


# The step transfer of this machine: FIFOs where there are (POSIX), a local connection elsewhere.
CHANNEL = Channel if hasattr(os, "mkfifo") else SocketChannel


def train(serve, exchange, folder, test_images, test_labels, *, epochs, batch_size, lr, seed, train_examples, check=None):
    """Train MLP3 with minibatch SGD on gradients from the worker, as autodiff.train.train does;
    returns a Training. check: a StepCheck that verifies steps before they are applied.

    serve(**fields) is the request that has the worker serve the steps (worker.mnist_gradients):
    it returns when the loop ends it, and raises (the worker's error, its time budget) otherwise.
    The loop runs beside it, in a thread of this process. exchange() gives a descriptor of the
    serving sandbox's exchange file (WorkerClient.exchange), this loop's own to close."""
    parameters = initial_parameters(seed)
    training = Training()
    channel = CHANNEL(folder, exchange)
    failure = []

    def accuracy(weights):
        return round(100 * float(np.mean(predict(weights, test_images) == test_labels)), 2)

    def loop(evaluator):
        evaluations = []  # each epoch's accuracy, computed in a thread of its own while the worker goes on
        try:
            started = time.perf_counter()
            rng = np.random.default_rng(seed)
            for epoch in range(epochs):
                order = rng.permutation(train_examples)
                channel.send_epoch(order, parameters)
                total_loss = 0.0
                for start in range(0, train_examples, batch_size):
                    reply = channel.receive()
                    if reply is None:  # the worker's request ended: the epochs it went through
                        training.accuracy_per_epoch = [evaluation.result() for evaluation in evaluations]
                        return
                    loss, updates = checked_step(reply, parameters)
                    if check is not None:
                        check.check(f"step {start // batch_size + 1} of epoch {epoch + 1}", start == 0, parameters,
                                    order[start:start + batch_size], updates)
                    total_loss += loss * min(batch_size, train_examples - start)
                    sgd_step(parameters, updates)
                if name := non_finite(parameters):
                    raise StepRefused(f"the {name} became nan or inf (a gradient held nan or inf): {NON_FINITE_CAUSE}")
                training.losses.append(total_loss / train_examples)
                evaluations.append(evaluator.submit(accuracy, [parameter.copy() for parameter in parameters]))
            training.accuracy_per_epoch = [evaluation.result() for evaluation in evaluations]
            training.seconds = time.perf_counter() - started
        except StepRefused as refused:
            training.refused = str(refused)
        except BaseException as error:  # a grader bug: raised in the caller, not lost in the thread
            failure.append(error)
        finally:
            channel.stop()

    with ThreadPoolExecutor(1, thread_name_prefix="mnist-accuracy") as evaluator:
        thread = threading.Thread(target=loop, args=(evaluator,), name="mnist-sgd", daemon=True)
        thread.start()
        try:
            serve(data_dir=folder.name, seed=seed, train_examples=train_examples, batch_size=batch_size, lr=lr, **RING,
                  **channel.names)
        finally:
            channel.finished.set()
            thread.join()
            channel.close()
    if failure:
        raise failure[0]
    return training
