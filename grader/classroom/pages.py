"""Feedback pages: one per report, and an index for a class.

Each page is one self-contained file: inline CSS and SVG, no script, nothing fetched, so it
works offline in any browser. Checks are shown as their rubric visibility allows: `reveal`
names the most that may be shown (`visible` before the due date, `after_due_date` after it,
`all` for course staff); what is held back is summarized, never listed. A grading that failed
gets a page that says so, with its reasons, and no points anywhere.
"""
from html import escape
from typing import Any

from ..report import STATES, GroupSummary, format_points, group_summaries, is_scored, state_of
from ..results import Cause, cause_of
from .gradebook import row_problems

REVEALED = {"visible": {"visible"}, "after_due_date": {"visible", "after_due_date"},
            "all": {"visible", "after_due_date", "after_published", "hidden"}}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } .score { font-size: 2.4em; font-weight: 600; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .35em .5em; text-align: left; vertical-align: top; }
tr:nth-child(even) { background: #f6f6f8; } th { border-bottom: 2px solid #ccc; }
.bar { background: #e5e5ea; border-radius: 4px; height: 14px; width: 260px; position: relative; }
.bar span { display: block; height: 100%; border-radius: 4px; }
.status { font-weight: 600; } pre { background: #f6f6f8; padding: .6em; overflow-x: auto; white-space: pre-wrap; font-size: 13px; }
.check { border-left: 4px solid; padding: .2em .8em; margin: 1em 0; } .note { color: #555; font-style: italic; }
.quiet { color: #555; padding-left: 1.2em; } .quiet li { margin: .2em 0; }
a { color: #0b57d0; }
"""


def student_page(report: dict[str, Any], reveal: str = "visible") -> str:
    if not is_scored(report):
        return error_page(report)
    shown = [t for t in report["tests"] if t["visibility"] in REVEALED[reveal]]
    held = [t for t in report["tests"] if t["visibility"] not in REVEALED[reveal]]
    title = f"Feedback for {report.get('student') or report['submission']['path']}"
    score, most = sum(t["score"] for t in shown), sum(t["max_score"] for t in shown)
    parts = [f"<h1>{escape(title)}</h1>",
             f"<p class='score'>{format_points(score)} / {format_points(most)}</p>",
             f"<p class='meta'>{'points of the checks shown here; ' if held else ''}submission: "
             f"{escape(report['submission']['form'])} · grader {escape(report['grader']['version'])} · "
             f"isolation: {escape(report['grader']['isolation'])}</p>"]
    if held:
        parts.append(f"<p class='note'>{len(held)} more checks, worth {format_points(sum(t['max_score'] for t in held))} "
                     f"points, are shown after the due date.</p>")
    parts += [f"<p>{escape(message)}</p>" for message in report["messages"]]
    parts.append("<h2>Points by group</h2>" + _group_table(shown))
    parts.append("<h2>What to fix</h2>" + (_what_to_fix(shown) or "<p>Nothing: every check shown passed.</p>"))
    if report.get("mnist"):
        parts.append(_mnist_section(report["mnist"]))
    parts.append(_submission_section(report["submission"]))
    return _page(title, parts)


def error_page(report: dict[str, Any]) -> str:
    """The page of a grading that failed: not graded, why (the grader's words), and what was handed in."""
    title = f"Feedback for {report.get('student') or report['submission']['path']}"
    parts = [f"<h1>{escape(title)}</h1>", "<p class='score'>not graded</p>",
             "<p class='status' style='color:#ef6c00'>The grader failed on this submission, so it has no score yet. "
             "Course staff will grade it again: this is not about your code.</p>",
             f"<p class='meta'>report status: {escape(report['status'])} · grader {escape(report['grader']['version'])} · "
             f"isolation: {escape(report['grader']['isolation'])}</p>",
             "<h2>What went wrong</h2>" + "".join(f"<pre>{escape(message)}</pre>" for message in report["messages"]),
             _submission_section(report["submission"])]
    return _page(title, parts)


def class_index(reports: dict[str, dict[str, Any]], summary: dict[str, Any], pages: dict[str, str]) -> str:
    """reports: {student id: report}; pages: {student id: relative link to that student's page}."""
    groups = list(dict.fromkeys(t["group"] for r in reports.values() for t in r["tests"]))
    failed = summary.get("not_graded", [])
    parts = [f"<h1>Class results</h1><p class='meta'>{summary['count']} submissions · mean {summary['mean']} · "
             f"median {summary['median']} · standard deviation {summary['standard_deviation']} "
             f"(out of {format_points(summary['max_score'])})</p>",
             *([f"<p class='status' style='color:#ef6c00'>Not graded (the grading failed: no score): {len(failed)} · "
                f"{escape(', '.join(failed))}</p>"] if failed else []),
             "<h2>Score distribution</h2>" + _histogram(summary["histogram"])]
    rows = []
    scored = [r for r in reports.values() if is_scored(r)]  # a failed grading passed nothing and failed nothing
    for group in groups:
        tests = [[t for t in r["tests"] if t["group"] == group] for r in scored]
        full = sum(1 for ts in tests if ts and all(t["status"] == "passed" for t in ts))
        rate = full / len(scored) if scored else 0
        rows.append(f"<tr><td>{escape(group)}</td><td>{_bar(rate, '#4c72b0')}</td><td>{100 * rate:.0f}% "
                    f"({full} of {len(scored)})</td></tr>")
    parts.append("<h2>Pass rate by group</h2><table><tr><th>group</th><th></th><th>full points</th></tr>"
                 + "".join(rows) + "</table>")
    failures = "".join(f"<tr><td>{escape(item['check'])}</td><td>{item['students']}</td></tr>"
                       for item in summary["most_failed_checks"])
    parts.append("<h2>Most common failures</h2><table><tr><th>check</th><th>students</th></tr>"
                 + (failures or "<tr><td>none</td><td></td></tr>") + "</table>")
    student_rows = "".join(
        f"<tr><td><a href='{escape(pages[s])}'>{escape(s)}</a></td><td>{_score_cell(reports[s])}</td>"
        f"<td>{escape(reports[s]['status'])}</td><td>{escape(_first_problem(reports[s]))}</td></tr>" for s in sorted(reports))
    parts.append("<h2>Students</h2><table><tr><th>student</th><th>score</th><th>status</th><th>first problem</th></tr>"
                 + student_rows + "</table>")
    return _page("Class results", parts)


def _group_table(tests):
    rows = []
    for group, summary in group_summaries(tests).items():
        color = STATES[summary.state].color
        rows.append(f"<tr><td>{escape(group)}</td><td>{_bar(summary.score / summary.max_score if summary.max_score else 1, color)}</td>"
                    f"<td>{format_points(summary.score)} / {format_points(summary.max_score)}</td>"
                    f"<td class='status' style='color:{color}'>{summary.state}</td></tr>")
    return "<table><tr><th>group</th><th></th><th>points</th><th>status</th></tr>" + "".join(rows) + "</table>"


def _what_to_fix(tests):
    """Each group not passed, as its state is shown (STATES): a box per failing check; one box for
    the groups a module that could not be imported costs; one quiet line per group not started."""
    once: dict[tuple[str, Cause | None], tuple[str, list[GroupSummary]]]  # (state, cause) → (its output, the groups)
    boxes, once, lines = [], {}, []
    for group, summary in group_summaries(tests).items():
        shown = STATES[summary.state].shown
        if shown == "checks":
            boxes += [_check(test) for test in summary.checks if test["status"] != "passed"]
        elif shown == "once":  # the module's error, said once for all the groups it costs
            case = next(c for t in summary.checks for c in t["cases"] if c["status"] != "passed")
            once.setdefault((summary.state, cause_of(case)), (case["output"], []))[1].append(summary)
        elif shown == "line":
            lines.append(f"<li><b>{escape(group)}</b> · {summary.state}: {escape(summary.feedback)}</li>")
    for (state, _), (output, summaries) in once.items():
        names = ", ".join(summary.checks[0]["group"] for summary in summaries)
        score, most = sum(s.score for s in summaries), sum(s.max_score for s in summaries)
        boxes.append(_box(f"{names} · {state}", score, most, STATES[state].color, output))
    return "".join(boxes) + (f"<ul class='quiet'>{''.join(lines)}</ul>" if lines else "")


def _check(test):
    """A failing check: its feedback as the report says it, each diagnosis once with its cases."""
    return _box(test["name"], test["score"], test["max_score"], STATES[state_of([test])].color, test["output"])


def _box(title, score, most, color, text):
    return (f"<div class='check' style='border-color:{color}'><h3>{escape(title)} · "
            f"{format_points(score)} / {format_points(most)}</h3><pre>{escape(text)}</pre></div>")


def _mnist_section(mnist):
    curve = mnist["accuracy_per_epoch"]
    width, height, pad = 520, 220, 40
    low = min(*curve, 90.0)
    def x(i): return pad + (width - 2 * pad) * (i / max(1, len(curve) - 1))
    def y(a): return height - pad - (height - 2 * pad) * (a - low) / (100 - low)
    points = " ".join(f"{x(i):.1f},{y(a):.1f}" for i, a in enumerate(curve))
    dots = "".join(f"<circle cx='{x(i):.1f}' cy='{y(a):.1f}' r='3.5' fill='#4c72b0'><title>epoch {i + 1}: {a:.2f}%</title></circle>"
                   for i, a in enumerate(curve))
    ticks = "".join(f"<text x='{pad - 6}' y='{y(v) + 4:.1f}' text-anchor='end' font-size='11'>{v:g}%</text>"
                    f"<line x1='{pad}' x2='{width - pad}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e5e5ea'/>"
                    for v in sorted({low, (low + 100) / 2, 100}))
    epochs = "".join(f"<text x='{x(i):.1f}' y='{height - pad + 16}' text-anchor='middle' font-size='11'>{i + 1}</text>"
                     for i in range(len(curve)))
    svg = (f"<svg width='{width}' height='{height}' role='img' aria-label='test accuracy per epoch'>{ticks}{epochs}"
           f"<polyline points='{points}' fill='none' stroke='#4c72b0' stroke-width='2'/>{dots}"
           f"<text x='{width / 2}' y='{height - 4}' text-anchor='middle' font-size='12'>epoch</text></svg>")
    return (f"<h2>MNIST</h2><p>Test accuracy <b>{mnist['accuracy']:.2f}%</b> after {mnist['epochs']} epochs "
            f"({mnist['training_seconds']:.1f} s of training).</p>{svg}")


def _submission_section(submission):
    items = [f"<li>found: {escape(', '.join(submission['found']) or 'nothing')}</li>"]
    if submission["missing"]:
        items.append(f"<li>missing: {escape(', '.join(submission['missing']))}</li>")
    items += [f"<li>ignored: {escape(name)}</li>" for name in submission["ignored"]]
    items += [f"<li>{escape(note)}</li>" for note in submission["notes"]]
    return "<h2>Your submission</h2><ul>" + "".join(items) + "</ul>"


def _histogram(histogram):
    counts, edges = histogram["counts"], histogram["edges"]
    width, height, pad = 560, 200, 30
    tallest = max(counts) or 1
    step = (width - 2 * pad) / len(counts)
    bars = "".join(
        f"<rect x='{pad + i * step + 2:.1f}' y='{height - pad - (height - 2 * pad) * c / tallest:.1f}' width='{step - 4:.1f}' "
        f"height='{(height - 2 * pad) * c / tallest:.1f}' fill='#4c72b0'><title>{edges[i]:g}–{edges[i + 1]:g}: {c}</title></rect>"
        f"<text x='{pad + (i + 0.5) * step:.1f}' y='{height - pad + 14}' text-anchor='middle' font-size='11'>{edges[i]:g}</text>"
        f"<text x='{pad + (i + 0.5) * step:.1f}' y='{height - pad - (height - 2 * pad) * c / tallest - 4:.1f}' "
        f"text-anchor='middle' font-size='11'>{c or ''}</text>" for i, c in enumerate(counts))
    return f"<svg width='{width}' height='{height}' role='img' aria-label='score histogram'>{bars}</svg>"


def _bar(fraction, color):
    return f"<div class='bar'><span style='width:{100 * max(0.0, min(1.0, fraction)):.1f}%;background:{color}'></span></div>"


def _score_cell(report):
    return format_points(report["score"]) if is_scored(report) else "<b>not graded</b>"


def _first_problem(report):
    """The gradebook's problem (one cause for a module that does not import), else the first failing check."""
    failing = next((t for t in report["tests"] if t["status"] != "passed"), None)
    problems = row_problems(report)
    if problems:
        return problems[:160]
    return f"{failing['name']}: {failing['status']}" if failing else ""


def _page(title, parts):
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")

