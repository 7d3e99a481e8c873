"""The score report: built from the checks' results and the rubric, written by this module only.

Formats: `native` (ours, described by report.schema.json) and `gradescope` (their results.json).
Files are written atomically: a temporary file in the same folder, then a rename, so a reader
(or a rerun after a crash) never sees half a report.
"""
import json
import os
import platform
import re
import tempfile
from pathlib import Path

import jsonschema
import numpy as np

from . import VERSION

SCHEMA = json.loads((Path(__file__).resolve().parent / "report.schema.json").read_text())
STATUS_ORDER = ("timeout", "error", "failed", "passed")  # a check takes its worst case's status


def build_report(submission, rubric, case_results, isolation, seconds, messages=()):
    """case_results: the checks' cases as (group, kind, case id, status, feedback, fraction, seconds, extra)."""
    by_check = {}
    for case in case_results:
        by_check.setdefault((case["group"], case["kind"]), []).append(case)
    tests, mnist = [], None
    for (group, kind), points in rubric.points.items():
        cases = by_check.pop((group, kind), [])
        if not cases:  # the submission could not be read, or the checks did not run
            cases = [{"id": "-", "status": "error", "feedback": "not run", "fraction": 0.0, "seconds": 0.0}]
        earned = points * sum(c["fraction"] for c in cases) / len(cases)
        status = min((c["status"] for c in cases), key=STATUS_ORDER.index)
        output = merged_feedback(cases)
        mnist = next((c["mnist"] for c in cases if c.get("mnist")), mnist)
        tests.append({"name": f"{group} · {kind}", "group": group, "kind": kind, "score": round(earned, 2),
                      "max_score": points, "status": status, "output": output, "visibility": rubric.visibility_of(kind),
                      "duration": round(sum(c["seconds"] for c in cases), 3),
                      "cases": [{"id": c["id"], "status": c["status"], "output": c["feedback"]} for c in cases]})
    messages = list(messages) + [f"a check outside the rubric was ignored: {group} · {kind}" for group, kind in by_check]
    if mnist and mnist.get("accuracy") is not None:
        messages.append(f"MNIST: {mnist['accuracy']:.2f}% test accuracy after {mnist['epochs']} epochs "
                        f"({mnist['training_seconds']:.1f} s of training)")
    status = "unreadable" if submission.error else "graded" if case_results else "error"
    return checked({
        "status": status,
        "score": round(sum(t["score"] for t in tests), 2),
        "max_score": rubric.max_score,
        "tests": tests,
        "submission": submission.to_dict(),
        "mnist": mnist,
        "messages": messages,
        "grader": {"version": VERSION, "rubric": rubric.path, "rubric_sha256": rubric.sha256, "isolation": isolation,
                   "python": platform.python_version(), "numpy": np.__version__},
        "duration_seconds": round(seconds, 2),
    })


# What changes from one case of a check to the next without changing the diagnosis: numbers,
# shapes and the one-letter names of the op's inputs. Masked, they leave the diagnosis itself.
CASE_SPECIFICS = re.compile(r"\((?:\s*-?\d+\s*,?)*\)|-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b|\bnan\b|\binf\b|\b[a-z]\b")


def diagnosis_key(problem):
    return CASE_SPECIFICS.sub("#", problem.splitlines()[0])


def merged_feedback(cases):
    """A check's feedback saying each diagnosis once, with the cases it applies to: identical
    diagnoses across cases (differing only in shapes, values or which input) are one paragraph,
    shown with the first case's details. A problem is a line of a case's feedback, with the
    indented lines (a traceback) under it."""
    failing = [c for c in cases if c["status"] != "passed"]
    if not failing:
        return "passed" if len(cases) == 1 else f"all {len(cases)} cases passed"
    groups = {}
    for case in failing:
        for problem in re.split(r"\n(?=\S)", case["feedback"].strip()) or [""]:
            ids, texts = groups.setdefault(diagnosis_key(problem), ([], []))
            if case["id"] not in ids:
                ids.append(case["id"])
            texts.append(problem)
    if len(cases) == 1:
        return "\n".join(texts[0] for _, texts in groups.values())
    lines = [] if len(groups) == 1 and len(failing) == len(cases) else [f"{len(cases) - len(failing)} of {len(cases)} cases passed"]
    for ids, texts in groups.values():
        where = f"all {len(cases)} cases" if len(ids) == len(cases) else f"{len(ids)} of {len(cases)} cases ({', '.join(ids)})"
        detail = f" [details for {ids[0]}]" if len(set(texts)) > 1 else ""
        lines.append(f"{where}{detail}: {texts[0]}")
    return "\n".join(lines)


def validate(report):
    jsonschema.validate(report, SCHEMA)


def checked(report):
    """The report, flagged if it does not match its schema: it is written all the same (a lost
    report is worse than an odd one), with the failure as a message and the status `error`,
    which puts it in front of a human."""
    try:
        validate(report)
    except jsonschema.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        report["messages"].append(f"grader: this report does not match its schema at {where} "
                                  f"({error.message[:200]}); a human should look at it")
        report["status"] = "error"
    return report


def to_gradescope(report):
    """Gradescope's results.json: score, execution_time, output, and per test score, max_score,
    status (passed/failed), name, number, output, visibility."""
    group_numbers, checks_in_group, tests = {}, {}, []
    for test in report["tests"]:
        group = group_numbers.setdefault(test["group"], len(group_numbers) + 1)
        checks_in_group[group] = checks_in_group.get(group, 0) + 1
        tests.append({"score": test["score"], "max_score": test["max_score"],
                      "status": "passed" if test["status"] == "passed" else "failed",
                      "name": test["name"], "number": f"{group}.{checks_in_group[group]}",
                      "output": test["output"] if test["status"] == "passed" else f"{test['status']}: {test['output']}",
                      "visibility": test["visibility"]})
    return {"score": report["score"], "execution_time": report["duration_seconds"],
            "output": "\n".join(report["messages"] + report["submission"]["notes"]),
            "tests": tests, "visibility": "visible", "stdout_visibility": "hidden"}


def write_report(report, path, format="native"):
    content = to_gradescope(report) if format == "gradescope" else report
    write_atomically(Path(path), json.dumps(content, indent=2, ensure_ascii=False) + "\n")


def write_atomically(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o644)  # mkstemp's 0600 would hide reports from the course's other staff
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def group_summaries(tests):
    """{group: (score, max_score, status, its checks)}, in the tests' order; a group takes the
    worst status of its checks. The one place the terminal, the gradebook and the pages sum groups."""
    groups = {}
    for test in tests:
        groups.setdefault(test["group"], []).append(test)
    return {group: (round(sum(t["score"] for t in checks), 2), sum(t["max_score"] for t in checks),
                    min((t["status"] for t in checks), key=STATUS_ORDER.index), checks)
            for group, checks in groups.items()}


def format_table(report):
    """The terminal summary: one line per group with its points, status and first line of feedback."""
    lines = [f"{'group':<17} {'points':>13}  {'status':<8} feedback"]
    for group, (score, most, status, tests) in group_summaries(report["tests"]).items():
        first = next((t for t in tests if t["status"] != "passed"), None)
        feedback = ""
        if first:
            failing = next(c for c in first["cases"] if c["status"] != "passed")
            feedback = f"{first['kind']} [{failing['id']}]: {failing['output'].splitlines()[0] if failing['output'] else ''}"
        lines.append(f"{group:<17} {format_points(score):>6} / {format_points(most):<4}  {status:<8} {feedback[:110]}")
    lines.append(f"{'total':<17} {format_points(report['score']):>6} / {format_points(report['max_score']):<4}")
    return "\n".join(lines)


def format_points(value):
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"
