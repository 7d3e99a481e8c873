"""Typical student bugs, each planted in a copy of the reference: the grader takes points in the
bug's own group and nowhere else, and its feedback names the bug in words a student understands.

MNIST trains MLP3, built from Matmul, Add, ReLU, Softmax and CrossEntropyLoss: a bug in one of
those may cost the MNIST points too (`hurts_mnist`); a bug anywhere else may not.
"""
import pytest

from grader import GRADED
from tests.support import corpus, corpus_round2
from tests.support.grading import feedback, full_marks_except, grade_and_validate, graded_once, group_scores, reference_copy
from tests.support.paths import SOLUTIONS, STARTER

pytestmark = pytest.mark.slow  # every test here grades whole submissions


def bug(id, group, module, edits, *phrases, hurts_mnist=False):
    """The reference with `edits` [(old, new)] in `module`; the feedback for `group` must contain `phrases`."""
    return pytest.param(group, {module: edits}, phrases, hurts_mnist, id=id)


BUGS = [
    bug("Mul returns unreduced broadcast gradients", "Mul", "ops",
        [("grad_b = grad_output * a\n        return reduce_grad_to_shape(grad_a, a.shape), "
          "reduce_grad_to_shape(grad_b, b.shape)", "grad_b = grad_output * a\n        return grad_a, grad_b")],
        "forgot to reduce the broadcast", "reduce_grad_to_shape"),
    bug("Mul dA has a flipped sign", "Mul", "ops", [("grad_a = grad_output * b\n", "grad_a = -grad_output * b\n")],
        "wrong sign"),
    # G B instead of G Bᵀ: a wrong value for square B, a shape error (from np.matmul) for the others.
    bug("Matmul dA misses the transpose of B", "Matmul", "ops",
        [("np.matmul(grad_output, np.swapaxes(b, -1, -2))", "np.matmul(grad_output, b)")],
        "Bᵀ", "transposed", "Matmul.backward raised ValueError", hurts_mnist=True),
    bug("Pow dB takes the log of the exponent", "Pow", "ops", [("np.log(np.where(a > 0, a, 1))", "np.log(b)")],
        "log(b)", "log(a)"),
    bug("Sum forward ignores axis", "Sum", "ops",
        [("return np.sum(a, axis=axis, keepdims=keepdims)", "return np.sum(a)")],
        "Sum.forward returned a single number", "expected a numpy array of shape"),
    bug("Sum backward does not re-insert the summed axes", "Sum", "ops",
        [("        if ctx.axis is not None and not ctx.keepdims:\n            grad = np.expand_dims(grad, ctx.axis)\n", "")],
        "Sum.backward raised ValueError", "broadcast"),
    bug("ReLU backward returns the mask only", "ReLU", "activations",
        [("return grad_output * positive", "return positive.astype(np.float64)")],
        "does not use grad_output", "multiply by grad_output", hurts_mnist=True),
    bug("CrossEntropyLoss sums instead of averaging", "CrossEntropyLoss", "losses",
        [("-np.sum(t * np.log(clipped)) / p.shape[0]", "-np.sum(t * np.log(clipped))"), ("n = clipped.shape[0]", "n = 1")],
        "is N, the batch size", "1/N", hurts_mnist=True),
    bug("NLLLoss indexes a block, not one entry per row", "NLLLoss", "losses",
        [("np.maximum(p[rows, target], EPS)", "np.maximum(p[:, target], EPS)")],
        "p[:, target]", "p[np.arange(N), target]"),
    bug("l2_penalty uses the norm, not its square", "l2_penalty", "regularizers",
        [("float(np.sum(np.square(w.data)))", "float(np.linalg.norm(w.data))")],
        "‖W‖ (not squared)"),
    bug("l2_grad adds the norm of W", "l2_grad", "regularizers",
        [("w.grad = 2 * lam * w.data", "w.grad = 2 * lam * np.linalg.norm(w.data)"),
         ("w.grad += 2 * lam * w.data", "w.grad += 2 * lam * np.linalg.norm(w.data)")],
        "2λ‖W‖", "2λW"),
    # Bugs that hid where no case looked (issue 11).
    bug("ReLU passes the gradient at exactly 0 (x >= 0)", "ReLU", "activations",
        [("ctx.save_for_backward(x > 0)", "ctx.save_for_backward(x >= 0)")], "exactly 0", "x > 0, not x >= 0"),
    bug("ReLU zeroes grad_output in place", "ReLU", "activations",
        [("return grad_output * positive", "grad_output[~positive] = 0\n        return grad_output")],
        "changed grad_output in place", "Add hands the same grad_output array to both"),
    bug("Sum backward right on the first and last axis only", "Sum", "ops",
        [("grad = np.expand_dims(grad, ctx.axis)", "grad = np.expand_dims(grad, 0 if ctx.axis == 0 else -1)")],
        "2x3x4 axis=1 keepdims=False", "2x3x4 axis=-2 keepdims=False"),
    bug("Softmax forward right on the first and last axis only", "Softmax", "activations",
        [("y = exp / exp.sum(axis=axis, keepdims=True)",
          "total = exp.sum(axis=axis)\n        y = exp / (total[None] if axis == 0 else total[..., None])")],
        "2x3x4 axis=1", "2x3x4 axis=-2", "Softmax.forward raised ValueError"),
    bug("Mul keeps its inputs on the class, not on ctx", "Mul", "ops",
        [("ctx.save_for_backward(a, b)\n        return a * b", "Mul.saved = a, b\n        return a * b"),
         ("a, b = ctx.saved_tensors\n        grad_a = grad_output * b", "a, b = Mul.saved\n        grad_a = grad_output * b")],
        "state kept between calls"),
    bug("Matmul reads needs_input_grad the wrong way round", "Matmul", "ops",
        [("if ctx.needs_input_grad[0]:", "if ctx.needs_input_grad[1]:"),
         ("        if ctx.needs_input_grad[1]:\n            grad_b", "        if ctx.needs_input_grad[0]:\n            grad_b")],
        "returned None as the gradient for B", hurts_mnist=True),
    bug("Pow computed as exp(b log a): nan for a negative base", "Pow", "ops",
        [("y = np.power(a, b)\n        ctx", "y = np.exp(b * np.log(a))\n        ctx")], "3x4 with negatives ** 0-d 2 (x ** 2)", "nan"),
    # A derivative nobody wrote: the forward evaluated on x + ih, exact to rounding where the math is
    # analytic; where SPEC's formula is not (the clip, the kink), not SPEC's (docs/security.md).
    bug("Log backward by the complex step", "Log", "activations",
        [("clipped = np.maximum(x, EPS)\n        ctx.save_for_backward(clipped)", "clipped = np.maximum(x, EPS)\n        ctx.save_for_backward(x)"),
         ("return grad_output / clipped", "return grad_output * np.imag(np.log(np.maximum(clipped + 1e-30j, EPS))) / 1e-30")],
        "clip at EPS", "g / max(x, EPS)"),
    bug("Softmax returns float16: half precision loses the answer", "Softmax", "activations",
        [("        ctx.axis = axis\n        return y", "        ctx.axis = axis\n        return y.astype(np.float16)")],
        "Softmax.forward is wrong", hurts_mnist=True),
    # A backward by central differences of SPEC's own forward: within 1e-9 of the answer, 10⁵ roundings from it.
    bug("Mul backward by central differences", "Mul", "ops",
        [("grad_a = grad_output * b\n        grad_b = grad_output * a\n",
          "h = 1e-6\n        grad_a = grad_output * ((a + h) * b - (a - h) * b) / (2 * h)\n"
          "        grad_b = grad_output * (a * (b + h) - a * (b - h)) / (2 * h)\n")],
        "the gradient for a is wrong"),
    bug("ReLU backward by the complex step", "ReLU", "activations",
        [("ctx.save_for_backward(x > 0)", "ctx.save_for_backward(x)"),
         ("return grad_output * positive", "return grad_output * np.imag(np.maximum(positive + 1e-30j, 0)) / 1e-30")],
        "exactly 0", hurts_mnist=False),
]


@pytest.mark.parametrize("group, edits, phrases, hurts_mnist", BUGS)
def test_bug_costs_points_in_its_group_only_and_is_diagnosed(tmp_path, group, edits, phrases, hurts_mnist):
    report = grade_and_validate(reference_copy(tmp_path, edits))
    score, most = group_scores(report)[group]
    assert score < most, f"{group} kept all its points"
    assert full_marks_except(report, group, *(["MNIST"] if hurts_mnist else [])) == {}
    assert not [t["name"] for t in report["tests"] if t["status"] == "error"], "a wrong answer is a failure, not an error"
    said = feedback(report, group)
    for phrase in phrases:
        assert phrase in said, f"{phrase!r} missing from the feedback:\n{said}"


def correct(id, module, edits):
    return pytest.param({module: edits}, id=id)


# Correct code written another way than the reference: each must keep every point.
UNUSUAL_BUT_CORRECT = [
    correct("NLLLoss returns all zeros for the target", "losses", [("return grad_p, None", "return grad_p, np.zeros_like(target)")]),
    correct("Matmul with einsum", "ops", [("return np.matmul(a, b)", "return np.einsum('...ij,...jk->...ik', a, b)")]),
    correct("Softmax backward in another order", "activations",
            [("return y * (grad_output - (grad_output * y).sum(axis=ctx.axis, keepdims=True))",
              "return y * grad_output - y * np.sum(grad_output * y, axis=ctx.axis, keepdims=True)")]),
    correct("CrossEntropyLoss backward in another order, N as float32", "losses",
            [("return -grad_output * t / (n * clipped), grad_t", "return -(t / clipped) * grad_output / np.float32(n), grad_t")]),
    correct("ReLU backward with np.where", "activations", [("return grad_output * positive", "return np.where(positive, grad_output, 0.0)")]),
    correct("Sum backward returns a read-only broadcast view", "ops",
            [("return np.broadcast_to(grad, ctx.a_shape).copy()", "return np.broadcast_to(grad, ctx.a_shape)")]),
    correct("Pow dB with an unguarded log (nan for negative bases, whose exponent needs no gradient)", "ops",
            [("np.log(np.where(a > 0, a, 1))", "np.log(a)")]),
    correct("Log backward by the reciprocal, in the input's dtype", "activations",
            [("return grad_output / clipped", "return (grad_output * np.reciprocal(clipped)).astype(clipped.dtype)")]),
    # The edges SPEC.md's domain section draws (docs/SPEC.md, "The domain"): outside it, anything goes;
    # a float32 result is judged in float32.
    correct("Sum refuses axis=(), which the domain leaves out", "ops",
            [("ctx.a_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims",
              "if axis == ():\n            raise ValueError('axis=() sums nothing')\n"
              "        ctx.a_shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims")]),
    correct("Matmul refuses 1-D operands, which the domain leaves out", "ops",
            [("ctx.save_for_backward(a, b)\n        return np.matmul(a, b)",
              "if a.ndim < 2 or b.ndim < 2:\n            raise ValueError('Matmul takes matrices')\n"
              "        ctx.save_for_backward(a, b)\n        return np.matmul(a, b)")]),
    correct("Mul computes and returns float32", "ops",
            [("ctx.save_for_backward(a, b)\n        return a * b", "ctx.save_for_backward(a, b)\n        return (a * b).astype(np.float32)"),
             ("grad_b = grad_output * a\n        return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)",
              "grad_b = grad_output * a\n        return (reduce_grad_to_shape(grad_a, a.shape).astype(np.float32),\n"
              "                reduce_grad_to_shape(grad_b, b.shape).astype(np.float32))")]),
]


@pytest.mark.slow
@pytest.mark.parametrize("edits", UNUSUAL_BUT_CORRECT)
def test_correct_code_written_another_way_keeps_every_point(tmp_path, edits):
    report = grade_and_validate(reference_copy(tmp_path, edits))
    assert report["score"] == 100, full_marks_except(report)


def failed_kinds(report, group):
    return {t["kind"] for t in report["tests"] if t["group"] == group and t["status"] != "passed"}


def test_unstable_softmax_fails_only_where_logits_are_large(tmp_path):
    """The stability check, and the search, whose domain holds logits ± 1000: not forward or backward."""
    report = grade_and_validate(reference_copy(tmp_path, {"activations": [
        ("np.exp(x - x.max(axis=axis, keepdims=True))", "np.exp(x)")]}))
    assert failed_kinds(report, "Softmax") == {"stability", "search"}
    assert full_marks_except(report, "Softmax") == {}
    said = feedback(report, "Softmax")
    assert "nan" in said and "subtract the maximum" in said and "smallest failing input" in said


def test_unclipped_log_fails_only_where_the_clip_matters(tmp_path):
    report = grade_and_validate(reference_copy(tmp_path, {"activations": [("clipped = np.maximum(x, EPS)", "clipped = x")]}))
    assert failed_kinds(report, "Log") == {"stability", "search"}
    assert full_marks_except(report, "Log") == {}
    said = feedback(report, "Log")
    assert "clip at EPS" in said and "smallest failing input" in said


def test_reference_scores_full_marks():
    report = graded_once(SOLUTIONS)
    assert report["score"] == report["max_score"] == 100
    assert all(t["status"] == "passed" for t in report["tests"])


def test_untouched_starter_scores_zero_and_says_what_is_not_implemented():
    report = graded_once(STARTER)
    assert report["score"] == 0
    for test in report["tests"]:
        assert test["status"] == "failed", f"{test['name']}: {test['status']}\n{test['output']}"
        names = [test["group"]] if test["group"] in GRADED else list(GRADED)  # MNIST names the first op it reaches
        for case in test["cases"]:
            assert "not implemented" in case["output"], f"{test['name']} [{case['id']}]: {case['output']}"
            assert any(name in case["output"] for name in names), f"{test['name']} [{case['id']}]: {case['output']}"


# -- corpora of one-slip submissions, and of correct ones written another way (tests/support/corpus*.py) --
# Written against SPEC.md by someone playing the student, not from the grader's cases: each bug
# sits in one dimension of the domain (shapes, options, values, engine calls, stability, every
# output), and half of them once kept full marks (the second round: a sixth, against the checks the
# first round led to). MLP3 trains with Matmul, ReLU, Softmax and
# CrossEntropyLoss: a bug there may cost the MNIST points too.
MLP3_OPS = {"Matmul", "ReLU", "Softmax", "CrossEntropyLoss"}
CORPUS_BUGS, CORPUS_CORRECT = corpus.BUGS + corpus_round2.BUGS, corpus.CORRECT + corpus_round2.CORRECT


@pytest.mark.parametrize("group, module, edits", [pytest.param(group, module, edits, id=f"{dimension}: {id}")
                                                  for id, group, module, edits, _, dimension in CORPUS_BUGS])
def test_a_slip_anywhere_in_the_domain_costs_points_in_its_group_only(tmp_path, group, module, edits):
    report = grade_and_validate(reference_copy(tmp_path, {module: edits}))
    score, most = group_scores(report)[group]
    assert score < most, f"{group} kept all its points"
    assert full_marks_except(report, group, *(["MNIST"] if group in MLP3_OPS else [])) == {}
    assert not [t["name"] for t in report["tests"] if t["status"] == "error"], "a wrong answer is a failure, not an error"


@pytest.mark.parametrize("module, edits", [pytest.param(module, edits, id=id) for id, module, edits, _ in CORPUS_CORRECT])
def test_correct_code_on_the_edges_of_the_domain_keeps_every_point(tmp_path, module, edits):
    report = grade_and_validate(reference_copy(tmp_path, {module: edits}))
    assert report["score"] == 100, full_marks_except(report)
