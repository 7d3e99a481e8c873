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
import os
import struct
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    Reader = int | Callable[[memoryview], int]  # a blocking descriptor, or source(view) → the bytes it read into view

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


def frame_sizes(prefix: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(header bytes, body bytes) of the frame this prefix starts; ProtocolError past the limits."""
    header_size, body_size = FRAME_PREFIX.unpack(prefix)
    if header_size > MAX_MESSAGE_BYTES or body_size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a frame of {header_size + body_size} bytes announced, over the "
                            f"{MAX_MESSAGE_BYTES >> 20} MB allowed")
    return header_size, body_size


def encode_frame(message: dict[str, Any]) -> list[Any]:
    """A message whose arrays travel as raw bytes, as buffers to write in order (not joined: no
    copy): the lengths, a JSON header in which each array is {"__raw__": [dtype, shape]}, then
    the arrays' bytes. Plain data only: never a pickle, never an object."""
    arrays: list[np.ndarray] = []

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


def write_frame(destination: "int | Callable[[memoryview], int]", parts: list[Any]) -> None:
    """Write a frame's buffers (encode_frame) to a blocking descriptor, or through
    destination(view) → the bytes of view it wrote (0 for none yet)."""
    write = destination if callable(destination) else functools.partial(os.write, destination)
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[write(view):]


def read_frame(source: "Reader") -> tuple[bytes, bytearray] | None:
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
    return None if header is None or body is None else (bytes(header), body)


@overload
def read_exactly(source: "Reader", size: int, into: None = None) -> bytearray | None: ...
@overload
def read_exactly(source: "Reader", size: int, into: Any) -> memoryview | None: ...


def read_exactly(source: "Reader", size: int, into: Any = None) -> bytearray | memoryview | None:
    """size bytes, in a writable buffer (new, or `into`'s first size bytes: memory the caller
    reuses), from a blocking descriptor or through source(view) → the bytes it read into view (0
    at the end); None if the end comes first."""
    read = source if callable(source) else functools.partial(read_into, source)
    buffer = bytearray(size) if into is None else memoryview(into)[:size]
    view, got = memoryview(buffer), 0
    while got < size:
        count = read(view[got:got + (1 << 20)])
        if not count:
            return None
        got += count
    return buffer


if hasattr(os, "readv"):
    def read_into(fd: int, view: memoryview) -> int:
        """Read from fd into view, without a copy; the bytes read (0 at its end)."""
        return os.readv(fd, [view])
else:  # Windows: no readv, but a raw file object reads into a buffer as well
    def read_into(fd: int, view: memoryview) -> int:
        """Read from fd into view, without a copy; the bytes read (0 at its end)."""
        with open(fd, "rb", buffering=0, closefd=False) as stream:
            return stream.readinto(view)


def widen_pipe(fd: int) -> None:
    """Ask for a PIPE_BYTES pipe (Linux; elsewhere, or refused, the default stays)."""
    try:
        import fcntl
        fcntl.fcntl(fd, 1031, PIPE_BYTES)  # F_SETPIPE_SZ, linux/fcntl.h
    except (ImportError, OSError):
        pass


def decode_frame(header: bytes | bytearray | memoryview, body: bytearray | memoryview) -> dict[str, Any]:
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
