"""Loss functions, both graded. Each returns the mean over the batch as a 0-d array.

N is the batch size, p.shape[0]. p are probabilities (a softmax output), not logits; they are
clipped at EPS before the log, so a probability of 0 gives a large but finite loss.
"""
import numpy as np

from .tensor import EPS, Function


class CrossEntropyLoss(Function):
    """L = −(1/N) Σ t ⊙ log(max(p, EPS)), with p (N, C) probabilities and t (N, C) one-hot or soft targets.

    Backward: dP = −g ⊙ t / (N max(p, EPS)) and dT = −g ⊙ log(max(p, EPS)) / N.
    """

    @staticmethod
    def forward(ctx, p, t):
        # BEGIN SOLUTION compute -(1/N) * sum(t * log(max(p, EPS))) and save what backward needs
        clipped = np.maximum(p, EPS)
        ctx.save_for_backward(clipped, t)
        return np.asarray(-np.sum(t * np.log(clipped)) / p.shape[0])
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return (-g * t / (N * max(p, EPS)), -g * log(max(p, EPS)) / N)
        clipped, t = ctx.saved_tensors
        n = clipped.shape[0]
        grad_t = -grad_output * np.log(clipped) / n if ctx.needs_input_grad[1] else None  # one-hot targets need none
        return -grad_output * t / (n * clipped), grad_t
        # END SOLUTION


class NLLLoss(Function):
    """L = −(1/N) Σ_i log(max(p[i, target_i], EPS)), with target (N,) integer class indices.

    Backward: dP is zero except −g / (N max(p[i, target_i], EPS)) at each (i, target_i).
    The target gets no gradient: return None for it.
    """

    @staticmethod
    def forward(ctx, p, target):
        # BEGIN SOLUTION compute -(1/N) * sum_i log(max(p[i, target[i]], EPS)) and save what backward needs
        rows = np.arange(p.shape[0])
        picked = np.maximum(p[rows, target], EPS)
        ctx.save_for_backward(picked, rows, target)
        ctx.p_shape, ctx.p_dtype = p.shape, p.dtype
        return np.asarray(-np.sum(np.log(picked)) / p.shape[0])
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return (dP, None): dP zero but -g / (N * max(p[i, t_i], EPS)) at each target
        picked, rows, target = ctx.saved_tensors
        grad_p = np.zeros(ctx.p_shape, dtype=ctx.p_dtype)
        grad_p[rows, target] = -grad_output / (len(rows) * picked)
        return grad_p, None
        # END SOLUTION
