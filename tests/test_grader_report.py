"""The report: our schema, Gradescope's results.json, the command line's exit status and table,
determinism, and a rubric that changes points without code changes."""
import copy
import hashlib
import json
import re
import subprocess
import sys
from html import unescape

import jsonschema
import pytest

from grader import GRADED_MODULES
from grader.report import SCHEMA, validate
from grader.rubric import load_rubric
from tests.support.grading import FAST_RUBRIC, FAST_RUBRIC_FILE, all_passed, grade_and_validate, graded_once, reference_copy
from tests.support.paths import ROOT, SOLUTIONS, STARTER

pytestmark = pytest.mark.xdist_group("cli-report")  # one test process builds the module's fixture

WRONG_MUL = {"ops": [("        return a * b\n", "        return a * b + 1.0\n")]}
# A wrong forward fails the checks that compare forward values: forward, scale, and of robustness's
# two cases the one that does (the graph case charges only what the engine adds to the op's own calls).
WRONG_FORWARD_LOSES = {"forward": 1, "scale": 1, "robustness": 0.5, "search": 1}


def points_lost_to_a_wrong_forward(rubric):
    return sum(rubric.points[("Mul", kind)] * share for kind, share in WRONG_FORWARD_LOSES.items())

# Gradescope's results.json, from its specification (gradescope-autograders.readthedocs.io,
# "Autograder Specifications"): only the fields it documents, with their documented values.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
OUTPUT_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["score", "tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number", "minimum": 0}, "output": {"type": "string"},
        "output_format": OUTPUT_FORMAT, "test_output_format": OUTPUT_FORMAT, "test_name_format": OUTPUT_FORMAT,
        "visibility": VISIBILITY, "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["score", "max_score", "status", "name", "number", "output", "visibility"],
            "additionalProperties": False,
            "properties": {
                "score": {"type": "number", "minimum": 0}, "max_score": {"type": "number", "minimum": 0},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string", "minLength": 1},
                "name_format": OUTPUT_FORMAT, "number": {"type": "string", "pattern": r"^\d+(\.\d+)*$"},
                "output": {"type": "string"}, "output_format": OUTPUT_FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}}, "visibility": VISIBILITY,
                "extra_data": {"type": "object"},
            }}},
    },
}


def run_cli(*arguments):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, arguments)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def gradescope_run(tmp_path_factory):
    """The command line grading a submission with a wrong Mul.forward into Gradescope's format."""
    folder = tmp_path_factory.mktemp("gradescope")
    out = folder / "results" / "results.json"
    completed = run_cli("grade", reference_copy(folder / "submission", WRONG_MUL), "--out", out,
                        "--format", "gradescope", "--rubric", FAST_RUBRIC_FILE)
    return completed, out


@pytest.mark.slow
@pytest.mark.parametrize("tree, score", [(SOLUTIONS, 100), (STARTER, 0)], ids=["reference", "starter"])
def test_report_matches_its_schema(tree, score):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    report = graded_once(tree)
    validate(report)  # our schema (graded_once checked it when it graded too)
    assert report["score"] == score and report["max_score"] == FAST_RUBRIC.max_score
    broken = copy.deepcopy(report)
    broken["tests"][0]["status"] = "ok"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


@pytest.mark.slow
def test_gradescope_results_follow_gradescopes_specification(gradescope_run):
    completed, out = gradescope_run
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    assert results["score"] == FAST_RUBRIC.max_score - points_lost_to_a_wrong_forward(FAST_RUBRIC)
    assert results["score"] == pytest.approx(sum(test["score"] for test in results["tests"]))
    assert [test["max_score"] for test in results["tests"]] == list(FAST_RUBRIC.points.values())
    assert len({test["number"] for test in results["tests"]}) == len(results["tests"])
    by_name = {test["name"]: test for test in results["tests"]}
    assert by_name["Mul · forward"]["status"] == "failed" and by_name["Mul · forward"]["score"] == 0
    assert by_name["Mul · backward"]["status"] == "passed"
    assert by_name["Softmax · stability"]["visibility"] == "after_due_date"
    assert "MNIST:" in results["output"]


@pytest.mark.slow
def test_the_untouched_starter_is_not_started_in_the_report_and_on_gradescope():
    """The terminal said "not started", the JSON only "not implemented yet" in each check's output,
    Gradescope a fenced "**failed**" per check."""
    from grader.report import to_gradescope

    report = graded_once(STARTER)
    assert [group["group"] for group in report["groups"]] == list(dict.fromkeys(group for group, _ in FAST_RUBRIC.points))
    assert {group["state"] for group in report["groups"]} == {"not started"}
    assert next(g for g in report["groups"] if g["group"] == "Mul")["feedback"] == \
        "Mul.forward: compute y = a * b and save a and b for backward"
    results = to_gradescope(report)
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    assert f"not started: {', '.join(group['group'] for group in report['groups'])}" in results["output"]
    assert all(test["output"].startswith("**not started**") and "not implemented yet" not in test["output"]
               for test in results["tests"])


@pytest.mark.slow
def test_terminal_output_shows_the_table_of_groups(gradescope_run):
    completed, out = gradescope_run
    lines = completed.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["group", "points"])
    end = next(index for index, line in enumerate(lines) if line.startswith("total"))
    assert all(len(line) <= 100 for line in lines[header:end + 1])
    table = {line.split()[0]: line for line in lines[header + 1:end + 1] if not line.startswith(" ")}  # not wrapped feedback
    assert list(table) == list(dict.fromkeys(group for group, _ in FAST_RUBRIC.points)) + ["total"]
    assert table["Mul"].split()[1:5] == ["3.5", "/", "8", "failed"]
    assert "forward" in table["Mul"]
    assert table["Matmul"].split()[1:5] == ["8", "/", "8", "passed"]
    assert table["total"].split()[1:4] == ["95.5", "/", "100"]
    assert f"report written to {out} (gradescope)" in completed.stdout


@pytest.mark.slow
def test_exit_status_is_0_when_a_report_was_written_even_for_score_0(tmp_path):
    out = tmp_path / "report.json"
    completed = run_cli("grade", STARTER, "--out", out, "--rubric", FAST_RUBRIC_FILE)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["score"] == 0


def test_exit_status_is_1_with_a_message_when_the_rubric_is_broken(tmp_path):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("[checks]\nMul = { forward = 2, backward = \n")
    out = tmp_path / "report.json"
    completed = run_cli("grade", SOLUTIONS, "--out", out, "--rubric", rubric)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"grader: cannot grade: cannot read the rubric {rubric}")
    assert "Traceback" not in completed.stderr
    assert not out.exists()


@pytest.mark.parametrize("arguments", [[], ["grade"], ["grade", "x", "--format", "xml"], ["mark", "x"]],
                         ids=["no command", "no path", "unknown format", "unknown command"])
def test_exit_status_is_2_for_bad_arguments(arguments):
    completed = run_cli(*arguments)
    assert completed.returncode == 2
    assert "usage: python -m grader" in completed.stderr


@pytest.mark.slow
def test_same_submission_graded_twice_gives_the_same_report(tmp_path):
    pow_bug = {"ops": [("grad_a = grad_output * b * np.power(a, b - 1)", "grad_a = grad_output * np.power(a, b - 1)")],
               "activations": [("return grad_output / clipped", "return grad_output / (clipped + 1e-3)")]}
    folder = reference_copy(tmp_path, pow_bug)
    first, second = grade_and_validate(folder), grade_and_validate(folder)

    def without_timings(report):
        return [{key: value for key, value in test.items() if key != "duration"} for test in report["tests"]]

    assert 0 < first["score"] < 100
    assert first["score"] == second["score"]
    assert without_timings(first) == without_timings(second)
    assert first["mnist"]["accuracy_per_epoch"] == second["mnist"]["accuracy_per_epoch"]


@pytest.mark.slow
def test_rubric_edits_change_points_without_code_changes(tmp_path):
    text = FAST_RUBRIC_FILE.read_text()
    for old, new in [("Mul              = { forward = 2,", "Mul              = { forward = 10,"),
                     ('robustness = "after_due_date"', 'robustness = "hidden"')]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    (tmp_path / "rubric.toml").write_text(text)
    rubric = load_rubric(tmp_path / "rubric.toml")
    report = grade_and_validate(reference_copy(tmp_path / "submission", WRONG_MUL), rubric)
    mul_forward = next(test for test in report["tests"] if test["name"] == "Mul · forward")
    assert report["max_score"] == 108 and mul_forward["max_score"] == 10
    assert report["score"] == 108 - points_lost_to_a_wrong_forward(rubric)
    assert {test["visibility"] for test in report["tests"] if test["kind"] == "robustness"} == {"hidden"}
    assert report["grader"]["rubric_sha256"] == hashlib.sha256((tmp_path / "rubric.toml").read_bytes()).hexdigest()


@pytest.mark.slow
def test_report_lists_the_sha256_of_each_graded_file(tmp_path):
    folder = reference_copy(tmp_path)
    report = graded_once(folder)
    assert report["submission"]["files"] == {
        f"autodiff/{module}.py": hashlib.sha256((folder / "autodiff" / f"{module}.py").read_bytes()).hexdigest()
        for module in GRADED_MODULES}


def test_a_report_that_fails_its_schema_is_still_written_and_flagged(tmp_path, monkeypatch):
    """A negative training time (student code could once set it) breaks the schema: the report is
    written all the same, its status asks for a human look, and the message says why."""
    from grader import cli
    from grader.report import build_report
    from grader.results import CaseResult
    from grader.submission import load_submission

    case = CaseResult("MNIST", "accuracy", "-", "passed", seconds=1.0,
                      mnist={"accuracy": 97.0, "accuracy_per_epoch": [97.0], "epochs": 1, "training_seconds": -5.0})
    report = build_report(load_submission(SOLUTIONS), FAST_RUBRIC, all_passed(FAST_RUBRIC, case), "process", 1.0)
    assert report["status"] == "error" and report["score"] is None
    assert any("does not match its schema at mnist/training_seconds" in m for m in report["messages"])
    monkeypatch.setattr(cli, "grade", lambda *args: report)
    assert cli.main(["grade", str(SOLUTIONS), "--out", str(tmp_path / "report.json"), "--rubric", str(FAST_RUBRIC_FILE),
                     "--isolation", "process"]) == 1  # written, and an error: no score
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "error"


@pytest.mark.parametrize("raw, shown", [
    ("a\ud800b", "a\ufffdb"),                                     # a lone surrogate: not writable as UTF-8
    ("\ud83d\ude00", "\U0001f600"),                              # a surrogate pair is the character it encodes
    ("\x1b[32mpassed\x1b[0m\r", "\\x1b[32mpassed\\x1b[0m\\r"),   # terminal codes, a carriage return
    ("\x00\x07\x7f\x85", "\\x00\\x07\\x7f\\x85"),                 # other C0 and C1 controls
    ("abc\u202edef\u2028", "abc\\u202edef\\u2028"),               # a bidi override, a line separator
    ("line 1\n\tline 2", "line 1\n\tline 2"),                    # newline and tab stay
    ("Ω é 한국어", "Ω é 한국어"),
], ids=["lone surrogate", "surrogate pair", "terminal codes", "controls", "bidi and separators", "lines", "unicode"])
def test_text_from_student_code_is_cleaned(raw, shown):
    from grader.report import clean_text

    assert clean_text(raw) == shown
    assert clean_text("x" * 30, limit=10) == "x" * 10 + "… (20 more characters cut)"


HOSTILE = ["[a link](http://evil.example/x)", "![an image](http://evil.example/i.png)", "<img src=x onerror=alert(1)>",
           "http://evil.example/bare", "<http://evil.example/auto>", "```\n</code></pre><script>alert(1)</script>\n```",
           "**bold** _under_ `code` ```` four", "line one\n[second](http://evil.example/2)"]


@pytest.mark.parametrize("text", HOSTILE)
def test_gradescope_markdown_shows_what_student_code_said_and_nothing_live(text):
    """Rendered as GitHub-flavoured Markdown (links, images, raw HTML, bare URLs linkified): no
    anchor, image or HTML from the student's string, which reads back as it was written."""
    from markdown_it import MarkdownIt

    from grader.report import _markdown_output

    output = f"Mul.forward raised RuntimeError: {text}"
    test = {"status": "failed", "output": output, "cases": [{"id": "-", "status": "failed", "output": output}]}
    html = MarkdownIt("gfm-like").render(_markdown_output(test))
    assert "<a " not in html and "<img" not in html and "<script" not in html, html
    shown = re.sub(r"<[^>]+>", "", html)
    assert all(unescape(line) in unescape(shown) for line in text.splitlines())
