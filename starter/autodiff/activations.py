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
        raise NotImplementedError('ReLU.forward: compute np.maximum(0, x) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError('ReLU.backward: return g where x > 0, and 0 elsewhere')


class Softmax(Function):
    """y = e^(x - m) / Σ e^(x - m) along `axis` (default -1), m the maximum along that axis.

    Subtracting m changes nothing mathematically but keeps e^x from overflowing (try x + 1000).
    Backward: dX = y ⊙ (g − Σ_axis(g ⊙ y)), the sum kept as an axis of size 1 so it broadcasts.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        raise NotImplementedError('Softmax.forward: compute the stable softmax along axis and save y for backward')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError('Softmax.backward: return y * (g - sum(g * y, axis, keepdims=True))')


class Log(Function):
    """y = log(max(x, EPS)), element-wise: the clip keeps log(0) finite.

    Backward: dX = g / max(x, EPS).
    """

    @staticmethod
    def forward(ctx, x):
        raise NotImplementedError('Log.forward: compute np.log(np.maximum(x, EPS)) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError('Log.backward: return g / max(x, EPS)')
