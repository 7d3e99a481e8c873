"""The isolation levels as objects: each started with the same steps, its privileges dropped and its
limits set without running Python in a forked copy of the grader."""
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from grader.sandbox import protocol
from grader.sandbox.launch import Limits, scratch_parent, start_worker, stop_worker
from grader.sandbox.levels import ISOLATION_LEVELS, LEVELS, isolation_level, level_available
from grader.sandbox.uidpool import UID_POOL

AVAILABLE = [pytest.param(name, marks=pytest.mark.skipif(not level_available(name), reason=f"{name!r} is not available"))
             for name in ISOLATION_LEVELS]


def limit(pid, label):
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if line.startswith(label))
    return line[len(label):].split()[:2]


@pytest.mark.parametrize("name", AVAILABLE)
def test_a_worker_is_started_without_a_preexec_function_and_contained_by_its_first_program(name, monkeypatch):
    """Nothing of the grader's Python runs between fork and exec (its other threads may hold locks
    there): the uid is dropped by subprocess itself, the limits set by contain.py in the worker's
    process, which has one thread."""
    calls = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: calls.append(kwargs) or real_popen(*args, **kwargs))
    busy = threading.Event()
    spinning = threading.Thread(target=lambda: busy.wait(30))  # another thread alive, as MNIST's are in a grading
    spinning.start()
    try:
        with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
            process = start_worker(scratch, Limits(open_files=48, cpu_seconds=500), isolation=name)
            try:
                assert protocol.decode_frame(*protocol.read_frame(process.stdout.fileno()))["ready"] is True
                pid = process.pid
                if isolation_level(name).bubblewrap:  # the limits are inherited by the supervisor inside
                    pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
                assert limit(pid, "Max open files") == ["48", "48"]
                assert limit(pid, "Max cpu time") == ["500", "500"]
                assert limit(pid, "Max core file size") == ["0", "0"]
            finally:
                stop_worker(process)
    finally:
        busy.set()
        spinning.join()
    (options,) = calls
    assert options.get("preexec_fn") is None
    if isolation_level(name).pooled_uid:
        assert options["user"] == options["group"] == process.uid and process.uid in UID_POOL and options["extra_groups"] == []
    else:
        assert "user" not in options


def test_a_level_is_looked_up_by_its_name_and_an_unknown_name_is_refused():
    assert [isolation_level(name).name for name in ISOLATION_LEVELS] == ["namespace", "uid", "user-namespace", "process"]
    assert isolation_level(LEVELS["uid"]) is LEVELS["uid"]
    with pytest.raises(ValueError, match="unknown isolation level 'chroot'; expected one of namespace, uid"):
        isolation_level("chroot")


def test_what_each_level_can_do_is_what_the_platforms_table_says():
    """docs/platforms.md: bubblewrap (namespaces, seccomp) at namespace and user-namespace; a pooled
    uid at namespace and uid; file permissions alone at uid; the grader's own user at process."""
    def having(attribute):
        return [name for name, level in LEVELS.items() if getattr(level, attribute)]
    assert having("bubblewrap") == ["namespace", "user-namespace"]
    assert having("pooled_uid") == ["namespace", "uid"]
    assert having("guarded_by_permissions") == ["uid"]
    assert having("sandboxed") == ["namespace", "uid", "user-namespace"]
    assert [name for name, level in LEVELS.items() if level.contain(Limits()) and level.contain(Limits()).strict] == \
        ["namespace", "uid", "user-namespace"]


@pytest.mark.skipif(not level_available("uid"), reason="'uid' is not available")
def test_an_exit_status_over_128_means_a_signal_only_where_bubblewrap_reports_it(monkeypatch, tmp_path):
    """bubblewrap reports a worker killed by signal N as status 128 + N; at `uid` there is no
    bubblewrap, and a supervisor's status 137 is a status."""
    import textwrap

    from grader.sandbox import launch
    from grader.sandbox.client import WorkerClient, WorkerFailure
    from tests.test_faults import FAKE_WORKER

    fake = tmp_path / launch.ENTRY
    fake.write_text(FAKE_WORKER.format(misbehaviour=textwrap.indent("os._exit(137)", " " * 4)))
    monkeypatch.setattr(launch, "SANDBOX_FILES", [fake, *launch.SANDBOX_FILES[1:]])
    with (tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch, WorkerClient(scratch, isolation="uid") as client,
          pytest.raises(WorkerFailure, match="the worker exited with status 137")):
        client.request("call", timeout=20)
