"""Every command README.md, docs/course-staff.md and docs/platforms.md show, run as written from a
fresh clone, in a shell where nothing was activated, with the outcome the docs describe.

The commands are read from the docs (code blocks, and code spans that start with a command), not
listed here: a command added to the docs fails `test_every_documented_command_is_run_here` until
the first day below runs it. A template's placeholders (`SUBMISSIONS`, `…`, `[OPTION]`) are filled
with the files a course has on its first day: a Canvas download, its gradebook export, a Moodle
download and worksheet, a changed rubric. What cannot run inside the suite — the suite itself, the
measurements that take a quarter of an hour or more — is checked to the point where it would start
its work: its recipe resolves, each script it runs answers `--help`, each pytest it runs collects.
"""
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import GRADED_MODULES
from tests.support.paths import ROOT, SOLUTIONS

DOCUMENTS = ("README.md", "docs/course-staff.md", "docs/platforms.md")
# A command: optional VAR=value assignments, then a program, then at least one argument (a bare
# `make` or `.venv/bin/dask` in a sentence names the program; it is not a command to run).
COMMAND = re.compile(r"(?:[A-Z_]+=\S+ )*(?:make|\.venv/bin/[\w-]+|python3?|bash) \S.*")
# The shell of a fresh login where nothing was activated: no venv, no PYTHONPATH, no secret of the suite's.
SHELL = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def documented_commands():
    """{command as written: [documents]}: each line of a code block and each code span that is a
    command, with a line's trailing `# comment` and a span's line breaks taken out."""
    found = {}
    blocks = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for name in DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        lines = [line.split("  #")[0] for block in blocks.findall(text) for line in block.splitlines()]
        spans = re.findall(r"`([^`]+)`", blocks.sub("", text))
        for command in (" ".join(piece.split()) for piece in lines + spans):
            if COMMAND.fullmatch(command):
                found.setdefault(command, []).append(name)
    return found


@dataclass(frozen=True)
class Step:
    """One command of the first day: the documented commands it runs (as written in the docs), the
    shell line run (their placeholders filled), where (the clone, or the student's unzipped
    handout), its exit status (None: a server, left running), and `expect(ran)`, which asserts
    what the docs describe."""
    documented: tuple
    line: str
    expect: object = None
    status: int = 0
    where: str = "clone"


@dataclass(frozen=True)
class Ran:
    """What a step's expectation sees: its output, the folder it ran in, the batch's report stamps
    from before it, and the Canvas stand-in (what it received)."""
    output: str
    folder: Path
    reports_before: dict
    canvas: object


def csv_rows(path):
    with open(path, newline="", encoding="utf-8-sig") as file:
        return list(csv.DictReader(file))


def scores(out):
    return {row["student_id"]: row["total"] for row in csv_rows(Path(out) / "gradebook.csv")}


def stamps(out):
    """{report file: its modification time}: which reports a run wrote."""
    return {path.name: path.stat().st_mtime_ns for path in (Path(out) / "reports").glob("*.json")
            if not path.name.endswith(".gradescope.json")}


CANVAS_CLASS = {"12345": "kimminji_12345_67890_", "23456": "leejoon_late_23456_78901_"}  # bob: Mul's forward wrong
CLASS_SCORES = {"12345": "100", "23456": "95.5"}
MOODLE_CLASS = {"12345": "Minji Kim_12345_assignsubmission_file_", "23456": "Joon Lee_23456_assignsubmission_file_"}
WRONG_MUL = ("        return a * b\n", "        return a * b + 1.0\n")
CANVAS_EXPORT = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Autodiff (4242)"],
                 ["    Points Possible", "", "", "", "", "100.00"],
                 ["Kim, Minji", "12345", "S001", "mkim", "CS 101 A", ""],
                 ["Lee, Joon", "23456", "S002", "jlee", "CS 101 A", ""]]
MOODLE_WORKSHEET = ('Identifier,"Full name","Email address",Status,Grade,"Maximum Grade","Grade can be changed"\n'
                    'Participant 12345,Minji Kim,m@example.org,Submitted,,100.00,Yes\n'
                    'Participant 23456,Joon Lee,j@example.org,Submitted,,100.00,Yes\n')


def download(path, names):
    """An LMS download, zipped: each student's graded modules, named as the LMS names them."""
    with zipfile.ZipFile(path, "w") as archive:
        for student, prefix in names.items():
            for module in GRADED_MODULES:
                source = (SOLUTIONS / "autodiff" / f"{module}.py").read_text()
                if student == "23456" and module == "ops":
                    source = source.replace(*WRONG_MUL)
                archive.writestr(f"{prefix}{module}.py", source)


def course_files(clone):
    """What a course has on its first day, in the clone's root (as a TA would put them there)."""
    download(clone / "download.zip", CANVAS_CLASS)
    download(clone / "moodle-download.zip", MOODLE_CLASS)
    download(clone / "late.zip", {"23456": CANVAS_CLASS["23456"]})  # the one the cluster grades
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(CANVAS_EXPORT)
    (clone / "canvas-export.csv").write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")
    (clone / "worksheet.csv").write_text(MOODLE_WORKSHEET, encoding="utf-8")
    rubric = (clone / "grader" / "rubric.toml").read_text()
    old = "Mul              = { forward = 2, backward = 3,"
    assert rubric.count(old) == 1
    (clone / "new-rubric.toml").write_text(rubric.replace(old, "Mul              = { forward = 3, backward = 2,"))
    (clone / "noble-os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n')


# The outcomes the docs describe, one function per step, named after what it asserts.
def the_reference_scores_100(ran):
    report = json.loads((ran.folder / "build" / "report.json").read_text())
    assert (report["status"], report["score"]) == ("graded", 100), ran.output
    assert re.search(r"total\s+100 / 100", ran.output)


def the_venv_is_named_and_nothing_graded(ran):
    assert ".venv/bin/autodiff-grader grade" in ran.output and "make grade" in ran.output, ran.output
    assert not (ran.folder / "build" / "unpackaged.json").exists()


def a_gradescope_results_file_and_a_page_of_the_starter(ran):
    results = json.loads((ran.folder / "build" / "starter.json").read_text())
    assert results["score"] == 0 and results["tests"], ran.output
    assert "not started" in (ran.folder / "report.html").read_text(encoding="utf-8").lower()


def batch_usage_is_printed(ran):
    assert "usage: make batch SUBMISSIONS=folder-or-zip" in ran.output, ran.output


def the_class_is_graded_and_the_secret_made(ran):
    batch = ran.folder / "build" / "batch"
    assert scores(batch) == CLASS_SCORES, ran.output
    names = {row["student_id"]: row["name"] for row in csv_rows(batch / "gradebook.csv")}
    assert "late" not in names["23456"].lower(), names
    secret = ran.folder / "course-secret.txt"
    assert "made and kept in" in ran.output and stat.S_IMODE(secret.stat().st_mode) == 0o600, ran.output
    assert {"index.html", "12345.html", "23456.html"} <= {path.name for path in (batch / "html").iterdir()}


def nothing_is_regraded(ran):
    assert "the course's secret salt, kept in" in ran.output, ran.output
    assert stamps(ran.folder / "build" / "batch") == ran.reports_before


def only_the_named_student_is_regraded(ran):
    after, before = stamps(ran.folder / "build" / "batch"), ran.reports_before
    assert after["12345.json"] == before["12345.json"] and after["23456.json"] != before["23456.json"], ran.output
    assert scores(ran.folder / "build" / "batch") == CLASS_SCORES


def gradescope_results_made_from_the_report_not_regraded(ran):
    assert stamps(ran.folder / "build" / "batch") == ran.reports_before, ran.output
    reports = ran.folder / "build" / "batch" / "reports"
    assert {path.name for path in reports.glob("*.gradescope.json")} == {"12345.gradescope.json", "23456.gradescope.json"}


def the_canvas_column_is_filled(ran):
    text = (ran.folder / "build" / "batch" / "canvas-import.csv").read_text(encoding="utf-8-sig")
    assert [row[-1] for row in csv.reader(io.StringIO(text))] == ["Autodiff (4242)", "100.00", "100", "95.5"], ran.output


def the_canvas_stand_in_got_every_score(ran):
    posted = [form for method, _, _, form in ran.canvas.received if method == "POST"]
    assert posted == [{"grade_data[12345][posted_grade]": ["100"], "grade_data[23456][posted_grade]": ["95.5"]}], ran.output
    assert {authorization for _, _, authorization, _ in ran.canvas.received} == {"Bearer course-token"}


def a_diff_of_a_batch_with_itself_moves_nobody(ran):
    assert "0 students changed" in ran.output, ran.output


def the_regrade_says_who_moved(ran):
    batch = ran.folder / "build" / "batch"
    assert scores(batch) == {**CLASS_SCORES, "23456": "94.5"}, ran.output
    assert "1 student changed" in ran.output and "23456" in (batch / "diff.md").read_text(), ran.output
    assert (batch / "previous").is_dir()


def the_diff_names_the_student(ran):
    changed = {row["student_id"]: (row["old"], row["new"]) for row in csv_rows(ran.folder / "regrade" / "diff.csv")}
    assert changed == {"23456": ("95.5", "94.5")}, (ran.output, changed)
    assert (ran.folder / "regrade" / "diff.md").is_file()


def similarity_is_written(ran):
    assert "pairs" in json.loads((ran.folder / "build" / "batch" / "similarity.json").read_text()), ran.output
    assert (ran.folder / "build" / "batch" / "similarity" / "index.html").is_file()


def the_moodle_worksheet_is_filled(ran):
    grades = {row["Identifier"]: row["Grade"] for row in csv_rows(ran.folder / "build" / "moodle" / "moodle-import.csv")}
    assert grades == {"Participant 12345": "100", "Participant 23456": "95.5"}, (ran.output, grades)


def the_cluster_grades_as_local_threads_do(ran):
    assert scores(ran.folder / "build" / "dask") == {"23456": CLASS_SCORES["23456"]}, ran.output


def setup_names_the_images_python_and_packages(ran):
    assert "image 'ubuntu 24.04'" in ran.output and "python3-venv" in ran.output, ran.output


def a_file_is_made(*relative):
    def expect(ran):
        for path in relative:
            assert (ran.folder / path).is_file(), (path, ran.output)
    return expect


def the_tree_is_unchanged(ran):
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ran.folder,
                             capture_output=True, text=True, check=True).stdout
    assert changed == "", f"a generator rewrote what the repository holds:\n{changed}{ran.output}"


def the_handout_grades_the_students_work(ran):
    assert "86/86 visible points" in ran.output and "isolation level" not in ran.output, ran.output


def lint_is_clean(ran):
    assert "All checks passed" in ran.output, ran.output


# The first day, in order: each step may use what the ones before it made.
FIRST_DAY = [
    Step(("make grade",), "make grade", the_reference_scores_100),
    Step(("python3 -m grader grade …",), "python3 -m grader grade solutions --out build/unpackaged.json",
         the_venv_is_named_and_nothing_graded, status=1),
    Step(("make grade SUBMISSION=path [OUT=file] [FORMAT=gradescope] [HTML=page.html]",
          "make grade SUBMISSION=… HTML=report.html [REVEAL=visible|after_due_date|all]"),
         "make grade SUBMISSION=starter OUT=build/starter.json FORMAT=gradescope HTML=report.html REVEAL=all",
         a_gradescope_results_file_and_a_page_of_the_starter),
    Step(("make batch",), "make batch", batch_usage_is_printed, status=2),
    Step(("make batch SUBMISSIONS=download.zip OUT=build/batch REVEAL=after_due_date", "make batch …"),
         "make batch SUBMISSIONS=download.zip OUT=build/batch REVEAL=after_due_date", the_class_is_graded_and_the_secret_made),
    Step((".venv/bin/autodiff-grader batch download.zip --out build/batch --html --reveal after_due_date",),
         ".venv/bin/autodiff-grader batch download.zip --out build/batch --html --reveal after_due_date", nothing_is_regraded),
    Step(("make batch SUBMISSIONS=folder-or-zip [OUT=build/batch] [JOBS=n] [REVEAL=…] [ARGS=…]",
          'make batch SUBMISSIONS=folder-or-zip [OUT=build/batch] [JOBS=n] [ARGS="--force --only ID ..."]'),
         'make batch SUBMISSIONS=download.zip OUT=build/batch JOBS=2 REVEAL=after_due_date ARGS="--force --only 23456"',
         only_the_named_student_is_regraded),
    Step((".venv/bin/autodiff-grader batch SUBMISSIONS --out OUT_DIR [--jobs N] [--force] [--only ID ...] [--gradescope] [--html]",),
         ".venv/bin/autodiff-grader batch download.zip --out build/batch --jobs 2 --gradescope --html --reveal after_due_date",
         gradescope_results_made_from_the_report_not_regraded),
    Step(("make batch SUBMISSIONS=download.zip CANVAS_EXPORT=canvas-export.csv", "make batch … CANVAS_EXPORT=file"),
         "make batch SUBMISSIONS=download.zip CANVAS_EXPORT=canvas-export.csv", the_canvas_column_is_filled),
    Step(("CANVAS_TOKEN=… make canvas-upload URL=https://canvas.example.edu COURSE=101 ASSIGNMENT=4242",
          "make canvas-upload URL=… COURSE=… ASSIGNMENT=…"),
         "CANVAS_TOKEN=course-token make canvas-upload URL={canvas} COURSE=101 ASSIGNMENT=4242",
         the_canvas_stand_in_got_every_score),
    Step((".venv/bin/autodiff-grader VERB …",), ".venv/bin/autodiff-grader diff build/batch build/batch",
         a_diff_of_a_batch_with_itself_moves_nobody),
    Step((), "cp -r build/batch build/before-rubric"),
    Step(("make batch SUBMISSIONS=download.zip RUBRIC=new-rubric.toml",), "make batch SUBMISSIONS=download.zip RUBRIC=new-rubric.toml",
         the_regrade_says_who_moved),
    Step(("make diff OLD=OLD_OUT NEW=NEW_OUT OUT=regrade/", "make diff OLD=dir NEW=dir [OUT=dir]"),
         "make diff OLD=build/before-rubric NEW=build/batch OUT=regrade/", the_diff_names_the_student),
    Step(("make similarity OUT=build/batch", "make similarity [OUT=build/batch]", "make similarity OUT=OUT_DIR [THRESHOLD=0.5]"),
         "make similarity OUT=build/batch THRESHOLD=0.5", similarity_is_written),
    Step(("make batch SUBMISSIONS=download.zip MOODLE_WORKSHEET=worksheet.csv",),
         "make batch SUBMISSIONS=moodle-download.zip OUT=build/moodle MOODLE_WORKSHEET=worksheet.csv",
         the_moodle_worksheet_is_filled),
    Step((".venv/bin/dask scheduler --host 127.0.0.1 --port 8786 --no-dashboard",),
         ".venv/bin/dask scheduler --host 127.0.0.1 --port {port} --no-dashboard", status=None),
    Step((".venv/bin/dask worker tcp://127.0.0.1:8786 --host 127.0.0.1 --no-dashboard --nthreads 1",),
         ".venv/bin/dask worker tcp://127.0.0.1:{port} --host 127.0.0.1 --no-dashboard --nthreads 1", status=None),
    Step(("make batch SUBMISSIONS=SUBMISSIONS OUT=OUT SCHEDULER=tcp://127.0.0.1:8786",),
         "make batch SUBMISSIONS=late.zip OUT=build/dask SCHEDULER=tcp://127.0.0.1:{port}", the_cluster_grades_as_local_threads_do),
    Step(("make gradescope",), "make gradescope", a_file_is_made("dist/gradescope-autograder.zip")),
    Step((), ".venv/bin/python -m zipfile -e dist/gradescope-autograder.zip build/autograder/source"),  # as Gradescope unpacks it
    Step(("SETUP_DRY_RUN=1 SETUP_OS_RELEASE=FILE AUTOGRADER_ROOT=DIR bash gradescope/setup.sh",),
         "SETUP_DRY_RUN=1 SETUP_OS_RELEASE=noble-os-release AUTOGRADER_ROOT=build/autograder bash gradescope/setup.sh",
         setup_names_the_images_python_and_packages),
    Step(("make notebook",), "make notebook", the_tree_is_unchanged),
    Step(("make starter",), "make starter", the_tree_is_unchanged),
    Step(("make docs",), "make docs", the_tree_is_unchanged),
    Step(("make lint",), "make lint", lint_is_clean),
    Step(("make handout",), "make handout", a_file_is_made("dist/autodiff-handout.zip")),
    # The student: unzips the handout, writes the ops, checks and trains.
    Step(("make check",), "make check", the_handout_grades_the_students_work, where="handout"),
    Step((".venv/bin/python -m grader check",), ".venv/bin/python -m grader check", the_handout_grades_the_students_work,
         where="handout"),
]
# Started, and watched until they show their work under way (then stopped): they train for minutes.
STARTED = {
    "make train": ("handout", r"epoch 1/\d+"),
    "make experiment [PRESET=handout]": ("clone", r"epoch 1/\d+"),
}
STARTED_AS = {"make experiment [PRESET=handout]": "make experiment PRESET=handout"}
# Resolved but not run: the suite itself, and measurements of a quarter of an hour or more.
RESOLVED = {
    "make test": "this suite", "make test-fast": "a subset of this suite",
    ".venv/bin/python -m pytest tests/test_attacks.py -k uid -rs": "a part of this suite",
    **{f"make {target}": "a measurement (results/*.json)" for target in (
        "attacks", "flake-audit", "mutation-audit", "tolerances", "bench-grading BEFORE=rev", "bench-notebook BEFORE=rev",
        "report-identity BEFORE=rev", "bench-scale", "mnist-cost BEFORE=rev", "mnist-seeds", "bench", "bench-batch", "bench-similarity")},
    "make screenshots": "needs Debian's chromium",
}


def test_every_documented_command_is_run_here():
    ran = {command for step in FIRST_DAY for command in step.documented} | set(STARTED) | set(RESOLVED)
    documented = documented_commands()
    assert set(documented) - ran == set(), "documented, never run by this test: add a step to FIRST_DAY"
    assert ran - set(documented) == set(), "run here, no longer in the docs: remove its step"


def test_the_commands_are_read_from_code_blocks_and_spans_and_mentions_are_left_out():
    commands = documented_commands()
    assert "make grade" in commands and "make test" in commands  # README's code block, comments taken out
    assert commands["make check"] == ["docs/course-staff.md", "docs/course-staff.md", "docs/platforms.md"]
    assert "SETUP_DRY_RUN=1 SETUP_OS_RELEASE=FILE AUTOGRADER_ROOT=DIR bash gradescope/setup.sh" in commands  # a span over a line break
    assert not {"make", ".venv/bin/dask", "python3"} & set(commands)  # names of programs in sentences


def fresh_clone(folder):
    """A clone of this checkout with the working tree's changes in it (uncommitted work is what a
    clean clone of main will have once it lands): git-ignored files (.venv, build, dist,
    course-secret.txt) are not there."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(folder)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    listed = set(filter(None, listed))
    for relative in listed:
        source, target = ROOT / relative, folder / relative
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.exists():
            target.unlink()
    committed = subprocess.run(["git", "ls-files", "-z"], cwd=folder, capture_output=True, text=True, check=True).stdout
    for relative in set(filter(None, committed.split("\0"))) - listed:  # removed or renamed since the last commit
        (folder / relative).unlink()
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", "wip"],
                   cwd=folder, check=True)
    return folder


def shell(line, folder, environment=(), timeout=900):
    completed = subprocess.run(["bash", "-c", line], check=False, cwd=folder, env={**SHELL, **dict(environment)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return completed.returncode, completed.stdout


def start(line, folder):
    return subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=folder, env=SHELL, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def watch(line, folder, pattern, timeout=300):
    """Start `line`, read its output until `pattern` shows, stop it. Returns what it printed."""
    import selectors

    process, output = start(line, folder), ""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while not re.search(pattern, output) and time.monotonic() < deadline:
                if selector.select(timeout=1):
                    chunk = os.read(process.stdout.fileno(), 65536).decode(errors="replace")
                    if not chunk:
                        break
                    output += chunk
    finally:
        stop(process)
    assert re.search(pattern, output), f"`{line}` did not get to {pattern!r}:\n{output[-3000:]}"
    return output


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def first_day(tmp_path_factory):
    """A fresh clone, shared by the tests below: its .venv is built by the first day's first command."""
    return fresh_clone(tmp_path_factory.mktemp("first-day") / "autodiff")


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.xdist_group("documented_commands")
def test_the_first_day_runs_every_documented_command_as_written(first_day):
    from tests.test_semester import CanvasStandIn

    clone, handout = first_day, None
    course_files(clone)
    canvas, port, servers = CanvasStandIn(), free_port(), []
    try:
        for step in FIRST_DAY:
            line = step.line.format(canvas=canvas.url, port=port)
            if step.status is None:  # a server: runs until the end of the day
                servers.append(start(line, clone))
                continue
            if step.where == "handout" and handout is None:
                handout = unpacked_handout_with_the_students_work(clone)
            folder = handout if step.where == "handout" else clone
            before = stamps(clone / "build" / "batch")
            status, output = shell(line, folder)
            assert status == step.status, f"`{line}` exited {status}, not {step.status}:\n{output[-5000:]}"
            if step.expect is not None:
                step.expect(Ran(output, folder, before, canvas))
        for command, (where, pattern) in STARTED.items():
            watch(STARTED_AS.get(command, command), handout if where == "handout" else clone, pattern)
    finally:
        canvas.close()
        for server in servers:
            stop(server)


def unpacked_handout_with_the_students_work(clone):
    """The handout as a student unzips it, with the graded modules written (the reference's)."""
    folder = clone.parent / "student"
    with zipfile.ZipFile(clone / "dist" / "autodiff-handout.zip") as archive:
        archive.extractall(folder)
    handout = folder / "autodiff-handout"
    for module in GRADED_MODULES:
        shutil.copyfile(SOLUTIONS / "autodiff" / f"{module}.py", handout / "autodiff" / f"{module}.py")
    return handout


@pytest.mark.slow
@pytest.mark.xdist_group("documented_commands")
@pytest.mark.parametrize("command", sorted(RESOLVED))
def test_a_command_too_long_for_the_suite_resolves_and_its_programs_start(command, first_day):
    """Its recipe resolves (`make -n`); each script it runs answers `--help` (its imports and its
    arguments' parser work); each pytest it runs collects its tests without an error."""
    clone = first_day
    if not (clone / ".venv" / ".ready").exists():  # run alone, without the first day
        assert shell("make .venv/.ready", clone)[0] == 0
    lines = [command] if command.startswith(".venv/") else None
    if lines is None:
        status, output = shell(f"{command.replace('make', 'make -n', 1)}", clone, timeout=120)
        assert status == 0, output
        lines = [line for line in output.replace("\\\n", " ").splitlines() if ".venv/bin/" in line]
    assert lines, f"`{command}` runs nothing of the project's"
    for line in lines:
        if " -m pytest" in line:
            status, output = shell(f"{line} --collect-only -q -n 0", clone, timeout=300)
            assert status == 0 and re.search(r"\d+ tests? collected|\d+/\d+ tests collected", output), output[-3000:]
            continue
        for script in re.findall(r"\.venv/bin/python (-m [\w.]+|\S+\.py)", line):
            status, output = shell(f".venv/bin/python {script} --help", clone, timeout=120)
            assert status == 0 and "usage:" in output, f"{script}: {output[-3000:]}"
