"""Graded check of every Function over its whole domain: a bounded search for a counterexample.

The named cases (test_functions.py) try each corner of the domain SPEC.md allows; this check draws
inputs from all of it at once — every shape and broadcasting pair, every axis form, values at and
around every kink and clip, float32 and float64, every needs_input_grad pattern the engine or a
hand-made Context() produces — from the op's OpSpec.domain, with Hypothesis: SEARCH_EXAMPLES
draws, derandomized from the check's id and the rubric's salt (the same draws for every student
of a course). An input the op gets wrong is shrunk to the smallest Hypothesis can find, and the
feedback shows it whole, with what SPEC expects there.
"""
import contextlib
import random
from collections.abc import Iterable
from concurrent.futures import Future

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import Flaky, NoSuchExample

from ..results import Cause, Wrong
from ..rubric import Rubric
from ..sandbox.client import WorkerClient
from .checking import CheckFailed, call_op, judge_backward, judge_forward, judge_unchanged, rng_for
from .opspec import HAND_MADE, SPECS, Draw, OpSpec

SEARCH_EXAMPLES = 30   # draws per op; what they cost a grading: docs/grading.md, "The search"
SEARCH = settings(max_examples=SEARCH_EXAMPLES, phases=[Phase.generate, Phase.shrink], database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


def problems_on(student: WorkerClient, spec: OpSpec, drawn: Draw, diagnose: bool = False) -> tuple[list[str], Cause | None]:
    """What is wrong with the op's answer on one drawn input ([] when right), and the cause of the
    call's failure when it gave no answer (None when it answered)."""
    sent, wanted = spec.needs(drawn.needs)
    try:
        reply = call_op(student, spec.name, list(drawn.inputs), drawn.options, grad_output=drawn.upstream,
                        needs_input_grad=sent, check="search")
    except CheckFailed as failed:
        if failed.status != "failed":
            raise  # the worker stopped or timed out: the search ends there
        return [str(failed)], failed.cause
    problems = judge_unchanged(spec, drawn.inputs, reply, drawn.upstream)
    for judge in (lambda: [judge_forward(spec, drawn.inputs, drawn.options, reply.get("output"))],
                  lambda: judge_backward(spec, drawn.inputs, drawn.options, drawn.upstream, wanted, reply.get("grads"),
                                         alternatives=diagnose)):
        try:
            problems += [problem for problem in judge() if problem]
        except CheckFailed as failed:  # what came back could not be read at all: a wrong answer too
            problems.append(str(failed))
    return problems, None


def seed_of(op: str, salt: str) -> int:
    """The search's seed: from the check's id and the salt, as every check's inputs."""
    return int(rng_for(f"test_search.py::test_search[{op}]", salt).integers(1 << 62))


def draws(op: str, salt: str) -> list[Draw]:
    """The draws the search makes of a correct submission (one that fails none of them), in order:
    Hypothesis's generation, given the same seed, depends on nothing but whether a draw failed."""
    return drawn_from(SPECS[op], seed_of(op, salt))


def drawn_from(spec: OpSpec, seed: int, count: int = SEARCH_EXAMPLES) -> list[Draw]:
    """The first `count` draws of the op's domain from `seed`, as the search makes them (also what
    the project's tests and benchmarks/tolerances.py sample the domain with)."""
    drawn = []

    def keep(draw):
        drawn.append(draw)
        return False

    with np.errstate(all="ignore"), contextlib.suppress(NoSuchExample):
        find(spec.strategy(), keep, settings=settings(SEARCH, max_examples=count), random=random.Random(seed))
    return drawn


def draws_ahead(salt: str, ops: Iterable[str]) -> dict[str, list[Draw]]:
    """Each op's draws, for computing while MNIST trains (plugin.search_ahead)."""
    return {op: draws(op, salt) for op in ops}


@pytest.mark.kind("search")
@pytest.mark.parametrize("op", [pytest.param(op, id=op, marks=pytest.mark.case(op)) for op, spec in SPECS.items() if spec.domain])
def test_search(student: WorkerClient, rubric: Rubric, op: str, search_ahead: Future[dict[str, list[Draw]]] | None) -> None:
    spec = SPECS[op]
    ahead = search_ahead.result() if search_ahead is not None and search_ahead.exception() is None else {}
    failing = next((drawn for drawn in ahead.get(op) or draws(op, rubric.salt) if problems_on(student, spec, drawn)[0]), None)
    if failing is None:
        return  # right on every draw: the search would draw these very inputs and find nothing
    stopped: list[CheckFailed] = []

    def fails(drawn):
        if stopped:
            return False
        try:
            return bool(problems_on(student, spec, drawn)[0])
        except CheckFailed as failed:
            stopped.append(failed)
            return False

    try:
        smallest = find(spec.strategy(), fails, settings=SEARCH, random=random.Random(seed_of(op, rubric.salt)))
    except (NoSuchExample, Flaky):  # right this time on what it got wrong before: the draw that failed is the answer
        smallest = failing
    if stopped:
        raise stopped[0]
    problems, cause = problems_on(student, spec, smallest, diagnose=True)
    how = "a Context() made by hand" if smallest.needs == HAND_MADE else f"needs_input_grad = {tuple(smallest.needs)}"
    raise CheckFailed(f"{op} is wrong somewhere in SPEC's domain; the smallest failing input found ({how}):\n"
                      f"{smallest.describe(spec.input_names)}\n" + "\n".join(problems or ["(it passed when called again: does it keep state?)"]),
                      cause=cause or Wrong(problems[0].partition("\n")[0] if problems else "it passed when called again"))
