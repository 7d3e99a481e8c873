"""Grade a whole class: parallel, resumable, and on a Dask cluster when asked.

Each submission is graded exactly as `grader grade` grades it (its own pytest process and
sandboxed workers). Its report is written atomically the moment it is done, so a batch killed at
any point loses nothing finished; a rerun skips every report that matches the submission's
content hash, the grader's version and the rubric's hash, and grades the rest. The gradebook and
the summary are then rebuilt from the reports on disk, so they do not depend on how many runs it
took to get there. Reports about to be replaced are kept in previous/ first, and what changed is
written to diff.md and diff.csv (a rerun after a rubric edit says whose score moved, and why).

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
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .. import VERSION
from ..grade import grade
from ..report import build_report, is_scored, write_atomically, write_report
from ..rubric import load_rubric
from ..sandbox.launch import protect_from_workers
from ..submission import Submission, submission_sha256, unpack_zip
from .diff import compare, load_reports, write_diff
from .gradebook import row_problems, write_class_files
from .pages import class_index, student_page
from .roster import discover


def report_path(out, student_id, format="native"):
    return Path(out) / "reports" / (f"{student_id}.json" if format == "native" else f"{student_id}.{format}.json")


def is_current(out, student, content_hash, rubric, isolation):
    """Does a finished report for this exact submission, grader, rubric and isolation already exist?
    A grading that failed is never finished: a rerun grades it again."""
    try:
        report = json.loads(report_path(out, student.id).read_text())
        return (is_scored(report) and report["submission"]["sha256"] == content_hash and report["grader"]["version"] == VERSION
                and report["grader"]["rubric_sha256"] == rubric.sha256 and report["grader"]["isolation"] == isolation)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def grade_student(student_id, path, rubric_path, isolation):
    """Grade one student; never raises: a failure of the grader itself becomes that student's report."""
    rubric = load_rubric(rubric_path)
    try:
        report = grade(path, rubric, isolation)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # whatever its type (SystemExit too): one bad row, never a lost batch
        return failed_report(student_id, path, rubric, isolation, error)
    report["student"] = student_id
    return report


def failed_report(student_id, path, rubric, isolation, error):
    """The report of a submission the grader itself failed on: status error, no score, and the reason."""
    detail = traceback.format_exception_only(type(error), error)[-1].strip()
    report = build_report(Submission(path=str(path), form="unknown", sha256=submission_sha256(path)), rubric, [],
                          isolation, 0.0, messages=[f"the grader failed on this submission: {detail}"])
    report["student"] = student_id
    return report


def run_batch(source, out, rubric, jobs=None, force=False, only=(), formats=("native",), scheduler=None,
              pattern=None, isolation="process", progress=True, html=False, reveal="visible", lms=None):
    """Grade every submission in `source` into `out`; returns (roster, graded ids, skipped ids,
    {student id: why their report could not be written}). lms: an LMSExport to fill.
    roster.written names the other files written (the LMS file, diff.md)."""
    out = Path(out)
    if isolation == "uid":  # the classmates' submissions and reports, out of every worker's reach
        out.mkdir(parents=True, exist_ok=True)
        protect_from_workers([source, out])
    roster = discover(source, out / "staging", pattern)
    known = {student.id for student in roster.students}
    unknown = sorted(set(only) - known)
    if unknown:
        raise ValueError(f"--only names no submission: {', '.join(unknown)}")
    todo, skipped = [], []
    for student in roster.students:
        if only and student.id not in only:
            skipped.append(student.id)
        elif force or only or not is_current(out, student, submission_sha256(student.path), rubric, isolation):
            todo.append(student)
        else:
            skipped.append(student.id)
    for leftover in [*out.glob(".*.tmp"), *out.glob("reports/.*.tmp")]:
        leftover.unlink()  # a write a kill interrupted: never read, never kept
    replaced = [s.id for s in todo if report_path(out, s.id).is_file()]
    if replaced:  # the reports a regrade replaces, to say what changed
        shutil.rmtree(out / "previous", ignore_errors=True)
        shutil.copytree(out / "reports", out / "previous" / "reports", ignore=shutil.ignore_patterns(".*"))

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
            for format in formats:  # asked for only now, or left from an older grading: converted, not regraded
                converted = report_path(out, student.id, format)
                if not converted.is_file() or converted.stat().st_mtime_ns < path.stat().st_mtime_ns:
                    write_report(reports[student.id], converted, format)
    names = {student.id: student.name for student in roster.students if student.name}
    if lms:
        filled = lms.fill(out, {student: report["score"] if is_scored(report) else None for student, report in reports.items()},
                          rubric.max_score)
        names = {**filled.names, **names}
        roster.written[filled.path.name] = filled.path
        roster.notes += [f"{student}: graded, but not in the {lms.kind} export (not in {filled.path.name})"
                         for student in filled.not_in_export]
        roster.notes += [f"{student}: the grading failed: left empty in {filled.path.name}" for student in filled.not_graded]
    summary = write_class_files(out, reports, roster, rubric, names)
    if html:
        write_pages(out / "html", reports, summary, reveal)
    if replaced:
        rows = compare(load_reports(out / "previous"), {s: reports[s] for s in replaced if s in reports})
        write_diff(out, rows, "previous", "this run")
        roster.written["diff.md"] = out / "diff.md"
    return roster, [s.id for s in todo], skipped, unwritten


def write_pages(folder, reports, summary, reveal="visible"):
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

        rubric_text = Path(rubric.path).read_bytes()
        with Client(scheduler) as client:
            futures = {client.submit(grade_bytes, s.id, s.path.name, s.path.is_dir(), packed(s.path), rubric_text, str(s.path),
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
        futures = [pool.submit(grade_student, s.id, s.path, rubric.path, isolation) for s in todo]
        for future in as_completed(futures):
            yield future.result()


def packed(path):
    """A submission as bytes: a file's own, or a folder zipped (its files, no links)."""
    path = Path(path)
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def grade_bytes(student_id, name, is_folder, payload, rubric_text, path, rubric_path, isolation):
    """On a Dask worker: the submission rebuilt from its bytes under its own name (a folder is
    unpacked, so it is graded as a folder and hashes the same), graded, and the report returned
    as JSON text naming the paths the instructor's machine knows."""
    with tempfile.TemporaryDirectory(prefix="autodiff-batch-") as temporary:
        temporary = Path(temporary)
        rubric_file = temporary / "rubric.toml"
        rubric_file.write_bytes(rubric_text)
        submission = temporary / "submission" / name
        submission.parent.mkdir()
        if is_folder:
            archive = temporary / "folder.zip"
            archive.write_bytes(payload)
            submission.mkdir()
            unpack_zip(archive, submission)
        else:
            submission.write_bytes(payload)
        report = grade_student(student_id, submission, rubric_file, isolation)
    report["submission"]["path"], report["grader"]["rubric"] = path, rubric_path
    return json.dumps(report)


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", desc="grading", disable=not enabled or total == 0)
