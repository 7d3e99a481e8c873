"""The scale checks, measured: how far the reference keeps inside its budget on a busy machine, and
how far slow-but-correct submissions go past it.

    make bench-scale    # a run with the machine otherwise idle (results/scale_quiet.json),
                        # and one with two processes spinning (results/scale.json)

Each op's scale case (grader/checks/opspec.py SCALE_CASES) is timed as test_scale.py times it: the
trusted reference time measured just before the call, the budget derived from it, the call timed
on the trusted side; `--busy` processes spinning on the CPU meanwhile (default 2: the machine's two
cores taken). For the reference, the margin is budget / seconds (over 1: inside it), the smallest
of `--repeats`; each variant is judged by the check itself (its second and third attempts
included) on `--repeats` draws: how many lose the point, and every timed call's seconds / budget
(over 1: over it), or None when the call reached the hard limit.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grader.checks import test_scale
from grader.checks.checking import CheckFailed
from grader.checks.opspec import SCALE_CASES
from grader.rubric import SCALE_SIDE
from grader.sandbox.client import WorkerClient
from grader.sandbox.launch import scratch_parent
from grader.sandbox.levels import strongest_level
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import reference_copy

ROOT = Path(__file__).resolve().parent.parent

NUMERICAL = '''
def _numerical(f, inputs, g, h=1e-6):
    grads = []
    for x in inputs:
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            up = np.sum(g * f(*inputs))
            x[i] = old - h
            down = np.sum(g * f(*inputs))
            x[i] = old
            grad[i] = (up - down) / (2 * h)
        grads.append(grad)
    return grads
'''
RELU_FORWARD = "        return np.maximum(x, 0)\n"
FLAT_LOOP = ("        out = np.empty(x.size)\n        for i, v in enumerate(x.flat):\n            out[i] = v if v > 0 else 0.0\n"
             "        return out.reshape(x.shape)\n")
# Correct but slow (or unusual) submissions: op → (edits for reference_copy)
VARIANTS = {
    "Mul: a loop over elements (np.ndindex) in forward and backward": ("Mul", {"ops": [
        ("        return a * b\n",
         "        out = np.empty(np.broadcast_shapes(a.shape, b.shape))\n"
         "        for i in np.ndindex(out.shape):\n            out[i] = a[i] * b[(0,) + i[1:]]\n        return out\n"),
        ("        grad_a = grad_output * b\n",
         "        grad_a = np.empty(grad_output.shape)\n"
         "        for i in np.ndindex(grad_a.shape):\n            grad_a[i] = grad_output[i] * b[(0,) + i[1:]]\n")]}),
    "Mul: backward by numerical differences of its forward": ("Mul", {"ops": [
        ("import numpy as np\n", "import numpy as np\n" + NUMERICAL),
        ("        grad_a = grad_output * b\n        grad_b = grad_output * a\n",
         "        grad_a, grad_b = _numerical(lambda x, y: x * y, [a.copy(), b.copy()], grad_output)\n")]}),
    "ReLU: a loop over elements (x.flat) in forward": ("ReLU", {"activations": [(RELU_FORWARD, FLAT_LOOP)]}),
    "ReLU: nested loops over rows and columns (x[i, j]) in forward": ("ReLU", {"activations": [
        (RELU_FORWARD, "        out = np.zeros_like(x)\n        for i in range(x.shape[0]):\n"
                       "            for j in range(x.shape[1]):\n                if x[i, j] > 0:\n"
                       "                    out[i, j] = x[i, j]\n        return out\n")]}),
    "ReLU: np.vectorize in forward": ("ReLU", {"activations": [
        (RELU_FORWARD, "        return np.vectorize(lambda v: v if v > 0 else 0.0)(x)\n")]}),
    "ReLU: a list comprehension over x.tolist() in forward": ("ReLU", {"activations": [
        (RELU_FORWARD, "        return np.array([v if v > 0 else 0.0 for v in x.ravel().tolist()]).reshape(x.shape)\n")]}),
    "ReLU: a loop over elements (x.flat) in forward and backward": ("ReLU", {"activations": [
        (RELU_FORWARD, FLAT_LOOP),
        ("        return grad_output * positive\n",
         "        out = np.empty(grad_output.size)\n        for i, (g, p) in enumerate(zip(grad_output.flat, positive.flat)):\n"
         "            out[i] = g if p else 0.0\n        return out.reshape(grad_output.shape)\n")]}),
    "Log: a loop over elements (math.log of each) in forward": ("Log", {"activations": [
        ("        return np.log(clipped)\n",
         "        import math\n        out = np.empty(clipped.size)\n        for i, v in enumerate(clipped.flat):\n"
         "            out[i] = math.log(v)\n        return out.reshape(clipped.shape)\n")]}),
    "Matmul: a loop over output elements (a dot product each)": ("Matmul", {"ops": [
        ("        return np.matmul(a, b)\n",
         "        out = np.empty((a.shape[0], b.shape[1]))\n        for i in range(a.shape[0]):\n"
         "            for j in range(b.shape[1]):\n                out[i, j] = a[i] @ b[:, j]\n        return out\n")]}),
    "Matmul: three nested loops (a multiply-add each)": ("Matmul", {"ops": [
        ("        return np.matmul(a, b)\n",
         "        out = np.zeros((a.shape[0], b.shape[1]))\n        for i in range(a.shape[0]):\n"
         "            for j in range(b.shape[1]):\n                for k in range(a.shape[1]):\n"
         "                    out[i, j] += a[i, k] * b[k, j]\n        return out\n")]}),
    "Softmax: a loop over rows, each vectorised (unusual but fine)": ("Softmax", {"activations": [
        ("        return y\n",
         "        if x.ndim == 2 and axis in (-1, 1):\n            rows = [np.exp(r - r.max()) for r in x]\n"
         "            y = np.stack([r / r.sum() for r in rows])\n        return y\n")]}),
    "Log: float32 throughout (unusual but fine)": ("Log", {"activations": [
        ("        return np.log(clipped)\n", "        return np.log(clipped.astype(np.float32))\n"),
        ("        return grad_output / clipped\n", "        return (grad_output.astype(np.float32) / clipped.astype(np.float32))\n")]}),
}


def timings(client, op, seed):
    """(reference seconds, budget, seconds or None when stopped at the hard limit, passed) for one call."""
    rng = np.random.default_rng(seed)
    case, inputs, output, upstream = test_scale.draw_scale(op, rng)
    reference = test_scale.reference_seconds(op, case.options, inputs, output, upstream)
    budget = test_scale.budget_of(reference)
    try:
        seconds, reply = test_scale.timed_call(client, op, case, inputs, upstream, budget)
    except CheckFailed as failed:
        return reference, budget, None, False, str(failed)
    try:
        test_scale.judge_values(op, case, inputs, output, upstream, reply, rng)
        verdict = None
    except CheckFailed as failed:
        verdict = str(failed)
    return reference, budget, seconds, verdict is None and seconds <= budget, verdict


def verdicts(client, op, repeats):
    """The check's own verdicts (test_scale.judge_scale, its second and third attempts included) on
    `repeats` draws: (failures, each timed call's time ÷ budget, None when stopped, the first feedback)."""
    calls, real = [], test_scale.timed_call

    def recorded(student, op, case, inputs, upstream, budget):
        try:
            seconds, reply = real(student, op, case, inputs, upstream, budget)
        except CheckFailed:
            calls.append(None if upstream is not None else "forward alone")
            raise
        calls.append(seconds / budget if upstream is not None else "forward alone")
        return seconds, reply

    failures, feedback = 0, None
    test_scale.timed_call = recorded
    try:
        for seed in range(repeats):
            try:
                test_scale.judge_scale(client, op, np.random.default_rng(seed), SCALE_SIDE)
            except CheckFailed as failed:
                failures, feedback = failures + 1, feedback or str(failed)
    finally:
        test_scale.timed_call = real
    return failures, [call for call in calls if call != "forward alone"], feedback


def worker(folder, level):
    scratch = tempfile.TemporaryDirectory(dir=scratch_parent())
    prepare_scratch(load_submission(folder), scratch.name)
    client = WorkerClient(Path(scratch.name), level)
    for module in ("ops", "activations", "losses"):
        client.ensure_imported(module)
    return scratch, client


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "scale.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="processes spinning on the CPU meanwhile")
    parser.add_argument("--isolation", default=strongest_level())
    args = parser.parse_args()
    # Each in a session of its own, as other users' processes are: the kernel's autogroup scheduling
    # shares the CPU between sessions, so spinners in this one would slow the trusted reference
    # (and widen every budget) but not the sandbox, which has a session of its own.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as folder:
            scratch, client = worker(reference_copy(Path(folder) / "reference"), args.isolation)
            reference = {}
            for op in SCALE_CASES:
                runs = [timings(client, op, seed) for seed in range(args.repeats)]
                reference[op] = {"reference_seconds": [round(r[0], 3) for r in runs], "budget": [round(r[1], 3) for r in runs],
                                 "seconds": [round(r[2], 3) if r[2] else None for r in runs],
                                 "passed": all(r[3] for r in runs),
                                 "margin": round(min(r[1] / r[2] if r[2] else 0 for r in runs), 2)}
                print(op, reference[op], flush=True)
            client.stop()
            scratch.cleanup()
            variants = {}
            for name, (op, edits) in VARIANTS.items():
                scratch, client = worker(reference_copy(Path(folder) / name.replace(":", "").replace(" ", "-"), edits), args.isolation)
                failures, calls, feedback = verdicts(client, op, args.repeats)
                variants[name] = {"op": op, "runs": args.repeats, "lost": failures,
                                  "over_budget": [None if call is None else round(call, 2) for call in calls],
                                  "feedback": feedback}
                print(name, variants[name], flush=True)
                client.stop()
                scratch.cleanup()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    result = {"machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                          "load_average_at_end": os.getloadavg()},
              "busy_processes": args.busy, "isolation": args.isolation, "repeats": args.repeats,
              "budget": f"{test_scale.SCALE_FLOOR:g} s + {test_scale.SCALE_FACTOR} x reference; stopped at "
                        f"{test_scale.HARD_LIMIT_FACTOR} x budget",
              "reference": reference, "smallest_margin": min(r["margin"] for r in reference.values()),
              "variants": variants, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"smallest margin of the reference: {result['smallest_margin']}; written to {args.out}")


if __name__ == "__main__":
    main()
