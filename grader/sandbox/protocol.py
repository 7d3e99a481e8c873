"""The contract both sides of the trust boundary share, and the messages between them.

The contract: what students implement (docs/SPEC.md), declared once. The worker, the checks,
the rubric loader, the package builders and the project's tests all derive from it.

The messages: one JSON object per line, arrays inside as base64 `.npy` bytes read back with
allow_pickle=False. Never pickles, never objects.

Imported by both sides (the worker gets a copy beside it): standard library and numpy only.
"""
import base64
import io
import json

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
    try:
        message = json.loads(line, object_hook=_decode_object)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message
