"""Activation functions, all graded: ReLU, Softmax and Log."""
import numpy as np

from .tensor import EPS, Function


class ReLU(Function):
    """y = max(0, x), element-wise.

    Backward: dX = g ⊙ 1(x > 0): the gradient passes where x was positive and is 0 elsewhere
    (including at exactly x = 0).
    """

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION compute np.maximum(0, x) and save what backward needs
        ctx.save_for_backward(x > 0)
        return np.maximum(x, 0)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return g where x > 0, and 0 elsewhere
        (positive,) = ctx.saved_tensors
        return grad_output * positive
        # END SOLUTION


class Softmax(Function):
    """y = e^(x - m) / Σ e^(x - m) along `axis` (default -1), m the maximum along that axis.

    Subtracting m changes nothing mathematically but keeps e^x from overflowing (try x + 1000).
    Backward: dX = y ⊙ (g − Σ_axis(g ⊙ y)), the sum kept as an axis of size 1 so it broadcasts.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        # BEGIN SOLUTION compute the stable softmax along axis and save y for backward
        exp = np.exp(x - x.max(axis=axis, keepdims=True))
        y = exp / exp.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return y * (g - sum(g * y, axis, keepdims=True))
        (y,) = ctx.saved_tensors
        return y * (grad_output - (grad_output * y).sum(axis=ctx.axis, keepdims=True))
        # END SOLUTION


class Log(Function):
    """y = log(max(x, EPS)), element-wise: the clip keeps log(0) finite.

    Backward: dX = g / max(x, EPS).
    """

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION compute np.log(np.maximum(x, EPS)) and save what backward needs
        clipped = np.maximum(x, EPS)
        ctx.save_for_backward(clipped)
        return np.log(clipped)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return g / max(x, EPS)
        (clipped,) = ctx.saved_tensors
        return grad_output / clipped
        # END SOLUTION
