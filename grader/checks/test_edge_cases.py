"""Graded checks of every Function on the edges: robustness (zero upstream, the same call twice,
inputs left unchanged, and the values against the oracle) and stability (logits + 1000, log of 0,
probabilities of 0).

Kept apart from test_functions.py because the rubric may keep these kinds hidden until the due
date: the student handout ships only files whose checks are all visible.
"""
import numpy as np
import pytest

from .cases import LOSSES, cases, draw, robustness_case
from .checking import ATOL, FORWARD_ATOL, FORWARD_RTOL, RTOL, CheckFailed, array_of, call_op, items_of, mismatch, seeded_rng
from .oracle import FORWARD, INPUT_NAMES, SPEC_BACKWARD, numerical_gradients


@pytest.mark.parametrize("op, case", cases(robustness_case))
def test_robustness(student, op, case, request):
    """Zero upstream gives zero gradients; the same call twice gives the same answer; inputs are not
    modified; and the answer is right. The values are what makes this check count against an answer
    table: its inputs (drawn from its own id) are produced by no run of the handout, which does not
    ship this file, and the official grading salts them besides."""
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))
    wants = case.wants_grad()
    first, second, zero = (call_op(student, op, inputs, case.options, grad_output=g, needs_input_grad=wants)
                           for g in (upstream, upstream, np.zeros_like(upstream)))
    problems = []
    for index, after in enumerate(first.get("inputs_after") or []):
        if not unchanged(after, inputs[index]):
            problems.append(f"{op} modified its input {INPUT_NAMES[op][index]} in place; leave inputs unchanged")
    if not unchanged(first.get("grad_output_after"), upstream):
        problems.append(f"{op}.backward changed grad_output in place; leave it unchanged: the course's Add hands the same "
                        f"grad_output array to both of its inputs, so the other branch would get a wrong gradient")
    outputs = [array_of(f"{op}.forward", reply.get("output"), np.shape(output)) for reply in (first, second)]
    if outputs[0].shape != outputs[1].shape or not np.allclose(*outputs, rtol=1e-12, atol=0):
        problems.append(f"{op}.forward gave different answers for the same inputs: does it keep state between calls?")
    wrong = (f"it has shape {outputs[0].shape}, expected {output.shape}" if outputs[0].shape != output.shape
             else mismatch(outputs[0], output, FORWARD_RTOL, FORWARD_ATOL))
    if wrong:
        problems.append(f"{op}.forward is wrong on this check's inputs: {wrong}")
    expected = numerical_gradients(op, inputs, case.options, upstream, wants)
    for index, name in enumerate(INPUT_NAMES[op]):
        if not wants[index]:
            continue
        once, again, nothing = (array_of(f"{op}.backward (the gradient for {name})",
                                         items_of(f"{op}.backward", reply.get("grads"), len(inputs))[index],
                                         inputs[index].shape)
                                for reply in (first, second, zero))
        if once.shape != again.shape or not np.allclose(once, again, rtol=1e-12, atol=0, equal_nan=True):
            problems.append(f"{op}.backward gave different gradients for {name} on the same call: does it keep state?")
        wrong = (f"it has shape {once.shape}, expected {inputs[index].shape}" if once.shape != inputs[index].shape
                 else mismatch(once, expected[index], RTOL, ATOL))
        if wrong:
            problems.append(f"the gradient for {name} is wrong on this check's inputs: {wrong}")
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
    rng = seeded_rng(request)
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
    # SPEC's formula, not the forward's derivative: at the clip they differ (g / EPS against 0).
    problem = mismatch(gradient, SPEC_BACKWARD[op](upstream, *inputs, **options), RTOL, ATOL)
    if problem:
        raise CheckFailed(f"{op}.backward on extreme inputs is not SPEC's formula: {problem}"
                          + ("" if op == "Softmax" else "; where the input is clipped at EPS, SPEC's gradient divides by EPS"))


def unchanged(after, before):
    """Is the array the worker sent back the one it was given, to the bit?"""
    return isinstance(after, np.ndarray) and after.shape == np.shape(before) and np.array_equal(after, before)
