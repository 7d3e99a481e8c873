"""Wall time of grading notebooks at two revisions of the grader, run alternately.

    make bench-notebook BEFORE=REV
    python -m benchmarks.notebook_grading --before REV [--rounds 3] [--out results/notebook_grading.json]

The notebooks: the handout's, filled with the reference's bodies (its training cell runs the
handout's two runs of 10 epochs on all of MNIST: an hour on a laptop if it were trained), and the
Colab-written one of tests/test_reading.py (drive mounted, a training loop of the student's own
that never ends after a definition: one cell budget). Each is graded with the course's rubric
(`python -m grader grade`), at the strongest isolation level, by the `before` revision (checked
out in a temporary git worktree) and by the working tree, alternately, so that a machine whose
load drifts weighs on both alike. The figure is the ratio of the medians per notebook.
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

from tests.test_reading import colab
from tools.make_notebook import build_notebook

ROOT = Path(__file__).resolve().parent.parent


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def notebooks(folder):
    handout = folder / "handout" / "autodiff.ipynb"
    handout.parent.mkdir(parents=True)
    handout.write_text(build_notebook(filled=True))
    (folder / "colab").mkdir()
    return {"the handout's, filled": handout, "Colab's, a loop that never ends": colab(folder / "colab")}


def grade_seconds(root, notebook, out):
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader", "grade", str(notebook), "--out", str(out)], cwd=root, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    report = json.loads(out.read_text())
    return seconds, report["score"], report["grader"]["isolation"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the revision to compare with (a commit, a branch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "notebook_grading.json")
    args = parser.parse_args()
    revisions = {"before": git("rev-parse", "--short", args.before), "after": git("rev-parse", "--short", "HEAD")}
    runs = []
    with tempfile.TemporaryDirectory(prefix="notebook-grading-") as folder_name:
        folder = Path(folder_name)
        submissions = notebooks(folder)
        old = folder / "before"
        git("worktree", "add", "--detach", str(old), args.before)
        try:
            for round_ in range(args.rounds):
                for name, notebook in submissions.items():
                    for label, root in (("before", old), ("after", ROOT)):
                        seconds, score, isolation = grade_seconds(root, notebook, folder / f"{label}.json")
                        runs.append({"round": round_, "notebook": name, "revision": label, "seconds": round(seconds, 2),
                                     "score": score, "isolation": isolation})
                        print(f"round {round_ + 1}/{args.rounds} {name:34} {label:6} {seconds:6.1f} s  score {score}", flush=True)
        finally:
            git("worktree", "remove", "--force", str(old))
    figures = {}
    for name in submissions:
        medians = {label: statistics.median(r["seconds"] for r in runs if r["notebook"] == name and r["revision"] == label)
                   for label in revisions}
        scores = {label: sorted({r["score"] for r in runs if r["notebook"] == name and r["revision"] == label}) for label in revisions}
        figures[name] = {"median_seconds": medians, "ratio": round(medians["after"] / medians["before"], 3), "scores": scores}
    result = {"command": "python -m grader grade NOTEBOOK (the course's rubric)", "revisions": revisions, "runs": runs,
              "notebooks": figures, "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 1) for x in os.getloadavg()]},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for name, figure in figures.items():
        print(f"{name}: after/before {figure['ratio']} (medians {figure['median_seconds']['before']:.1f} s → "
              f"{figure['median_seconds']['after']:.1f} s; scores {figure['scores']})")


if __name__ == "__main__":
    main()
