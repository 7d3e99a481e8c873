"""The messages between the two sides of the trust boundary, one format on every hop.

The grader ↔ the sandbox's supervisor ↔ the child that runs student code, and the MNIST steps: a
frame, its lengths first (a frame cannot be confused with the next one, whatever bytes it holds),
then a JSON header, then the raw bytes of the arrays the header names by dtype and shape. No
base64, no `.npy`: a scale check's 10⁶-element arrays cost what copying them costs, so a Python
loop over their elements shows in the check's time. Never pickles, never objects: an array is a
dtype, a shape and its bytes.

Every side reads and writes frames here (read_frame, write_frame), each through its own way of
waiting: a blocking descriptor, or a function that reads (writes) what it can before its own
deadline. What the frames say is the assignment's contract (contract.py) and how a request
failed (failures.py).

Imported by both sides (the worker gets a copy beside it): standard library and numpy only.
"""
import functools
import json
import math
import mmap
import os
import struct

import numpy as np

SUPERVISOR_COMMANDS = ("hello",)  # answered by the sandbox's supervisor itself: no worker child, no group

MAX_MESSAGE_BYTES = 64 << 20  # a frame's header, and its body, each at most this
MAX_ARRAY_BYTES = 16 << 20
PIPE_BYTES = 1 << 20  # the pipe size asked for (F_SETPIPE_SZ): a scale check's arrays in few reads and writes


class ProtocolError(Exception):
    pass


def _json_object(text, object_hook):
    try:
        message = json.loads(text, object_hook=object_hook)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


FRAME_PREFIX = struct.Struct("<QQ")  # a frame: its header's and its body's lengths, the header, the body


def frame_sizes(prefix):
    """(header bytes, body bytes) of the frame this prefix starts; ProtocolError past the limits."""
    header_size, body_size = FRAME_PREFIX.unpack(prefix)
    if header_size > MAX_MESSAGE_BYTES or body_size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a frame of {header_size + body_size} bytes announced, over the "
                            f"{MAX_MESSAGE_BYTES >> 20} MB allowed")
    return header_size, body_size


def encode_frame(message):
    """A message whose arrays travel as raw bytes, as buffers to write in order (not joined: no
    copy): the lengths, a JSON header in which each array is {"__raw__": [dtype, shape]}, then
    the arrays' bytes. Plain data only: never a pickle, never an object."""
    arrays = []

    def default(value):
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject or value.nbytes > MAX_ARRAY_BYTES:
                raise ProtocolError(f"array of dtype {value.dtype} and {value.nbytes} bytes cannot be sent")
            arrays.append(np.ascontiguousarray(value))
            return {"__raw__": [value.dtype.str, list(value.shape)]}
        if isinstance(value, np.generic):
            return value.item()
        raise ProtocolError(f"cannot send a {type(value).__name__}")

    header = json.dumps(message, default=default, allow_nan=True).encode()
    body = [array.reshape(-1).view(np.uint8) for array in arrays]
    return [FRAME_PREFIX.pack(len(header), sum(part.nbytes for part in body)) + header, *body]


def write_frame(destination, parts):
    """Write a frame's buffers (encode_frame) to a blocking descriptor, or through
    destination(view) → the bytes of view it wrote (0 for none yet)."""
    write = destination if callable(destination) else functools.partial(os.write, destination)
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[write(view):]


def read_frame(source):
    """The next frame, as (header, body), from a blocking descriptor or through source(view) → the
    bytes it read into view (0 at the end); None at the end, also when it comes inside a frame.
    ProtocolError if the lengths are past the limits. The body is writable: the arrays decoded
    from it are their receiver's own."""
    prefix = read_exactly(source, FRAME_PREFIX.size)
    if prefix is None:
        return None
    header_size, body_size = frame_sizes(prefix)
    header = read_exactly(source, header_size)
    body = None if header is None else read_exactly(source, body_size)
    return None if body is None else (bytes(header), body)


def read_exactly(source, size):
    """size bytes, in a writable buffer, from a blocking descriptor or through source(view) → the
    bytes it read into view (0 at the end); None if the end comes first."""
    read = source if callable(source) else functools.partial(read_into, source)
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = read(view[got:got + (1 << 20)])
        if not count:
            return None
        got += count
    return buffer


if hasattr(os, "readv"):
    def read_into(fd, view):
        """Read from fd into view, without a copy; the bytes read (0 at its end)."""
        return os.readv(fd, [view])
else:  # Windows: no readv, but a raw file object reads into a buffer as well
    def read_into(fd, view):
        """Read from fd into view, without a copy; the bytes read (0 at its end)."""
        with open(fd, "rb", buffering=0, closefd=False) as stream:
            return stream.readinto(view)


def widen_pipe(fd):
    """Ask for a PIPE_BYTES pipe (Linux; elsewhere, or refused, the default stays)."""
    try:
        import fcntl
        fcntl.fcntl(fd, 1031, PIPE_BYTES)  # F_SETPIPE_SZ, linux/fcntl.h
    except (ImportError, OSError):
        pass


# MNIST's gradients come through this file of the scratch folder (grader/mnist.py): the one file
# there the worker may write, bound writable into the bubblewrap levels' read-only view; emptied
# by the supervisor after each group, so that it carries nothing from one group's worker to the next.
EXCHANGE = ".exchange"

RING_COUNTER = struct.Struct("<Q")  # an exchange file's first bytes: how many steps the grader has taken out


class StepRing:
    """The worker's end of MNIST's exchange file (grader/mnist.py reads it): a frame's arrays go in
    the next slot of the ring, its lengths and header to the pipe; a slot is rewritten only once
    the grader has counted it taken out."""

    def __init__(self, path, slots, slot_bytes, first_slot):
        self.slots, self.slot_bytes, self.first_slot, self.written = slots, slot_bytes, first_slot, 0
        size = first_slot + slots * slot_bytes
        with open(path, "r+b") as file:
            file.truncate(size)
            self.map = mmap.mmap(file.fileno(), size)
        self.map[:RING_COUNTER.size] = RING_COUNTER.pack(0)
        self.bytes = np.frombuffer(self.map, np.uint8)
        self.layouts = {}  # send_updates: (the header after the loss, the body's bytes) of each layout of updates

    def next_slot(self, stopped):
        """The next slot's memory (writable bytes), once the grader has taken out what it last held;
        None if stopped() said so while every slot was still unread."""
        while self.written - RING_COUNTER.unpack_from(self.map)[0] >= self.slots:
            if stopped():
                return None
        offset = self.first_slot + self.written % self.slots * self.slot_bytes
        return self.bytes[offset:offset + self.slot_bytes]

    def put(self, parts, out, stopped):
        """Send a frame (encode_frame's buffers) through the ring and out (its header); False if
        stopped() said so while every slot was still unread. Each array is copied to its place in
        the slot unless it is there already; a body larger than a slot stays out of it: its
        lengths alone tell the grader it is too large."""
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

    def send_updates(self, loss, grads, shapes, lr, out, stopped):
        """MNIST's step (worker.mnist_gradients): the loss and SGD's updates, computed straight into
        the next slot (sgd_updates), as the frame {"loss", "updates"}; the updates sent, or None if
        stopped() said so while every slot was still unread. Every correct step has the same
        header but for the loss: its layout's part is encoded once, not a few thousand times."""
        slot = self.next_slot(stopped)
        if slot is None:
            return None
        updates = sgd_updates(grads, shapes, lr, slot)
        message = {"loss": loss, "updates": updates}
        arrays = [update["array"] for update in updates if update["kind"] == "ndarray"]
        if not (isinstance(loss, float) and all(update["kind"] in ("ndarray", "none") for update in updates)
                and sum(array.nbytes for array in arrays) <= self.slot_bytes):
            self.put(encode_frame(message), out, stopped)  # anything unusual: encoded in full, copied if not in place
            return updates
        layout = tuple((update["array"].dtype.str, update["array"].shape) if update["kind"] == "ndarray" else None
                       for update in updates)
        if layout not in self.layouts:
            header = bytes(encode_frame(message)[0][FRAME_PREFIX.size:])
            self.layouts[layout] = header[header.index(b', "updates": '):], sum(array.nbytes for array in arrays)
        tail, body_bytes = self.layouts[layout]
        header = b'{"loss": ' + json.dumps(loss, allow_nan=True).encode() + tail
        self._send(FRAME_PREFIX.pack(len(header), body_bytes) + header, out)
        return updates

    def _send(self, head, out):
        out.write(head)
        out.flush()
        self.written += 1


def sgd_updates(grads, shapes, lr, slot):
    """SGD's update of each parameter, lr · its gradient (described), computed straight into the
    ring's slot (StepRing.send_updates), where sending it would have copied it anyway: one pass
    over a megabyte a step, not three. A gradient the trusted side will refuse goes as it came,
    for it to say why; one past the slot's end stays where it is (the frame's lengths then tell
    the grader it is too large)."""
    offset, updates = 0, []
    for described, shape in zip(grads, shapes):
        array = described.get("array")
        if array is None or offset + array.nbytes > len(slot):
            updates.append(described)
            continue
        place = slot[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
        offset += array.nbytes
        if accepted_update(described, shape):
            np.multiply(array, lr, out=place)
        else:
            np.copyto(place, array)
        updates.append({**described, "array": place})
    return updates


def accepted_update(described, shape):
    """What grader/mnist.py applies: a real floating-point array of its parameter's shape."""
    return described.get("kind") == "ndarray" and described["array"].dtype.kind == "f" and described["array"].shape == shape


def decode_frame(header, body):
    """The message of a frame, from its header and body (read after FRAME_PREFIX gave their
    lengths); its arrays are views of body."""
    offset = 0

    def hook(mapping):
        nonlocal offset
        if "__raw__" not in mapping:
            return mapping
        try:
            (dtype, shape), = mapping.values()
            dtype, shape = np.dtype(dtype), tuple(int(n) for n in shape)
            if dtype.hasobject or dtype.subdtype or min(shape, default=0) < 0:
                raise ValueError(f"dtype {dtype} and shape {shape} are not sendable")
            count = math.prod(shape)
            array = np.frombuffer(body, dtype, count, offset).reshape(shape)
        except (TypeError, ValueError) as error:
            raise ProtocolError(f"malformed array: {error}") from None
        offset += array.nbytes
        return array

    message = _json_object(header, hook)
    if offset != len(body):
        raise ProtocolError(f"a frame's body of {len(body)} bytes holds {offset} bytes of arrays")
    return message
