"""The flake audit: the reference and every correct fixture of the tests, graded under many salts
of the inputs; no check may ever flip.

    make flake-audit    # = .venv/bin/python -m benchmarks.flake_audit --out results/flake_audit.json

Each salt is a copy of the course's rubric with `[inputs] salt = "audit-N"`, so every check draws
other inputs of the same shapes, as the official grading's secret salt does. The MNIST check is
left out: its inputs do not depend on the salt (its seeds: benchmarks/mnist_seeds.py). A check
"flips" when one of its cases does not pass under some salt: for a correct submission, every case
must pass under every salt.
"""
import argparse
import hashlib
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grader import DEFAULT_RUBRIC, GRADED
from grader.grade import run_checks
from grader.rubric import load_rubric
from grader.sandbox.launch import scratch_parent
from grader.submission import load_submission, prepare_scratch
from tests.support.corpus import CORRECT
from tests.support.grading import reference_copy
from tests.test_grader_bugs import UNUSUAL_BUT_CORRECT
from tests.test_grader_forms import CORRECT_FORMS

ROOT = Path(__file__).resolve().parent.parent


def correct_submissions(folder):
    """name → path of every correct submission the tests hold: the reference, the forms, the unusual ones and the corpus's."""
    made = {"reference": ROOT / "solutions"}  # first: the others are run on what differs from it
    for name, make in CORRECT_FORMS.items():
        (folder / name.replace("/", "-")).mkdir(parents=True)
        made[name] = make(folder / name.replace("/", "-"))
    for param in UNUSUAL_BUT_CORRECT:
        made[param.id] = reference_copy(folder / param.id.replace("/", "-"), param.values[0])
    for id, module, edits, _ in CORRECT:
        made[id] = reference_copy(folder / id, {module: edits})
    return made


def salted_rubric(folder, number):
    """The course's rubric with the salt audit-N, as the course's secret goes in (Rubric.with_salt)."""
    path = folder / f"rubric-audit-{number}.toml"
    path.write_bytes(load_rubric(DEFAULT_RUBRIC).with_salt(f"audit-{number}").text)
    return load_rubric(path)


def graded_files(scratch):
    """What the worker imports, file by file."""
    return {p.relative_to(scratch).as_posix(): p.read_bytes() for p in sorted(scratch.rglob("*.py"))}


def selection(files, reference):
    """The checks a submission can answer differently from the reference: those of the graded
    modules whose file differs (all of them when it brings a notebook or helpers); never MNIST."""
    if set(files) != set(reference):
        return "not test_accuracy"
    changed = {path.removeprefix("autodiff/").removesuffix(".py") for path in files if files[path] != reference[path]}
    groups = [name for name, module in GRADED.items() if module in changed]
    return f"not test_accuracy and ({' or '.join(groups)})" if groups else None


def audit(name, submission, select, rubrics, work, jobs):
    """{(group, kind, case): {salt number: status}} of one submission under every salt."""
    def run(number):  # a scratch folder of its own: the worker writes its runtime and log there
        scratch = prepare_scratch(submission, Path(tempfile.mkdtemp(prefix="scratch-", dir=work)))
        cases, problem, _ = run_checks(scratch, rubrics[number], "process", work / f"results-{name}-{number}.json".replace("/", "-"),
                                    select=select)
        if problem:
            raise SystemExit(f"{name}, salt audit-{number}: {problem}")
        print(f"{name}, salt audit-{number}: {sum(c.status == 'passed' for c in cases)}/{len(cases)} passed", flush=True)
        return number, cases
    outcomes = {}
    with ThreadPoolExecutor(jobs) as pool:
        for number, cases in pool.map(run, range(len(rubrics))):
            for case in cases:
                outcomes.setdefault((case.group, case.kind, case.id), {})[number] = \
                    case.status if case.status == "passed" else f"{case.status}: {case.output[:300]}"
    return outcomes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--salts", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="gradings at once")
    parser.add_argument("--skip-reference", action="store_true", help="audit only the fixtures (the reference was audited)")
    parser.add_argument("--only", action="append", help="audit only this submission (repeatable): reference, a fixture's name")
    parser.add_argument("--out", default="results/flake_audit.json")
    arguments = parser.parse_args()
    started = time.perf_counter()
    result = {"command": "make flake-audit", "salts": [f"audit-{n}" for n in range(arguments.salts)], "complete": False,
              "submissions": {}, "same_modules_as": {}, "case_runs": 0, "flips": []}
    with tempfile.TemporaryDirectory(prefix="flake-audit-", dir=scratch_parent()) as work_name:
        work = Path(work_name)
        rubrics = [salted_rubric(work, number) for number in range(arguments.salts)]
        seen, reference = {}, None  # the files the worker imports → the first submission that laid them out so
        for name, path in correct_submissions(work / "submissions").items():
            submission = load_submission(path)
            files = graded_files(prepare_scratch(submission, Path(tempfile.mkdtemp(prefix="scratch-", dir=work))))
            reference = reference or files
            layout = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
            if layout in seen:  # a folder, a zip of it, …: the same modules, the same verdicts
                result["same_modules_as"][name] = seen[layout]
                continue
            seen[layout] = name
            select = "not test_accuracy" if files is reference else selection(files, reference)
            if (arguments.skip_reference and files is reference) or (arguments.only and name not in arguments.only):
                continue
            outcomes = audit(name, submission, select, rubrics, work, arguments.jobs)
            result["submissions"][name] = {"checks": select, "cases": len(outcomes)}
            result["case_runs"] += sum(len(statuses) for statuses in outcomes.values())
            result["flips"] += [{"submission": name, "group": group, "kind": kind, "case": case,
                                 "not passed": {f"audit-{n}": s for n, s in statuses.items() if s != "passed"}}
                                for (group, kind, case), statuses in outcomes.items()
                                if len(statuses) != arguments.salts or any(s != "passed" for s in statuses.values())]
            result["seconds"] = round(time.perf_counter() - started, 1)
            write(arguments.out, result)  # after each submission: an interrupted audit still says what it saw
    result["complete"] = True
    write(arguments.out, result)
    print(f"{len(result['submissions'])} submissions × {arguments.salts} salts, {result['case_runs']} case runs, "
          f"{len(result['flips'])} flips → {arguments.out}")
    return 1 if result["flips"] else 0


def write(out, result):
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
