"""The attack suite, measured: every attack of tests/support/attacks.py at every isolation level, and what
isolation costs.

    make attacks    # = .venv/bin/python -m benchmarks.attacks --out results/attacks.json

Each attack at each level is `held` (it earned nothing the honest submission with the same bug
does not, leaked nothing, left nothing running, and every other group was graded), `FAILED` (with
what went wrong), or `not applicable` with the reason: the machine lacks the level, or the level
cannot be expected to stop it (at `process` level student code runs as the grader's own user).
Then the cost of isolation: the reference graded with the real rubric at each available level,
the levels interleaved, `--repeats` times each; the median wall time and its ratio to `process`
(the goal: at most 1.15).
"""
import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from grader import DEFAULT_RUBRIC
from grader.grade import grade
from grader.rubric import load_rubric
from grader.sandbox.levels import ISOLATION_LEVELS, level_available
from tests.support.attacks import ATTACKS, run_attack, skip_reason

ROOT = Path(__file__).resolve().parent.parent

COST_GOAL = 1.15


def run_attacks():
    runs = []
    for attack in ATTACKS:
        for level in ISOLATION_LEVELS:
            reason = skip_reason(attack, level)
            if reason:
                runs.append({"attack": attack.name, "level": level, "outcome": "not applicable", "reason": reason})
                continue
            outcome = run_attack(attack, level)
            runs.append({"attack": attack.name, "level": level, "outcome": "FAILED" if outcome.problems else "held",
                         "problems": outcome.problems, "unearned": outcome.unearned, "crashed": outcome.crashed,
                         "others_graded": outcome.others_graded, "seconds": round(outcome.seconds, 2)})
            print(f"{runs[-1]['outcome']:6}  {level:14}  {attack.name}", flush=True)
            for problem in outcome.problems:
                print(f"        {problem}")
    return runs


def counts(runs):
    tried = [run for run in runs if run["outcome"] != "not applicable"]
    graded = [run for run in tried if run["others_graded"] is not None]
    return {"attacks": len(ATTACKS), "runs": len(tried), "held": sum(run["outcome"] == "held" for run in tried),
            "failed": sum(run["outcome"] == "FAILED" for run in tried),
            "not_applicable": len(runs) - len(tried), "unearned_points": sum(run["unearned"] for run in tried),
            "grader_crashes": sum(run["crashed"] for run in tried),
            "other_groups_graded": f"{sum(run['others_graded'] for run in graded)} of {len(graded)}"}


def isolation_cost(repeats):
    """The reference, real rubric, levels interleaved so that a busy spell of the machine hits all."""
    rubric = load_rubric(DEFAULT_RUBRIC)
    levels = [level for level in ISOLATION_LEVELS if level_available(level)]
    seconds = {level: [] for level in levels}
    for round_ in range(repeats):
        for level in levels if round_ % 2 == 0 else levels[::-1]:
            started = time.perf_counter()
            report = grade(ROOT / "solutions", rubric, level)
            seconds[level].append(round(time.perf_counter() - started, 2))
            assert report["score"] == report["max_score"], f"the reference scored {report['score']} at {level}"
            print(f"reference at {level}: {seconds[level][-1]:.1f} s", flush=True)
    median = {level: statistics.median(times) for level, times in seconds.items()}
    return {"rubric": DEFAULT_RUBRIC.name, "repeats": repeats, "seconds": seconds, "median_seconds": median,
            "ratio_to_process": {level: round(median[level] / median["process"], 3) for level in levels},
            "goal": COST_GOAL}


def table(runs):
    """One row per attack, one column per level: held, FAILED, n/a (the level cannot be expected to
    stop it), — (decided before student code runs: run at the strongest level only), or
    unavailable (the machine lacks the level)."""
    outcome = {(run["attack"], run["level"]): run["outcome"] for run in runs}
    lines = ["| attack | " + " | ".join(ISOLATION_LEVELS) + " |", "| --- |" + " --- |" * len(ISOLATION_LEVELS)]
    for attack in ATTACKS:
        cells = []
        for level in ISOLATION_LEVELS:
            cell = outcome[attack.name, level]
            if cell == "not applicable":
                cell = ("unavailable" if not level_available(level) else
                        "n/a" if ISOLATION_LEVELS.index(level) > ISOLATION_LEVELS.index(attack.weakest) else "—")
            cells.append(cell)
        lines.append(f"| {attack.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "attacks.json")
    parser.add_argument("--repeats", type=int, default=3, help="gradings of the reference per level (default: %(default)s)")
    args = parser.parse_args()
    runs = run_attacks()
    summary = counts(runs)
    cost = isolation_cost(args.repeats)
    print("\n" + table(runs) + "\n")
    reasons = sorted({run["reason"] for run in runs if run["outcome"] == "not applicable"})
    print("not run:\n  " + "\n  ".join(reasons))
    print(f"\n{summary['attacks']} attacks, {summary['runs']} runs: {summary['held']} held, {summary['failed']} failed; "
          f"unearned points {summary['unearned_points']:g}; grader crashes {summary['grader_crashes']}; "
          f"other groups still graded in {summary['other_groups_graded']} runs")
    for level, ratio in cost["ratio_to_process"].items():
        print(f"the reference at {level}: {cost['median_seconds'][level]:.1f} s (median of {args.repeats}), "
              f"{ratio:.2f}× process")
    machine = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "processor": platform.machine(),
               "euid": os.geteuid(), "levels": {level: level_available(level) for level in ISOLATION_LEVELS}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "counts": summary, "isolation_cost": cost, "runs": runs},
                                   indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
