"""Grade a whole class: parallel, resumable, and on a Dask cluster when asked.

Each submission is graded exactly as `grader grade` grades it (its own pytest process and
sandboxed workers). Its report is written atomically the moment it is done, so a batch killed at
any point loses nothing finished; a rerun skips every report that matches the submission's
content hash, the grader's version and the rubric's hash, and grades the rest. The gradebook and
the summary are then rebuilt from the reports on disk, so they do not depend on how many runs it
took to get there. Reports about to be replaced are kept in previous/ first, and what changed is
written to diff.md and diff.csv (a rerun after a rubric edit says whose score moved, and why).

The output folder holds one grading of one class: a report per submission in the source (a report
whose submission is gone leaves with the rest of the old output), and the files derived from them
(DERIVED), which every run replaces as a whole: when it changes any report, the last finished
run's output moves to previous/, whole; either way nothing derived outlives the run that made it.
The names the LMS gave (its file names, its exports) are kept in names.json, run after run.

On Dask, each task carries the submission's bytes and returns the report's: a cluster's workers
need the repository (to import `grader`), not the submissions' folder.
"""
import io
import json
import os
import shutil
import tempfile
import traceback
import zipfile
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from .. import VERSION
from ..grade import grade
from ..report import build_report, is_scored, write_atomically, write_report
from ..rubric import Rubric, course_salt, parse_rubric
from ..sandbox.levels import isolation_level
from ..sandbox.permissions import protect_from_workers
from ..submission import Submission, submission_sha256, unpack_zip
from .diff import FILES as DIFF_FILES
from .diff import compare, load_reports, write_diff
from .gradebook import FILES as CLASS_FILES
from .gradebook import row_problems, write_class_files
from .lms import IMPORT_FILES, LMSExport, Sheet
from .pages import class_index, student_page
from .roster import Roster, Student, discover
from .similarity import FILES as SIMILARITY_FILES

PAGES = "html"
# Every file a batch derives from its reports and the options it is given: a rerun replaces them all.
DERIVED = (*CLASS_FILES, PAGES, *IMPORT_FILES.values(), *DIFF_FILES, *SIMILARITY_FILES)
REPORT_FORMATS = ("native", "gradescope")
NAMES = "names.json"
NAME_SOURCES = ("submissions", *sorted(IMPORT_FILES))  # whose name the gradebook shows: the first that has one


def report_path(out: str | os.PathLike[str], student_id: str, format: str = "native") -> Path:
    return Path(out) / "reports" / (f"{student_id}.json" if format == "native" else f"{student_id}.{format}.json")


def is_current(out: Path, student: Student, content_hash: str, rubric: Rubric, isolation: str) -> bool:
    """Does a finished report for this exact submission, grader, rubric and isolation already exist?
    A grading that failed is never finished: a rerun grades it again."""
    try:
        report = json.loads(report_path(out, student.id).read_text())
        return (is_scored(report) and report["submission"]["sha256"] == content_hash and report["grader"]["version"] == VERSION
                and report["grader"]["rubric_sha256"] == rubric.sha256 and report["grader"]["isolation"] == isolation)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def grade_student(student_id: str, path: str | os.PathLike[str], rubric: Rubric, isolation: str) -> dict[str, Any]:
    """Grade one student; never raises: a failure of the grader itself becomes that student's report."""
    try:
        report = grade(path, rubric, isolation)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # whatever its type (SystemExit too): one bad row, never a lost batch
        return failed_report(student_id, path, rubric, isolation, error)
    report["student"] = student_id
    return report


def failed_report(student_id: str, path: str | os.PathLike[str], rubric: Rubric, isolation: str, error: BaseException) -> dict[str, Any]:
    """The report of a submission the grader itself failed on: status error, no score, and the reason."""
    detail = traceback.format_exception_only(type(error), error)[-1].strip()
    report = build_report(Submission(path=str(path), form="unknown", sha256=submission_sha256(path)), rubric, [],
                          isolation, 0.0, messages=[f"the grader failed on this submission: {detail}"])
    report["student"] = student_id
    return report


def run_batch(source: str | os.PathLike[str], out: str | os.PathLike[str], rubric: Rubric, jobs: int | None = None,
              force: bool = False, only: Collection[str] = (), formats: Sequence[str] = ("native",),
              scheduler: str | None = None, pattern: str | None = None, isolation: str = "process", progress: bool = True,
              html: bool = False, reveal: str = "visible",
              lms: LMSExport | None = None) -> tuple[Roster, list[str], list[str], dict[str, str]]:
    """Grade every submission in `source` into `out`; returns (roster, graded ids, skipped ids,
    {student id: why their report could not be written}). lms: an LMSExport to fill.
    roster.written names the other files written (the LMS file, diff.md)."""
    out = Path(out)
    rubric = course_salt(rubric, official=True).rubric  # a batch is official: the course's own inputs
    sheet = lms.read(rubric.max_score) if lms else None  # an export that cannot be filled stops the batch here
    if isolation_level(isolation).guarded_by_permissions:  # the classmates' submissions and reports, out of every worker's reach
        out.mkdir(parents=True, exist_ok=True)
        protect_from_workers([source, out])
    roster = discover(source, out / "staging", pattern)
    known = {student.id for student in roster.students}
    unknown = sorted(set(only) - known)
    if unknown:
        raise ValueError(f"--only names no submission: {', '.join(unknown)}")
    names = kept_names(out, roster, lms.kind if lms else None, sheet)
    todo, skipped = [], []
    for student in roster.students:
        if only and student.id not in only:
            skipped.append(student.id)
        elif force or only or not is_current(out, student, submission_sha256(student.path), rubric, isolation):
            todo.append(student)
        else:
            skipped.append(student.id)
    for leftover in [*out.glob(".*.tmp"), *out.glob("reports/.*.tmp"), out / ".previous-next"]:
        remove(leftover)  # a write a kill interrupted: never read, never kept
    owned = {report_path(out, s.id, format).name for s in roster.students for format in REPORT_FORMATS}
    gone = [p for p in sorted(out.glob("reports/*.json")) if p.name not in owned]  # their submissions are not in source
    replaced = [s.id for s in todo if report_path(out, s.id).is_file()]
    if (replaced or gone) and (out / "gradebook.csv").is_file():  # the output of the last finished run, kept whole
        keep_previous(out)
    for name in DERIVED:  # rebuilt below from the reports, or not at all: never left from another run
        remove(out / name)
    for path in gone:
        path.unlink()

    bar = _progress_bar(len(todo), progress)
    problems, unwritten = 0, {}
    for report in _graded(todo, rubric, isolation, jobs, scheduler):
        try:
            for format in formats:
                write_report(report, report_path(out, report["student"], format), format)
        except Exception as error:  # a full disk, say: this student is graded again next run, the rest go on
            unwritten[report["student"]] = f"{type(error).__name__}: {error}"
        problems += bool(row_problems(report)) or report["student"] in unwritten
        bar.set_postfix(problems=problems)
        bar.update()
    bar.close()
    reports = {}
    for student in roster.students:
        path = report_path(out, student.id)
        if path.is_file():
            reports[student.id] = json.loads(path.read_text())
            for format in REPORT_FORMATS[1:]:  # asked for only now, or left from an older grading: converted, not regraded
                converted = report_path(out, student.id, format)
                if format not in formats:
                    converted.unlink(missing_ok=True)
                elif not converted.is_file() or converted.stat().st_mtime_ns < path.stat().st_mtime_ns:
                    write_report(reports[student.id], converted, format)
    if lms:
        assert sheet is not None  # read above, with lms
        filled = lms.fill(out, sheet, {student: report["score"] if is_scored(report) else None for student, report in reports.items()})
        roster.written[filled.path.name] = filled.path
        roster.notes += [f"{student}: graded, but not in the {lms.kind} export (not in {filled.path.name})"
                         for student in filled.not_in_export]
        roster.notes += [f"{student}: the grading failed: left empty in {filled.path.name}" for student in filled.not_graded]
    summary = write_class_files(out, reports, roster, rubric, names)
    if html:
        write_pages(out / PAGES, reports, summary, reveal)
    if (replaced or gone) and (out / "previous").is_dir():
        write_diff(out, compare(load_reports(out / "previous"), reports), "previous", "this run")
        roster.written["diff.md"] = out / "diff.md"
    for folder in (out / "staging", out / "reports"):
        prune(folder)
    return roster, [s.id for s in todo], skipped, unwritten


def kept_names(out: Path, roster: Roster, kind: str | None, sheet: Sheet | None) -> dict[str, str]:
    """{student id: name}: of every name a run was given (the submissions' file names, each LMS
    export), kept in names.json, the first found in NAME_SOURCES' order; the same whichever run
    was given which."""
    path = out / NAMES
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    kept = {source: names for source, names in kept.items() if source in NAME_SOURCES and isinstance(names, dict)} \
        if isinstance(kept, dict) else {}
    given = {"submissions": {s.id: s.name for s in roster.students if s.name}}
    if sheet:
        assert kind is not None  # an export read has its kind
        given[kind] = {student: name for student, name in sheet.names.items() if name}
    for source, names in given.items():
        kept[source] = {**kept.get(source, {}), **names}
    kept = {source: names for source, names in kept.items() if names}
    if kept or path.is_file():
        write_atomically(path, json.dumps(kept, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return {student: next(kept[source][student] for source in NAME_SOURCES if student in kept.get(source, {}))
            for student in {s for names in kept.values() for s in names}}


def keep_previous(out: Path) -> None:
    """The output as it is (its reports and everything derived from them) into previous/, replacing
    the one there. Built apart first, so that a kill leaves either previous/ or the output whole."""
    building = out / ".previous-next"
    remove(building)
    shutil.copytree(out / "reports", building / "reports", ignore=shutil.ignore_patterns(".*"))
    for name in DERIVED:
        if (out / name).is_dir():
            shutil.copytree(out / name, building / name)
        elif (out / name).is_file():
            shutil.copy2(out / name, building / name)
    remove(out / "previous")
    building.rename(out / "previous")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def prune(folder: Path) -> None:
    """Remove `folder` if no file is left in it (an empty staging/, a class with no report)."""
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        shutil.rmtree(folder)


def write_pages(folder: Path, reports: dict[str, dict[str, Any]], summary: dict[str, Any], reveal: str = "visible") -> None:
    """A feedback page per student (checks shown as the rubric's visibility and `reveal` allow)
    and the class index linking them."""
    pages = {student: f"{student}.html" for student in reports}
    for student, report in reports.items():
        write_atomically(folder / pages[student], student_page(report, reveal))
    write_atomically(folder / "index.html", class_index(reports, summary, pages))


def _graded(todo, rubric, isolation, jobs, scheduler):
    """Reports as they finish, from local threads (each grading runs in its own processes) or Dask."""
    if scheduler:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            futures = {client.submit(grade_bytes, s.id, s.path.name, s.path.is_dir(), packed(s.path), rubric.text, str(s.path),
                                     rubric.path, isolation, pure=False): s for s in todo}
            for future in dask_completed(futures):
                student = futures[future]
                try:
                    yield json.loads(future.result())
                except KeyboardInterrupt:
                    raise
                except BaseException as error:  # a lost worker, say: that student's row says so; a rerun retries
                    yield failed_report(student.id, student.path, rubric, isolation, error)
        return
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        running = [pool.submit(grade_student, s.id, s.path, rubric, isolation) for s in todo]
        for done in as_completed(running):
            yield done.result()


def packed(path: str | os.PathLike[str]) -> bytes:
    """A submission as bytes: a file's own, or a folder zipped (its files, no links)."""
    path = Path(path)
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def grade_bytes(student_id: str, name: str, is_folder: bool, payload: bytes, rubric_text: bytes, path: str, rubric_path: str,
                isolation: str) -> str:
    """On a Dask worker: the submission rebuilt from its bytes under its own name (a folder is
    unpacked, so it is graded as a folder and hashes the same), graded with the rubric's text (its
    salt in it), and the report returned as JSON text naming the paths the instructor's machine knows."""
    rubric = parse_rubric(rubric_text, rubric_path)
    with tempfile.TemporaryDirectory(prefix="autodiff-batch-") as folder:
        temporary = Path(folder)
        submission = temporary / "submission" / name
        submission.parent.mkdir()
        if is_folder:
            archive = temporary / "folder.zip"
            archive.write_bytes(payload)
            submission.mkdir()
            unpack_zip(archive, submission)
        else:
            submission.write_bytes(payload)
        report = grade_student(student_id, submission, rubric, isolation)
    report["submission"]["path"] = path
    return json.dumps(report)


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", desc="grading", disable=not enabled or total == 0)
