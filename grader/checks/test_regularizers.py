"""Graded checks of l2_penalty and l2_grad (SPEC.md): λ Σ‖W‖²_F, and 2λW added to each W.grad."""
import numpy as np
import pytest

from ..sandbox.client import WorkerClient
from .checking import CheckFailed, array_of, ask, mismatch, seeded_rng
from .oracle import l2_penalty

SHAPES = [pytest.param(shapes, id=name, marks=pytest.mark.case(name))
          for name, shapes in [("one 3x4 matrix", [(3, 4)]), ("three matrices", [(4, 5), (5, 3), (3, 2)])]]


def weights_for(request: pytest.FixtureRequest, shapes: list[tuple[int, ...]]) -> tuple[np.random.Generator, list[np.ndarray], float]:
    rng = seeded_rng(request)
    return rng, [rng.normal(size=shape) for shape in shapes], float(rng.uniform(1e-3, 1e-1))


@pytest.mark.group("l2_penalty")
@pytest.mark.kind("value")
@pytest.mark.parametrize("shapes", SHAPES)
def test_value(student: WorkerClient, shapes: list[tuple[int, ...]], request: pytest.FixtureRequest) -> None:
    _, weights, lam = weights_for(request, shapes)
    reply = ask(student, "regularizer", ["regularizers"], name="l2_penalty", weights=weights, grads=[None] * len(weights), lam=lam)
    value = array_of("l2_penalty", reply.get("value"), ())
    if value.size != 1:
        raise CheckFailed(f"l2_penalty returned shape {value.shape}; expected a single number")
    expected = l2_penalty(weights, lam)
    problem = mismatch(value.reshape(()), np.asarray(expected), 1e-7, 1e-12,
                       alternatives=[("it is missing λ", np.asarray(expected / lam)),
                                     ("it uses ‖W‖ (not squared)", np.asarray(lam * sum(np.linalg.norm(w) for w in weights)))])
    if problem:
        raise CheckFailed(f"l2_penalty is wrong: {problem}")
    # strict=False: the worker's list may be short; a weight it did not carry back is not judged.
    changed = [i for i, (w, after) in enumerate(zip(weights, reply.get("data_after") or [], strict=False)) if not np.array_equal(w, after)]
    if changed:
        raise CheckFailed(f"l2_penalty modified weight {changed[0]}: it must only read the weights")


@pytest.mark.group("l2_grad")
@pytest.mark.kind("update")
@pytest.mark.parametrize("shapes", SHAPES)
def test_update(student: WorkerClient, shapes: list[tuple[int, ...]], request: pytest.FixtureRequest) -> None:
    """Adds exactly 2λW to each W.grad (sets it where grad is None) and leaves W itself alone."""
    rng, weights, lam = weights_for(request, shapes)
    grads = [None if i == 0 else rng.normal(size=w.shape) for i, w in enumerate(weights)]
    reply = ask(student, "regularizer", ["regularizers"], name="l2_grad", weights=weights, grads=grads, lam=lam)
    after = reply.get("grads_after") or []
    if len(after) != len(weights):
        raise CheckFailed("l2_grad: the grader could not read the weights' gradients back")
    problems = []
    for index, (w, before, described) in enumerate(zip(weights, grads, after, strict=True)):
        start = "None" if before is None else "an existing gradient"
        got = array_of(f"W{index}.grad after l2_grad (it was {start})", described, ())  # a number too: 2λ‖W‖ is one
        single = got.ndim == 0
        got = np.broadcast_to(got, w.shape) if single else got
        if got.shape != w.shape:
            problems.append(f"W{index}.grad after l2_grad has shape {got.shape}, expected {w.shape}")
            continue
        base = 0 if before is None else before
        expected = base + 2 * lam * w
        problem = mismatch(got, expected, 1e-7, 1e-12, alternatives=[
            ("it adds 2λ‖W‖ (a norm, the handout's slip): the gradient of λ‖W‖² is 2λW",
             base + np.full(w.shape, 2 * lam * np.linalg.norm(w))),
            ("it adds λW: the gradient of λ‖W‖² is 2λW", base + lam * w),
            ("it replaces W.grad instead of adding to it", 2 * lam * w),
            ("it leaves W.grad unchanged", before)])
        if problem:
            number = "it is a single number, not an array shaped like W; " if single else ""
            problems.append(f"W{index}.grad (it was {start}) is wrong after l2_grad: {number}{problem}")
    # strict=False: the worker's list may be short; a weight it did not carry back is not judged.
    changed = [i for i, (w, data) in enumerate(zip(weights, reply.get("data_after") or [], strict=False)) if not np.array_equal(w, data)]
    if changed:
        problems.append(f"l2_grad modified weight W{changed[0]} itself; it must change only W.grad")
    if problems:
        raise CheckFailed("\n".join(problems))
