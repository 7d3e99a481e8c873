"""Who handed in what: the students in a class folder, in either layout an instructor has.

- One entry per student: a folder, a `.zip` or an `.ipynb`, the student id being its name
  (without the extension).
- The flat download of an LMS, e.g. Canvas: `lastname_firstname_12345_67890_ops.py`, one file
  per file handed in; a student's files are grouped by the id the pattern extracts, and put
  together in a folder of their own (Canvas's "-1" added to a resubmitted name is dropped).

A `.zip` of either is unpacked first (with the same care as a student's zip). Anything that fits
neither layout is listed as unmatched, never dropped silently.
"""
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..submission import SubmissionError, unpack_zip

# Canvas: name, optional "late", user id, submission id, then the file's own name.
LMS_PATTERN = r"^(?P<name>[^_]+(?:_[^_\d]+)*)_(?:late_)?(?P<id>\d+)_\d+_(?P<file>.+)$"
CLASS_ARCHIVE_MEMBERS = 100_000
CLASS_ARCHIVE_BYTES = 4 << 30
RESUBMITTED = re.compile(r"-\d+(?=\.[^.]+$)")  # ops-1.py → ops.py


@dataclass
class Student:
    id: str
    path: Path          # what is graded: a folder, a .zip or an .ipynb


@dataclass
class Roster:
    students: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)   # entries that fit no layout
    notes: list = field(default_factory=list)


def discover(source, staging, pattern=LMS_PATTERN):
    """The students in `source` (a folder or a .zip of one). Grouped LMS files and unpacked
    archives are laid out under `staging`, which is emptied first."""
    source, staging = Path(source), Path(staging)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    roster = Roster()
    if source.is_file() and source.suffix.lower() == ".zip":
        unpacked = staging / "archive"
        try:
            skipped = unpack_zip(source, unpacked, CLASS_ARCHIVE_MEMBERS, CLASS_ARCHIVE_BYTES)
        except SubmissionError as error:
            raise SubmissionError(f"the class archive could not be read: {error}") from None
        roster.unmatched += [f"{name} (unsafe path in the archive: not extracted)" for name in skipped]
        source = _single_folder(unpacked)
    if not source.is_dir():
        raise SubmissionError(f"{source} is not a folder or a .zip of the class's submissions")
    pattern = re.compile(pattern)
    if "id" not in pattern.groupindex:
        raise SubmissionError(f"the id pattern {pattern.pattern!r} has no group named 'id', as in (?P<id>\\d+)")
    grouped = {}
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in ("__MACOSX", "__pycache__"):
            continue
        match = pattern.match(entry.name) if entry.is_file() else None
        if match:
            grouped.setdefault(match["id"], []).append((entry, match.groupdict().get("file") or entry.name))
        elif entry.is_dir() or entry.suffix.lower() in (".zip", ".ipynb"):
            roster.students.append(Student(entry.name.removesuffix(entry.suffix) if entry.is_file() else entry.name, entry))
        else:
            roster.unmatched.append(entry.name)
    for student_id, files in grouped.items():
        if len(files) == 1 and files[0][0].suffix.lower() in (".zip", ".ipynb"):
            roster.students.append(Student(student_id, files[0][0]))
            continue
        folder = staging / "students" / student_id
        folder.mkdir(parents=True)
        for path, name in sorted(files):
            name = RESUBMITTED.sub("", Path(name).name)
            if (folder / name).exists():
                roster.notes.append(f"{student_id}: two files named {name}; {path.name} was used")
            shutil.copyfile(path, folder / name)
        roster.students.append(Student(student_id, folder))
    ids = [student.id for student in roster.students]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        raise SubmissionError(f"two entries give the same student id {duplicate!r}: rename one or change --id-pattern")
    roster.students.sort(key=lambda student: student.id)
    return roster


def _single_folder(folder):
    """Archives often wrap everything in one top folder: descend into it."""
    entries = [e for e in folder.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder
