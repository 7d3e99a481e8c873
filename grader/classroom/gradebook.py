"""A class's results: gradebook.csv, summary.json, summary.md and the score histogram.

Built from the reports alone, sorted by student id, with no timestamps: the same reports give
the same bytes, however many runs (or kills) it took to produce them. A grading that failed
(report.is_scored: no) is a row with its status `error`, the reason, and empty points: no
statistic, histogram or LMS file counts it.
"""
import csv
import io
import json
import statistics
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..report import caused_by, format_points, group_summaries, is_scored, write_atomically
from ..results import NotImported, cause_of
from ..rubric import Rubric
from .roster import Roster

FILES = ("gradebook.csv", "summary.json", "summary.md", "score_histogram.png")  # what write_class_files writes


def import_failures(report: dict[str, Any]) -> dict[str, str]:
    """{module file: why it could not be imported} of a graded report, first cause per module."""
    failures: dict[str, str] = {}
    for test in report["tests"]:
        for case in test["cases"]:
            cause = cause_of(case)
            if isinstance(cause, NotImported):
                failures.setdefault(cause.module, cause.why)
    return failures


def failed_on_its_own(test: dict[str, Any]) -> bool:
    """Did the check fail, and not only because a module it needs could not be imported (that is
    one cause of the row's, however many checks it fails)?"""
    return test["status"] != "passed" and not caused_by(NotImported, [c for c in test["cases"] if c["status"] != "passed"])


def row_problems(report: dict[str, Any]) -> str:
    """What an instructor should know about one report, the summary's "needs a human look": ''
    when nothing. A zero (saying so when no group was started), a module that could not be
    imported (one cause, however many checks it failed), a check the grader could not finish."""
    if report["status"] != "graded":  # one line, however many the message has: it is a spreadsheet cell
        return " / ".join(" ".join(m.split()) for m in report["messages"]) or report["status"]
    states = {summary.state for summary in group_summaries(report["tests"]).values()}
    problems = [f"scored 0{': not started' if states == {'not started'} else ''}"] if report["score"] == 0 else []
    failures = import_failures(report)
    problems += [f"{module} could not be imported: {why}" for module, why in failures.items()]
    problems += [f"{t['status']}: {t['name']}" for t in report["tests"] if t["status"] in ("error", "timeout")
                 and failed_on_its_own(t)]
    if report["submission"]["missing"]:
        problems.append(f"missing: {', '.join(report['submission']['missing'])}")
    return "; ".join(problems)


def write_class_files(out: Path, reports: dict[str, dict[str, Any]], roster: Roster, rubric: Rubric,
                      names: dict[str, str] | None = None) -> dict[str, Any]:
    """names: {student id: name}, from the LMS's file names or its export, where it gives one."""
    groups = list(dict.fromkeys(group for group, _ in rubric.points))
    ids = sorted(reports)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["student_id", "name", "total", *groups, "status", "problem"])
    for student in ids:
        report = reports[student]
        totals = {group: summary.score for group, summary in group_summaries(report["tests"]).items()}
        points = [report["score"], *(totals.get(g, 0) for g in groups)] if is_scored(report) else [None] * (1 + len(groups))
        writer.writerow([student, (names or {}).get(student, ""), *("" if p is None else format_points(p) for p in points),
                         report["status"], row_problems(report)])
    # UTF-8 with a byte-order mark: spreadsheets then read names in any script correctly.
    write_atomically(out / "gradebook.csv", "\ufeff" + buffer.getvalue())

    summary = summarize(reports, roster, rubric)
    write_atomically(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_atomically(out / "summary.md", summary_markdown(summary))
    if summary["count"]:
        draw_histogram([reports[s]["score"] for s in ids if is_scored(reports[s])], rubric.max_score, out / "score_histogram.png")
    return summary


def summarize(reports: dict[str, dict[str, Any]], roster: Roster, rubric: Rubric) -> dict[str, Any]:
    scores = [reports[s]["score"] for s in sorted(reports) if is_scored(reports[s])]
    # Only what was graded: an unreadable submission ran no check, so it failed none.
    # A check failed because its module did not import is counted once as that, not as a failed check.
    failing = Counter(t["name"] for r in reports.values() if r["status"] == "graded" for t in r["tests"] if failed_on_its_own(t))
    not_imported = Counter(module for r in reports.values() if r["status"] == "graded" for module in import_failures(r))
    edges = [rubric.max_score * i / 10 for i in range(11)]
    counts = [sum(1 for s in scores if low <= s < high or (high == edges[-1] and s == high))
              for low, high in pairwise(edges)]
    return {
        "count": len(scores),  # the submissions with a score; those whose grading failed are not_graded
        "not_graded": [s for s in sorted(reports) if not is_scored(reports[s])],
        "max_score": rubric.max_score,
        "mean": round(statistics.fmean(scores), 2) if scores else None,
        "median": round(statistics.median(scores), 2) if scores else None,
        "standard_deviation": round(statistics.stdev(scores), 2) if len(scores) > 1 else None,
        "histogram": {"edges": edges, "counts": counts},
        "most_failed_checks": [{"check": name, "students": n} for name, n in
                               sorted(failing.items(), key=lambda item: (-item[1], item[0]))[:10]],
        "modules_not_imported": [{"module": module, "students": n} for module, n in
                                 sorted(not_imported.items(), key=lambda item: (-item[1], item[0]))],
        "needs_a_human_look": [{"student": s, "why": row_problems(reports[s])} for s in sorted(reports)
                               if row_problems(reports[s])],
        "unmatched_files": roster.unmatched,
        "notes": roster.notes,
        "rubric_sha256": rubric.sha256,
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    failed = summary["not_graded"]
    lines = ["# Class summary", "",
             f"{summary['count']} submissions; mean {summary['mean']}, median {summary['median']}, "
             f"standard deviation {summary['standard_deviation']} (out of {summary['max_score']})."
             + (f" **Not graded: {len(failed)}** (the grading failed: no score; empty in the gradebook and the LMS file; "
                f"a rerun grades them again): {', '.join(failed)}." if failed else ""), "",
             "![score distribution](score_histogram.png)", "", "## Score distribution", "",
             "| scores | students |", "| --- | --- |"]
    edges = summary["histogram"]["edges"]
    for (low, high), count in zip(pairwise(edges), summary["histogram"]["counts"], strict=True):
        lines.append(f"| {low:g}–{high:g} | {count} |")
    lines += ["", "## Checks most often failed", "", "| check | students |", "| --- | --- |"]
    lines += [f"| {item['check']} | {item['students']} |" for item in summary["most_failed_checks"]] or ["| none | |"]
    if summary["modules_not_imported"]:
        lines += ["", "## Modules that could not be imported", "", "| module | students |", "| --- | --- |"]
        lines += [f"| {item['module']} | {item['students']} |" for item in summary["modules_not_imported"]]
    lines += ["", "## Needs a human look", ""]
    lines += [f"- **{item['student']}**: {item['why']}" for item in summary["needs_a_human_look"]] or ["Nobody."]
    if summary["unmatched_files"]:
        lines += ["", "## Files that match no student", ""] + [f"- {name}" for name in summary["unmatched_files"]]
    if summary["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def draw_histogram(scores: list[float], max_score: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(scores, bins=[max_score * i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
    axes.set(xlabel="score", ylabel="students", title=f"Scores ({len(scores)} submissions)")
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110, metadata={"Software": None})
    plt.close(figure)
    temporary.replace(path)
