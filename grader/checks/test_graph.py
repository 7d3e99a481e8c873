"""Graded check of every Function inside a small graph run by the course's engine, where one
tensor feeds two ops and the op is called twice before either backward runs:

    binary ops:  out = f(x, x) + f(x, w)      unary ops:  out = f(x) + f(x + c)      losses:  out = f(p, t) + f(p + c, t2)

It finds what a call on its own cannot: a backward that changes grad_output in place (the
course's Add hands one array to both branches), state kept between calls (on the class instead
of ctx), and gradients the engine must add up. Counted as robustness: the rubric keeps it with
test_edge_cases.py's checks.
"""
from typing import Any

import numpy as np
import pytest

from ..sandbox.client import WorkerClient
from ..sandbox.contract import GRADED
from .checking import ATOL, RTOL, CheckFailed, array_of, ask, call_op, items_of, mismatch, seeded_rng
from .opspec import BINARY, SPECS
from .oracle import reduce_to

GRAPHS = {name: spec.graph for name, spec in SPECS.items() if spec.graph}
LEAF_NAMES = ("x", "w", "c", "t2")


def with_options(steps: list[dict[str, Any]], options: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps, each call of f with its options: `options` for all of them, or a list, one per call
    (two calls with different options find options kept on the class instead of on ctx)."""
    per_call = iter(options if isinstance(options, list) else [options] * sum(step["op"] == "f" for step in steps))
    return [{**step, "options": next(per_call) if step["op"] == "f" else {}} for step in steps]


def evaluate(op: str, leaves: list[np.ndarray], steps: list[dict[str, Any]]) -> list[np.ndarray]:
    """Every value of the graph in float64, from the oracle: the leaves, then each step's result."""
    values = list(leaves)
    for step in steps:
        args = [values[i] for i in step["args"]]
        values.append(np.add(*args) if step["op"] == "Add" else np.asarray(SPECS[op].forward(*args, **step["options"]), dtype=np.float64))
    return values


def exact_gradients(op: str, leaves: list[np.ndarray], steps: list[dict[str, Any]], seed: np.ndarray,
                    wanted: tuple[bool, ...]) -> list[np.ndarray | None]:
    """Each wanted leaf's gradient of Σ seed ⊙ out, by the chain rule over the oracle's exact backward."""
    values = evaluate(op, leaves, steps)
    grads = [np.zeros(np.shape(value)) for value in values]
    grads[-1] = np.asarray(seed, dtype=np.float64)
    for position in reversed(range(len(steps))):
        step, upstream = steps[position], grads[len(leaves) + position]
        args = [values[i] for i in step["args"]]
        parts = ([reduce_to(upstream, np.shape(arg)) for arg in args] if step["op"] == "Add"
                 else SPECS[op].backward(upstream, *args, **step["options"]))
        for index, part in zip(step["args"], parts, strict=True):
            if part is not None and values[index].dtype.kind == "f":
                grads[index] = grads[index] + part
    return [grads[i] if wanted[i] else None for i in range(len(leaves))]


GRAPH_CASE = "graph: a tensor feeding two ops"


# Counted as robustness (the kind marker); the function keeps its name, which seeds its inputs (checking.seeded_rng).
@pytest.mark.kind("robustness")
@pytest.mark.parametrize("op", [pytest.param(op, id=f"{op}-{GRAPH_CASE}", marks=pytest.mark.case(GRAPH_CASE)) for op in GRAPHS])
def test_robustness(student: WorkerClient, op: str, request: pytest.FixtureRequest) -> None:
    sample, wanted, recipe_steps, options = GRAPHS[op]
    rng = seeded_rng(request)
    leaves = [np.asarray(leaf) if np.asarray(leaf).dtype.kind in "iu" else np.asarray(leaf, dtype=np.float64) for leaf in sample(rng)]
    steps = with_options(recipe_steps, options)
    expected = evaluate(op, leaves, steps)[-1]
    seed = rng.normal(size=expected.shape)
    steps_sent = [{**step, "op": step["op"] if step["op"] == "Add" else op} for step in steps]
    reply = ask(student, "graph", [GRADED[op]], key=(op, "graph"), name=op, leaves=leaves, requires_grad=list(wanted),
                steps=steps_sent, seed=seed)
    shape = "f(x, x) + f(x, w)" if recipe_steps is BINARY else "f(p, t) + f(p + c, t2)" if len(leaves) == 4 else "f(x) + f(x + c)"
    if isinstance(options, list):
        shape += f" (the two calls with {' and '.join(', '.join(f'{k}={v!r}' for k, v in o.items()) for o in options)})"
    if not (isinstance(reply.get("seed_after"), np.ndarray) and np.array_equal(reply["seed_after"], seed)):
        raise CheckFailed(f"{op}.backward changed grad_output in place: in out = {shape}, run by the course's engine, "
                          f"Add hands the same grad_output array to both branches, so the other branch got a wrong "
                          f"gradient; compute a new array instead of writing into grad_output")
    expected_grads = exact_gradients(op, leaves, steps, seed, wanted)
    got = [reply.get("output"), *[(reply.get("grads") or [None] * len(leaves))[i] for i in range(len(leaves)) if wanted[i]]]
    names = ["out", *[f"the gradient for {LEAF_NAMES[i]}" for i in range(len(leaves)) if wanted[i]]]
    problems = differences(names, got, [expected, *[grad for grad in expected_grads if grad is not None]])
    if not problems:
        return
    try:
        alone = isolated_calls(student, op, recipe_steps is BINARY, steps, leaves, seed)
    except CheckFailed:
        return  # the op fails on its own: the forward and backward checks say how
    if not differences(names, got, alone):
        return  # the graph gives what its calls give one by one: the op is wrong on its own, which those checks charge
    raise CheckFailed(f"in out = {shape}, run by the course's engine (both calls of {op}, then backward), {problems[0]}, "
                      f"although each call on its own gives the right part: look for state kept between calls (on the "
                      f"class or a global instead of ctx) or an array changed in place")


def differences(names: list[str], described: list[Any], expected: list[np.ndarray]) -> list[str]:
    """What differs between the values the worker described and the expected arrays, in words."""
    problems = []
    for name, value, want in zip(names, described, expected, strict=True):
        try:
            got = value if isinstance(value, np.ndarray) else array_of(name, value, want.shape)
        except CheckFailed as failed:
            problems.append(str(failed))
            continue
        problem = f"it has shape {got.shape}" if got.shape != want.shape else mismatch(got, want, RTOL, ATOL)
        if problem:
            problems.append(f"{name} is wrong: {problem}")
    return problems


def isolated_calls(student: WorkerClient, op: str, binary: bool, steps: list[dict[str, Any]], leaves: list[np.ndarray],
                   seed: np.ndarray) -> list[np.ndarray]:
    """The graph's output and gradients put together from the op's calls made one by one (each
    forward straight before its backward, on a fresh ctx, given its share of the seed), as the
    backward check makes them."""
    first_options, second_options = (step["options"] for step in steps if step["op"] == "f")

    def alone(inputs, needs, options):
        shape = np.shape(SPECS[op].forward(*inputs, **options))
        reply = call_op(student, op, inputs, options, grad_output=reduce_to(seed, shape), needs_input_grad=needs)
        grads = items_of(f"{op}.backward", reply.get("grads"), len(inputs))
        return (array_of(f"{op}.forward", reply.get("output"), shape),
                [array_of(f"{op}.backward", grad, x.shape) if needed else None for grad, x, needed in zip(grads, inputs, needs, strict=True)])
    if binary:
        x, w = leaves
        (first, (a1, b1)), (second, (a2, b2)) = alone([x, x], (True, True), first_options), alone([x, w], (True, True), second_options)
        return [first + second, a1 + b1 + a2, b2]
    if len(leaves) == 4:  # a loss: x, its target, c, the second call's target
        x, target, shift, second_target = leaves
        needs = (True, False)
        (first, (g1, _)), (second, (g2, _)) = alone([x, target], needs, first_options), alone([x + shift, second_target], needs, second_options)
        return [first + second, g1 + g2]
    x, shift = leaves
    (first, (g1,)), (second, (g2,)) = alone([x], (True,), first_options), alone([x + shift], (True,), second_options)
    return [first + second, g1 + g2]
