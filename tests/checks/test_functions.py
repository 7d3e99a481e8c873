"""Graded checks of every Function (SPEC.md): forward values, gradients, robustness, stability.

Run by the grader against a submission; run directly (pytest tests/checks) they grade the
reference. Inputs are drawn from a generator seeded by the test's id, away from kinks and clip
regions (ReLU away from 0, positive bases and logs, probabilities ≥ 0.05); the extreme inputs
have their own stability checks.
"""
from dataclasses import dataclass, field

import numpy as np
import pytest

from grader.checking import (ATOL, FORWARD_ATOL, FORWARD_RTOL, RTOL, CheckFailed, array_of, call_op, items_of,
                             mismatch, seeded_rng, sum_to_shape)
from grader.oracle import EPS, FORWARD, INPUT_NAMES, numerical_gradients


def normal(*shape):
    return lambda rng: rng.normal(size=shape)


def away_from_zero(*shape):
    return lambda rng: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.3, 2.0, size=shape)


def probabilities(*shape):
    return lambda rng: rng.uniform(0.05, 1.0, size=shape)


def one_hot(n, classes):
    return lambda rng: np.eye(classes)[rng.integers(classes, size=n)]


def soft_targets(n, classes):
    return lambda rng: rng.dirichlet(np.ones(classes), size=n)


def class_indices(n, classes):
    return lambda rng: rng.integers(classes, size=n)


@dataclass
class Case:
    id: str
    inputs: list                      # one sampler per positional input
    options: dict = field(default_factory=dict)
    differentiable: tuple = None      # which inputs get a gradient (default: all)

    def sample(self, rng):
        return [np.asarray(draw(rng), dtype=np.float64) for draw in self.inputs]

    def wants_grad(self):
        return self.differentiable or (True,) * len(self.inputs)


BROADCASTS = [("3x4 with 4", (3, 4), (4,)), ("3x1 with 1x4", (3, 1), (1, 4)),
              ("scalar with 3x4", (), (3, 4)), ("2x3x4 with 3x1", (2, 3, 4), (3, 1))]

CASES = {
    "Mul": [Case("3x4 * 3x4", [normal(3, 4), normal(3, 4)]), Case("4x4 * 4x4", [normal(4, 4), normal(4, 4)])]
    + [Case(name.replace("with", "*"), [normal(*a), normal(*b)]) for name, a, b in BROADCASTS],
    "Matmul": [Case("3x4 @ 4x5", [normal(3, 4), normal(4, 5)]), Case("4x4 @ 4x4", [normal(4, 4), normal(4, 4)]),
               Case("2x3x4 @ 2x4x5 batched", [normal(2, 3, 4), normal(2, 4, 5)]),
               Case("2x3x4 @ 4x5 broadcast batch", [normal(2, 3, 4), normal(4, 5)]),
               Case("2x1x3x4 @ 3x4x5 broadcast batch", [normal(2, 1, 3, 4), normal(3, 4, 5)])],
    "Pow": [Case("3x4 ** 3x4", [positive(3, 4), normal(3, 4)]), Case("4x4 ** 4x4", [positive(4, 4), normal(4, 4)])]
    + [Case(name.replace("with", "**"), [positive(*a), normal(*b)]) for name, a, b in BROADCASTS],
    "Sum": [Case(f"2x3x4 axis={axis} keepdims={keep}", [normal(2, 3, 4)], {"axis": axis, "keepdims": keep})
            for axis in (None, 0, -1, (0, 2)) for keep in (False, True)],
    "ReLU": [Case("3x4", [away_from_zero(3, 4)]), Case("2x3x4", [away_from_zero(2, 3, 4)]), Case("5", [away_from_zero(5)])],
    "Softmax": [Case("3x4 axis=-1", [normal(3, 4)], {"axis": -1}), Case("3x4 axis=0", [normal(3, 4)], {"axis": 0}),
                Case("2x3x4 axis=-1", [normal(2, 3, 4)], {"axis": -1}), Case("4x5 default axis", [normal(4, 5)])],
    "Log": [Case("3x4", [positive(3, 4)]), Case("2x3x4", [positive(2, 3, 4)]), Case("5", [positive(5)])],
    "CrossEntropyLoss": [Case("4x3 one-hot", [probabilities(4, 3), one_hot(4, 3)]),
                         Case("5x10 one-hot", [probabilities(5, 10), one_hot(5, 10)]),
                         Case("4x3 soft targets", [probabilities(4, 3), soft_targets(4, 3)])],
    "NLLLoss": [Case("4x3", [probabilities(4, 3), class_indices(4, 3)], differentiable=(True, False)),
                Case("6x10", [probabilities(6, 10), class_indices(6, 10)], differentiable=(True, False))],
}
LOSSES = ("CrossEntropyLoss", "NLLLoss")


def forward_mistakes(op, inputs):
    """Wrong outputs students often return, as (diagnosis, output) pairs, so the feedback can name them."""
    if op == "NLLLoss":
        p, target = inputs
        block = -np.sum(np.log(np.maximum(p[:, target], EPS))) / len(p)
        return [("it takes p[:, target], an N×N block; take one entry per row: p[np.arange(N), target]", np.asarray(block))]
    return []


def gradient_mistakes(op, inputs, upstream):
    """Wrong gradients students often return: for each input, (diagnosis, gradient) pairs."""
    def reduced(compute, shape):  # None where the mistake does not even fit the shapes
        try:
            with np.errstate(all="ignore"):
                return sum_to_shape(compute(), shape)
        except ValueError:
            return None
    if op == "Matmul":
        a, b = inputs
        return [[("it multiplies by B where Bᵀ belongs: dA = G Bᵀ (B with its last two axes transposed)",
                  reduced(lambda: np.matmul(upstream, b), a.shape))],
                [("it multiplies by A where Aᵀ belongs: dB = Aᵀ G (A with its last two axes transposed)",
                  reduced(lambda: np.matmul(a, upstream), b.shape))]]
    if op == "Pow":
        a, b = inputs
        return [[], [("it takes log(b), the log of the exponent: dB = g ⊙ a^b ⊙ log(a), the log of the base",
                       reduced(lambda: upstream * a ** b * np.log(b), b.shape))]]
    return [[] for _ in inputs]


def cases(select=lambda op, index: True):
    return [pytest.param(op, case, id=f"{op}-{case.id}") for op, op_cases in CASES.items()
            for index, case in enumerate(op_cases) if select(op, index)]


def draw(op, case, request):
    rng = seeded_rng(request.node.nodeid)
    inputs = case.sample(rng)
    if op == "NLLLoss":
        inputs[1] = inputs[1].astype(np.int64)
    output = FORWARD[op](*inputs, **case.options)
    return rng, inputs, output


@pytest.mark.parametrize("op, case", cases())
def test_forward(student, op, case, request):
    _, inputs, expected = draw(op, case, request)
    reply = call_op(student, op, inputs, case.options, needs_input_grad=case.wants_grad())
    got = array_of(f"{op}.forward", reply.get("output"), np.shape(expected))
    if got.shape != np.shape(expected):
        raise CheckFailed(f"{op}.forward returned shape {got.shape}, expected {np.shape(expected)}")
    problem = mismatch(got, np.asarray(expected), FORWARD_RTOL, FORWARD_ATOL, forward_mistakes(op, inputs),
                       batch=inputs[0].shape[0] if op in LOSSES else None)
    if problem:
        raise CheckFailed(f"{op}.forward is wrong: {problem}")


@pytest.mark.parametrize("op, case", cases())
def test_backward(student, op, case, request):
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))  # random: an all-ones upstream hides an ignored grad_output
    wants = case.wants_grad()
    reply = call_op(student, op, inputs, case.options, grad_output=upstream, needs_input_grad=wants)
    grads = items_of(f"{op}.backward", reply.get("grads"), len(inputs))
    expected = numerical_gradients(op, inputs, case.options, upstream, wants)
    with_ones = numerical_gradients(op, inputs, case.options, np.ones_like(upstream), wants)
    mistakes = gradient_mistakes(op, inputs, upstream)
    problems = []
    for index, name in enumerate(INPUT_NAMES[op]):
        if not wants[index]:
            if grads[index].get("kind") != "none":
                problems.append(f"the gradient for {name} should be None: it has no gradient")
            continue
        others = [expected[i] for i in range(len(inputs)) if i != index and wants[i]]
        problem = judge_gradient(f"{op}.backward", name, grads[index], inputs[index].shape, expected[index],
                                 alternatives=[("it does not use grad_output (it is the gradient for an all-ones "
                                                "grad_output): multiply by grad_output", with_ones[index]),
                                               *[(f"it is the gradient of the other input", other) for other in others],
                                               ("it is transposed", np.swapaxes(expected[index], -1, -2)
                                                if expected[index].ndim >= 2 else None),
                                               *mistakes[index]],
                                 batch=inputs[0].shape[0] if op in LOSSES else None)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckFailed("\n".join(problems))


def judge_gradient(what, name, described, shape, expected, alternatives, batch=None):
    """None if the gradient for input `name` is right; else the diagnosis. Shape first: an
    unreduced broadcast would otherwise slip through numpy's own broadcasting."""
    if described.get("kind") == "none":
        return f"{what} returned None as the gradient for {name}; it needs one of shape {shape}"
    try:
        got = array_of(f"{what} (the gradient for {name})", described, shape)
    except CheckFailed as failed:
        return str(failed)
    if got.shape != shape:
        reduced = sum_to_shape(got, shape)
        if reduced is not None:
            verdict = ("summed over those axes it would be right" if np.allclose(reduced, expected, rtol=RTOL, atol=ATOL)
                       else "summed over those axes its values would still be off")
            return (f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape}: you forgot to reduce "
                    f"the broadcast (the forward broadcast {name}, so its gradient must be summed back to its shape "
                    f"with reduce_grad_to_shape); {verdict}")
        if got.shape == tuple(reversed(shape)):
            return f"the gradient for {name} has shape {got.shape}, the transpose of {name}'s shape {shape}"
        return f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape}"
    problem = mismatch(got, expected, RTOL, ATOL, alternatives, batch=batch)
    return f"the gradient for {name} is wrong: {problem}" if problem else None


ROBUSTNESS = {"Mul": 4, "Matmul": 3, "Pow": 2, "Sum": 3, "ReLU": 0, "Softmax": 1, "Log": 0,
              "CrossEntropyLoss": 2, "NLLLoss": 0}  # which case each op is probed on


@pytest.mark.parametrize("op, case", cases(lambda op, index: index == ROBUSTNESS[op]))
def test_robustness(student, op, case, request):
    """Zero upstream gives zero gradients; the same call twice gives the same answer; inputs are not modified."""
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))
    wants = case.wants_grad()
    first, second, zero = (call_op(student, op, inputs, case.options, grad_output=g, needs_input_grad=wants)
                           for g in (upstream, upstream, np.zeros_like(upstream)))
    problems = []
    for index, after in enumerate(first.get("inputs_after") or []):
        if not (isinstance(after, np.ndarray) and after.shape == inputs[index].shape and np.array_equal(after, inputs[index])):
            problems.append(f"{op} modified its input {INPUT_NAMES[op][index]} in place; leave inputs unchanged")
    outputs = [array_of(f"{op}.forward", reply.get("output"), np.shape(output)) for reply in (first, second)]
    if outputs[0].shape != outputs[1].shape or not np.allclose(*outputs, rtol=1e-12, atol=0):
        problems.append(f"{op}.forward gave different answers for the same inputs: does it keep state between calls?")
    for index, name in enumerate(INPUT_NAMES[op]):
        if not wants[index]:
            continue
        once, again, nothing = (array_of(f"{op}.backward (the gradient for {name})",
                                         items_of(f"{op}.backward", reply.get("grads"), len(inputs))[index],
                                         inputs[index].shape)
                                for reply in (first, second, zero))
        if once.shape != again.shape or not np.allclose(once, again, rtol=1e-12, atol=0, equal_nan=True):
            problems.append(f"{op}.backward gave different gradients for {name} on the same call: does it keep state?")
        if np.any(np.isfinite(nothing) & (nothing != 0)):  # nan and inf are the backward check's to diagnose
            problems.append(f"with grad_output all zeros the gradient for {name} should be all zeros: "
                            f"part of it does not depend on grad_output")
    if problems:
        raise CheckFailed("\n".join(problems))


def extreme_inputs(op, rng):
    """Inputs where a naive implementation overflows or takes log(0)."""
    if op == "Softmax":
        return [rng.normal(size=(3, 4)) + 1000.0], {"axis": -1}
    if op == "Log":
        return [np.array([[0.0, 1e-300, 0.5], [2.0, 0.0, 1.0]])], {}
    p = rng.uniform(0.05, 1.0, size=(4, 3))
    target = rng.integers(3, size=4)
    p[np.arange(4), target] = 0.0  # the right class gets probability 0
    return ([p, np.eye(3)[target]] if op == "CrossEntropyLoss" else [p, target]), {}


@pytest.mark.parametrize("op", ["Softmax", "Log", "CrossEntropyLoss", "NLLLoss"])
def test_stability(student, op, request):
    rng = seeded_rng(request.node.nodeid)
    inputs, options = extreme_inputs(op, rng)
    expected = np.asarray(FORWARD[op](*inputs, **options))
    upstream = rng.normal(size=expected.shape)
    wants = (True, op != "NLLLoss") if op in LOSSES else (True,)
    reply = call_op(student, op, inputs, options, grad_output=upstream, needs_input_grad=wants)
    got = array_of(f"{op}.forward", reply.get("output"), expected.shape)
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        raise CheckFailed(f"{op}.forward is not finite on extreme inputs ({'logits + 1000' if op == 'Softmax' else 'a 0 where a log is taken'}): "
                          f"{'subtract the maximum before exp' if op == 'Softmax' else 'clip at EPS before the log'}")
    problem = mismatch(got, expected, FORWARD_RTOL, FORWARD_ATOL, batch=inputs[0].shape[0] if op in LOSSES else None)
    if problem:
        raise CheckFailed(f"{op}.forward on extreme inputs is wrong: {problem}")
    gradient = array_of(f"{op}.backward", items_of(f"{op}.backward", reply.get("grads"), len(inputs))[0], inputs[0].shape)
    if not np.all(np.isfinite(gradient)):
        raise CheckFailed(f"{op}.backward is not finite on extreme inputs: divide by max(x, EPS), not x")
