"""Grading a class (`grader batch`): the layouts an instructor has, resuming without redoing or
losing work, one bad submission costing one row, a gradebook that does not depend on how many runs
(or kills) it took, and the same results on a Dask cluster.

Most tests copy one class graded once per module (`graded_class`) and rerun the batch on the copy."""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from grader import DEFAULT_RUBRIC, GRADED_MODULES
from grader import report as report_module
from grader.classroom import batch as batch_module
from grader.classroom.batch import run_batch
from grader.classroom.diff import load_reports
from grader.classroom.roster import discover
from grader.cli import main
from grader.report import build_report, write_atomically
from grader.results import CaseResult, Raised, Wrong
from grader.rubric import PLACEHOLDER_SALT, load_rubric, read_secret
from grader.sandbox.levels import level_available
from grader.submission import load_submission
from tests.support.grading import FAST_RUBRIC, all_passed, fast_rubric_text, reference_copy
from tests.support.paths import ROOT, SOLUTIONS

pytestmark = pytest.mark.slow  # every test here grades whole submissions
# The tests of the class graded once (graded_class) run in one test process, which grades it once.
CLASS_GRADED_ONCE = pytest.mark.xdist_group("class")

WRONG_MUL = ("        return a * b\n", "        return a * b + 1.0\n")
GROUPS = list(dict.fromkeys(group for group, _ in FAST_RUBRIC.points))
HEADER = ["student_id", "name", "total", *GROUPS, "status", "problem"]
CLASS = ["12345", "alice", "bob"]  # carol's LMS files are graded under her id, 12345


def batch(source, out, rubric=FAST_RUBRIC, **options):
    """run_batch with the fast rubric, two at once and no progress bar: (roster, graded, kept)."""
    roster, graded, kept, unwritten = run_batch(source, out, rubric, **{"jobs": 2, "progress": False, **options})
    assert unwritten == {}
    return roster, graded, kept


def zip_of(folder, archive, prefix=""):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                zipped.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def lms_files(folder, prefix, modules=GRADED_MODULES, rename=lambda module: f"{module}.py"):
    """The reference's graded modules as an LMS download names them: prefix + file name."""
    for module in modules:
        shutil.copyfile(SOLUTIONS / "autodiff" / f"{module}.py", Path(folder) / f"{prefix}{rename(module)}")


def gradebook(out):
    with open(Path(out) / "gradebook.csv", newline="", encoding="utf-8-sig") as file:
        return list(csv.DictReader(file))


def rows(out):
    return {row["student_id"]: row for row in gradebook(out)}


def report_stamps(out):
    """{report file name: (mtime in ns, bytes)}: what an untouched report keeps."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((Path(out) / "reports").iterdir())}


# -- the class graded once ------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """alice: the reference as a folder; bob: the reference with a wrong Mul.forward, zipped;
    carol (id 12345): the reference as Canvas files, late, one resubmitted; two stray files."""
    root = tmp_path_factory.mktemp("class")
    source = root / "submissions"
    source.mkdir()
    reference_copy(source / "alice")
    zip_of(reference_copy(root / "bob", {"ops": [WRONG_MUL]}), source / "bob.zip")
    lms_files(source, "carol_12345_67890_", ["ops", "activations"])
    lms_files(source, "carol_late_12345_67891_", ["losses", "regularizers"], rename=lambda m: f"{m}-1.py")
    (source / "notes.txt").write_text("grade these by Friday")
    (source / "photo.png").write_bytes(b"\x89PNG")
    _, graded, kept = batch(source, root / "out")
    assert (graded, kept) == (CLASS, [])
    return source, root / "out"


@pytest.fixture
def class_copy(graded_class, tmp_path):
    """A copy of the graded class and its output, elsewhere: rerunning on it changes nothing shared."""
    source, out = graded_class
    shutil.copytree(source, tmp_path / "submissions")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "submissions", tmp_path / "out"


# -- layouts ----------------------------------------------------------------------------------

def test_folders_zips_and_notebooks_are_one_student_each(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob.zip").write_bytes(b"")
    (tmp_path / "carol.ipynb").write_text("{}")
    (tmp_path / "syllabus.pdf").write_bytes(b"%PDF")
    roster = discover(tmp_path, tmp_path.parent / "staging")
    assert [(s.id, s.path.name) for s in roster.students] == [("alice", "alice"), ("bob", "bob.zip"),
                                                              ("carol", "carol.ipynb")]
    assert roster.unmatched == ["syllabus.pdf"]


def test_lms_files_are_grouped_by_student_id_with_late_and_resubmission_marks_dropped(tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    lms_files(source, "smith_john_12345_67890_", ["ops", "activations"])
    lms_files(source, "smith_john_12345_67891_", ["losses"], rename=lambda m: f"{m}-1.py")
    lms_files(source, "doe_late_67890_11111_", ["ops"])
    roster = discover(source, tmp_path / "staging")
    assert [s.id for s in roster.students] == ["12345", "67890"]
    smith, doe = roster.students
    assert (smith.name, doe.name) == ("smith john", "doe")  # "late" is Canvas's mark, not a part of the name
    assert sorted(p.name for p in smith.path.iterdir()) == ["activations.py", "losses.py", "ops.py"]
    assert (smith.path / "losses.py").read_bytes() == (SOLUTIONS / "autodiff" / "losses.py").read_bytes()
    assert [p.name for p in doe.path.iterdir()] == ["ops.py"]
    assert roster.unmatched == []


def test_a_zip_of_the_class_folder_is_unpacked_and_its_top_folder_entered(tmp_path):
    source = tmp_path / "download"
    reference_copy(source / "alice")
    source.joinpath("bob.ipynb").write_text("{}")
    lms_files(source, "smith_12345_67890_", ["ops"])
    roster = discover(zip_of(source, tmp_path / "class.zip", prefix="export/"), tmp_path / "staging")
    assert [s.id for s in roster.students] == ["12345", "alice", "bob"]
    assert all((tmp_path / "staging") in s.path.parents for s in roster.students)
    assert (roster.students[1].path / "autodiff" / "ops.py").is_file()


def test_a_custom_id_pattern_names_the_students(tmp_path):
    lms_files(tmp_path, "s001-", ["ops", "losses"])
    lms_files(tmp_path, "s002-", ["ops"])
    roster = discover(tmp_path, tmp_path / ".staging", pattern=r"^(?P<id>s\d+)-(?P<file>.+)$")
    assert [(s.id, sorted(p.name for p in s.path.iterdir())) for s in roster.students] == \
        [("s001", ["losses.py", "ops.py"]), ("s002", ["ops.py"])]


def test_an_id_pattern_without_an_id_group_is_refused_with_a_message(tmp_path, capsys):
    (tmp_path / "class").mkdir()
    lms_files(tmp_path / "class", "s001-", ["ops"])
    status = main(["batch", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--rubric", FAST_RUBRIC.path,
                   "--id-pattern", r"^(?P<student>s\d+)-(?P<file>.+)$"])
    assert status == 1
    assert "group named 'id'" in capsys.readouterr().err


@CLASS_GRADED_ONCE
def test_files_that_fit_no_layout_are_listed_as_unmatched_in_the_summary(graded_class):
    _, out = graded_class
    assert json.loads((out / "summary.json").read_text())["unmatched_files"] == ["notes.txt", "photo.png"]
    summary = (out / "summary.md").read_text()
    assert "## Files that match no student\n\n- notes.txt\n- photo.png\n" in summary


# -- the gradebook ------------------------------------------------------------------------------

@CLASS_GRADED_ONCE
def test_gradebook_opens_as_csv_with_a_column_per_group_status_and_problem(graded_class):
    _, out = graded_class
    assert (out / "gradebook.csv").read_bytes().startswith(b"\xef\xbb\xbfstudent_id,")
    assert list(gradebook(out)[0]) == HEADER
    table = rows(out)
    assert list(table) == CLASS
    assert [(table[s]["total"], table[s]["Mul"], table[s]["status"], table[s]["problem"]) for s in CLASS] == \
        [("100", "8", "graded", ""), ("100", "8", "graded", ""), ("95.5", "3.5", "graded", "")]


@CLASS_GRADED_ONCE
def test_summary_counts_the_class_and_names_the_check_most_failed(graded_class):
    _, out = graded_class
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["count"], summary["mean"], summary["median"]) == (3, 98.5, 100)
    assert summary["most_failed_checks"] == [{"check": f"Mul · {kind}", "students": 1} for kind in ("forward", "robustness", "scale", "search")]
    assert summary["needs_a_human_look"] == []
    assert (out / "score_histogram.png").read_bytes().startswith(b"\x89PNG")


# -- resuming -------------------------------------------------------------------------------------

@CLASS_GRADED_ONCE
def test_rerun_grades_nothing_and_leaves_every_report_untouched(class_copy):
    source, out = class_copy
    before, book = report_stamps(out), (out / "gradebook.csv").read_bytes()
    _, graded, kept = batch(source, out)
    assert (graded, kept) == ([], CLASS)
    assert report_stamps(out) == before
    assert (out / "gradebook.csv").read_bytes() == book


@pytest.mark.skipif(not level_available("namespace"), reason="namespace isolation needs root, bubblewrap and the sandbox runtime")
@CLASS_GRADED_ONCE
def test_a_report_graded_at_another_isolation_level_is_regraded(class_copy):
    source, out = class_copy
    _, graded, _ = batch(source, out, isolation="namespace")
    assert graded == CLASS


@CLASS_GRADED_ONCE
def test_html_writes_a_page_per_student_and_an_index_linking_them(class_copy):
    source, out = class_copy
    batch(source, out, html=True)
    assert sorted(p.name for p in (out / "html").iterdir()) == ["12345.html", "alice.html", "bob.html", "index.html"]
    index = (out / "html" / "index.html").read_text()
    assert all(f"href='{student}.html'" in index for student in CLASS)
    assert "Mul · forward" in (out / "html" / "bob.html").read_text()


@CLASS_GRADED_ONCE
def test_gradebook_keeps_the_name_the_lms_file_names_give(graded_class):
    assert {s: r["name"] for s, r in rows(graded_class[1]).items()} == {"12345": "carol", "alice": "", "bob": ""}


@CLASS_GRADED_ONCE
def test_reveal_after_the_due_date_makes_pages_and_gradebook_agree(class_copy):
    source, out = class_copy
    batch(source, out, html=True)
    assert "<p class='score'>98 / 98</p>" not in (out / "html" / "bob.html").read_text()  # robustness held back
    _, graded, _ = batch(source, out, html=True, reveal="after_due_date")
    assert graded == []
    for student, row in rows(out).items():
        assert f"<p class='score'>{row['total']} / 100</p>" in (out / "html" / f"{student}.html").read_text()


def test_make_batch_writes_the_pages():
    recipe = subprocess.run(["make", "-n", "batch", "SUBMISSIONS=class"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    assert ".venv/bin/autodiff-grader batch class --out build/batch --html --reveal visible" in recipe


@CLASS_GRADED_ONCE
def test_canvas_export_is_filled_on_a_rerun_and_submissions_not_in_it_are_listed(class_copy, capsys):
    source, out = class_copy
    export = out.parent / "export.csv"
    export.write_text("\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Autodiff (4242),Current Score\r\n"
                      "    Points Possible,,,,,100.00,(read only)\r\n"
                      '"Carol, C",12345,S1,carol,A,,50\r\n"Dave, D",777,S2,dave,A,,40\r\n', encoding="utf-8")
    assert main(["batch", str(source), "--out", str(out), "--rubric", FAST_RUBRIC.path, "--isolation", "process",
                 "--canvas-export", str(export)]) == 0
    assert f"canvas-import.csv: {out / 'canvas-import.csv'}" in capsys.readouterr().out
    with open(out / "canvas-import.csv", newline="", encoding="utf-8-sig") as file:
        assert list(csv.reader(file)) == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Autodiff (4242)", "Current Score"],
                                          ["    Points Possible", "", "", "", "", "100.00", "(read only)"],
                                          ["Carol, C", "12345", "S1", "carol", "A", "100", "50"],
                                          ["Dave, D", "777", "S2", "dave", "A", "", "40"]]
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert [n for n in notes if "not in the canvas export" in n] == \
        ["alice: graded, but not in the canvas export (not in canvas-import.csv)",
         "bob: graded, but not in the canvas export (not in canvas-import.csv)"]
    assert rows(out)["12345"]["name"] == "carol"  # the file names' own, kept


@CLASS_GRADED_ONCE
def test_similarity_ranks_the_class_and_writes_a_page_per_flagged_pair(class_copy, capsys):
    _, out = class_copy
    assert main(["similarity", str(out)]) == 0
    result = json.loads((out / "similarity.json").read_text())
    assert [(p["a"], p["b"]) for p in result["pairs"]][0] == ("12345", "alice")  # both the reference, to the byte
    assert [p["score"] for p in result["pairs"]] == sorted((p["score"] for p in result["pairs"]), reverse=True)
    assert all(0 <= p["score"] <= 1 for p in result["pairs"]) and result["pairs"][0]["score"] > 0.9
    assert "<mark>" in (out / "similarity" / "12345--alice.html").read_text()
    assert "12345, alice" in (out / "similarity" / "index.html").read_text()
    assert "12345 and alice" in capsys.readouterr().out


@CLASS_GRADED_ONCE
def test_a_rerun_after_a_rubric_edit_prints_whose_score_moved_and_why(class_copy, capsys):
    source, out = class_copy
    edited = out.parent / "rubric.toml"
    text = Path(FAST_RUBRIC.path).read_text()
    edited.write_text(text.replace("Mul              = { forward = 2, backward = 3,", "Mul              = { forward = 4, backward = 1,"))
    assert load_rubric(edited).points[("Mul", "forward")] == 4
    assert main(["batch", str(source), "--out", str(out), "--rubric", str(edited), "--isolation", "process"]) == 0
    printed = capsys.readouterr().out
    assert "# Regrade: previous → this run\n\n1 student changed: 0 gained points, 1 lost points." in printed
    assert "| bob | 95.5 | 93.5 | -2 | rubric changed |  |" in printed  # Mul.forward was failed and still is: no flip
    assert main(["diff", str(out / "previous"), str(out), "--out", str(out.parent / "regrade")]) == 0
    with open(out.parent / "regrade" / "diff.csv", newline="", encoding="utf-8-sig") as file:
        assert list(csv.reader(file))[1:] == [["bob", "95.5", "93.5", "-2", "", "rubric changed"]]


@CLASS_GRADED_ONCE
def test_force_regrades_every_submission(class_copy):
    source, out = class_copy
    before, book = report_stamps(out), (out / "gradebook.csv").read_bytes()
    _, graded, kept = batch(source, out, force=True)
    assert (graded, kept) == (CLASS, [])
    assert all(report_stamps(out)[name][0] != stamp[0] for name, stamp in before.items())
    assert (out / "gradebook.csv").read_bytes() == book


@CLASS_GRADED_ONCE
def test_only_regrades_the_named_student(class_copy):
    source, out = class_copy
    before = report_stamps(out)
    _, graded, kept = batch(source, out, only={"bob"})
    assert (graded, kept) == (["bob"], ["12345", "alice"])
    after = report_stamps(out)
    assert after["bob.json"][0] != before["bob.json"][0]
    assert {n: s for n, s in after.items() if n != "bob.json"} == {n: s for n, s in before.items() if n != "bob.json"}


@CLASS_GRADED_ONCE
def test_only_naming_nobody_in_the_class_is_refused(class_copy):
    with pytest.raises(ValueError, match="--only names no submission: zed"):
        batch(*class_copy, only={"zed"})


@CLASS_GRADED_ONCE
def test_an_edited_submission_is_regraded_and_the_others_kept(class_copy):
    source, out = class_copy
    ops = source / "alice" / "autodiff" / "ops.py"
    ops.write_text(ops.read_text().replace(*WRONG_MUL))
    before = report_stamps(out)
    _, graded, _ = batch(source, out)
    assert graded == ["alice"]
    assert rows(out)["alice"]["total"] == "95.5"
    assert {n: s for n, s in report_stamps(out).items() if n != "alice.json"} == \
        {n: s for n, s in before.items() if n != "alice.json"}


@CLASS_GRADED_ONCE
def test_a_report_from_another_grader_version_is_regraded(class_copy):
    source, out = class_copy
    report = json.loads((out / "reports" / "bob.json").read_text())
    report["grader"]["version"] = "0.9.0"
    (out / "reports" / "bob.json").write_text(json.dumps(report))
    assert batch(source, out)[1] == ["bob"]


@CLASS_GRADED_ONCE
def test_gradescope_reports_asked_for_on_a_rerun_are_written_without_regrading(class_copy):
    source, out = class_copy
    _, graded, _ = batch(source, out, formats=("native", "gradescope"))
    assert graded == []
    for student in CLASS:
        native = json.loads((out / "reports" / f"{student}.json").read_text())
        assert json.loads((out / "reports" / f"{student}.gradescope.json").read_text())["score"] == native["score"]


@CLASS_GRADED_ONCE
def test_gradebook_after_deleting_reports_and_resuming_is_byte_identical(graded_class, class_copy):
    source, out = class_copy
    for student in ("12345", "bob"):
        (out / "reports" / f"{student}.json").unlink()
    (out / "gradebook.csv").unlink()
    _, graded, _ = batch(source, out)
    assert graded == ["12345", "bob"]
    for name in ("gradebook.csv", "summary.json", "summary.md"):
        assert (out / name).read_bytes() == (graded_class[1] / name).read_bytes(), name


def processes_under(folder):
    """Processes whose working directory is inside folder (a grading's leftover workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@CLASS_GRADED_ONCE
def test_batch_killed_midway_resumes_to_the_same_gradebook_without_redoing_finished_reports(graded_class, tmp_path):
    source = shutil.copytree(graded_class[0], tmp_path / "submissions")
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "grader", "batch", str(source), "--out", str(out), "--jobs", "1",
               "--rubric", FAST_RUBRIC.path, "--isolation", "process"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "TMPDIR": str(scratch)}, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("reports/*.json")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for pid in processes_under(scratch):  # sandboxed workers run in sessions of their own
            os.kill(pid, signal.SIGKILL)
    finished = report_stamps(out)
    assert 1 <= len(finished) < len(CLASS), "the kill did not land midway"
    _, graded, kept = batch(source, out)
    assert sorted(f"{s}.json" for s in kept) == sorted(finished)
    assert len(graded) == len(CLASS) - len(finished)
    assert {name: report_stamps(out)[name] for name in finished} == finished
    assert (out / "gradebook.csv").read_bytes() == (graded_class[1] / "gradebook.csv").read_bytes()


# -- a rerun's output agrees with itself -------------------------------------------------------

def graded_at_once(monkeypatch):
    """Grading as a stand-in that runs no check: each submission's report at once, every check failed (at 0)."""
    monkeypatch.setattr(batch_module, "grade", lambda path, rubric, isolation: build_report(
        load_submission(path), rubric, [CaseResult(group, kind, "-", "failed", "a stand-in", Wrong("a stand-in"), fraction=0.0)
                                        for group, kind in rubric.points],
        isolation, 1.0))


def canvas_export(folder, assignments=("Autodiff (4242)",)):
    """A Canvas export naming carol (12345), alice (her id is her folder's name) and dave, who handed nothing in."""
    path = Path(folder) / "export.csv"
    blanks = "," * len(assignments)
    path.write_text(f"\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,{','.join(assignments)}\r\n"
                    f"    Points Possible,,,,{',100' * len(assignments)}\r\n"
                    f'"Carol, C",12345,S1,carol,A{blanks}\r\n"Alice, A",alice,S2,alice,A{blanks}\r\n'
                    f'"Dave, D",777,S3,dave,A{blanks}\r\n', encoding="utf-8")
    return path


def batch_command(source, out, *options):
    return ["batch", str(source), "--out", str(out), "--rubric", FAST_RUBRIC.path, "--isolation", "process", *map(str, options)]


@CLASS_GRADED_ONCE
def test_a_regrade_replaces_every_derived_file_and_keeps_the_last_output_whole_in_previous(class_copy, monkeypatch, capsys):
    """Pages, the LMS file and Gradescope's reports of a run asked for them once stayed beside the
    next run's gradebook, with other numbers for the same student."""
    source, out = class_copy
    export = canvas_export(out.parent)
    assert main(batch_command(source, out, "--html", "--gradescope", "--canvas-export", export)) == 0
    last = {name: (out / name).read_bytes() for name in ("gradebook.csv", "canvas-import.csv", "html/bob.html")}
    graded_at_once(monkeypatch)
    capsys.readouterr()
    assert main(batch_command(source, out, "--only", "bob")) == 0  # bob's report replaced: 0 points now
    assert "1 student changed: 0 gained points, 1 lost points." in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["diff.csv", "diff.md", "gradebook.csv", "names.json", "previous", "reports",
                                                     "score_histogram.png", "staging", "summary.json", "summary.md"]
    assert sorted(p.name for p in (out / "reports").iterdir()) == ["12345.json", "alice.json", "bob.json"]
    assert {name: (out / "previous" / name).read_bytes() for name in last} == last
    assert (rows(out / "previous")["bob"]["total"], rows(out)["bob"]["total"]) == ("95.5", "0")
    with open(out / "diff.csv", newline="", encoding="utf-8-sig") as file:
        assert [row[:4] for row in csv.reader(file)][1:] == [["bob", "95.5", "0", "-95.5"]]  # the others did not move


@CLASS_GRADED_ONCE
def test_a_rerun_that_changes_no_report_still_leaves_nothing_it_was_not_asked_for(class_copy):
    source, out = class_copy
    batch(source, out, html=True, formats=("native", "gradescope"))
    _, graded, _ = batch(source, out)
    assert graded == [] and not (out / "html").exists() and not (out / "previous").exists()
    assert not list(out.glob("reports/*.gradescope.json"))


@CLASS_GRADED_ONCE
def test_the_gradebooks_names_are_every_name_ever_given_whichever_run_was_given_which(class_copy):
    source, out = class_copy
    names = {"12345": "carol", "alice": "Alice, A", "bob": ""}  # carol's file names first, then the export's
    assert main(batch_command(source, out, "--canvas-export", canvas_export(out.parent))) == 0
    assert {student: row["name"] for student, row in rows(out).items()} == names
    assert main(batch_command(source, out)) == 0  # without the export: its names are kept
    assert {student: row["name"] for student, row in rows(out).items()} == names


@CLASS_GRADED_ONCE
def test_a_report_whose_submission_left_the_class_leaves_the_output_with_the_rest_of_the_old_one(class_copy):
    """Its report stayed in reports/, where `grader diff`, `similarity` and `canvas-upload` read it, but
    not in the gradebook."""
    source, out = class_copy
    (source / "bob.zip").unlink()
    _, graded, kept = batch(source, out)
    assert (graded, kept) == ([], ["12345", "alice"])
    assert sorted(load_reports(out)) == sorted(rows(out)) == ["12345", "alice"]
    assert (out / "previous" / "reports" / "bob.json").is_file()
    with open(out / "diff.csv", newline="", encoding="utf-8-sig") as file:
        assert [(row[0], row[-1]) for row in csv.reader(file)][1:] == [("bob", "no report in the new grading")]


def test_a_class_of_folders_leaves_no_staging_folder_and_nothing_else_empty(tmp_path, monkeypatch):
    reference_copy(tmp_path / "class" / "alice")
    graded_at_once(monkeypatch)
    batch(tmp_path / "class", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["gradebook.csv", "reports", "score_histogram.png", "summary.json", "summary.md"]


def test_an_export_with_several_assignment_columns_and_none_chosen_stops_the_batch_before_it_grades(tmp_path, monkeypatch, capsys):
    reference_copy(tmp_path / "class" / "alice")
    export = canvas_export(tmp_path, ("Autodiff (4242)", "Quiz 1 (77)"))
    graded = []
    monkeypatch.setattr(batch_module, "grade", lambda path, rubric, isolation: graded.append(path))
    assert main(batch_command(tmp_path / "class", tmp_path / "out", "--canvas-export", export)) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"grader: cannot grade the batch: {export} has 2 assignment columns ('Autodiff (4242)', 'Quiz 1 (77)'): name the one "
        "to fill with --canvas-assignment, or add a new one with --canvas-new-assignment NAME")
    assert graded == [] and not (tmp_path / "out").exists()
    graded_at_once(monkeypatch)
    assert main(batch_command(tmp_path / "class", tmp_path / "out", "--canvas-export", export, "--canvas-new-assignment", "HW 3")) == 0
    with open(tmp_path / "out" / "canvas-import.csv", newline="", encoding="utf-8-sig") as file:
        assert [row[5:] for row in csv.reader(file)][:4] == [["Autodiff (4242)", "Quiz 1 (77)", "HW 3"], ["100", "100", "100"],
                                                              ["", "", ""], ["", "", "0"]]


# -- the course's secret salt ------------------------------------------------------------------

@pytest.fixture
def unsalted(tmp_path, monkeypatch):
    """The fast rubric without a salt, as the course's rubric ships, and where the course's secret is
    kept for this test: (the rubric's path, the secret's path), the secret not made yet."""
    path = tmp_path / "rubric.toml"
    path.write_text(fast_rubric_text(salt=None))
    secret = tmp_path / "keys" / "course-secret.txt"
    monkeypatch.setenv("AUTODIFF_COURSE_SECRET", str(secret))
    return path, secret


def test_the_first_official_batch_makes_the_courses_secret_and_every_regrade_reuses_it(tmp_path, unsalted, monkeypatch, capsys):
    rubric, secret = unsalted
    reference_copy(tmp_path / "class" / "alice")
    graded_at_once(monkeypatch)
    command = ["batch", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--rubric", str(rubric), "--isolation", "process"]
    assert main(command) == 0
    assert f"inputs: a new secret salt for this course, made and kept in {secret}: keep it" in capsys.readouterr().out
    salt = read_secret(secret)
    assert len(salt) >= 40 and not secret.stat().st_mode & 0o077  # random, and its owner's alone

    def graded_with():
        return json.loads((tmp_path / "out" / "reports" / "alice.json").read_text())["grader"]["rubric_sha256"]

    assert graded_with() == load_rubric(rubric).with_salt(salt).sha256 != load_rubric(rubric).sha256
    assert main(command) == 0  # the same secret: the same inputs, nothing to regrade
    printed = capsys.readouterr().out
    assert f"inputs: the course's secret salt, kept in {secret}" in printed and "0 graded now, 1 kept" in printed
    secret.unlink()  # rotated: new inputs, so every report is regraded
    assert main(command) == 0 and "1 graded now" in capsys.readouterr().out
    assert graded_with() == load_rubric(rubric).with_salt(read_secret(secret)).sha256 and read_secret(secret) != salt


def test_the_placeholder_salt_is_refused_for_a_batch_and_only_warned_about_for_one_grading(tmp_path, unsalted, monkeypatch, capsys):
    rubric, secret = unsalted
    rubric.write_text(rubric.read_text() + f'\n[inputs]\nsalt = "{PLACEHOLDER_SALT}"\n')
    alice = reference_copy(tmp_path / "class" / "alice")
    assert main(["batch", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--rubric", str(rubric)]) == 1
    assert f"inputs.salt is the placeholder {PLACEHOLDER_SALT!r}, the same for every course" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not secret.exists()
    from grader import cli

    monkeypatch.setattr(cli, "grade", lambda path, rubric, isolation: build_report(load_submission(path), rubric,
                                                                                 all_passed(rubric), isolation, 1.0))
    assert main(["grade", str(alice), "--out", str(tmp_path / "report.json"), "--rubric", str(rubric), "--isolation", "process"]) == 0
    assert "warning: the rubric's salt is the placeholder" in capsys.readouterr().err


def test_one_grading_uses_the_courses_secret_when_one_is_kept_and_never_makes_one(tmp_path, unsalted, monkeypatch, capsys):
    from grader import cli

    rubric, secret = unsalted
    monkeypatch.setattr(cli, "grade", lambda path, rubric, isolation: build_report(load_submission(path), rubric,
                                                                                 all_passed(rubric), isolation, 1.0))
    command = ["grade", str(reference_copy(tmp_path / "alice")), "--out", str(tmp_path / "report.json"), "--rubric", str(rubric),
               "--isolation", "process"]
    assert main(command) == 0 and not secret.exists()
    assert json.loads((tmp_path / "report.json").read_text())["grader"]["rubric_sha256"] == load_rubric(rubric).sha256
    secret.parent.mkdir()
    secret.write_text("# kept by the course\na course's secret\n")
    assert main(command) == 0 and f"inputs: the course's secret salt, kept in {secret}" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["grader"]["rubric_sha256"] == \
        load_rubric(rubric).with_salt("a course's secret").sha256


# -- atomic writes --------------------------------------------------------------------------------

@CLASS_GRADED_ONCE
def test_a_leftover_temporary_report_is_removed_and_never_read(class_copy):
    source, out = class_copy
    fake = json.loads((out / "reports" / "alice.json").read_text()) | {"score": 0, "status": "error"}
    leftover = out / "reports" / ".alice.json.k3j9x2.tmp"
    leftover.write_text(json.dumps(fake)[:-40])  # a write the kill cut short
    (out / "reports" / ".bob.json.q8w7e6.tmp").write_text(json.dumps(fake))
    (out / ".gradebook.csv.z1x2c3.tmp").write_text("half a gradebook")
    book = (out / "gradebook.csv").read_bytes()
    _, graded, _ = batch(source, out)
    assert graded == []
    assert sorted(p.name for p in out.rglob(".*.tmp")) == []
    assert (out / "gradebook.csv").read_bytes() == book


def test_a_failed_write_leaves_the_previous_file_whole_and_no_partial_file(tmp_path, monkeypatch):
    report = tmp_path / "reports" / "alice.json"
    write_atomically(report, '{"score": 100}\n')

    def interrupted(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(report_module.os, "replace", interrupted)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(report, '{"score": 0, "tests": [' + "1, " * 100_000 + "]}\n")
    with pytest.raises(OSError):
        write_atomically(tmp_path / "reports" / "bob.json", "{}\n")
    assert [p.name for p in report.parent.iterdir()] == ["alice.json"]
    assert report.read_text() == '{"score": 100}\n'


@CLASS_GRADED_ONCE
def test_a_report_that_cannot_be_written_costs_its_student_only(class_copy, monkeypatch, capsys):
    source, out = class_copy
    shutil.rmtree(out)
    real_write = batch_module.write_report

    def disk_full_for_bob(report, path, format="native"):
        if report["student"] == "bob":
            raise OSError(28, "No space left on device")
        real_write(report, path, format)

    monkeypatch.setattr(batch_module, "write_report", disk_full_for_bob)
    assert main(["batch", str(source), "--out", str(out), "--rubric", FAST_RUBRIC.path, "--isolation", "process"]) == 1
    assert "the report of bob could not be written" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "reports").iterdir()) == ["12345.json", "alice.json"]
    assert set(rows(out)) == {"12345", "alice"}


def test_a_file_size_limit_on_the_writer_leaves_no_truncated_report(tmp_path):
    """Disk full, simulated with RLIMIT_FSIZE on the process that writes: an error, and no file."""
    script = ("import resource, signal, sys\n"
              "from pathlib import Path\n"
              "from grader.report import write_atomically\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              f"write_atomically(Path({str(tmp_path / 'report.json')!r}), 'x' * 100_000)\n")
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode != 0 and "File too large" in completed.stderr
    assert list(tmp_path.iterdir()) == []


# -- one bad submission, one bad row -------------------------------------------------------------

HANG_IN_POW_BACKWARD = ("        a, b, y = ctx.saved_tensors\n",
                        "        a, b, y = ctx.saved_tensors\n        while True:\n            pass\n")
EXIT_IN_MUL_FORWARD = ("        return a * b\n", "        import os\n        os._exit(0)\n")
EXIT_AT_IMPORT = ("import numpy as np\n", "import os\nos._exit(0)\n")
MEMORY_BOMB_IN_MATMUL = ("        return np.matmul(a, b)\n",  # 8 TB: stopped at once by the worker's memory limit
                         "        hoard = np.ones(1 << 40)\n        return np.matmul(a, b)\n")


@pytest.mark.long  # a hang, a memory bomb, exits: each costs its timeout or a fresh worker
def test_crashing_hanging_memory_hungry_and_unreadable_submissions_each_cost_one_row(tmp_path):
    source = tmp_path / "class"
    reference_copy(source / "correct")
    reference_copy(source / "exit_at_import", {"ops": [EXIT_AT_IMPORT]})
    reference_copy(source / "exit_in_op", {"ops": [EXIT_IN_MUL_FORWARD]})
    reference_copy(source / "hang", {"ops": [HANG_IN_POW_BACKWARD]})
    reference_copy(source / "memory_bomb", {"ops": [MEMORY_BOMB_IN_MATMUL]})
    (source / "corrupt.zip").write_bytes(b"PK\x03\x04" + b"\x00 not really a zip" * 20)
    _, graded, _ = batch(source, tmp_path / "out", formats=("native", "gradescope"))
    assert len(graded) == 6
    table = rows(tmp_path / "out")
    assert {s: (r["status"], r["total"]) for s, r in table.items()} == {
        "correct": ("graded", "100"), "corrupt": ("unreadable", "0"), "exit_at_import": ("graded", "48"),
        "exit_in_op": ("graded", "92"), "hang": ("graded", "94"), "memory_bomb": ("graded", "72")}
    assert table["correct"]["problem"] == ""
    assert "corrupt.zip is not a readable zip archive" in table["corrupt"]["problem"]
    assert all(table["corrupt"][group] == "0" for group in GROUPS)
    assert table["exit_at_import"]["problem"] == \
        "ops.py could not be imported: stopped the worker: the worker exited with status 0 (did the code call sys.exit or os._exit?)"
    assert "error: Mul · forward" in table["exit_in_op"]["problem"]
    assert "timeout: Pow · backward" in table["hang"]["problem"]
    assert (table["memory_bomb"]["Matmul"], table["memory_bomb"]["MNIST"]) == ("0", "0")
    memory_bomb = json.loads((tmp_path / "out" / "reports" / "memory_bomb.json").read_text())
    matmul_forward = next(test for test in memory_bomb["tests"] if test["name"] == "Matmul · forward")
    assert "Matmul.forward raised MemoryError" in matmul_forward["output"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    needs_a_look = {item["student"] for item in summary["needs_a_human_look"]}
    assert {"corrupt", "exit_at_import", "exit_in_op", "hang"} <= needs_a_look
    failed_by = {item["check"]: item["students"] for item in summary["most_failed_checks"]}
    assert failed_by["Mul · forward"] == 1  # exit_in_op; exit_at_import is counted as its one cause; corrupt.zip ran no check
    assert summary["modules_not_imported"] == [{"module": "ops.py", "students": 1}]
    assert {p.name for p in (tmp_path / "out" / "reports").glob("*.gradescope.json")} == \
        {f"{student}.gradescope.json" for student in table}


# -- on a Dask cluster, and with the real rubric ---------------------------------------------------

@CLASS_GRADED_ONCE
def test_dask_cluster_gives_the_same_gradebook_as_local_threads(graded_class, tmp_path):
    distributed = pytest.importorskip("distributed")
    source = shutil.copytree(graded_class[0], tmp_path / "submissions")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        _, graded, _ = batch(source, tmp_path / "out", scheduler=cluster.scheduler_address)
    assert graded == CLASS
    for name in ("gradebook.csv", "summary.json"):
        assert (tmp_path / "out" / name).read_bytes() == (graded_class[1] / name).read_bytes(), name


@contextmanager
def documented_cluster(worker_prefix=()):
    """`dask scheduler` and one `dask worker` started as docs/course-staff.md says, on loopback;
    yields the scheduler's address; both ended (and waited for) afterwards, whatever happens."""
    distributed = pytest.importorskip("distributed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address, environment = f"tcp://127.0.0.1:{port}", dict(os.environ)
    installed = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import grader; print(grader.ROOT)"],
                               cwd="/", capture_output=True, text=True, check=False).stdout.strip()
    if installed != str(ROOT):  # a git worktree: the shared venv's editable install points at another checkout
        environment["PYTHONPATH"] = str(ROOT)
    dask = str(ROOT / ".venv" / "bin" / "dask")
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                [*worker_prefix, dask, "worker", address, "--host", "127.0.0.1", "--no-dashboard", "--nthreads", "1"]]
    processes = []
    try:
        for command in commands:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=environment, start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.mark.slow
@CLASS_GRADED_ONCE
def test_documented_dask_scheduler_and_worker_grade_the_class_as_local_threads_do(graded_class, tmp_path):
    source = shutil.copytree(graded_class[0], tmp_path / "submissions")
    with documented_cluster() as address:
        _, graded, _ = batch(source, tmp_path / "out", scheduler=address)
    assert graded == CLASS
    for name in ("gradebook.csv", "summary.json"):
        assert (tmp_path / "out" / name).read_bytes() == (graded_class[1] / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="hiding a folder from the worker needs root and unshare")
@CLASS_GRADED_ONCE
def test_a_dask_worker_that_cannot_see_the_submissions_grades_them_from_their_bytes(graded_class, tmp_path):
    distributed = pytest.importorskip("distributed")
    hidden = tmp_path / "hidden"
    source = shutil.copytree(graded_class[0], hidden / "submissions")
    # The worker sees an empty tmpfs where the class folder is: it only has what the tasks carry.
    cover = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(hidden)]
    with documented_cluster(cover) as address:
        with distributed.Client(address) as client:
            assert client.submit(os.path.exists, str(source / "alice"), pure=False).result(timeout=60) is False
        _, graded, _ = batch(source, tmp_path / "out", scheduler=address)
    assert graded == CLASS
    assert (tmp_path / "out" / "gradebook.csv").read_bytes() == (graded_class[1] / "gradebook.csv").read_bytes()
    remote, local = (json.loads((out / "reports" / "alice.json").read_text())["submission"] for out in (tmp_path / "out", graded_class[1]))
    assert remote["path"] == str(source / "alice")  # the instructor's path, not the worker's
    assert {k: v for k, v in remote.items() if k != "path"} == {k: v for k, v in local.items() if k != "path"}


@pytest.mark.slow
def test_a_moodle_download_is_graded_with_no_pattern_and_its_worksheet_filled(tmp_path, capsys):
    source = tmp_path / "download"
    source.mkdir()
    lms_files(source, "Minji Kim_12345_assignsubmission_file_")
    folder = source / "José Álvarez_67890_assignsubmission_file_"
    reference_copy(folder, {"ops": [WRONG_MUL]})
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text('Identifier,"Full name","Email address",Status,Grade,"Maximum Grade","Grade can be changed"\n'
                         'Participant 12345,Minji Kim,m@example.org,Submitted,,100.00,Yes\n'
                         'Participant 67890,José Álvarez,j@example.org,Submitted,,100.00,Yes\n'
                         'Participant 11111,Lee Joon,l@example.org,No submission,,100.00,Yes\n')
    out = tmp_path / "out"
    assert main(["batch", str(source), "--out", str(out), "--rubric", FAST_RUBRIC.path, "--isolation", "process",
                 "--moodle-worksheet", str(worksheet)]) == 0
    assert {s: (r["name"], r["total"]) for s, r in rows(out).items()} == {"12345": ("Minji Kim", "100"), "67890": ("José Álvarez", "95.5")}
    with open(out / "moodle-import.csv", newline="", encoding="utf-8") as file:
        assert [row[4] for row in csv.reader(file)] == ["Grade", "100", "95.5", ""]
    assert json.loads((out / "summary.json").read_text())["unmatched_files"] == []


def test_a_scheduler_out_of_reach_is_reported_in_one_line(tmp_path, capsys):
    dask = pytest.importorskip("dask")
    reference_copy(tmp_path / "class" / "alice")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(["batch", str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--rubric", FAST_RUBRIC.path,
                       "--scheduler", "tcp://127.0.0.1:1"])
    assert status == 1
    assert "grader: cannot grade the batch: Timed out trying to connect to tcp://127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.long  # MNIST's 5 epochs on 60,000 images
def test_reference_scores_100_in_a_batch_with_the_real_rubric(tmp_path):
    reference_copy(tmp_path / "class" / "reference")
    batch(tmp_path / "class", tmp_path / "out", rubric=load_rubric(DEFAULT_RUBRIC))
    row = rows(tmp_path / "out")["reference"]
    assert (row["total"], row["MNIST"], row["status"], row["problem"]) == ("100", "20", "graded", "")


# -- what student code said, in every string it controls ---------------------------------------------

HOSTILE = "\ud800 \x1b[2K\r\x1b[32mMul 8 / 8 passed\x1b[0m \u202e"  # a lone surrogate, terminal codes, a bidi override


def hostile_report(path, rubric, isolation="process"):
    """The report of a submission whose Mul raised an exception holding HOSTILE in its type name,
    message and traceback, after printing it: as the checks' results carry it to build_report."""
    from grader.report import build_report
    from grader.submission import load_submission

    frames = f"  File \"ops.py\", line 3, in forward\n    raise Bad{HOSTILE}Error('{HOSTILE}')"
    feedback = f"Mul.forward raised Bad{HOSTILE}Error: {HOSTILE}\n{frames}\nprinted: {HOSTILE}"
    case = CaseResult("Mul", "forward", f"Mul-{HOSTILE}", "error", feedback, Raised("forward", f"Bad{HOSTILE}Error", HOSTILE, frames),
                      fraction=0.0, seconds=0.1)
    return build_report(load_submission(path), rubric, all_passed(rubric, case), isolation, 1.0, messages=[f"worker log: {HOSTILE}"])


def test_a_batch_goes_on_past_a_report_full_of_what_student_code_said(tmp_path, monkeypatch):
    """Three students, the middle one's report holding a lone surrogate (which once crashed the
    writer, and the batch with it) and terminal codes: three reports, valid JSON, nothing raw."""
    source = tmp_path / "class"
    for student in ("alice", "bob", "carol"):
        reference_copy(source / student)
    from grader.report import build_report
    from grader.submission import load_submission

    def graded(path, rubric, isolation):
        if Path(path).name == "bob":
            return hostile_report(path, rubric, isolation)
        return build_report(load_submission(path), rubric, [], isolation, 1.0)

    monkeypatch.setattr(batch_module, "grade", graded)
    _, graded_ids, _ = batch(source, tmp_path / "out", formats=("native", "gradescope"), html=True)
    assert graded_ids == ["alice", "bob", "carol"]
    reports = tmp_path / "out" / "reports"
    assert sorted(p.name for p in reports.glob("*.json")) == sorted(
        f"{s}{suffix}.json" for s in ("alice", "bob", "carol") for suffix in ("", ".gradescope"))
    for path in reports.glob("bob*.json"):
        text = path.read_bytes().decode("utf-8")  # strict: a lone surrogate would not decode
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
        assert "\\\\x1b[32mMul 8 / 8 passed" in text  # shown, escaped (and JSON-escaped once more)
        json.loads(text)
    assert "\x1b" not in (tmp_path / "out" / "html" / "bob.html").read_text(encoding="utf-8")


class Escaped(BaseException):
    """Not an Exception: what `except Exception` lets through."""


@pytest.mark.parametrize("raised", [SystemExit(3), Escaped("out of the grader"), GeneratorExit()],
                         ids=["SystemExit", "a BaseException subclass", "GeneratorExit"])
def test_a_grading_that_raises_any_base_exception_costs_its_student_only(tmp_path, monkeypatch, raised):
    source = tmp_path / "class"
    for student in ("alice", "bob", "carol"):
        reference_copy(source / student)
    from grader.report import build_report
    from grader.submission import load_submission

    def graded(path, rubric, isolation):
        if Path(path).name == "bob":
            raise raised
        return build_report(load_submission(path), rubric, [], isolation, 1.0)

    monkeypatch.setattr(batch_module, "grade", graded)
    batch(source, tmp_path / "out")
    bob = json.loads((tmp_path / "out" / "reports" / "bob.json").read_text())
    assert bob["status"] == "error" and bob["score"] is None and "the grader failed on this submission" in bob["messages"][0]
    assert {p.name for p in (tmp_path / "out" / "reports").iterdir()} == {"alice.json", "bob.json", "carol.json"}


def test_the_terminal_table_shows_what_student_code_said_escaped(tmp_path, monkeypatch, capsys):
    from grader import cli

    monkeypatch.setattr(cli, "grade", hostile_report)
    assert cli.main(["grade", str(reference_copy(tmp_path / "bob")), "--out", str(tmp_path / "report.json"),
                     "--rubric", str(FAST_RUBRIC.path), "--isolation", "process"]) == 0
    shown = capsys.readouterr().out
    assert not any(c in shown for c in ("\x1b", "\r", "\u202e", "\ud800"))
    mul = next(line for line in shown.splitlines() if line.startswith("Mul "))
    assert mul.split()[1:5] == ["6", "/", "8", "failed"] and "\\x1b[32mMul 8 / 8 passed" in mul  # forward's 2 points lost; its state
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "graded" and "\ufffd" in report["messages"][0]
