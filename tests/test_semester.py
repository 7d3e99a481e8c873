"""A semester with the grader, in its fast parts: feedback that says a thing once, one cause per
row, the LMS layouts and exports (Canvas, Moodle), the regrade diff and the similarity ranking.
Whole classes graded through these are in test_semester_batch.py."""
import csv
import io
import json
import re

import pytest

from benchmarks import similarity_speed
from grader import GRADED_MODULES
from grader.classroom.diff import compare, write_diff
from grader.classroom.gradebook import row_problems, summarize
from grader.classroom.lms import LMSError, fill_canvas, fill_moodle
from grader.classroom.roster import Roster, discover
from grader.classroom.similarity import compare_class, starter_code
from grader.report import build_report, merged_feedback
from grader.results import CaseResult, NotImported, NotStarted, Wrong
from grader.submission import Submission
from tests.support.grading import FAST_RUBRIC
from tests.support.paths import SOLUTIONS

BROADCAST = ("the gradient for {n} has shape {got}, but {n} has shape {want}: you forgot to reduce the broadcast "
             "(the forward broadcast {n}, so its gradient must be summed back to its shape with reduce_grad_to_shape); "
             "summed over those axes it would be right")


def case(id, feedback="", status="failed", cause=None):
    """A case of Mul's forward check: passed without feedback; with it, failed for `cause` (a wrong value by default)."""
    if not feedback:
        return CaseResult("Mul", "forward", id, "passed")
    return CaseResult("Mul", "forward", id, status, feedback, cause or Wrong(feedback.partition("\n")[0]), fraction=0.0)


# -- feedback that says a thing once ----------------------------------------------------------

def test_one_diagnosis_across_cases_is_said_once_with_its_cases_whatever_the_shapes_and_inputs():
    cases = [case("3x4 * 3x4"), case("4x4 * 4x4"),
             case("3x4 * 4", BROADCAST.format(n="b", got=(3, 4), want=(4,))),
             case("3x1 * 1x4", BROADCAST.format(n="a", got=(3, 4), want=(3, 1)) + "\n" + BROADCAST.format(n="b", got=(3, 4), want=(1, 4))),
             case("scalar * 3x4", BROADCAST.format(n="a", got=(3, 4), want=())),
             case("2x3x4 * 3x1", BROADCAST.format(n="b", got=(2, 3, 4), want=(3, 1)))]
    output = merged_feedback(cases)
    assert output.count("you forgot to reduce the broadcast") == 1
    assert output.startswith("2 of 6 cases passed\n4 of 6 cases (3x4 * 4, 3x1 * 1x4, scalar * 3x4, 2x3x4 * 3x1) [details for 3x4 * 4]: "
                             "the gradient for b has shape (3, 4), but b has shape (4,)")


def test_different_diagnoses_stay_apart_and_worst_element_values_do_not_split_one():
    wrong = "the gradient for a is wrong: it has the wrong sign (every value is negated); worst element at index ({i}, 0): expected {e}, got {g}"
    cases = [case("1", wrong.format(i=1, e=0.5, g=-0.5)), case("2", wrong.format(i=2, e=1.25e-3, g=-1.25e-3)),
             case("3", "Mul.backward returned None, expected a numpy array"), case("4")]
    lines = merged_feedback(cases).splitlines()
    assert lines == ["1 of 4 cases passed",
                     "2 of 4 cases (1, 2) [details for 1]: " + wrong.format(i=1, e=0.5, g=-0.5),
                     "1 of 4 cases (3): Mul.backward returned None, expected a numpy array"]


def test_a_not_started_op_is_one_line_per_check():
    stub = "Mul.forward is not implemented yet (NotImplementedError: Mul.forward: compute y = a * b)"
    assert merged_feedback([case(str(i), stub, cause=NOT_STARTED) for i in range(6)]) == f"all 6 cases: {stub}"


def test_a_traceback_stays_with_its_diagnosis():
    raised = "Pow.backward raised ValueError: bad\n  File \"ops.py\", line 9, in backward\n    raise ValueError('bad')"
    assert merged_feedback([case("1", raised), case("2", raised)]) == f"all 2 cases: {raised}"


def test_the_report_output_is_merged_so_gradescope_and_pages_get_it_too():
    results = [CaseResult("Mul", "backward", f"c{i}", "failed", diagnosis, Wrong(diagnosis), fraction=0.0)
               for i, diagnosis in enumerate(BROADCAST.format(n="b", got=(3, i + 2), want=(i + 2,)) for i in range(3))]
    report = build_report(Submission(path="x", form="folder", sha256="0" * 64), FAST_RUBRIC, results, "process", 1.0)
    test = next(t for t in report["tests"] if t["name"] == "Mul · backward")
    assert test["output"].count("you forgot to reduce") == 1 and test["output"].startswith("all 3 cases [details for c0]")
    assert [c["output"] for c in test["cases"]] == [r.output for r in results]  # every case kept as it was


# -- one cause per row ------------------------------------------------------------------------------

def graded_report(failing_feedback, status="error", cause=None):
    """A report whose ops.py checks all failed with `failing_feedback`, for `cause` (a wrong value by default); the rest passed."""
    failing = ("Mul", "Matmul", "MNIST")
    results = [CaseResult(g, k, "c", status, failing_feedback, cause or Wrong(failing_feedback), fraction=0.0) if g in failing
               else CaseResult(g, k, "c", "passed") for g, k in FAST_RUBRIC.points]
    return build_report(Submission(path="x", form="folder", sha256="0" * 64), FAST_RUBRIC, results, "process", 1.0)


EXITED = "the worker exited with status 0 (did the code call sys.exit?)"
SYNTAX = "raised SyntaxError: invalid syntax (ops.py, line 3)"
NOT_STARTED = NotStarted("forward", "Mul.forward: compute y = a * b")


def test_a_module_that_fails_to_import_is_one_cause_in_the_row_and_counted_apart_from_failed_checks():
    exits = graded_report(f"importing ops.py stopped the worker: {EXITED}", cause=NotImported("ops.py", f"stopped the worker: {EXITED}"))
    syntax = graded_report(f"importing ops.py {SYNTAX}\n  File \"ops.py\", line 3", "failed", NotImported("ops.py", SYNTAX))
    wrong = graded_report("Mul.forward is wrong: values differ", "failed")
    assert row_problems(exits) == "ops.py could not be imported: stopped the worker: the worker exited with status 0 (did the code call sys.exit?)"
    assert row_problems(syntax) == "ops.py could not be imported: raised SyntaxError: invalid syntax (ops.py, line 3)"
    summary = summarize({"exits": exits, "syntax": syntax, "wrong": wrong}, Roster(), FAST_RUBRIC)
    assert summary["modules_not_imported"] == [{"module": "ops.py", "students": 2}]
    assert {item["check"]: item["students"] for item in summary["most_failed_checks"]}["Mul · forward"] == 1


def test_the_class_index_names_the_one_cause_too():
    from grader.classroom.pages import class_index

    reports = {"exits": graded_report("importing ops.py stopped the worker: the worker exited with status 0",
                                      cause=NotImported("ops.py", "stopped the worker: the worker exited with status 0"))}
    page = class_index(reports, summarize(reports, Roster(), FAST_RUBRIC), {"exits": "exits.html"})
    assert "<td>ops.py could not be imported: stopped the worker: the worker exited with status 0</td>" in page


# -- one vocabulary for a student's state ------------------------------------------------------------

STATES_SEEN = {  # group → its checks' feedback and its cause, and the state every rendering must name it by
    "Mul": (f"importing ops.py {SYNTAX}", NotImported("ops.py", SYNTAX), "could not be imported"),
    "Matmul": (f"importing ops.py {SYNTAX}", NotImported("ops.py", SYNTAX), "could not be imported"),
    "Softmax": ("Softmax.forward is not implemented yet (NotImplementedError: Softmax.forward: compute the softmax)",
                NotStarted("forward", "Softmax.forward: compute the softmax"), "not started"),
    "Log": ("the gradient for x is wrong: it has the wrong sign (every value is negated)",
            Wrong("the gradient for x is wrong: it has the wrong sign (every value is negated)"), "failed"),
}


def report_in_every_state():
    results = [CaseResult(g, k, "c", "failed", STATES_SEEN[g][0], STATES_SEEN[g][1], fraction=0.0) if g in STATES_SEEN
               else CaseResult(g, k, "c", "passed") for g, k in FAST_RUBRIC.points]
    return build_report(Submission(path="x", form="folder", sha256="0" * 64), FAST_RUBRIC, results, "process", 1.0)


def test_a_students_state_is_named_alike_by_the_report_the_terminal_the_page_and_gradescope():
    from grader.classroom.pages import student_page
    from grader.report import STATES, format_table, to_gradescope

    report = report_in_every_state()
    expected = {group: STATES_SEEN.get(group, ("", None, "passed"))[2] for group, _ in FAST_RUBRIC.points}
    assert set(expected.values()) == set(STATES)
    assert {group["group"]: group["state"] for group in report["groups"]} == expected
    assert report["groups"][[g["group"] for g in report["groups"]].index("Softmax")]["feedback"] == \
        "Softmax.forward: compute the softmax"  # the starter's hint: what to do next
    rows = {line.split()[0]: line for line in format_table(report).splitlines()[1:] if line[:1].strip()}
    assert all(re.search(rf" {re.escape(state)}( |$)", rows[group]) for group, state in expected.items()), rows
    page = student_page(report, reveal="all")
    assert all(re.search(rf"<td>{group}</td>(?:(?!</tr>).)*>{state}</td></tr>", page) for group, state in expected.items())
    for test in to_gradescope(report)["tests"]:
        state = expected[test["tags"][0]]
        assert test["output"].startswith(f"**{state}**") if state != "passed" else "**" not in test["output"]


def test_a_group_not_started_is_one_quiet_line_and_a_module_not_imported_one_box():
    """The untouched starter's page was 30 red boxes, one per failing check, each saying "not implemented yet"."""
    from grader.classroom.pages import student_page

    page = student_page(report_in_every_state(), reveal="all")
    fix = page[page.index("What to fix"):page.index("Your submission")]
    assert "<li><b>Softmax</b> · not started: Softmax.forward: compute the softmax</li>" in fix
    assert "Softmax ·" not in fix.replace("<b>Softmax</b> · not started", "")  # no box of its checks
    assert fix.count("could not be imported · ") == 1 and "Mul, Matmul · could not be imported" in fix
    assert fix.count("<div class='check'") == 1 + sum(1 for g, _ in FAST_RUBRIC.points if g == "Log")


def test_needs_a_human_look_lists_a_zero_an_import_failure_and_a_grader_error():
    """It said "Nobody." while a student scored 0 with the untouched starter."""
    from grader.classroom.gradebook import summary_markdown

    starter = build_report(Submission(path="x", form="folder", sha256="0" * 64), FAST_RUBRIC, [
        CaseResult(g, k, "c", "failed", f"{g}.forward is not implemented yet (NotImplementedError: {g}.forward: compute it)",
                   NotStarted("forward", f"{g}.forward: compute it"), fraction=0.0) for g, k in FAST_RUBRIC.points],
        "process", 1.0)
    not_run = build_report(Submission(path="y", form="folder", sha256="0" * 64), FAST_RUBRIC, [], "process", 1.0,
                           messages=["the grader failed on this submission: OSError: disk full"])
    reports = {"starter": starter, "broken": report_in_every_state(), "crashed": not_run}
    summary = summarize(reports, Roster(), FAST_RUBRIC)
    why = {item["student"]: item["why"] for item in summary["needs_a_human_look"]}
    assert why.keys() == {"starter", "broken", "crashed"} and why["starter"] == "scored 0: not started"
    assert why["broken"] == "ops.py could not be imported: raised SyntaxError: invalid syntax (ops.py, line 3)"
    assert why["crashed"].startswith("the grader failed on this submission: OSError: disk full")
    assert "Nobody." not in summary_markdown(summary) and "- **starter**: scored 0: not started" in summary_markdown(summary)


# -- LMS layouts ----------------------------------------------------------------------------------

def test_moodle_downloads_flat_and_in_folders_are_recognised_without_a_pattern_and_names_kept(tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    for module in GRADED_MODULES:
        (source / f"Minji Kim_12345_assignsubmission_file_{module}.py").write_bytes((SOLUTIONS / "autodiff" / f"{module}.py").read_bytes())
    folder = source / "José Álvarez_67890_assignsubmission_file_" / "autodiff"
    folder.mkdir(parents=True)
    (folder / "ops.py").write_bytes((SOLUTIONS / "autodiff" / "ops.py").read_bytes())
    (source / "smith_john_55555_777_ops.py").write_text("x = 1\n")  # Canvas, in the same folder
    (source / "doe_jane_late_24680_778_ops.py").write_text("x = 1\n")  # Canvas's late mark, not a part of her name
    roster = discover(source, tmp_path / "staging")
    assert [(s.id, s.name) for s in roster.students] == [("12345", "Minji Kim"), ("24680", "doe jane"), ("55555", "smith john"),
                                                         ("67890", "José Álvarez")]
    assert sorted(p.name for p in roster.students[0].path.iterdir()) == sorted(f"{m}.py" for m in GRADED_MODULES)
    assert (roster.students[3].path / "autodiff" / "ops.py").is_file()
    assert roster.unmatched == []


# -- Canvas and Moodle exports --------------------------------------------------------------------

CANVAS_EXPORT = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Autodiff (4242)", "Assignments Current Score",
     "Current Score", "Final Score"],
    ["    Points Possible", "", "", "", "", "100.00", "(read only)", "(read only)", "(read only)"],
    ["    Manual Posting", "", "", "", "", "Manual Posting", "", "", ""],
    ["Kim, Minji", "12345", "S001", "mkim", "CS 101 A", "", "80.00", "80.00", "80.00"],
    ["Doe, Jane", "67890", "S002", "jdoe", "CS 101 A", "12.00", "12.00", "12.00", "12.00"],
    ["Student, Test", "99999", "", "testing", "CS 101 A", "", "", "", ""],
]


def write_csv(path, rows, bom=True):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as file:
        return list(csv.reader(file))


def test_canvas_export_round_trip_keeps_every_column_and_row_and_fills_one_assignment_column(tmp_path):
    export = write_csv(tmp_path / "export.csv", CANVAS_EXPORT)
    filled = fill_canvas(export, tmp_path / "canvas-import.csv", {"12345": 96.67, "24680": 50}, 100)
    written = read_csv(tmp_path / "canvas-import.csv")
    column = CANVAS_EXPORT[0].index("Autodiff (4242)")
    assert len(written) == len(CANVAS_EXPORT) and all(len(row) == len(CANVAS_EXPORT[0]) for row in written)
    for before, after in zip(CANVAS_EXPORT, written, strict=True):
        assert [c for i, c in enumerate(after) if i != column] == [c for i, c in enumerate(before) if i != column]
    assert [row[column] for row in written] == ["Autodiff (4242)", "100.00", "Manual Posting", "96.67", "", ""]
    assert (filled.not_in_export, filled.without_submission) == (["24680"], ["67890", "99999"])
    assert filled.names["12345"] == "Kim, Minji"
    assert (tmp_path / "canvas-import.csv").read_bytes().startswith(b"\xef\xbb\xbfStudent,ID,")  # as Canvas wrote it
    fill_canvas(export, tmp_path / "zeros.csv", {"12345": 96.67}, 100, missing_as_zero=True)
    assert [row[column] for row in read_csv(tmp_path / "zeros.csv")][3:] == ["96.67", "0", "0"]


def several_assignments(tmp_path):
    """CANVAS_EXPORT with a second assignment column, Quiz 1, and its columns in another order."""
    rows = [row[:6] + [extra] + row[6:] for row, extra in zip(CANVAS_EXPORT, ["Quiz 1 (77)", "10.00", "", "9", "8", ""], strict=True)]
    return write_csv(tmp_path / "export.csv", [[row[i] for i in (8, 0, 4, 1, 2, 3, 5, 6, 7, 9)] for row in rows])  # any order


def test_canvas_export_gets_a_new_column_in_canvas_name_form_only_when_asked_for_by_name(tmp_path):
    export = several_assignments(tmp_path)
    fill_canvas(export, tmp_path / "out.csv", {"S002": 88}, 100, new_assignment="Homework 3", match="sis-user-id")
    written = read_csv(tmp_path / "out.csv")
    column = written[0].index("Homework 3")
    assert [row[column] for row in written] == ["Homework 3", "100", "", "", "88", ""]
    assert [row[:column] + row[column + 1:] for row in written] == read_csv(export)
    with pytest.raises(LMSError, match="has no assignment column 'Homework 3' .*--canvas-new-assignment 'Homework 3'"):
        fill_canvas(export, tmp_path / "typo.csv", {}, 100, assignment="Homework 3")  # a name it lacks: no new column
    with pytest.raises(LMSError, match="already has a column 'Quiz 1 \\(77\\)': fill it with --canvas-assignment"):
        fill_canvas(export, tmp_path / "twice.csv", {}, 100, new_assignment="Quiz 1")
    with pytest.raises(LMSError, match="not a Canvas gradebook export"):
        fill_canvas(write_csv(tmp_path / "other.csv", [["name", "score"]]), tmp_path / "x.csv", {}, 100)
    assert not any((tmp_path / name).exists() for name in ("typo.csv", "twice.csv", "x.csv"))


def test_canvas_export_with_several_assignments_and_none_named_is_refused_with_their_names(tmp_path):
    """It once got a new Autodiff column, which Canvas imports as a new assignment, without a word."""
    with pytest.raises(LMSError) as refused:
        fill_canvas(several_assignments(tmp_path), tmp_path / "out.csv", {"12345": 7}, 100)
    assert str(refused.value) == (f"{tmp_path / 'export.csv'} has 2 assignment columns ('Autodiff (4242)', 'Quiz 1 (77)'): "
                                  "name the one to fill with --canvas-assignment, or add a new one with --canvas-new-assignment NAME")
    no_assignment = write_csv(tmp_path / "none.csv", [row[:5] + row[6:] for row in CANVAS_EXPORT])
    with pytest.raises(LMSError, match="has no assignment column: add one with --canvas-new-assignment NAME"):
        fill_canvas(no_assignment, tmp_path / "out.csv", {}, 100)
    assert not (tmp_path / "out.csv").exists()


def test_canvas_assignment_named_by_its_name_or_with_its_id(tmp_path):
    export = write_csv(tmp_path / "export.csv", CANVAS_EXPORT)
    for name in ("Autodiff", "Autodiff (4242)"):
        filled = fill_canvas(export, tmp_path / "out.csv", {"12345": 1}, 100, assignment=name)
        assert filled.column == "Autodiff (4242)" and len(read_csv(tmp_path / "out.csv")[0]) == len(CANVAS_EXPORT[0])


def test_moodle_grading_worksheet_gets_its_grade_column_filled_by_participant_number(tmp_path):
    worksheet = [["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
                  "Last modified (submission)", "Last modified (grade)", "Feedback comments"],
                 ["Participant 12345", "Minji Kim", "m@example.org", "Submitted for grading", "", "100.00", "Yes", "x", "-", ""],
                 ["Participant 222", "Lee Joon", "j@example.org", "No submission", "", "100.00", "Yes", "-", "-", ""]]
    path = write_csv(tmp_path / "worksheet.csv", worksheet, bom=False)
    filled = fill_moodle(path, tmp_path / "moodle-import.csv", {"12345": 72.5, "999": 3})
    written = read_csv(tmp_path / "moodle-import.csv")
    assert [row[4] for row in written] == ["Grade", "72.5", ""]
    assert [row[:4] + row[5:] for row in written] == [row[:4] + row[5:] for row in worksheet]
    assert filled.not_in_export == ["999"] and filled.names == {"12345": "Minji Kim", "222": "Lee Joon"}
    assert (tmp_path / "moodle-import.csv").read_bytes().startswith(b"Identifier,")  # written as the worksheet was: no BOM


# -- regrade diff -----------------------------------------------------------------------------------

def test_diff_names_who_moved_by_how_much_which_checks_flipped_and_why(tmp_path):
    def report(score, mul, rubric="r1", version="1.0.0", sha="s"):
        return {"status": "graded", "score": score, "grader": {"rubric_sha256": rubric, "version": version, "isolation": "process"},
                "submission": {"sha256": sha}, "tests": [{"name": "Mul · forward", "status": mul, "score": 8 if mul == "passed" else 0,
                                                          "max_score": 8}]}
    old = {"alice": report(100, "passed"), "bob": report(92, "failed"), "carol": report(50, "failed"), "dan": report(10, "failed")}
    new = {"alice": report(92, "failed", rubric="r2"), "bob": report(100, "passed", sha="t"), "carol": report(50, "failed"),
           "erin": report(70, "passed")}
    rows = compare(old, new)
    assert [(r["student"], r["old"], r["new"], r["change"]) for r in rows] == \
        [("alice", 100, 92, -8), ("bob", 92, 100, 8), ("dan", 10, None, None), ("erin", None, 70, None)]
    assert rows[0]["why"] == ["rubric changed"] and rows[1]["why"] == ["submission changed"]
    assert rows[0]["flipped"] == ["Mul · forward: passed 8/8 → failed 0/8"]
    text = write_diff(tmp_path, rows, "old", "new")
    assert "4 students changed: 1 gained points, 1 lost points." in text
    assert "1 student changed: 0 gained points, 1 lost points." in write_diff(tmp_path, rows[:1], "old", "new")
    assert read_csv(tmp_path / "diff.csv")[1] == ["alice", "100", "92", "-8", "Mul · forward: passed 8/8 → failed 0/8", "rubric changed"]


# -- similarity ----------------------------------------------------------------------------------------

def test_planted_copies_rank_above_every_honest_pair_and_the_starter_alone_is_not_similarity(tmp_path):
    paths, planted = similarity_speed.build_class(tmp_path, 16, seed=5)
    from grader.classroom.similarity import submission_code

    results, _ = compare_class({s: submission_code(p) for s, p in paths.items()}, starter_code())
    top = [sorted([a, b]) for a, b, *_ in results[:len(planted)]]
    assert sorted(top) == sorted(planted)
    assert all(0 <= score <= 1 for *_, score in results)
    assert next(score for a, b, score in results if (a, b) == ("starter_only_1", "starter_only_2")) < 0.1
    assert json.dumps(results)  # plain numbers, for similarity.json


def test_diff_reads_the_native_reports_of_a_batch_output_whatever_the_ids(tmp_path):
    from grader.classroom.diff import load_reports

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "j.doe.json").write_text(json.dumps({"student": "j.doe", "score": 1}))
    (tmp_path / "reports" / "j.doe.gradescope.json").write_text(json.dumps({"score": 1, "tests": []}))
    (tmp_path / "reports" / ".j.doe.json.x1.tmp").write_text("{")
    assert load_reports(tmp_path) == {"j.doe": {"student": "j.doe", "score": 1}}


# -- Canvas's API (optional), against a stand-in server on loopback -------------------------------

class CanvasStandIn:
    """The three Canvas API calls an upload makes, answered on 127.0.0.1; the requests it got are kept."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def reply(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                received.append(("GET", self.path, self.headers["Authorization"], None))
                self.reply({"id": 4242, "course_id": 101, "name": "Autodiff"} if "/assignments/" in self.path else {"id": 101})

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                received.append(("POST", self.path, self.headers["Authorization"], form))
                self.reply({"id": 7, "workflow_state": "queued", "url": "http://127.0.0.1/api/v1/progress/7"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_canvas_upload_posts_every_score_in_one_bulk_update_with_the_token_from_the_environment(tmp_path, monkeypatch, capsys):
    from grader.cli import main

    (tmp_path / "reports").mkdir()
    for student, score in (("12345", 96.67), ("67890", 48)):
        (tmp_path / "reports" / f"{student}.json").write_text(json.dumps({"student": student, "status": "graded", "score": score}))
    canvas = CanvasStandIn()
    try:
        monkeypatch.setenv("CANVAS_TOKEN", "secret-token")
        assert main(["canvas-upload", str(tmp_path), "--url", canvas.url, "--course", "101", "--assignment", "4242"]) == 0
    finally:
        canvas.close()
    assert [(method, path, auth) for method, path, auth, _ in canvas.received] == [
        ("GET", "/api/v1/courses/101", "Bearer secret-token"),
        ("GET", "/api/v1/courses/101/assignments/4242", "Bearer secret-token"),
        ("POST", "/api/v1/courses/101/assignments/4242/submissions/update_grades", "Bearer secret-token")]
    assert canvas.received[-1][3] == {"grade_data[12345][posted_grade]": ["96.67"], "grade_data[67890][posted_grade]": ["48"]}
    assert "2 grades sent to assignment 4242; Canvas's progress: queued" in capsys.readouterr().out


def test_canvas_upload_refuses_without_a_token_or_with_ids_that_are_not_canvas_ids(tmp_path, monkeypatch, capsys):
    from grader.cli import main

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "alice.json").write_text(json.dumps({"student": "alice", "status": "graded", "score": 1}))
    monkeypatch.delenv("CANVAS_TOKEN", raising=False)
    arguments = ["canvas-upload", str(tmp_path), "--url", "http://127.0.0.1:9", "--course", "1", "--assignment", "2"]
    assert main(arguments) == 1 and "set CANVAS_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("CANVAS_TOKEN", "t")
    assert main(arguments) == 1 and "not Canvas user ids (grade a Canvas download for these): alice" in capsys.readouterr().err
