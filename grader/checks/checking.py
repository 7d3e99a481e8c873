"""What every check shares: seeded inputs, asking the worker, and feedback that diagnoses.

A failing check raises CheckFailed with text written for the student who must fix it: which
output or input, the likely cause (a forgotten broadcast reduction, a sign flip, a factor of N,
a transpose, an ignored grad_output), and the worst element with its index, expected and got.
Feedback never shows the inputs of a case, only shapes and the worst element.
"""
import hashlib

import numpy as np

from ..sandbox.client import StudentException, WorkerFailure
from ..sandbox.protocol import GRADED

RTOL, ATOL = 1e-4, 1e-6            # gradients: correct ops are at ~1e-9 of a central difference
FORWARD_RTOL, FORWARD_ATOL = 1e-7, 1e-9
OP_TIMEOUT = 10                    # seconds for one forward/backward call


class CheckFailed(AssertionError):
    """A check's verdict. status: failed (wrong answer), error (crashed), timeout."""

    def __init__(self, message, status="failed", fraction=0.0):
        super().__init__(message)
        self.status, self.fraction = status, fraction


# Prefixed to a check's id (file::test[case]) when seeding its inputs: where the checks lived when
# their inputs were first drawn. Kept, so that moving the files moves no grade.
SEED_PREFIX = "tests/checks/"


def seeded_rng(request):
    """Inputs derived from the check's id and the rubric's salt: the same submission gets the same
    inputs on every run, and the official grading (salted) other inputs than the handout's."""
    return rng_for(request.node.path.name + "::" + request.node.nodeid.partition("::")[2],
                   request.getfixturevalue("rubric").salt)


def rng_for(check, salt):
    """seeded_rng of the check `file::test[case]`."""
    check_id = f"{salt}\0{SEED_PREFIX}{check}" if salt else SEED_PREFIX + check
    return np.random.default_rng(int.from_bytes(hashlib.sha256(check_id.encode()).digest()[:8], "little"))


def ask(student, command, modules, timeout=OP_TIMEOUT, key=None, group=None, **fields):
    """One request to the worker, after importing the graded modules it needs (each on its own,
    so that a module whose import fails is named); failures become CheckFailed. `group`: the
    graded name the request is checked for (default: the key's, else the `name` field's); the
    sandbox runs each group in a worker of its own and charges its time to that group's budget."""
    group = group or (key[0] if key else fields.get("name"))
    try:
        for module in modules:
            student.ensure_imported(module, group=group)
        return student.request(command, timeout, key=key, group=group, **fields)
    except StudentException as raised:
        raise CheckFailed(explain_exception(raised.details)) from None
    except WorkerFailure as failure:
        raise CheckFailed(str(failure), status=failure.status) from None


def call_op(student, name, inputs, options=None, grad_output=None, needs_input_grad=None, timeout=OP_TIMEOUT, check="",
            unchanged=True):
    """forward (and backward, given grad_output) of graded Function `name` in the worker; with
    `unchanged`, the inputs and grad_output as the op left them come back too. A call that times
    out is not run again by the same `check` (the scale check's calls have their own)."""
    phase = "forward" if grad_output is None else "backward"
    return ask(student, "call", [GRADED[name]], timeout, key=(name, phase, check), group=name, name=name,
               inputs=list(inputs), options=options or {}, grad_output=grad_output,
               needs_input_grad=list(needs_input_grad or [True] * len(inputs)), unchanged=unchanged)


def explain_exception(details):
    phase, kind, message = details.get("phase", "?"), details.get("type", "Exception"), details.get("message", "")
    if kind == "NotImplementedError":
        text = f"{phase} is not implemented yet (NotImplementedError: {message})"
    elif kind == "SystemExit":
        text = f"{phase} called sys.exit({message}); a graded function must return, not exit"
    else:
        text = f"{phase} raised {kind}: {message}"
    trace = details.get("traceback")  # where a not-started op raises is the stub itself: no news
    return f"{text}\n{trace}" if isinstance(trace, str) and trace and kind != "NotImplementedError" else text


# Real numbers only, never cast from anything else: float, signed and unsigned integers, and bool
# (0 and 1, exactly what a mask multiplied by 1.0 would give; refusing it would cost a right answer).
REAL_KINDS = "fiub"
DTYPE_KINDS = {"c": "complex numbers", "O": "Python objects", "V": "structured records", "M": "dates",
               "m": "time intervals", "U": "strings", "S": "bytes"}


def array_of(what, described, expected_shape=None):
    """The array a student function returned, or CheckFailed saying what came instead.
    A single number is accepted where a 0-d array is expected. Only real numbers are read:
    a complex array is refused, not cast (the cast would silently drop its imaginary part)."""
    kind = described.get("kind") if isinstance(described, dict) else None
    array = described.get("array") if isinstance(described, dict) else None
    scalar_ok = expected_shape == ()
    if kind == "ndarray" or (kind in ("numpy scalar", "python number") and scalar_ok):
        if type(array) is not np.ndarray:
            raise CheckFailed(f"{what} returned an array the grader could not read")
        if array.dtype.kind not in REAL_KINDS:
            raise CheckFailed(f"{what} returned {DTYPE_KINDS.get(array.dtype.kind, 'values')} (dtype {array.dtype}), "
                              f"expected real numbers: a numpy array of floats")
        return array.astype(np.float64)
    wanted = "a numpy array" if expected_shape is None else f"a numpy array of shape {tuple(expected_shape)}"
    if kind == "none":
        raise CheckFailed(f"{what} returned None, expected {wanted}")
    if kind in ("tuple", "list"):
        raise CheckFailed(f"{what} returned a {kind} of {described.get('length')} items, expected {wanted}")
    if kind == "unsendable array":  # Python objects, or more than the protocol carries
        raise CheckFailed(f"{what} returned an array of dtype {described.get('dtype')} and shape {described.get('shape')} "
                          f"the grader cannot read, expected {wanted} of real numbers")
    if kind == "other" and described.get("type") == "Tensor":
        raise CheckFailed(f"{what} returned a Tensor; forward and backward work on numpy arrays: return the array")
    if kind in ("numpy scalar", "python number"):
        raise CheckFailed(f"{what} returned a single number, expected {wanted}")
    shown = (described.get("type") or kind) if isinstance(described, dict) else "something unreadable"
    raise CheckFailed(f"{what} returned {shown}, expected {wanted}")


def items_of(what, described, count):
    """A backward's gradients as a list of `count` described values (a bare array for one input)."""
    kind = described.get("kind") if isinstance(described, dict) else None
    if kind in ("tuple", "list"):
        items = described.get("items")
        if described.get("length") != count or not isinstance(items, list):
            raise CheckFailed(f"{what} returned {described.get('length')} gradients; expected {count}, one per input, in order")
        return items
    if count == 1:
        return [described]
    raise CheckFailed(f"{what} returned a single value; expected a tuple of {count} gradients, one per input")


def mismatch(got, expected, rtol, atol, alternatives=(), batch=None):
    """None if got matches expected; else what is wrong, as specifically as can be told.

    alternatives: (explanation, array) pairs of known wrong answers to recognise; batch: N,
    to name a factor of N or 1/N."""
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return None
    for explanation, alternative in alternatives:  # a known wrong answer may hold nan (log of a negative) too
        if alternative is not None and np.shape(alternative) == got.shape and \
                np.allclose(got, alternative, rtol=rtol, atol=atol, equal_nan=True):
            return explanation + worst_element(got, expected)
    if not np.all(np.isfinite(got)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return (f"it contains {got[bad]} at index {bad} (expected {expected[bad]:.6g}): look for an overflow, "
                f"the log of 0 or of a negative number, or a division by 0")
    scale = float(np.vdot(expected, expected))
    if scale > 0:
        factor = float(np.vdot(got, expected)) / scale
        if abs(factor - 1) > 1e-3 and np.allclose(got, factor * expected, rtol=rtol, atol=atol):
            if factor == 0 or np.allclose(got, 0):
                return "it is all zeros" + worst_element(got, expected)
            if abs(factor + 1) < 1e-3:
                return "it has the wrong sign (every value is negated)" + worst_element(got, expected)
            hint = ""
            if batch and abs(factor - batch) < 1e-3 * batch:
                hint = f" ({factor:.4g} is N, the batch size: is the 1/N of the mean missing?)"
            elif batch and abs(factor * batch - 1) < 1e-3:
                hint = f" (1/N, N = {batch} the batch size: divided by N once too often?)"
            if hint or got.size > 1:  # any single wrong value is some multiple of the right one
                return f"every value is {factor:.4g} times the right one{hint}" + worst_element(got, expected)
    return "values differ" + worst_element(got, expected)


def worst_element(got, expected):
    if got.ndim == 0:
        return f"; expected {expected:.6g}, got {got:.6g}"
    error = np.abs(got - expected) - RTOL * np.abs(expected)
    index = np.unravel_index(int(np.argmax(error)), got.shape)
    return f"; worst element at index {tuple(int(i) for i in index)}: expected {expected[index]:.6g}, got {got[index]:.6g}"


def sum_to_shape(grad, shape):
    """What the gradient would be after summing over broadcast axes (reduce_grad_to_shape's job)."""
    try:
        extra = grad.ndim - len(shape)
        if extra < 0:
            return None
        grad = grad.sum(axis=tuple(range(extra)))
        stretched = tuple(a for a, n in enumerate(shape) if n == 1 and grad.shape[a] != 1)
        grad = grad.sum(axis=stretched, keepdims=True) if stretched else grad
        return grad if grad.shape == tuple(shape) else None
    except (ValueError, IndexError):
        return None
