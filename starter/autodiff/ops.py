"""Arithmetic operations. `Add` is given as the worked example; Mul, Matmul, Pow and Sum are graded.

Each backward receives g = dL/dy (same shape as the forward's output) and returns one gradient
per input, in order, each with exactly that input's shape. When the forward broadcast an input,
its gradient must be summed back to the input's shape: `reduce_grad_to_shape(grad, shape)`.
"""
import numpy as np

from .tensor import Function, reduce_grad_to_shape


class Add(Function):
    """y = a + b (broadcasting).  dA = g, dB = g, each reduced to its input's shape."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return (reduce_grad_to_shape(grad_output, ctx.a_shape),
                reduce_grad_to_shape(grad_output, ctx.b_shape))


class Mul(Function):
    """y = a ⊙ b, element-wise with broadcasting.

    Backward: dA = g ⊙ b and dB = g ⊙ a, each reduced to its input's shape.
    """

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError('Mul.forward: compute y = a * b and save a and b for backward')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Mul.backward: return (g * b, g * a), each reduced to its input's shape")


class Matmul(Function):
    """Y = A B, the matrix product (np.matmul: 2-D, or stacks of matrices with broadcast batch axes).

    Backward: dA = G Bᵀ and dB = Aᵀ G, where ᵀ swaps the last two axes; each reduced to its
    input's shape (a batch axis that broadcasting added or stretched is summed away).
    """

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError('Matmul.forward: compute Y = np.matmul(a, b) and save a and b for backward')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Matmul.backward: return (G Bᵀ, Aᵀ G), transposing the last two axes, each reduced to its input's shape")


class Pow(Function):
    """y = a ** b, element-wise with broadcasting.

    Backward: dA = g ⊙ b ⊙ a^(b-1) and dB = g ⊙ a^b ⊙ log(a) (defined where a > 0; use 0
    elsewhere), each reduced to its input's shape.
    """

    @staticmethod
    def forward(ctx, a, b):
        raise NotImplementedError('Pow.forward: compute y = np.power(a, b) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Pow.backward: return (g * b * a^(b-1), g * a^b * log(a)), each reduced to its input's shape")


class Sum(Function):
    """y = np.sum(a, axis=axis, keepdims=keepdims); axis is None, an int (possibly negative) or a tuple.

    Backward: every element of a contributed once to its sum, so dA is g copied back to a's
    shape. When keepdims is False the summed axes are gone from g: put them back (size 1)
    before broadcasting g to a's shape.
    """

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        raise NotImplementedError('Sum.forward: compute np.sum(a, axis=axis, keepdims=keepdims) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Sum.backward: return g broadcast back to a's shape, re-inserting the summed axes first when keepdims is False")
