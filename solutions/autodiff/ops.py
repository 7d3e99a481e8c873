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
        # BEGIN SOLUTION compute y = a * b and save a and b for backward
        ctx.save_for_backward(a, b)
        return a * b
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return (g * b, g * a), each reduced to its input's shape
        a, b = ctx.saved_tensors
        grad_a = grad_output * b
        grad_b = grad_output * a
        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)
        # END SOLUTION


class Matmul(Function):
    """Y = A B, the matrix product (np.matmul: 2-D, or stacks of matrices with broadcast batch axes).

    Backward: dA = G Bᵀ and dB = Aᵀ G, where ᵀ swaps the last two axes; each reduced to its
    input's shape (a batch axis that broadcasting added or stretched is summed away).
    """

    @staticmethod
    def forward(ctx, a, b):
        # BEGIN SOLUTION compute Y = np.matmul(a, b) and save a and b for backward
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return (G Bᵀ, Aᵀ G), transposing the last two axes, each reduced to its input's shape
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:  # skipping the gradient of the network's input saves a third of an epoch
            grad_a = reduce_grad_to_shape(np.matmul(grad_output, np.swapaxes(b, -1, -2)), a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = reduce_grad_to_shape(np.matmul(np.swapaxes(a, -1, -2), grad_output), b.shape)
        return grad_a, grad_b
        # END SOLUTION


class Pow(Function):
    """y = a ** b, element-wise with broadcasting.

    Backward: dA = g ⊙ b ⊙ a^(b-1) and dB = g ⊙ a^b ⊙ log(a) (defined where a > 0; use 0
    elsewhere), each reduced to its input's shape.
    """

    @staticmethod
    def forward(ctx, a, b):
        # BEGIN SOLUTION compute y = np.power(a, b) and save what backward needs
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return (g * b * a^(b-1), g * a^b * log(a)), each reduced to its input's shape
        a, b, y = ctx.saved_tensors
        grad_a = grad_output * b * np.power(a, b - 1)
        grad_b = grad_output * y * np.log(np.where(a > 0, a, 1))
        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)
        # END SOLUTION


class Sum(Function):
    """y = np.sum(a, axis=axis, keepdims=keepdims); axis is None, an int (possibly negative) or a tuple.

    Backward: every element of a contributed once to its sum, so dA is g copied back to a's
    shape. When keepdims is False the summed axes are gone from g: put them back (size 1)
    before broadcasting g to a's shape.
    """

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        # BEGIN SOLUTION compute np.sum(a, axis=axis, keepdims=keepdims) and save what backward needs
        ctx.a_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return g broadcast back to a's shape, re-inserting the summed axes first when keepdims is False
        grad = np.asarray(grad_output)
        if ctx.axis is not None and not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axis)
        return np.broadcast_to(grad, ctx.a_shape).copy()
        # END SOLUTION
