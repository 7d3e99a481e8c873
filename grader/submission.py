"""What a student handed in: the one place the submission forms are read (SPEC.md, "Submissions").

A folder holding `autodiff/`, a folder holding the graded modules at its top, a `.zip` of
either, or one `.ipynb` (read by notebook.py). Each is read the way the student's own tool reads
it: a module's bytes go to the worker as handed in, for Python to decode as it always does (a
coding line, a BOM); a zip is read as `unzip` and Explorer read one (backslashes, directory
entries, names in the code page of the machine that wrote it). Nothing here runs student code:
sources are decoded and parsed with `ast` only to list what they define. Anything else gives a
Submission with an `error`, which the report turns into a score of 0 and a message.
"""
import ast
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import GRADED, GRADED_MODULES
from .course import COURSE_PACKAGE
from .notebook import NotebookError, read_notebook, write_cells

EXPECTED = ("expected a folder holding autodiff/ (with ops.py, activations.py, losses.py, regularizers.py), "
            "a folder holding those modules at its top, a .zip of either, or one .ipynb notebook")
MAX_ZIP_MEMBERS = 2000             # of what could be graded: junk and what lies too deep are set aside first
MAX_ZIP_ENTRIES = 200_000          # of anything, junk included: a bound on reading the archive's directory
MAX_UNPACKED_BYTES = 64 << 20
MAX_SOURCE_BYTES = 2 << 20
MAX_SEARCH_DEPTH = 3
MAX_HELPER_MODULES = 16            # the student's own further modules (autodiff/utils.py, …)
MAX_HELPER_BYTES = 4 << 20         # all of them together
# Folders that never hold graded work: tools' caches and output, version control, virtual environments.
JUNK = {"__MACOSX", "__pycache__", ".ipynb_checkpoints", ".git", "venv", "env", ".venv", "site-packages", "node_modules",
        "build", "dist"}  # the last two: what tools generate (the handout's check writes build/notebook.ipynb)
# Code pages a zip written without the UTF-8 flag may use for its names, after UTF-8 itself:
# Korean Windows' (the course's students), then the zip format's own default.
NAME_CODE_PAGES = ("utf-8", "cp949", "cp437")


@dataclass
class Submission:
    path: str
    form: str = "unreadable"
    sources: dict[str, bytes] = field(default_factory=dict)   # graded module → its bytes, as handed in
    helpers: dict[str, bytes] = field(default_factory=dict)   # the student's own further module → its bytes
    cells: list[dict[str, Any]] = field(default_factory=list)  # a notebook's code cells (notebook.py)
    cell_results: list[dict[str, Any]] = field(default_factory=list)  # what each did when the notebook ran (notebook.CellResult, as data)
    hashes: dict[str, str] = field(default_factory=dict)    # submitted file → SHA-256 of its bytes
    found: list[str] = field(default_factory=list)     # graded names the sources define
    missing: list[str] = field(default_factory=list)   # graded names they do not
    ignored: list[str] = field(default_factory=list)   # submitted files the grader does not use, with why
    notes: list[str] = field(default_factory=list)     # what the grader did about the submission's form
    error: str | None = None                      # why it could not be read at all
    sha256: str | None = None                     # of the whole submission as handed in

    def notebook_ran(self, cell_results: list[dict[str, Any]], defined: list[str], notes: list[str]) -> None:
        """What the notebook's run found: its cells' outcomes, and the graded names it defines
        (besides those of its %%writefile modules)."""
        self.cell_results = cell_results
        self.found = [name for name in GRADED if name in {*self.found, *defined}]
        self.missing = [name for name in GRADED if name not in self.found]
        self.notes += [_printable(note) for note in notes]

    def to_dict(self) -> dict[str, Any]:
        """As the report holds it: its lists bounded (MAX_LISTED each, then how many more), whatever was handed in."""
        return {"path": self.path, "form": self.form, "sha256": self.sha256, "files": self.hashes, "found": self.found,
                "helpers": sorted(self.helpers), "missing": self.missing, "cells": self.cell_results,
                "ignored": _bounded(self.ignored, "files"), "notes": _bounded(self.notes, "notes"), "error": self.error}


MAX_LISTED = 200


def _bounded(items, what):
    return items if len(items) <= MAX_LISTED else items[:MAX_LISTED] + [f"… and {len(items) - MAX_LISTED} more {what}"]


def load_submission(path: str | os.PathLike[str]) -> Submission:
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
                    submission.notes.append(f"not extracted (an absolute path, '..', a name both a file and a folder, "
                                            f"or a link): {', '.join(skipped[:10])}")
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


def prepare_scratch(submission: Submission, scratch: str | os.PathLike[str]) -> Path:
    """Lay out what the worker imports: the course's package with the student's graded and helper
    modules, their bytes as handed in (a helper answers to its bare name too: see the worker);
    for a notebook, the course's package and the notebook's cells."""
    scratch = Path(scratch)
    shutil.copytree(COURSE_PACKAGE, scratch / "autodiff", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    if submission.cells:  # a notebook writes its own files when it runs (sandbox/cells.py), as in Jupyter
        write_cells(submission.cells, scratch)
        return scratch
    for module, data in {**submission.helpers, **submission.sources}.items():
        (scratch / "autodiff" / f"{module}.py").parent.mkdir(parents=True, exist_ok=True)
        (scratch / "autodiff" / f"{module}.py").write_bytes(data)
    return scratch


def decoded(data: bytes) -> tuple[str, None] | tuple[None, str]:
    """A module's text as Python decodes it (a BOM, a coding line, else UTF-8): (text, None), or
    (None, why) where Python could not."""
    try:  # the lines as Python's tokenizer splits them: a Mac's lone CR ends one too
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).readline)
    except SyntaxError as error:  # an unknown encoding named, or its first lines not UTF-8 with none named
        return None, error.msg if _is_utf8(data) else NOT_UTF8
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError:
        return None, NOT_UTF8 if encoding in ("utf-8", "utf-8-sig") else f"its bytes are not {encoding} text, as its coding line says"


NOT_UTF8 = ("it is not UTF-8 and names no encoding (save it as UTF-8, or add a line such as "
            "'# -*- coding: cp949 -*-' at its top)")


def _is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class SubmissionError(Exception):
    pass


def _read_folder(folder, submission, how):
    files = _list_files(folder)
    root = _graded_root(folder, files)
    notebooks = _worked_on([f for f in files if f.suffix.lower() == ".ipynb"], folder)
    if root is not None and len(notebooks) == 1 and _untouched(folder, root, files):
        submission.notes.append(f"{_package(folder, root)}/ holds the course's blank modules: the notebook is graded")
        root = None
    if root is None:
        if len(notebooks) == 1:
            submission.ignored = [f"{f} (not used: the notebook is the submission)" for f in files if f != notebooks[0]]
            return _read_notebook(folder / notebooks[0], str(notebooks[0]), submission, f"{how} with a notebook")
        found = ", ".join(str(f) for f in files[:10]) or "nothing"
        raise SubmissionError(f"no graded module found (the submission holds {found}); {EXPECTED}")
    package = _package(folder, root)
    submission.form = f"{how} with autodiff/" if package.name == "autodiff" else f"{how} with the modules at its top"
    if root != PurePosixPath("."):
        submission.notes.append(f"graded modules read from {package}/")
    used = set()
    for module in GRADED_MODULES:
        data = _read_source(folder, package / f"{module}.py", submission)
        if data is not None:
            used.add(package / f"{module}.py")
            submission.sources[module] = data
            submission.found += _defined_graded_names(data, module, str(package / f"{module}.py"), submission.notes)
    course_modules = {path.name for path in COURSE_PACKAGE.glob("*.py")}
    helper_bytes = 0
    for relative in files:
        if relative in used:
            continue
        if relative.parent == package and relative.name in course_modules:
            submission.ignored.append(f"{relative} (the course's copy is used)")
            continue
        why = _not_a_helper(relative, package, len(submission.helpers), helper_bytes)
        data = None if why else _read_source(folder, relative, submission)
        if data is None:
            submission.ignored.append(f"{relative} ({why or 'not read'})")
            continue
        submission.helpers[relative.relative_to(package).with_suffix("").as_posix()] = data
        helper_bytes += len(data)
    if submission.helpers:
        submission.notes.append(f"helper modules of your own, importable beside the graded ones: "
                                f"{', '.join(f'{name}.py' for name in sorted(submission.helpers))}")
    if package.name != "autodiff":
        submission.notes += _shadowed_helpers(submission)


# Names a bare import gets from elsewhere than the student's flat folder, in the sandbox: Python's
# own modules, the packages the sandbox runs on, the course's package. (The sandbox's own modules
# are out of the way before student code runs: worker.leave_names_to_the_student.)
TAKEN_NAMES = {*sys.stdlib_module_names, "numpy", "IPython", "autodiff"}


# Files Python or pytest read by their names alone, wherever they can: never copied anywhere, though
# the package is a place neither looks in.
TOOLS_FILES = {"__init__", "__main__", "conftest", "sitecustomize", "usercustomize"}


def _not_a_helper(relative, package, count, total_bytes):
    """Why a submitted file cannot be one of the student's helper modules (None if it can): any
    module Python can import inside the package is one (in a subpackage too: utils/__init__.py),
    but for TOOLS_FILES."""
    if not relative.is_relative_to(package) or relative.suffix != ".py" or relative.stem in TOOLS_FILES - {"__init__"}:
        return "not graded"
    inside = relative.relative_to(package).with_suffix("").parts
    if inside == ("__init__",):
        return "not graded"
    if len(inside) > 3 or not all(part.isidentifier() for part in inside):
        return "not graded: not a module name Python can import"
    if count >= MAX_HELPER_MODULES:
        return f"not used: more than {MAX_HELPER_MODULES} helper modules"
    if total_bytes >= MAX_HELPER_BYTES:
        return f"not used: the helper modules hold over {MAX_HELPER_BYTES >> 20} MB"
    return None


def _shadowed_helpers(submission):
    """In the flat form, a helper named like a module a bare import finds first (`random.py`),
    where a submitted module does import it by that name: a note saying which gets imported."""
    notes = []
    for module, data in {**submission.sources, **submission.helpers}.items():
        tree = _parsed(data)
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | \
                   {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level and node.module}
        for name in sorted(imported & {helper.split("/")[0] for helper in submission.helpers} & TAKEN_NAMES):
            notes.append(f"{module}.py imports {name}: that is Python's own {name} module, not your {name}.py "
                         f"(rename the helper, or import it as autodiff.{name})")
    return notes


def _read_source(folder, relative, submission):
    """A submitted module's bytes, hashed; None (with a note) if it is a link or too big."""
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
    return data


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
    submission.cells = notebook.cells
    for module, source in notebook.modules.items():
        try:
            data = source.encode("utf-8")  # as IPython's %%writefile writes it
        except UnicodeEncodeError:
            submission.notes.append(f"%%writefile {module}.py: its text cannot be written as UTF-8 (Jupyter could not write it either)")
            continue
        if len(data) > MAX_SOURCE_BYTES:
            submission.notes.append(f"%%writefile {module}.py is over {MAX_SOURCE_BYTES >> 20} MB: not used")
            continue
        if module in GRADED_MODULES:
            submission.sources[module] = data
            submission.found += _defined_graded_names(data, module, f"{name} (%%writefile {module}.py)", submission.notes)
        elif len(submission.helpers) < MAX_HELPER_MODULES and sum(map(len, submission.helpers.values())) < MAX_HELPER_BYTES:
            submission.helpers[module] = data
        else:
            submission.notes.append(f"%%writefile {module}.py not used: over {MAX_HELPER_MODULES} helper modules or "
                                    f"{MAX_HELPER_BYTES >> 20} MB")
    submission.notes += notebook.notes


MAX_PARSED_BYTES = 256 << 10  # a module parsed here, at most: ast's nodes take hundreds of times the source's bytes


def _parsed(data):
    """A module's syntax tree (an empty one if it does not parse or decode, or is too big to parse here)."""
    text, _ = decoded(data)
    if text is None or len(data) > MAX_PARSED_BYTES:
        return ast.Module(body=[], type_ignores=[])
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ast.Module(body=[], type_ignores=[])


def _defined_graded_names(data, module, filename, notes):
    text, why = decoded(data)
    if text is None:
        notes.append(f"{filename} cannot be read by Python: {why}")
        return []
    if len(data) > MAX_PARSED_BYTES:  # its top-level definitions by their lines: the names, without the tree
        names = set(re.findall(r"(?m)^(?:class|def)\s+(\w+)|^(\w+)\s*=", text))
        return [name for name, home in GRADED.items() if home == module and any(name in found for found in names)]
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as error:
        notes.append(f"{filename} has a syntax error at line {error.lineno}: {error.msg}")
        return []
    except (ValueError, RecursionError, MemoryError):
        notes.append(f"{filename} could not be parsed")
        return []
    names = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names |= {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
              for target in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(target, ast.Name)}
    names |= {(alias.asname or alias.name).split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
              for alias in node.names}
    return [name for name, home in GRADED.items() if home == module and name in names]


def _set_aside(parts):
    """Is a file at these path parts never graded: in a junk or hidden folder, or deeper than any
    graded module can be (root/autodiff/module.py, the root at most MAX_SEARCH_DEPTH down)?"""
    return (any(part in JUNK or part.startswith(".") for part in parts)
            or len(parts) > MAX_SEARCH_DEPTH + 2)


def _list_files(folder):
    """Every regular file under folder (relative) that could be graded: junk, hidden files and
    what lies too deep are set aside before the count is bounded."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if _set_aside(relative.parts):
            continue
        if path.is_symlink():
            continue  # never followed: it could point anywhere on the grading machine
        if path.is_file():
            files.append(relative)
        if len(files) > MAX_ZIP_MEMBERS:
            raise SubmissionError(f"the submission holds more than {MAX_ZIP_MEMBERS} files; {EXPECTED}")
    return files


def _package(folder, root):
    return root / "autodiff" if (folder / root / "autodiff").is_dir() else root


def _untouched(folder, root, files):
    """Are the graded modules there the course's blank ones, byte for byte (the handout zipped
    whole, the work done in its notebook)?"""
    package = _package(folder, root)
    present = [module for module in GRADED_MODULES if package / f"{module}.py" in files]
    return bool(present) and all(_lines(folder / package / f"{module}.py") == _lines(COURSE_PACKAGE / f"{module}.py")
                                 for module in present)


def _lines(path):
    """A file's bytes as its lines (a Windows checkout's CRLF copy is the same file)."""
    return path.read_bytes().replace(b"\r\n", b"\n")


def _worked_on(notebooks, folder):
    """The notebooks the most worked on, by the NotImplementedError raises they have left (the
    handout's blank notebook beside Colab's "Copy of …": the copy)."""
    left = {notebook: _raises_left(folder / notebook) for notebook in notebooks}
    return [notebook for notebook in notebooks if left[notebook] == min(left.values())]


def _raises_left(path):
    try:
        return path.read_bytes().count(b"raise NotImplementedError(")
    except OSError:
        return 0


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


def submission_sha256(path: str | os.PathLike[str]) -> str:
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


def unpack_zip(path: Path, target: Path, max_members: int = MAX_ZIP_MEMBERS, max_bytes: int = MAX_UNPACKED_BYTES) -> list[str]:
    """Extract as unzip and Explorer would, with care: no absolute paths, no '..', no links;
    junk, what lies too deep and what is not code set aside, then the count and size of the rest bounded.
    Returns the names of the entries it refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _extract_members(archive, path, target, max_members, max_bytes)
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, RuntimeError, EOFError, NotImplementedError) as error:
        why = str(error).replace(str(target), "").replace(str(path), path.name)  # never the grader's own paths
        raise SubmissionError(f"{path.name} is not a readable zip archive ({why}); {EXPECTED}") from None


def member_name(member: zipfile.ZipInfo) -> str:
    """An entry's name as the tool that wrote it meant it: UTF-8 where its flag says so (zipfile
    has decoded it), else its bytes in the first of NAME_CODE_PAGES that reads them; backslashes
    (Windows' own tools) as separators."""
    name = member.filename
    if not member.flag_bits & 0x800:
        raw = name.encode("cp437")  # how zipfile decoded it: undone exactly
        for code_page in NAME_CODE_PAGES:
            try:
                name = raw.decode(code_page)
                break
            except UnicodeDecodeError:
                continue
    return name.replace("\\", "/")


def _extract_members(archive, path, target, max_members, max_bytes):
    skipped, written = [], 0
    members = archive.infolist()
    if len(members) > MAX_ZIP_ENTRIES:
        raise SubmissionError(f"{path.name} holds {len(members)} entries, more than {MAX_ZIP_ENTRIES}")
    graded = []
    for member in members:
        name = member_name(member)
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or (member.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
            skipped.append(name)
        elif parts and not _set_aside(parts) and (name.endswith("/") or member.is_dir() or member.external_attr & 0x10
                                                   or PurePosixPath(name).suffix.lower() in CODE_SUFFIXES):
            graded.append((member, name, parts))
    if len(graded) > max_members:
        raise SubmissionError(f"{path.name} holds {len(graded)} files and folders that could be graded, more than {max_members}")
    if sum(member.file_size for member, _, _ in graded) > max_bytes:
        raise SubmissionError(f"{path.name} unpacks to more than {max_bytes >> 20} MB")
    for member, name, parts in graded:
        destination = target.joinpath(*parts)
        is_folder = name.endswith("/") or member.is_dir() or member.external_attr & 0x10  # MS-DOS's directory flag
        try:
            if is_folder:
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open(destination, "wb") as sink:
                for chunk in _member_bytes(archive, member):
                    written += len(chunk)
                    if written > max_bytes:  # the header's sizes can lie
                        raise SubmissionError(f"{path.name} unpacks to more than {max_bytes >> 20} MB")
                    sink.write(chunk)
        except OSError:  # a name that is a file in one entry and a folder in another, say
            skipped.append(name)
        except RuntimeError as error:  # encrypted
            raise SubmissionError(f"{path.name}: {name} could not be extracted ({error}); {EXPECTED}") from None
    return skipped


CODE_SUFFIXES = (".py", ".ipynb")  # what a zip's entries are extracted for: nothing else is ever graded (data, images, PDFs)
DEFLATE64 = 9  # a zip compression method zipfile cannot read: 7-Zip's option, and Windows' own for some files


def _member_bytes(archive, member):
    """An entry's bytes, a chunk at a time; a Deflate64 entry inflated here, as unzip and
    Explorer inflate it (its local header skipped, its CRC checked)."""
    if member.compress_type != DEFLATE64:
        with archive.open(member) as source:
            while chunk := source.read(1 << 16):
                yield chunk
        return
    try:
        import inflate64
    except ImportError:
        raise NotImplementedError("Deflate64, which needs the inflate64 package") from None
    if member.flag_bits & 0x1:
        raise RuntimeError("it is encrypted")
    archive.fp.seek(member.header_offset)
    header = archive.fp.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("an entry's header is missing")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    archive.fp.seek(member.header_offset + 30 + name_length + extra_length)
    inflater, remaining, crc = inflate64.Inflater(), member.compress_size, 0
    while remaining:
        compressed = archive.fp.read(min(1 << 12, remaining))  # 4 KB in: at most a few MB out, the bound checked by the caller
        if not compressed:
            raise EOFError("the archive ends inside an entry")
        remaining -= len(compressed)
        chunk = inflater.inflate(compressed)
        crc = zlib.crc32(chunk, crc)
        yield chunk
    if crc != member.CRC:
        raise zipfile.BadZipFile(f"{member.filename}: its bytes do not match its CRC")
