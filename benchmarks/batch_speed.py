"""How fast a class is graded, and whether a batch killed midway resumes to the same gradebook.

    make bench-batch    # = .venv/bin/python -m benchmarks.batch_speed --out results/batch_speed.json

Builds a class of 24 submissions in a temporary folder: the reference (as folders and zips), the
reference with one typical bug planted (a text edit, as the grader's tests plant them), and broken
ones (a syntax error, os._exit at import and inside an op, an unreadable zip, an empty folder).
Then grades it with the real rubric through the command line, as an instructor would:

1. `--jobs 1`, then `--jobs 2`: the wall times, their ratio (the goal on 2 cores: at most 0.6), and
   the median time of one submission (its report's duration_seconds);
2. kill and resume: `--jobs 2` in a session of its own, SIGKILLed as a whole (the batch has child
   processes) once half the reports exist, then rerun. The gradebook must be byte-identical to the
   uninterrupted run's, and the rerun must regrade exactly the reports that the kill left missing.
"""
import argparse
import csv
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.demo_class import build_class

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "grader" / "rubric.toml"
GOAL_RATIO = 0.6

def batch_command(submissions, out, jobs, isolation):
    command = [sys.executable, "-m", "grader", "batch", str(submissions), "--out", str(out), "--jobs", str(jobs),
               "--rubric", str(RUBRIC)]
    return command + (["--isolation", isolation] if isolation else [])


def environment(scratch):
    """The grader's temporary folders (and so its workers' working folders) under scratch."""
    return {**os.environ, "TMPDIR": str(scratch)}


def timed_batch(submissions, out, jobs, isolation, scratch):
    """Wall time, and the CPU time the batch and its processes used: cpu / wall is how many cores it
    had on average (on a shared machine, others' load shows there)."""
    load, cpu, started = os.getloadavg()[0], children_cpu_seconds(), time.perf_counter()
    subprocess.run(batch_command(submissions, out, jobs, isolation), cwd=ROOT, env=environment(scratch), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu
    durations = [json.loads(path.read_text())["duration_seconds"] for path in native_reports(out)]
    return {"wall_seconds": round(seconds, 1), "median_submission_seconds": round(statistics.median(durations), 2),
            "submission_seconds_total": round(sum(durations), 1), "cpu_seconds": round(cpu, 1),
            "cores_used": round(cpu / seconds, 2), "load_average_at_start": round(load, 2), "reports": len(durations)}


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def native_reports(out):
    return sorted(p for p in (out / "reports").glob("*.json") if not p.name.endswith(".gradescope.json"))


def stamps(out):
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in native_reports(out)}


def kill_leftovers(scratch):
    """Workers run in sessions of their own, out of reach of killpg: end those working under scratch."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(scratch):
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def kill_and_resume(submissions, out, class_size, isolation, scratch):
    process = subprocess.Popen(batch_command(submissions, out, 2, isolation), cwd=ROOT, env=environment(scratch),
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    while process.poll() is None and (not (out / "reports").is_dir() or len(native_reports(out)) < class_size // 2):
        time.sleep(0.05)
    if process.poll() is not None:
        raise SystemExit("the batch ended before half of its reports existed: nothing to kill")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = time.perf_counter() - started
    kill_leftovers(scratch)
    at_kill = stamps(out)
    started = time.perf_counter()
    subprocess.run(batch_command(submissions, out, 2, isolation), cwd=ROOT, env=environment(scratch), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rerun = time.perf_counter() - started
    after = stamps(out)
    return {"killed_after_seconds": round(killed_after, 1), "reports_at_kill": len(at_kill),
            "missing_at_kill": class_size - len(at_kill),
            "regraded_on_rerun": sum(1 for name, stamp in after.items() if at_kill.get(name) != stamp),
            "finished_reports_redone": sum(1 for name, stamp in at_kill.items() if after.get(name) != stamp),
            "rerun_seconds": round(rerun, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--isolation", help="passed to `grader batch --isolation` (default: the grader's own)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="batch-speed-") as name:
        temporary = Path(name)
        scratch = temporary / "tmp"
        scratch.mkdir()
        kinds = build_class(temporary / "class")
        size = sum(len(students) for students in kinds.values())
        runs = {}
        for jobs in (1, 2):
            print(f"grading {size} submissions with --jobs {jobs} ...", flush=True)
            runs[jobs] = timed_batch(temporary / "class", temporary / f"jobs{jobs}", jobs, args.isolation, scratch)
        print("kill and resume ...", flush=True)
        kill = kill_and_resume(temporary / "class", temporary / "killed", size, args.isolation, scratch)
        book = {name: (temporary / name / "gradebook.csv").read_bytes() for name in ("jobs1", "jobs2", "killed")}
        kill["gradebook_identical_to_uninterrupted"] = book["killed"] == book["jobs2"]
        with open(temporary / "jobs2" / "gradebook.csv", newline="", encoding="utf-8-sig") as gradebook:
            scores = {row["student_id"]: float(row["total"]) for row in csv.DictReader(gradebook)}
        isolation = json.loads(native_reports(temporary / "jobs2")[0].read_text())["grader"]["isolation"]

    ratio = round(runs[2]["wall_seconds"] / runs[1]["wall_seconds"], 3)
    print(f"\n{size} submissions ({len(kinds['correct'])} correct, {len(kinds['buggy'])} buggy, "
          f"{len(kinds['broken'])} broken), real rubric, isolation {isolation}")
    print(f"{'run':<10} {'wall':>8} {'median per submission':>22} {'cores used':>11} {'load at start':>14}")
    for jobs, run in runs.items():
        print(f"--jobs {jobs:<3} {run['wall_seconds']:7.1f}s {run['median_submission_seconds']:21.2f}s "
              f"{run['cores_used']:11.2f} {run['load_average_at_start']:14.2f}")
    print(f"ratio jobs 2 / jobs 1: {ratio} (goal ≤ {GOAL_RATIO}); "
          f"gradebooks identical: {book['jobs1'] == book['jobs2']}")
    print(f"kill after {kill['killed_after_seconds']} s: {kill['reports_at_kill']} reports done, "
          f"{kill['missing_at_kill']} missing; rerun regraded {kill['regraded_on_rerun']}, redid "
          f"{kill['finished_reports_redone']} finished ones, in {kill['rerun_seconds']} s; "
          f"gradebook identical to the uninterrupted run: {kill['gradebook_identical_to_uninterrupted']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                   "processor": platform.processor() or platform.machine()}
        results = {"machine": machine, "rubric": str(RUBRIC.relative_to(ROOT)), "isolation": isolation,
                   "class": {kind: len(students) for kind, students in kinds.items()}, "scores": scores,
                   "jobs_1": runs[1], "jobs_2": runs[2], "ratio_jobs2_to_jobs1": ratio, "goal_ratio": GOAL_RATIO,
                   "gradebooks_identical_jobs1_jobs2": book["jobs1"] == book["jobs2"], "kill_and_resume": kill}
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
