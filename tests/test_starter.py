"""The committed starter: generated from the solutions, blank exactly where students write, working elsewhere."""
import importlib.util
import re

import numpy as np
import pytest

from grader import COURSE_MODULES, GIVEN_MODULES, GRADED_MODULES
from tests.support.paths import SOLUTIONS, STARTER, import_autodiff
from tools import make_starter

GIVEN_FILES = ["__init__.py", *(f"{module}.py" for module in GIVEN_MODULES)]
GRADED_FILES = [f"{module}.py" for module in GRADED_MODULES]


@pytest.fixture(scope="module")
def starter():
    """The starter's `autodiff`; the solutions' is put back afterwards for the other test modules."""
    yield import_autodiff(STARTER)
    import_autodiff(SOLUTIONS)


def test_committed_starter_is_the_generated_one():
    wanted = make_starter.generated_starter()
    committed = {path.name for path in (STARTER / "autodiff").glob("*.py")}
    assert committed == set(wanted), "starter/autodiff has other files than solutions/autodiff: run `make starter`"
    for name, content in wanted.items():
        assert (STARTER / "autodiff" / name).read_text() == content, f"starter/autodiff/{name} has drifted: run `make starter`"


@pytest.mark.parametrize("name", GIVEN_FILES)
def test_given_modules_are_byte_identical_to_the_solutions(name):
    assert (STARTER / "autodiff" / name).read_bytes() == (SOLUTIONS / "autodiff" / name).read_bytes(), \
        f"starter/autodiff/{name} differs from solutions/autodiff/{name}"


@pytest.mark.parametrize("name", GRADED_FILES)
def test_graded_modules_differ_only_where_a_solution_was_blanked(name):
    """Independently of the generator: drop each BEGIN…END region from the solution and each
    generated raise from the starter, and the rest must be the same lines in the same order."""
    solution_lines, inside, regions = [], False, 0
    for line in (SOLUTIONS / "autodiff" / name).read_text().splitlines():
        if re.match(r"\s*# BEGIN SOLUTION", line):
            inside, regions = True, regions + 1
        elif re.match(r"\s*# END SOLUTION\s*$", line):
            inside = False
        elif not inside:
            solution_lines.append(line)
    raise_line = re.compile(r"\s*raise NotImplementedError\((['\"]).+\1\)$")
    starter_lines = (STARTER / "autodiff" / name).read_text().splitlines()
    kept = [line for line in starter_lines if not raise_line.match(line)]
    assert regions > 0, f"solutions/autodiff/{name} has no solution region"
    assert len(starter_lines) - len(kept) == regions, f"starter/autodiff/{name}: one raise per solution region"
    assert kept == solution_lines, f"starter/autodiff/{name} differs from the solution outside the solution regions"


def test_starter_package_and_all_its_modules_import(starter):
    for module in COURSE_MODULES:
        assert importlib.import_module(f"autodiff.{module}").__file__.startswith(str(STARTER))


P = np.full((2, 3), 1 / 3)
GRADED_CALLS = {  # "Class.method": a call that must reach that method of the starter
    "Mul.forward": lambda m: m.ops.Mul.forward(m.Context(), np.ones(2), np.ones(2)),
    "Mul.backward": lambda m: m.ops.Mul.backward(m.Context(), np.ones(2)),
    "Matmul.forward": lambda m: m.ops.Matmul.forward(m.Context(), np.ones((2, 2)), np.ones((2, 2))),
    "Matmul.backward": lambda m: m.ops.Matmul.backward(m.Context((True, True)), np.ones((2, 2))),
    "Pow.forward": lambda m: m.ops.Pow.forward(m.Context(), np.ones(2), np.ones(2)),
    "Pow.backward": lambda m: m.ops.Pow.backward(m.Context(), np.ones(2)),
    "Sum.forward": lambda m: m.ops.Sum.forward(m.Context(), np.ones(2)),
    "Sum.backward": lambda m: m.ops.Sum.backward(m.Context(), np.ones(())),
    "ReLU.forward": lambda m: m.activations.ReLU.forward(m.Context(), np.ones(2)),
    "ReLU.backward": lambda m: m.activations.ReLU.backward(m.Context(), np.ones(2)),
    "Softmax.forward": lambda m: m.activations.Softmax.forward(m.Context(), np.ones(2)),
    "Softmax.backward": lambda m: m.activations.Softmax.backward(m.Context(), np.ones(2)),
    "Log.forward": lambda m: m.activations.Log.forward(m.Context(), np.ones(2)),
    "Log.backward": lambda m: m.activations.Log.backward(m.Context(), np.ones(2)),
    "CrossEntropyLoss.forward": lambda m: m.losses.CrossEntropyLoss.forward(m.Context(), P, P),
    "CrossEntropyLoss.backward": lambda m: m.losses.CrossEntropyLoss.backward(m.Context(), np.ones(())),
    "NLLLoss.forward": lambda m: m.losses.NLLLoss.forward(m.Context(), P, np.array([0, 1])),
    "NLLLoss.backward": lambda m: m.losses.NLLLoss.backward(m.Context(), np.ones(())),
    "l2_penalty": lambda m: m.regularizers.l2_penalty([m.Tensor(np.ones((2, 2)))], 0.1),
    "l2_grad": lambda m: m.regularizers.l2_grad([m.Tensor(np.ones((2, 2)))], 0.1),
}


@pytest.mark.parametrize("where", GRADED_CALLS)
def test_every_graded_function_raises_not_implemented_naming_itself(starter, where):
    with pytest.raises(NotImplementedError) as error:
        GRADED_CALLS[where](starter)
    assert str(error.value).startswith(f"{where}: "), f"the message should name {where}: {error.value}"


def test_given_parts_of_the_starter_train_a_bias_only_model(starter):
    """y = x + b with the starter's Add, engine and SGD; the loss gradient 2(y − t)/N is supplied by hand."""
    from autodiff.ops import Add
    from autodiff.optim import SGD

    rng = np.random.default_rng(0)
    x, true_bias = rng.normal(size=(32, 3)), np.array([0.5, -1.0, 2.0])
    targets = x + true_bias
    b = starter.Tensor(np.zeros(3), requires_grad=True)
    optimizer = SGD([b], lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        y = Add.apply(x, b)
        y.backward(2 * (y.data - targets) / len(x))
        optimizer.step()
    np.testing.assert_allclose(b.data, true_bias, atol=1e-6)
