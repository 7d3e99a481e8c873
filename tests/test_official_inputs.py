"""The official grading draws its inputs from the rubric's salt: what the handout's checks ask is
not what the official ones ask. A submission answering from a table of the handout's inputs earns
the handout's points and none of the official ones; an honest one earns the same either way."""
import pytest

from _attacks import MUL_ZERO, Context, answer_table, edited
from _grading import FAST_RUBRIC, grade_and_validate, graded_once, reference_copy
from grader.rubric import load_rubric


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
