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
        raise NotImplementedError('CrossEntropyLoss.forward: compute -(1/N) * sum(t * log(max(p, EPS))) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError('CrossEntropyLoss.backward: return (-g * t / (N * max(p, EPS)), -g * log(max(p, EPS)) / N)')


class NLLLoss(Function):
    """L = −(1/N) Σ_i log(max(p[i, target_i], EPS)), with target (N,) integer class indices.

    Backward: dP is zero except −g / (N max(p[i, target_i], EPS)) at each (i, target_i).
    The target gets no gradient: return None for it.
    """

    @staticmethod
    def forward(ctx, p, target):
        raise NotImplementedError('NLLLoss.forward: compute -(1/N) * sum_i log(max(p[i, target[i]], EPS)) and save what backward needs')

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError('NLLLoss.backward: return (dP, None): dP zero but -g / (N * max(p[i, t_i], EPS)) at each target')
