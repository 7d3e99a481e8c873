"""The math of SPEC.md in float64, in closed form: what the checks compare against.

The core ops' backward formulas live in closed_forms.py, which the student handout's copy of the
grader leaves out: there, their gradients are central differences (EXACT is False), compared with
a looser tolerance (checking.tolerance).

For each graded op: its forward, its backward (SPEC.md's formulas, exact: the derivative of the
forward wherever the forward is smooth, and SPEC's own value at its kinks and clips), and the
magnitude of the terms each output element is computed from (`*_size`), which scales the
tolerance: a correct implementation differs from these by a few roundings of its terms, in any
order it adds them (checking.tolerance). The project's tests check the closed forms against
central differences (tests/test_reference_ops.py).

A backward returns one gradient per input; None where SPEC defines none (NLLLoss's target) or
where it is undefined (Pow's dB unless every base is positive): those are not compared.
"""
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

EPS = 1e-12


def reduce_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """grad summed over the axes broadcasting added or stretched, to `shape` (the course's
    reduce_grad_to_shape, in float64)."""
    grad = np.asarray(grad, dtype=np.float64)
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


try:  # after reduce_to, which it uses
    from . import closed_forms  # the course's grader only: the student handout leaves it out
except ImportError:
    closed_forms = None  # type: ignore[assignment]
EXACT = closed_forms is not None  # else the core ops' gradients are central differences (checking.tolerance loosens)


def _log_abs(x):
    """log|x|, 0 where x is 0: the size of a log's argument in the magnitudes, never infinite."""
    with np.errstate(divide="ignore"):
        return np.where(x != 0, np.log(np.abs(np.where(x != 0, x, 1.0))), 0.0)


def pow_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.power(a, b)


def sum_forward(a: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.sum(a, axis, keepdims=keepdims)


def _approximate(forward, name):
    """The core op's backward: closed_forms' when the grader has it, else central differences of
    its forward (where SPEC leaves a gradient undefined or fixes it at a kink, as SPEC says)."""
    def backward(g, *inputs, **options):
        if closed_forms is not None:
            return getattr(closed_forms, name)(g, *inputs, **options)
        inputs = [np.asarray(x, dtype=np.float64) for x in inputs]  # an integer exponent too
        wanted = [not (name == "power" and index == 1 and not np.all(inputs[0] > 0)) for index in range(len(inputs))]
        with np.errstate(all="ignore"):
            grads = central_differences(lambda *xs: forward(*xs, **options), inputs, g, wanted)
        return tuple(grads)
    return backward


mul_backward = _approximate(lambda a, b: a * b, "mul")
matmul_backward = _approximate(np.matmul, "matmul")
pow_backward = _approximate(pow_forward, "power")
sum_backward = _approximate(sum_forward, "total")


def relu_backward(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    return (g * (x > 0),)


def pow_size(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """An exponential's relative error grows with its exponent: |b log a| roundings for exp(b log a)."""
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        y = np.abs(np.power(a, b))
        grad_a = reduce_to(np.abs(g * b) * np.abs(np.power(a, b - 1.0)) * (1 + np.abs((b - 1) * _log_abs(a))), a.shape)
        grad_b = reduce_to(np.abs(g) * y * (1 + np.abs(_log_abs(a))) * (1 + np.abs(b * _log_abs(a))), b.shape)
    return y * (1 + np.abs(b * _log_abs(a))), (grad_a, grad_b)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    exp = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return exp / np.sum(exp, axis=axis, keepdims=True)


def softmax_backward(g: np.ndarray, x: np.ndarray, axis: int = -1) -> tuple[np.ndarray]:
    y = softmax(x, axis)
    return (y * (g - np.sum(g * y, axis=axis, keepdims=True)),)


def softmax_size(g: np.ndarray, x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, tuple[np.ndarray]]:
    """exp(x − m) is off by |x − m| roundings of its argument (so is exp(x − logsumexp))."""
    y = softmax(x, axis)
    spread = 2 + np.abs(x - np.max(x, axis=axis, keepdims=True)) + np.log(x.shape[axis])
    return y * spread, (y * spread * (np.abs(g) + np.sum(np.abs(g) * y, axis=axis, keepdims=True)),)


def log_forward(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, EPS))


def log_backward(g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    return (g / np.maximum(x, EPS),)


def cross_entropy(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(-np.sum(t * np.log(np.maximum(p, EPS))) / p.shape[0])


def cross_entropy_backward(g: np.ndarray, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = p.shape[0]
    return -g * t / (n * np.maximum(p, EPS)), -g * np.log(np.maximum(p, EPS)) / n


def cross_entropy_size(g: np.ndarray, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    n, log = p.shape[0], np.abs(np.log(np.maximum(p, EPS))) + 1
    return np.asarray(np.sum(np.abs(t) * log) / n), (np.abs(g * t) / (n * np.maximum(p, EPS)), np.abs(g) * log / n)


def nll(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.asarray(-np.sum(np.log(np.maximum(p[np.arange(p.shape[0]), target], EPS))) / p.shape[0])


def nll_backward(g: np.ndarray, p: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, None]:
    picked = np.arange(len(p)), target
    grad = np.zeros(p.shape, dtype=np.float64)
    np.add.at(grad, picked, -g / (len(p) * np.maximum(p[picked], EPS)))
    return grad, None


def nll_size(g: np.ndarray, p: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, None]]:
    picked = np.arange(len(p)), target
    return np.asarray(np.sum(np.abs(np.log(np.maximum(p[picked], EPS))) + 1) / len(p)), (np.abs(nll_backward(g, p, target)[0]), None)


def l2_penalty(weights: Sequence[np.ndarray], lam: float) -> Any:  # a numpy scalar, or 0 for no weights
    return lam * sum(np.sum(np.square(w)) for w in weights)


def central_differences(f: Callable[..., Any], inputs: Sequence[np.ndarray], upstream: np.ndarray, differentiable: Sequence[bool],
                        h: float = 1e-6) -> list[np.ndarray | None]:
    """dL/d(input) for L = Σ upstream ⊙ f(*inputs), for each differentiable input (None for the
    others), each element moved by h of its own size (h itself at 0): the project's tests check the
    closed forms with it, away from kinks and clips, and the student handout's oracle uses it."""
    grads: list[np.ndarray | None] = []
    for index, x in enumerate(inputs):
        if not differentiable[index]:
            grads.append(None)
            continue
        grad = np.zeros_like(x, dtype=np.float64)
        for position in np.ndindex(x.shape):
            step = h * abs(float(x[position])) or h
            shifted = [np.array(v, copy=True) for v in inputs]
            shifted[index][position] = x[position] + step
            plus = np.asarray(f(*shifted))
            shifted[index][position] = x[position] - step
            # the outputs this element does not reach cancel exactly: no rounding of the rest of L
            grad[position] = np.sum(upstream * (plus - np.asarray(f(*shifted)))) / (2 * step)
        grads.append(grad)
    return grads
