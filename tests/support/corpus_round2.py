"""A second red team's corpus (tests/test_grader_bugs.py grades each), in the format of tests/support/corpus.py: the
reference (solutions/autodiff/) with edits
{module: [(old, new), ...]}, each `old` occurring exactly once in that module.

BUGS:    (id, group, module, edits, rule, dimension): one slip a careful student could make, breaking the
         SPEC.md sentence quoted in `rule`, with an input where the op differs from the reference by more than
         SPEC's tolerance (checked by verify2.py, calling the op directly or through the course's engine).
CORRECT: (id, module, edits, why): correct code written in an unusual way; verify2.py compares it with
         SPEC's oracle, within SPEC's tolerance, on a large sample of the whole domain (the grader's own
         domain strategies, 10x its search), on every named and stability case, and through the engine.
None of these slips is in tests/support/corpus.py or tests/test_grader_bugs.py.
"""

IMPORTS_OPS = "from .tensor import Function, reduce_grad_to_shape\n"
MUL_RETURN = ("grad_b = grad_output * a\n        return reduce_grad_to_shape(grad_a, a.shape), "
              "reduce_grad_to_shape(grad_b, b.shape)")
MUL_BACKWARD = ("grad_a = grad_output * b\n        grad_b = grad_output * a\n"
                "        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)")
POW_DB = "grad_b = grad_output * y * np.log(np.where(a > 0, a, 1))"
POW_DA = "grad_a = grad_output * b * np.power(a, b - 1)"
SUM_BACKWARD = ("grad = np.asarray(grad_output)\n        if ctx.axis is not None and not ctx.keepdims:\n"
                "            grad = np.expand_dims(grad, ctx.axis)\n        return np.broadcast_to(grad, ctx.a_shape).copy()")
SUM_EXPAND = "grad = np.expand_dims(grad, ctx.axis)"
SOFTMAX_SHIFT = "exp = np.exp(x - x.max(axis=axis, keepdims=True))"
SOFTMAX_NORMALISE = "y = exp / exp.sum(axis=axis, keepdims=True)"
SOFTMAX_BACKWARD = "return y * (grad_output - (grad_output * y).sum(axis=ctx.axis, keepdims=True))"
LOG_FORWARD = "clipped = np.maximum(x, EPS)\n        ctx.save_for_backward(clipped)\n        return np.log(clipped)"
LOG_BACKWARD = "(clipped,) = ctx.saved_tensors\n        return grad_output / clipped"
RELU_SAVE = "ctx.save_for_backward(x > 0)"
RELU_BACKWARD = "(positive,) = ctx.saved_tensors\n        return grad_output * positive"
CE_CLIP = "clipped = np.maximum(p, EPS)"
CE_FORWARD_RETURN = "return np.asarray(-np.sum(t * np.log(clipped)) / p.shape[0])"
CE_BACKWARD = ("grad_t = -grad_output * np.log(clipped) / n if ctx.needs_input_grad[1] else None  # one-hot targets need none\n"
               "        return -grad_output * t / (n * clipped), grad_t")
NLL_PICK = "picked = np.maximum(p[rows, target], EPS)"
NLL_BACKWARD = ("grad_p = np.zeros(ctx.p_shape, dtype=ctx.p_dtype)\n"
                "        grad_p[rows, target] = -grad_output / (len(rows) * picked)")

BUGS = [
    # ------------------------------------------------------------------ Mul
    ("mul-reuses-grad-output-for-dA", "Mul", "ops",
     [(MUL_BACKWARD,
       "grad_b = grad_output * a\n"
       "        grad_output *= b  # dA in grad_output's own buffer: one array less\n"
       "        grad_a = grad_output\n"
       "        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)")],
     "backward(ctx, grad_output) returns gradients; one tensor may feed several ops (the course's Add hands one "
     "grad_output array to both branches). x 3x4, out = x * w + x * v through the engine: the first Mul's backward "
     "scales the shared grad_output by w, so the second branch gets g*w*v: x.grad = w + w*v instead of w + v",
     "engine"),
    # ------------------------------------------------------------------ Matmul
    ("matmul-nothing-when-none-needed", "Matmul", "ops",
     [("a, b = ctx.saved_tensors\n        grad_a = grad_b = None\n",
       "a, b = ctx.saved_tensors\n"
       "        if not any(ctx.needs_input_grad):  # nothing needs a gradient: skip the work\n"
       "            return None, None\n"
       "        grad_a = grad_b = None\n")],
     "A Context() made by hand must behave as if every input needs a gradient. Matmul(3x4, 4x5) with ctx = Context(): "
     "needs_input_grad is empty there (any() is False), so backward returns (None, None); reference (G Bᵀ, Aᵀ G)",
     "engine"),
    ("matmul-saves-inputs-that-need-grad", "Matmul", "ops",
     [("ctx.save_for_backward(a, b)\n        return np.matmul(a, b)",
       "ctx.save_for_backward(a if ctx.needs_input_grad[0] else None,  # keep only the inputs being trained\n"
       "                               b if ctx.needs_input_grad[1] else None)\n"
       "        return np.matmul(a, b)")],
     "one gradient per input that needs one; dB = Aᵀ G needs A. Matmul(x 5x4, W 4x3) with needs_input_grad "
     "(False, True), MLP3's first layer: A was not saved, backward raises TypeError; reference xᵀ G",
     "engine"),
    # ------------------------------------------------------------------ Pow
    ("pow-dB-log-clipped-at-EPS", "Pow", "ops",
     [(IMPORTS_OPS, "from .tensor import EPS, Function, reduce_grad_to_shape\n"),
      (POW_DB, "grad_b = grad_output * y * np.log(np.maximum(a, EPS))  # clipped as Log does: finite for a <= 0")],
     "dB = g ⊙ a^b ⊙ log(a), defined where a > 0; positive bases with any real exponent. Pow(a=[1e-20], b=[0.5]): "
     "dB = g·1e-10·log(1e-12) = -2.76e-9·g, reference g·1e-10·log(1e-20) = -4.61e-9·g",
     "values"),
    ("pow-dA-zero-at-zero-base", "Pow", "ops",
     [(POW_DA, "grad_a = grad_output * b * np.where(a == 0, 0.0, np.power(a, b - 1))  # 0^(b-1) may blow up: no slope at 0")],
     "dA = g ⊙ b ⊙ a^(b-1); zero bases with integer exponents from 1 (0^(b-1) is 1 or 0 there). Pow(a=[0., 2.], b=1.): "
     "dA[0] = 0, reference g (0^0 = 1)",
     "values"),
    ("pow-dA-abs-base", "Pow", "ops",
     [(POW_DA, "grad_a = grad_output * b * np.power(np.abs(a), b - 1)  # |a|: no nan for a negative base")],
     "dA = g ⊙ b ⊙ a^(b-1), negative bases with integer exponents. Pow(a=[-1.5], 0-d 2.0) (x ** 2): dA = 3g, reference -3g",
     "values"),
    # ------------------------------------------------------------------ Sum
    ("sum-reshapes-grad-output-in-place", "Sum", "ops",
     [(SUM_EXPAND, "grad.shape = np.expand_dims(grad, ctx.axis).shape  # re-insert the axes in place: no copy")],
     "backward must leave grad_output alone: the course's Add hands one array to both branches. x 3x3, "
     "out = x.sum(axis=0) + (x + c).sum(axis=1) through the engine: the first Sum's backward reshapes the shared "
     "grad_output to (1, 3), the second's then raises ValueError; reference all ones",
     "engine"),
    ("sum-infers-axes-from-shapes", "Sum", "ops",
     [(SUM_BACKWARD,
       "grad = np.asarray(grad_output)\n"
       "        if ctx.axis is not None and not ctx.keepdims:  # put back a 1 wherever g's shape stops matching a's\n"
       "            shape = list(grad.shape)\n"
       "            for i, n in enumerate(ctx.a_shape):\n"
       "                if i >= len(shape) or shape[i] != n:\n"
       "                    shape.insert(i, 1)\n"
       "            grad = grad.reshape(shape)\n"
       "        return np.broadcast_to(grad, ctx.a_shape).copy()")],
     "axis may be an int; g is re-expanded at the summed axes. Sum(3x3, axis=0), g = [1, 2, 3]: dA = [[1,1,1],[2,2,2],"
     "[3,3,3]] (g put on axis 1, where the sizes agree), reference [[1,2,3]]*3",
     "shapes"),
    # ------------------------------------------------------------------ ReLU
    ("relu-forward-float16", "ReLU", "activations",
     [("return np.maximum(x, 0)", "return np.maximum(x, 0).astype(np.float16)  # activations in half precision: half the memory")],
     "A result may be float32 or float64; a float16 result is judged as float32, and fails. ReLU(x=[0.1234567]): "
     "0.12347 (float16), reference 0.1234567",
     "dtypes"),
    ("relu-saves-float32-copy", "ReLU", "activations",
     [(RELU_SAVE, "ctx.save_for_backward(x.astype(np.float32))  # a float32 copy: half the memory of float64"),
      (RELU_BACKWARD, "(x,) = ctx.saved_tensors\n        return grad_output * (x > 0)")],
     "dX = g ⊙ 1(x > 0), ReLU at subnormal numbers. ReLU(float64 x=[1e-300, 5e-324, 1.]): dX = [0, 0, g], "
     "reference [g, g, g] (float32 rounds the tiny positives to 0)",
     "values"),
    # ------------------------------------------------------------------ Softmax
    ("softmax-saves-float16", "Softmax", "activations",
     [("ctx.save_for_backward(y)\n        ctx.axis = axis",
       "ctx.save_for_backward(y.astype(np.float16))  # probabilities in [0, 1]: half precision is plenty\n        ctx.axis = axis")],
     "dX = y ⊙ (g − Σ(g ⊙ y)), compared in float64 for float64 inputs. Softmax(3x4 normal): dX off by ~1e-4 relative "
     "(float16 y), far over 1000 roundings of float64",
     "dtypes"),
    ("softmax-shift-by-mean", "Softmax", "activations",
     [(SOFTMAX_SHIFT, "exp = np.exp(x - x.mean(axis=axis, keepdims=True))  # centre the logits")],
     "e^(x−m)/Σ e^(x−m) with m the max along axis; logits at ±1000. Softmax([[-1000., 0., 1000.]]): e^1000 overflows, "
     "y = [0, 0, nan], reference [0, 0, 1]",
     "stability"),
    ("softmax-shift-in-place", "Softmax", "activations",
     [(SOFTMAX_SHIFT, "x -= x.max(axis=axis, keepdims=True)  # shift in place: no copy of x\n        exp = np.exp(x)")],
     "forward gets the inputs' own arrays; one tensor may feed several ops. x = [[1., 2.]], out = softmax(x) + x "
     "through the engine: x is [[-1, 0]] when Add reads it; out = [[-0.73, 0.73]], reference [[1.27, 2.73]]",
     "engine"),
    ("softmax-eps-in-denominator", "Softmax", "activations",
     [(SOFTMAX_NORMALISE, "y = exp / (exp.sum(axis=axis, keepdims=True) + EPS)  # never divide by 0")],
     "y = e^(x−m) / Σ e^(x−m). Softmax(3x1) (one class): y = 1/(1 + 1e-12) = 1 − 1e-12, reference 1; SPEC's "
     "tolerance there is 1000 roundings of 2 (4.4e-13); also wherever one logit dominates a row",
     "values"),
    ("softmax-default-axis-none", "Softmax", "activations",
     [("def forward(ctx, x, axis=-1):", "def forward(ctx, x, axis=None):  # like np.sum: everything unless told")],
     "Softmax(x, axis=-1): the default axis is the last. Softmax(4x5) with the default axis: normalised over all "
     "20 entries (each row sums to ~0.25), reference each row sums to 1",
     "options"),
    ("softmax-seterr-raise", "Softmax", "activations",
     [("import numpy as np\n", "import numpy as np\n\nnp.seterr(all=\"raise\")  # fail loudly on any floating-point problem\n")],
     "Softmax logits at ±1000 and rows offset ±1000 apart (y = e^(x−m)/Σ, where e^(x−m) underflows to 0). "
     "Softmax([[0., -1000.]]): FloatingPointError (underflow in exp), reference [1, 0]",
     "stability"),
    ("softmax-backward-in-place-on-y", "Softmax", "activations",
     [(SOFTMAX_BACKWARD,
       "dot = (grad_output * y).sum(axis=ctx.axis, keepdims=True)\n"
       "        y *= grad_output - dot  # y is not needed any more: reuse its buffer\n"
       "        return y")],
     "forward returns one array, the op's output; backward must not change it: y is the Tensor's data. "
     "y = softmax(x) through the engine, y.backward(g): afterwards y.data holds dX, not the probabilities "
     "(the accuracy computed from it after the step is garbage); also the same call twice gives other gradients",
     "engine"),
    # ------------------------------------------------------------------ Log
    ("log-clips-input-in-place", "Log", "activations",
     [(LOG_FORWARD,
       "x[x < EPS] = EPS  # clip (in place: no copy of x)\n"
       "        ctx.save_for_backward(x)\n"
       "        return np.log(x)")],
     "forward gets the inputs' own arrays; one tensor may feed several ops; Log at negative numbers. "
     "x = [-1., 2.], out = log(x) + x * 3 through the engine: x is [1e-12, 2] when Mul reads it; "
     "out = [-27.63, 6.69], reference [-30.63, 6.69], and x.data changed",
     "engine"),
    ("log-clip-at-machine-epsilon", "Log", "activations",
     [("clipped = np.maximum(x, EPS)", "clipped = np.maximum(x, np.finfo(x.dtype).eps)  # the smallest safe value")],
     "y = log(max(x, EPS)), EPS = 1e-12. Log(x=[0.]): log(2.2e-16) = -36.04, reference log(1e-12) = -27.63",
     "values"),
    ("log-needs-input-grad-truthiness", "Log", "activations",
     [(LOG_BACKWARD,
       "if not ctx.needs_input_grad:  # no input needs a gradient\n            return None\n"
       "        (clipped,) = ctx.saved_tensors\n        return grad_output / clipped")],
     "A Context() made by hand must behave as if every input needs a gradient. Log(3x4) with ctx = Context(): "
     "its needs_input_grad is an empty tuple (falsy), backward returns None; reference g / x",
     "engine"),
    # ------------------------------------------------------------------ CrossEntropyLoss
    ("ce-clips-input-in-place", "CrossEntropyLoss", "losses",
     [(CE_CLIP, "p[p < EPS] = EPS  # clip in place: no copy of p\n        clipped = p")],
     "forward gets the inputs' own arrays; one tensor may feed several ops; p at 0. p = [[0., 1.]], t = [[0., 1.]], "
     "out = CE(p, t) + (p ** 1.5).sum() through the engine: p is [[1e-12, 1]] when Pow reads it: p.grad[0, 0] = 1.5e-6, "
     "reference 0, and p.data changed",
     "engine"),
    ("ce-keras-clip", "CrossEntropyLoss", "losses",
     [(CE_CLIP, "clipped = np.clip(p, EPS, 1 - EPS)  # keep p inside (0, 1), as Keras does")],
     "L = −(1/N) Σ t ⊙ log(max(p, EPS)); the losses' p at 1. CE(p=[[1., 0.]], t=[[1., 0.]]) float64: L = 1e-12, "
     "reference 0 (tolerance 2.2e-13); dP[0,0] = −g/(1 − 1e-12), reference −g",
     "values"),
    ("ce-dT-sign", "CrossEntropyLoss", "losses",
     [("grad_t = -grad_output * np.log(clipped) / n if", "grad_t = grad_output * np.log(clipped) / n if")],
     "dT = −g log(max(p, EPS)) / N. CE(4x3, soft targets) with a hand-made Context: dT negated",
     "outputs"),
    ("ce-mean-over-all-entries", "CrossEntropyLoss", "losses",
     [(CE_FORWARD_RETURN, "return np.asarray(-np.mean(t * np.log(clipped)))  # the mean loss")],
     "L = −(1/N) Σ t ⊙ log(max(p, EPS)), N the batch size. CE(4x3 one-hot): L is 1/C = 1/3 of the reference",
     "outputs"),
    ("ce-eps-as-float32", "CrossEntropyLoss", "losses",
     [(CE_CLIP, "clipped = np.maximum(p, np.float32(EPS))  # float32 EPS: keeps MLP3's float32 arrays float32")],
     "log(max(p, EPS)), EPS = 1e-12; float64 inputs compared in float64. CE(p=[[0., 1.]], t=[[1., 0.]]) float64: "
     "L = −log(9.9999998e-13) = 27.6310211, reference 27.6310211 + 2.4e-8; dP[0,0] off by 2.4e-8 relative",
     "dtypes"),
    ("ce-renormalises-p", "CrossEntropyLoss", "losses",
     [(CE_CLIP, "p = p / p.sum(axis=1, keepdims=True)  # rows of probabilities sum to 1\n        " + CE_CLIP)],
     "L = −(1/N) Σ t ⊙ log(max(p, EPS)) on the p given. CE(p=[[0.2, 0.2]], t=[[1., 0.]]): L = log 2 = 0.69, "
     "reference −log 0.2 = 1.61",
     "values"),
    # ------------------------------------------------------------------ NLLLoss
    ("nll-clips-input-in-place", "NLLLoss", "losses",
     [(NLL_PICK, "np.maximum(p, EPS, out=p)  # clip in place: no copy of p\n        picked = p[rows, target]")],
     "forward gets the inputs' own arrays; one tensor may feed several ops; p at 0. p = [[0., 1.]], target [1], "
     "out = NLL(p, target) + (p ** 1.5).sum() through the engine: p.grad[0, 0] = 1.5e-6, reference 0, and p.data changed",
     "engine"),
    ("nll-keras-clip", "NLLLoss", "losses",
     [(NLL_PICK, "picked = np.clip(p[rows, target], EPS, 1 - EPS)  # keep p inside (0, 1), as Keras does")],
     "L = −(1/N) Σ log(max(p[i, t_i], EPS)); the losses' p at 1. NLL(p=[[1., 0.]], target [0]) float64: L = 1e-12, "
     "reference 0 (tolerance 2.2e-13); dP[0,0] = −g/(1 − 1e-12), reference −g",
     "values"),
    ("nll-target-on-the-class", "NLLLoss", "losses",
     [("ctx.save_for_backward(picked, rows, target)",
       "ctx.save_for_backward(picked, rows)\n        NLLLoss.target = target  # labels are data, not an array to save"),
      ("picked, rows, target = ctx.saved_tensors", "picked, rows = ctx.saved_tensors\n        target = NLLLoss.target")],
     "values other than arrays go on ctx (state between calls); one op may be called twice before either backward. "
     "out = NLL(p, t1) + NLL(p, t2) through the engine, p 2x3, t1 = [0, 1], t2 = [2, 2]: both backwards use t2, "
     "p.grad is zero at the t1 entries",
     "engine"),
    ("nll-backward-column-assign", "NLLLoss", "losses",
     [("grad_p[rows, target] = -grad_output", "grad_p[:, target] = -grad_output")],
     "dP zero except −g / (N max(p[i, t_i], EPS)) at each (i, t_i). NLL(4x3): whole columns filled (every row gets "
     "every target's value)",
     "outputs"),
    ("nll-np-choose", "NLLLoss", "losses",
     [(NLL_PICK, "picked = np.maximum(np.choose(target, p.T), EPS)  # p[i, target[i]] for each row")],
     "p of shape (N, C) with C ≥ 1 (no upper bound). NLL(p 4x70): np.choose takes at most 63 choices: ValueError; "
     "right for C ≤ 63 (MNIST's 10, every named case, the fast rubric's scale side 40)",
     "shapes"),
    ("nll-int64-via-view", "NLLLoss", "losses",
     [("rows = np.arange(p.shape[0])", "target = target.view(np.int64)  # indices as int64\n        rows = np.arange(p.shape[0])")],
     "NLLLoss's target int64 or int32. NLL(p 4x3, int32 target [0, 2, 1, 2]): view reinterprets pairs of int32 as one "
     "int64: IndexError (or 2 huge indices)",
     "dtypes"),
    # ------------------------------------------------------------------ regularizers
    ("l2_penalty-spectral-norm", "l2_penalty", "regularizers",
     [("float(np.sum(np.square(w.data)))", "float(np.linalg.norm(w.data, 2)) ** 2")],
     "λ Σ_W ‖W‖²_F (Frobenius). W = [[1, 0], [0, 1]], λ = 1: 1 (ord=2 is the largest singular value), reference 2",
     "outputs"),
    ("l2_grad-replaces-existing-grad", "l2_grad", "regularizers",
     [("if w.grad is None:\n            w.grad = 2 * lam * w.data\n        else:\n            w.grad += 2 * lam * w.data",
       "w.grad = 2 * lam * w.data  # the penalty's gradient")],
     "adds 2λW to each W.grad in place. W.grad = G before: 2λW, reference G + 2λW (the loss's gradient is lost)",
     "outputs"),
]

CORRECT = [
    ("relu-abs-average", "activations",
     [("ctx.save_for_backward(x > 0)\n        return np.maximum(x, 0)",
       "ctx.save_for_backward(x > 0)\n        return (x + np.abs(x)) / 2  # max(x, 0) without a comparison")],
     "(x + |x|) / 2: exact in binary floating point (2x and /2 are exact), 0 at ±0, subnormals kept"),
    ("relu-float16-mask", "activations",
     [(RELU_SAVE, "ctx.save_for_backward((x > 0).astype(np.float16))  # 0/1: exact in half precision")],
     "a float16 0/1 mask; g * mask takes g's dtype (float64 or float32), never float16"),
    ("relu-float32-results", "activations",
     [("return np.maximum(x, 0)", "return np.maximum(x, 0).astype(np.float32)  # MLP3 trains in float32"),
      ("return grad_output * positive", "return (grad_output * positive).astype(np.float32)")],
     "SPEC: a result may be float32 (judged in float32); the mask from the float64 x, so subnormals pass"),
    ("softmax-in-place-on-own-arrays", "activations",
     [(SOFTMAX_SHIFT + "\n        " + SOFTMAX_NORMALISE,
       "y = x - x.max(axis=axis, keepdims=True)  # a new array: ours to change\n"
       "        np.exp(y, out=y)\n"
       "        y /= y.sum(axis=axis, keepdims=True)"),
      (SOFTMAX_BACKWARD,
       "grad = grad_output * y\n"
       "        dot = grad.sum(axis=ctx.axis, keepdims=True)\n"
       "        np.subtract(grad_output, dot, out=grad)\n"
       "        grad *= y\n"
       "        return grad")],
     "exp, division and subtraction in place, always on arrays the op made itself (out=, /=, *=)"),
    ("softmax-vecdot", "activations",
     [(SOFTMAX_BACKWARD,
       "dot = np.expand_dims(np.vecdot(grad_output, y, axis=ctx.axis), ctx.axis)  # Σ_axis g ⊙ y (numpy 2)\n"
       "        return y * (grad_output - dot)")],
     "np.vecdot along the axis (numpy ≥ 2.0), the axis put back with expand_dims"),
    ("softmax-float32-results", "activations",
     [(SOFTMAX_SHIFT, "x = x.astype(np.float32)  # MLP3 trains in float32\n        " + SOFTMAX_SHIFT),
      (SOFTMAX_BACKWARD, "return (y * (grad_output - (grad_output * y).sum(axis=ctx.axis, keepdims=True))).astype(np.float32)")],
     "SPEC: a result may be float32 (judged in float32): computed in float32 throughout, float64 logits included"),
    ("log-where-out", "activations",
     [(LOG_FORWARD,
       "ctx.save_for_backward(x)\n"
       "        floor = np.full(np.shape(x), np.log(EPS), dtype=np.result_type(x, np.float32))\n"
       "        return np.log(x, out=floor, where=x > EPS)  # log(EPS) below the clip, never log of 0 or less"),
      (LOG_BACKWARD,
       "(x,) = ctx.saved_tensors\n"
       "        return np.divide(grad_output, x, out=np.array(grad_output / EPS), where=x > EPS)")],
     "np.log and np.divide with where= and out= (prefilled with the clip's values)"),
    ("log-masked-array", "activations",
     [(LOG_FORWARD,
       "clipped = np.maximum(x, EPS)\n        ctx.save_for_backward(clipped)\n"
       "        return np.ma.log(clipped)  # the masked log: no warnings (nothing is masked after the clip)")],
     "np.ma.log returns a MaskedArray, an np.ndarray subclass, none of it masked; the engine's np.asarray reads it "
     "(debatable: SPEC says 'returns one numpy array')"),
    ("mul-out-arguments", "ops",
     [(MUL_BACKWARD,
       "shape = np.broadcast_shapes(np.shape(grad_output), a.shape, b.shape)\n"
       "        grad_a = np.multiply(grad_output, b, out=np.empty(shape, np.result_type(grad_output, b)))\n"
       "        grad_b = np.multiply(grad_output, a, out=np.empty(shape, np.result_type(grad_output, a)))\n"
       "        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)")],
     "products written into preallocated arrays with out="),
    ("matmul-mT-list", "ops",
     [("grad_a = reduce_grad_to_shape(np.matmul(grad_output, np.swapaxes(b, -1, -2)), a.shape)",
       "grad_a = reduce_grad_to_shape(grad_output @ b.mT, a.shape)  # .mT: the matrix transpose (numpy 2)"),
      ("grad_b = reduce_grad_to_shape(np.matmul(np.swapaxes(a, -1, -2), grad_output), b.shape)\n        return grad_a, grad_b",
       "grad_b = reduce_grad_to_shape(a.mT @ grad_output, b.shape)\n        return [grad_a, grad_b]  # a list")],
     "ndarray.mT (numpy ≥ 2.0) and a list of gradients, which the engine accepts"),
    ("matmul-saves-only-what-backward-needs", "ops",
     [("ctx.save_for_backward(a, b)\n        return np.matmul(a, b)",
       "ctx.save_for_backward(a if ctx.needs_input_grad[1] else None,  # dB needs A, dA needs B\n"
       "                               b if ctx.needs_input_grad[0] else None)\n"
       "        ctx.a_shape, ctx.b_shape = a.shape, b.shape\n"
       "        return np.matmul(a, b)"),
      ("np.matmul(grad_output, np.swapaxes(b, -1, -2)), a.shape)", "np.matmul(grad_output, np.swapaxes(b, -1, -2)), ctx.a_shape)"),
      ("np.matmul(np.swapaxes(a, -1, -2), grad_output), b.shape)", "np.matmul(np.swapaxes(a, -1, -2), grad_output), ctx.b_shape)")],
     "saves A only if B needs a gradient and B only if A does (a hand-made Context: both)"),
    ("pow-float-power-log-abs", "ops",
     [("y = np.power(a, b)\n        ctx", "y = np.float_power(a, b)  # always float64\n        ctx"),
      (POW_DA, "grad_a = grad_output * b * np.float_power(a, b - 1)"),
      (POW_DB,
       "with np.errstate(divide='ignore', invalid='ignore'):  # dB is only defined (and needed) where a > 0\n"
       "            grad_b = grad_output * y * np.log(np.abs(a))")],
     "np.float_power (float64 even for float32 inputs, judged in float32) and log|a| (nan at a zero base, where dB "
     "is not compared)"),
    ("pow-log-where-no-out", "ops",
     [(POW_DB, "grad_b = grad_output * y * np.log(a, where=a > 0)  # elsewhere: whatever, dB is undefined there")],
     "np.log with where= and no out=: uninitialised values where a <= 0, exactly where SPEC leaves dB undefined"),
    ("pow-exp-log-positive-branch", "ops",
     [("y = np.power(a, b)\n        ctx",
       "with np.errstate(divide='ignore', invalid='ignore'):\n"
       "            y = np.where(a > 0, np.exp(b * np.log(np.where(a > 0, a, 1))), np.power(a, b))  # exp(b log a) where a > 0\n"
       "        ctx"),
      (POW_DA,
       "with np.errstate(divide='ignore', invalid='ignore'):\n"
       "            grad_a = grad_output * b * np.where(a > 0, y / np.where(a > 0, a, 1), np.power(a, b - 1))")],
     "y = exp(b log a) and dA = b y / a for positive bases, np.power elsewhere"),
    ("sum-kept-shape-times-ones", "ops",
     [(SUM_BACKWARD,
       "kept = np.sum(np.zeros(ctx.a_shape, dtype=np.int8), axis=ctx.axis, keepdims=True).shape  # a's shape, summed axes 1\n"
       "        return np.ones(ctx.a_shape) * np.reshape(grad_output, kept)")],
     "the kept shape from np.sum(keepdims=True) of a dummy, g reshaped to it and multiplied by ones"),
    ("sum-python-float-for-everything", "ops",
     [("return np.sum(a, axis=axis, keepdims=keepdims)",
       "if axis is None and not keepdims:\n            return float(np.sum(a))  # a plain number\n"
       "        return np.sum(a, axis=axis, keepdims=keepdims)")],
     "a Python float where the output is 0-d (SPEC: a single number is accepted there)"),
    ("ce-numpy-scalar-where-divide", "losses",
     [(CE_FORWARD_RETURN, "return -np.sum(t * np.log(clipped)) / p.shape[0]  # a numpy scalar"),
      (CE_BACKWARD,
       "grad_t = -grad_output * np.log(clipped) / n if ctx.needs_input_grad[1] else None\n"
       "        ratio = np.divide(t, clipped, out=np.zeros(np.broadcast_shapes(t.shape, clipped.shape)), where=t != 0)\n"
       "        return -grad_output / n * ratio, grad_t")],
     "the loss as a numpy scalar; t / p divided only where t != 0 (zeros elsewhere)"),
    ("ce-float32-results", "losses",
     [(CE_CLIP, "p, t = p.astype(np.float32), t.astype(np.float32)  # MLP3 trains in float32\n        " + CE_CLIP),
      ("return -grad_output * t / (n * clipped), grad_t",
       "return (-grad_output * t / (n * clipped)).astype(np.float32), (None if grad_t is None else grad_t.astype(np.float32))")],
     "SPEC: a result may be float32 (judged in float32): computed in float32 throughout"),
    ("ce-boolean-index-backward", "losses",
     [("return -grad_output * t / (n * clipped), grad_t",
       "grad_p = np.zeros(clipped.shape, dtype=np.result_type(grad_output, clipped))\n"
       "        nonzero = t != 0\n"
       "        grad_p[nonzero] = -grad_output * t[nonzero] / (n * clipped[nonzero])\n"
       "        return grad_p, grad_t")],
     "dP computed only at the entries where t != 0, by boolean indexing"),
    ("nll-python-floats", "losses",
     [("import numpy as np\n", "import math\n\nimport numpy as np\n"),
      ("return np.asarray(-np.sum(np.log(picked)) / p.shape[0])",
       "return -math.fsum(math.log(float(v)) for v in picked) / p.shape[0]  # a Python float")],
     "the loss with math.log and math.fsum over Python floats, returned as a Python float"),
    ("nll-put-along-axis", "losses",
     [(NLL_BACKWARD,
       "grad_p = np.zeros(ctx.p_shape, dtype=ctx.p_dtype)\n"
       "        np.put_along_axis(grad_p, target[:, None], (-grad_output / (len(rows) * picked))[:, None], axis=1)")],
     "np.put_along_axis into the zero gradient"),
    ("nll-one-hot-mask", "losses",
     [("return np.asarray(-np.sum(np.log(picked)) / p.shape[0])",
       "one_hot = target[:, None] == np.arange(p.shape[1])\n"
       "        return np.asarray(-np.sum(np.log(np.maximum(p, EPS)) * one_hot) / p.shape[0])  # the CE formula"),
      (NLL_BACKWARD,
       "one_hot = target[:, None] == np.arange(ctx.p_shape[1])\n"
       "        grad_p = np.zeros(ctx.p_shape, dtype=ctx.p_dtype)\n"
       "        grad_p[one_hot] = -grad_output / (len(rows) * picked)")],
     "a boolean one-hot mask: the loss as Σ log(max(p, EPS)) ⊙ one_hot, dP assigned through the mask"),
    ("relu-fast-path-returns-input", "activations",
     [("ctx.save_for_backward(x > 0)\n        return np.maximum(x, 0)",
       "positive = x > 0\n        ctx.save_for_backward(positive)\n"
       "        if positive.all():\n            return x  # nothing to clip: no copy\n"
       "        return np.maximum(x, 0)")],
     "returns the input array itself (a view, aliasing it) when every entry is positive"),
    ("softmax-debug-print", "activations",
     [("ctx.save_for_backward(y)\n        ctx.axis = axis",
       "print('softmax', x.shape, 'axis', axis, 'row sums', np.ravel(y.sum(axis=axis))[:3])  # left from debugging\n"
       "        ctx.save_for_backward(y)\n        ctx.axis = axis")],
     "a debugging print left in the forward (stdout)"),
    ("ops-self-test-on-import", "ops",
     [("class Mul(Function):",
       "def _self_test():  # a gradient check, run on import\n"
       "    from .tensor import Tensor\n"
       "    x = Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)\n"
       "    (x * x).sum().backward()\n"
       "    print('Mul self-test:', np.allclose(x.grad, 2 * x.data))\n"
       "\n\n"
       "class Mul(Function):"),
      ("class Sum(Function):",
       "class Sum(Function):"),
     ],
     "a self-test at the end of ops.py that runs the engine on import and prints"),
]
# The self-test is called after the classes are defined.
CORRECT[-1] = (CORRECT[-1][0], CORRECT[-1][1],
               [CORRECT[-1][2][0],
                ("        return np.broadcast_to(grad, ctx.a_shape).copy()\n        # END SOLUTION\n",
                 "        return np.broadcast_to(grad, ctx.a_shape).copy()\n        # END SOLUTION\n\n\n_self_test()\n")],
               CORRECT[-1][3])
