"""The inputs of the Function checks: for each graded op, the cases (shapes, axes, broadcasts).

Shared by test_functions.py (forward, backward), test_edge_cases.py (robustness, stability) and
test_scale.py (scale, on SCALE_CASES).
Inputs are drawn from a generator seeded by the test's id, away from kinks and clip regions
(ReLU away from 0, positive bases and logs, probabilities ≥ 0.05).
"""
from dataclasses import dataclass, field

import numpy as np
import pytest

from ..rubric import SCALE_SIDE
from .checking import seeded_rng
from .oracle import FORWARD


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
    differentiable: tuple = None      # which inputs have a gradient in SPEC (default: all)
    robustness: bool = False          # the op's case for test_robustness (default: its first case)
    needs_input_grad: tuple = None    # as the course's engine would call the op (default: the differentiable inputs)

    def sample(self, rng):
        arrays = [np.asarray(draw(rng)) for draw in self.inputs]
        return [x if x.dtype.kind in "iu" else x.astype(np.float64) for x in arrays]  # integer inputs stay integer

    def wants_grad(self):
        return self.differentiable or (True,) * len(self.inputs)

    def needs(self):
        return self.needs_input_grad or self.wants_grad()


BROADCASTS = [("3x4 with 4", (3, 4), (4,)), ("3x1 with 1x4", (3, 1), (1, 4)),
              ("scalar with 3x4", (), (3, 4)), ("2x3x4 with 3x1", (2, 3, 4), (3, 1))]

CASES = {
    "Mul": [Case("3x4 * 3x4", [normal(3, 4), normal(3, 4)]), Case("4x4 * 4x4", [normal(4, 4), normal(4, 4)])]
    + [Case(name.replace("with", "*"), [normal(*a), normal(*b)], robustness=index == 2)
       for index, (name, a, b) in enumerate(BROADCASTS)],
    "Matmul": [Case("3x4 @ 4x5", [normal(3, 4), normal(4, 5)]), Case("4x4 @ 4x4", [normal(4, 4), normal(4, 4)]),
               Case("2x3x4 @ 2x4x5 batched", [normal(2, 3, 4), normal(2, 4, 5)]),
               Case("2x3x4 @ 4x5 broadcast batch", [normal(2, 3, 4), normal(4, 5)], robustness=True),
               Case("2x1x3x4 @ 3x4x5 broadcast batch", [normal(2, 1, 3, 4), normal(3, 4, 5)])],
    "Pow": [Case("3x4 ** 3x4", [positive(3, 4), normal(3, 4)]), Case("4x4 ** 4x4", [positive(4, 4), normal(4, 4)])]
    + [Case(name.replace("with", "**"), [positive(*a), normal(*b)], robustness=index == 0)
       for index, (name, a, b) in enumerate(BROADCASTS)],
    "Sum": [Case(f"2x3x4 axis={axis} keepdims={keep}", [normal(2, 3, 4)], {"axis": axis, "keepdims": keep},
                 robustness=(axis, keep) == (0, True))
            for axis in (None, 0, -1, (0, 2)) for keep in (False, True)],
    "ReLU": [Case("3x4", [away_from_zero(3, 4)]), Case("2x3x4", [away_from_zero(2, 3, 4)]), Case("5", [away_from_zero(5)])],
    "Softmax": [Case("3x4 axis=-1", [normal(3, 4)], {"axis": -1}), Case("3x4 axis=0", [normal(3, 4)], {"axis": 0}, robustness=True),
                Case("2x3x4 axis=-1", [normal(2, 3, 4)], {"axis": -1}), Case("4x5 default axis", [normal(4, 5)])],
    "Log": [Case("3x4", [positive(3, 4)]), Case("2x3x4", [positive(2, 3, 4)]), Case("5", [positive(5)])],
    "CrossEntropyLoss": [Case("4x3 one-hot", [probabilities(4, 3), one_hot(4, 3)]),
                         Case("5x10 one-hot", [probabilities(5, 10), one_hot(5, 10)]),
                         Case("4x3 soft targets", [probabilities(4, 3), soft_targets(4, 3)], robustness=True)],
    "NLLLoss": [Case("4x3", [probabilities(4, 3), class_indices(4, 3)], differentiable=(True, False)),
                Case("6x10", [probabilities(6, 10), class_indices(6, 10)], differentiable=(True, False))],
}
LOSSES = ("CrossEntropyLoss", "NLLLoss")

def scale_cases(side=SCALE_SIDE):
    """The scale checks' inputs (test_scale.py), about side² elements each: at the default side of
    1000, 10⁶ elements, where a gradient by numerical differences takes days (one forward per
    element) and a Python loop over elements a second or more; the binary element-wise ops
    broadcast a row, so their backward reduces too. (The project's tests grade with a small side.)"""
    s, m, n = side, side * 4 // 5, side * 3 // 5
    return {
        "Mul": Case(f"{s}x{s} * 1x{s}", [normal(s, s), normal(1, s)]),
        "Matmul": Case(f"{m}x{n} @ {n}x{m}", [normal(m, n), normal(n, m)]),
        "Pow": Case(f"{s}x{s} ** 1x{s}", [positive(s, s), normal(1, s)]),
        "Sum": Case(f"{s}x{s} axis=0", [normal(s, s)], {"axis": 0}),
        "ReLU": Case(f"{s}x{s}", [away_from_zero(s, s)]),
        "Softmax": Case(f"{s}x{s} axis=-1", [normal(s, s)], {"axis": -1}),
        "Log": Case(f"{s}x{s}", [positive(s, s)]),
        "CrossEntropyLoss": Case(f"{s}x{s // 2} soft targets", [probabilities(s, s // 2), soft_targets(s, s // 2)]),
        "NLLLoss": Case(f"{s}x{s}", [probabilities(s, s), class_indices(s, s)], differentiable=(True, False)),
    }


SCALE_CASES = scale_cases()


def with_zeros(*shape):
    """Away from zero, except a third of the entries (at least one) exactly 0: where SPEC fixes ReLU's gradient."""
    def sample(rng):
        x = away_from_zero(*shape)(rng)
        x.flat[rng.permutation(x.size)[:max(1, x.size // 3)]] = 0.0
        return x
    return sample


def integers(low, high, *shape):
    return lambda rng: rng.integers(low, high, size=shape)


def constant(value):
    return lambda rng: np.asarray(value)


# Where bugs hid from the cases above (issue 11): the boundaries SPEC defines, every axis of a 3-D
# input, tuple and negative axes, 1-D and 0-d ends, size-1 dimensions on both sides, and the op
# called as the course's engine calls it (an input that needs no gradient, an integer exponent).
CASES["Mul"] += [Case("1x3x1 * 2x1x4", [normal(1, 3, 1), normal(2, 1, 4)]),
                 Case("3x4 * 0-d, b needs no gradient (x * 2)", [normal(3, 4), constant(2.0)], needs_input_grad=(True, False))]
CASES["Matmul"] += [Case("5x4 @ 4x3, A needs no gradient (MLP3's first layer)", [normal(5, 4), normal(4, 3)],
                         needs_input_grad=(False, True)),
                    Case("3x4 @ 4x5, B needs no gradient", [normal(3, 4), normal(4, 5)], needs_input_grad=(True, False))]
CASES["Pow"] += [Case("3x4 with negatives ** 0-d 2 (x ** 2)", [normal(3, 4), constant(2.0)], needs_input_grad=(True, False)),
                 Case("3x4 with negatives ** integer 3x4", [normal(3, 4), integers(0, 4, 3, 4)], needs_input_grad=(True, False)),
                 Case("2x3 ** 0-d -1 (x / y)", [away_from_zero(2, 3), constant(-1.0)], needs_input_grad=(True, False))]
CASES["Sum"] += [Case(f"2x3x4 axis={axis} keepdims={keep}", [normal(2, 3, 4)], {"axis": axis, "keepdims": keep})
                 for axis in (1, -2, (1, 2), (2, 0), (-1, 0)) for keep in (False, True)]
CASES["Sum"] += [Case("2x3x4 axis=(0, 1, 2)", [normal(2, 3, 4)], {"axis": (0, 1, 2)}),
                 Case("6 axis=0", [normal(6)], {"axis": 0})]
CASES["ReLU"] += [Case("3x4 with exact zeros", [with_zeros(3, 4)]), Case("2x3x4 with exact zeros", [with_zeros(2, 3, 4)])]
CASES["Softmax"] += [Case(f"2x3x4 axis={axis}", [normal(2, 3, 4)], {"axis": axis}) for axis in (0, 1, -2)]
CASES["Softmax"] += [Case("5 (1-D)", [normal(5)]), Case("5 axis=0", [normal(5)], {"axis": 0})]
CASES["CrossEntropyLoss"] += [Case("4x3 one-hot, t needs no gradient (as MLP3 trains)", [probabilities(4, 3), one_hot(4, 3)],
                                   needs_input_grad=(True, False))]


def cases(select=lambda op, case: True):
    return [pytest.param(op, case, id=f"{op}-{case.id}") for op, op_cases in CASES.items()
            for case in op_cases if select(op, case)]


def robustness_case(op, case):
    marked = [c for c in CASES[op] if c.robustness]
    return case is (marked[0] if marked else CASES[op][0])


def draw(op, case, request):
    rng = seeded_rng(request)
    inputs = case.sample(rng)
    if op == "NLLLoss":
        inputs[1] = inputs[1].astype(np.int64)
    output = np.asarray(FORWARD[op](*inputs, **case.options))
    return rng, inputs, output
