"""The contract both sides of the trust boundary share, and the messages between them.

The contract: what students implement (docs/SPEC.md), declared once. The worker, the checks,
the rubric loader, the package builders and the project's tests all derive from it.

The messages: one JSON object per line between the grader and the sandbox's supervisor; one
length-prefixed JSON object per frame between the supervisor and the child that runs student
code (a frame cannot be confused with the next one, whatever bytes it holds). Arrays inside as
base64 `.npy` bytes read back with allow_pickle=False. Never pickles, never objects. Raw-array
frames (encode_frame), for the MNIST steps' megabyte of gradients, where base64 and JSON would
cost more than the step: the same message with its arrays' raw bytes after it.

Imported by both sides (the worker gets a copy beside it): standard library and numpy only.
"""
import base64
import io
import json
import math
import os
import struct

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
FUNCTION_KINDS = ("forward", "backward", "robustness", "stability", "scale")
CHECK_KINDS = (*FUNCTION_KINDS, "value", "update", "accuracy")
WHOLE_MODEL = "MNIST"  # the group of the check that trains MLP3 from the student's ops

SUPERVISOR_COMMANDS = ("hello",)  # answered by the sandbox's supervisor itself: no worker child, no group

MAX_MESSAGE_BYTES = 64 << 20
MAX_ARRAY_BYTES = 16 << 20


class ProtocolError(Exception):
    pass


def _encode_default(value):
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError(f"array of dtype {value.dtype} and {value.nbytes} bytes cannot be sent")
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    raise ProtocolError(f"cannot send a {type(value).__name__}")


def _decode_object(mapping):
    if "__ndarray__" in mapping:
        if not isinstance(mapping["__ndarray__"], str) or len(mapping) != 1:
            raise ProtocolError("malformed array")
        try:
            return np.load(io.BytesIO(base64.b64decode(mapping["__ndarray__"], validate=True)), allow_pickle=False)
        except Exception as error:  # includes pickled object arrays, refused by allow_pickle=False
            raise ProtocolError(f"unreadable array: {error}") from None
    return mapping


def encode(message):
    return (json.dumps(message, default=_encode_default, allow_nan=True) + "\n").encode()


def decode(line):
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return _json_object(line, _decode_object)


def _json_object(text, object_hook):
    try:
        message = json.loads(text, object_hook=object_hook)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


FRAME_HEADER = struct.Struct(">I")  # a frame: its length, then that many bytes of one JSON object


def frame(message):
    data = json.dumps(message, default=_encode_default, allow_nan=True).encode()
    return FRAME_HEADER.pack(len(data)) + data


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd):
    """The next frame's bytes from a blocking descriptor; None at its end."""
    header = _read_exactly(fd, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a frame of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    data = _read_exactly(fd, size)
    if data is None:
        raise ProtocolError("the frame ended early")
    return data


def _read_exactly(fd, size):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


FRAME_PREFIX = struct.Struct("<QQ")  # the frame's header and body lengths


def encode_frame(message):
    """A message whose arrays travel as raw bytes, as buffers to write in order (not joined: no
    copy): the lengths, a JSON header in which each array is {"__raw__": [dtype, shape]}, then
    the arrays' bytes."""
    arrays = []

    def default(value):
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject or value.nbytes > MAX_ARRAY_BYTES:
                raise ProtocolError(f"array of dtype {value.dtype} and {value.nbytes} bytes cannot be sent")
            arrays.append(np.ascontiguousarray(value))
            return {"__raw__": [value.dtype.str, list(value.shape)]}
        return _encode_default(value)

    header = json.dumps(message, default=default, allow_nan=True).encode()
    body = [array.reshape(-1).view(np.uint8) for array in arrays]
    return [FRAME_PREFIX.pack(len(header), sum(part.nbytes for part in body)) + header, *body]


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

    return _json_object(header, hook)
