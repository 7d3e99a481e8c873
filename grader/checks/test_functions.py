"""Graded checks of every Function (SPEC.md): forward values and gradients on every case of cases.py.

Run by the grader against a submission; run directly (pytest grader/checks) they grade the reference.
"""
import numpy as np
import pytest

from .cases import LOSSES, cases, draw
from .checking import ATOL, FORWARD_ATOL, FORWARD_RTOL, RTOL, CheckFailed, array_of, call_op, items_of, mismatch, sum_to_shape
from .oracle import EPS, INPUT_NAMES, numerical_gradients


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
    if op == "ReLU":
        return [[("it passes the gradient where x is exactly 0; SPEC fixes the gradient there as 0: "
                  "use x > 0, not x >= 0", upstream * (inputs[0] >= 0))]]
    return [[] for _ in inputs]


@pytest.mark.parametrize("op, case", cases())
def test_forward(student, op, case, request):
    _, inputs, expected = draw(op, case, request)
    reply = call_op(student, op, inputs, case.options, needs_input_grad=case.needs())
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
    needs = case.needs()
    wants = tuple(has and needed for has, needed in zip(case.wants_grad(), needs))
    reply = call_op(student, op, inputs, case.options, grad_output=upstream, needs_input_grad=needs)
    grads = items_of(f"{op}.backward", reply.get("grads"), len(inputs))
    expected = numerical_gradients(op, inputs, case.options, upstream, wants)
    with_ones = numerical_gradients(op, inputs, case.options, np.ones_like(upstream), wants)
    mistakes = gradient_mistakes(op, inputs, upstream)
    problems = []
    for index, name in enumerate(INPUT_NAMES[op]):
        if not wants[index]:
            problem = judge_no_gradient(f"{op}.backward", name, grads[index], inputs[index].shape, case.wants_grad()[index])
            problems += [problem] if problem else []
            continue
        others = [expected[i] for i in range(len(inputs)) if i != index and wants[i]]
        problem = judge_gradient(f"{op}.backward", name, grads[index], inputs[index].shape, expected[index],
                                 alternatives=[("it does not use grad_output (it is the gradient for an all-ones "
                                                "grad_output): multiply by grad_output", with_ones[index]),
                                               *[("it is the gradient of the other input", other) for other in others],
                                               ("it is transposed", np.swapaxes(expected[index], -1, -2)
                                                if expected[index].ndim >= 2 else None),
                                               *mistakes[index]],
                                 batch=inputs[0].shape[0] if op in LOSSES else None)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckFailed("\n".join(problems))


def judge_no_gradient(what, name, described, shape, differentiable):
    """An input that gets no gradient: SPEC defines none (NLLLoss's target: None or all zeros), or
    the engine said it needs none (None, or any array of its shape: the engine checks the shape)."""
    if described.get("kind") == "none":
        return None
    try:
        got = array_of(f"{what} (the gradient for {name})", described, shape)
    except CheckFailed as failed:
        return str(failed)
    if got.shape != shape:
        return f"the gradient for {name} has shape {got.shape}, but {name} has shape {shape} (or return None: it needs none)"
    if not differentiable and np.any(got != 0):
        return f"the gradient for {name} should be None (or all zeros): {name} has no gradient"
    return None


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
