"""The official grading draws its inputs from the rubric's salt: what the handout's checks ask is
not what the official ones ask. A submission answering from a table of the handout's inputs earns
the handout's points and none of the official ones; an honest one earns the same either way."""
import hashlib
import tempfile
from pathlib import Path

import pytest

from grader.grade import run_checks
from grader.rubric import PLACEHOLDER_SALT, RubricError, Salted, course_salt, load_rubric, parse_rubric, read_secret
from grader.sandbox.launch import scratch_parent
from grader.submission import load_submission, prepare_scratch
from tests.support.attacks import MUL_ZERO, Context, answer_table, edited
from tests.support.grading import FAST_RUBRIC, fast_rubric_text, grade_and_validate, graded_once, reference_copy


def handout_rubric(folder):
    """The rubric the student handout ships: the visible checks, no salt."""
    path = folder / "rubric-handout.toml"
    path.write_text(FAST_RUBRIC.visible_toml())
    rubric = load_rubric(path)
    assert rubric.salt == "" and FAST_RUBRIC.salt
    return rubric


def mul_points(report):
    return {test["kind"]: test["score"] for test in report["tests"] if test["group"] == "Mul"}


@pytest.mark.slow
def test_a_table_of_the_handouts_answers_earns_nothing_in_the_official_grading(tmp_path):
    ctx = Context(folder=tmp_path, token="-", secret="-", listener=None)
    table = edited(MUL_ZERO, answer_table)(tmp_path / "table", ctx)
    handout = handout_rubric(tmp_path)
    practised = mul_points(grade_and_validate(table, handout))
    assert practised["forward"] == handout.points[("Mul", "forward")]  # the table works on the handout's inputs
    assert practised["backward"] == handout.points[("Mul", "backward")]
    official = grade_and_validate(table, FAST_RUBRIC)
    assert mul_points(official)["forward"] == mul_points(official)["backward"] == 0
    honest_zeros = graded_once(edited(MUL_ZERO)(tmp_path / "zeros", ctx), FAST_RUBRIC)  # the attacks' honest twin too
    # check by check what a Mul returning zeros earns: robustness compares values now, so the table
    # earns there only the graph case, which charges a wrong op once, in its own checks
    assert mul_points(official) == mul_points(honest_zeros)
    assert mul_points(official)["robustness"] < FAST_RUBRIC.points[("Mul", "robustness")]


@pytest.mark.slow
def test_the_reference_earns_the_same_on_the_handouts_inputs_and_the_official_ones(tmp_path):
    reference = reference_copy(tmp_path / "reference")
    handout = handout_rubric(tmp_path)
    practised, official = grade_and_validate(reference, handout), graded_once(reference, FAST_RUBRIC)
    assert practised["score"] == handout.max_score and official["score"] == FAST_RUBRIC.max_score


# -- the course's secret salt (grader/rubric.py: course_salt) ------------------------------------

def test_the_salt_goes_into_the_rubrics_text_whether_or_not_it_has_an_inputs_table(tmp_path):
    """What grades with the rubric (the checks' process, a Dask worker, Gradescope's copy) reads its
    text: the salt must be in it, and in its hash, which a batch compares before keeping a report."""
    path, salt = tmp_path / "rubric.toml", 'a "quoted" secret \\ with ünicode'
    for text in (fast_rubric_text(salt=None), fast_rubric_text(salt=None) + "\n[inputs]  # the course's secret, kept apart\n"):
        path.write_text(text)
        rubric = load_rubric(path)
        salted = rubric.with_salt(salt)
        assert (salted.salt, parse_rubric(salted.text, path).salt, salted.path) == (salt, salt, str(path))
        assert salted.sha256 == hashlib.sha256(salted.text).hexdigest() != rubric.sha256
        assert (salted.points, salted.mnist, salted.limits) == (rubric.points, rubric.mnist, rubric.limits)
        assert load_rubric(path).salt == ""  # the file itself is not touched


def test_the_courses_secret_is_made_by_an_official_run_only_and_a_rubrics_own_salt_wins(tmp_path, monkeypatch):
    secret = tmp_path / "course-secret.txt"
    monkeypatch.setenv("AUTODIFF_COURSE_SECRET", str(secret))
    (tmp_path / "rubric.toml").write_text(fast_rubric_text(salt=None))
    rubric = load_rubric(tmp_path / "rubric.toml")
    assert (course_salt(rubric, official=False).source, course_salt(rubric, official=False).rubric) == ("none", rubric)
    assert not secret.exists()
    made = course_salt(rubric, official=True)
    assert (made.source, made.file, made.rubric.salt) == ("made", secret, read_secret(secret))
    assert secret.read_text().startswith("# The course's secret salt")
    for official in (True, False):
        kept = course_salt(rubric, official)
        assert (kept.source, kept.rubric) == ("kept", made.rubric)
    assert course_salt(FAST_RUBRIC, official=True) == Salted(FAST_RUBRIC, "rubric")
    secret.write_text("# only a comment\n")
    with pytest.raises(RubricError, match="holds no secret"):
        course_salt(rubric, official=True)


def test_the_placeholder_salt_is_refused_for_official_runs(tmp_path):
    (tmp_path / "rubric.toml").write_text(fast_rubric_text(salt=PLACEHOLDER_SALT))
    rubric = load_rubric(tmp_path / "rubric.toml")
    with pytest.raises(RubricError, match="is the placeholder 'autodiff-course-salt-change-me', the same for every course"):
        course_salt(rubric, official=True)
    assert course_salt(rubric, official=False).source == "placeholder"


@pytest.mark.slow
def test_the_checks_draw_their_inputs_from_the_salt_of_the_rubric_graded_with_not_of_its_file(tmp_path):
    """The course's secret is in no rubric file: the checks' process must read the rubric's text.
    Read from the file (no salt), the handout's inputs would be drawn, and a table of them would pass."""
    ctx = Context(folder=tmp_path, token="-", secret="-", listener=None)
    table = edited(MUL_ZERO, answer_table)(tmp_path / "table", ctx)
    (tmp_path / "rubric.toml").write_text(fast_rubric_text(salt=None))
    salted = load_rubric(tmp_path / "rubric.toml").with_salt("a course's secret")
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(table), scratch)
        cases, problem, _ = run_checks(Path(scratch), salted, "process", tmp_path / "results.json", select="test_forward and Mul")
    mul = [case.status for case in cases if case.group == "Mul"]
    assert problem is None and mul and set(mul) == {"failed"}, cases


def test_a_secret_another_run_made_and_deleted_again_is_refused_not_used_as_none(tmp_path, monkeypatch):
    """make_secret lost the race to another run, whose secret is gone when it reads it: no salt of None."""
    import grader.rubric

    secret = tmp_path / "course-secret.txt"
    secret.write_text("made by another run\n")
    monkeypatch.setattr(grader.rubric, "read_secret", lambda path: None)
    with pytest.raises(RubricError, match="made and deleted by another run"):
        grader.rubric.make_secret(secret)
