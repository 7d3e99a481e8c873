"""The flake audit: the reference and every correct fixture of the tests, graded under many salts
of the inputs; no check may ever flip.

    make flake-audit    # = .venv/bin/python benchmarks/flake_audit.py --out results/flake_audit.json

Each salt is a copy of the course's rubric with `[inputs] salt = "audit-N"`, so every check draws
other inputs of the same shapes, as the official grading's secret salt does. The MNIST check is
left out: its inputs do not depend on the salt (its seeds: benchmarks/mnist_seeds.py). A check
"flips" when one of its cases does not pass under some salt: for a correct submission, every case
must pass under every salt.
"""
import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from test_grader_bugs import UNUSUAL_BUT_CORRECT  # noqa: E402
from test_grader_forms import CORRECT_FORMS  # noqa: E402

from _grading import reference_copy  # noqa: E402
from grader import DEFAULT_RUBRIC  # noqa: E402
from grader.grade import run_checks  # noqa: E402
from grader.rubric import load_rubric  # noqa: E402
from grader.sandbox.launch import scratch_parent  # noqa: E402
from grader.submission import load_submission, prepare_scratch  # noqa: E402


def correct_submissions(folder):
    """name → path of every correct submission the tests hold: the reference, the forms and the unusual ones."""
    made = {"reference": ROOT / "solutions"}
    for name, make in CORRECT_FORMS.items():
        (folder / name.replace("/", "-")).mkdir(parents=True)
        made[name] = make(folder / name.replace("/", "-"))
    for param in UNUSUAL_BUT_CORRECT:
        made[param.id] = reference_copy(folder / param.id.replace("/", "-"), param.values[0])
    return made


def salted_rubric(folder, number):
    text = DEFAULT_RUBRIC.read_text()
    text, found = re.subn(r'(?m)^salt\s*=.*$', f'salt = "audit-{number}"', text)
    assert found == 1, "grader/rubric.toml has no single [inputs] salt"
    path = folder / f"rubric-audit-{number}.toml"
    path.write_text(text)
    return load_rubric(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--salts", type=int, default=20)
    parser.add_argument("--out", default="results/flake_audit.json")
    arguments = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flake-audit-", dir=scratch_parent()) as work:
        work = Path(work)
        rubrics = [salted_rubric(work, number) for number in range(arguments.salts)]
        outcomes, cases_per_grading, same_as = {}, {}, {}  # (submission, group, kind, case) → {salt: status}
        seen = {}  # what the worker imports → the first submission that laid it out so
        for name, path in correct_submissions(work / "submissions").items():
            scratch = prepare_scratch(load_submission(path), Path(tempfile.mkdtemp(prefix="scratch-", dir=work)))
            layout = hashlib.sha256(b"".join(p.relative_to(scratch).as_posix().encode() + p.read_bytes()
                                             for p in sorted(scratch.rglob("*.py")))).hexdigest()
            if layout in seen:  # a folder, a zip of it, …: the same modules, the same verdicts
                same_as[name] = seen[layout]
                continue
            seen[layout] = name
            for number, rubric in enumerate(rubrics):
                cases, problem = run_checks(scratch, rubric, "process", work / f"results-{number}.json", select="not test_accuracy")
                if problem:
                    raise SystemExit(f"{name}, salt audit-{number}: {problem}")
                cases_per_grading[name] = len(cases)
                for case in cases:
                    outcomes.setdefault((name, case["group"], case["kind"], case["id"]), {})[number] = \
                        case["status"] if case["status"] == "passed" else f"{case['status']}: {case['feedback'][:300]}"
                print(f"{name}, salt audit-{number}: {sum(c['status'] == 'passed' for c in cases)}/{len(cases)} passed", flush=True)
    flips = [{"submission": name, "group": group, "kind": kind, "case": case,
              "not passed": {f"audit-{n}": status for n, status in statuses.items() if status != "passed"}}
             for (name, group, kind, case), statuses in outcomes.items()
             if len(statuses) != arguments.salts or any(status != "passed" for status in statuses.values())]
    result = {"command": "make flake-audit", "salts": [f"audit-{n}" for n in range(arguments.salts)],
              "submissions": sorted(cases_per_grading), "cases_per_grading": cases_per_grading,
              "same_modules_as": same_as,
              "gradings": len(cases_per_grading) * arguments.salts,
              "case_runs": sum(cases_per_grading.values()) * arguments.salts,
              "flips": flips, "seconds": round(time.perf_counter() - started, 1)}
    Path(arguments.out).parent.mkdir(parents=True, exist_ok=True)
    Path(arguments.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['gradings']} gradings, {result['case_runs']} case runs, {len(flips)} flips → {arguments.out}")
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
