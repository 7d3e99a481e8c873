"""The `uid` isolation level, for a root without namespaces (a Docker container such as
Gradescope's): the worker runs as a pooled unprivileged uid with the rlimits and RLIMIT_NPROC,
in a scratch folder that stays the grader's (open to its group, read-only), and the grader's own
files are closed to it by their permissions.
The attack suite (test_attacks.py) runs at this level too."""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from grader import CHECKS
from grader.classroom.batch import run_batch
from grader.grade import UID_LEVEL_NOTE, grade
from grader.sandbox import launch, levels, protocol
from grader.sandbox.launch import Limits, start_worker, stop_worker
from grader.sandbox.levels import SANDBOX_PYTHON, level_available
from grader.sandbox.permissions import protect_from_workers, readable_by_workers
from grader.sandbox.uidpool import UID_POOL
from tests.support.attacks import ATTACKS, skip_reason
from tests.support.grading import FAST_RUBRIC
from tests.support.paths import ROOT, SOLUTIONS

pytestmark = pytest.mark.skipif(not level_available("uid"), reason="the uid level needs root and the sandbox runtime")


def proc_field(pid, file, label):
    return next(line for line in Path(f"/proc/{pid}/{file}").read_text().splitlines() if line.startswith(label))


def test_the_worker_runs_as_a_pooled_uid_with_its_limits_in_the_graders_scratch_folder():
    with tempfile.TemporaryDirectory(dir=launch.scratch_parent()) as scratch:
        process = start_worker(scratch, Limits(processes=17), isolation="uid")
        try:
            assert protocol.decode_frame(*protocol.read_frame(process.stdout.fileno()))["ready"] is True  # the supervisor, numpy imported
            uid = int(proc_field(process.pid, "status", "Uid:").split()[1])
            assert uid in UID_POOL and process.uid == uid
            assert proc_field(process.pid, "limits", "Max processes").split()[2:4] == ["17", "17"]
            assert Path(f"/proc/{process.pid}/cwd").resolve() == Path(scratch).resolve()
            # the grader's, open to the worker's group only: other workers of a batch cannot read it, and this one
            # cannot put anything in it (a link where the grader opens its logs or runtime at the next start)
            folder = Path(scratch).stat()
            assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o777) == (os.geteuid(), uid, 0o750)
        finally:
            stop_worker(process)


def read_as(uid, path):
    """Try to read path as this uid; the outcome as text."""
    completed = subprocess.run([str(SANDBOX_PYTHON), "-I", "-c", f"print(open({str(path)!r}).read())"], capture_output=True,
                               text=True, user=uid, group=uid, extra_groups=[], timeout=30, check=False)
    return completed.stdout if completed.returncode == 0 else completed.stderr


@pytest.fixture
def open_folder():
    """A folder every user can pass through (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(dir=launch.scratch_parent()) as folder:
        Path(folder).chmod(0o755)
        yield Path(folder)


def test_protected_files_cannot_be_read_by_a_pooled_uid(open_folder):
    tmp_path = open_folder
    folder, loose = tmp_path / "checks", tmp_path / "loose.txt"
    folder.mkdir(mode=0o755)
    (folder / "test_hidden.py").write_text("HIDDEN")
    loose.write_text("LOOSE")
    for path in (folder, folder / "test_hidden.py", loose):
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert readable_by_workers(folder / "test_hidden.py") and "HIDDEN" in read_as(UID_POOL[-1], folder / "test_hidden.py")
    assert protect_from_workers([folder, folder / "test_hidden.py"]) == [folder, folder / "test_hidden.py"]
    assert not readable_by_workers(folder / "test_hidden.py") and not readable_by_workers(folder)
    assert folder.stat().st_mode & 0o777 == 0o750 and (folder / "test_hidden.py").stat().st_mode & 0o777 == 0o640
    assert "PermissionError" in read_as(UID_POOL[-1], folder / "test_hidden.py")
    assert readable_by_workers(loose) and "LOOSE" in read_as(UID_POOL[-1], loose)  # only what was named is closed
    assert protect_from_workers([folder]) == []  # nothing left to change


@pytest.mark.slow
def test_grading_at_the_uid_level_closes_the_graders_files_and_says_the_network_is_open():
    report = grade(SOLUTIONS, FAST_RUBRIC, "uid")
    assert report["score"] == report["max_score"] and report["grader"]["isolation"] == "uid"
    assert UID_LEVEL_NOTE in report["messages"] and "network" in UID_LEVEL_NOTE
    assert not any("still readable" in message for message in report["messages"])
    for path in (CHECKS / "test_edge_cases.py", Path(FAST_RUBRIC.path)):
        assert not readable_by_workers(path)


def test_auto_prefers_namespace_then_uid_then_user_namespace_then_process(monkeypatch):
    chosen = []
    for available in ({"namespace", "uid", "process"}, {"uid", "user-namespace", "process"}, {"user-namespace", "process"},
                      {"process"}):
        monkeypatch.setattr(levels, "level_available", lambda level, available=available: level in available)
        chosen.append(levels.strongest_level())
    assert chosen == ["namespace", "uid", "user-namespace", "process"]


def test_the_attacks_the_uid_level_cannot_stop_are_not_applicable_with_the_reason():
    listener = next(attack for attack in ATTACKS if attack.name == "connecting to a listener on 127.0.0.1")
    assert "network is not blocked" in skip_reason(listener, "uid")
    fork_bomb = next(attack for attack in ATTACKS if attack.name == "fork bomb")
    assert skip_reason(fork_bomb, "uid") is None  # RLIMIT_NPROC on the pooled uid holds it


def test_a_batch_at_the_uid_level_closes_its_output_folder_to_student_code(open_folder, monkeypatch):
    """Without namespaces, the class's reports (with every student's feedback) are kept from the
    next student's code by the folder's permissions."""
    from types import SimpleNamespace

    from grader import cli

    def run_batch(*args, **kwargs):
        raise ValueError("stopped here: only the folder matters")

    monkeypatch.setattr(cli, "run_batch", run_batch)
    out = open_folder / "class"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    args = SimpleNamespace(gradescope=False, isolation="uid", out=out, submissions=open_folder, jobs=1, force=False, only=(),
                           scheduler=None, id_pattern="", html=False, reveal="visible", similarity=False,
                           canvas_export=None, moodle_worksheet=None, missing_as_zero=False)
    assert cli.batch(args, FAST_RUBRIC) == 1
    assert not out.stat().st_mode & 0o007


# What a pooled uid may read and the grader does not control: the system, the sandbox's runtime.
SYSTEM = ("/usr/", "/etc/", "/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/", "/var/lib/", "/var/cache/", "/var/log/",
          str(SANDBOX_PYTHON.parent.parent) + "/")
WALK_SCRIPT = """\
import json, os, sys
skip, system = tuple(sys.argv[1].split(":")), tuple(sys.argv[2].split(":"))
readable = []
for top, folders, files in os.walk("/", onerror=lambda error: None):
    if top.startswith(skip) or (top + "/").startswith(system):
        folders[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        try:
            with open(path, "rb"):
                readable.append(path)
        except OSError:
            pass
print(json.dumps(readable))
"""


def readable_as(uid):
    """Every file a process of this uid can open, outside /proc, /sys, /dev and SYSTEM."""
    completed = subprocess.run([str(SANDBOX_PYTHON), "-I", "-c", WALK_SCRIPT, "/proc:/sys:/dev", ":".join(SYSTEM)],
                               capture_output=True, text=True, user=uid, group=uid, extra_groups=[], timeout=600, cwd="/", check=False)
    return json.loads(completed.stdout)


@pytest.mark.slow
def test_after_a_class_is_graded_at_the_uid_level_a_pooled_uid_reads_nothing_of_the_graders_or_the_class(open_folder):
    """The whole filesystem walked as a pooled uid: nothing under the grader's checkout (its
    .git and solutions included) but its Python runtime, the class's submissions or the reports
    is readable."""
    source, out = open_folder / "class", open_folder / "out"
    for student in ("alice", "bob"):
        shutil.copytree(SOLUTIONS / "autodiff", source / student / "autodiff")
    for path in [source, *source.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    run_batch(source, out, FAST_RUBRIC, jobs=1, isolation="uid", progress=False)
    readable = readable_as(UID_POOL[-1])
    exposed = [path for path in readable if path.startswith((str(ROOT) + "/", str(source) + "/", str(out) + "/"))
               and not path.startswith(str(ROOT / ".venv") + "/")]  # the checkout's Python runtime, as /usr's
    assert not any(path.startswith(str(ROOT / name)) for path in readable for name in (".git", "solutions", "datasets", "grader"))
    assert exposed == [], exposed[:10]
