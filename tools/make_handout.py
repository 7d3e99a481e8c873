"""Build dist/autodiff-handout.zip: what students receive.

The starter package, MNIST, the grader with the *visible* checks only and a rubric of their
weights only, and a student README (English and Korean) with a Makefile: `make check` grades
their work with the same engine and feedback as the real grading, `make train` runs the
handout's experiment with their ops. A check file whose checks are not all visible is left out;
one that mixes visible and hidden kinds stops the build (split it).

    python tools/make_handout.py [--out dist/autodiff-handout.zip]
"""
import sys

from bundle import ROOT, Zip, add_grading_engine, check_kinds, main

sys.path.insert(0, str(ROOT))
from grader.rubric import load_rubric  # noqa: E402

TOP = "autodiff-handout"


def visible_check_files(rubric):
    files = []
    for path in sorted((ROOT / "grader" / "checks").glob("test_*.py")):
        visible = {kind: rubric.visibility_of(kind) == "visible" for kind in check_kinds(path)}
        if all(visible.values()):
            files.append(path)
        elif any(visible.values()):
            sys.exit(f"{path.relative_to(ROOT)} mixes visible and other kinds ({visible}): split it")
    return files


def build(out):
    rubric = load_rubric(ROOT / "grader" / "rubric.toml")
    archive = Zip(out)
    for name in ("README.md", "README.ko.md", "Makefile"):
        archive.add_file(f"{TOP}/{name}", ROOT / "handout" / name)
    archive.add_file(f"{TOP}/SPEC.md", ROOT / "docs" / "SPEC.md")
    archive.add_tree(f"{TOP}/autodiff", ROOT / "starter" / "autodiff")
    add_grading_engine(archive, f"{TOP}/", rubric.visible_toml(), check_files=visible_check_files(rubric))
    return archive.close()


if __name__ == "__main__":
    main(build, ROOT / "dist" / "autodiff-handout.zip", __doc__.splitlines()[0])
