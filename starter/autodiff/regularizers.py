"""L2 regularization, graded: the penalty and its gradient.

The penalty is added to the reported loss; its gradient is added to each weight's .grad after
loss.backward(). Pass weight matrices only (model.weights()): biases are not regularized.
"""
import numpy as np


def l2_penalty(weights, lam):
    """λ Σ_W ‖W‖²_F: λ times the sum of the squares of every element of every weight tensor."""
    raise NotImplementedError('l2_penalty: return lam * (sum over the weights of the sum of W.data ** 2)')


def l2_grad(weights, lam):
    """Add the penalty's gradient 2λW to each W.grad, in place (set it where W.grad is None)."""
    raise NotImplementedError('l2_grad: add 2 * lam * W.data to each W.grad')
