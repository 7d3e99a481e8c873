"""Build dist/gradescope-autograder.zip, laid out as Gradescope expects.

At the zip's top: `setup.sh` (installs the pinned dependencies on Gradescope's Ubuntu image, and
bubblewrap so that student code runs sandboxed where the container allows it) and
`run_autograder` (grades /autograder/submission/ and writes /autograder/results/results.json in
Gradescope's format, each check with the visibility the rubric gives it); then the grader, the
course's given modules, all the checks, the full rubric and MNIST.

The rubric it ships holds the course's salt (grader/rubric.py, course_salt): the rubric's own, or
the course's secret, made on the first build when none is kept; the placeholder salt is refused.
The zip is for course staff to upload, never for students.

    python -m tools.make_gradescope [--out dist/gradescope-autograder.zip]
"""
import sys

from grader.rubric import RubricError, course_salt, load_rubric
from tools.bundle import ROOT, Zip, add_grading_engine, main


def build(out):
    try:
        salted = course_salt(load_rubric(ROOT / "grader" / "rubric.toml"), official=True)
    except RubricError as error:
        sys.exit(f"make_gradescope: {error}")
    if salted.note:
        print(salted.note)
    archive = Zip(out)
    archive.add_file("setup.sh", ROOT / "gradescope" / "setup.sh", executable=True)
    archive.add_file("run_autograder", ROOT / "gradescope" / "run_autograder", executable=True)
    add_grading_engine(archive, "", rubric_text=salted.rubric.text)
    return archive.close()


if __name__ == "__main__":
    main(build, ROOT / "dist" / "gradescope-autograder.zip", __doc__.splitlines()[0])
