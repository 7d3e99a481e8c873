"""MNIST loading: the committed files, and a missing or damaged file reported by name."""
import gzip

import numpy as np
import pytest

from tests.support.paths import ROOT, SOLUTIONS, import_autodiff

import_autodiff(SOLUTIONS)
from autodiff.data import FILES, DatasetError, default_directory, load_mnist  # noqa: E402

MNIST_DIR = ROOT / "datasets" / "mnist"


def mnist_copy(folder, skip=None):
    """A folder with links to the committed files (all but `skip`), for damaging one of them."""
    folder.mkdir(exist_ok=True)
    for name in FILES:
        if name != skip:
            (folder / f"{name}.gz").symlink_to(MNIST_DIR / f"{name}.gz")
    return folder


def test_committed_files_load_with_the_right_shapes_dtypes_and_labels():
    data = load_mnist(MNIST_DIR)
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.train_labels.shape == (60000,) and data.train_labels.dtype == np.uint8
    assert data.test_images.shape == (10000, 28, 28) and data.test_images.dtype == np.uint8
    assert data.test_labels.shape == (10000,) and data.test_labels.dtype == np.uint8
    assert set(np.unique(data.train_labels)) == set(range(10)) == set(np.unique(data.test_labels))


def test_a_missing_file_is_named_with_how_to_restore_it(tmp_path):
    folder = mnist_copy(tmp_path / "mnist", skip="train-labels-idx1-ubyte")
    with pytest.raises(DatasetError) as error:
        load_mnist(folder)
    message = str(error.value)
    assert "train-labels-idx1-ubyte.gz" in message and "missing" in message
    assert "git checkout -- datasets/mnist" in message


def test_an_altered_file_is_reported_as_corrupt_by_name(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    folder = mnist_copy(tmp_path / "mnist", skip=name)
    content = bytearray(gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # one label changed: still a valid IDX file
    (folder / f"{name}.gz").write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DatasetError) as error:
        load_mnist(folder)
    assert f"{name}.gz" in str(error.value) and "corrupt" in str(error.value)


def test_a_truncated_gzip_file_is_reported_by_name(tmp_path):
    name = "train-labels-idx1-ubyte"
    folder = mnist_copy(tmp_path / "mnist", skip=name)
    (folder / f"{name}.gz").write_bytes((MNIST_DIR / f"{name}.gz").read_bytes()[:1000])
    with pytest.raises(DatasetError) as error:
        load_mnist(folder)
    assert f"{name}.gz" in str(error.value) and "restore" in str(error.value)


def test_the_mnist_dir_variable_chooses_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as error:
        load_mnist()
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(error.value)


def test_without_mnist_dir_the_committed_folder_is_found(monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    assert default_directory() == MNIST_DIR


# -- the grader's cache of the decompressed arrays (grader/course/) ---------------------------------

def test_the_graders_cache_gives_the_course_loaders_arrays_and_follows_the_files(tmp_path, monkeypatch):
    from grader import course

    monkeypatch.setattr(course, "CACHE", tmp_path / "cache")
    monkeypatch.setenv("MNIST_DIR", str(mnist_copy(tmp_path / "mnist")))
    loaded = course.load_mnist()                    # made
    (made,) = (tmp_path / "cache").iterdir()
    cached = course.load_mnist()                    # read back
    for name, array in load_mnist(MNIST_DIR)._asdict().items():
        assert np.array_equal(getattr(loaded, name), array) and np.array_equal(getattr(cached, name), array)
        assert getattr(cached, name).dtype == array.dtype
    (made / "test_labels.npy").write_bytes(b"not an array")  # a damaged cache: the files are read again
    assert np.array_equal(course.load_mnist().test_labels, load_mnist(MNIST_DIR).test_labels)
    # other files, another key: a damaged file is the course's error, never a cached copy of the good one
    damaged = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    damaged.unlink()
    damaged.write_bytes(gzip.compress(b"\0" * 100))
    with pytest.raises(course.DatasetError, match="t10k-labels-idx1-ubyte"):
        course.load_mnist()
