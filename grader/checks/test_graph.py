"""Graded check of every Function inside a small graph run by the course's engine, where one
tensor feeds two ops and the op is called twice before either backward runs:

    binary ops:  out = f(x, x) + f(x, w)              unary ops and losses:  out = f(x) + f(x + c)

It finds what a call on its own cannot: a backward that changes grad_output in place (the
course's Add hands one array to both branches), state kept between calls (on the class instead
of ctx), and gradients the engine must add up. Counted as robustness: the rubric keeps it with
test_edge_cases.py's checks.
"""
import numpy as np
import pytest

from ..sandbox.protocol import GRADED
from .cases import away_from_zero, normal, one_hot, positive, probabilities
from .checking import ATOL, RTOL, CheckFailed, array_of, ask, call_op, items_of, mismatch, seeded_rng
from .oracle import FORWARD, central_differences

# Steps refer to values by index: the leaves first, then each step's result.
BINARY = [{"op": "f", "args": [0, 0]}, {"op": "f", "args": [0, 1]}, {"op": "Add", "args": [2, 3]}]
UNARY = [{"op": "f", "args": [0]}, {"op": "Add", "args": [0, 1]}, {"op": "f", "args": [3]}, {"op": "Add", "args": [2, 4]}]
LOSS = [{"op": "f", "args": [0, 1]}, {"op": "Add", "args": [0, 2]}, {"op": "f", "args": [4, 1]}, {"op": "Add", "args": [3, 5]}]


def shifted(sample, shift):
    """Leaves x and c, with x + c keeping x's sign and size (away from kinks and clips)."""
    def leaves(rng):
        x = sample(rng)
        return [x, shift * x]
    return leaves


GRAPHS = {  # op → (leaves from an rng, which leaves need a gradient, steps, options of f)
    "Mul": (lambda rng: [normal(3, 4)(rng), normal(3, 4)(rng)], (True, True), BINARY, {}),
    "Matmul": (lambda rng: [normal(3, 3)(rng), normal(3, 3)(rng)], (True, True), BINARY, {}),
    "Pow": (lambda rng: [positive(3, 4)(rng), normal(3, 4)(rng)], (True, True), BINARY, {}),
    "Sum": (lambda rng: [normal(3, 4)(rng), normal(3, 4)(rng)], (True, False), UNARY, {"axis": 0}),
    "ReLU": (shifted(away_from_zero(3, 4), 0.5), (True, False), UNARY, {}),
    "Softmax": (lambda rng: [normal(3, 4)(rng), normal(3, 4)(rng)], (True, False), UNARY, {"axis": -1}),
    "Log": (shifted(positive(3, 4), 0.5), (True, False), UNARY, {}),
    "CrossEntropyLoss": (lambda rng: [probabilities(4, 3)(rng), one_hot(4, 3)(rng), probabilities(4, 3)(rng) / 10],
                         (True, False, False), LOSS, {}),
    "NLLLoss": (lambda rng: [probabilities(4, 3)(rng), rng.integers(3, size=4), probabilities(4, 3)(rng) / 10],
                (True, False, False), LOSS, {}),
}
LEAF_NAMES = ("x", "w", "c")


def evaluate(op, leaves, steps, options):
    """The graph's output in float64, from the oracle."""
    values = list(leaves)
    for step in steps:
        args = [values[i] for i in step["args"]]
        values.append(np.add(*args) if step["op"] == "Add" else np.asarray(FORWARD[op](*args, **options)))
    return values[-1]


@pytest.mark.parametrize("op", list(GRAPHS), ids=[f"{op}-graph: a tensor feeding two ops" for op in GRAPHS])
def test_robustness(student, op, request):
    sample, wanted, steps, options = GRAPHS[op]
    rng = seeded_rng(request)
    leaves = [np.asarray(leaf) if np.asarray(leaf).dtype.kind in "iu" else np.asarray(leaf, dtype=np.float64) for leaf in sample(rng)]
    expected = evaluate(op, leaves, steps, options)
    seed = rng.normal(size=expected.shape)
    steps_sent = [{**step, "op": step["op"] if step["op"] == "Add" else op, "options": options if step["op"] == "f" else {}}
                  for step in steps]
    reply = ask(student, "graph", [GRADED[op]], key=(op, "graph"), name=op, leaves=leaves, requires_grad=list(wanted),
                steps=steps_sent, seed=seed)
    shape = "f(x, x) + f(x, w)" if steps is BINARY else "f(x) + f(x + c)"
    if not (isinstance(reply.get("seed_after"), np.ndarray) and np.array_equal(reply["seed_after"], seed)):
        raise CheckFailed(f"{op}.backward changed grad_output in place: in out = {shape}, run by the course's engine, "
                          f"Add hands the same grad_output array to both branches, so the other branch got a wrong "
                          f"gradient; compute a new array instead of writing into grad_output")
    expected_grads = central_differences(lambda *moved: evaluate(op, moved, steps, options), leaves, seed, wanted)
    got = [reply.get("output"), *[(reply.get("grads") or [None] * len(leaves))[i] for i in range(len(leaves)) if wanted[i]]]
    names = ["out", *[f"the gradient for {LEAF_NAMES[i]}" for i in range(len(leaves)) if wanted[i]]]
    problems = differences(names, got, [expected, *[grad for grad in expected_grads if grad is not None]])
    if not problems:
        return
    try:
        alone = isolated_calls(student, op, steps, leaves, seed, options)
    except CheckFailed:
        return  # the op fails on its own: the forward and backward checks say how
    if not differences(names, got, alone):
        return  # the graph gives what its calls give one by one: the op is wrong on its own, which those checks charge
    raise CheckFailed(f"in out = {shape}, run by the course's engine (both calls of {op}, then backward), {problems[0]}, "
                      f"although each call on its own gives the right part: look for state kept between calls (on the "
                      f"class or a global instead of ctx) or an array changed in place")


def differences(names, described, expected):
    """What differs between the values the worker described and the expected arrays, in words."""
    problems = []
    for name, value, want in zip(names, described, expected):
        try:
            got = value if isinstance(value, np.ndarray) else array_of(name, value, want.shape)
        except CheckFailed as failed:
            problems.append(str(failed))
            continue
        problem = f"it has shape {got.shape}" if got.shape != want.shape else mismatch(got, want, RTOL, ATOL)
        if problem:
            problems.append(f"{name} is wrong: {problem}")
    return problems


def isolated_calls(student, op, steps, leaves, seed, options):
    """The graph's output and gradients put together from the op's calls made one by one (each
    forward straight before its backward, on a fresh ctx), as the backward check makes them."""
    def alone(inputs, needs):
        reply = call_op(student, op, inputs, options, grad_output=seed, needs_input_grad=needs)
        grads = items_of(f"{op}.backward", reply.get("grads"), len(inputs))
        return (array_of(f"{op}.forward", reply.get("output"), seed.shape),
                [array_of(f"{op}.backward", grad, x.shape) if needed else None for grad, x, needed in zip(grads, inputs, needs)])
    if steps is BINARY:
        x, w = leaves
        (first, (a1, b1)), (second, (a2, b2)) = alone([x, x], (True, True)), alone([x, w], (True, True))
        return [first + second, a1 + b1 + a2, b2]
    x, rest = leaves[0], leaves[1:-1]  # the loss's target, or nothing
    (first, (g1, *_)), (second, (g2, *_)) = (alone([value, *rest], (True, *[False] * len(rest))) for value in (x, x + leaves[-1]))
    return [first + second, g1 + g2]
