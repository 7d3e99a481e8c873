"""Wall time of `python -m grader grade solutions` at two revisions of the grader, run alternately.

    make bench-grading BEFORE=REV
    python -m benchmarks.grading_time --before REV [--rounds 9] [--out results/grading_time.json]

The `before` revision is checked out in a temporary git worktree; the working tree is `after`.
Runs alternate (before, after, before, after, ...) so that a machine whose load drifts during
the measurement weighs on both alike; the figure is the ratio of the medians, and beside it the
median of the rounds' own ratios (on a machine whose speed drifts, the two can differ).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


PARTS = {"accuracy": "MNIST", "scale": "scale checks"}  # check kinds timed apart; the others are "other checks"


def grade_seconds(root, out):
    """One grading of the reference from `root`'s grader: its wall time, score, isolation, and the
    seconds of its parts (the checks by kind, as the report times them; the rest is outside the checks)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader", "grade", "solutions", "--out", str(out)], cwd=root, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    report = json.loads(out.read_text())
    parts = dict.fromkeys([*PARTS.values(), "other checks"], 0.0)
    for test in report["tests"]:
        parts[PARTS.get(test["kind"], "other checks")] += test["duration"]
    parts["outside the checks"] = seconds - sum(parts.values())
    return seconds, report["score"], report["grader"]["isolation"], {name: round(value, 2) for name, value in parts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the revision to compare with (a commit, a branch)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "grading_time.json")
    args = parser.parse_args()
    revisions = {"before": git("rev-parse", "--short", args.before), "after": git("rev-parse", "--short", "HEAD")}
    runs = []
    with tempfile.TemporaryDirectory(prefix="grading-time-") as folder:
        old = Path(folder) / "before"
        git("worktree", "add", "--detach", str(old), args.before)
        try:
            for round_ in range(args.rounds):
                for label, root in (("before", old), ("after", ROOT)):
                    seconds, score, isolation, parts = grade_seconds(root, Path(folder) / f"{label}.json")
                    runs.append({"round": round_, "revision": label, "seconds": round(seconds, 2), "score": score,
                                 "isolation": isolation, "parts": parts})
                    print(f"round {round_ + 1}/{args.rounds} {label:6} {seconds:6.1f} s  score {score}", flush=True)
        finally:
            git("worktree", "remove", "--force", str(old))
    medians = {label: statistics.median(r["seconds"] for r in runs if r["revision"] == label) for label in revisions}
    part_medians = {label: {part: round(statistics.median(r["parts"][part] for r in runs if r["revision"] == label), 2)
                            for part in runs[0]["parts"]} for label in revisions}
    per_round = [round(after["seconds"] / before["seconds"], 3) for before, after in zip(runs[::2], runs[1::2], strict=True)]
    result = {"command": "python -m grader grade solutions", "revisions": revisions, "runs": runs,
              "median_seconds": medians, "ratio": round(medians["after"] / medians["before"], 3),
              "ratio_per_round": per_round, "median_ratio_of_rounds": statistics.median(per_round),
              "median_seconds_by_part": part_medians,
              "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 1) for x in os.getloadavg()]},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"after/before: {result['ratio']}  (medians {medians['before']:.1f} s → {medians['after']:.1f} s; {args.out})")


if __name__ == "__main__":
    main()
