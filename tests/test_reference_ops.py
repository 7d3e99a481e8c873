"""The reference's graded ops: gradients against central differences, known values, stability."""
import math

import numpy as np
import pytest

from tests.support.paths import SOLUTIONS, import_autodiff

import_autodiff(SOLUTIONS)
from autodiff.activations import Log, ReLU, Softmax  # noqa: E402
from autodiff.losses import CrossEntropyLoss, NLLLoss  # noqa: E402
from autodiff.ops import Matmul, Mul, Pow, Sum  # noqa: E402
from autodiff.regularizers import l2_grad, l2_penalty  # noqa: E402
from autodiff.tensor import Context, Tensor  # noqa: E402

H = 1e-6
RTOL, ATOL = 1e-5, 1e-7


def rng(seed=0):
    return np.random.default_rng(seed)


def numerical_grads(function, inputs, upstream, **options):
    """Central differences of Σ upstream ⊙ forward(inputs) with respect to each float input."""
    def objective(arrays):
        return np.sum(upstream * function.forward(Context(), *arrays, **options))

    grads = []
    for i, x in enumerate(inputs):
        if not np.issubdtype(x.dtype, np.floating):
            grads.append(None)
            continue
        grad = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            plus, minus = list(inputs), list(inputs)
            plus[i], minus[i] = x.copy(), x.copy()
            plus[i][index] += H
            minus[i][index] -= H
            grad[index] = (objective(plus) - objective(minus)) / (2 * H)
        grads.append(grad)
    return grads


def check_gradients(function, *inputs, **options):
    """Backward through Function.apply with a random upstream gradient equals central differences."""
    inputs = [np.asarray(x) for x in inputs]
    tensors = [Tensor(x, requires_grad=np.issubdtype(x.dtype, np.floating)) for x in inputs]
    output = function.apply(*tensors, **options)
    upstream = rng().normal(size=output.shape)
    output.backward(upstream)
    for position, (tensor, expected) in enumerate(zip(tensors, numerical_grads(function, inputs, upstream, **options), strict=True)):
        if expected is None:
            continue
        assert tensor.grad is not None, f"{function.__name__}: input {position} got no gradient"
        assert tensor.grad.shape == expected.shape, f"{function.__name__}: input {position} gradient shape"
        np.testing.assert_allclose(tensor.grad, expected, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{function.__name__}: gradient of input {position}")


def normal(*shape):
    return rng(1).normal(size=shape)


def positive(*shape):
    return rng(2).uniform(0.5, 2.0, size=shape)


BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (3, 4)), ((2, 3, 4), (3, 1))]
SHAPE_IDS = [f"{a}*{b}".replace(" ", "") for a, b in BROADCAST_SHAPES]


@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES, ids=SHAPE_IDS)
def test_mul_gradients_match_central_differences(shape_a, shape_b):
    check_gradients(Mul, normal(*shape_a), rng(3).normal(size=shape_b) + 1)


@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES, ids=SHAPE_IDS)
def test_pow_gradients_match_central_differences_for_a_positive_base(shape_a, shape_b):
    check_gradients(Pow, positive(*shape_a), rng(3).uniform(-2, 2, size=shape_b))


@pytest.mark.parametrize("shape_a, shape_b", [
    ((3, 4), (4, 5)), ((4, 4), (4, 4)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 5)),
], ids=["(3,4)@(4,5)", "square", "batched(2,3,4)@(4,5)", "broadcast-batch(2,1,3,4)@(3,4,5)"])
def test_matmul_gradients_match_central_differences(shape_a, shape_b):
    check_gradients(Matmul, normal(*shape_a), rng(3).normal(size=shape_b) * 2)


@pytest.mark.parametrize("keepdims", [False, True], ids=["keepdims=False", "keepdims=True"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=["axis=None", "axis=0", "axis=-1", "axis=(0,2)"])
def test_sum_gradient_matches_central_differences(axis, keepdims):
    check_gradients(Sum, normal(2, 3, 4), axis=axis, keepdims=keepdims)


def test_relu_gradient_matches_central_differences_away_from_zero():
    x = rng().uniform(0.1, 1.0, size=(3, 4)) * rng(3).choice([-1.0, 1.0], size=(3, 4))
    check_gradients(ReLU, x)


@pytest.mark.parametrize("axis", [-1, 0], ids=["axis=-1", "axis=0"])
def test_softmax_gradient_matches_central_differences(axis):
    check_gradients(Softmax, normal(3, 4), axis=axis)


def test_log_gradient_matches_central_differences():
    check_gradients(Log, positive(3, 4))


@pytest.mark.parametrize("target", ["one-hot", "soft"])
def test_cross_entropy_gradients_match_central_differences_for_p_and_t(target):
    p = rng().uniform(0.05, 1.0, size=(3, 4))
    t = np.eye(4)[[2, 0, 3]] if target == "one-hot" else rng(3).dirichlet(np.ones(4), size=3)
    check_gradients(CrossEntropyLoss, p, t)


def test_nll_gradient_matches_central_differences():
    check_gradients(NLLLoss, rng().uniform(0.05, 1.0, size=(3, 4)), np.array([2, 0, 3]))


def test_nll_gives_the_target_no_gradient():
    ctx = Context((True, False))
    NLLLoss.forward(ctx, np.full((2, 3), 0.5), np.array([0, 2]))
    grad_p, grad_target = NLLLoss.backward(ctx, np.asarray(1.0))
    assert grad_target is None
    assert grad_p.shape == (2, 3)


# Small values worked out by hand.

def test_mul_of_two_vectors_by_hand():
    a, b = Tensor(np.array([1.0, 2.0]), requires_grad=True), Tensor(np.array([3.0, 4.0]), requires_grad=True)
    y = Mul.apply(a, b)
    y.backward(np.array([1.0, 10.0]))
    assert y.data.tolist() == [3.0, 8.0]
    assert a.grad.tolist() == [3.0, 40.0]
    assert b.grad.tolist() == [1.0, 20.0]


@pytest.mark.parametrize("axis, expected", [
    (0, [[1, 2, 3], [1, 2, 3], [1, 2, 3]]),
    (1, [[1, 1, 1], [2, 2, 2], [3, 3, 3]]),
], ids=["axis=0", "axis=1"])
def test_sum_backward_without_keepdims_reinserts_the_summed_axis(axis, expected):
    ctx = Context((True,))
    Sum.forward(ctx, np.zeros((3, 3)), axis=axis, keepdims=False)
    assert Sum.backward(ctx, np.array([1.0, 2.0, 3.0])).tolist() == expected


def test_softmax_of_zero_and_log_3_is_a_quarter_and_three_quarters():
    y = Softmax.apply(np.array([0.0, math.log(3)]))
    np.testing.assert_allclose(y.data, [0.25, 0.75])


def test_cross_entropy_of_a_known_batch():
    p = np.array([[0.5, 0.5], [0.25, 0.75]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = CrossEntropyLoss.apply(p, t)
    assert loss.shape == ()
    assert loss.data == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)  # 0.4904


def test_nll_of_a_known_batch_and_its_gradient():
    p = Tensor(np.array([[0.2, 0.8], [0.6, 0.4]]), requires_grad=True)
    loss = NLLLoss.apply(p, np.array([1, 0]))
    assert loss.shape == ()
    assert loss.data == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)  # 0.3670
    loss.backward()
    np.testing.assert_allclose(p.grad, [[0.0, -1 / 1.6], [-1 / 1.2, 0.0]])


def test_l2_penalty_of_known_matrices():
    weights = [Tensor(np.array([[1.0, 2.0], [3.0, 4.0]])), Tensor(np.array([[-1.0, 0.5]]))]
    assert l2_penalty(weights, 0.1) == pytest.approx(0.1 * (30 + 1.25))


def test_l2_grad_adds_exactly_two_lambda_w_to_an_existing_grad():
    w = Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    w.grad = np.ones((2, 2))
    l2_grad([w], 0.25)
    np.testing.assert_allclose(w.grad, [[1.5, 0.0], [2.5, 1.25]])


def test_l2_grad_sets_two_lambda_w_where_grad_is_none_and_leaves_w_alone():
    data = np.array([[1.0, -2.0], [3.0, 0.5]])
    w = Tensor(data.copy(), requires_grad=True)
    l2_grad([w], 0.25)
    np.testing.assert_allclose(w.grad, 0.5 * data)
    l2_grad([w], 0.25)  # the second call adds in place: it must not be adding into W.data
    np.testing.assert_allclose(w.grad, data)
    np.testing.assert_array_equal(w.data, data)


# Numerical stability.

def test_softmax_of_large_inputs_is_finite_and_shift_invariant():
    x = normal(3, 4)
    y = Softmax.apply(x + 1000.0).data
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, Softmax.apply(x).data, rtol=1e-12)


def test_log_of_zero_is_finite_and_so_is_its_gradient():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = Log.apply(x)
    y.backward(np.ones(2))
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))


@pytest.mark.parametrize("loss", ["CrossEntropyLoss", "NLLLoss"])
def test_loss_of_a_zero_probability_is_finite_and_so_is_its_gradient(loss):
    p = Tensor(np.array([[0.0, 1.0], [0.5, 0.5]]), requires_grad=True)
    value = CrossEntropyLoss.apply(p, np.eye(2)) if loss == "CrossEntropyLoss" else NLLLoss.apply(p, np.array([0, 1]))
    value.backward()
    assert np.isfinite(value.data) and value.data > 10  # −log(EPS)/2 ≈ 13.8: large, not inf
    assert np.all(np.isfinite(p.grad))
