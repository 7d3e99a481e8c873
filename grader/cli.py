"""Command line: one sub-command per verb. `autodiff-grader` is the console script the Makefile
installs into .venv (and `make grade`, `make batch`, ... run it); `python -m grader` is the same,
from a Python that has the grader's packages (__main__.py refuses any other, saying so).

    autodiff-grader grade PATH [--out FILE] [--format native|gradescope]
    autodiff-grader check [PATH]     (a student's own check: the handout's `make check`, without make)
    autodiff-grader batch SUBMISSIONS --out DIR [--jobs N] [--force] [--only ID ...] [--scheduler tcp://HOST:PORT]
                          [--html [--reveal ...]] [--canvas-export FILE [--canvas-assignment NAME | --canvas-new-assignment NAME]
                          | --moodle-worksheet FILE] [--similarity]
    autodiff-grader diff OLD_DIR NEW_DIR [--out DIR]
    autodiff-grader similarity OUT_DIR [--threshold 0.5]
    CANVAS_TOKEN=... autodiff-grader canvas-upload OUT_DIR --url URL --course ID --assignment ID

Exit status 0 when every report written has a score (whatever it is); 1 when a grading failed
(its report is written, status `error`, with no score), when the grader itself could not run
(its packages, rubric or dataset missing or broken) or a report could not be written, with a
message; 2 for bad arguments.
"""
import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from . import DEFAULT_RUBRIC
from .classroom import similarity as similarity_module
from .classroom.batch import run_batch
from .classroom.canvas_api import CanvasUploadError, upload_grades
from .classroom.diff import compare, diff_markdown, load_reports, write_diff
from .classroom.lms import CANVAS_MATCH, LMSError, LMSExport
from .classroom.pages import student_page
from .grade import GraderError, check_dataset, grade
from .preflight import refusal
from .report import format_table, is_scored, write_atomically, write_report
from .rubric import Rubric, RubricError, course_salt, load_rubric
from .sandbox.levels import ISOLATION_LEVELS, LEVELS, isolation_level, level_available, strongest_level
from .sandbox.permissions import protect_from_workers
from .submission import SubmissionError


def main(argv: Sequence[str] | None = None) -> int:
    # Named as it was started: the console script, or `python -m grader` (the handout and Gradescope have only that).
    program = "python -m grader" if Path(sys.argv[0]).name == "__main__.py" else "autodiff-grader"
    parser = argparse.ArgumentParser(prog=program, description="Grade autodiff submissions.")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("grade", help="grade one submission (folder, .zip or .ipynb) and write its report")
    one.add_argument("path", type=Path, help="the submission: a folder, a .zip or a .ipynb")
    one.add_argument("--out", type=Path, default=Path("report.json"), help="report file (default: %(default)s)")
    one.add_argument("--format", choices=["native", "gradescope"], default="native",
                     help="native: the grader's report; gradescope: Gradescope's results.json")
    one.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC, help="rubric TOML (default: grader/rubric.toml)")
    one.add_argument("--html", type=Path, metavar="FILE", help="also write a feedback page (self-contained HTML)")
    one.add_argument("--reveal", choices=["visible", "after_due_date", "all"], default="visible",
                     help="which checks the feedback page shows, by rubric visibility (default: %(default)s)")
    add_isolation_options(one)
    own = commands.add_parser("check", help="check your own work with the visible checks (a folder, .zip or .ipynb)")
    own.add_argument("path", type=Path, nargs="?", default=Path("autodiff"), help="your work (default: %(default)s)")
    own.add_argument("--out", type=Path, default=Path("build/report.json"), help="report file (default: %(default)s)")
    own.add_argument("--html", type=Path, default=Path("build/feedback.html"), metavar="FILE",
                     help="feedback page (default: %(default)s)")
    own.set_defaults(rubric=DEFAULT_RUBRIC, format="native", reveal="visible", isolation="own", require_isolation=None)
    many = commands.add_parser("batch", help="grade a class: a folder (or .zip) of submissions, or an LMS download")
    many.add_argument("submissions", type=Path, help="folder or .zip: one entry per student, or LMS files")
    many.add_argument("--out", type=Path, required=True, help="folder for reports/, gradebook.csv and summary files")
    many.add_argument("--jobs", type=int, default=os.cpu_count(), help="submissions graded at once (default: %(default)s)")
    many.add_argument("--force", action="store_true", help="regrade every submission, even those already graded")
    many.add_argument("--only", nargs="+", default=(), metavar="ID", help="regrade only these students")
    many.add_argument("--gradescope", action="store_true", help="also write each report in Gradescope's format")
    many.add_argument("--html", action="store_true", help="also write a feedback page per student and a class index in OUT/html/")
    many.add_argument("--reveal", choices=["visible", "after_due_date", "all"], default="visible",
                      help="which checks the feedback pages show, by rubric visibility (default: %(default)s)")
    many.add_argument("--id-pattern", default=None,
                      help="regular expression for LMS file names, with a group 'id' (and optionally 'file', 'name'); "
                           "default: Canvas's and Moodle's download names are recognised")
    lms = many.add_mutually_exclusive_group()
    lms.add_argument("--canvas-export", type=Path, metavar="FILE",
                     help="Canvas gradebook export (CSV): writes OUT/canvas-import.csv with one assignment column filled")
    lms.add_argument("--moodle-worksheet", type=Path, metavar="FILE",
                     help="Moodle grading worksheet (CSV): writes OUT/moodle-import.csv with its Grade column filled")
    column = many.add_mutually_exclusive_group()
    column.add_argument("--canvas-assignment", metavar="NAME",
                        help="the Canvas column to fill, by name or 'Name (id)' heading (default: the export's only assignment column)")
    column.add_argument("--canvas-new-assignment", metavar="NAME",
                        help="fill a new column of this name instead: Canvas imports it as a new assignment")
    many.add_argument("--canvas-match", choices=list(CANVAS_MATCH), default="user-id",
                      help="which Canvas id the submissions' ids are (default: %(default)s, as in Canvas's download names)")
    many.add_argument("--missing-as-zero", action="store_true", help="students in the export without a submission get 0, not empty")
    many.add_argument("--similarity", action="store_true", help="also rank pairs of submissions by shared code (OUT/similarity.json)")
    many.add_argument("--scheduler", help="a Dask scheduler address (tcp://HOST:PORT) to grade on its workers")
    many.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC, help="rubric TOML (default: grader/rubric.toml)")
    add_isolation_options(many)
    regrade = commands.add_parser("diff", help="whose score moved between two batch outputs, and why")
    regrade.add_argument("old", type=Path, help="the earlier batch output folder")
    regrade.add_argument("new", type=Path, help="the later batch output folder")
    regrade.add_argument("--out", type=Path, help="folder to write diff.md and diff.csv in")
    alike = commands.add_parser("similarity", help="rank pairs of a graded class's submissions by shared code")
    alike.add_argument("out", type=Path, help="a batch output folder")
    alike.add_argument("--threshold", type=float, default=similarity_module.DEFAULT_THRESHOLD,
                       help="pairs sharing at least this much get a page (default: %(default)s)")
    post = commands.add_parser("canvas-upload", help="post a graded class's scores to a Canvas assignment (token in $CANVAS_TOKEN)")
    post.add_argument("out", type=Path, help="a batch output folder graded from a Canvas download")
    post.add_argument("--url", required=True, help="the Canvas site, e.g. https://canvas.example.edu")
    post.add_argument("--course", required=True, type=int, help="the course's id (in its Canvas address)")
    post.add_argument("--assignment", required=True, type=int, help="the assignment's id (in its Canvas address)")
    args = parser.parse_args(argv)
    said = refusal(sys.argv[1:] if argv is None else list(argv), program=parser.prog)  # a package only some verbs import
    if said:
        print(said, file=sys.stderr)
        return 1
    if args.command == "canvas-upload":
        return canvas_upload(args)
    if args.command == "diff":
        return diff(args)
    if args.command == "similarity":
        return similarity(args.out, args.threshold)

    if args.command == "batch" and (args.canvas_assignment or args.canvas_new_assignment) and not args.canvas_export:
        parser.error("--canvas-assignment and --canvas-new-assignment choose a column of --canvas-export FILE")
    try:
        rubric = load_rubric(args.rubric)
        check_dataset()
        args.isolation = choose_isolation(args.isolation, args.require_isolation)
        salted = None if args.command == "check" else course_salt(rubric, official=args.command == "batch")
    except (RubricError, GraderError) as error:
        print(f"grader: cannot grade: {error}", file=sys.stderr)
        return 1
    if salted:  # a student's own check keeps the handout's inputs: its rubric has no salt, and nothing is looked up
        rubric = salted.rubric
        if salted.note:
            print(salted.note, file=sys.stderr if salted.source == "placeholder" else sys.stdout)
    if not isolation_level(args.isolation).sandboxed and args.command != "check":  # a student checking their own code needs no sandbox
        print("warning: isolation level 'process': student code runs as this user, without a sandbox "
              "(run as root with bubblewrap installed for 'namespace', or as root for 'uid')", file=sys.stderr)
    if args.command == "batch":
        return batch(args, rubric)
    print(f"grading {args.path} (isolation: {args.isolation})", flush=True)
    report = grade(args.path, rubric, args.isolation)
    write_report(report, args.out, args.format)
    if args.html:
        write_atomically(args.html, student_page(report, args.reveal))
    submission = report["submission"]
    print(f"form: {submission['form']}" + (f"; missing: {', '.join(submission['missing'])}" if submission["missing"] else ""))
    for line in report["messages"] + submission["notes"]:
        print(line)
    print()
    print(format_table(report, rubric.unshipped_points))
    print(f"\nreport written to {args.out} ({args.format}) in {report['duration_seconds']:.1f} s"
          + (f"; feedback page: {args.html}" if args.html else ""))
    if not is_scored(report):
        print(f"grader: the grading of {args.path} failed: its report (status {report['status']}) has no score",
              file=sys.stderr)
        return 1
    return 0


def add_isolation_options(parser: argparse.ArgumentParser) -> None:
    levels = ", ".join(ISOLATION_LEVELS)
    parser.add_argument("--isolation", default="auto", choices=["auto", *ISOLATION_LEVELS],
                        help=f"how student code is isolated, strongest first: {levels} (default: the strongest available)")
    parser.add_argument("--require-isolation", choices=ISOLATION_LEVELS, metavar="LEVEL",
                        help="refuse to grade below this level (for official grading runs)")


# A student's own check (`make check`, the notebook's check cell): the strongest level that leaves
# the student's files as they are. Not one guarded by file permissions (`uid`, which a root gets without
# bubblewrap, a TA's server): it closes the grader's files, here the student's handout, to other users,
# and says so in the report.
OWN_CHECK_LEVELS = tuple(name for name, level in LEVELS.items() if not level.guarded_by_permissions)


def choose_isolation(requested: str, required: str | None) -> str:
    if requested == "own":
        level = next(level for level in OWN_CHECK_LEVELS if level_available(level))
    else:
        level = strongest_level() if requested == "auto" else requested
    if not level_available(level):
        needs = "; ".join(f"{name} needs {other.needs}" for name, other in LEVELS.items() if other.needs)
        raise GraderError(f"isolation level {level!r} is not available on this machine ({needs})")
    if required and ISOLATION_LEVELS.index(level) > ISOLATION_LEVELS.index(required):
        raise GraderError(f"isolation level {level!r} is below the required {required!r}")
    return level


def batch(args: argparse.Namespace, rubric: Rubric) -> int:
    formats = ("native", "gradescope") if args.gradescope else ("native",)
    if isolation_level(args.isolation).guarded_by_permissions:  # only permissions keep the class's reports from student code
        args.out.mkdir(parents=True, exist_ok=True)
        protect_from_workers([args.out])
    lms = (LMSExport("canvas", args.canvas_export, args.canvas_assignment, args.canvas_match, args.missing_as_zero,
                     args.canvas_new_assignment)
           if args.canvas_export else LMSExport("moodle", args.moodle_worksheet, missing_as_zero=args.missing_as_zero)
           if args.moodle_worksheet else None)
    try:
        roster, graded, skipped, unwritten = run_batch(args.submissions, args.out, rubric, jobs=args.jobs, force=args.force,
                                            only=set(args.only), formats=formats, scheduler=args.scheduler,
                                            pattern=args.id_pattern, isolation=args.isolation, html=args.html,
                                            reveal=args.reveal, lms=lms)
    except (SubmissionError, LMSError, ValueError, re.error, OSError) as error:  # OSError: a scheduler out of reach, say
        print(f"grader: cannot grade the batch: {error}", file=sys.stderr)
        return 1
    print(f"{len(roster.students)} submissions: {len(graded)} graded now, {len(skipped)} kept from earlier runs")
    if roster.unmatched:
        print(f"{len(roster.unmatched)} entries match no student: {', '.join(roster.unmatched[:10])}")
    print((args.out / "summary.md").read_text())
    print(f"gradebook: {args.out / 'gradebook.csv'}; reports: {args.out / 'reports'}/"
          + (f"; feedback pages: {args.out / 'html' / 'index.html'}" if args.html else ""))
    for what, path in roster.written.items():
        print(f"{what}: {path}")
    if "diff.md" in roster.written:
        print("\n" + roster.written["diff.md"].read_text())
    for student, why in unwritten.items():
        print(f"grader: the report of {student} could not be written ({why}); rerun to grade it again", file=sys.stderr)
    failed = json.loads((args.out / "summary.json").read_text())["not_graded"]
    if failed:
        print(f"grader: {len(failed)} gradings failed, with no score (status error; empty in the gradebook and the LMS "
              f"file): {', '.join(failed[:10])}{' …' if len(failed) > 10 else ''}; rerun to grade them again", file=sys.stderr)
    if args.similarity and similarity(args.out, similarity_module.DEFAULT_THRESHOLD):
        return 1
    return 1 if unwritten or failed else 0


def diff(args: argparse.Namespace) -> int:
    old, new = load_reports(args.old), load_reports(args.new)
    if not old or not new:
        print(f"grader: cannot compare: no reports in {args.old if not old else args.new}", file=sys.stderr)
        return 1
    rows = compare(old, new)
    print(write_diff(args.out, rows, str(args.old), str(args.new)) if args.out else diff_markdown(rows, str(args.old), str(args.new)))
    return 0


def canvas_upload(args: argparse.Namespace) -> int:
    token = os.environ.get("CANVAS_TOKEN")
    reports = load_reports(args.out)
    if not token or not reports:
        print("grader: cannot upload: " + ("set CANVAS_TOKEN to a Canvas access token" if not token else f"no reports in {args.out}"),
              file=sys.stderr)
        return 1
    scores = {student: report["score"] for student, report in reports.items() if is_scored(report)}
    failed = sorted(set(reports) - set(scores))  # no grade sent, rather than a 0 the student did not earn
    try:
        progress = upload_grades(args.url, token, args.course, args.assignment, scores) if scores else None
    except CanvasUploadError as error:
        print(f"grader: cannot upload: {error}", file=sys.stderr)
        return 1
    if progress:
        print(f"{len(scores)} grades sent to assignment {args.assignment}; Canvas's progress: {progress['workflow_state']} ({progress['url']})")
    if failed:
        print(f"grader: not sent, their grading failed (no score): {', '.join(failed)}; regrade them, then upload again",
              file=sys.stderr)
        return 1
    return 0


def similarity(out: Path, threshold: float) -> int:
    try:
        pairs, flagged = similarity_module.run(out, threshold)
    except RuntimeError as error:
        print(f"grader: cannot compare the submissions: {error}", file=sys.stderr)
        return 1
    skipped = json.loads((out / "similarity.json").read_text())["not_compared"]
    if skipped:
        print(f"not compared (their files could not be read again): {', '.join(skipped)}")
    print(f"similarity: {len(pairs)} pairs compared, {flagged} at or above {threshold:.0%}: "
          f"{out / 'similarity.json'}, {out / 'similarity' / 'index.html'}")
    for pair in pairs[:5]:
        print(f"  {pair['score']:.2f}  {pair['a']} and {pair['b']}")
    return 0
