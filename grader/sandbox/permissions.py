"""File permissions, the one thing that keeps the grader's files from a pooled uid where no
bubblewrap hides them (`uid` level), and that lets the worker's uid read its own scratch folder
without owning anything in it."""
import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path


def make_readable(scratch: str | os.PathLike[str]) -> None:
    """What the grader put in scratch, readable by the worker's uid: copies keep their source's mode,
    and the grader's own files may be 0600 (Gradescope's recipe). Links are left alone, and so are
    FIFOs (MNIST's, made with the modes they need before a sandbox started lazily for them)."""
    for path in Path(scratch).rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        elif path.is_file() and not path.is_symlink():
            path.chmod(0o644)


def open_to_worker(scratch: str | os.PathLike[str], uid: int) -> None:
    """The scratch folder stays the grader's, opened to the worker's group only (not to the other
    workers of a batch): a worker that owned it could put links in place of the grader's files in it
    (its logs, its runtime, the folder itself), for the grader to follow at the next start."""
    os.chown(scratch, os.geteuid(), uid)
    os.chmod(scratch, 0o750)


def protect_from_workers(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """At the `uid` level, file permissions alone keep the grader's own files from the worker's
    uid (Gradescope's recipe): take every permission for others from these files and folders (a
    pooled uid has no group: the group's permissions, course staff's, stay). Returns those changed."""
    changed = []
    for path in map(Path, paths):
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode
            if mode & stat.S_ISVTX or len(path.resolve().parts) <= 2:  # never a shared folder (/tmp) or a top one (/home)
                continue
            if mode & 0o007:
                path.chmod(stat.S_IMODE(mode) & ~0o007)
                changed.append(path)
    return changed


def readable_by_workers(path: str | os.PathLike[str]) -> bool:
    """Could a pooled uid (no group of its own, so `other` permissions) open this file or list this
    folder? Every folder above it must let others through."""
    path = Path(path).resolve()
    try:
        if not all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents):
            return False
        return bool(path.stat().st_mode & stat.S_IROTH)
    except FileNotFoundError:
        return False
