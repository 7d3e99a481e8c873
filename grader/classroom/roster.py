"""Who handed in what: the students in a class folder, in either layout an instructor has.

- One entry per student: a folder, a `.zip` or an `.ipynb`, the student id being its name
  (without the extension).
- The download of an LMS, recognised without being told which: Canvas's flat files
  (`lastname_firstname_12345_67890_ops.py`, the id being the Canvas user id) and Moodle's
  (`Full Name_12345_assignsubmission_file_ops.py`, or in folders, `Full Name_12345_assignsubmission_file_/ops.py`,
  the id being Moodle's participant number); a student's files are grouped by id and put together
  in a folder of their own (Canvas's "-1" added to a resubmitted name is dropped), and the name the
  LMS wrote is kept. Another layout is named with a pattern (a group `id`, optionally `file` and `name`).

A `.zip` of either is unpacked first (with the same care as a student's zip). Anything that fits
neither layout is listed as unmatched, never dropped silently.
"""
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..submission import SubmissionError, unpack_zip

# Canvas: name, optional "late", user id, submission id, then the file's own name. A part of the
# name is never "late" before the id: that is Canvas's mark, not the student's name.
LMS_PATTERN = r"^(?P<name>[^_]+(?:_(?!late_\d)[^_\d]+)*)_(?:late_)?(?P<id>\d+)_\d+_(?P<file>.+)$"
# Moodle: full name, participant number, the submission plugin, then the file's own name (a
# folder of the student's files when downloaded "in folders", its name ending with the plugin).
MOODLE_PATTERN = r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?:file|onlinetext)_(?P<file>.*)$"
LMS_PATTERNS = (MOODLE_PATTERN, LMS_PATTERN)
CLASS_ARCHIVE_MEMBERS = 100_000
CLASS_ARCHIVE_BYTES = 4 << 30
RESUBMITTED = re.compile(r"-\d+(?=\.[^.]+$)")  # ops-1.py → ops.py


@dataclass
class Student:
    id: str
    path: Path          # what is graded: a folder, a .zip or an .ipynb
    name: str = ""      # as the LMS wrote it, when it did


@dataclass
class Roster:
    students: list[Student] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)   # entries that fit no layout
    notes: list[str] = field(default_factory=list)
    written: dict[str, Path] = field(default_factory=dict)     # what a batch wrote besides the gradebook: {what: path}


def discover(source: str | os.PathLike[str], staging: str | os.PathLike[str], pattern: str | None = None) -> Roster:
    """The students in `source` (a folder or a .zip of one). Grouped LMS files and unpacked
    archives are laid out under `staging`, which is emptied first, and made only for them.
    pattern: one layout's regular expression, instead of recognising Canvas's and Moodle's."""
    source, staging = Path(source), Path(staging)
    shutil.rmtree(staging, ignore_errors=True)
    roster = Roster()
    if source.is_file() and source.suffix.lower() == ".zip":
        unpacked = staging / "archive"
        unpacked.mkdir(parents=True)
        try:
            skipped = unpack_zip(source, unpacked, CLASS_ARCHIVE_MEMBERS, CLASS_ARCHIVE_BYTES)
        except SubmissionError as error:
            raise SubmissionError(f"the class archive could not be read: {error}") from None
        roster.unmatched += [f"{name} (unsafe path in the archive: not extracted)" for name in skipped]
        source = _single_folder(unpacked)
    if not source.is_dir():
        raise SubmissionError(f"{source} is not a folder or a .zip of the class's submissions")
    patterns = [re.compile(p) for p in ([pattern] if pattern else LMS_PATTERNS)]
    for compiled in patterns:
        if "id" not in compiled.groupindex:
            raise SubmissionError(f"the id pattern {compiled.pattern!r} has no group named 'id', as in (?P<id>\\d+)")
    grouped: dict[str, list[tuple[Path, str]]] = {}  # student id → (file, its name in the student's folder)
    names: dict[str, str] = {}
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in ("__MACOSX", "__pycache__"):
            continue
        match = next((m for m in (p.match(entry.name) for p in patterns) if m), None)
        if match and entry.is_dir():  # Moodle's folder of one student's files
            found = sorted(p for p in entry.rglob("*") if p.is_file())
            grouped.setdefault(match["id"], []).extend((p, p.relative_to(entry).as_posix()) for p in found)
        elif match:
            grouped.setdefault(match["id"], []).append((entry, match.groupdict().get("file") or entry.name))
        elif entry.is_dir() or entry.suffix.lower() in (".zip", ".ipynb"):
            roster.students.append(Student(entry.name.removesuffix(entry.suffix) if entry.is_file() else entry.name, entry))
        else:
            roster.unmatched.append(entry.name)
        if match and match.groupdict().get("name"):
            names.setdefault(match["id"], match["name"].replace("_", " ").strip())
    for student_id, files in grouped.items():
        if len(files) == 1 and files[0][0].suffix.lower() in (".zip", ".ipynb"):
            roster.students.append(Student(student_id, files[0][0], names.get(student_id, "")))
            continue
        folder = staging / "students" / student_id
        folder.mkdir(parents=True)
        for path, uploaded in sorted(files):
            name = RESUBMITTED.sub("", uploaded)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            if (folder / name).exists():
                roster.notes.append(f"{student_id}: two files named {name}; {path.name} was used")
            shutil.copyfile(path, folder / name)
        roster.students.append(Student(student_id, folder, names.get(student_id, "")))
    ids = [student.id for student in roster.students]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        raise SubmissionError(f"two entries give the same student id {duplicate!r}: rename one or change --id-pattern")
    roster.students.sort(key=lambda student: student.id)
    return roster


def _single_folder(folder: Path) -> Path:
    """Archives often wrap everything in one top folder: descend into it."""
    entries = [e for e in folder.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder
