"""Feedback pages: self-contained, honest about visibility, and rendered by a real browser."""
import re
import shutil

import pytest

from grader.classroom.gradebook import summarize
from grader.classroom.pages import class_index, student_page
from grader.classroom.roster import Roster
from tests.support.grading import FAST_RUBRIC, grade_and_validate, graded_once, reference_copy
from tests.support.paths import STARTER
from tools.screenshot_pages import screenshot

# every test here grades whole submissions; one test process builds the module's fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pages")]

UNREDUCED_MUL = ("return reduce_grad_to_shape(grad_a, a.shape), reduce_grad_to_shape(grad_b, b.shape)\n"
                 "        # END SOLUTION\n\n\nclass Matmul",
                 "return grad_a, grad_b\n        # END SOLUTION\n\n\nclass Matmul")
LEAKY_SOFTMAX = ("exp = np.exp(x - x.max(axis=axis, keepdims=True))", "exp = np.exp(x)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    buggy = reference_copy(folder / "bob", {"ops": [UNREDUCED_MUL], "activations": [LEAKY_SOFTMAX]})
    graded = {"alice": graded_once(reference_copy(folder / "alice")), "bob": grade_and_validate(buggy)}
    for student, report in graded.items():
        report["student"] = student
    return graded


def test_student_page_is_self_contained(reports):
    page = student_page(reports["bob"])
    for outside in ("http://", "https://", "<script", "<link", "@import", "src="):
        assert outside not in page


def test_student_page_shows_the_diagnosis_and_the_training_curve(reports):
    page = student_page(reports["bob"])
    assert "you forgot to reduce the broadcast" in page
    assert "<polyline" in page and "Test accuracy" in page


def test_student_page_holds_back_checks_the_rubric_does_not_reveal_yet(reports):
    before_due = student_page(reports["bob"], reveal="visible")
    after_due = student_page(reports["bob"], reveal="after_due_date")
    assert "Softmax · stability" not in before_due and "shown after the due date" in before_due
    assert "Softmax · stability" in after_due and "subtract the maximum" in after_due


def test_feedback_text_is_escaped(reports):
    report = {**reports["bob"], "messages": ["<b>not bold</b>"]}
    assert "&lt;b&gt;not bold&lt;/b&gt;" in student_page(report)


def test_class_index_has_histogram_pass_rates_failures_and_a_link_per_student(reports):
    rubric = FAST_RUBRIC
    page = class_index(reports, summarize(reports, Roster(), rubric), {"alice": "alice.html", "bob": "bob.html"})
    assert "aria-label='score histogram'" in page
    assert "Pass rate by group" in page and "50% (1 of 2)" in page
    assert "Mul · backward" in page
    assert "href='alice.html'" in page and "href='bob.html'" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_pages_render_in_headless_chromium_without_console_messages(reports, tmp_path):
    rubric = FAST_RUBRIC
    (tmp_path / "bob.html").write_text(student_page(reports["bob"]))
    (tmp_path / "index.html").write_text(class_index(reports, summarize(reports, Roster(), rubric),
                                                    {"alice": "alice.html", "bob": "bob.html"}))
    for page in ("bob.html", "index.html"):
        assert screenshot(tmp_path / page, tmp_path / f"{page}.png") == []
        assert (tmp_path / f"{page}.png").stat().st_size > 10_000


@pytest.mark.xdist_group("starter")
def test_the_untouched_starters_page_is_a_quiet_line_per_group_not_a_red_box_per_check():
    """It was 30 red "failed" boxes, each saying "not implemented yet"."""
    page = student_page(graded_once(STARTER))
    fix = page[page.index("What to fix"):page.index("Your submission")]
    assert "<div class='check'" not in fix and "not implemented yet" not in fix
    assert fix.count("· not started: ") == len({t["group"] for t in graded_once(STARTER)["tests"] if t["visibility"] == "visible"})
    assert "<li><b>Mul</b> · not started: Mul.forward: compute y = a * b and save a and b for backward</li>" in fix
    assert ">not started</td>" in page and "#c62828" not in page  # the groups' status in grey, no red anywhere


def test_student_page_says_each_diagnosis_once_with_the_cases_it_applies_to(reports):
    page = student_page(reports["bob"])
    # once for the named cases it applies to, once beside the search's smallest failing input
    assert page.count("you forgot to reduce the broadcast") == 2 and "smallest failing input" in page
    assert re.search(r"\d of \d+ cases \(3x4 \* 4, 3x1 \* 1x4, scalar \* 3x4, 2x3x4 \* 3x1, 1x3x1 \* 2x1x4", page)
