"""A regrade explained: whose score moved between two batch outputs, by how much, which checks
flipped, and why when the reports say (the rubric's hash, the grader's version, the submission's hash).

    python -m grader diff OLD_DIR NEW_DIR [--out DIR]     # DIR gets diff.md and diff.csv
"""
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from ..report import format_points, is_scored, write_atomically

FILES = ("diff.md", "diff.csv")  # what write_diff writes in its folder


def load_reports(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """{student id: native report} of a batch output (or of its reports/ folder)."""
    folder = Path(folder)
    reports = folder / "reports" if (folder / "reports").is_dir() else folder
    found = {}
    for path in sorted(reports.glob("*.json")):
        if not path.name.endswith(".gradescope.json"):
            try:
                report = json.loads(path.read_text())
                found[report.get("student") or path.stem] = report
            except (OSError, ValueError):
                continue
    return found


def compare(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per student whose score changed or a check of whom flipped (passed ↔ not), largest change first."""
    rows = []
    for student in sorted(set(old) | set(new)):
        before, after = old.get(student), new.get(student)
        flipped = _flipped(before, after) if before and after else []
        old_score, new_score = _score(before), _score(after)
        if before and after and old_score == new_score and not flipped:
            continue
        change = round(new_score - old_score, 2) if old_score is not None and new_score is not None else None
        rows.append({"student": student, "old": old_score, "new": new_score, "change": change,
                     "flipped": flipped, "why": _why(before, after)})
    return sorted(rows, key=lambda row: (-abs(row["change"] or 0), row["student"]))


def _score(report):
    """A report's score; None without a report or for a grading that failed (it has none)."""
    return report["score"] if report and is_scored(report) else None


def _flipped(before, after):
    old = {t["name"]: t for t in before["tests"]}
    flips = []
    for test in after["tests"]:
        was = old.get(test["name"])
        if was is None:
            flips.append(f"{test['name']}: new check ({format_points(test['score'])}/{format_points(test['max_score'])})")
        elif (was["status"] == "passed") != (test["status"] == "passed"):
            flips.append(f"{test['name']}: {was['status']} {format_points(was['score'])}/{format_points(was['max_score'])} → "
                         f"{test['status']} {format_points(test['score'])}/{format_points(test['max_score'])}")
    flips += [f"{name}: check removed" for name in old if name not in {t["name"] for t in after["tests"]}]
    return flips


def _why(before, after):
    if not before:
        return ["new submission"]
    if not after:
        return ["no report in the new grading"]
    reasons = [f"the {which} grading failed: no score" for which, report in (("old", before), ("new", after)) if not is_scored(report)]
    if before["grader"]["rubric_sha256"] != after["grader"]["rubric_sha256"]:
        reasons.append("rubric changed")
    if before["grader"]["version"] != after["grader"]["version"]:
        reasons.append(f"grader {before['grader']['version']} → {after['grader']['version']}")
    if before["submission"]["sha256"] != after["submission"]["sha256"]:
        reasons.append("submission changed")
    if before["grader"].get("isolation") != after["grader"].get("isolation"):
        reasons.append(f"isolation {before['grader'].get('isolation')} → {after['grader'].get('isolation')}")
    return reasons or ["same rubric, grader and submission: a check that is not deterministic, or a lost worker"]


def diff_markdown(rows: list[dict[str, Any]], old_label: str, new_label: str) -> str:
    gained = sum(1 for row in rows if (row["change"] or 0) > 0)
    lost = sum(1 for row in rows if (row["change"] or 0) < 0)
    lines = [f"# Regrade: {old_label} → {new_label}", "",
             f"{len(rows)} student{'' if len(rows) == 1 else 's'} changed: {gained} gained points, {lost} lost points.", ""]
    if rows:
        lines += ["| student | old | new | change | why | checks flipped |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {row['student']} | {_cell(row['old'])} | {_cell(row['new'])} | {_signed(row['change'])} | "
                  f"{'; '.join(row['why'])} | {'<br>'.join(row['flipped'])} |" for row in rows]
    return "\n".join(lines) + "\n"


def write_diff(folder: str | os.PathLike[str], rows: list[dict[str, Any]], old_label: str, new_label: str) -> str:
    folder = Path(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["student_id", "old", "new", "change", "checks_flipped", "why"])
    for row in rows:
        writer.writerow([row["student"], _cell(row["old"]), _cell(row["new"]), _signed(row["change"]),
                         "; ".join(row["flipped"]), "; ".join(row["why"])])
    markdown, table = (folder / name for name in FILES)
    write_atomically(table, "\ufeff" + buffer.getvalue())
    text = diff_markdown(rows, old_label, new_label)
    write_atomically(markdown, text)
    return text


def _cell(score):
    return "" if score is None else format_points(score)


def _signed(change):
    return "" if change is None else f"{change:+g}"
