"""Is the MNIST threshold safe for a correct submission? Train the reference exactly as the
grader does (the trusted side's loop of grader/mnist/loop.py on the worker's gradients, with the
rubric's settings) for 20 seeds; report each test accuracy, how many reach full credit, and the
time per run.

    make mnist-seeds      # writes results/mnist_seeds.json
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from grader import DEFAULT_RUBRIC, ROOT
from grader.course import expose_mnist
from grader.mnist.loop import train
from grader.rubric import load_rubric
from grader.sandbox.client import WorkerClient
from grader.sandbox.launch import scratch_parent
from grader.sandbox.levels import strongest_level
from grader.submission import load_submission, prepare_scratch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mnist_seeds.json")
    parser.add_argument("--budget", type=float, default=600,
                        help="seconds per run (the accuracies are measured, not the time: generous for a loaded machine)")
    args = parser.parse_args()
    rubric = load_rubric(DEFAULT_RUBRIC)
    settings = rubric.mnist
    runs = []
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(ROOT / "solutions"), scratch)
        folder, test_images, test_labels = expose_mnist(Path(scratch))
        with WorkerClient(scratch, isolation=strongest_level()) as worker:
            for seed in range(args.seeds):
                started = time.perf_counter()
                training = train(lambda **fields: worker.request("mnist_gradients", args.budget, **fields), worker.exchange,
                                 folder, test_images, test_labels, epochs=settings["epochs"], batch_size=settings["batch_size"],
                                 lr=settings["lr"], seed=seed, train_examples=settings["train_examples"])
                accuracy = training.accuracy_per_epoch[-1]
                runs.append({"seed": seed, "accuracy": accuracy, "seconds": round(time.perf_counter() - started, 2)})
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
