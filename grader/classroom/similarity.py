"""Pairs of submissions that share most of their code, for a human to look at (never a grade).

    python -m grader similarity OUT_DIR [--threshold 0.5]     # after `grader batch ... --out OUT_DIR`

Fingerprints are copydetect's (winnowing over pygments tokens, with names, strings and comments
normalised away, so renamed variables, reformatting and reordered functions do not hide a copy).
Excluded before comparing: the starter's given text (signatures, docstrings, stubs) and whatever
most of the class shares (boilerplate every correct solution has). Score of a pair: the share of
each one's remaining fingerprints found in the other, averaged, in [0, 1] (every pair is scored
with set intersections; copydetect's token-level matching then marks the regions of flagged pairs).

Writes similarity.json (pairs {"a", "b", "score"}, most similar first) and similarity/ (a page
per pair at or above the threshold, with the matched regions side by side, and index.html: the
clusters of flagged pairs). Python salts str hashes per process, and winnowing keeps the least
hash of each window: the fingerprints are computed in a child process with a fixed hash seed,
so the same class gives the same numbers on every run.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from html import escape
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .. import GRADED_MODULES
from ..course import COURSE_PACKAGE
from ..report import write_atomically
from ..submission import decoded, load_submission

K, WINDOW = 25, 4             # copydetect's noise threshold (k-gram length) and guarantee threshold - k + 1
COMMON_SHARE = 0.5            # fingerprints in more than this share of the class are boilerplate
MIN_CLASS_FOR_COMMON = 4      # below this, "most of the class" means nothing
DEFAULT_THRESHOLD = 0.5
FILES = ("similarity.json", "similarity")  # what similarity_report writes in a batch's output folder
PARALLEL_FROM = 40            # submissions: fewer are fingerprinted in this process


def submission_code(path: str | os.PathLike[str]) -> str:
    """The graded modules of one submission as one text, in a fixed module order."""
    submission = load_submission(path)
    texts = [decoded(submission.sources[m])[0] or "" for m in GRADED_MODULES if m in submission.sources]
    return "\n\n".join(texts + [cell["source"] for cell in submission.cells])


def starter_code() -> str:
    return "\n\n".join((COURSE_PACKAGE / f"{m}.py").read_text() for m in GRADED_MODULES if (COURSE_PACKAGE / f"{m}.py").is_file())


def fingerprint(item: tuple[str, str, list[int] | None]) -> Any:  # a copydetect CodeFingerprint
    from copydetect import CodeFingerprint

    name, code, given = item
    return CodeFingerprint(f"{name}.py", K, WINDOW, boilerplate=given, fp=io.StringIO(code))


def fingerprints(codes: dict[str, str], starter: str) -> dict[str, Any]:
    """{student: copydetect CodeFingerprint} with the starter's and the class's common fingerprints
    removed. Tokenizing is most of the time: spread over the cores for a large class."""
    from copydetect.utils import get_token_coverage

    given = list(fingerprint(("starter", starter, None)).hashes)
    items = [(student, code, given) for student, code in codes.items()]
    if len(items) >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor() as pool:
            prints = dict(zip(codes, pool.map(fingerprint, items, chunksize=16), strict=True))
    else:
        prints = dict(zip(codes, map(fingerprint, items), strict=True))
    for p in prints.values():  # Python ints: a class's pairs are scored by intersecting these sets
        p.hashes = {int(h) for h in p.hashes}
    if len(prints) >= MIN_CLASS_FOR_COMMON:
        counts = Counter(h for p in prints.values() for h in p.hashes)
        common = {h for h, n in counts.items() if n > COMMON_SHARE * len(prints)}
        for p in prints.values():
            p.hashes -= common
            p.hash_idx = {h: i for h, i in p.hash_idx.items() if int(h) not in common}
            p.token_coverage = get_token_coverage(p.hash_idx, K, len(p.filtered_code))
    return prints


def compare_class(codes: dict[str, str], starter: str) -> tuple[list[tuple[str, str, float]], dict[str, Any]]:
    """[(a, b, score)] for every pair, most similar first, and the fingerprints. The score of a pair
    is the share of each one's fingerprints found in the other, averaged (0 when either has none)."""
    prints = fingerprints(codes, starter)
    results = []
    for a, b in combinations(sorted(prints), 2):
        first, second = prints[a].hashes, prints[b].hashes
        shared = len(first & second)
        score = round((shared / len(first) + shared / len(second)) / 2, 4) if shared else 0.0
        results.append((a, b, score))
    return sorted(results, key=lambda r: (-r[2], r[0], r[1])), prints


def similarity_report(out: str | os.PathLike[str], threshold: float = DEFAULT_THRESHOLD) -> tuple[list[dict[str, Any]], list[tuple[str, str, float]]]:
    """Compare the graded submissions of a batch output; write similarity.json and the pages."""
    from copydetect import compare_files

    from .diff import load_reports

    out = Path(out)
    reports = load_reports(out)
    codes = {s: submission_code(r["submission"]["path"]) for s, r in reports.items() if r["status"] == "graded"}
    unread = sorted(s for s, code in codes.items() if not code.strip())  # moved since the grading, say: said, not scored 0
    codes = {s: code for s, code in codes.items() if s not in unread}
    results, prints = compare_class(codes, starter_code())
    pairs = [{"a": a, "b": b, "score": score} for a, b, score in results]
    flagged = [r for r in results if r[2] >= threshold]
    result, pages = (out / name for name in FILES)
    write_atomically(result, json.dumps({"threshold": threshold, "submissions": len(codes), "not_compared": unread,
                                         "flagged": len(flagged), "pairs": pairs}, indent=1) + "\n")
    shutil.rmtree(pages, ignore_errors=True)  # the pages of this comparison only, not of a pair an earlier one flagged
    for a, b, score in flagged:
        _, _, slices = compare_files(prints[a], prints[b])  # copydetect's matched regions, in each one's own text
        write_atomically(pages / f"{a}--{b}.html", pair_page(a, b, score, prints[a].raw_code, prints[b].raw_code, slices))
    write_atomically(pages / "index.html", clusters_page(flagged, threshold, len(codes)))
    return pairs, flagged


def clusters(flagged: list[tuple[str, str, float]]) -> list[list[str]]:
    """Connected groups of students linked by flagged pairs, largest first."""
    group_of: dict[str, set[str]] = {}
    for a, b, *_ in flagged:
        merged = group_of.get(a, {a}) | group_of.get(b, {b})
        for student in merged:
            group_of[student] = merged
    unique = {id(g): g for g in group_of.values()}.values()
    return sorted((sorted(g) for g in unique), key=lambda g: (-len(g), g))


def pair_page(a: str, b: str, score: float, code_a: str, code_b: str, slices: tuple[np.ndarray, np.ndarray] | None) -> str:
    from copydetect.utils import highlight_overlap

    def shown(code, cut):
        marked, _ = highlight_overlap(code, cut, "<mark>", "</mark>", escape_html=True) if cut is not None and cut.size else (escape(code), 0)
        return f"<pre>{marked}</pre>"

    cut_a, cut_b = slices if slices is not None else (None, None)
    return _page(f"{a} and {b}", f"<h1>{escape(a)} and {escape(b)}: {score:.0%} shared</h1>"
                 "<p class='meta'>Highlighted: code found in both (after removing the starter's text and code most of "
                 "the class shares). A lead for a human to read, not a verdict.</p>"
                 f"<div class='pair'><div><h2>{escape(a)}</h2>{shown(code_a, cut_a)}</div>"
                 f"<div><h2>{escape(b)}</h2>{shown(code_b, cut_b)}</div></div>")


def clusters_page(flagged: list[tuple[str, str, float]], threshold: float, count: int) -> str:
    groups = "".join(f"<li>{', '.join(escape(s) for s in group)}</li>" for group in clusters(flagged)) or "<li>none</li>"
    rows = "".join(f"<tr><td><a href='{escape(a)}--{escape(b)}.html'>{escape(a)} and {escape(b)}</a></td><td>{score:.0%}</td></tr>"
                   for a, b, score in flagged)
    return _page("Similar submissions", f"<h1>Similar submissions</h1><p class='meta'>{count} submissions compared; "
                 f"{len(flagged)} pairs share at least {threshold:.0%} of their code.</p><h2>Clusters</h2><ul>{groups}</ul>"
                 f"<h2>Pairs</h2><table><tr><th>pair</th><th>shared</th></tr>{rows}</table>")


def _page(title, body):
    style = ("body{font:15px/1.45 system-ui,sans-serif;margin:2em}.pair{display:flex;gap:1em}.pair>div{flex:1;min-width:0}"
             "pre{background:#f6f6f8;padding:.6em;font-size:12px;white-space:pre-wrap}mark{background:#ffe08a}.meta{color:#666}")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def run(out: str | os.PathLike[str], threshold: float = DEFAULT_THRESHOLD) -> tuple[list[dict[str, Any]], int]:
    """similarity_report in a child process with a fixed hash seed (see the module's docstring);
    returns (pairs, number flagged)."""
    completed = subprocess.run([sys.executable, "-m", "grader.classroom.similarity", str(out), "--threshold", str(threshold)],
                               env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "the comparison failed")
    result = json.loads((Path(out) / "similarity.json").read_text())
    return result["pairs"], result["flagged"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    arguments = parser.parse_args()
    similarity_report(arguments.out, arguments.threshold)
