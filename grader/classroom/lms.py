"""Grades into the LMS as it is: the gradebook an LMS exported, with one column filled.

- Canvas: the gradebook CSV from Grades → Export. Its first row names the columns (identity
  columns Student, ID, SIS User ID, SIS Login ID, Section, in any order; an assignment column is
  "Name (assignment id)"); the rows under it that are not students ("Points Possible", a posting
  policy row) start with blanks in the Student column. Read-only columns say "(read only)" there.
  Canvas imports a file of this shape as it is: a column it does not know becomes a new assignment.
- Moodle: the assignment's grading worksheet (Identifier "Participant 12345", Grade, ...).

Every column and row of the export is written back unchanged except the one filled column.
Students in the export without a submission get an empty cell (0 by choice); a student whose
grading failed (score None) gets an empty cell, always; submissions whose student is not in the
export are returned, to be listed, never dropped.
"""
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..report import format_points, write_atomically

DEFAULT_ASSIGNMENT = "Autodiff"  # the column filled when the export has several assignments and none is named
CANVAS_MATCH = {"user-id": "ID", "sis-user-id": "SIS User ID", "login": "SIS Login ID"}
CANVAS_IDENTITY = {"Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section"}
CANVAS_ASSIGNMENT = re.compile(r"^(?P<name>.*) \((?P<id>\d+)\)$")
MOODLE_PARTICIPANT = re.compile(r"^\D*(?P<id>\d+)$")  # "Participant 12345", in the site's language


class LMSError(Exception):
    """The export cannot be read or filled as asked: said in one line."""


@dataclass
class Filled:
    path: Path
    column: str
    filled: int = 0
    without_submission: list = field(default_factory=list)   # export rows (their ids) with no submission
    not_in_export: list = field(default_factory=list)        # student ids graded but absent from the export
    not_graded: list = field(default_factory=list)           # export rows (their ids) whose grading failed: left empty
    names: dict = field(default_factory=dict)                 # student id → name the export gives


@dataclass
class LMSExport:
    """An export to fill: kind "canvas" (with its options) or "moodle"."""
    kind: str
    path: Path
    assignment: str = None
    match: str = "user-id"
    missing_as_zero: bool = False

    def fill(self, out, scores, points_possible):
        """scores: {student id: score, or None for a grading that failed}."""
        if self.kind == "canvas":
            return fill_canvas(self.path, Path(out) / "canvas-import.csv", scores, points_possible, self.assignment,
                               self.match, self.missing_as_zero)
        return fill_moodle(self.path, Path(out) / "moodle-import.csv", scores, self.missing_as_zero)


def read_table(path):
    """The rows, padded to the header's width, and how the file was written (byte-order mark, line ends)."""
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LMSError(f"cannot read {path}: {error}") from None
    table = list(csv.reader(io.StringIO(raw.removeprefix("\ufeff"), newline="")))
    if not table or not table[0]:
        raise LMSError(f"{path} is empty")
    width = len(table[0])
    return [row + [""] * (width - len(row)) for row in table], (raw[:1] == "\ufeff", "\r\n" if "\r\n" in raw else "\n")


def write_table(path, table, style):
    """Written as the export was: the LMS reads back what it wrote."""
    bom, newline = style
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(table)
    write_atomically(Path(path), ("\ufeff" if bom else "") + buffer.getvalue())


def fill_canvas(export, out, scores, points_possible, assignment=None, match="user-id", missing_as_zero=False):
    """scores: {student id: score}. Writes `out`; returns what was filled and what was not."""
    table, style = read_table(export)
    header = table[0]
    missing = [name for name in ("Student", CANVAS_MATCH[match]) if name not in header]
    if missing:
        raise LMSError(f"{export} is not a Canvas gradebook export: no column {', '.join(map(repr, missing))}")
    student, key = header.index("Student"), header.index(CANVAS_MATCH[match])
    is_student = [bool(row[student].strip()) and not row[student].startswith(" ") for row in table]
    is_student[0] = False
    points_row = next((i for i, row in enumerate(table) if row[student].strip() == "Points Possible"), None)
    read_only = {i for i, cell in enumerate(table[points_row]) if "read only" in cell} if points_row else set()
    assignments = [i for i, name in enumerate(header) if CANVAS_ASSIGNMENT.match(name) and i not in read_only]
    name = assignment or DEFAULT_ASSIGNMENT
    named = [i for i in assignments if header[i] == name or CANVAS_ASSIGNMENT.match(header[i])["name"] == name]
    if len(named) > 1:
        raise LMSError(f"{len(named)} assignment columns are named {name!r}: give the one with its id, e.g. {header[named[0]]!r}")
    column = assignments[0] if not assignment and len(assignments) == 1 else named[0] if named else None
    if column is None:  # a new assignment: after the last assignment (or identity) column
        identity = [i for i, name in enumerate(header) if name in CANVAS_IDENTITY]
        column = max(assignments or identity) + 1
        for i, row in enumerate(table):
            row.insert(column, name if i == 0 else format_points(points_possible) if i == points_row else "")
    filled = Filled(Path(out), table[0][column])
    filled.names = {row[key]: row[student] for row, yes in zip(table, is_student) if yes}
    for row, yes in zip(table, is_student):
        if yes:
            _fill(row, column, row[key], scores, missing_as_zero, filled)
    filled.not_in_export = sorted(set(scores) - set(filled.names))
    write_table(out, table, style)
    return filled


def fill_moodle(worksheet, out, scores, missing_as_zero=False):
    """Moodle's grading worksheet with its Grade column filled, matching the participant number."""
    table, style = read_table(worksheet)
    header = table[0]
    if "Identifier" not in header or "Grade" not in header:
        raise LMSError(f"{worksheet} is not a Moodle grading worksheet: it needs the columns 'Identifier' and 'Grade'")
    identifier, grade = header.index("Identifier"), header.index("Grade")
    name = header.index("Full name") if "Full name" in header else None
    filled = Filled(Path(out), "Grade")
    for row in table[1:]:
        number = MOODLE_PARTICIPANT.match(row[identifier].strip())
        if number:
            filled.names[number["id"]] = row[name] if name is not None else ""
            _fill(row, grade, number["id"], scores, missing_as_zero, filled)
    filled.not_in_export = sorted(set(scores) - set(filled.names))
    write_table(out, table, style)
    return filled


def _fill(row, column, student_id, scores, missing_as_zero, filled):
    if student_id in scores and scores[student_id] is None:  # a grading that failed: no grade, never a 0 (missing_as_zero or not)
        row[column] = ""
        filled.not_graded.append(student_id)
    elif student_id in scores:
        row[column] = format_points(scores[student_id])
        filled.filled += 1
    else:
        row[column] = "0" if missing_as_zero else ""
        filled.without_submission.append(student_id)
