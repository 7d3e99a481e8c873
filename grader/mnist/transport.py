"""MNIST's step transfer, both its ends, and the one rule of what SGD applies.

Down, per epoch, through a FIFO the trusted side makes in the scratch folder for one training
(`steps`): the epoch's order of the training set and a copy of the trusted weights. Up, per step,
the loss and SGD's updates, lr · gradient, as a frame (protocol.encode_frame) whose lengths and
header come through a second FIFO (`gradients`) and whose raw bytes the worker has put in a slot
of the sandbox's exchange file (EXCHANGE, opened by the grader before any worker ran): a ring of
RING_SLOTS slots, step k in slot k mod RING_SLOTS, the file's first bytes counting the steps the
trusted side has taken out, so that the worker rewrites a slot only once it has been read. (The
arrays go through a file, not the pipe: a pipe's copies in and out would be a large part of a short
step, a copy into a mapping of the file is a small one.) The trusted side reads the slot into
memory of its own, and only then checks it: whatever the worker writes to the file, or wherever,
reaches nothing but its own steps. Where there are no FIFOs (Windows: a student's own check,
process level), the FIFOs' bytes go through one TCP connection on 127.0.0.1 instead
(SocketChannel, step_streams).

The worker's end: worker_end, a WorkerEnd (the streams, and the ring: StepRing). The trusted
side's: Channel, or SocketChannel (CHANNEL: this machine's). Between them, accepted_update: what
SGD subtracts from a parameter, the one rule by which the trusted side checks every step and the
worker updates its own copy of the weights within an epoch, so that the two cannot drift apart.

Imported by both sides: as grader.mnist.transport on the trusted side, and as `transport` beside
the worker, which gets a copy (grader/sandbox/launch.py, SANDBOX_FILES): standard library and
numpy only, and the protocol, which is beside it there too.
"""
import contextlib
import io
import json
import mmap
import os
import re
import select
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

if __package__:  # grader.mnist.transport, on the trusted side
    from ..sandbox import protocol
else:  # transport.py, beside the worker's protocol.py in the sandbox
    import protocol  # type: ignore[no-redef]  # the same module, imported flat

# MNIST's gradients come through this file of the scratch folder: the one file there the worker may
# write, bound writable into the bubblewrap levels' read-only view; emptied by the supervisor after
# each group, so that it carries nothing from one group's worker to the next.
EXCHANGE = ".exchange"
RING_COUNTER = struct.Struct("<Q")  # the exchange file's first bytes: how many steps the trusted side has taken out
RING_SLOTS = 4  # steps in flight: the worker computes ahead while the trusted side checks and applies the last ones
FIRST_SLOT = 4096  # the slots start after the counter's page
EPOCH_HEADER = struct.Struct("<II")  # the epoch's size, the weights' bytes; (0, 0) ends the training
POLL_SECONDS = 0.05  # how soon the trusted side notices that the worker's request ended
RING_WAIT = 0.001  # seconds between the worker's looks at the counter while every slot is unread
MAX_HEADER_BYTES = 1 << 16  # a step's header: the loss and six arrays' dtypes and shapes
LOSS_KEY, UPDATES_KEY = b'{"loss": ', b', "updates": '  # how each step's header starts, and goes on after its loss
NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|-?Infinity")  # a JSON number, as json.dumps writes one


def slot_bytes(numbers: int) -> int:
    """A slot's size for a model of `numbers` parameters: their gradients even as float128 (16
    bytes a number), in whole pages."""
    return -(-16 * numbers // 4096) * 4096


class StepRefused(Exception):
    """What the worker sent for a step cannot be used as MLP3's loss and gradients."""


# -- what SGD applies ---------------------------------------------------------------------------------

def accepted_update(described: Any, shape: tuple[int, ...], name: str = "parameter") -> np.ndarray | None:  # described: as the worker sent it
    """The array SGD subtracts from a parameter of this shape, of an update (or gradient) as the
    worker describes it (worker.describe): None when no gradient reached the parameter (kind
    "none": SGD leaves it as it is, as the course's SGD does); StepRefused, saying why, unless it
    is a real floating-point numpy array of the parameter's shape. The trusted side checks each
    step by it (loop.checked_step); the worker applies the same updates to its own weights."""
    kind = described.get("kind") if isinstance(described, dict) else None
    if kind == "none":
        return None
    update = described.get("array") if kind == "ndarray" else None
    if not isinstance(update, np.ndarray):
        shown = (described.get("type") or kind) if isinstance(described, dict) else "something unreadable"
        raise StepRefused(f"the gradient of the {name} is {shown}, not a numpy array")
    if update.dtype.kind != "f":
        raise StepRefused(f"the gradient of the {name} has dtype {update.dtype}; a real floating-point array is expected")
    if update.shape != shape:
        raise StepRefused(f"the gradient of the {name} has shape {update.shape}, expected {shape} (the parameter's): "
                          f"a gradient missing its reduction over the batch?")
    return update


def sgd_updates(grads: list[dict[str, Any]], shapes: Sequence[tuple[int, ...]], lr: float, slot: np.ndarray) -> list[dict[str, Any]]:
    """SGD's update of each parameter, lr · its gradient (described), computed straight into the
    ring's slot (StepRing.send_updates), where sending it would have copied it anyway: one pass
    over a megabyte a step, not three. A gradient the trusted side will refuse goes as it came,
    for it to say why; one past the slot's end stays where it is (the frame's lengths then tell
    the trusted side it is too large)."""
    offset, updates = 0, []
    for described, shape in zip(grads, shapes, strict=False):  # a list of the wrong length: the trusted side says so
        array = described.get("array")
        if array is None or offset + array.nbytes > len(slot):
            updates.append(described)
            continue
        place = slot[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
        offset += array.nbytes
        try:
            accepted_update(described, shape)
        except StepRefused:
            np.copyto(place, array)
        else:
            np.multiply(array, lr, out=place)
        updates.append({**described, "array": place})
    return updates


# -- the worker's end ---------------------------------------------------------------------------------

class StepRing:
    """The worker's end of the exchange file (Channel reads it): a frame's arrays go in the next
    slot of the ring, its lengths and header to the pipe; a slot is rewritten only once the
    trusted side has counted it taken out."""

    def __init__(self, path: str | os.PathLike[str], slots: int, slot_bytes: int, first_slot: int) -> None:
        self.slots, self.slot_bytes, self.first_slot, self.written = slots, slot_bytes, first_slot, 0
        size = first_slot + slots * slot_bytes
        with open(path, "r+b") as file:
            file.truncate(size)
            self.map = mmap.mmap(file.fileno(), size)
        self.map[:RING_COUNTER.size] = RING_COUNTER.pack(0)
        self.bytes = np.frombuffer(self.map, np.uint8)
        # send_updates: (the header after the loss, the body's bytes) of each layout of updates
        self.layouts: dict[tuple[Any, ...], tuple[bytes, int]] = {}

    def next_slot(self, stopped: Callable[[], bool]) -> np.ndarray | None:
        """The next slot's memory (writable bytes), once the trusted side has taken out what it last
        held; None if stopped() said so while every slot was still unread."""
        while self.written - RING_COUNTER.unpack_from(self.map)[0] >= self.slots:
            if stopped():
                return None
        offset = self.first_slot + self.written % self.slots * self.slot_bytes
        return self.bytes[offset:offset + self.slot_bytes]

    def put(self, parts: list[Any], out: BinaryIO, stopped: Callable[[], bool]) -> bool:
        """Send a frame (encode_frame's buffers) through the ring and out (its header); False if
        stopped() said so while every slot was still unread. Each array is copied to its place in
        the slot unless it is there already; a body larger than a slot stays out of it: its
        lengths alone tell the trusted side it is too large."""
        head, *body = parts
        slot = self.next_slot(stopped)
        if slot is None:
            return False
        if sum(part.nbytes for part in body) <= self.slot_bytes:
            offset = 0
            for part in body:
                place = slot[offset:offset + part.nbytes]
                if place.ctypes.data != part.ctypes.data:
                    place[:] = part
                offset += part.nbytes
        self._send(head, out)
        return True

    def send_updates(self, loss: float, grads: list[dict[str, Any]], shapes: Sequence[tuple[int, ...]], lr: float, out: BinaryIO,
                     stopped: Callable[[], bool]) -> list[dict[str, Any]] | None:
        """A step: the loss and SGD's updates, computed straight into the next slot (sgd_updates),
        as the frame {"loss", "updates"}; the updates sent, or None if stopped() said so while
        every slot was still unread. Every correct step has the same header but for the loss: its
        layout's part is encoded once, not a few thousand times."""
        slot = self.next_slot(stopped)
        if slot is None:
            return None
        updates = sgd_updates(grads, shapes, lr, slot)
        message = {"loss": loss, "updates": updates}
        arrays = [update["array"] for update in updates if update["kind"] == "ndarray"]
        if not (isinstance(loss, float) and all(update["kind"] in ("ndarray", "none") for update in updates)
                and sum(array.nbytes for array in arrays) <= self.slot_bytes):
            self.put(protocol.encode_frame(message), out, stopped)  # anything unusual: encoded in full, copied if not in place
            return updates
        layout = tuple((update["array"].dtype.str, update["array"].shape) if update["kind"] == "ndarray" else None
                       for update in updates)
        if layout not in self.layouts:
            header = bytes(protocol.encode_frame(message)[0][protocol.FRAME_PREFIX.size:])
            self.layouts[layout] = header[header.index(UPDATES_KEY):], sum(array.nbytes for array in arrays)
        tail, body_bytes = self.layouts[layout]
        header = LOSS_KEY + json.dumps(loss, allow_nan=True).encode() + tail
        self._send(protocol.FRAME_PREFIX.pack(len(header), body_bytes) + header, out)
        return updates

    def _send(self, head, out):
        out.write(head)
        out.flush()
        self.written += 1


class WorkerEnd:
    """The worker's end of one training (worker.mnist_gradients; worker_end opens it): epochs()
    reads each epoch's order and weights, send_updates() sends a step, stopped() tells whether
    the trusted side ended the training (anything arriving on `steps` within an epoch)."""

    def __init__(self, ring: StepRing, steps: io.RawIOBase, out: BinaryIO) -> None:
        self.ring, self.steps, self.out = ring, steps, out

    def epochs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each epoch's order of the training set (int32 indices) and the trusted side's weights
        (float32, parameter after parameter, in writable memory: the model's own), after their
        sizes (EPOCH_HEADER), until the trusted side sends zeros for them: the training's end."""
        while True:
            count, weight_bytes = EPOCH_HEADER.unpack(read_exactly(self.steps, EPOCH_HEADER.size))
            if not count:
                return
            order = np.frombuffer(read_exactly(self.steps, 4 * count), dtype="<i4")
            yield order, np.frombuffer(read_exactly(self.steps, weight_bytes), dtype="<f4")

    def stopped(self, wait: float = RING_WAIT) -> bool:
        return bool(select.select([self.steps], [], [], wait)[0])

    def send_updates(self, loss: float, grads: list[dict[str, Any]], shapes: Sequence[tuple[int, ...]],
                     lr: float) -> list[dict[str, Any]] | None:
        """The step's loss and SGD's updates (StepRing.send_updates); None once the training ended."""
        return self.ring.send_updates(loss, grads, shapes, lr, self.out, self.stopped)


@contextlib.contextmanager
def worker_end(data: Path, request: dict[str, Any]) -> Iterator[WorkerEnd]:
    """The worker's end of the training its request (Channel.fields) asks for, in the data folder."""
    ring = StepRing(request["exchange"], request["slots"], request["slot_bytes"], request["first_slot"])
    with step_streams(data, request) as (steps, out):
        yield WorkerEnd(ring, steps, out)


@contextlib.contextmanager
def step_streams(data: Path, request: dict[str, Any]) -> Iterator[tuple[io.RawIOBase, BinaryIO]]:
    """The steps to read and the gradients to write: the trusted side's two FIFOs in the data
    folder, or (no FIFOs: Windows) the two directions of a connection to the port it listens on."""
    if "port" not in request:
        with open(data / request["steps"], "rb", buffering=0) as steps, open(data / request["gradients"], "wb") as out:
            yield steps, out
        return
    import socket  # here only: the sandbox on POSIX never needs it

    with socket.create_connection(("127.0.0.1", request["port"])) as connection, \
            connection.makefile("rb", buffering=0) as steps, connection.makefile("wb") as out:
        yield steps, out


def read_exactly(stream: io.RawIOBase, size: int) -> bytearray:
    """size bytes from the steps' stream, in a writable buffer (the arrays made from it are the model's own)."""
    data = protocol.read_exactly(stream.readinto, size)
    if data is None:
        raise EOFError("the trusted side closed the MNIST steps")
    return data


# -- the trusted side's end ---------------------------------------------------------------------------

class Channel:
    """The trusted side's ends of the step transfer: two FIFOs made fresh in `folder` for one
    training, and the sandbox's exchange file, whose descriptor `exchange()` gives once the
    worker's first step arrived (the sandbox serving the request is then the one running); its
    slots of `slot_bytes` each. `fields` is what the worker's request needs to open its end."""
    fields: dict[str, Any]

    def __init__(self, folder: Path, exchange: Callable[[], int | None], slot_bytes: int) -> None:
        self._init_ring(exchange, slot_bytes)
        token = os.urandom(8).hex()
        names = {"steps": f"steps-{token}", "gradients": f"gradients-{token}"}
        self.paths = {key: folder / name for key, name in names.items()}
        self.fields = {**self.fields, **names}
        self.finished = threading.Event()  # set when the worker's request ended, however
        for key, mode in (("steps", 0o644), ("gradients", 0o622)):  # the worker reads steps, writes gradients
            os.mkfifo(self.paths[key])
            os.chmod(self.paths[key], mode)
        # Opened read-write: never blocks waiting for the worker, never sees an end of file.
        self.steps = os.open(self.paths["steps"], os.O_RDWR | os.O_NONBLOCK)
        self.gradients = os.open(self.paths["gradients"], os.O_RDWR | os.O_NONBLOCK)
        self.reader = io.FileIO(self.gradients, "r", closefd=False)

    def _init_ring(self, exchange: Callable[[], int | None], slot_bytes: int) -> None:
        self.ring: io.FileIO | None
        self.exchange, self.ring, self.taken, self.slot_bytes = exchange, None, 0, slot_bytes
        self.fields = {"exchange": EXCHANGE, "slots": RING_SLOTS, "slot_bytes": slot_bytes, "first_slot": FIRST_SLOT}
        self.body = bytearray(slot_bytes)  # each step's arrays, copied into the same memory: used before the next step
        # (the last frame's header after its loss, its body's size), the message decoded from it
        self.last: tuple[tuple[bytes, int], dict[str, Any]] | None = None

    def send_epoch(self, order: np.ndarray, parameters: list[np.ndarray]) -> None:
        """An epoch: its order of the training set and the current weights (a copy: nothing the
        worker does to it comes back)."""
        weights = [memoryview(parameter).cast("B") for parameter in parameters]  # type: ignore[arg-type]  # numpy declares the buffer protocol from Python 3.12
        for data in (EPOCH_HEADER.pack(len(order), sum(map(len, weights))), order.astype("<i4").data.cast("B"), *weights):
            self._write(data)

    def stop(self) -> None:
        """End the training; what the worker still sends is read and dropped until its request ends."""
        self._write(EPOCH_HEADER.pack(0, 0))
        dropped = memoryview(bytearray(MAX_HEADER_BYTES))
        while self._read_into(dropped):
            pass

    def _write(self, data):
        view = memoryview(data)
        while view and not self.finished.is_set():
            if select.select([], [self.steps], [], POLL_SECONDS)[1]:
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(self.steps, view):]

    def receive(self) -> dict[str, Any] | None:
        """The next step's message; None if the worker's request ended first."""
        prefix = self._read(protocol.FRAME_PREFIX.size)
        if prefix is None:
            return None
        header_size, body_size = protocol.FRAME_PREFIX.unpack(prefix)
        if header_size > MAX_HEADER_BYTES or body_size > self.slot_bytes:
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
        self.ring.seek(FIRST_SLOT + self.taken % RING_SLOTS * self.slot_bytes)
        view = protocol.read_exactly(self.ring.readinto, size, into=self.body)
        if view is None:
            raise StepRefused("the worker's exchange file ended before the step's gradients (was it cut short?)")
        self.taken += 1
        self.ring.seek(0)
        self.ring.write(RING_COUNTER.pack(self.taken))
        return view

    def _read(self, size):
        """size bytes from the worker's stream of step headers, or None once its request ended."""
        return protocol.read_exactly(self._read_into, size)

    def _read_into(self, view):
        """What the gradients FIFO holds, read into view once it holds anything; 0 once the
        request ended (the FIFO, open for writing here too, never ends of itself)."""
        while True:
            if select.select([self.gradients], [], [], POLL_SECONDS)[0]:
                if count := self.reader.readinto(view):
                    return count
            elif self.finished.is_set():
                return 0

    def close(self) -> None:
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

    def __init__(self, folder: Path, exchange: Callable[[], int | None], slot_bytes: int) -> None:
        import socket  # here only: as the worker's end, it is needed where there are no FIFOs

        self._init_ring(exchange, slot_bytes)
        self.finished = threading.Event()  # set when the worker's request ended, however
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.fields = {**self.fields, "port": self.listener.getsockname()[1]}
        self.connection: socket.socket | None = None

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
            assert self.connection is not None  # _connected
            if select.select([], [self.connection], [], POLL_SECONDS)[1]:
                try:
                    view = view[self.connection.send(view):]
                except BlockingIOError:
                    pass
                except OSError:  # the worker closed the connection: its request is ending
                    return

    def _read_into(self, view: memoryview) -> int:
        """As Channel._read_into; 0 also once the worker closed the connection."""
        while self._connected():
            assert self.connection is not None  # _connected
            if not select.select([self.connection], [], [], POLL_SECONDS)[0]:
                if self.finished.is_set():
                    return 0
                continue
            try:
                return self.connection.recv_into(view)
            except BlockingIOError:
                continue
            except OSError:  # reset: the worker is gone
                return 0
        return 0

    def close(self) -> None:
        for end in (self.connection, self.listener, self.ring):
            if end is not None:
                end.close()


# The step transfer of this machine: FIFOs where there are (POSIX), a local connection elsewhere.
CHANNEL = Channel if hasattr(os, "mkfifo") else SocketChannel
