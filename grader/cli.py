"""Command line: `python -m grader grade PATH [--out FILE] [--format native|gradescope]`.

Exit status 0 whenever a report was written, whatever the score; 1 when the grader itself
could not run (its rubric or dataset missing or broken), with a message; 2 for bad arguments.
"""
import argparse
import sys
from pathlib import Path

from . import DEFAULT_RUBRIC
from .grade import GraderError, check_dataset, grade
from .report import format_table, validate, write_report
from .rubric import RubricError, load_rubric


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader", description="Grade autodiff submissions.")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("grade", help="grade one submission (folder, .zip or .ipynb) and write its report")
    one.add_argument("path", type=Path, help="the submission: a folder, a .zip or a .ipynb")
    one.add_argument("--out", type=Path, default=Path("report.json"), help="report file (default: %(default)s)")
    one.add_argument("--format", choices=["native", "gradescope"], default="native",
                     help="native: the grader's report; gradescope: Gradescope's results.json")
    one.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC, help="rubric TOML (default: grader/rubric.toml)")
    one.add_argument("--isolation", default="process", choices=["process"], help="how student code is isolated")
    args = parser.parse_args(argv)

    try:
        rubric = load_rubric(args.rubric)
        check_dataset()
    except (RubricError, GraderError) as error:
        print(f"grader: cannot grade: {error}", file=sys.stderr)
        return 1
    print(f"grading {args.path} (isolation: {args.isolation})", flush=True)
    report = grade(args.path, rubric, args.isolation)
    validate(report)
    write_report(report, args.out, args.format)
    submission = report["submission"]
    print(f"form: {submission['form']}" + (f"; missing: {', '.join(submission['missing'])}" if submission["missing"] else ""))
    for line in report["messages"] + submission["notes"]:
        print(line)
    print()
    print(format_table(report))
    print(f"\nreport written to {args.out} ({args.format}) in {report['duration_seconds']:.1f} s")
    return 0
