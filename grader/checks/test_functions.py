"""Graded checks of every Function (SPEC.md): forward values and gradients on each named case of
its OpSpec (opspec.py), against the exact oracle.

Run by the grader against a submission; run directly (pytest grader/checks) they grade the reference.
"""
import numpy as np
import pytest

from ..sandbox.client import WorkerClient
from .checking import CheckFailed, call_op, judge_backward, judge_forward, judge_unchanged
from .opspec import SPECS, Case, cases, draw


@pytest.mark.kind("forward")
@pytest.mark.parametrize("op, case", cases())
def test_forward(student: WorkerClient, op: str, case: Case, request: pytest.FixtureRequest) -> None:
    spec = SPECS[op]
    _, inputs, _ = draw(op, case, request)
    reply = call_op(student, op, inputs, case.options, needs_input_grad=spec.needs(case.needs_input_grad)[0])
    problems = [problem for problem in [judge_forward(spec, inputs, case.options, reply.get("output"))] if problem]
    problems += judge_unchanged(spec, inputs, reply)
    if problems:
        raise CheckFailed("\n".join(problems))


@pytest.mark.kind("backward")
@pytest.mark.parametrize("op, case", cases())
def test_backward(student: WorkerClient, op: str, case: Case, request: pytest.FixtureRequest) -> None:
    spec = SPECS[op]
    rng, inputs, output = draw(op, case, request)
    upstream = rng.normal(size=np.shape(output))  # random: an all-ones upstream hides an ignored grad_output
    sent, wanted = spec.needs(case.needs_input_grad)
    reply = call_op(student, op, inputs, case.options, grad_output=upstream, needs_input_grad=sent)
    problems = judge_backward(spec, inputs, case.options, upstream, wanted, reply.get("grads"))
    problems += judge_unchanged(spec, inputs, reply, upstream)
    if problems:
        raise CheckFailed("\n".join(problems))
