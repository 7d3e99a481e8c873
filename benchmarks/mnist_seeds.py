"""Is the MNIST threshold safe for a correct submission? Train the reference exactly as the
grader does (through the worker, with the rubric's settings) for 20 seeds; report each test
accuracy, how many reach full credit, and the time per run.

    make mnist-seeds      # writes results/mnist_seeds.json
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import DEFAULT_RUBRIC, ROOT  # noqa: E402
from grader.course import expose_mnist  # noqa: E402
from grader.rubric import load_rubric  # noqa: E402
from grader.sandbox.client import WorkerClient  # noqa: E402
from grader.sandbox.launch import scratch_parent, strongest_level  # noqa: E402
from grader.submission import load_submission, prepare_scratch  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mnist_seeds.json")
    args = parser.parse_args()
    rubric = load_rubric(DEFAULT_RUBRIC)
    settings = rubric.mnist
    runs = []
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(ROOT / "solutions"), scratch)
        folder, test_labels = expose_mnist(Path(scratch), settings["seed"] + 1)
        with WorkerClient(scratch, isolation=strongest_level()) as worker:
            for seed in range(args.seeds):
                started = time.perf_counter()
                reply = worker.request("train_mnist", settings["time_budget_seconds"], data_dir=folder.name,
                                       epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                                       seed=seed, train_examples=settings["train_examples"])
                accuracy = 100 * float(np.mean(reply["predictions"][-1] == test_labels))
                runs.append({"seed": seed, "accuracy": round(accuracy, 2), "seconds": round(time.perf_counter() - started, 2)})
                print(f"seed {seed:2d}: {accuracy:.2f}%  ({runs[-1]['seconds']:.1f} s)", flush=True)
    accuracies = [run["accuracy"] for run in runs]
    full = sum(rubric.mnist_credit(a) == 1 for a in accuracies)
    summary = {"settings": settings, "runs": runs, "min": min(accuracies), "max": max(accuracies),
               "full_credit": f"{full} of {len(runs)}", "median_seconds": float(np.median([r["seconds"] for r in runs]))}
    print(f"\nfull credit (≥ {settings['full_credit_accuracy']}%) on {full} of {len(runs)} seeds; "
          f"accuracy {min(accuracies):.2f}–{max(accuracies):.2f}%; median {summary['median_seconds']:.1f} s per run")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
