"""The worker: the only process that imports student code.

Started by launch.py with `python -I` inside a scratch folder that holds the course's package
(`autodiff/`, given modules from the course, graded modules from the student) and, for a
notebook, `notebook_submission.py`; the course's modules and the student's helper modules also
answer to their bare names (`from tensor import Function`, as students who keep the modules side
by side write). It answers
requests read from stdin, one JSON line each, on a private copy of its original stdout; the
student's prints go to fd 1/2, which the launcher points at a capped log file. It computes and
returns plain data only; it never decides a score.
"""
import importlib
import importlib.abc
import importlib.util
import os
import resource
import sys
import time
import traceback
from pathlib import Path

SCRATCH = Path.cwd()
sys.path[:0] = [str(Path(__file__).resolve().parent), str(SCRATCH)]

import numpy as np  # noqa: E402
import protocol  # noqa: E402  (sandbox/protocol.py, next to this file)
from protocol import COURSE_MODULES, GRADED, GRADED_MODULES  # noqa: E402  (the contract)

NOTEBOOK = SCRATCH / "notebook_submission.py"
# The student's own helper modules: whatever else the grader put in the package (submission.py).
HELPERS = tuple(sorted({path.stem for path in (SCRATCH / "autodiff").glob("*.py")} - {*COURSE_MODULES, "__init__"}))
STUDENT_FILES = {str(SCRATCH / "autodiff" / f"{module}.py") for module in (*GRADED_MODULES, *HELPERS)} | {str(NOTEBOOK)}


class StudentError(Exception):
    """Student code raised: carries the phase and a traceback trimmed to the student's frames."""

    def __init__(self, phase, error):
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename in STUDENT_FILES]
        lines = [f'  File "{Path(f.filename).name}", line {f.lineno}, in {f.name}\n    {f.line}' for f in frames[-5:]]
        message = str(error)[:500]
        self.details = {"phase": phase, "type": type(error).__name__, "message": message,
                        "traceback": "\n".join(lines)}


class CourseModuleAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import tensor` is `import autodiff.tensor` (same module object, same classes), for each
    of the course's modules and the student's helpers: students who wrote their modules side by
    side import them that way. Last on sys.meta_path, so it only answers for names nothing else provides."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if path is None and name in (*COURSE_MODULES, *HELPERS) else None

    def create_module(self, spec):
        module = importlib.import_module(f"autodiff.{spec.name}")
        spec.loader_state = module.__spec__  # the import system is about to replace it with the alias's
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # already run as autodiff.<name>: only undo that


sys.meta_path.append(CourseModuleAliases())


def run_student(phase, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: student code must not stop the worker
        raise StudentError(phase, error) from None


_loaded = {}


def load_module(module):
    """Import autodiff.<module> once; for a notebook, with the notebook's names installed first."""
    if NOTEBOOK.is_file():
        install_notebook()
    if module not in _loaded:
        _loaded[module] = run_student(f"importing {module}.py", importlib.import_module, f"autodiff.{module}")
    return _loaded[module]


def install_notebook():
    """Run the notebook's definitions, put its graded names into every graded module, and only
    then run its imports of the course modules that use them (grader/notebook.py defers those):
    autodiff.nn then builds MLP3 from the notebook's classes."""
    if "notebook_submission" in _loaded:
        return
    notebook = run_student("running the notebook's definitions", importlib.import_module, "notebook_submission")
    for module in GRADED_MODULES:
        try:
            _loaded.setdefault(module, importlib.import_module(f"autodiff.{module}"))
        except BaseException:  # a %%writefile module that fails: reported when that module is asked for
            continue
        for name, home in GRADED.items():
            if home == module and hasattr(notebook, name):
                setattr(_loaded[module], name, getattr(notebook, name))
    _loaded["notebook_submission"] = notebook
    for statement in getattr(notebook, "__grader_deferred_imports__", ()):
        run_student("running the notebook's imports", exec, statement, vars(notebook))


def resolve(name):
    module = load_module(GRADED[name])
    if not hasattr(module, name):
        where = "the notebook" if NOTEBOOK.is_file() else f"{GRADED[name]}.py"
        raise StudentError(f"looking up {name}", NameError(f"{name} is not defined in {where}"))
    return getattr(module, name)


def describe(value, depth=0):
    """What student code returned, as plain data the trusted side can judge."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.nbytes > protocol.MAX_ARRAY_BYTES:
            return {"kind": "unsendable array", "shape": list(value.shape), "dtype": str(value.dtype)}
        return {"kind": "ndarray", "array": value}
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"kind": "numpy scalar", "array": np.asarray(value)}
    if isinstance(value, (bool, int, float)):
        return {"kind": "python number", "array": np.asarray(value)}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, (tuple, list)) and depth == 0:
        return {"kind": type(value).__name__, "items": [describe(item, 1) for item in value[:8]], "length": len(value)}
    return {"kind": "other", "type": type(value).__name__}


def call(request):
    """forward(ctx, *inputs, **options), then backward(ctx, grad_output) if one is given."""
    from autodiff.tensor import Context

    function = resolve(request["name"])
    inputs = [np.array(x, copy=True) for x in request["inputs"]]
    ctx = Context(needs_input_grad=tuple(request["needs_input_grad"]))
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in request["options"].items()}
    output = run_student(f"{request['name']}.forward", function.forward, ctx, *inputs, **options)
    # Described under run_student too: a returned object (a list subclass, say) can run code of its own.
    reply = {"output": run_student(f"{request['name']}.forward", describe, output)}
    if request.get("grad_output") is not None:
        grad_output = np.array(request["grad_output"], copy=True)
        grads = run_student(f"{request['name']}.backward", function.backward, ctx, grad_output)
        reply["grads"] = run_student(f"{request['name']}.backward", describe, grads)
        reply["grad_output_after"] = grad_output
    reply["inputs_after"] = inputs
    return reply


def call_graph(request):
    """A small graph through the course's engine: `steps` apply the graded op (or the course's Add)
    to earlier values; the last value's backward is seeded with `seed`. Returns the output, each
    leaf's .grad and the seed array as the backward left it (an op may change grad_output in place)."""
    from autodiff.tensor import Function, Tensor, reduce_grad_to_shape

    class Add(Function):  # the course's Add, kept here: the student's ops.py holds the other, and a bug there must not cost this op
        @staticmethod
        def forward(ctx, a, b):
            ctx.shapes = a.shape, b.shape
            return a + b

        @staticmethod
        def backward(ctx, grad_output):  # one array for both inputs when nothing was broadcast, as the course's Add
            return tuple(reduce_grad_to_shape(grad_output, shape) for shape in ctx.shapes)

    function = resolve(request["name"])
    values = [Tensor(np.array(leaf, copy=True), requires_grad=wanted) for leaf, wanted in zip(request["leaves"], request["requires_grad"])]
    leaves = list(values)
    for step in request["steps"]:
        op = Add if step["op"] == "Add" else function
        options = {key: tuple(value) if isinstance(value, list) else value for key, value in step.get("options", {}).items()}
        values.append(run_student(f"{request['name']} in a graph", op.apply, *[values[i] for i in step["args"]], **options))
    seed = np.array(request["seed"], copy=True)
    run_student(f"backward through a graph of {request['name']}", values[-1].backward, seed)
    return run_student(f"{request['name']} in a graph", lambda: {
        "output": describe(values[-1].data), "grads": [describe(leaf.grad) for leaf in leaves], "seed_after": seed})


def call_regularizer(request):
    """l2_penalty(weights, lam) or l2_grad(weights, lam) on Tensors built from the request."""
    from autodiff.tensor import Tensor

    function = resolve(request["name"])
    weights = []
    for data, grad in zip(request["weights"], request["grads"]):
        weights.append(Tensor(np.array(data, copy=True), requires_grad=True))
        weights[-1].grad = None if grad is None else np.array(grad, copy=True)
    value = run_student(request["name"], function, weights, request["lam"])
    # Read under run_student too: what student code returned, or left in .grad, can run code of its own.
    return run_student(request["name"], lambda: {"value": describe(value), "data_after": [w.data for w in weights],
                                                 "grads_after": [describe(w.grad) for w in weights]})


def train_mnist(request):
    """Train the course's MLP3 from the student's ops with the course's loop; predict after each epoch.

    The worker sees training data and test images only: the labels stay with the trusted side."""
    for module in ("ops", "activations", "losses"):
        load_module(module)
    from autodiff.nn import MLP3
    from autodiff.train import predict, prepare_images, train

    data = SCRATCH / request["data_dir"]  # a folder inside the scratch copy, wherever the sandbox mounts it
    images = prepare_images(np.load(data / "train_images.npy", allow_pickle=False)[:request["train_examples"]])
    labels = np.load(data / "train_labels.npy", allow_pickle=False)[:request["train_examples"]]
    test_images = prepare_images(np.load(data / "test_images.npy", allow_pickle=False))
    predictions, losses, started = [], [], time.perf_counter()

    def after_epoch(epoch, loss):
        losses.append(loss)
        predictions.append(run_student("predicting the test images", predict, model, test_images).astype(np.int16))

    model = MLP3(seed=request["seed"])
    run_student("training MLP3", train, model, images, labels, epochs=request["epochs"],
                batch_size=request["batch_size"], lr=request["lr"], seed=request["seed"], on_epoch=after_epoch)
    return {"predictions": np.stack(predictions), "losses": losses, "seconds": time.perf_counter() - started}


def hello(request):
    return {"python": sys.version.split()[0], "numpy": np.__version__}


def import_module(request):
    load_module(request["module"])
    return {}


COMMANDS = {"hello": hello, "import": import_module, "call": call, "regularizer": call_regularizer,
            "train_mnist": train_mnist, "graph": call_graph}


def worn_out():
    """Has student code left threads running, or does it hold over half the address space the
    worker may use? Then the next check would fail for it (after a thread or memory bomb, MNIST's
    training finds no memory left), so the trusted side is asked for a fresh worker."""
    try:
        threads = len(os.listdir("/proc/self/task"))
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        return False
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return threads > 1 or (limit != resource.RLIM_INFINITY and size > limit // 2)


def serve(requests, replies):
    for line in requests:
        request = protocol.decode(line)
        try:
            reply = {"ok": True, **COMMANDS[request["command"]](request)}
        except StudentError as error:
            reply = {"ok": False, "error": error.details}
        restart = worn_out()
        try:
            data = protocol.encode({"id": request["id"], "restart": restart, **reply})
        except protocol.ProtocolError as error:
            data = protocol.encode({"id": request["id"], "restart": restart, "ok": False,
                                    "error": {"phase": "replying", "type": "ProtocolError", "message": str(error)}})
        replies.write(data)
        replies.flush()


def main():
    replies = os.fdopen(os.dup(1), "wb")  # the private channel
    requests = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)  # the student's prints go to the log, not into the protocol
    stdin_null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin_null, 0)  # student code reading stdin must not eat requests
    sys.stdin = open(os.devnull)
    serve(requests, replies)


if __name__ == "__main__":
    main()
