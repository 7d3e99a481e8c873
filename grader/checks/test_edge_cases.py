"""Graded checks of every Function on the edges: robustness (zero upstream, the same call twice,
inputs left unchanged, and the values against the oracle) and stability (each op's stability
cases in opspec.py: logits ± 1000 and rows offset apart, log of 0, of EPS and around it, of a
negative, probabilities of 0 — every output and every gradient compared).

Kept apart from test_functions.py because the rubric may keep these kinds hidden until the due
date: the student handout ships only files whose checks are all visible.
"""
import numpy as np
import pytest

from ..sandbox.client import WorkerClient
from .checking import CheckFailed, array_of, call_op, items_of, judge_backward, judge_forward, judge_unchanged
from .opspec import SPECS, Case, cases, draw, robustness_case


@pytest.mark.kind("robustness")
@pytest.mark.parametrize("op, case", cases(robustness_case))
def test_robustness(student: WorkerClient, op: str, case: Case, request: pytest.FixtureRequest) -> None:
    """Zero upstream gives zero gradients; the same call twice gives the same answer; inputs are not
    modified; and the answer is right. The values are what makes this check count against an answer
    table: its inputs (drawn from its own id) are produced by no run of the handout, which does not
    ship this file, and the official grading salts them besides."""
    spec = SPECS[op]
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))
    sent, wanted = spec.needs(case.needs_input_grad)
    first, second, zero = (call_op(student, op, inputs, case.options, grad_output=g, needs_input_grad=sent)
                           for g in (upstream, upstream, np.zeros_like(upstream)))
    problems = judge_unchanged(spec, inputs, first, upstream)
    outputs = [array_of(f"{op}.forward", reply.get("output"), np.shape(output)) for reply in (first, second)]
    if outputs[0].shape != outputs[1].shape or not np.allclose(outputs[0], outputs[1], rtol=1e-12, atol=0):
        problems.append(f"{op}.forward gave different answers for the same inputs: does it keep state between calls?")
    wrong = judge_forward(spec, inputs, case.options, first.get("output"), what=f"{op}.forward on this check's inputs")
    problems += [wrong] if wrong else []
    problems += [f"on this check's inputs, {problem}"
                 for problem in judge_backward(spec, inputs, case.options, upstream, wanted, first.get("grads"), alternatives=False)]
    for index, name in enumerate(spec.input_names):
        if not (wanted[index] and spec.gradient_inputs()[index]):
            continue
        once, again, nothing = (items_of(f"{op}.backward", reply.get("grads"), len(inputs))[index] for reply in (first, second, zero))
        if any(not isinstance(g, dict) or g.get("kind") == "none" for g in (once, again, nothing)):
            continue  # judge_backward said what is missing
        once, again, nothing = (array_of(f"{op}.backward (the gradient for {name})", g, inputs[index].shape) for g in (once, again, nothing))
        if once.shape != again.shape or not np.allclose(once, again, rtol=1e-12, atol=0, equal_nan=True):
            problems.append(f"{op}.backward gave different gradients for {name} on the same call: does it keep state?")
        if np.any(np.isfinite(nothing) & (nothing != 0)):  # nan and inf are the backward check's to diagnose
            problems.append(f"with grad_output all zeros the gradient for {name} should be all zeros: "
                            f"part of it does not depend on grad_output")
    if problems:
        raise CheckFailed("\n".join(problems))


ADVICE = {"Softmax": "subtract the maximum along the axis before exp", "Log": "clip at EPS: log(max(x, EPS)), g / max(x, EPS)",
          "CrossEntropyLoss": "clip p at EPS before the log and in the division", "NLLLoss": "clip p at EPS before the log and in the division"}


@pytest.mark.kind("stability")
@pytest.mark.parametrize("op, case", cases(table="stability"))
def test_stability(student: WorkerClient, op: str, case: Case, request: pytest.FixtureRequest) -> None:
    """SPEC's values where a naive formula overflows, takes log(0) or divides by 0: the forward and
    every gradient SPEC defines, finite and equal to SPEC's formulas (at a clip, these are not the
    derivative of the forward, which is flat there: SPEC's g / EPS, not 0)."""
    spec = SPECS[op]
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))
    sent, wanted = spec.needs(case.needs_input_grad)
    reply = call_op(student, op, inputs, case.options, grad_output=upstream, needs_input_grad=sent)
    problems = [problem for problem in [judge_forward(spec, inputs, case.options, reply.get("output"))] if problem]
    problems += judge_backward(spec, inputs, case.options, upstream, wanted, reply.get("grads"), alternatives=False)
    problems += judge_unchanged(spec, inputs, reply, upstream)
    if problems:
        raise CheckFailed(f"{op} on extreme inputs ({case.id}): " + "\n".join(problems) + f"\n({ADVICE[op]})")

