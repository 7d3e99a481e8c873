"""What the checks' tolerance rests on: how far correct code lands from the exact oracle, and how
far a gradient by central differences does, in roundings (checking.ROUNDINGS).

    make tolerances    # = .venv/bin/python -m benchmarks.tolerances --out results/tolerances.json

For every op, DRAWS inputs from its whole domain (OpSpec.domain, as the search draws them) are
given to the reference and to every correct fixture of the tests written another way
(test_grader_bugs.UNUSUAL_BUT_CORRECT, tests.support.corpus.CORRECT), run here in-process (our own code: no sandbox); each
output and each compared gradient's error is measured in roundings: |got − exact| over the
precision's epsilon times the size of its terms (the unit checking.tolerance scales). The same
for a backward by central differences of the reference's forward (h = 1e-6, float64 draws, away
from kinks: where it is at its best). The tolerance must sit far above the first and below the second.
"""
import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from grader import GRADED
from grader.checks.checking import ROUNDINGS, as_float64, precision
from grader.checks.opspec import SPECS
from grader.checks.test_search import drawn_from
from tests.support.corpus import CORRECT
from tests.support.grading import reference_copy
from tests.support.paths import SOLUTIONS
from tests.test_grader_bugs import UNUSUAL_BUT_CORRECT

ROOT = Path(__file__).resolve().parent.parent

DRAWS = 300


def load_package(folder, name):
    """folder/autodiff imported as a package of its own name, so that several live side by side."""
    spec = importlib.util.spec_from_file_location(name, folder / "autodiff" / "__init__.py",
                                                  submodule_search_locations=[str(folder / "autodiff")])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return {op: getattr(importlib.import_module(f"{name}.{module}"), op) for op, module in GRADED.items() if op in SPECS}, \
        importlib.import_module(f"{name}.tensor").Context


def roundings(got, expected, size, inputs):
    """The largest error of got beyond what underflow loses, in roundings of its terms (nan: not finite where the oracle is)."""
    got = np.asarray(got)
    if got.shape != np.shape(expected):
        return float("nan")
    info = precision(inputs, {"array": got})
    with np.errstate(all="ignore"):
        error = np.maximum(np.abs(got.astype(np.float64) - expected) - float(info.smallest_normal), 0) / (float(info.eps) * np.asarray(size))
        error = np.where(error > 0, error, 0.0)  # 0/0: no terms and no error
    return float(np.max(error, initial=0.0)) if np.all(np.isfinite(error)) else float("nan")


def measure(spec, functions, context, drawn):
    """The worst error, in roundings, of one implementation over the draws (forward and gradients)."""
    worst = {"float64": 0.0, "float32": 0.0}
    for draw in drawn:
        sent, wanted = spec.needs(draw.needs)
        ctx = context() if sent is None else context(needs_input_grad=sent)
        function = functions[spec.name]
        inputs = [np.array(x, copy=True) for x in draw.inputs]
        with np.errstate(all="ignore"):
            output = function.forward(ctx, *inputs, **draw.options)
            grads = function.backward(ctx, np.array(draw.upstream, copy=True))
        grads = grads if isinstance(grads, tuple) else (grads,)
        exact = as_float64(draw.inputs)
        sizes = spec.magnitudes(draw.upstream, exact, draw.options)
        errors = [roundings(output, spec.forward(*exact, **draw.options), sizes[0], draw.inputs)]
        for grad, expected, size, want, has in zip(grads, spec.backward(draw.upstream, *exact, **draw.options), sizes[1], wanted,
                                                   spec.gradient_inputs(), strict=False):
            if want and has and expected is not None:
                errors.append(roundings(grad, expected, size, draw.inputs))
        dtype = "float32" if any(x.dtype == np.float32 for x in draw.inputs) else "float64"
        worst[dtype] = max(worst[dtype], *errors) if not np.isnan(max(errors)) else float("inf")
    return worst


def central_difference_roundings(spec, drawn, h=1e-6):
    """Per draw (float64, every input wanted, away from kinks), the error of a backward by central
    differences of the exact forward, in roundings; its median and smallest."""
    found = []
    for draw in drawn:
        if any(x.dtype == np.float32 for x in draw.inputs) or not all(x.size for x in draw.inputs):
            continue
        exact = as_float64(draw.inputs)
        if spec.name in ("ReLU", "Log", "CrossEntropyLoss", "NLLLoss") and np.min(np.abs(exact[0])) < 1e-3:
            continue  # a kink or a clip: a central difference is not even close there
        expected = spec.backward(draw.upstream, *exact, **draw.options)
        sizes = spec.magnitudes(draw.upstream, exact, draw.options)[1]
        for index, (grad, size) in enumerate(zip(expected, sizes, strict=False)):
            if grad is None or exact[index].dtype.kind != "f":
                continue
            numerical = np.zeros_like(grad)
            with np.errstate(all="ignore"):
                for position in np.ndindex(exact[index].shape):
                    moved = [np.array(x, copy=True) for x in exact]
                    moved[index][position] += h
                    plus = np.sum(draw.upstream * spec.forward(*moved, **draw.options))
                    moved[index][position] -= 2 * h
                    minus = np.sum(draw.upstream * spec.forward(*moved, **draw.options))
                    numerical[position] = (plus - minus) / (2 * h)
            value = roundings(numerical, grad, size, draw.inputs)
            if np.isfinite(value) and np.any(grad != 0):
                found.append(value)
    return {"median": float(np.median(found)), "smallest": float(np.min(found)), "draws": len(found)} if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/tolerances.json")
    parser.add_argument("--draws", type=int, default=DRAWS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tolerances-") as folder:
        implementations = {"reference": load_package(SOLUTIONS.parent / "solutions", "reference_autodiff")}
        fixtures = [(param.id, param.values[0]) for param in UNUSUAL_BUT_CORRECT] + [(id, {module: edits}) for id, module, edits, _ in CORRECT]
        for number, (name, edits) in enumerate(fixtures):
            implementations[name] = load_package(reference_copy(Path(folder) / f"correct{number}", edits), f"correct_autodiff_{number}")
        results = {}
        for name, spec in SPECS.items():
            drawn = drawn_from(spec, seed=len(name), count=args.draws)
            correct = {which: measure(spec, functions, context, drawn) for which, (functions, context) in implementations.items()}
            results[name] = {"draws": len(drawn),
                             "correct_worst": {dtype: max(c[dtype] for c in correct.values()) for dtype in ("float64", "float32")},
                             "worst_by_implementation": {which: c for which, c in correct.items() if max(c.values()) > 0},
                             "central_differences": central_difference_roundings(spec, drawn[:60])}
            print(f"{name:17} correct ≤ {results[name]['correct_worst']}  central differences: {results[name]['central_differences']}")
    Path(args.out).write_text(json.dumps({"roundings_allowed": ROUNDINGS, "ops": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
