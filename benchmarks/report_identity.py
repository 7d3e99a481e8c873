"""The reports of the same submissions by two revisions of the grader, compared byte for byte.

    make report-identity BEFORE=REV
    python -m benchmarks.report_identity --before REV [--jobs 2] [--course-rubric] [--only NAME ...]
                                         [--out results/report_identity.json]

A refactor of the grader is done when every report it writes is the one the grader before it wrote.
The submissions are made once, from this tree, into build/report-identity/submissions/: the
reference (solutions/), the starter, the handout's notebook blank and filled with the reference's
bodies (as tests/test_notebook_handout.py grades them), and every fixture of the tests' corpora
(tests/support/corpus.py and corpus_round2.py, BUGS and CORRECT: the reference with one edit, made by
tests.support.grading.reference_copy as the tests make them). REV is checked out in a git worktree
under build/ (removed at the end); each submission is graded by `python -m grader grade` of REV's tree
and of this one (PYTHONPATH and working directory each tree), one after the other, with one rubric
file for both: the tests' fast rubric (tests.support.grading.fast_rubric_text: MNIST on 6,000 examples
for one epoch, the scale checks on small inputs, the tests' salt), or the course's with --course-rubric.

Before the comparison each report is normalised (`normalised`): the timings and the grader's version
are dropped (DROPPED), the timings written into texts are masked (MASKED), and every field of the new
report that the old one does not have is dropped, at any depth (`new_fields`). What is left is
compared as canonical JSON (sorted keys, no spaces); a difference is reported by the first JSON path
where the two differ, with both values. The reports themselves stay in build/report-identity/reports/.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grader import DEFAULT_RUBRIC
from tests.support import corpus, corpus_round2
from tests.support.grading import fast_rubric_text, reference_copy
from tools.make_notebook import build_notebook

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "report-identity"

# What two gradings of the same submission may differ by without the grader having changed: where the
# time went, and the grader's own version. A path: keys from the report's top, `*` for any list index.
DROPPED = ("duration_seconds", "tests.*.duration", "mnist.training_seconds", "submission.cells.*.seconds", "grader.version")
# Timings inside texts: (pattern, what the measured figure is replaced by).
MASKED = ((re.compile(r"\d+(?:\.\d+)? s of training"), "<seconds> s of training"),
          (re.compile(r"the call took \d+(?:\.\d+)? s"), "the call took <seconds> s"),
          (re.compile(r"budget (is|of) \d+(?:\.\d+)? s"), r"budget \1 <seconds> s"),
          (re.compile(r"did not finish within \d+(?:\.\d+)? s"), "did not finish within <seconds> s"))
ABSENT = "<absent>"
# pytest's escape of a character outside ASCII in a test id (an old grader's case ids were cut from them)
ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")
PATHS_LISTED = 20  # of a differing report, the first paths where it differs


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def submissions(folder):
    """name → path of every submission compared, made from this tree into `folder`."""
    made = {}
    for name, source in (("reference", ROOT / "solutions"), ("starter", ROOT / "starter")):
        made[name] = Path(shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__")))
    for name, filled in (("notebook, blank", False), ("notebook, filled with the reference", True)):
        path = folder / name.replace(", ", "-").replace(" ", "-") / "autodiff.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(build_notebook(filled=filled))
        made[name] = path
    for source in (corpus, corpus_round2):
        label = source.__name__.rsplit(".", 1)[-1]
        for id, _group, module, edits, _rule, _dimension in source.BUGS:
            made[f"{label} BUGS {id}"] = reference_copy(folder / label / "bugs" / id, {module: edits})
        for id, module, edits, _why in source.CORRECT:
            made[f"{label} CORRECT {id}"] = reference_copy(folder / label / "correct" / id, {module: edits})
    return made


def grade(tree, submission, rubric, out):
    """`python -m grader grade` of `tree` on `submission`: its exit code, and its report (None if it wrote none)."""
    out.unlink(missing_ok=True)
    completed = subprocess.run([sys.executable, "-m", "grader", "grade", str(submission), "--rubric", str(rubric), "--out", str(out)],
                               cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=False)
    report = json.loads(out.read_text()) if out.is_file() else None
    return completed.returncode, report, completed.stderr[-2000:]


def path_text(path):
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")


def pattern_text(path):
    """The path with its list indices as `*`, as DROPPED writes them."""
    return ".".join("*" if isinstance(step, int) else step for step in path)


def new_fields(old, new, path=()):
    """The paths of the keys of `new` that `old` does not have, at any depth (lists compared index by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = [(*path, key) for key in new if key not in old]
        for key in new.keys() & old.keys():
            found += new_fields(old[key], new[key], (*path, key))
        return found
    if isinstance(old, list) and isinstance(new, list):
        return [field for index, (a, b) in enumerate(zip(old, new, strict=False)) for field in new_fields(a, b, (*path, index))]
    return []


def without(value, paths):
    """`value` without the keys at `paths` (tuples of steps)."""
    if isinstance(value, dict):
        here = {path[0] for path in paths if len(path) == 1}
        return {key: without(item, [path[1:] for path in paths if len(path) > 1 and path[0] == key])
                for key, item in value.items() if key not in here}
    if isinstance(value, list):
        return [without(item, [path[1:] for path in paths if len(path) > 1 and path[0] == index]) for index, item in enumerate(value)]
    return value


def masked(value):
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        for pattern, replacement in MASKED:
            value = pattern.sub(replacement, value)
    return value


def dropped_paths(report):
    """The paths in `report` that DROPPED names."""
    def walk(value, path):
        if pattern_text(path) in DROPPED:
            yield path
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, (*path, index))
    return list(walk(report, ()))


def normalised(old, new):
    """The two reports as they are compared, and the paths of the fields only `new` has (dropped from it)."""
    added = new_fields(old, new)
    old = masked(without(old, dropped_paths(old)))
    new = masked(without(new, dropped_paths(new) + added))
    return old, new, added


def canonical(report):
    return json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def differences(old, new, path=()):
    """(path, old value, new value) of every place where the two differ, in the reports' order."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [key for key in new if key not in old]
        return [d for key in keys for d in differences(old.get(key, ABSENT), new.get(key, ABSENT), (*path, key))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for index, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, (*path, index))]
    return [] if canonical(old) == canonical(new) else [(path, old, new)]


def key_order(value, path=()):
    """Every key's path, in the order the report writes them (the canonical JSON sorts them)."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in [(*path, key), *key_order(item, (*path, key))]]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in key_order(item, (*path, index))]
    return []


def compare(name, old, new):
    """One submission's entry of the results, from its two gradings (exit code, report, stderr)."""
    entry = {"submission": name, "exit_codes": {"before": old[0], "after": new[0]}}
    if old[1] is None or new[1] is None:  # no report: what the grader said on stderr instead
        said = {label: "a report" if report is not None else stderr for label, (_, report, stderr) in (("before", old), ("after", new))}
        entry.update(identical=False, differences=1, first_difference={"path": "(the report)", **said})
        return entry, []
    before, after, added = normalised(old[1], new[1])
    found = differences(before, after)
    entry["identical"] = canonical(before) == canonical(after) and old[0] == new[0]
    entry["same_key_order"] = key_order(before) == key_order(after)
    entry["differences"] = len(found)
    entry["only_ascii_escapes"] = bool(found) and all(unescaped(a) == b for _, a, b in found)
    if found:
        entry["first_differences"] = [{"path": path_text(path), "check": check_name(after, path), "before": a, "after": b}
                                      for path, a, b in found[:PATHS_LISTED]]
        entry["first_difference"] = entry["first_differences"][0]
    elif old[0] != new[0]:
        entry["first_difference"] = {"path": "(exit code)", "before": old[0], "after": new[0]}
    return entry, added


def unescaped(value):
    """A text with the ASCII escapes pytest writes into its test ids (\\xb1, \\u2212) turned back into characters."""
    if not isinstance(value, str):
        return value
    return ESCAPE.sub(lambda match: chr(int(next(filter(None, match.groups())), 16)), value)


def check_name(report, path):
    """The check a path inside `tests` belongs to, by its name ("Sum · forward"); None elsewhere."""
    if len(path) > 1 and path[0] == "tests" and isinstance(path[1], int) and path[1] < len(report.get("tests", [])):
        return report["tests"][path[1]].get("name")
    return None


def grade_all(before, made, jobs, rubric):
    """Every submission graded by `before`'s grader (in a worktree under WORK) and this tree's, the two one after
    the other; the reports kept in WORK/reports/, and what else the comparison needs in WORK/gradings.json."""
    old_tree = WORK / "before"
    git("worktree", "add", "--detach", str(old_tree), before)

    def both(numbered):
        number, (name, path) = numbered
        file = re.sub(r"[^\w.-]+", "-", name) + ".json"
        gradings = {}
        for label, tree in (("before", old_tree), ("after", ROOT)):
            code, report, stderr = grade(tree, path, rubric, WORK / "reports" / label / file)
            gradings[label] = {"exit_code": code, "report": file if report is not None else None, "stderr": stderr}
        print(f"{number + 1}/{len(made)} {name}: exit codes {gradings['before']['exit_code']}, {gradings['after']['exit_code']}", flush=True)
        return name, gradings

    try:
        with ThreadPoolExecutor(jobs) as pool:
            return dict(pool.map(both, enumerate(made.items())))
    finally:
        git("worktree", "remove", "--force", str(old_tree))


def read_gradings(record):
    """name → (before, after), each (exit code, report, stderr), from what grade_all kept."""
    def one(label, grading):
        report = json.loads((WORK / "reports" / label / grading["report"]).read_text()) if grading["report"] else None
        return grading["exit_code"], report, grading["stderr"]
    return {name: (one("before", gradings["before"]), one("after", gradings["after"])) for name, gradings in record["gradings"].items()}


def results(record):
    """The results file's contents, from the gradings grade_all kept."""
    entries, added, isolation = [], {}, set()
    for name, (old, new) in read_gradings(record).items():
        entry, paths = compare(name, old, new)
        entries.append(entry)
        for path in paths:
            added[pattern_text(path)] = added.get(pattern_text(path), 0) + 1
        isolation |= {report["grader"]["isolation"] for _, report, _ in (old, new) if report}
    return {
        "command": record["command"], "revisions": record["revisions"], "only": record["only"],
        "after_has_uncommitted_grader_changes": record["dirty"], "rubric": record["rubric"], "isolation": sorted(isolation),
        "normalisation": {"dropped": list(DROPPED), "masked_in_texts": [pattern.pattern for pattern, _ in MASKED],
                          "new_fields_dropped": dict(sorted(added.items()))},
        "counts": {"submissions": len(entries), "identical": sum(e["identical"] for e in entries),
                   "differing": sum(not e["identical"] for e in entries),
                   "differing_only_in_ascii_escapes": sum(e.get("only_ascii_escapes", False) for e in entries)},
        "submissions": entries,
        "grading_seconds": record["seconds"],
        "machine": record["machine"], "date": record["date"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="the revision to compare with (a commit, a branch); required unless --compare-kept")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--course-rubric", action="store_true", help="grade with grader/rubric.toml, not the tests' fast rubric")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these submissions (names as the results write them)")
    parser.add_argument("--compare-kept", action="store_true",
                        help="grade nothing: compare again the reports the last run kept in build/report-identity/")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "report_identity.json")
    args = parser.parse_args()
    if not args.compare_kept:
        if not args.before:
            parser.error("--before is required (the grader to compare this one with)")
        started = time.perf_counter()
        revisions = {"before": git("rev-parse", "--short", args.before), "after": git("rev-parse", "--short", "HEAD")}
        if (WORK / "before").exists():  # a run that was killed left its worktree
            git("worktree", "remove", "--force", str(WORK / "before"))
        shutil.rmtree(WORK, ignore_errors=True)
        git("worktree", "prune")
        (WORK / "reports" / "before").mkdir(parents=True)
        (WORK / "reports" / "after").mkdir(parents=True)
        made = submissions(WORK / "submissions")
        if args.only:
            unknown = set(args.only) - set(made)
            if unknown:
                sys.exit(f"no such submissions: {', '.join(sorted(unknown))}")
            made = {name: path for name, path in made.items() if name in args.only}
        rubric = WORK / "rubric.toml"
        if args.course_rubric:
            shutil.copy(DEFAULT_RUBRIC, rubric)
        else:
            rubric.write_text(fast_rubric_text())
        gradings = grade_all(args.before, made, args.jobs, rubric)
        record = {
            "command": f"python -m benchmarks.report_identity --before {args.before}" + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
                       + (" --course-rubric" if args.course_rubric else ""),
            "revisions": revisions, "only": args.only,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "grader")),
            "rubric": ("the course's (grader/rubric.toml)" if args.course_rubric else
                       "the tests' fast rubric (tests.support.grading.fast_rubric_text: MNIST 1 epoch on 6,000 examples, "
                       "scale checks at side 40, cell limit 3 s, the tests' salt)"),
            "gradings": gradings, "seconds": round(time.perf_counter() - started, 1),
            "machine": {"cpus": os.cpu_count(), "jobs": args.jobs, "load_average_at_end": [round(x, 1) for x in os.getloadavg()]},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        (WORK / "gradings.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    record = json.loads((WORK / "gradings.json").read_text())
    result = results(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    counts = result["counts"]
    print(f"{counts['identical']} of {counts['submissions']} reports identical, {counts['differing']} differ "
          f"(graded in {result['grading_seconds']:.0f} s; {args.out})")


if __name__ == "__main__":
    main()
