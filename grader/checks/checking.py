"""What every check shares: seeded inputs, asking the worker, and feedback that diagnoses.

A failing check raises CheckFailed with text written for the student who must fix it: which
output or input, the likely cause (a forgotten broadcast reduction, a sign flip, a factor of N,
a transpose, an ignored grad_output), and the worst element with its index, expected and got.
Feedback never shows the inputs of a case, only shapes and the worst element.
"""
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from ..results import Cause, NotImported, NotStarted, OverBudget, Raised, WorkerStopped, Wrong
from ..sandbox.client import BudgetSpent, ImportStopped, StudentException, WorkerClient, WorkerFailure
from ..sandbox.contract import GRADED
from . import oracle
from .oracle import reduce_to

if TYPE_CHECKING:
    from .opspec import OpSpec

RTOL, ATOL = 1e-4, 1e-6            # the graph check's gradients: against central differences of a whole graph
FORWARD_RTOL, FORWARD_ATOL = 1e-7, 1e-9
OP_TIMEOUT = 10                    # seconds for one forward/backward call
# A value is right within this many roundings of the size of the terms it is made of (oracle.py's
# magnitudes), in the least precise float of its inputs and its result (float32 at the least):
# correct code written every way the tests hold stays within about one (results/tolerances.json,
# `make tolerances`), a gradient by central differences lands around 10⁵ (float64).
ROUNDINGS = 1000


class CheckFailed(AssertionError):
    """A check's verdict. status: failed (wrong answer), error (crashed), timeout; cause: why, as
    data (results.py), by default a wrong value diagnosed by the message's first line."""

    def __init__(self, message: str, status: str = "failed", fraction: float = 0.0, cause: Cause | None = None) -> None:
        super().__init__(message)
        self.status, self.fraction = status, fraction
        self.cause = cause or Wrong(message.partition("\n")[0])


# Prefixed to a check's id (file::test[case]) when seeding its inputs: a fixed folder, never the check
# files' own, so that moving the files moves no student's inputs, and no grade.
SEED_PREFIX = "tests/checks/"


def seeded_rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """Inputs derived from the check's id and the rubric's salt: the same submission gets the same
    inputs on every run, and the official grading (salted) other inputs than the handout's."""
    return rng_for(request.node.path.name + "::" + request.node.nodeid.partition("::")[2],
                   request.getfixturevalue("rubric").salt)


def rng_for(check: str, salt: str) -> np.random.Generator:
    """seeded_rng of the check `file::test[case]`."""
    check_id = f"{salt}\0{SEED_PREFIX}{check}" if salt else SEED_PREFIX + check
    return np.random.default_rng(int.from_bytes(hashlib.sha256(check_id.encode()).digest()[:8], "little"))


def ask(student: WorkerClient, command: str, modules: Sequence[str], timeout: float = OP_TIMEOUT, key: tuple[str, ...] | None = None,
        group: str | None = None, **fields: Any) -> Any:
    """One request to the worker, after importing the graded modules it needs (each on its own,
    so that a module whose import fails is named); failures become CheckFailed. `group`: the
    graded name the request is checked for (default: the key's, else the `name` field's); the
    sandbox runs each group in a worker of its own and charges its time to that group's budget."""
    group = group or (key[0] if key else fields.get("name"))
    for module in modules:
        try:
            student.ensure_imported(module, group=group)
        except StudentException as raised:
            why = exception_words(raised.details)[1]
            raise CheckFailed(explain_exception(raised.details),
                              cause=NotImported(f"{module}.py", why.partition("\n")[0], raised_cause(raised.details))) from None
        except BudgetSpent as failure:
            raise CheckFailed(str(failure), status=failure.status, cause=OverBudget(None, None)) from None
        except ImportStopped as failure:
            stopped = WorkerStopped(failure.stopped.status, str(failure.stopped))
            raise CheckFailed(str(failure), status=failure.status,
                              cause=NotImported(f"{module}.py", f"stopped the worker: {stopped.message}".partition("\n")[0], stopped)) from None
    try:
        return student.request(command, timeout, key=key, group=group, **fields)
    except StudentException as raised:
        raise CheckFailed(explain_exception(raised.details), cause=exception_cause(raised.details)) from None
    except BudgetSpent as failure:
        raise CheckFailed(str(failure), status=failure.status, cause=OverBudget(None, None)) from None
    except WorkerFailure as failure:
        raise CheckFailed(str(failure), status=failure.status, cause=WorkerStopped(failure.status, str(failure))) from None


def call_op(student: WorkerClient, name: str, inputs: Sequence[np.ndarray], options: dict[str, Any] | None = None,
            grad_output: np.ndarray | None = None, needs_input_grad: Sequence[bool] | None = None, timeout: float = OP_TIMEOUT,
            check: str = "", unchanged: bool = True) -> Any:
    """forward (and backward, given grad_output) of graded Function `name` in the worker, its ctx
    made with needs_input_grad (None: a Context() made by hand, every input needing a gradient); with
    `unchanged`, the inputs and grad_output as the op left them come back too. A call that times
    out is not run again by the same `check` (the scale check's calls have their own)."""
    phase = "forward" if grad_output is None else "backward"
    return ask(student, "call", [GRADED[name]], timeout, key=(name, phase, check), group=name, name=name,
               inputs=list(inputs), options=options or {}, grad_output=grad_output,
               needs_input_grad=None if needs_input_grad is None else list(needs_input_grad), unchanged=unchanged)


def exception_words(details: dict[str, Any]) -> tuple[str, str]:
    """(phase, what it did) of an exception the worker reported, as the feedback says them."""
    phase, kind, message = details.get("phase", "?"), details.get("type", "Exception"), details.get("message", "")
    if kind == "NotImplementedError":
        return phase, f"is not implemented yet (NotImplementedError: {message})"
    if kind == "SystemExit":
        return phase, f"called sys.exit({message}); a graded function must return, not exit"
    return phase, f"raised {kind}: {message}"


def student_frames(details: dict[str, Any]) -> str:
    trace = details.get("traceback")
    return trace if isinstance(trace, str) else ""


def explain_exception(details: dict[str, Any]) -> str:
    """The feedback on an exception student code raised: what raised, and its frames (none for the
    starter's NotImplementedError: where a not-started op raises is the stub itself, no news)."""
    text = " ".join(exception_words(details))
    trace = student_frames(details)
    return f"{text}\n{trace}" if trace and details.get("type") != "NotImplementedError" else text


def exception_cause(details: dict[str, Any]) -> NotStarted | Raised:
    """The Cause of an exception student code raised in a call: the starter's NotImplementedError
    is an op not started, its message the starter's hint; anything else, what it raised."""
    cause = raised_cause(details)
    return NotStarted(cause.phase, cause.message) if cause.type == "NotImplementedError" else cause


def raised_cause(details: dict[str, Any]) -> Raised:
    """What student code raised, as the worker reported it (worker.student_exception), as a Raised."""
    phase, kind, message = (str(details.get(name, default)) for name, default in
                            (("phase", "?"), ("type", "Exception"), ("message", "")))
    return Raised(phase, kind, message, student_frames(details))


# Real numbers only, never cast from anything else: float, signed and unsigned integers, and bool
# (0 and 1, exactly what a mask multiplied by 1.0 would give; refusing it would cost a right answer).
REAL_KINDS = "fiub"
DTYPE_KINDS = {"c": "complex numbers", "O": "Python objects", "V": "structured records", "M": "dates",
               "m": "time intervals", "U": "strings", "S": "bytes"}


def array_of(what: str, described: Any, expected_shape: Sequence[int] | None = None) -> np.ndarray:
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


def items_of(what: str, described: Any, count: int) -> list[Any]:
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


def precision(inputs: Sequence[np.ndarray], described: Any) -> np.finfo:
    """The float type a value is judged in: the least precise among the float inputs and the result
    (a result in less than float32 is judged as float32: half precision loses the answer)."""
    types = [np.finfo(x.dtype) for x in inputs if x.dtype.kind == "f"]
    array = described.get("array") if isinstance(described, dict) else None
    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
        types.append(np.finfo(np.float32) if array.dtype.itemsize < 4 else np.finfo(array.dtype))
    return max(types, key=lambda info: info.eps, default=np.finfo(np.float64))


# Added where the oracle's gradients are central differences (the student handout: oracle.EXACT is False).
APPROXIMATE_RTOL, APPROXIMATE_ATOL = 1e-4, 1e-6


def tolerance(size: np.ndarray, inputs: Sequence[np.ndarray], described: Any) -> np.ndarray:
    """The absolute tolerance of each element of a value whose terms have magnitude `size`: ROUNDINGS
    roundings of them, and what underflow can lose (the float type's smallest normal number)."""
    info = precision(inputs, described)
    size = np.asarray(size, dtype=np.float64)
    loose = 0 if oracle.EXACT else APPROXIMATE_RTOL * size + APPROXIMATE_ATOL
    return ROUNDINGS * float(info.eps) * size + float(info.smallest_normal) + loose


def mismatch(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float | np.ndarray, alternatives: Sequence[tuple[str, np.ndarray | None]] = (),
             batch: int | None = None) -> str | None:
    """None if got matches expected; else what is wrong, as specifically as can be told.

    alternatives: (explanation, array) pairs of known wrong answers to recognise; batch: N,
    to name a factor of N or 1/N."""
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return None
    for explanation, alternative in alternatives:  # a known wrong answer may hold nan (log of a negative) too
        if alternative is not None and np.shape(alternative) == got.shape and \
                np.allclose(got, alternative, rtol=rtol, atol=atol, equal_nan=True):
            return explanation + worst_element(got, expected, atol)
    if not np.all(np.isfinite(got)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return (f"it contains {got[bad]} at index {bad} (expected {expected[bad]:.6g}): look for an overflow, "
                f"the log of 0 or of a negative number, or a division by 0")
    scale = float(np.vdot(expected, expected))
    if scale > 0:
        factor = float(np.vdot(got, expected)) / scale
        if abs(factor - 1) > 1e-3 and np.allclose(got, factor * expected, rtol=rtol, atol=atol):
            if not np.any(got):
                return "it is all zeros" + worst_element(got, expected, atol)
            if abs(factor + 1) < 1e-3:
                return "it has the wrong sign (every value is negated)" + worst_element(got, expected, atol)
            hint = ""
            if batch and abs(factor - batch) < 1e-3 * batch:
                hint = f" ({factor:.4g} is N, the batch size: is the 1/N of the mean missing?)"
            elif batch and abs(factor * batch - 1) < 1e-3:
                hint = f" (1/N, N = {batch} the batch size: divided by N once too often?)"
            if hint or got.size > 1:  # any single wrong value is some multiple of the right one
                return f"every value is {factor:.4g} times the right one{hint}" + worst_element(got, expected, atol)
    return "values differ" + worst_element(got, expected, atol)


def worst_element(got: np.ndarray, expected: np.ndarray, atol: float | np.ndarray | None = None) -> str:
    """The element furthest beyond its tolerance (atol), or relatively furthest off without one."""
    if got.ndim == 0:
        return "; expected {}, got {}".format(*digits(float(expected), float(got)))
    with np.errstate(all="ignore"):
        error = np.abs(got - expected) - (RTOL * np.abs(expected) if atol is None else np.broadcast_to(atol, got.shape))
        error = np.where(np.isnan(error), np.inf, error)
    index = np.unravel_index(int(np.argmax(error)), got.shape)
    return "; worst element at index {}: expected {}, got {}".format(tuple(int(i) for i in index), *digits(expected[index], got[index]))


def digits(expected: float, got: float) -> tuple[str, str]:
    """The two numbers with as many digits as it takes to tell them apart (6 at least, 17 at most)."""
    for places in range(6, 18):
        shown = f"{expected:.{places}g}", f"{got:.{places}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def sum_to_shape(grad: np.ndarray, shape: Sequence[int]) -> np.ndarray | None:
    """What the gradient would be after summing over broadcast axes (reduce_grad_to_shape's job),
    None where that cannot give `shape`."""
    try:
        reduced = reduce_to(grad, tuple(shape)) if np.ndim(grad) >= len(shape) else None
    except (ValueError, IndexError):
        return None
    return reduced if reduced is not None and reduced.shape == tuple(shape) else None


def as_float64(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The inputs as the oracle computes with them: float64, exactly the values sent (integers stay)."""
    return [x if x.dtype.kind in "iu" else x.astype(np.float64) for x in inputs]


def judge_forward(spec: "OpSpec", inputs: Sequence[np.ndarray], options: dict[str, Any], described: Any, what: str | None = None) -> str | None:
    """None if the forward's output (as the worker described it) is SPEC's, within its tolerance; else the diagnosis."""
    exact = as_float64(inputs)
    expected = np.asarray(spec.forward(*exact, **options), dtype=np.float64)
    size = spec.magnitudes(np.ones(expected.shape), exact, options)[0]
    got = array_of(f"{spec.name}.forward", described, expected.shape)
    what = what or f"{spec.name}.forward"
    if got.shape != expected.shape:
        return f"{what} returned shape {got.shape}, expected {expected.shape}"
    problem = mismatch(got, expected, 0, tolerance(size, inputs, described), spec.forward_mistakes(exact),
                       batch=inputs[0].shape[0] if spec.is_loss else None)
    return f"{what} is wrong: {problem}" if problem else None


def judge_backward(spec: "OpSpec", inputs: Sequence[np.ndarray], options: dict[str, Any], upstream: np.ndarray, wanted: Sequence[bool],
                   described: Any, alternatives: bool = True) -> list[str]:
    """The problems of a backward's gradients (as the worker described them), input by input:
    each input the engine wants a gradient for and SPEC defines one, against the exact oracle;
    the others, None or an array of the input's shape (all zeros where SPEC defines none)."""
    exact = as_float64(inputs)
    expected = spec.backward(upstream, *exact, **options)
    sizes = spec.magnitudes(upstream, exact, options)[1]
    grads = items_of(f"{spec.name}.backward", described, len(inputs))
    compared = [want and has and grad is not None for want, has, grad in zip(wanted, spec.gradient_inputs(), expected, strict=True)]
    with_ones = spec.backward(np.ones_like(upstream), *exact, **options) if alternatives else [None] * len(inputs)
    mistakes = (spec.gradient_mistakes(exact, upstream) if spec.gradient_mistakes and alternatives else [[] for _ in inputs])
    problems = []
    for index, name in enumerate(spec.input_names):
        if not compared[index]:
            problem = judge_no_gradient(f"{spec.name}.backward", name, grads[index], inputs[index].shape,
                                        spec.gradient_inputs()[index])
        else:
            gradient = cast(np.ndarray, expected[index])  # compared: SPEC defines it
            others = [expected[i] for i in range(len(inputs)) if i != index and compared[i]]
            known = [("it does not use grad_output (it is the gradient for an all-ones grad_output): multiply by grad_output",
                      with_ones[index]),
                     *[("it is the gradient of the other input", other) for other in others],
                     ("it is transposed", np.swapaxes(gradient, -1, -2) if gradient.ndim >= 2 else None),
                     *mistakes[index]] if alternatives else []
            problem = judge_gradient(f"{spec.name}.backward", name, grads[index], inputs[index].shape, gradient,
                                     tolerance(cast(np.ndarray, sizes[index]), inputs, grads[index]), known,
                                     batch=inputs[0].shape[0] if spec.is_loss else None)
        problems += [problem] if problem else []
    return problems


def judge_unchanged(spec: "OpSpec", inputs: Sequence[np.ndarray], reply: dict[str, Any], upstream: np.ndarray | None = None) -> list[str]:
    """What the call changed in place that it must not: an input, grad_output, or (in backward) the
    forward's output, which the engine's output tensor holds. Each array as the worker carried it
    back, compared to the bit; nothing is said of what the worker did not carry back."""
    problems = []
    # The worker's list may be short or long: what it did not carry back is not judged, and no more.
    for name, before, after in zip(spec.input_names, inputs, reply.get("inputs_after") or [], strict=False):
        if not unchanged(after, before):
            problems.append(f"{spec.name} modified its input {name} in place; leave inputs unchanged (the engine's "
                            f"tensor holds that array: every later use of it sees the change)")
    if upstream is not None and "grad_output_after" in reply and not unchanged(reply["grad_output_after"], upstream):
        problems.append(f"{spec.name}.backward changed grad_output in place; leave it unchanged: the course's Add hands the "
                        f"same grad_output array to both of its inputs, so the other branch would get a wrong gradient")
    output = reply.get("output")
    if "output_after" in reply and isinstance(output, dict) and output.get("kind") == "ndarray" \
            and not unchanged(reply["output_after"], output.get("array")):
        problems.append(f"{spec.name}.backward changed the forward's output in place (an array it saved for backward, say); "
                        f"the engine's output tensor holds that array: compute new arrays instead")
    return problems


def unchanged(after: object, before: object) -> bool:
    """Is the array the worker sent back the one it was given, to the bit?"""
    return isinstance(after, np.ndarray) and isinstance(before, np.ndarray) and after.shape == before.shape and \
        after.dtype == before.dtype and np.array_equal(after, before, equal_nan=before.dtype.kind in "fc")


def gradient_of(what: str, name: str, described: Any, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str | None]:
    """(the gradient for input `name` as an array, None), its shape the caller's to judge; (None,
    None) when the gradient is None; (None, what is wrong) when it is no array."""
    if described.get("kind") == "none":
        return None, None
    try:
        return array_of(f"{what} (the gradient for {name})", described, shape), None
    except CheckFailed as failed:
        return None, str(failed)


def judge_no_gradient(what: str, name: str, described: Any, shape: tuple[int, ...], differentiable: bool) -> str | None:
    """An input that gets no gradient compared: SPEC defines none (NLLLoss's target: None or all
    zeros), or the engine said it needs none, or SPEC leaves it undefined there (None, or any array
    of its shape: the engine checks the shape)."""
    got, problem = gradient_of(what, name, described, shape)
    if got is None:
        return problem
    if got.shape != shape:
        return f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape} (or return None: it needs none)"
    if not differentiable and np.any(got != 0):
        return f"the gradient for {name} should be None (or all zeros): {name} has no gradient"
    return None


def judge_gradient(what: str, name: str, described: Any, shape: tuple[int, ...], expected: np.ndarray, atol: float | np.ndarray,
                   alternatives: Sequence[tuple[str, np.ndarray | None]], batch: int | None = None) -> str | None:
    """None if the gradient for input `name` is right within atol; else the diagnosis. Shape first:
    an unreduced broadcast would otherwise slip through numpy's own broadcasting."""
    got, problem = gradient_of(what, name, described, shape)
    if got is None:
        return problem or f"{what} returned None as the gradient for {name}; it needs one of shape {shape}"
    if got.shape != shape:
        reduced = sum_to_shape(got, shape)
        if reduced is not None:
            verdict = ("summed over those axes it would be right" if np.allclose(reduced, expected, rtol=RTOL, atol=ATOL)
                       else "summed over those axes its values would still be off")
            return (f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape}: you forgot to reduce "
                    f"the broadcast (the forward broadcast {name}, so its gradient must be summed back to its shape "
                    f"with reduce_grad_to_shape); {verdict}")
        if got.shape == tuple(reversed(shape)) and got.ndim > 1:
            return f"the gradient for {name} has shape {got.shape}, the transpose of {name}'s shape {shape}"
        return f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape}"
    problem = mismatch(got, expected, 0, atol, alternatives, batch=batch)
    return f"the gradient for {name} is wrong: {problem}" if problem else None
