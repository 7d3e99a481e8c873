"""Graded checks of every Function at scale: forward and backward on 10⁶ elements (the rubric's
[scale] side), within a time budget, with their values compared.

The budget is relative to what the same call costs done right, measured by trusted code on this
machine just before the student's call (reference_seconds, the fastest of a few runs): the
protocol's encoding, copying and decoding of the request and of a reply of the same size (raw
arrays: what crosses the pipes costs about what copying it costs), and the oracle's vectorised
forward (three times over for a forward and a backward). A slow or busy machine slows both alike,
so it does not fail honest students, and a call over its budget is timed again (three tries in all); a gradient by
numerical differences (one forward per element) cannot keep within it, nor loops indexing arrays
element by element in forward and backward; the cheapest loops (one Python-level pass over an
element-wise op) land around it, a line drawn on the side of honest students on a busy machine:
docs/grading.md, "Scale checks".

Values at scale are compared with tolerances a correct float32 submission meets: forward values
to 1e-4 of the output's largest magnitude; gradients through directional derivatives, ⟨grad, v⟩
against (L(x + hv) − L(x − hv)) / 2h for L = Σ upstream ⊙ f and a few random directions v (central
differences over every element would take the grader itself hours), or against L with v in x's
place where the forward is linear in x (exact, and one forward).
"""
import contextlib
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any, cast

import numpy as np
import pytest

from ..results import OverBudget
from ..rubric import SCALE_SIDE, Rubric
from ..sandbox import protocol
from ..sandbox.client import StudentException, WorkerClient, WorkerFailure
from ..sandbox.contract import GRADED
from .checking import CheckFailed, array_of, call_op, items_of, mismatch, rng_for, seeded_rng
from .opspec import LOSSES, SCALE_CASES, SPECS, Case, scale_cases

Directions = list[list[np.ndarray] | None]  # for each input, its random directions (None: no gradient wanted)
Derivatives = tuple[Directions, list[np.ndarray | None]]  # the directions, and the expected derivatives along them
Ahead = tuple[Mapping[str, Any], list[np.ndarray | None]]  # derivatives_ahead's: the generator's state after the draws, the derivatives

SCALE_FACTOR = 5          # the budget: this many times the reference time, plus SCALE_FLOOR (results/scale.json)
SCALE_FLOOR = 0.25        # seconds: a fixed cost per request (the pipes' copies, a busy scheduler)
HARD_LIMIT_FACTOR = 2     # a call is stopped at this many budgets: past it, only the diagnosis changes
ATTEMPTS = 3              # a call over its budget (not stopped) is timed again, up to this many times in all
REFERENCE_RUNS = 2        # the reference time is the fastest of these: a busy moment does not inflate the budget
FORWARD_RTOL_AT_SCALE = 1e-4
DIRECTIONS, STEP, DIRECTIONAL_RTOL = 2, 1e-5, 1e-3


def draw_scale(op: str, rng: np.random.Generator, side: int = SCALE_SIDE) -> tuple[Case, list[np.ndarray], np.ndarray, np.ndarray]:
    """(case, inputs, oracle output, upstream gradient) of the op's scale case, about side² elements."""
    case = scale_cases(side)[op]
    inputs = case.sample(rng)
    output = np.asarray(SPECS[op].forward(*inputs, **case.options))
    return case, inputs, output, rng.normal(size=output.shape)


def reference_seconds(op: str, options: dict[str, Any], inputs: list[np.ndarray], output: np.ndarray, upstream: np.ndarray | None) -> float:
    """What the call (a forward, and a backward given upstream) costs done right, measured now by
    trusted code on this machine: the request and a reply of the same size through the protocol
    and its pipes' copies, and the oracle's forward (three times over for a forward and a backward);
    the fastest of REFERENCE_RUNS."""
    grads = {} if upstream is None else {"grads": {"kind": "tuple", "items": [{"kind": "ndarray", "array": x} for x in inputs]}}
    fastest = float("inf")
    for _ in range(REFERENCE_RUNS):
        started = time.perf_counter()
        round_trip({"inputs": inputs, "grad_output": upstream})
        for _ in range(1 if upstream is None else 3):
            SPECS[op].forward(*inputs, **options)
        round_trip({"output": {"kind": "ndarray", "array": output}, **grads})
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def round_trip(message: dict[str, Any]) -> None:
    """A message through the protocol, copied as the two pipes on its way copy it (grader →
    supervisor → child, or back)."""
    header, *body = protocol.encode_frame(message)
    protocol.decode_frame(header[protocol.FRAME_PREFIX.size:], bytearray(bytearray(b"".join(body))))


def budget_of(reference: float) -> float:
    return SCALE_FLOOR + SCALE_FACTOR * reference


def timed_call(student: WorkerClient, op: str, case: Case, inputs: list[np.ndarray], upstream: np.ndarray | None, budget: float) -> tuple[float, Any]:
    """(seconds, reply) of one call (a forward, and a backward given upstream), timed here; stopped
    at HARD_LIMIT_FACTOR budgets (CheckFailed, status timeout). A worker to start or a module to
    import is not timed: call_op meets the same failure again and reports it."""
    with contextlib.suppress(StudentException, WorkerFailure):
        student.ensure_imported(GRADED[op], group=op)  # in the child the timed call will run in
    started = time.perf_counter()
    reply = call_op(student, op, inputs, case.options, grad_output=upstream, needs_input_grad=SPECS[op].gradient_inputs(),
                    timeout=HARD_LIMIT_FACTOR * budget, check="scale", unchanged=False)
    return time.perf_counter() - started, reply


SLOW = {"forward": "a Python loop over elements?",
        "backward": "a Python loop over elements, or a gradient by numerical differences (one forward per element)?"}


@pytest.mark.kind("scale")
@pytest.mark.parametrize("op", [pytest.param(op, id=op, marks=pytest.mark.case(op)) for op in SCALE_CASES])
def test_scale(student: WorkerClient, rubric: Rubric, op: str, request: pytest.FixtureRequest, scale_ahead: Future[dict[str, Ahead]] | None) -> None:
    judge_scale(student, op, seeded_rng(request), rubric.scale_side, computed_ahead(scale_ahead, op))


def computed_ahead(future: Future[dict[str, Ahead]] | None, op: str) -> Ahead | None:
    """derivatives_ahead's for op from plugin.scale_ahead's thread (waiting for it: nothing runs
    beside a timed call), or None when it did not compute them — the op not among them, or the
    thread failed (memory, say, beside MNIST): the check then computes its own, as it always can."""
    if future is None or future.exception() is not None:
        return None
    return future.result().get(op)


def derivatives_ahead(side: int, salt: str, ops: Iterable[str] = SCALE_CASES) -> dict[str, Ahead]:
    """The part of each op's check that no student code can change and that costs the most here:
    the expected directional derivatives of its first draw (the oracle's forward twice per
    direction where it is not linear), computed as judge_scale computes them, for computing while
    MNIST trains (plugin.scale_ahead). op → (the state of the check's generator after those
    draws, each wanted input's expected derivatives)."""
    ahead = {}
    for op in ops:
        rng = rng_for(f"test_scale.py::test_scale[{op}]", salt)
        case, inputs, _, upstream = draw_scale(op, rng, side)
        directions = draw_directions(op, inputs, rng)
        ahead[op] = rng.bit_generator.state, expected_derivatives(op, case.options, inputs, upstream, directions)
    return ahead


def draw_judged(op: str, rng: np.random.Generator, side: int,
                ahead: Ahead | None = None) -> tuple[Case, list[np.ndarray], np.ndarray, np.ndarray, Derivatives]:
    """draw_scale's draw, and what its gradients are judged by: (each wanted input's random
    directions, the expected derivatives along them), these taken from `ahead` when it was
    computed from the very same draws."""
    case, inputs, expected, upstream = draw_scale(op, rng, side)
    directions = draw_directions(op, inputs, rng)
    if ahead is not None and ahead[0] == rng.bit_generator.state:
        return case, inputs, expected, upstream, (directions, ahead[1])
    return case, inputs, expected, upstream, (directions, expected_derivatives(op, case.options, inputs, upstream, directions))


def judge_scale(student: WorkerClient, op: str, rng: np.random.Generator, side: int, ahead: Ahead | None = None) -> None:
    """One call, forward and backward, timed against its budget, its values compared; over budget,
    again on fresh inputs of the same shapes, up to ATTEMPTS calls in all (a busy moment of the
    machine is not the student's; a loop is slow every time, and an answer remembered from an
    earlier call is no answer to new inputs), every reply's values compared. Only when it stays
    slow, a forward alone, to say which is. ahead: derivatives_ahead's for this op, if computed."""
    case, inputs, expected, upstream, derivatives = draw_judged(op, rng, side, ahead)
    with student.paused():  # nothing the student's processes do competes with the grader's own time
        reference = reference_seconds(op, case.options, inputs, expected, upstream)
    budget = budget_of(reference)
    fastest = None
    for attempt in range(ATTEMPTS):
        if attempt:
            case, inputs, expected, upstream, derivatives = draw_judged(op, rng, side)
        try:
            seconds, reply = timed_call(student, op, case, inputs, upstream, budget)
        except CheckFailed as failed:
            if failed.status != "timeout":
                raise
            break  # stopped at the hard limit: not tried again
        judge_values(op, case, inputs, expected, upstream, reply, rng, derivatives)
        if seconds <= budget:
            return
        fastest = seconds if fastest is None else min(fastest, seconds)
    raise slow_part(student, op, case, inputs, expected, reference, fastest)


def slow_part(student: WorkerClient, op: str, case: Case, inputs: list[np.ndarray], expected: np.ndarray, reference: float,
              seconds: float | None) -> CheckFailed:
    """The diagnosis of a slow call (`seconds`, None if stopped; `reference`, the grader's own time
    for it): the forward alone is timed, and the part named that took the more time beyond the
    grader's own for it. (The forward alone has no budget of its own: the floor would make it
    loose, and a loop in the forward that fits it still makes the whole call slow.)"""
    size, budget = max(x.size for x in inputs), budget_of(reference)
    with student.paused():
        forward_reference = reference_seconds(op, case.options, inputs, expected, None)
    forward_seconds: float | None
    try:
        forward_seconds, _ = timed_call(student, op, case, inputs, None, budget_of(forward_reference))
    except CheckFailed as failed:
        forward_seconds = None if failed.status == "timeout" else 0.0
    if forward_seconds is None:
        slow = "forward"
    else:  # what each part took beyond the grader's own time for it; a call stopped took the hard limit at least
        took = HARD_LIMIT_FACTOR * budget if seconds is None else seconds
        forward_over = forward_seconds - forward_reference
        backward_over = (took - forward_seconds) - (reference - forward_reference)
        slow = "forward" if forward_over >= backward_over else "backward"
    if seconds is None:
        return CheckFailed(f"{op}.{slow} did not finish within {HARD_LIMIT_FACTOR * budget:.1f} s on {size:,} elements "
                           f"(the budget is {budget:.2f} s, {SCALE_FACTOR}× the grader's own time for the call plus "
                           f"{SCALE_FLOOR:g} s): {SLOW[slow]}", status="timeout", cause=OverBudget(None, budget))
    return CheckFailed(f"{op}.{slow} is correct but too slow: the call took {seconds:.2f} s on {size:,} elements, over its "
                       f"budget of {budget:.2f} s ({SCALE_FACTOR}× the grader's own time for it plus {SCALE_FLOOR:g} s): "
                       f"{SLOW[slow]}", status="timeout", cause=OverBudget(round(seconds, 3), round(budget, 3)))


def judge_values(op: str, case: Case, inputs: list[np.ndarray], expected: np.ndarray, upstream: np.ndarray, reply: dict[str, Any],
                 rng: np.random.Generator, derivatives: Derivatives | None = None) -> None:
    """The reply's forward against the oracle's, its gradients along random directions (drawn from
    rng here unless `derivatives` gives them, with their expected derivatives: draw_judged)."""
    got = array_of(f"{op}.forward", reply.get("output"), expected.shape)
    if got.shape != expected.shape:
        raise CheckFailed(f"{op}.forward at scale returned shape {got.shape}, expected {expected.shape}")
    atol = FORWARD_RTOL_AT_SCALE * float(np.max(np.abs(expected)))
    problem = mismatch(got, expected, FORWARD_RTOL_AT_SCALE, atol, batch=inputs[0].shape[0] if op in LOSSES else None)
    if problem:
        raise CheckFailed(f"{op}.forward is wrong at scale ({case.id}): {problem}")
    grads = items_of(f"{op}.backward", reply.get("grads"), len(inputs))
    if derivatives is None:
        directions = draw_directions(op, inputs, rng)
        derivatives = directions, expected_derivatives(op, case.options, inputs, upstream, directions)
    directions, values = derivatives
    problems = []
    for index, name in enumerate(SPECS[op].input_names):
        if SPECS[op].gradient_inputs()[index]:
            gradient = array_of(f"{op}.backward (the gradient for {name})", grads[index], inputs[index].shape)
            problem = directional_mismatch(inputs[index].shape, gradient, cast(list[np.ndarray], directions[index]),
                                           cast(np.ndarray, values[index]))  # not None: a wanted gradient
            if problem:
                problems.append(f"the gradient for {name} is wrong at scale ({case.id}): {problem}")
    if problems:
        raise CheckFailed("\n".join(problems))


def draw_directions(op: str, inputs: list[np.ndarray], rng: np.random.Generator) -> Directions:
    """DIRECTIONS random directions for each input the case wants a gradient for (None for the
    others). Random signs, not normal draws: the same E⟨g, v⟩² = ‖g‖², and far cheaper to draw."""
    return [[rng.integers(0, 2, size=x.shape, dtype=np.int8) * 2.0 - 1.0 for _ in range(DIRECTIONS)] if wanted else None
            for x, wanted in zip(inputs, SPECS[op].gradient_inputs(), strict=True)]


def expected_derivatives(op: str, options: dict[str, Any], inputs: list[np.ndarray], upstream: np.ndarray,
                         directions: Directions) -> list[np.ndarray | None]:
    """For each input with directions, the derivatives of L = Σ upstream ⊙ f along them."""
    return [None if along is None else np.array([directional_derivative(op, options, inputs, upstream, index, v) for v in along])
            for index, along in enumerate(directions)]


def directional_mismatch(shape: tuple[int, ...], got: np.ndarray, directions: list[np.ndarray], expected: np.ndarray) -> str | None:
    """None if ⟨got, v⟩ matches the expected directional derivative of L = Σ upstream ⊙ f along
    each random v; else what is wrong. The tolerance is relative to the gradient's size, estimated from
    the directional derivatives themselves (never from `got`, which would let a huge answer pass)."""
    if got.shape != shape:
        return f"it has shape {got.shape}, expected {shape}"
    if not np.all(np.isfinite(got)):
        return "it is not finite everywhere"
    measured = np.array([float(np.vdot(got, v)) for v in directions])
    size = float(np.sqrt(np.mean(expected ** 2)))  # ≈ ‖gradient‖
    worst = int(np.argmax(np.abs(measured - expected)))
    if np.abs(measured - expected)[worst] <= DIRECTIONAL_RTOL * size + 1e-9:
        return None
    if np.allclose(measured, 0, atol=DIRECTIONAL_RTOL * size + 1e-9):
        return "it is all zeros (along every direction tried)"
    return (f"along a random direction its derivative is {measured[worst]:.6g}, expected {expected[worst]:.6g} "
            f"(⟨gradient, v⟩ against a difference of the loss)")


def directional_derivative(op: str, options: dict[str, Any], inputs: list[np.ndarray], upstream: np.ndarray, index: int, v: np.ndarray) -> float:
    """The derivative of L = Σ upstream ⊙ f along v for input `index`: (L(x + hv) − L(x − hv)) / 2h,
    or exactly L with v in x's place where f is linear in that input."""
    def loss(shifted):
        return np.vdot(upstream, SPECS[op].forward(*inputs[:index], shifted, *inputs[index + 1:], **options))

    if index in SPECS[op].linear_inputs:
        return float(loss(v))
    step = STEP * v
    return float(loss(inputs[index] + step) - loss(inputs[index] - step)) / (2 * STEP)
