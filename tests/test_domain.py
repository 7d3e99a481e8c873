"""The declarations behind the checks (grader/checks/opspec.py): the exact oracle is the derivative
of SPEC's forward, the search's domain reaches every dimension docs/SPEC.md names and nothing
outside it, and the tolerance is measured in the precision the answer was computed in."""

import numpy as np
import pytest

from grader.checks.checking import ROUNDINGS, precision, tolerance
from grader.checks.opspec import HAND_MADE, SPECS, Draw, representable
from grader.checks.oracle import central_differences
from grader.checks.test_search import drawn_from

DRAWS = 300


@pytest.fixture(scope="module")
def draws():
    return {op: drawn_from(SPECS[op], seed=7, count=DRAWS) for op in SPECS}


@pytest.mark.parametrize("op", list(SPECS))
def test_the_exact_gradients_are_the_derivative_of_the_forward_away_from_kinks(op, draws):
    """Closed forms against central differences of the oracle's own forward, on float64 draws of
    the whole domain, where the forward is smooth (away from ReLU's kink and the clips at EPS)."""
    spec, checked = SPECS[op], 0
    for draw in draws[op][:60]:
        inputs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in draw.inputs]
        kink = np.min(np.abs(inputs[0]) if op == "ReLU" else inputs[0], initial=1.0) < 1e-3  # ReLU's 0, the clips at EPS
        if any(x.dtype == np.float32 for x in draw.inputs) or (op in ("ReLU", "Log", "CrossEntropyLoss", "NLLLoss") and kink):
            continue
        if op == "Softmax" and np.max(np.abs(inputs[0])) > 10:
            continue  # logits ± 1000: a difference of 1e-6 there is below the resolution of the logits
        exact = spec.backward(draw.upstream, *inputs, **draw.options)
        wanted = [grad is not None and x.dtype.kind == "f" for grad, x in zip(exact, inputs, strict=True)]
        with np.errstate(all="ignore"):
            numerical = central_differences(lambda *xs, options=draw.options: spec.forward(*xs, **options), inputs, draw.upstream, wanted)
        for grad, approximate in zip(exact, numerical, strict=True):
            if approximate is not None:
                assert np.allclose(grad, approximate, rtol=1e-5, atol=1e-6), (op, draw)
                checked += 1
    assert checked >= 10, f"only {checked} gradients of {op} checked"


def test_the_search_reaches_every_dimension_of_the_domain(draws):
    """Every dimension docs/SPEC.md's domain section names is drawn within DRAWS draws."""
    def seen(op, property):
        return any(property(draw) for draw in draws[op])

    for op in SPECS:
        assert seen(op, lambda d: any(x.dtype == np.float32 for x in d.inputs)), f"{op}: no float32 input"
        assert seen(op, lambda d: d.needs == HAND_MADE), f"{op}: no hand-made Context"
    for op in ("Mul", "Pow"):
        assert seen(op, lambda d: d.inputs[0].ndim == 0 and d.inputs[1].ndim > 0), f"{op}: no 0-d first operand"
        assert seen(op, lambda d: d.inputs[1].ndim == 0 and d.inputs[0].ndim > 0), f"{op}: no 0-d second operand"
        assert seen(op, lambda d: any(1 in x.shape for x in d.inputs) and d.inputs[0].shape != d.inputs[1].shape)
    for pattern in [(True, True), (True, False), (False, True)]:
        assert seen("Mul", lambda d, pattern=pattern: d.needs == pattern) and seen("Matmul", lambda d, pattern=pattern: d.needs == pattern)
    assert seen("Matmul", lambda d: d.inputs[0].ndim != d.inputs[1].ndim), "no broadcast batch"
    assert seen("Matmul", lambda d: d.inputs[0].ndim == d.inputs[1].ndim > 2 and d.inputs[0].shape[:-2] != d.inputs[1].shape[:-2])
    assert seen("Pow", lambda d: np.any(d.inputs[0] == 0)), "no zero base"
    assert seen("Pow", lambda d: np.any(d.inputs[0] < 0)), "no negative base"
    assert seen("Pow", lambda d: d.inputs[1].dtype.kind == "i"), "no integer exponent"
    for form in (lambda a: a is None, lambda a: isinstance(a, int) and a < 0, lambda a: isinstance(a, int) and a >= 0,
                 lambda a: isinstance(a, tuple) and len(a) > 1 and list(a) != sorted(a), lambda a: isinstance(a, tuple) and min(a) < 0):
        for keep in (False, True):
            assert seen("Sum", lambda d, form=form, keep=keep: form(d.options["axis"]) and d.options["keepdims"] == keep)
    assert seen("Sum", lambda d: d.inputs[0].ndim == 0)
    assert seen("ReLU", lambda d: np.any(d.inputs[0] == 0)) and seen("ReLU", lambda d: d.inputs[0].ndim == 0)
    assert seen("Softmax", lambda d: "axis" not in d.options) and seen("Softmax", lambda d: d.options.get("axis", -1) >= 0)
    assert seen("Softmax", lambda d: np.max(np.abs(d.inputs[0])) > 500), "no logits at ±1000"
    assert seen("Log", lambda d: np.any(d.inputs[0] < 0)) and seen("Log", lambda d: np.any(d.inputs[0] == 0))
    assert seen("Log", lambda d: np.any((d.inputs[0] > 0) & (d.inputs[0] < 1e-11))), "nothing around EPS"
    for op in ("CrossEntropyLoss", "NLLLoss"):
        assert seen(op, lambda d: d.inputs[0].shape[0] == 1) and seen(op, lambda d: d.inputs[0].shape[1] == 1)
        assert seen(op, lambda d: np.any(d.inputs[0] == 0))
    assert seen("NLLLoss", lambda d: d.inputs[1].dtype == np.int32)
    assert seen("CrossEntropyLoss", lambda d: d.needs in ((True, True), HAND_MADE)), "dT never compared"


def test_the_search_draws_nothing_outside_the_domain(draws):
    """What SPEC.md's domain section leaves out is never drawn: axis=(), 1-D matrices, a negative
    base with a fractional exponent, a zero base with an exponent below 1, Softmax on a 0-d array."""
    assert all(draw.options["axis"] != () for draw in draws["Sum"])
    assert all(min(x.ndim for x in draw.inputs) >= 2 for draw in draws["Matmul"])
    for draw in draws["Pow"]:
        a, b = np.broadcast_arrays(*draw.inputs)
        assert np.all((a > 0) | (b == np.round(b))) and np.all((a != 0) | (b >= 1))
        assert draw.needs in ((True, False), HAND_MADE) or np.all(draw.inputs[0] > 0), "dB wanted where a ≤ 0"
    assert all(draw.inputs[0].ndim >= 1 for draw in draws["Softmax"])
    for op, drawn in draws.items():  # nor an input whose exact answer its float type cannot hold (1e-20 ** -2 in float32)
        assert all(representable(SPECS[op], draw) for draw in drawn), op
    tiny = Draw((np.array([1e-20], dtype=np.float32), np.array(-2.0, dtype=np.float32)), {}, np.ones(1), (True, True))
    assert not representable(SPECS["Pow"], tiny) and representable(SPECS["Pow"], Draw(tuple(x.astype(np.float64) for x in tiny.inputs),
                                                                                         {}, np.ones(1), (True, True)))


def test_the_tolerance_is_that_of_the_least_precise_float_and_never_below_float32():
    x64, x32 = np.ones(3), np.ones(3, dtype=np.float32)
    assert precision([x64], {"array": x64}).dtype == np.float64
    assert precision([x32], {"array": x64}).dtype == np.float32        # float32 inputs
    assert precision([x64], {"array": x32}).dtype == np.float32        # a float32 answer
    assert precision([x64], {"array": x64.astype(np.float16)}).dtype == np.float32  # half precision: judged as float32
    assert precision([x64], {"array": np.ones(3, dtype=bool)}).dtype == np.float64
    size = np.array([1.0, 0.0])
    assert np.allclose(tolerance(size, [x64], {"array": x64}), [ROUNDINGS * 2.0 ** -52 + 2.0 ** -1022, 2.0 ** -1022])


@pytest.mark.parametrize("op", ["Mul", "Matmul", "Pow", "Sum"])
def test_the_handouts_central_differences_agree_with_the_closed_forms_within_its_tolerance(op, draws, monkeypatch):
    """The student handout ships without closed_forms.py: its oracle takes central differences and
    its tolerance loosens by APPROXIMATE_RTOL and APPROXIMATE_ATOL. On every draw of the domain, the
    two oracles agree within that, so a practice run judges a correct submission as the course does."""
    from grader.checks import checking, oracle

    spec = SPECS[op]
    for draw in draws[op][:60]:
        inputs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in draw.inputs]
        exact = spec.backward(draw.upstream, *inputs, **draw.options)
        sizes = spec.magnitudes(draw.upstream, inputs, draw.options)[1]
        with monkeypatch.context() as patched:
            patched.setattr(oracle, "closed_forms", None)
            patched.setattr(oracle, "EXACT", False)
            approximate = spec.backward(draw.upstream, *inputs, **draw.options)
            for got, want, size in zip(approximate, exact, sizes, strict=True):
                assert (got is None) == (want is None)
                if want is not None:
                    assert np.all(np.abs(got - want) <= checking.tolerance(size, draw.inputs, {"array": got})), (op, draw)
