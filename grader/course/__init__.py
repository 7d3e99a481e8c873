"""The course's given code, for the trusted side: where its copy of the package is, and its modules
loaded by file path from that copy under a private name, so that no `autodiff` module exists in
this process."""
import contextlib
import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .. import ROOT

# The course's copy of the package, graded bodies blank: the starter in the repository; in the
# packages built from it (the student handout, the Gradescope autograder), here beside this file.
COURSE_PACKAGE = next((p for p in (ROOT / "starter" / "autodiff", Path(__file__).parent / "autodiff") if p.is_dir()),
                      ROOT / "starter" / "autodiff")

_spec = importlib.util.spec_from_file_location("_course_data", COURSE_PACKAGE / "data.py")
assert _spec is not None and _spec.loader is not None  # a file path always has a spec and a loader
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)

COURSE_NAME = "_course_autodiff"  # the course's copy of the package, as course_module imports it


def course_module(name: str) -> ModuleType:
    """The course's module `name` (`nn`, say), from the course's copy of the package (graded bodies
    blank: nothing of a student's), imported as _course_autodiff.<name>, its relative imports
    resolved within that copy."""
    if COURSE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(COURSE_NAME, COURSE_PACKAGE / "__init__.py",
                                                      submodule_search_locations=[str(COURSE_PACKAGE)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[COURSE_NAME] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{COURSE_NAME}.{name}")


mnist_directory = _data.default_directory
DatasetError = _data.DatasetError
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autodiff-grader"


def load_mnist() -> Any:
    """MNIST as the course loads it (each file's checksum verified), kept decompressed in the
    user's cache under the SHA-256 of the compressed files it came from: a grading loads MNIST
    twice (the dataset check, the checks' process), a batch once per student, and each load
    otherwise decompresses 10 MB of gzip. No cache where none can be written."""
    directory = mnist_directory()
    try:
        digest = hashlib.sha256()
        for name in _data.FILES:
            digest.update(hashlib.sha256((directory / f"{name}.gz").read_bytes()).digest())
    except OSError:
        return _data.load_mnist(directory)  # which says what is missing
    cached = CACHE / f"mnist-{digest.hexdigest()[:32]}"
    try:
        return _data.MNIST(*(np.load(cached / f"{name}.npy", allow_pickle=False) for name in _data.MNIST._fields))
    except (OSError, ValueError):
        pass
    data = _data.load_mnist(directory)
    with contextlib.suppress(OSError):
        CACHE.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=CACHE))
        try:
            for name, array in data._asdict().items():
                np.save(folder / f"{name}.npy", array)
            os.rename(folder, cached)  # whole or not at all: gradings in parallel may make it at once
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # left only when another grading made it first
    return data


def expose_mnist(scratch: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write what the worker may see into scratch/mnist: the training images and labels. Returns
    the folder and the test images and labels, which stay with the caller (grader/mnist/loop.py
    computes the accuracy here)."""
    data = load_mnist()
    folder = scratch / "mnist"
    folder.mkdir(exist_ok=True)
    np.save(folder / "train_images.npy", data.train_images)
    np.save(folder / "train_labels.npy", data.train_labels)
    return folder, data.test_images, data.test_labels
