"""The backward engine (tensor.py): accumulation, graph walking, no_grad, the backward contract."""
import numpy as np
import pytest

from tests.support.paths import SOLUTIONS, import_autodiff

import_autodiff(SOLUTIONS)
from autodiff.ops import Add  # noqa: E402
from autodiff.tensor import Function, Tensor, no_grad, reduce_grad_to_shape  # noqa: E402


def leaf(*shape, seed=0, low=0.5, high=2.0):
    return Tensor(np.random.default_rng(seed).uniform(low, high, size=shape), requires_grad=True)


def test_a_tensor_multiplied_by_itself_gets_both_gradients():
    x = leaf(3)
    g = np.array([1.0, -2.0, 3.0])
    (x * x).backward(g)
    np.testing.assert_allclose(x.grad, 2 * x.data * g)


def test_a_tensor_added_to_itself_gets_both_gradients():
    x = leaf(3)
    (x + x).backward(np.array([1.0, -2.0, 3.0]))
    np.testing.assert_allclose(x.grad, [2.0, -4.0, 6.0])


def test_a_diamond_graph_sums_both_branches():
    x = leaf(3)
    a = x * x           # a feeds two branches
    y = a * 3.0 + a * 4.0  # y = 7 x²
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 14 * x.data)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf(3)
    (x * 3.0).sum().backward()
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(x.grad, [8.0, 8.0, 8.0])


def test_a_chain_of_5000_ops_backpropagates_without_recursion_error():
    x = leaf(2)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0])


def test_inputs_that_do_not_require_grad_get_none():
    x, c = leaf(3), Tensor(np.ones(3))
    (x * c).sum().backward()
    assert c.grad is None and x.grad is not None


def test_no_grad_records_nothing():
    x = leaf(3)
    with no_grad():
        y = x * 2.0
    assert y.requires_grad is False
    assert y._creator is None


def test_no_grad_restores_recording_after_an_exception():
    x = leaf(3)
    with pytest.raises(ValueError), no_grad():
        raise ValueError("inside no_grad")
    y = x * 2.0
    assert y.requires_grad is True and y._creator is not None


def test_backward_on_a_non_scalar_without_a_gradient_is_rejected():
    with pytest.raises(RuntimeError, match=r"scalar.*\(3,\)"):
        (leaf(3) * 2.0).backward()


class MissingGradient(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        return (grad_output,)


class UnreducedGradient(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output  # b was broadcast: its gradient should be summed to (4,)


def test_a_wrong_number_of_gradients_is_rejected_naming_the_op():
    y = MissingGradient.apply(leaf(3, 4), leaf(3, 4))
    with pytest.raises(RuntimeError) as error:
        y.backward(np.ones((3, 4)))
    message = str(error.value)
    assert "MissingGradientBackward" in message and "expected 2, got 1" in message


def test_unreduced_broadcast_is_rejected_naming_the_op():
    y = UnreducedGradient.apply(leaf(3, 4), leaf(4))
    with pytest.raises(RuntimeError) as error:
        y.backward(np.ones((3, 4)))
    message = str(error.value)
    for part in ("UnreducedGradientBackward", "(3, 4)", "(4,)", "input 1", "reduce_grad_to_shape"):
        assert part in message


@pytest.mark.parametrize("grad_shape, shape, summed", [
    ((3, 4), (4,), lambda g: g.sum(axis=0)),
    ((3, 4), (3, 1), lambda g: g.sum(axis=1, keepdims=True)),
    ((2, 3, 4), (3, 1), lambda g: g.sum(axis=0).sum(axis=1, keepdims=True)),
    ((), (), lambda g: g),
    ((3, 4), (3, 4), lambda g: g),
], ids=["(3,4)->(4,)", "(3,4)->(3,1)", "(2,3,4)->(3,1)", "()->()", "(3,4)->(3,4)"])
def test_reduce_grad_to_shape_sums_the_broadcast_axes(grad_shape, shape, summed):
    grad = np.random.default_rng(0).normal(size=grad_shape)
    reduced = reduce_grad_to_shape(grad, shape)
    assert reduced.shape == shape
    np.testing.assert_allclose(reduced, summed(grad))


A = np.random.default_rng(1).uniform(0.5, 2.0, size=(3, 4))
B = np.random.default_rng(2).uniform(0.5, 2.0, size=(3, 4))
G3x3 = np.random.default_rng(3).normal(size=(3, 3))
G3x4 = np.random.default_rng(4).normal(size=(3, 4))
G4x3 = np.random.default_rng(5).normal(size=(4, 3))

OPERATOR_CASES = {  # name: (expression, value, upstream g, dA, dB (None: b unused))
    "a + b": (lambda a, b: a + b, A + B, G3x4, G3x4, G3x4),
    "a - b": (lambda a, b: a - b, A - B, G3x4, G3x4, -G3x4),
    "a * b": (lambda a, b: a * b, A * B, G3x4, G3x4 * B, G3x4 * A),
    "a / b": (lambda a, b: a / b, A / B, G3x4, G3x4 / B, -G3x4 * A / B**2),
    "a ** b": (lambda a, b: a ** b, A ** B, G3x4, G3x4 * B * A ** (B - 1), G3x4 * A ** B * np.log(A)),
    "a @ b.T": (lambda a, b: a @ b.T, A @ B.T, G3x3, G3x3 @ B, G3x3.T @ A),
    "-a": (lambda a, b: -a, -A, G3x4, -G3x4, None),
    "a.T": (lambda a, b: a.T, A.T, G4x3, G4x3.T, None),
    "a.sum()": (lambda a, b: a.sum(), A.sum(), np.array(2.0), np.full((3, 4), 2.0), None),
    "a.sum(axis=0)": (lambda a, b: a.sum(axis=0), A.sum(axis=0), G3x4[0], np.tile(G3x4[0], (3, 1)), None),
    "2 - a": (lambda a, b: 2 - a, 2 - A, G3x4, -G3x4, None),
    "3 * a + 1": (lambda a, b: 3 * a + 1, 3 * A + 1, G3x4, 3 * G3x4, None),
    "1 / a": (lambda a, b: 1 / a, 1 / A, G3x4, -G3x4 / A**2, None),
    "2 ** a": (lambda a, b: 2 ** a, 2 ** A, G3x4, G3x4 * 2 ** A * np.log(2), None),
    "a ** 2": (lambda a, b: a ** 2, A ** 2, G3x4, 2 * G3x4 * A, None),
    "array @ b.T": (lambda a, b: A @ b.T, A @ B.T, G3x3, None, G3x3.T @ A),
}


@pytest.mark.parametrize("name", OPERATOR_CASES)
def test_operators_give_the_numpy_values_and_gradients(name):
    expression, value, g, grad_a, grad_b = OPERATOR_CASES[name]
    a, b = Tensor(A.copy(), requires_grad=True), Tensor(B.copy(), requires_grad=True)
    y = expression(a, b)
    np.testing.assert_allclose(y.data, value, err_msg=f"{name}: value")
    y.backward(g)
    for tensor, expected, label in ((a, grad_a, "dA"), (b, grad_b, "dB")):
        if expected is None:
            assert tensor.grad is None, f"{name}: {label} should be None (input unused)"
        else:
            np.testing.assert_allclose(tensor.grad, expected, err_msg=f"{name}: {label}")


@pytest.mark.parametrize("expression", [lambda x: x * 2, lambda x: x + 1.0], ids=["x * 2", "x + 1.0"])
def test_float32_stays_float32_with_python_numbers(expression):
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = expression(x)
    assert y.dtype == np.float32
    y.backward(np.ones(3, dtype=np.float32))
    assert x.grad.dtype == np.float32


def test_leaves_given_the_same_gradient_array_do_not_share_storage():
    a, b = leaf(3, seed=1), leaf(3, seed=2)
    Add.apply(a, b).backward(np.ones(3))
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_leaves_given_views_of_one_gradient_do_not_share_storage():
    a, b = leaf(2, 3, seed=1), leaf(2, 3, seed=2)
    (a.T + b.T).backward(np.ones((3, 2)))  # each leaf gets a transposed view of the same array
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.ones((2, 3)))


def test_a_leaf_grad_does_not_alias_the_callers_upstream_array():
    a, b = leaf(3, seed=1), leaf(3, seed=2)
    g = np.ones(3)
    Add.apply(a, b).backward(g)
    a.grad += 1
    np.testing.assert_array_equal(g, np.ones(3))


def test_a_hand_made_context_means_every_input_needs_a_gradient():
    """Students test a Function by hand with Context(): a backward that consults needs_input_grad
    (the reference's Matmul and CrossEntropyLoss do) must then return every gradient."""
    from autodiff.losses import CrossEntropyLoss
    from autodiff.ops import Matmul
    from autodiff.tensor import Context

    ctx = Context()
    a, b = np.ones((2, 3)), np.ones((3, 4))
    Matmul.forward(ctx, a, b)
    grad_a, grad_b = Matmul.backward(ctx, np.ones((2, 4)))
    assert grad_a.shape == (2, 3) and grad_b.shape == (3, 4)
    ctx, p = Context(), np.full((2, 3), 1 / 3)
    CrossEntropyLoss.forward(ctx, p, p)
    assert all(grad is not None for grad in CrossEntropyLoss.backward(ctx, np.ones(())))
    assert Context((True, False)).needs_input_grad[1] is False  # what Function.apply says is kept
