"""MNIST from the four IDX files committed with the course (datasets/mnist/*.gz). Given.

Each file's decompressed content is checked against its SHA-256, so a truncated or altered file
is reported by name instead of training on garbage.
"""
import gzip
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

FILES = {  # name: SHA-256 of the decompressed IDX content
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
RESTORE_HINT = "restore the four files from the course's copy (in the project's repository: git checkout -- datasets/mnist)"


class DatasetError(RuntimeError):
    pass


class MNIST(NamedTuple):
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray   # (10000, 28, 28) uint8
    test_labels: np.ndarray   # (10000,) uint8


def default_directory():
    """$MNIST_DIR if set, else the nearest datasets/mnist above this file."""
    if os.environ.get("MNIST_DIR"):
        return Path(os.environ["MNIST_DIR"])
    for folder in Path(__file__).resolve().parents:
        if (folder / "datasets" / "mnist").is_dir():
            return folder / "datasets" / "mnist"
    return Path("datasets/mnist")


def load_mnist(directory=None):
    directory = Path(directory) if directory is not None else default_directory()
    arrays = [read_idx(directory / f"{name}.gz", sha256) for name, sha256 in FILES.items()]
    return MNIST(*arrays)


def read_idx(path, sha256):
    """Parse one gzipped IDX file: magic (0, 0, type 0x08 = uint8, number of dims), then the
    dims as big-endian int32, then the bytes."""
    if not path.is_file():
        raise DatasetError(f"MNIST file {path} is missing: {RESTORE_HINT}")
    try:
        content = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise DatasetError(f"MNIST file {path} is not a readable gzip file ({error}): {RESTORE_HINT}") from None
    if hashlib.sha256(content).hexdigest() != sha256:
        raise DatasetError(f"MNIST file {path} is corrupt (its SHA-256 does not match {sha256[:12]}…): {RESTORE_HINT}")
    ndim = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
