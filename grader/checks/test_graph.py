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
from .checking import ATOL, RTOL, CheckFailed, array_of, ask, mismatch, seeded_rng
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
    output = array_of(f"{op}.forward in a graph", reply.get("output"), expected.shape)
    problem = output.shape != expected.shape or mismatch(output, expected, RTOL, ATOL)
    if problem:
        raise CheckFailed(f"out = {shape}, run by the course's engine, is wrong although each call on its own may be right: "
                          f"does forward keep state between calls? ({problem if problem is not True else 'shape'})")
    grads = reply.get("grads") or []
    for index, expected_grad in enumerate(central_differences(lambda *moved: evaluate(op, moved, steps, options), leaves, seed, wanted)):
        if expected_grad is None:
            continue
        got = array_of(f"the gradient the engine gave {LEAF_NAMES[index]}", grads[index] if index < len(grads) else None,
                       expected_grad.shape)
        problem = "it has shape " + str(got.shape) if got.shape != expected_grad.shape else mismatch(got, expected_grad, RTOL, ATOL)
        if problem:
            raise CheckFailed(f"in out = {shape}, run by the course's engine (forward of both calls of {op}, then backward), "
                              f"the gradient for {LEAF_NAMES[index]} is wrong: {problem}. Each call on its own is checked "
                              f"by the backward check: if that passes, look for state kept between calls (on the class or "
                              f"a global instead of ctx) or an array changed in place")
