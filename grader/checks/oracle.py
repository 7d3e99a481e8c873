"""The math of SPEC.md in float64: what the checks compare against.

Gradients are taken from central differences of the forwards, so the expected values do not
depend on anyone's backward; but at the clips at EPS, where SPEC.md's backward is not the
derivative of its forward, from SPEC.md's own formulas (SPEC_BACKWARD).
"""
import numpy as np

EPS = 1e-12


def cross_entropy(p, t):
    return -np.sum(t * np.log(np.maximum(p, EPS))) / p.shape[0]


def nll(p, target):
    return -np.sum(np.log(np.maximum(p[np.arange(p.shape[0]), target], EPS))) / p.shape[0]


def softmax(x, axis=-1):
    exp = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return exp / np.sum(exp, axis=axis, keepdims=True)


FORWARD = {
    "Mul": lambda a, b: a * b,
    "Matmul": np.matmul,
    "Pow": np.power,
    "Sum": lambda a, axis=None, keepdims=False: np.sum(a, axis=axis, keepdims=keepdims),
    "ReLU": lambda x: np.maximum(x, 0.0),
    "Softmax": softmax,
    "Log": lambda x: np.log(np.maximum(x, EPS)),
    "CrossEntropyLoss": cross_entropy,
    "NLLLoss": nll,
}


def _nll_gradient(g, p, target):
    picked = np.arange(len(p)), target
    grad = np.zeros_like(p, dtype=np.float64)
    grad[picked] = -g / (len(p) * np.maximum(p[picked], EPS))
    return grad


def _softmax_gradient(g, x, axis=-1):
    y = softmax(x, axis)
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


# SPEC.md's backward formulas (the gradient of the first input) of the ops with a clip at EPS: at
# the clip they are not the derivative of the forward, which is flat there (a central difference,
# or a complex step, gives 0 where SPEC says g / EPS), so the stability checks compare with these.
SPEC_BACKWARD = {
    "Softmax": _softmax_gradient,
    "Log": lambda g, x: g / np.maximum(x, EPS),
    "CrossEntropyLoss": lambda g, p, t: -g * t / (p.shape[0] * np.maximum(p, EPS)),
    "NLLLoss": _nll_gradient,
}
# The inputs (by position) each forward is linear in, the others held: L = Σ upstream ⊙ f is then
# linear in that input, and its derivative along v is exactly L with v in its place (one forward).
LINEAR_INPUTS = {"Mul": (0, 1), "Matmul": (0, 1), "Sum": (0,), "CrossEntropyLoss": (1,)}
INPUT_NAMES = {
    "Mul": ("a", "b"), "Matmul": ("A", "B"), "Pow": ("a (the base)", "b (the exponent)"), "Sum": ("a",),
    "ReLU": ("x",), "Softmax": ("x",), "Log": ("x",), "CrossEntropyLoss": ("p", "t"), "NLLLoss": ("p", "target"),
}


def l2_penalty(weights, lam):
    return lam * sum(np.sum(np.square(w)) for w in weights)


def numerical_gradients(name, inputs, options, upstream, differentiable, h=1e-6):
    """dL/d(input) for L = Σ upstream ⊙ f(inputs), by central differences, for each differentiable input."""
    grads = central_differences(lambda *arrays: FORWARD[name](*arrays, **options), inputs, upstream, differentiable, h)
    if name == "ReLU":
        grads[0][inputs[0] == 0] = 0.0  # SPEC fixes ReLU's gradient at exactly 0 as 0; a central difference there gives ½
    return grads


def central_differences(f, inputs, upstream, differentiable, h=1e-6):
    """dL/d(input) for L = Σ upstream ⊙ f(*inputs), for each differentiable input (None for the others)."""
    grads = []
    for index, x in enumerate(inputs):
        if not differentiable[index]:
            grads.append(None)
            continue
        grad = np.zeros_like(x, dtype=np.float64)
        for position in np.ndindex(x.shape):
            shifted = [np.array(v, copy=True) for v in inputs]
            shifted[index][position] = x[position] + h
            plus = np.sum(upstream * f(*shifted))
            shifted[index][position] = x[position] - h
            minus = np.sum(upstream * f(*shifted))
            grad[position] = (plus - minus) / (2 * h)
        grads.append(grad)
    return grads
