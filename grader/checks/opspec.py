"""One declaration per graded op (OpSpec): everything the checks know about it.

Its math (the oracle's closed forms), its inputs' names and which of them SPEC gives a gradient,
its domain (the Hypothesis strategy the search draws from: every shape, option, value region,
dtype and needs_input_grad pattern SPEC.md allows), its named cases (forward and backward, one
per corner of that domain, for partial credit), its stability cases, its scale case, its graph
recipe, and the mistakes its feedback can name. Every check file derives from SPECS; adding an op
is its OpSpec here (docs/grading.md, "Adding a graded op").

Named cases draw their values from a generator seeded by the check's id and the rubric's salt
(checking.seeded_rng): the same inputs for every student of a course.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import ArrayLike

from ..rubric import SCALE_SIDE
from . import oracle
from .checking import seeded_rng, sum_to_shape
from .oracle import EPS

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet

Sampler = Callable[[np.random.Generator], np.ndarray]  # a named case's draw of one input
Fill = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]  # a way of the domain to fill an array of a shape
Leaves = Callable[[np.random.Generator], list[np.ndarray]]  # a graph's leaves, or a named case's inputs, all at once
Magnitudes = tuple[np.ndarray, Sequence[np.ndarray | None]]  # (of the output, of each gradient)
Mistakes = list[list[tuple[str, np.ndarray | None]]]  # for each input, (diagnosis, its wrong gradient) pairs
HAND_MADE = "Context()"  # needs_input_grad of a Context made by hand (a student's own test): every input needs a gradient


# -- samplers of named cases: rng → array -------------------------------------------------------
def normal(*shape: int) -> Sampler:
    return lambda rng: rng.normal(size=shape)


def away_from_zero(*shape: int) -> Sampler:
    return lambda rng: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)


def positive(*shape: int) -> Sampler:
    return lambda rng: rng.uniform(0.3, 2.0, size=shape)


def probabilities(*shape: int) -> Sampler:
    return lambda rng: rng.uniform(0.05, 1.0, size=shape)


def one_hot(n: int, classes: int) -> Sampler:
    return lambda rng: np.eye(classes)[rng.integers(classes, size=n)]


def soft_targets(n: int, classes: int) -> Sampler:
    return lambda rng: rng.dirichlet(np.ones(classes), size=n)


def class_indices(n: int, classes: int, dtype: type = np.int64) -> Sampler:
    return lambda rng: rng.integers(classes, size=n).astype(dtype)


def integers(low: int, high: int, *shape: int) -> Sampler:
    return lambda rng: rng.integers(low, high, size=shape)


def constant(value: float) -> Sampler:
    return lambda rng: np.asarray(value, dtype=np.float64)


def with_values(sample: Sampler, values: Sequence[float]) -> Sampler:
    """sample's draw with about a third of its entries (at least one) set to values from `values`."""
    def draw(rng):
        x = np.array(sample(rng), dtype=np.float64)
        places = rng.permutation(x.size)[:max(1, x.size // 3)]
        x.flat[places] = rng.choice(np.asarray(values, dtype=np.float64), size=len(places))
        return x.reshape(np.shape(x))
    return draw


def right_class_at(value: float, n: int, classes: int, indices: bool) -> Leaves:
    """Probabilities with each row's target class at exactly `value`, and the targets (indices or one-hot)."""
    def draw(rng):
        p, target = probabilities(n, classes)(rng), rng.integers(classes, size=n)
        p[np.arange(n), target] = value
        return [p, target if indices else np.eye(classes)[target]]
    return draw


def shifted_rows(sample: Sampler, offsets: Sequence[float], axis: int) -> Sampler:
    """sample's draw plus a different large offset for each slice along every axis but `axis`."""
    def draw(rng):
        x = sample(rng)
        shape = list(x.shape)
        shape[axis] = 1
        return x + rng.choice(offsets, size=shape)
    return draw


@dataclass
class Case:
    id: str
    inputs: list[Sampler] | Leaves  # one sampler per positional input, or one sampler of them all
    options: dict[str, Any] = field(default_factory=dict)
    robustness: bool = False          # the op's case for test_robustness (default: its first case)
    needs_input_grad: tuple[bool, ...] | str | None = None  # a tuple as the engine sets it, HAND_MADE, or None: the inputs SPEC differentiates
    dtype: type[np.floating[Any]] = np.float64  # of the float inputs (MLP3 trains in float32)

    def sample(self, rng: np.random.Generator) -> list[np.ndarray]:
        arrays = [np.asarray(x) for x in (self.inputs(rng) if callable(self.inputs) else [draw(rng) for draw in self.inputs])]
        return [x if x.dtype.kind in "iu" else x.astype(self.dtype) for x in arrays]  # integer inputs stay integer


@dataclass(frozen=True)
class OpSpec:
    name: str
    input_names: tuple[str, ...]
    forward: Callable[..., np.ndarray]  # the oracle's forward, float64
    backward: Callable[..., Sequence[np.ndarray | None]]  # (g, *inputs, **options) → one exact gradient per input (None: not compared)
    size: Callable[..., Magnitudes] | None = None  # (g, *inputs, **options) → (output, gradients) magnitudes; None: multilinear (see magnitudes)
    differentiable: tuple[bool, ...] | None = None  # which inputs SPEC gives a gradient (default: all)
    domain: Callable[[], st.SearchStrategy["Draw"]] | None = None  # () → Hypothesis strategy of Draw: the whole domain, for the search
    cases: list[Case] = field(default_factory=list)
    stability: list[Case] = field(default_factory=list)
    scale: Callable[[int], Case] | None = None  # side → Case, about side² elements
    linear_inputs: tuple[int, ...] = ()  # inputs the forward is linear in (the scale check's exact derivatives)
    # (leaves from an rng, which leaves need a gradient, steps, options of f or one per call): test_graph
    graph: tuple[Leaves, tuple[bool, ...], list[dict[str, Any]], dict[str, Any] | list[dict[str, Any]]] | None = None
    forward_mistakes: Callable[[list[np.ndarray]], list[tuple[str, np.ndarray]]] = lambda inputs: []
    gradient_mistakes: Callable[[list[np.ndarray], np.ndarray], Mistakes] | None = None  # (inputs, upstream) → Mistakes
    is_loss: bool = False             # a mean over the batch: the feedback names a factor of N

    def gradient_inputs(self) -> tuple[bool, ...]:
        return self.differentiable or (True,) * len(self.input_names)

    def needs(self, case_needs: tuple[bool, ...] | str | None) -> tuple[tuple[bool, ...] | None, tuple[bool, ...]]:
        """The needs_input_grad a call sends (None: a hand-made Context) and the inputs whose gradient the engine wants."""
        if isinstance(case_needs, str):  # HAND_MADE
            return None, (True,) * len(self.input_names)
        needs = tuple(case_needs or self.gradient_inputs())
        return needs, needs

    def strategy(self) -> st.SearchStrategy["Draw"]:
        """The domain's draws, less those whose exact answer the inputs' float type cannot hold (a base
        of 1e-20 to the power −2 in float32): there no float32 code can be right."""
        assert self.domain is not None, f"{self.name} has no domain to search"
        return self.domain().filter(lambda drawn: representable(self, drawn))

    def magnitudes(self, upstream: np.ndarray, inputs: Sequence[np.ndarray], options: dict[str, Any]) -> Magnitudes:
        """The size of the terms behind each output element and each gradient element: the oracle on
        absolute values for the multilinear ops, the op's own `size` for the others."""
        if self.size:
            return self.size(upstream, *inputs, **options)
        absolute = [np.abs(np.asarray(x, dtype=np.float64)) for x in inputs]
        return np.abs(self.forward(*absolute, **options)), self.backward(np.abs(upstream), *absolute, **options)


@dataclass(frozen=True)
class Draw:
    """One input of the domain, as the search draws it: the op's inputs, options, upstream
    gradient and needs_input_grad (a tuple, or HAND_MADE)."""
    inputs: tuple[np.ndarray, ...]
    options: dict[str, Any]
    upstream: np.ndarray
    needs: tuple[bool, ...] | str

    def describe(self, names: Sequence[str]) -> str:
        lines = []
        for name, x in zip(names, self.inputs, strict=True):
            shown = np.array2string(x, precision=6, separator=", ", threshold=24) if x.size <= 24 else "…"
            lines.append(f"{name.split(' ')[0]} = {shown} (shape {x.shape}, {x.dtype})")
        if self.options:
            lines.append(", ".join(f"{key}={value!r}" for key, value in self.options.items()))
        lines.append(f"grad_output = {np.array2string(self.upstream, precision=6, separator=', ', threshold=24)}")
        lines.append("ctx = Context() made by hand (every input needs a gradient)" if self.needs == HAND_MADE
                     else f"ctx.needs_input_grad = {tuple(self.needs)}")
        return "\n".join("    " + line for line in lines)


def representable(spec: OpSpec, drawn: Draw) -> bool:
    """Are the exact output and gradients of a draw finite in the least precise float type of its inputs?"""
    largest = min((float(np.finfo(x.dtype).max) for x in drawn.inputs if x.dtype.kind == "f"), default=float(np.finfo(np.float64).max))
    exact = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in drawn.inputs]
    with np.errstate(all="ignore"):
        values = [spec.forward(*exact, **drawn.options), *spec.backward(drawn.upstream, *exact, **drawn.options)]
    return all(np.all(np.abs(np.asarray(v, dtype=np.float64)) <= largest) for v in values if v is not None)


# -- the domain, as Hypothesis strategies ----------------------------------------------------------
# Hypothesis draws the structure of an input — shapes, options, dtype, needs_input_grad, and for
# each array a region of values and a seed — and numpy fills the array from the seed: a draw costs
# a dozen choices rather than one per element, and shrinking still goes to the smallest shapes,
# the simplest region (each list's first: small integers) and seed 0.
DTYPES = st.sampled_from([np.float64, np.float32])


def region(low: float, high: float, edges: ArrayLike, simple: tuple[int, int] = (-2, 3)) -> st.SearchStrategy[Fill]:
    """Ways to fill an array, simplest first: small integers, any float in [low, high], the op's
    edge points (its kinks and clips), and floats with a third of them at edge points."""
    edges = np.asarray(edges, dtype=np.float64)

    def mixed(rng, shape):
        x = rng.uniform(low, high, size=shape)
        at = rng.random(size=shape) < 1 / 3
        return np.where(at, rng.choice(edges, size=shape), x)
    return st.sampled_from([lambda rng, shape: rng.integers(*simple, size=shape).astype(np.float64),
                            lambda rng, shape: rng.uniform(low, high, size=shape),
                            lambda rng, shape: rng.choice(edges, size=shape), mixed])


def fills(*ways: Fill) -> st.SearchStrategy[Fill]:
    return st.sampled_from(ways)


SEEDS = st.integers(0, 2 ** 32 - 1)


REALS = region(-3.0, 3.0, (0.0, 1.0, -1.0, 0.5))
UPSTREAM = region(-2.0, 2.0, (1.0, -1.0, 0.5), simple=(1, 3))


def arrays(draw: st.DrawFn, dtype: type, shape: Sequence[int], fills: st.SearchStrategy[Fill] = REALS) -> np.ndarray:
    fill = draw(fills)
    rng = np.random.default_rng(draw(SEEDS))
    return np.asarray(fill(rng, tuple(shape))).astype(dtype)


def upstream_for(draw: st.DrawFn, shape: Sequence[int]) -> np.ndarray:
    return arrays(draw, np.float64, shape, UPSTREAM)


NEEDS: dict[int | str, st.SearchStrategy[tuple[bool, ...] | str]] = {
    1: st.sampled_from([(True,), HAND_MADE]), 2: st.sampled_from([(True, True), (True, False), (False, True), HAND_MADE]),
    "first only": st.sampled_from([(True, False), HAND_MADE])}


def needs_of(draw: st.DrawFn, which: int | str) -> tuple[bool, ...] | str:
    return draw(NEEDS[which])


BROADCASTING = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3)
BATCHES = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3)
SIDES = st.integers(1, 4)
NO_OFFSET = st.just(0.0)
POSITIVE_BASES = region(0.05, 3.0, (1.0, 2.0, 0.5, 0.05, 1e-20, 1e-8, 50.0), simple=(1, 4))
EXPONENTS = region(-3.0, 3.0, (0.0, 1.0, 2.0, -1.0, 0.5))
NONZERO_BASES = fills(lambda rng, shape: rng.choice([1.0, -1.0, 2.0, -2.0], size=shape),
                      lambda rng, shape: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 3.0, size=shape))
ZERO_BASES = fills(lambda rng, shape: rng.integers(-2, 3, size=shape).astype(np.float64),
                   lambda rng, shape: np.where(rng.random(size=shape) < 0.4, 0.0, rng.uniform(-3.0, 3.0, size=shape)))
INTEGER_EXPONENTS = {low: fills(lambda rng, shape, low=low: rng.integers(low, 4, size=shape))  # type: ignore[misc]  # mypy infers no lambda with a default
                     for low in (-3, 1)}
BASE_KINDS = st.sampled_from(["positive", "any sign, integer exponents", "zeros, exponents from 1"])


@st.composite
def elementwise_binary(draw: st.DrawFn, pow_domain: bool = False) -> Draw:
    """Mul's domain, or Pow's: any broadcasting pair of shapes, 0-d operands included."""
    shapes = draw(BROADCASTING)
    dtype = draw(DTYPES)
    (shape_a, shape_b), out = shapes.input_shapes, shapes.result_shape
    if not pow_domain:
        return Draw((arrays(draw, dtype, shape_a), arrays(draw, dtype, shape_b)), {}, upstream_for(draw, out), needs_of(draw, 2))
    base = draw(BASE_KINDS)
    if base == "positive":  # every pattern; dB is compared
        a, b = arrays(draw, dtype, shape_a, POSITIVE_BASES), arrays(draw, dtype, shape_b, EXPONENTS)
        return Draw((a, b), {}, upstream_for(draw, out), needs_of(draw, 2))
    low = 1 if base.startswith("zeros") else -3
    b = arrays(draw, draw(st.sampled_from([dtype, np.int64])), shape_b, INTEGER_EXPONENTS[low])
    a = arrays(draw, dtype, shape_a, ZERO_BASES if low == 1 else NONZERO_BASES)
    return Draw((a, b), {}, upstream_for(draw, out), needs_of(draw, "first only"))  # dB: where a > 0 only


@st.composite
def matmul_domain(draw: st.DrawFn) -> Draw:
    batch = draw(BATCHES)
    n, k, m = (draw(SIDES) for _ in range(3))
    dtype = draw(DTYPES)
    (batch_a, batch_b) = batch.input_shapes
    a, b = arrays(draw, dtype, (*batch_a, n, k)), arrays(draw, dtype, (*batch_b, k, m))
    return Draw((a, b), {}, upstream_for(draw, (*batch.result_shape, n, m)), needs_of(draw, 2))


@st.composite
def sum_domain(draw: st.DrawFn) -> Draw:
    shape = draw(SHAPES)
    x = arrays(draw, draw(DTYPES), shape)
    ndim = len(shape)
    form = draw(st.sampled_from(["None", "int", "tuple"] if ndim else ["None"]))
    axis: int | tuple[int, ...] | None
    if form == "None":
        axis = None
    elif form == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:  # distinct axes, in any order, each positive or negative
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        axis = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    options: dict[str, Any] = {"axis": axis, "keepdims": draw(st.booleans())}
    return Draw((x,), options, upstream_for(draw, np.sum(x, **options).shape), needs_of(draw, 1))


@st.composite
def unary_domain(draw: st.DrawFn, values: st.SearchStrategy[Fill], min_dims: int = 0, axis: bool = False,
                 offsets: st.SearchStrategy[float] = NO_OFFSET) -> Draw:
    shape = draw(SHAPES if min_dims == 0 else NONEMPTY_SHAPES)
    dtype = draw(DTYPES)
    x = arrays(draw, np.float64, shape, values) + draw(offsets)
    options = {}
    if axis and draw(st.booleans()):
        options["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    return Draw((np.asarray(x).astype(dtype),), options, upstream_for(draw, shape), needs_of(draw, 1))


PROBABILITIES = region(0.0, 1.0, (0.5, 0.0, EPS, EPS / 2, 2 * EPS, 1.0, 1e-300), simple=(0, 2))
TARGETS = fills(lambda rng, shape: np.eye(shape[1])[rng.integers(shape[1], size=shape[0])],
                lambda rng, shape: rng.dirichlet(np.ones(shape[1]), size=shape[0]), lambda rng, shape: rng.uniform(0, 1, size=shape))
INDEX_TYPES = st.sampled_from([np.int64, np.int32])


@st.composite
def loss_domain(draw: st.DrawFn, indices: bool) -> Draw:
    n, c = draw(SIDES), draw(SIDES)
    dtype = draw(DTYPES)
    p = arrays(draw, dtype, (n, c), PROBABILITIES)
    if indices:
        target = arrays(draw, draw(INDEX_TYPES), (n,), CLASS_INDICES)
        return Draw((p, target % c), {}, upstream_for(draw, ()), needs_of(draw, "first only"))
    return Draw((p, arrays(draw, dtype, (n, c), TARGETS)), {}, upstream_for(draw, ()), needs_of(draw, 2))


RELU_VALUES = region(-3.0, 3.0, (1.0, 0.0, -0.0, -1.0, 5e-324, -5e-324, 1e-300))
LOG_VALUES = region(-1.0, 3.0, (1.0, 0.0, -0.0, EPS, EPS / 2, 2 * EPS, 10 * EPS, 1e-300, -1.0), simple=(0, 3))
LOGIT_OFFSETS = st.sampled_from([0.0, 100.0, -100.0, 1000.0, -1000.0])
CLASS_INDICES = fills(lambda rng, shape: rng.integers(0, 1 << 30, size=shape))


# -- the known mistakes the feedback names -------------------------------------------------------
def _reduced(compute, shape):
    """compute() summed to shape, None where the mistake does not even fit the shapes."""
    try:
        with np.errstate(all="ignore"):
            return sum_to_shape(compute(), shape)
    except ValueError:
        return None


def matmul_mistakes(inputs: list[np.ndarray], upstream: np.ndarray) -> Mistakes:
    a, b = inputs
    return [[("it multiplies by B where Bᵀ belongs: dA = G Bᵀ (B with its last two axes transposed)",
              _reduced(lambda: np.matmul(upstream, b), a.shape))],
            [("it multiplies by A where Aᵀ belongs: dB = Aᵀ G (A with its last two axes transposed)",
              _reduced(lambda: np.matmul(a, upstream), b.shape))]]


def pow_mistakes(inputs: list[np.ndarray], upstream: np.ndarray) -> Mistakes:
    a, b = inputs
    return [[("it is b ⊙ y / a, which is 0/0 where a = 0: use b ⊙ a^(b-1)", _reduced(lambda: upstream * b * a ** b / a, a.shape))],
            [("it takes log(b), the log of the exponent: dB = g ⊙ a^b ⊙ log(a), the log of the base",
              _reduced(lambda: upstream * a ** b * np.log(b), b.shape))]]


def relu_mistakes(inputs: list[np.ndarray], upstream: np.ndarray) -> Mistakes:
    return [[("it passes the gradient where x is exactly 0; SPEC fixes the gradient there as 0: use x > 0, not x >= 0",
              upstream * (inputs[0] >= 0))]]


def nll_forward_mistakes(inputs: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    p, target = inputs
    with np.errstate(all="ignore"):
        block = -np.sum(np.log(np.maximum(p[:, target], EPS))) / len(p)
    return [("it takes p[:, target], an N×N block; take one entry per row: p[np.arange(N), target]", np.asarray(block))]


def log_forward_mistakes(inputs: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    with np.errstate(all="ignore"):
        return [("it takes log(x + EPS), not log(max(x, EPS))", np.log(inputs[0] + EPS))]


def log_mistakes(inputs: list[np.ndarray], upstream: np.ndarray) -> Mistakes:
    with np.errstate(all="ignore"):
        return [[("it divides by x + EPS, not max(x, EPS)", upstream / (inputs[0] + EPS))]]


# -- the graph recipes (test_graph.py) -----------------------------------------------------------
# Steps refer to values by index: the leaves first, then each step's result.
BINARY = [{"op": "f", "args": [0, 0]}, {"op": "f", "args": [0, 1]}, {"op": "Add", "args": [2, 3]}]
UNARY = [{"op": "f", "args": [0]}, {"op": "Add", "args": [0, 1]}, {"op": "f", "args": [3]}, {"op": "Add", "args": [2, 4]}]
# Losses: leaves p, t, c and a second target t2: out = f(p, t) + f(p + c, t2).
LOSS = [{"op": "f", "args": [0, 1]}, {"op": "Add", "args": [0, 2]}, {"op": "f", "args": [5, 3]}, {"op": "Add", "args": [4, 6]}]


def shifted(sample: Sampler, shift: float) -> Leaves:
    """Leaves x and c, with x + c keeping x's sign and size (away from kinks and clips)."""
    def leaves(rng):
        x = sample(rng)
        return [x, shift * x]
    return leaves


def pair(first: Sampler, second: Sampler) -> Leaves:
    return lambda rng: [first(rng), second(rng)]


# -- the declarations ----------------------------------------------------------------------------
BROADCASTS = [("3x4 with 4", (3, 4), (4,)), ("3x1 with 1x4", (3, 1), (1, 4)),
              ("scalar with 3x4", (), (3, 4)), ("2x3x4 with 3x1", (2, 3, 4), (3, 1))]
EDGE_BROADCASTS = [("0-d with 0-d", (), ()), ("1x3x1 with 2x1x4", (1, 3, 1), (2, 1, 4)), ("4 with 2x1x1", (4,), (2, 1, 1)),
                   ("1 with 3x4", (1,), (3, 4)), ("3x4 with 3x1", (3, 4), (3, 1)), ("1x1 with 2x3", (1, 1), (2, 3))]


def engine_cases(first: Callable[..., Sampler], second: Callable[..., Sampler]) -> list[Case]:
    """The binary op as the course's engine and a student's own test call it."""
    return [Case("3x4 * 3x4, Context() made by hand", [first(3, 4), second(3, 4)], needs_input_grad=HAND_MADE),
            Case("3x4 * 1x4 in float32 (as MLP3 trains)", [first(3, 4), second(1, 4)], dtype=np.float32)]


SPECS = {spec.name: spec for spec in [
    OpSpec(
        "Mul", ("a", "b"), lambda a, b: a * b, oracle.mul_backward, linear_inputs=(0, 1),
        domain=elementwise_binary,
        cases=[Case("3x4 * 3x4", [normal(3, 4), normal(3, 4)]), Case("4x4 * 4x4", [normal(4, 4), normal(4, 4)])]
        + [Case(name.replace("with", "*"), [normal(*a), normal(*b)], robustness=index == 2) for index, (name, a, b) in enumerate(BROADCASTS)]
        + [Case(name.replace("with", "*"), [normal(*a), normal(*b)]) for name, a, b in EDGE_BROADCASTS]
        + [Case("3x4 * 0-d, b needs no gradient (x * 2)", [normal(3, 4), constant(2.0)], needs_input_grad=(True, False)),
           Case("0-d * 3x4, a needs no gradient (2 / x)", [constant(2.0), normal(3, 4)], needs_input_grad=(False, True)),
           *engine_cases(normal, normal)],
        scale=lambda s: Case(f"{s}x{s} * 1x{s}", [normal(s, s), normal(1, s)]),
        graph=(pair(normal(3, 4), normal(3, 4)), (True, True), BINARY, {})),
    OpSpec(
        "Matmul", ("A", "B"), np.matmul, oracle.matmul_backward, linear_inputs=(0, 1), domain=matmul_domain,
        cases=[Case("3x4 @ 4x5", [normal(3, 4), normal(4, 5)]), Case("4x4 @ 4x4", [normal(4, 4), normal(4, 4)]),
               Case("2x3x4 @ 2x4x5 batched", [normal(2, 3, 4), normal(2, 4, 5)]),
               Case("2x3x4 @ 4x5 broadcast batch", [normal(2, 3, 4), normal(4, 5)], robustness=True),
               Case("2x1x3x4 @ 3x4x5 broadcast batch", [normal(2, 1, 3, 4), normal(3, 4, 5)]),
               Case("3x4 @ 2x4x5 broadcast batch of A", [normal(3, 4), normal(2, 4, 5)]),
               Case("1x3x4 @ 2x4x5 stretched batch of A", [normal(1, 3, 4), normal(2, 4, 5)]),
               Case("2x1x3x4 @ 1x2x4x5 stretched batches", [normal(2, 1, 3, 4), normal(1, 2, 4, 5)]),
               Case("1x4 @ 4x1", [normal(1, 4), normal(4, 1)]), Case("3x1 @ 1x5", [normal(3, 1), normal(1, 5)]),
               Case("5x4 @ 4x3, A needs no gradient (MLP3's first layer)", [normal(5, 4), normal(4, 3)], needs_input_grad=(False, True)),
               Case("3x4 @ 4x5, B needs no gradient", [normal(3, 4), normal(4, 5)], needs_input_grad=(True, False)),
               Case("3x4 @ 4x5, Context() made by hand", [normal(3, 4), normal(4, 5)], needs_input_grad=HAND_MADE),
               Case("6x4 @ 4x3 in float32 (as MLP3 trains)", [normal(6, 4), normal(4, 3)], dtype=np.float32)],
        scale=lambda s: Case(f"{s * 4 // 5}x{s * 3 // 5} @ {s * 3 // 5}x{s * 4 // 5}",
                             [normal(s * 4 // 5, s * 3 // 5), normal(s * 3 // 5, s * 4 // 5)]),
        graph=(pair(normal(3, 3), normal(3, 3)), (True, True), BINARY, {}), gradient_mistakes=matmul_mistakes),
    OpSpec(
        "Pow", ("a (the base)", "b (the exponent)"), oracle.pow_forward, oracle.pow_backward, size=oracle.pow_size,
        domain=lambda: elementwise_binary(pow_domain=True),
        cases=[Case("3x4 ** 3x4", [positive(3, 4), normal(3, 4)]), Case("4x4 ** 4x4", [positive(4, 4), normal(4, 4)])]
        + [Case(name.replace("with", "**"), [positive(*a), normal(*b)], robustness=index == 0) for index, (name, a, b) in enumerate(BROADCASTS)]
        + [Case(name.replace("with", "**"), [positive(*a), normal(*b)]) for name, a, b in EDGE_BROADCASTS[:3]]
        + [Case("3x4 with negatives ** 0-d 2 (x ** 2)", [normal(3, 4), constant(2.0)], needs_input_grad=(True, False)),
           Case("3x4 with negatives ** integer 3x4", [normal(3, 4), integers(0, 4, 3, 4)], needs_input_grad=(True, False)),
           Case("2x3 ** 0-d -1 (x / y)", [away_from_zero(2, 3), constant(-1.0)], needs_input_grad=(True, False)),
           Case("3x4 with zeros ** 0-d 1", [with_values(normal(3, 4), [0.0]), constant(1.0)], needs_input_grad=(True, False)),
           Case("3x4 with zeros ** integer 1 to 3", [with_values(normal(3, 4), [0.0]), integers(1, 4, 3, 4)], needs_input_grad=(True, False)),
           Case("0-d 2 ** 3x4 (2 ** x)", [constant(2.0), normal(3, 4)], needs_input_grad=(False, True)),
           Case("3x4 with negatives ** 0-d 3, Context() made by hand", [normal(3, 4), constant(3.0)], needs_input_grad=HAND_MADE),
           Case("tiny and large positive bases ** 3x4", [with_values(positive(3, 4), [1e-20, 1e-8, 50.0]), normal(3, 4)]),
           *engine_cases(positive, normal)],
        scale=lambda s: Case(f"{s}x{s} ** 1x{s}", [positive(s, s), normal(1, s)]),
        graph=(pair(positive(3, 4), normal(3, 4)), (True, True), BINARY, {}), gradient_mistakes=pow_mistakes),
    OpSpec(
        "Sum", ("a",), oracle.sum_forward, oracle.sum_backward, linear_inputs=(0,), domain=sum_domain,
        cases=[Case(f"2x3x4 axis={axis} keepdims={keep}", [normal(2, 3, 4)], {"axis": axis, "keepdims": keep},
                    robustness=(axis, keep) == (0, True))
               for axis in (None, 0, 1, 2, -1, -2, -3, (0, 2), (1, 2), (2, 0), (-1, 0), (0, 1, 2), (2, -3, 1)) for keep in (False, True)]
        + [Case("6 axis=0", [normal(6)], {"axis": 0}), Case("0-d", [normal()]), Case("0-d keepdims=True", [normal()], {"keepdims": True}),
           Case("1x3x1 axis=0", [normal(1, 3, 1)], {"axis": 0}), Case("1x3x1 axis=(0, 2)", [normal(1, 3, 1)], {"axis": (0, 2)}),
           Case("2x3x4x2 axis=(3, 1) keepdims=True", [normal(2, 3, 4, 2)], {"axis": (3, 1), "keepdims": True}),
           Case("2x3x4x2 axis=(-4, -2)", [normal(2, 3, 4, 2)], {"axis": (-4, -2)}),
           Case("3x4 axis=1, Context() made by hand", [normal(3, 4)], {"axis": 1}, needs_input_grad=HAND_MADE),
           Case("3x3x3 axis=1 (equal sizes)", [normal(3, 3, 3)], {"axis": 1}), Case("2x2 axis=0 (equal sizes)", [normal(2, 2)], {"axis": 0}),
           Case("2x2x2 axis=(0, 2) keepdims=True (equal sizes)", [normal(2, 2, 2)], {"axis": (0, 2), "keepdims": True}),
           Case("3x4 axis=0 in float32", [normal(3, 4)], {"axis": 0}, dtype=np.float32)],
        scale=lambda s: Case(f"{s}x{s} axis=0", [normal(s, s)], {"axis": 0}),
        graph=(pair(normal(3, 3), normal(3, 3)), (True, False), UNARY, [{"axis": 0}, {"axis": 1}])),
    OpSpec(
        "ReLU", ("x",), lambda x: np.maximum(x, 0.0), oracle.relu_backward,
        size=lambda g, x: (np.abs(x), (np.abs(g),)),
        domain=lambda: unary_domain(RELU_VALUES),
        cases=[Case("3x4", [away_from_zero(3, 4)]), Case("2x3x4", [away_from_zero(2, 3, 4)]), Case("5", [away_from_zero(5)]),
               Case("3x4 with exact zeros", [with_values(away_from_zero(3, 4), [0.0])]),
               Case("2x3x4 with exact zeros", [with_values(away_from_zero(2, 3, 4), [0.0])]),
               Case("3x4 with -0.0 and ±tiny", [with_values(away_from_zero(3, 4), [-0.0, 5e-324, -5e-324, 1e-300])]),
               Case("0-d", [away_from_zero()]), Case("3x4, Context() made by hand", [away_from_zero(3, 4)], needs_input_grad=HAND_MADE),
               Case("3x4 in float32", [with_values(away_from_zero(3, 4), [0.0])], dtype=np.float32)],
        scale=lambda s: Case(f"{s}x{s}", [away_from_zero(s, s)]),
        graph=(shifted(away_from_zero(3, 4), 0.5), (True, False), UNARY, {}), gradient_mistakes=relu_mistakes),
    OpSpec(
        "Softmax", ("x",), oracle.softmax, oracle.softmax_backward, size=oracle.softmax_size,
        domain=lambda: unary_domain(REALS, min_dims=1, axis=True, offsets=LOGIT_OFFSETS),
        cases=[Case("3x4 axis=-1", [normal(3, 4)], {"axis": -1}), Case("3x4 axis=0", [normal(3, 4)], {"axis": 0}, robustness=True),
               Case("2x3x4 axis=-1", [normal(2, 3, 4)], {"axis": -1}), Case("4x5 default axis", [normal(4, 5)])]
        + [Case(f"2x3x4 axis={axis}", [normal(2, 3, 4)], {"axis": axis}) for axis in (0, 1, -2, -3)]
        + [Case("5 (1-D)", [normal(5)]), Case("5 axis=0", [normal(5)], {"axis": 0}), Case("3x1 axis=-1 (one class)", [normal(3, 1)]),
           Case("1x4 axis=0", [normal(1, 4)], {"axis": 0}), Case("2x3x2x2 axis=2", [normal(2, 3, 2, 2)], {"axis": 2}),
           Case("3x4 with ties", [lambda rng: rng.integers(0, 2, size=(3, 4)).astype(np.float64)]),
           Case("3x4, Context() made by hand", [normal(3, 4)], needs_input_grad=HAND_MADE),
           Case("3x4 in float32", [normal(3, 4)], dtype=np.float32)],
        stability=[Case("logits + 1000", [lambda rng: rng.normal(size=(3, 4)) + 1000.0], {"axis": -1}),
                   Case("logits − 1000", [lambda rng: rng.normal(size=(3, 4)) - 1000.0], {"axis": -1}),
                   Case("rows offset by ±1000", [shifted_rows(normal(3, 4), [-1000.0, 0.0, 1000.0], -1)], {"axis": -1}),
                   Case("columns offset by ±1000, axis=0", [shifted_rows(normal(3, 4), [-1000.0, 0.0, 1000.0], 0)], {"axis": 0}),
                   Case("logits ±1000 in a row", [lambda rng: rng.choice([-1000.0, 1000.0], size=(3, 4)) + rng.normal(size=(3, 4))]),
                   Case("float32 logits + 100 (e^100 overflows float32)", [lambda rng: rng.normal(size=(3, 4)) + 100.0], dtype=np.float32)],
        scale=lambda s: Case(f"{s}x{s} axis=-1", [normal(s, s)], {"axis": -1}),
        graph=(pair(normal(3, 4), normal(3, 4)), (True, False), UNARY, [{"axis": -1}, {"axis": 0}])),
    OpSpec(
        "Log", ("x",), oracle.log_forward, oracle.log_backward,
        size=lambda g, x: (1 + np.abs(oracle.log_forward(x)), (np.abs(g) / np.maximum(x, EPS),)),
        domain=lambda: unary_domain(LOG_VALUES),
        cases=[Case("3x4", [positive(3, 4)]), Case("2x3x4", [positive(2, 3, 4)]), Case("5", [positive(5)]), Case("0-d", [positive()]),
               Case("3x4 up to 1000", [lambda rng: rng.uniform(0.3, 1000.0, size=(3, 4))]),
               Case("3x4, Context() made by hand", [positive(3, 4)], needs_input_grad=HAND_MADE),
               Case("3x4 in float32", [positive(3, 4)], dtype=np.float32)],
        stability=[Case("zeros", [lambda rng: np.array([[0.0, 1e-300, 0.5], [2.0, 0.0, 1.0]])]),
                   Case("around EPS", [lambda rng: EPS * rng.choice([0.5, 1.0, 2.0, 10.0, 1e3], size=(2, 5))]),
                   Case("negatives", [lambda rng: -rng.uniform(0.1, 2.0, size=(3, 4))])],
        scale=lambda s: Case(f"{s}x{s}", [positive(s, s)]),
        graph=(shifted(positive(3, 4), 0.5), (True, False), UNARY, {}), forward_mistakes=log_forward_mistakes,
        gradient_mistakes=log_mistakes),
    OpSpec(
        "CrossEntropyLoss", ("p", "t"), oracle.cross_entropy, oracle.cross_entropy_backward, size=oracle.cross_entropy_size,
        linear_inputs=(1,), is_loss=True, domain=lambda: loss_domain(indices=False),
        cases=[Case("4x3 one-hot", [probabilities(4, 3), one_hot(4, 3)]), Case("5x10 one-hot", [probabilities(5, 10), one_hot(5, 10)]),
               Case("4x3 soft targets", [probabilities(4, 3), soft_targets(4, 3)], robustness=True),
               Case("4x3 one-hot, t needs no gradient (as MLP3 trains)", [probabilities(4, 3), one_hot(4, 3)], needs_input_grad=(True, False)),
               Case("1x3 (one example)", [probabilities(1, 3), soft_targets(1, 3)]), Case("4x1 (one class)", [probabilities(4, 1), one_hot(4, 1)]),
               Case("3x100 (many classes)", [probabilities(3, 100), one_hot(3, 100)]),
               Case("4x3, p needs no gradient", [probabilities(4, 3), soft_targets(4, 3)], needs_input_grad=(False, True)),
               Case("4x3, Context() made by hand", [probabilities(4, 3), soft_targets(4, 3)], needs_input_grad=HAND_MADE),
               Case("8x10 in float32 (as MLP3 trains)", [probabilities(8, 10), one_hot(8, 10)], dtype=np.float32,
                    needs_input_grad=(True, False))],
        stability=[Case("the right class at p = 0", right_class_at(0.0, 4, 3, indices=False)),
                   Case("p = 0 where t = 0", [with_values(probabilities(4, 3), [0.0]), lambda rng: np.eye(3)[[0, 1, 2, 0]]]),
                   Case("p = 1 at the right class", right_class_at(1.0, 4, 3, indices=False)),
                   Case("p around EPS, soft targets", [lambda rng: EPS * rng.choice([0.0, 0.5, 1.0, 2.0, 1e3], size=(4, 3)), soft_targets(4, 3)])],
        scale=lambda s: Case(f"{s}x{s // 2} soft targets", [probabilities(s, s // 2), soft_targets(s, s // 2)]),
        graph=(lambda rng: [probabilities(4, 3)(rng), one_hot(4, 3)(rng), probabilities(4, 3)(rng) / 10, one_hot(4, 3)(rng)],
               (True, False, False, False), LOSS, {})),
    OpSpec(
        "NLLLoss", ("p", "target"), oracle.nll, oracle.nll_backward, size=oracle.nll_size, differentiable=(True, False),
        is_loss=True, domain=lambda: loss_domain(indices=True),
        cases=[Case("4x3", [probabilities(4, 3), class_indices(4, 3)]), Case("6x10", [probabilities(6, 10), class_indices(6, 10)]),
               Case("1x3 (one example)", [probabilities(1, 3), class_indices(1, 3)]),
               Case("4x1 (one class)", [probabilities(4, 1), class_indices(4, 1)]),
               Case("3x300 (many classes)", [probabilities(3, 300), class_indices(3, 300)]),
               Case("5x4 int32 targets", [probabilities(5, 4), class_indices(5, 4, np.int32)]),
               Case("4x3, Context() made by hand", [probabilities(4, 3), class_indices(4, 3)], needs_input_grad=HAND_MADE),
               Case("4x3 in float32", [probabilities(4, 3), class_indices(4, 3)], dtype=np.float32)],
        stability=[Case("the right class at p = 0", right_class_at(0.0, 4, 3, indices=True)),
                   Case("p = 1 at the right class", right_class_at(1.0, 4, 3, indices=True)),
                   Case("p around EPS at the targets", [lambda rng: EPS * rng.choice([0.0, 0.5, 1.0, 2.0, 1e3], size=(5, 3)), class_indices(5, 3)])],
        scale=lambda s: Case(f"{s}x{s}", [probabilities(s, s), class_indices(s, s)]),
        graph=(lambda rng: [probabilities(4, 3)(rng), rng.integers(3, size=4), probabilities(4, 3)(rng) / 10, rng.integers(3, size=4)],
               (True, False, False, False), LOSS, {}),
        forward_mistakes=nll_forward_mistakes),
]}

LOSSES = tuple(name for name, spec in SPECS.items() if spec.is_loss)


def scale_cases(side: int = SCALE_SIDE) -> dict[str, Case]:
    """The scale checks' inputs (test_scale.py), about side² elements each: at the default side of
    1000, 10⁶ elements, where a gradient by numerical differences takes days (one forward per
    element) and a Python loop over elements a second or more; the binary element-wise ops
    broadcast a row, so their backward reduces too. (The project's tests grade with a small side.)"""
    return {name: spec.scale(side) for name, spec in SPECS.items() if spec.scale}


SCALE_CASES = scale_cases()


def cases(select: Callable[[str, Case], bool] = lambda op, case: True, table: str = "cases") -> list["ParameterSet"]:
    """Each op's named cases of `table`, as pytest parameters: pytest's id names the op too (it seeds the
    case's inputs), the `case` marker is the case's own id, the report's."""
    return [pytest.param(op, case, id=f"{op}-{case.id}", marks=pytest.mark.case(case.id)) for op, spec in SPECS.items()
            for case in getattr(spec, table) if select(op, case)]


def robustness_case(op: str, case: Case) -> bool:
    marked = [c for c in SPECS[op].cases if c.robustness]
    return case is (marked[0] if marked else SPECS[op].cases[0])


def draw(op: str, case: Case, request: pytest.FixtureRequest) -> tuple[np.random.Generator, list[np.ndarray], np.ndarray]:
    """(rng, inputs, the oracle's output) of a named case, from the check's seeded generator."""
    rng = seeded_rng(request)
    inputs = case.sample(rng)
    output = np.asarray(SPECS[op].forward(*as_float64(inputs), **case.options))
    return rng, inputs, output


def as_float64(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The inputs as the oracle computes with them: float64, exactly the values sent (integers stay)."""
    return [x if x.dtype.kind in "iu" else x.astype(np.float64) for x in inputs]
