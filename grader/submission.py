"""What a student handed in: the one place the submission forms are read (SPEC.md, "Submissions").

A folder holding `autodiff/`, a folder holding the graded modules at its top, a `.zip` of
either, or one `.ipynb` (read by notebook.py). Nothing here runs student code: sources are read
as text and parsed with `ast` only to list what they define. Anything else gives a Submission
with an `error`, which the report turns into a score of 0 and a message.
"""
import ast
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import COURSE_PACKAGE, GRADED, GRADED_MODULES
from .notebook import NotebookError, read_notebook, top_level_names

EXPECTED = ("expected a folder holding autodiff/ (with ops.py, activations.py, losses.py, regularizers.py), "
            "a folder holding those modules at its top, a .zip of either, or one .ipynb notebook")
MAX_ZIP_MEMBERS = 2000
MAX_UNPACKED_BYTES = 64 << 20
MAX_SOURCE_BYTES = 2 << 20
MAX_SEARCH_DEPTH = 3
MAX_HELPER_MODULES = 16            # the student's own further modules (autodiff/utils.py, …)
MAX_HELPER_BYTES = 4 << 20         # all of them together
JUNK = {"__MACOSX", "__pycache__", ".ipynb_checkpoints", ".git"}


@dataclass
class Submission:
    path: str
    form: str = "unreadable"
    sources: dict = field(default_factory=dict)   # graded module (or "notebook_submission") → source text
    helpers: dict = field(default_factory=dict)   # the student's own further module → source text
    hashes: dict = field(default_factory=dict)    # submitted file → SHA-256 of its bytes
    found: list = field(default_factory=list)     # graded names the sources define
    missing: list = field(default_factory=list)   # graded names they do not
    ignored: list = field(default_factory=list)   # submitted files the grader does not use, with why
    notes: list = field(default_factory=list)     # what the grader did about the submission's form
    error: str = None                             # why it could not be read at all
    sha256: str = None                            # of the whole submission as handed in

    def to_dict(self):
        return {"path": self.path, "form": self.form, "sha256": self.sha256, "files": self.hashes, "found": self.found,
                "helpers": sorted(self.helpers), "missing": self.missing, "ignored": self.ignored, "notes": self.notes, "error": self.error}


def load_submission(path):
    path = Path(path)
    submission = Submission(path=str(path), sha256=submission_sha256(path))
    try:
        if path.is_dir():
            _read_folder(path, submission, "folder")
        elif path.suffix.lower() == ".zip" and path.is_file():
            with tempfile.TemporaryDirectory(prefix="submission-zip-") as unpacked:
                skipped = unpack_zip(path, Path(unpacked))
                _read_folder(Path(unpacked), submission, "zip")
                if skipped:
                    submission.notes.append(f"not extracted (absolute path, '..' or link): {', '.join(skipped[:10])}")
        elif path.suffix.lower() == ".ipynb" and path.is_file():
            _read_notebook(path, path.name, submission, "notebook")
        elif not path.exists():
            raise SubmissionError(f"{path} does not exist; {EXPECTED}")
        else:
            raise SubmissionError(f"{path.name} is not a form the grader reads; {EXPECTED}")
    except SubmissionError as error:
        submission.form, submission.error, submission.sources = "unreadable", str(error), {}
    submission.missing = [name for name in GRADED if name not in submission.found]
    # A file name that is not UTF-8 (Python keeps its bytes as surrogates) would make the report
    # unwritable: each such byte is shown as '?'.
    submission.path = _printable(submission.path)
    submission.error = submission.error and _printable(submission.error)
    submission.notes = [_printable(note) for note in submission.notes]
    submission.ignored = [_printable(entry) for entry in submission.ignored]
    submission.hashes = {_printable(name): digest for name, digest in submission.hashes.items()}
    return submission


def _printable(text):
    return text.encode("utf-8", "replace").decode("utf-8")


def prepare_scratch(submission, scratch):
    """Lay out what the worker imports: the course's package with the student's graded and helper
    modules (a helper answers to its bare name too: see the worker)."""
    scratch = Path(scratch)
    shutil.copytree(COURSE_PACKAGE, scratch / "autodiff", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    for module, source in {**submission.helpers, **submission.sources}.items():
        target = scratch / f"{module}.py" if module == "notebook_submission" else scratch / "autodiff" / f"{module}.py"
        target.write_text(source, encoding="utf-8")
    return scratch


class SubmissionError(Exception):
    pass


def _read_folder(folder, submission, how):
    files = _list_files(folder)
    root = _graded_root(folder, files)
    if root is None:
        notebooks = [f for f in files if f.suffix.lower() == ".ipynb"]
        if len(notebooks) == 1:
            submission.ignored = [f"{f} (not used: the notebook is the submission)" for f in files if f != notebooks[0]]
            return _read_notebook(folder / notebooks[0], str(notebooks[0]), submission, f"{how} with a notebook")
        found = ", ".join(str(f) for f in files[:10]) or "nothing"
        raise SubmissionError(f"no graded module found (the submission holds {found}); {EXPECTED}")
    package = root / "autodiff" if (folder / root / "autodiff").is_dir() else root
    submission.form = f"{how} with autodiff/" if package.name == "autodiff" else f"{how} with the modules at its top"
    if root != PurePosixPath("."):
        submission.notes.append(f"graded modules read from {package}/")
    used = set()
    for module in GRADED_MODULES:
        source = _read_source(folder, package / f"{module}.py", submission)
        if source is not None:
            used.add(package / f"{module}.py")
            submission.sources[module] = source
            submission.found += _defined_graded_names(source, module, str(package / f"{module}.py"), submission.notes)
    course_modules = {path.name for path in COURSE_PACKAGE.glob("*.py")}
    helper_bytes = 0
    for relative in files:
        if relative in used:
            continue
        if relative.parent == package and relative.name in course_modules:
            submission.ignored.append(f"{relative} (the course's copy is used)")
            continue
        why = _not_a_helper(relative, package, len(submission.helpers), helper_bytes)
        source = None if why else _read_source(folder, relative, submission)
        if source is None:
            submission.ignored.append(f"{relative} ({why or 'not read'})")
            continue
        submission.helpers[relative.stem] = source
        helper_bytes += len(source.encode())
    if submission.helpers:
        submission.notes.append(f"helper modules of your own, importable beside the graded ones: "
                                f"{', '.join(f'{name}.py' for name in sorted(submission.helpers))}")


# Module names that mean something to Python, pytest or the sandbox before any import of the
# student's: never a helper, whatever is in it.
RESERVED_NAMES = {"conftest", "sitecustomize", "usercustomize", "__main__", "autodiff", "protocol", "worker",
                  "supervisor", "notebook_submission", "numpy"}


def _not_a_helper(relative, package, count, total_bytes):
    """Why a submitted file cannot be one of the student's helper modules (None if it can)."""
    if relative.parent != package or relative.suffix != ".py" or relative.stem in RESERVED_NAMES:
        return "not graded"
    if relative.stem in sys.stdlib_module_names:
        return "not graded: it has the name of a module of Python's own"
    if not relative.stem.isidentifier():
        return "not graded: not a module name Python can import"
    if count >= MAX_HELPER_MODULES:
        return f"not used: more than {MAX_HELPER_MODULES} helper modules"
    if total_bytes >= MAX_HELPER_BYTES:
        return f"not used: the helper modules hold over {MAX_HELPER_BYTES >> 20} MB"
    return None


def _read_source(folder, relative, submission):
    """A submitted module's text, hashed; None (with a note) if it is a link, too big or not UTF-8."""
    path = folder / relative
    if not path.is_file():
        return None
    if path.resolve() != folder.resolve() / relative:  # a link, or in a linked folder: it could point anywhere
        submission.notes.append(f"{relative} is a link: not used")
        return None
    data = path.read_bytes()
    if len(data) > MAX_SOURCE_BYTES:
        submission.notes.append(f"{relative} is over {MAX_SOURCE_BYTES >> 20} MB: not used")
        return None
    submission.hashes[str(relative)] = hashlib.sha256(data).hexdigest()
    try:
        return data.decode("utf-8-sig")  # Windows editors may start the file with a BOM
    except UnicodeDecodeError:
        submission.notes.append(f"{relative} is not UTF-8 text: not used")
        return None


def _read_notebook(path, name, submission, form):
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SubmissionError(f"{name} is not UTF-8 text, so it is not a notebook; {EXPECTED}") from None
    try:
        notebook = read_notebook(text)
    except NotebookError as error:
        raise SubmissionError(f"{name} could not be read as a notebook ({error}); {EXPECTED}") from None
    submission.form = form
    submission.hashes[name] = hashlib.sha256(data).hexdigest()
    submission.sources["notebook_submission"] = notebook.source
    found = top_level_names(ast.parse(notebook.source))
    for module, source in notebook.modules.items():
        if module in GRADED_MODULES:
            submission.sources[module] = source
            found.update(_defined_graded_names(source, module, f"{name} (%%writefile {module}.py)", submission.notes))
        elif len(submission.helpers) < MAX_HELPER_MODULES and sum(map(len, submission.helpers.values())) < MAX_HELPER_BYTES:
            submission.helpers[module] = source
        else:
            submission.notes.append(f"%%writefile {module}.py not used: over {MAX_HELPER_MODULES} helper modules or "
                                    f"{MAX_HELPER_BYTES >> 20} MB")
    submission.found = [n for n in GRADED if n in found]
    submission.notes += notebook.notes
    skipped = notebook.skipped
    if skipped:
        submission.notes.append(f"from the notebook, what neither defines nor feeds a graded name is not run; "
                                f"{len(skipped)} statements were skipped:")
        submission.notes += [f"  skipped {line}" for line in skipped[:20]]
        if len(skipped) > 20:
            submission.notes.append(f"  … and {len(skipped) - 20} more")


def _defined_graded_names(source, module, filename, notes):
    try:
        names = top_level_names(ast.parse(source, filename))
    except SyntaxError as error:
        notes.append(f"{filename} has a syntax error at line {error.lineno}: {error.msg}")
        return []
    except (ValueError, RecursionError):
        notes.append(f"{filename} could not be parsed")
        return []
    return [name for name, home in GRADED.items() if home == module and name in names]


def _list_files(folder):
    """Every regular file under folder (relative), skipping junk folders and hidden files."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if any(part in JUNK or part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink():
            continue  # never followed: it could point anywhere on the grading machine
        if path.is_file():
            files.append(relative)
        if len(files) > MAX_ZIP_MEMBERS:
            raise SubmissionError(f"the submission holds more than {MAX_ZIP_MEMBERS} files; {EXPECTED}")
    return files


def _graded_root(folder, files):
    """The shallowest folder holding autodiff/<graded>.py, or <graded>.py at its top."""
    graded_files = {f"{module}.py" for module in GRADED_MODULES}
    candidates = []
    for relative in files:
        if relative.name not in graded_files:
            continue
        parent = relative.parent
        root = parent.parent if parent.name == "autodiff" else parent
        if len(root.parts) <= MAX_SEARCH_DEPTH:
            candidates.append((parent.name != "autodiff", len(root.parts), str(root), root))
    return min(candidates)[3] if candidates else None


def submission_sha256(path):
    """SHA-256 of a submission as handed in: a file's bytes, or a folder's file names and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")  # the name's bytes, UTF-8 or not
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def unpack_zip(path, target, max_members=MAX_ZIP_MEMBERS, max_bytes=MAX_UNPACKED_BYTES):
    """Extract with care: no absolute paths, no '..', no links, bounded count and size.
    Returns the names of the entries it refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _extract_members(archive, path, target, max_members, max_bytes)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, RuntimeError, EOFError) as error:
        raise SubmissionError(f"{path.name} is not a readable zip archive ({error}); {EXPECTED}") from None


def _extract_members(archive, path, target, max_members, max_bytes):
    skipped, written = [], 0
    members = archive.infolist()
    if len(members) > max_members:
        raise SubmissionError(f"{path.name} holds {len(members)} entries, more than {max_members}")
    if sum(m.file_size for m in members) > max_bytes:
        raise SubmissionError(f"{path.name} unpacks to more than {max_bytes >> 20} MB")
    for member in members:
        name = PurePosixPath(member.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or (member.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
            skipped.append(member.filename)
            continue
        destination = target.joinpath(*name.parts)
        if member.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, open(destination, "wb") as sink:
            while chunk := source.read(1 << 16):
                written += len(chunk)
                if written > max_bytes:  # the header's sizes can lie
                    raise SubmissionError(f"{path.name} unpacks to more than {max_bytes >> 20} MB")
                sink.write(chunk)
    return skipped
