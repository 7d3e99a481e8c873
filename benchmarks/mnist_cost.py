"""What the MNIST check costs, before and after a change: the check (grader/checks/test_mnist.py,
the rubric's real settings, the reference in solutions/) run alternately from this tree and from a
git revision, each in a fresh pytest process as a grading runs it; its wall time and accuracy.

    make mnist-cost BEFORE=REV
    python -m benchmarks.mnist_cost --before REV --rounds 3 --out results/mnist_cost.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TREE = ("grader", "starter", "solutions", "datasets")


def export(revision, folder):
    """The files of `revision` a grading needs, in folder."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, *TREE], check=True, capture_output=True).stdout
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_check(tree, isolation, results):
    """The MNIST check, graded from `tree` as grade.py runs checks (this tree's environment for both); (wall seconds,
    check seconds, its metadata)."""
    from grader.grade import CHECKS_ENVIRONMENT

    command = [sys.executable, "-m", "pytest", "-c", str(tree / "grader/checks/grading.ini"), "--rootdir", str(tree),
               "-p", "grader.checks.plugin", "-q", "--json-report", f"--json-report-file={results}",
               "--isolation", isolation, str(tree / "grader/checks/test_mnist.py")]
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, "PYTHONPATH": str(tree),
                   **CHECKS_ENVIRONMENT}
    started = time.perf_counter()
    subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    (test,) = json.loads(Path(results).read_text())["tests"]
    check_seconds = sum(test[phase]["duration"] for phase in ("setup", "call", "teardown"))
    case = test["metadata"].get("case", test["metadata"])  # the CaseResult (results.py); older trees: the fields themselves
    if test["outcome"] != "passed":  # on a machine too loaded for the budget: counted, with the reason
        feedback = case.get("output", case.get("feedback"))
        print(f"the MNIST check did not pass in {tree}: {feedback}", flush=True)
        return seconds, check_seconds, {"accuracy": None, "feedback": feedback}
    return seconds, check_seconds, case["mnist"]


def main():
    from grader.sandbox.levels import strongest_level

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with (a commit, a branch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--isolation", default=None, help="default: the strongest available")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mnist_cost.json")
    args = parser.parse_args()
    isolation = args.isolation or strongest_level()
    runs = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="mnist-cost-") as folder:
        trees = {"before": export(args.before, Path(folder) / "before"), "after": ROOT}
        for round_ in range(args.rounds):
            for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                seconds, check_seconds, mnist = run_check(trees[name], isolation, Path(folder) / "results.json")
                runs[name].append({"check_seconds": round(check_seconds, 2), "process_seconds": round(seconds, 2),
                                   "load_average": round(os.getloadavg()[0], 1), **mnist})
                print(f"round {round_ + 1} {name:>6}: check {check_seconds:6.2f} s (process {seconds:6.2f} s, load "
                      f"{runs[name][-1]['load_average']}), accuracy {mnist['accuracy']}%, curve {mnist.get('accuracy_per_epoch')}",
                      flush=True)
    median = {name: float(np.median([run["check_seconds"] for run in found])) for name, found in runs.items()}
    pairs = [after["check_seconds"] / before["check_seconds"] for before, after in zip(runs["before"], runs["after"], strict=True)]
    summary = {"before": args.before, "isolation": isolation, "rounds": args.rounds, "cpus": os.cpu_count(), "runs": runs,
               "median_check_seconds": median, "ratio_of_medians": round(median["after"] / median["before"], 3),
               "ratio_per_round": [round(ratio, 3) for ratio in pairs],
               "accuracy": {name: found[0]["accuracy"] for name, found in runs.items()}}
    print(f"\nmedian check time: before {median['before']:.2f} s, after {median['after']:.2f} s "
          f"(×{summary['ratio_of_medians']:.2f}; per round {summary['ratio_per_round']}); "
          f"accuracy before {summary['accuracy']['before']}%, after {summary['accuracy']['after']}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
