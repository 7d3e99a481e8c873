"""Grades into the LMS as it is: the gradebook an LMS exported, with one column filled.

- Canvas: the gradebook CSV from Grades → Export. Its first row names the columns (identity
  columns Student, ID, SIS User ID, SIS Login ID, Section, in any order; an assignment column is
  "Name (assignment id)"); the rows under it that are not students ("Points Possible", a posting
  policy row) start with blanks in the Student column. Read-only columns say "(read only)" there.
  Canvas imports a file of this shape as it is: a column it does not know becomes a new assignment,
  so a column is filled only when the export has it (the only one, or the one named) or a new one
  is asked for by name.
- Moodle: the assignment's grading worksheet (Identifier "Participant 12345", Grade, ...).

The export is read, and its column chosen, before any grading (`read`): an export that cannot be
filled as asked stops the batch before it starts. Every column and row of the export is written back
unchanged except the one filled column.
Students in the export without a submission get an empty cell (0 by choice); a student whose
grading failed (score None) gets an empty cell, always; submissions whose student is not in the
export are returned, to be listed, never dropped.
"""
import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..report import format_points, write_atomically

IMPORT_FILES = {"canvas": "canvas-import.csv", "moodle": "moodle-import.csv"}  # what a batch writes in its output folder
CANVAS_MATCH = {"user-id": "ID", "sis-user-id": "SIS User ID", "login": "SIS Login ID"}
CANVAS_IDENTITY = {"Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section"}
CANVAS_ASSIGNMENT = re.compile(r"^(?P<name>.*) \((?P<id>\d+)\)$")
MOODLE_PARTICIPANT = re.compile(r"^\D*(?P<id>\d+)$")  # "Participant 12345", in the site's language


class LMSError(Exception):
    """The export cannot be read or filled as asked: said in one line."""


@dataclass
class Sheet:
    """An export read, its column chosen: what filling it needs, known before any grading."""
    table: list[list[str]]
    style: tuple[bool, str]  # (a byte-order mark, the line ends): as the export was written
    column: int                                         # the column to fill (inserted already when new)
    students: dict[int, str] = field(default_factory=dict)  # row index → student id
    names: dict[str, str] = field(default_factory=dict)     # student id → name the export gives


@dataclass
class Filled:
    path: Path
    column: str
    filled: int = 0
    without_submission: list[str] = field(default_factory=list)   # export rows (their ids) with no submission
    not_in_export: list[str] = field(default_factory=list)        # student ids graded but absent from the export
    not_graded: list[str] = field(default_factory=list)           # export rows (their ids) whose grading failed: left empty
    names: dict[str, str] = field(default_factory=dict)           # student id → name the export gives


@dataclass
class LMSExport:
    """An export to fill: kind "canvas" (with its options) or "moodle". `read` it before grading;
    `fill` it after."""
    kind: str
    path: Path
    assignment: str | None = None  # Canvas: the column to fill, by name or "Name (id)" heading
    match: str = "user-id"
    missing_as_zero: bool = False
    new_assignment: str | None = None  # Canvas: a new column of this name instead (a new assignment to Canvas)

    def read(self, points_possible: float) -> Sheet:
        """The export read and its column chosen (LMSError when it cannot be filled as asked)."""
        if self.kind == "canvas":
            return read_canvas(self.path, points_possible, self.assignment, self.match, self.new_assignment)
        return read_moodle(self.path)

    def fill(self, out: str | os.PathLike[str], sheet: Sheet, scores: dict[str, float | None]) -> Filled:
        return fill_sheet(sheet, Path(out) / IMPORT_FILES[self.kind], scores, self.missing_as_zero)


def read_table(path: str | os.PathLike[str]) -> tuple[list[list[str]], tuple[bool, str]]:
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


def write_table(path: str | os.PathLike[str], table: list[list[str]], style: tuple[bool, str]) -> None:
    """Written as the export was: the LMS reads back what it wrote."""
    bom, newline = style
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(table)
    write_atomically(Path(path), ("\ufeff" if bom else "") + buffer.getvalue())


def read_canvas(export: str | os.PathLike[str], points_possible: float, assignment: str | None = None, match: str = "user-id",
                new_assignment: str | None = None) -> Sheet:
    """A Canvas gradebook export and the column to fill: `assignment` (its name or its "Name (id)"
    heading), else the export's only assignment column; a new column only when `new_assignment`
    names it. Nothing else is guessed: several columns and no choice is an error naming them."""
    table, style = read_table(export)
    header = table[0]
    missing = [name for name in ("Student", CANVAS_MATCH[match]) if name not in header]
    if missing:
        raise LMSError(f"{export} is not a Canvas gradebook export: no column {', '.join(map(repr, missing))}")
    student, key = header.index("Student"), header.index(CANVAS_MATCH[match])
    points_row = next((i for i, row in enumerate(table) if row[student].strip() == "Points Possible"), None)
    read_only = {i for i, cell in enumerate(table[points_row]) if "read only" in cell} if points_row else set()
    assignments = [i for i, name in enumerate(header) if CANVAS_ASSIGNMENT.match(name) and i not in read_only]
    listed = ", ".join(repr(header[i]) for i in assignments) or "none"

    def named(name):
        return [i for i, heading in enumerate(header)
                if name in (heading, (match := CANVAS_ASSIGNMENT.match(heading)) and match["name"])]

    if new_assignment:
        if named(new_assignment):
            raise LMSError(f"{export} already has a column {header[named(new_assignment)[0]]!r}: "
                           f"fill it with --canvas-assignment instead")
        identity = [i for i, name in enumerate(header) if name in CANVAS_IDENTITY]
        column = max(assignments or identity) + 1  # after the last assignment (or identity) column
        for i, row in enumerate(table):
            row.insert(column, new_assignment if i == 0 else format_points(points_possible) if i == points_row else "")
    elif assignment:
        chosen = [i for i in named(assignment) if i in assignments]
        if len(chosen) > 1:
            raise LMSError(f"{len(chosen)} assignment columns are named {assignment!r}: give the one with its id, "
                           f"e.g. {header[chosen[0]]!r}")
        if not chosen:
            raise LMSError(f"{export} has no assignment column {assignment!r} (its assignment columns: {listed}); "
                           f"--canvas-new-assignment {assignment!r} adds one, which Canvas imports as a new assignment")
        column = chosen[0]
    elif len(assignments) == 1:
        column = assignments[0]
    elif assignments:
        raise LMSError(f"{export} has {len(assignments)} assignment columns ({listed}): name the one to fill with "
                       f"--canvas-assignment, or add a new one with --canvas-new-assignment NAME")
    else:
        raise LMSError(f"{export} has no assignment column: add one with --canvas-new-assignment NAME")
    sheet = Sheet(table, style, column)
    for i, row in enumerate(table[1:], start=1):
        if row[student].strip() and not row[student].startswith(" "):  # not "    Points Possible" and the like
            sheet.students[i], sheet.names[row[key]] = row[key], row[student]
    return sheet


def read_moodle(worksheet: str | os.PathLike[str]) -> Sheet:
    """Moodle's grading worksheet: its Grade column, matched by participant number."""
    table, style = read_table(worksheet)
    header = table[0]
    if "Identifier" not in header or "Grade" not in header:
        raise LMSError(f"{worksheet} is not a Moodle grading worksheet: it needs the columns 'Identifier' and 'Grade'")
    identifier, name = header.index("Identifier"), header.index("Full name") if "Full name" in header else None
    sheet = Sheet(table, style, header.index("Grade"))
    for i, row in enumerate(table[1:], start=1):
        number = MOODLE_PARTICIPANT.match(row[identifier].strip())
        if number:
            sheet.students[i], sheet.names[number["id"]] = number["id"], row[name] if name is not None else ""
    return sheet


def fill_sheet(sheet: Sheet, out: str | os.PathLike[str], scores: dict[str, float | None], missing_as_zero: bool = False) -> Filled:
    """scores: {student id: score, or None for a grading that failed}. Writes `out`; returns what was filled and what was not."""
    table = [list(row) for row in sheet.table]
    filled = Filled(Path(out), table[0][sheet.column], names=dict(sheet.names))
    for i, student_id in sheet.students.items():
        if student_id in scores and scores[student_id] is None:  # a grading that failed: no grade, never a 0 (missing_as_zero or not)
            table[i][sheet.column] = ""
            filled.not_graded.append(student_id)
        elif student_id in scores:
            table[i][sheet.column] = format_points(cast(float, scores[student_id]))  # not None: the branch above
            filled.filled += 1
        else:
            table[i][sheet.column] = "0" if missing_as_zero else ""
            filled.without_submission.append(student_id)
    filled.not_in_export = sorted(set(scores) - set(sheet.names))
    write_table(out, table, sheet.style)
    return filled


def fill_canvas(export: str | os.PathLike[str], out: str | os.PathLike[str], scores: dict[str, float | None], points_possible: float,
                assignment: str | None = None, match: str = "user-id", missing_as_zero: bool = False,
                new_assignment: str | None = None) -> Filled:
    return fill_sheet(read_canvas(export, points_possible, assignment, match, new_assignment), out, scores, missing_as_zero)


def fill_moodle(worksheet: str | os.PathLike[str], out: str | os.PathLike[str], scores: dict[str, float | None],
                missing_as_zero: bool = False) -> Filled:
    return fill_sheet(read_moodle(worksheet), out, scores, missing_as_zero)
