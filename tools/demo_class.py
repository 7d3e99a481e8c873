"""A demo class: the reference as folders and zips, the reference with one typical bug planted
(a text edit, as the grader's tests plant them), and broken submissions. For the batch benchmark,
for screenshots of the feedback pages, and for trying the grader out.

    python -m tools.demo_class FOLDER [--small]
"""
import argparse
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "solutions" / "autodiff"

# Typical bugs, one per submission: {student: (module, [(old, new), ...])}, each `old` occurring once.
BUGGY = {
    "buggy_mul_unreduced_broadcast": ("ops", [
        ("grad_b = grad_output * a\n        return reduce_grad_to_shape(grad_a, a.shape), "
         "reduce_grad_to_shape(grad_b, b.shape)", "grad_b = grad_output * a\n        return grad_a, grad_b")]),
    "buggy_mul_sign": ("ops", [("grad_a = grad_output * b\n", "grad_a = -grad_output * b\n")]),
    "buggy_matmul_transpose": ("ops", [("np.matmul(grad_output, np.swapaxes(b, -1, -2))", "np.matmul(grad_output, b)")]),
    "buggy_pow_log_of_exponent": ("ops", [("np.log(np.where(a > 0, a, 1))", "np.log(b)")]),
    "buggy_sum_ignores_axis": ("ops", [("return np.sum(a, axis=axis, keepdims=keepdims)", "return np.sum(a)")]),
    "buggy_relu_mask_only": ("activations", [("return grad_output * positive", "return positive.astype(np.float64)")]),
    "buggy_softmax_unstable": ("activations", [("np.exp(x - x.max(axis=axis, keepdims=True))", "np.exp(x)")]),
    "buggy_cross_entropy_sums": ("losses", [("-np.sum(t * np.log(clipped)) / p.shape[0]", "-np.sum(t * np.log(clipped))"),
                                            ("n = clipped.shape[0]", "n = 1")]),
    "buggy_l2_grad_norm": ("regularizers", [
        ("w.grad = 2 * lam * w.data", "w.grad = 2 * lam * np.linalg.norm(w.data)"),
        ("w.grad += 2 * lam * w.data", "w.grad += 2 * lam * np.linalg.norm(w.data)")]),
}
BROKEN = {
    "broken_syntax_error": ("losses", [("import numpy as np\n", "import numpy as np\n\ndef broken(:\n    pass\n")]),
    "broken_exit_at_import": ("ops", [("import numpy as np\n", "import os\nos._exit(0)\n")]),
    "broken_exit_in_an_op": ("ops", [("        return a * b\n", "        import os\n        os._exit(0)\n")]),
}
CORRECT_FOLDERS, CORRECT_ZIPS = 7, 3


def planted(folder, module=None, edits=()):
    """The reference's autodiff/ copied to folder/autodiff, with text edits in one module."""
    shutil.copytree(REFERENCE, folder / "autodiff", ignore=shutil.ignore_patterns("__pycache__"))
    if module:
        path = folder / "autodiff" / f"{module}.py"
        source = path.read_text()
        for old, new in edits:
            if source.count(old) != 1:
                raise SystemExit(f"edit {old!r} occurs {source.count(old)} times in {module}.py: update the benchmark")
            source = source.replace(old, new)
        path.write_text(source)
    return folder


def zipped(folder, archive):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zip_file.write(path, path.relative_to(folder).as_posix())
    shutil.rmtree(folder)


def build_class(folder):
    """{kind: [student ids]} of the class written into folder."""
    folder.mkdir(parents=True)
    kinds = {"correct": [], "buggy": list(BUGGY), "broken": [*BROKEN, "broken_unreadable_zip", "broken_empty_folder"]}
    for number in range(1, CORRECT_FOLDERS + CORRECT_ZIPS + 1):
        student = f"correct_{number:02d}"
        planted(folder / student)
        if number > CORRECT_FOLDERS:
            zipped(folder / student, folder / f"{student}.zip")
        kinds["correct"].append(student)
    for student, (module, edits) in {**BUGGY, **BROKEN}.items():
        planted(folder / student, module, edits)
    (folder / "broken_unreadable_zip.zip").write_bytes(b"PK\x03\x04" + b"\x00 truncated upload" * 40)
    (folder / "broken_empty_folder").mkdir()
    return kinds


def build_small_class(folder):
    """Five students: two correct, two with a typical bug, one broken."""
    folder.mkdir(parents=True)
    planted(folder / "correct_01")
    planted(folder / "correct_02")
    zipped(folder / "correct_02", folder / "correct_02.zip")
    for student in ("buggy_mul_unreduced_broadcast", "buggy_relu_mask_only"):
        planted(folder / student, *BUGGY[student])
    planted(folder / "broken_exit_at_import", *BROKEN["broken_exit_at_import"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the class (must not exist)")
    parser.add_argument("--small", action="store_true", help="five students instead of 24")
    args = parser.parse_args()
    (build_small_class if args.small else build_class)(args.folder)
    print(f"{args.folder}: {len(list(args.folder.iterdir()))} submissions")


if __name__ == "__main__":
    main()
