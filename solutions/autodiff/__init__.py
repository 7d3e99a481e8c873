"""autodiff: a small reverse-mode automatic differentiation library on numpy arrays.

Modules are imported where they are used (`from autodiff.ops import Mul`): importing the
package does not import the graded modules, so one that fails to import costs only its own names.
"""
import os

# One BLAS thread unless told otherwise (`python -m autodiff.train` without make, a notebook): on
# these small matrices more threads are slower, most of all on a busy machine. It must be set
# before numpy is first imported, here by .tensor.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from .tensor import EPS, Context, Function, Tensor, no_grad, reduce_grad_to_shape  # noqa: E402

__all__ = ["EPS", "Context", "Function", "Tensor", "no_grad", "reduce_grad_to_shape"]
