"""The contract both sides of the trust boundary share, and the messages between them.

The contract: what students implement (docs/SPEC.md), declared once. The worker, the checks,
the rubric loader, the package builders and the project's tests all derive from it.

The messages, one format on every hop (the grader ↔ the sandbox's supervisor ↔ the child that
runs student code, and the MNIST steps): a frame, its lengths first (a frame cannot be confused
with the next one, whatever bytes it holds), then a JSON header, then the raw bytes of the arrays
the header names by dtype and shape. No base64, no `.npy`: a scale check's 10⁶-element arrays
cost what copying them costs, so a Python loop over their elements shows in the check's time.
Never pickles, never objects: an array is a dtype, a shape and its bytes.

Imported by both sides (the worker gets a copy beside it): standard library and numpy only.
"""
import json
import math
import os
import shlex
import struct
from pathlib import PurePosixPath

import numpy as np

# Graded name → the module of the autodiff package that defines it.
GRADED = {
    "Mul": "ops", "Matmul": "ops", "Pow": "ops", "Sum": "ops",
    "ReLU": "activations", "Softmax": "activations", "Log": "activations",
    "CrossEntropyLoss": "losses", "NLLLoss": "losses",
    "l2_penalty": "regularizers", "l2_grad": "regularizers",
}
GRADED_MODULES = tuple(dict.fromkeys(GRADED.values()))
# The course's given modules: the engine and what trains with it. Students do not submit these.
GIVEN_MODULES = ("tensor", "nn", "optim", "data", "train")
COURSE_MODULES = ("tensor", *GRADED_MODULES, "nn", "optim", "data", "train")
# The checks a graded name can have, by kind (grader/checks/test_*.py defines one test per kind):
# Functions (forward/backward ops) and the regularizers' own kinds, and the whole-model check.
FUNCTION_KINDS = ("forward", "backward", "robustness", "stability", "scale", "search")
CHECK_KINDS = (*FUNCTION_KINDS, "value", "update", "accuracy")
WHOLE_MODEL = "MNIST"  # the group of the check that trains MLP3 from the student's ops
MLP3_OPS = ("Matmul", "ReLU", "Softmax", "CrossEntropyLoss")  # the graded names it trains through (autodiff/nn.py, worker.py)

NOTEBOOK_GROUP = "notebook"  # the group of a notebook's first run, cell by cell (grader/notebook.py)


def writefile_arguments(line):
    """The path and whether it appends, of a `%%writefile [-a] path` line, as Jupyter reads it (a
    Windows path's backslashes as separators): (path, appends), path "" when none is given."""
    line = line.replace("\\", "/")
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    appends = bool(words) and words[0] in ("-a", "--append")
    words = words[1:] if appends else words
    return (words[-1] if words else ""), appends


def writefile_module(line):
    """The module a `%%writefile [-a] path` cell writes: (name, appends), or (None, False) when the
    path is no module's (`notes.txt`, `my-utils.py`). Both sides read these cells: the trusted side
    for the report, the sandbox to record when it was written."""
    path, appends = writefile_arguments(line)
    path = PurePosixPath(path)
    return (path.stem, appends) if path.suffix == ".py" and path.stem.isidentifier() else (None, False)


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


def write_frame(fd, parts):
    """Write a frame's buffers (encode_frame) to a blocking descriptor."""
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view):]


def read_frame(fd):
    """The next frame from a blocking descriptor, as (header, body); None at its end. The body is
    writable: the arrays decoded from it are their receiver's own."""
    prefix = read_exactly(fd, FRAME_PREFIX.size)
    if prefix is None:
        return None
    header_size, body_size = frame_sizes(prefix)
    header, body = read_exactly(fd, header_size), read_exactly(fd, body_size)
    if header is None or body is None:
        raise ProtocolError("the frame ended early")
    return bytes(header), body


def read_exactly(fd, size):
    """size bytes from a blocking descriptor, in a writable buffer; None if it ends first."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = read_into(fd, view[got:got + (1 << 20)])
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
