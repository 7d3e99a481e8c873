"""The autograd engine: Tensor, Function, Context and the backward pass.

Given to students; nothing here is graded. An operation is a `Function` with a static
`forward(ctx, *arrays, **options)` and `backward(ctx, grad_output)`, as in PyTorch's
`torch.autograd.Function`. `Function.apply` runs the forward on plain numpy arrays and records
the call, so that `Tensor.backward()` can walk the graph in reverse and apply the chain rule.
"""
import contextlib

import numpy as np

EPS = 1e-12
"""Smallest value fed to a log or used as a divisor: log(max(x, EPS)), g / max(x, EPS)."""

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Evaluate without recording the graph (for testing a model, or an optimizer step)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def reduce_grad_to_shape(grad, shape):
    """Sum `grad` over the axes that broadcasting added or stretched, so that it has `shape`.

    If the forward broadcast an input of shape (4,) against (3, 4), the gradient arrives with
    shape (3, 4): each input element was used 3 times, so its gradient is the sum over axis 0.
    Likewise (3, 1) against (3, 4) sums over axis 1, keeping it: the result is (3, 1).
    """
    grad = np.asarray(grad)
    shape = tuple(shape)
    if grad.shape == shape:  # the common case: nothing was broadcast
        return grad
    added = grad.ndim - len(shape)
    if added > 0:
        grad = grad.sum(axis=tuple(range(added)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class EveryInput(tuple):
    """needs_input_grad when nobody said which inputs need a gradient (a Context made by hand to
    test a Function): every one does."""

    def __getitem__(self, index):
        return True if isinstance(index, int) else super().__getitem__(index)


class Context:
    """What a forward leaves for its backward: arrays via save_for_backward, anything else as
    attributes (ctx.axis = axis). `needs_input_grad[i]` tells whether input i wants a gradient,
    so a backward may skip work (return None for that input); unknown, every input does."""

    def __init__(self, needs_input_grad=None):
        self.needs_input_grad = EveryInput() if needs_input_grad is None else tuple(needs_input_grad)
        self.saved_tensors = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Function:
    """Base class of every operation. Subclasses define the two static methods below."""

    @staticmethod
    def forward(ctx, *inputs, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run forward on the inputs' arrays and, if any input needs a gradient, record the call."""
        tensors = tuple([x if isinstance(x, Tensor) else Tensor(x) for x in inputs])  # lists: cheaper than generators
        needs_input_grad = tuple([t.requires_grad for t in tensors])
        ctx = Context(needs_input_grad)
        output = Tensor(cls.forward(ctx, *[t.data for t in tensors], **options))
        if _grad_enabled and any(needs_input_grad):
            output.requires_grad = True
            output._creator = (cls, ctx, tensors)
        return output


class Tensor:
    """A numpy array that remembers how it was made, so gradients can flow back through it."""

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False):
        self.data = data.data if isinstance(data, Tensor) else np.asarray(data)
        self.requires_grad = requires_grad
        self.grad = None
        self._creator = None  # (Function subclass, its ctx, input tensors) when made by an op

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{flag})"

    def numpy(self):
        return self.data

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad that requires a gradient.

        Called on a scalar with no argument, the seed gradient is 1. Walks the graph in reverse
        topological order (iteratively, so deep graphs need no recursion), summing the gradients
        of a tensor that was used more than once before passing them on.
        """
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() with no gradient needs a scalar output; this tensor has shape {self.shape}")
            grad = np.ones_like(self.data)
        grads = {id(self): np.asarray(grad)}
        handed_to_leaves = {id(grads[id(self)])}  # the caller's array, then each one stored as a .grad
        for node in reversed(_topological_order(self)):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            if node._creator is None:
                if id(grad) in handed_to_leaves or grad.base is not None or not grad.flags.writeable:
                    grad = grad.copy()  # .grad may be updated in place (l2_grad): it must own its array
                handed_to_leaves.add(id(grad))
                node.grad = grad if node.grad is None else node.grad + grad
                continue
            function, ctx, inputs = node._creator
            input_grads = _checked_grads(function, function.backward(ctx, grad), inputs)
            for tensor, input_grad in zip(inputs, input_grads):
                if input_grad is None or not tensor.requires_grad:
                    continue
                previous = grads.get(id(tensor))
                grads[id(tensor)] = input_grad if previous is None else previous + input_grad

    # Operators, each mapped onto a Function. Imported on use: ops.py imports this module.
    def __add__(self, other):
        from .ops import Add
        return Add.apply(self, _like(other, self))

    def __mul__(self, other):
        from .ops import Mul
        return Mul.apply(self, _like(other, self))

    def __matmul__(self, other):
        from .ops import Matmul
        return Matmul.apply(self, _like(other, self))

    def __pow__(self, other):
        from .ops import Pow
        return Pow.apply(self, _like(other, self))

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-as_tensor(_like(other, self)))

    def __truediv__(self, other):
        return self * as_tensor(_like(other, self)) ** -1

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return as_tensor(_like(other, self)) - self

    def __rtruediv__(self, other):
        return as_tensor(_like(other, self)) / self

    def __rmatmul__(self, other):
        return as_tensor(other) @ self

    def __rpow__(self, other):
        return as_tensor(_like(other, self)) ** self

    def sum(self, axis=None, keepdims=False):
        from .ops import Sum
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    @property
    def T(self):
        """The transpose of the last two axes."""
        return Transpose.apply(self)


class Transpose(Function):
    """Swap the last two axes: Y = Aᵀ, so dA = Gᵀ."""

    @staticmethod
    def forward(ctx, a):
        return np.swapaxes(a, -1, -2)

    @staticmethod
    def backward(ctx, grad_output):
        return np.swapaxes(grad_output, -1, -2)


def as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _like(other, tensor):
    """A Python number becomes an array of the tensor's dtype: `x * 2` stays float32."""
    if isinstance(other, (int, float)) and np.issubdtype(tensor.dtype, np.floating):
        return np.asarray(other, dtype=tensor.dtype)
    return other


def _topological_order(root):
    """Every tensor `root` depends on, each after all of its inputs (iterative depth-first)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            if node._creator is not None:
                stack.extend([(t, False) for t in node._creator[2] if t.requires_grad and id(t) not in visited])
    return order


def _checked_grads(function, grads, inputs):
    """Enforce the backward contract: one gradient (or None) per input, each of its input's shape."""
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(inputs):
        raise RuntimeError(f"function {function.__name__}Backward returned an incorrect number of gradients "
                           f"(expected {len(inputs)}, got {len(grads)})")
    checked = []
    for position, (grad, tensor) in enumerate(zip(grads, inputs)):
        if grad is not None:
            grad = np.asarray(grad)
            if grad.shape != tensor.data.shape:
                name = f"{function.__name__}Backward"
                hint = (" (the forward broadcast this input: reduce the gradient with reduce_grad_to_shape)"
                        if grad.size > tensor.data.size else "")
                raise RuntimeError(f"function {name} returned a gradient of shape {grad.shape} for input "
                                   f"{position}, which has shape {tensor.shape}{hint}")
        checked.append(grad)
    return checked
