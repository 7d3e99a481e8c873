"""Build dist/gradescope-autograder.zip, laid out as Gradescope expects.

At the zip's top: `setup.sh` (installs the pinned dependencies on Gradescope's Ubuntu image, and
bubblewrap so that student code runs sandboxed where the container allows it) and
`run_autograder` (grades /autograder/submission/ and writes /autograder/results/results.json in
Gradescope's format, each check with the visibility the rubric gives it); then the grader, the
course's given modules, all the checks, the full rubric and MNIST.

    python tools/make_gradescope.py [--out dist/gradescope-autograder.zip]
"""
import argparse
from pathlib import Path

from bundle import ROOT, Zip, assert_no_solutions, core_requirements


def build(out):
    archive = Zip(out)
    archive.add_file("setup.sh", ROOT / "gradescope" / "setup.sh", executable=True)
    archive.add_file("run_autograder", ROOT / "gradescope" / "run_autograder", executable=True)
    archive.add_bytes("requirements.txt", core_requirements())
    archive.add_tree("grader", ROOT / "grader")
    archive.add_tree("grader/course/autodiff", ROOT / "starter" / "autodiff")
    archive.add_tree("tests/checks", ROOT / "tests" / "checks")
    archive.add_tree("datasets/mnist", ROOT / "datasets" / "mnist")
    archive.close()
    assert_no_solutions(out)
    return archive.names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "gradescope-autograder.zip")
    args = parser.parse_args()
    print(f"{args.out}: {len(build(args.out))} files")


if __name__ == "__main__":
    main()
