"""The scale checks (grader/checks/test_scale.py): values compared at scale with tolerances a
correct float32 submission meets and a wrong one does not, a budget the reference keeps within,
and a diagnosis that says which of forward and backward is slow."""
import tempfile
from pathlib import Path

import numpy as np
import pytest

from grader.checks import test_scale as scale
from grader.checks.checking import CheckFailed
from grader.checks.opspec import SPECS, scale_cases
from grader.sandbox import reaping
from grader.sandbox.client import WorkerClient
from grader.sandbox.launch import scratch_parent
from grader.sandbox.levels import level_available
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import reference_copy


def drawn(op, seed=0):
    """(case, rng, inputs, output, upstream), as the scale check draws them from its seed."""
    rng = np.random.default_rng(seed)
    case, inputs, output, upstream = scale.draw_scale(op, rng)
    return case, rng, inputs, output, upstream


def exact_gradients(op, inputs, upstream):
    """The gradients of Σ upstream ⊙ f, by formula, for the ops the tests below use."""
    if op == "Mul":
        a, b = inputs
        return [upstream * b, (upstream * a).sum(axis=0, keepdims=True)]
    if op == "Matmul":
        a, b = inputs
        return [upstream @ b.T, a.T @ upstream]
    if op == "Softmax":
        y = SPECS[op].forward(*inputs, axis=-1)
        return [y * (upstream - (upstream * y).sum(axis=-1, keepdims=True))]
    raise KeyError(op)


def reply_of(output, grads):
    return {"output": {"kind": "ndarray", "array": output},
            "grads": {"kind": "tuple", "length": len(grads), "items": [{"kind": "ndarray", "array": g} for g in grads]}}


@pytest.mark.parametrize("op", ["Mul", "Matmul", "Softmax"])
def test_right_values_pass_in_float64_and_in_float32(op):
    case, rng, inputs, output, upstream = drawn(op)
    grads = exact_gradients(op, inputs, upstream)
    for dtype in (np.float64, np.float32):
        scale.judge_values(op, case, inputs, output, upstream,
                           reply_of(output.astype(dtype), [g.astype(dtype) for g in grads]), np.random.default_rng(1))


@pytest.mark.parametrize("op", list(scale.SCALE_CASES))
def test_the_exact_derivative_is_used_for_exactly_the_inputs_a_forward_is_linear_in(op):
    """L with v in x's place is the derivative along v only where f is linear in x: for those inputs
    it agrees with a central difference, for every other it does not (none is listed by mistake)."""
    case = scale_cases(12)[op]
    rng = np.random.default_rng(0)
    inputs = case.sample(rng)
    upstream = rng.normal(size=np.shape(SPECS[op].forward(*inputs, **case.options)))
    for index, differentiable in enumerate(SPECS[op].gradient_inputs()):
        if not differentiable:
            continue
        v = rng.normal(size=inputs[index].shape)
        shifted = [[*inputs[:index], inputs[index] + sign * 1e-6 * v, *inputs[index + 1:]] for sign in (1, -1)]
        plus, minus = (np.vdot(upstream, SPECS[op].forward(*x, **case.options)) for x in shifted)
        central = (plus - minus) / 2e-6
        with np.errstate(all="ignore"):  # Pow of a negative base: nan, as far from the difference as any wrong value
            exact = float(np.vdot(upstream, SPECS[op].forward(*inputs[:index], v, *inputs[index + 1:], **case.options)))
        assert np.isclose(exact, central, rtol=1e-5) == (index in SPECS[op].linear_inputs)
        assert np.isclose(scale.directional_derivative(op, case.options, inputs, upstream, index, v), central, rtol=1e-5)


@pytest.mark.parametrize("wrong, says", [
    (np.zeros_like, "all zeros"),
    (lambda g: -g, "along a random direction"),
    (lambda g: g * 1.01, "along a random direction"),
    (lambda g: g + 1e6 * np.random.default_rng(2).normal(size=g.shape), "along a random direction"),  # huge garbage
    (lambda g: np.where(np.arange(g.size).reshape(g.shape) < g.size // 2, g, 0), "along a random direction"),  # half of it
], ids=["zeros", "negated", "1% off", "huge noise", "half missing"])
def test_wrong_gradients_are_caught_by_the_directional_derivatives(wrong, says):
    case, rng, inputs, output, upstream = drawn("Matmul")
    grads = exact_gradients("Matmul", inputs, upstream)
    with pytest.raises(CheckFailed, match=says):
        scale.judge_values("Matmul", case, inputs, output, upstream, reply_of(output, [wrong(grads[0]), grads[1]]),
                           np.random.default_rng(1))


def test_a_wrong_forward_at_scale_is_caught():
    case, rng, inputs, output, upstream = drawn("Mul")
    with pytest.raises(CheckFailed, match="Mul.forward is wrong at scale"):
        scale.judge_values("Mul", case, inputs, output, upstream, reply_of(output * (1 + 1e-3), exact_gradients("Mul", inputs, upstream)), rng)


NUMERICAL_MUL_BACKWARD = ("        grad_a = grad_output * b\n        grad_b = grad_output * a\n",
                          "        grad_a, grad_b = np.zeros_like(a), np.zeros_like(b)\n"
                          "        for grad, x in ((grad_a, a), (grad_b, b)):\n"
                          "            for i in np.ndindex(x.shape):\n"
                          "                old = x[i]\n                x[i] = old + 1e-6\n                up = np.sum(grad_output * a * b)\n"
                          "                x[i] = old - 1e-6\n                down = np.sum(grad_output * a * b)\n"
                          "                x[i] = old\n                grad[i] = (up - down) / 2e-6\n")


@pytest.fixture
def worker_of(tmp_path):
    opened = []

    def start(edits=None):
        scratch = tempfile.TemporaryDirectory(dir=scratch_parent())
        prepare_scratch(load_submission(reference_copy(tmp_path / f"s{len(opened)}", edits)), scratch.name)
        client = WorkerClient(Path(scratch.name), "process")
        opened.append((scratch, client))
        return client
    yield start
    for scratch, client in opened:
        client.stop()
        scratch.cleanup()


@pytest.mark.slow
def test_the_reference_keeps_within_its_budget(worker_of):
    client = worker_of()
    for op in ("Mul", "Softmax", "NLLLoss"):
        case, rng, inputs, output, upstream = drawn(op)
        budget = scale.budget_of(scale.reference_seconds(op, case.options, inputs, output, upstream))
        seconds, reply = scale.timed_call(client, op, case, inputs, upstream, budget)
        assert seconds < budget
        scale.judge_values(op, case, inputs, output, upstream, reply, rng)


@pytest.mark.slow
def test_a_backward_by_numerical_differences_is_stopped_and_named(worker_of):
    client = worker_of({"ops": [NUMERICAL_MUL_BACKWARD]})
    case, rng, inputs, output, upstream = drawn("Mul")
    reference = scale.reference_seconds("Mul", case.options, inputs, output, upstream)
    with pytest.raises(CheckFailed) as stopped:
        scale.timed_call(client, "Mul", case, inputs, upstream, scale.budget_of(reference))
    assert stopped.value.status == "timeout"
    diagnosis = scale.slow_part(client, "Mul", case, inputs, output, reference, None)
    assert diagnosis.status == "timeout"
    assert str(diagnosis).startswith("Mul.backward did not finish within") and "numerical differences" in str(diagnosis)


RELU_LOOP = ("        return np.maximum(x, 0)\n",
             "        out = np.empty(x.size)\n        for i, v in enumerate(x.flat):\n            out[i] = v if v > 0 else 0.0\n"
             "        return out.reshape(x.shape)\n")


def test_the_forward_alone_is_answered_as_the_diagnosis_asks_for_it(worker_of):
    """A forward without a backward and without the inputs carried back (the diagnosis's call):
    answered with the output alone. (It used to stop the worker, and every slow call that was not
    stopped was then blamed on its backward.)"""
    case = scale_cases(40)["ReLU"]
    inputs = case.sample(np.random.default_rng(0))
    seconds, reply = scale.timed_call(worker_of(), "ReLU", case, inputs, None, 600.0)
    assert set(reply) == {"output"}
    np.testing.assert_array_equal(reply["output"]["array"], np.maximum(inputs[0], 0))


RELU_BACKWARD_LOOP = ("        return grad_output * positive\n",
                      "        out = np.empty(grad_output.size)\n"
                      "        for i, (g, p) in enumerate(zip(grad_output.flat, positive.flat)):\n"
                      "            out[i] = g if p else 0.0\n        return out.reshape(grad_output.shape)\n")


@pytest.mark.slow
@pytest.mark.parametrize("edit, slow", [(RELU_LOOP, "forward"), (RELU_BACKWARD_LOOP, "backward")])
def test_a_slow_call_is_diagnosed_as_a_slow_forward_or_a_slow_backward(worker_of, monkeypatch, edit, slow):
    """The forward alone is timed to tell them apart: the part that took the more time beyond the
    grader's own for it is named. With a budget so ample that the forward alone fits one of its
    own: a loop in the forward made the whole call slow all the same, and the forward is named."""
    case, rng, inputs, output, upstream = drawn("ReLU")
    monkeypatch.setattr(scale, "budget_of", lambda reference: 600.0)
    student = worker_of({"activations": [edit]})
    reference = scale.reference_seconds("ReLU", case.options, inputs, output, upstream)
    seconds, _ = scale.timed_call(student, "ReLU", case, inputs, upstream, 600.0)
    diagnosis = str(scale.slow_part(student, "ReLU", case, inputs, output, reference, seconds))
    assert diagnosis.startswith(f"ReLU.{slow} is correct but too slow: the call took {seconds:.2f} s")
    assert ("numerical differences" in diagnosis) == (slow == "backward")


MUL_LOOPS = [("        return a * b\n",
              "        out = np.empty(np.broadcast_shapes(a.shape, b.shape))\n"
              "        for i in np.ndindex(out.shape):\n            out[i] = a[i] * b[(0,) + i[1:]]\n        return out\n"),
             ("        grad_a = grad_output * b\n",
              "        grad_a = np.empty(grad_output.shape)\n"
              "        for i in np.ndindex(grad_a.shape):\n            grad_a[i] = grad_output[i] * b[(0,) + i[1:]]\n")]


@pytest.mark.slow
def test_a_python_loop_over_the_elements_loses_the_scale_check(worker_of):
    """Right values, a loop over the elements in forward and backward: over its budget, twice."""
    with pytest.raises(CheckFailed, match="a Python loop over elements") as slow:
        scale.judge_scale(worker_of({"ops": MUL_LOOPS}), "Mul", np.random.default_rng(0), scale.SCALE_SIDE)
    assert slow.value.status == "timeout"


# Mul.forward, slow on its first scale call only (sleeping past a budget of 1 s), then fast: right
# or wrong on the next call as told.
SLOW_THEN = ("        return a * b\n",
             "        global _calls\n        _calls = globals().get('_calls', 0) + 1\n"
             "        if a.size > 10 ** 5 and _calls == 1:\n            import time\n            time.sleep(1.3)\n"
             "        return a * b * ({factor} if _calls > 1 else 1)\n")


@pytest.mark.slow
@pytest.mark.parametrize("factor", [1, 1.01], ids=["right", "wrong"])
def test_a_call_over_its_budget_is_timed_again_and_its_values_compared_again(worker_of, monkeypatch, factor):
    """A busy moment is forgiven (the second call counts), never a wrong answer given the second time."""
    monkeypatch.setattr(scale, "budget_of", lambda reference: 1.0)
    head, body = SLOW_THEN
    student = worker_of({"ops": [(head, body.format(factor=factor))]})
    if factor == 1:
        scale.judge_scale(student, "Mul", np.random.default_rng(0), scale.SCALE_SIDE)
    else:
        with pytest.raises(CheckFailed, match="Mul.forward is wrong at scale"):
            scale.judge_scale(student, "Mul", np.random.default_rng(0), scale.SCALE_SIDE)


# A Mul.forward slow on inputs it has not seen (sleeping past a budget of 1 s, within the hard
# limit of 2 s), instant on inputs it remembers: what a slow op caching its answers would gain.
REMEMBERING = ("        return a * b\n",
               "        key = a.tobytes()[:64] + b.tobytes()[:64]\n"
               "        if key not in _remembered:\n            import time\n            time.sleep(1.3 if a.size > 10 ** 5 else 0)\n"
               "            _remembered.add(key)\n        return a * b\n")


@pytest.mark.slow
def test_an_op_that_remembers_its_answers_gains_nothing_from_the_second_try(worker_of, monkeypatch):
    """The second try is on fresh inputs: remembering the first call's answer does not make it fast."""
    monkeypatch.setattr(scale, "budget_of", lambda reference: 1.0)
    student = worker_of({"ops": [("import numpy as np\n", "import numpy as np\n_remembered = set()\n"), REMEMBERING]})
    with pytest.raises(CheckFailed, match="too slow"):
        scale.judge_scale(student, "Mul", np.random.default_rng(0), scale.SCALE_SIDE)


# -- the expected derivatives, computed while MNIST trains -----------------------------------------

SIDE, SALT = 40, "a course's salt"


@pytest.mark.parametrize("op", list(scale.SCALE_CASES))
def test_the_derivatives_computed_ahead_are_those_of_the_checks_own_draws(op):
    """derivatives_ahead draws what the check draws from its own generator (seeded from its id and
    the salt), and draw_judged takes them: values equal, bit for bit, to those computed on the spot."""
    ahead = scale.derivatives_ahead(SIDE, SALT)[op]
    rng = scale.rng_for(f"test_scale.py::test_scale[{op}]", SALT)
    *_, (directions, taken) = scale.draw_judged(op, rng, SIDE, ahead)
    *_, (_, computed) = scale.draw_judged(op, scale.rng_for(f"test_scale.py::test_scale[{op}]", SALT), SIDE)
    assert taken is ahead[1]
    assert [None if v is None else v.tolist() for v in computed] == [None if v is None else v.tolist() for v in taken]


def test_derivatives_computed_for_other_draws_are_not_used():
    """An `ahead` whose draws are not the check's (another seed, another side): computed anew."""
    ahead = scale.derivatives_ahead(SIDE, SALT)["Pow"]
    for rng, side in ((scale.rng_for("test_scale.py::test_scale[Pow]", "another salt"), SIDE),
                      (scale.rng_for("test_scale.py::test_scale[Pow]", SALT), SIDE + 2)):
        *_, (_, values) = scale.draw_judged("Pow", rng, side, ahead)
        assert values is not ahead[1] and not np.array_equal(values[0], ahead[1][0])


def test_the_graded_run_trains_mnist_first_and_the_scale_checks_ids_are_those_computed_ahead():
    """MNIST's check is collected first (the derivatives are computed while it trains), and each
    scale check's id is the one derivatives_ahead seeds its draws with."""
    import subprocess
    import sys

    from tests.support.paths import ROOT

    listed = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "grader/checks/grading.ini"), "--rootdir",
                             str(ROOT), "-p", "grader.checks.plugin", "-q", "--collect-only", str(ROOT / "grader/checks")],
                            capture_output=True, text=True, cwd=ROOT, check=False).stdout.split()
    ids = [line.partition("::")[2] for line in listed if "::" in line]
    assert ids[0] == "test_accuracy"
    assert {f"test_scale[{op}]" for op in scale.SCALE_CASES} <= set(ids)


def test_a_check_takes_the_derivatives_computed_ahead_only_when_they_were():
    """computed_ahead: the op's entry; None for an op not computed, and None when the thread
    failed (memory beside MNIST, say) — the check then computes its own, never a grader error."""
    from concurrent.futures import Future

    done, failed = Future(), Future()
    done.set_result({"Mul": "Mul's"})
    failed.set_exception(MemoryError())
    assert scale.computed_ahead(done, "Mul") == "Mul's"
    assert scale.computed_ahead(done, "Pow") is None
    assert scale.computed_ahead(failed, "Mul") is None


def test_only_the_ops_asked_for_are_computed_ahead():
    """A selection of scale checks (`-k`, a rubric's subset): no time spent on the others."""
    assert set(scale.derivatives_ahead(SIDE, SALT, ["Log", "Sum"])) == {"Log", "Sum"}


# ops.py's import leaves four processes spinning, each in a session of its own.
SPINNERS = ("import numpy as np\n", "import numpy as np\nimport os as _os\nfor _ in range(4):\n    if _os.fork() == 0:\n"
            "        _os.setsid()\n        while True:\n            pass\n")


@pytest.mark.slow
@pytest.mark.parametrize("level", [pytest.param(level, marks=pytest.mark.skipif(not level_available(level), reason=f"no {level} level"))
                                   for level in ("namespace", "uid")])
def test_the_grader_times_itself_with_every_process_of_the_sandbox_stopped(tmp_path, level):
    """What the worker left spinning cannot make the grader's own time, and so the budget, longer."""
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(reference_copy(tmp_path / "s", {"ops": [SPINNERS]})), scratch)
        with WorkerClient(Path(scratch), level) as client:
            client.ensure_imported("ops", group="Mul")
            with client.paused():
                states = {pid: reaping.state(pid) for pid in reaping.processes_of(client.process.uid)}
                assert len(states) >= 5 and set(states.values()) == {"T"}, states
            assert all(reaping.state(pid) != "T" for pid in states if Path(f"/proc/{pid}").exists())
