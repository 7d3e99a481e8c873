"""The worker: the child process that imports student code, one per check group.

The sandbox's supervisor (supervisor.py) forks it for a group of checks (after importing numpy
and the course's engine, and nothing of the student's), with a pipe of its own for requests and
one for replies, and every other descriptor closed. The scratch folder holds the course's package
(`autodiff/`, given modules from the course, graded modules from the student) and, for a
notebook, `notebook.json`, its code cells, which cells.py runs as Jupyter would; the course's modules and the student's helper modules also
answer to their bare names (`from tensor import Function`, as students who keep the modules side
by side write). It answers requests one frame each; the student's prints go to fd 1/2, a capped
log file. It computes and returns plain data only; it never decides a score, and what it writes
is read by the supervisor as untrusted data: it can answer only the request it was handed, in its
own group.
"""
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

SCRATCH = Path.cwd()
SANDBOX = Path(__file__).resolve().parent  # the sandbox's own modules, this one among them (launch.SANDBOX_FILES)
sys.path.insert(0, str(SANDBOX))  # until they are all imported: leave_names_to_the_student

import cells  # noqa: E402  (sandbox/cells.py: a notebook's cells; IPython is imported only to run some)
import numpy as np  # noqa: E402
import protocol  # noqa: E402  (sandbox/protocol.py, next to this file)
import transport  # noqa: E402  (grader/mnist/transport.py, next to this file: MNIST's steps)
from contract import COURSE_MODULES, GRADED, GRADED_MODULES  # noqa: E402  (sandbox/contract.py, next to this file)
from failures import StudentException  # noqa: E402  (sandbox/failures.py, next to this file)

NOTEBOOK = SCRATCH / "notebook.json"            # a notebook's code cells (grader/notebook.py)
NOTEBOOK_PLAN = SCRATCH / "notebook-plan.json"  # which of them every group runs, decided by the trusted side
# The student's own helper modules and packages: whatever else the grader put in the package (submission.py).
_OWN_FILES = [path for path in (SCRATCH / "autodiff").rglob("*.py") if path.relative_to(SCRATCH / "autodiff").parts[0].removesuffix(".py")
              not in (*COURSE_MODULES, "__init__")]
HELPERS = tuple(sorted({path.relative_to(SCRATCH / "autodiff").parts[0].removesuffix(".py") for path in _OWN_FILES}))
STUDENT_FILES = {str(SCRATCH / "autodiff" / f"{module}.py") for module in GRADED_MODULES} | {str(path) for path in _OWN_FILES}


def student_exception(phase: str, error: BaseException) -> StudentException:
    """Student code raised error: a StudentException with the phase and a traceback trimmed to the
    student's frames."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if frame.filename in STUDENT_FILES or frame.filename.startswith(cells.CELL_FILENAME)]
    lines = [f'  File "{shown_file(f.filename)}", line {f.lineno}, in {f.name}\n    {f.line}' for f in frames[-5:]]
    return StudentException({"phase": phase, "type": type(error).__name__, "message": str(error)[:500],
                             "traceback": "\n".join(lines)})


def shown_file(filename: str) -> str:
    """A student file's name as the student knows it: ops.py, or a notebook's `cell 7`."""
    if filename.startswith(cells.CELL_FILENAME):
        return f"cell {filename[len(cells.CELL_FILENAME):].split('-')[0]}"
    return Path(filename).name


class CoursePackage(importlib.abc.MetaPathFinder):
    """`autodiff` is the scratch folder's autodiff/, and it is the only name a bare import finds in
    that folder: the rest of it (mnist/, the logs, …) is the grader's, not on sys.path, its names
    free for the student's helpers (a helper `mnist.py`). First on sys.meta_path, as the folder
    the student runs from is first on their sys.path."""

    def find_spec(self, name: str, path: "Sequence[str] | None" = None,
                  target: "ModuleType | None" = None) -> "ModuleSpec | None":
        return importlib.machinery.PathFinder.find_spec(name, [str(SCRATCH)]) if name == "autodiff" and path is None else None


class CourseModuleAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import tensor` is `import autodiff.tensor` (same module object, same classes), for each
    of the course's modules and the student's helpers: students who wrote their modules side by
    side import them that way. Last on sys.meta_path, so it only answers for names nothing else provides."""

    def find_spec(self, name: str, path: "Sequence[str] | None" = None,
                  target: "ModuleType | None" = None) -> "ModuleSpec | None":
        return importlib.util.spec_from_loader(name, self) if path is None and name in (*COURSE_MODULES, *HELPERS) else None

    def create_module(self, spec: "ModuleSpec") -> "ModuleType":
        module = importlib.import_module(f"autodiff.{spec.name}")
        spec.loader_state = module.__spec__  # the import system is about to replace it with the alias's
        return module

    def exec_module(self, module: "ModuleType") -> None:
        spec = module.__spec__  # the alias's, given by the import system after create_module: never None here
        if spec is not None:
            module.__spec__ = spec.loader_state  # already run as autodiff.<name>: only undo that


sys.meta_path.insert(0, CoursePackage())
sys.meta_path.append(CourseModuleAliases())


def run_student(phase: str, function: "Callable[..., Any]", *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: student code must not stop the worker
        raise student_exception(phase, error) from None


_loaded: dict[str, Any] = {}  # module → the imported module; "notebook" → the NotebookRun that installed its names


def leave_names_to_the_student() -> None:
    """Take the sandbox's own modules (protocol, cells, this one, …), once imported, out of what a
    bare import looks up: their folder off sys.path, their names out of sys.modules (they live on in
    the references the sandbox holds). A student's helper `cells.py`, imported as `import cells`,
    is then theirs (CourseModuleAliases), as on their own machine, not the sandbox's module."""
    sys.path[:] = [entry for entry in sys.path if entry != str(SANDBOX)]
    for path in SANDBOX.glob("*.py"):
        sys.modules.pop(path.stem, None)


def load_module(module: str) -> "ModuleType":
    """Import autodiff.<module> once; for a notebook, with the notebook's names installed first."""
    if NOTEBOOK.is_file():
        install_notebook()
    if module not in _loaded:
        _loaded[module] = run_student(f"importing {module}.py", importlib.import_module, f"autodiff.{module}")
    return _loaded[module]


def install_notebook() -> None:
    """Run the notebook's cells as the trusted side planned them (grader/notebook.py; every cell
    whole where there is no plan), then put the graded names its namespace holds into the graded
    modules, where the checks, and autodiff.nn's MLP3 once reloaded, find them."""
    if "notebook" in _loaded:
        return
    run = notebook_run()
    budget, plan = run.plan(NOTEBOOK_PLAN)
    run_student("running the notebook", run.replay, plan, budget)
    names = run.graded_names()
    for module in GRADED_MODULES:
        try:
            _loaded.setdefault(module, importlib.import_module(f"autodiff.{module}"))
        except BaseException:  # a %%writefile module that fails: reported when that module is asked for
            continue
        for name, home in GRADED.items():
            if home == module and name in names:
                setattr(_loaded[module], name, names[name])
    _loaded["notebook"] = run


_notebook: list[cells.NotebookRun] = []  # this process's NotebookRun, once made


def notebook_run() -> cells.NotebookRun:
    if not _notebook:
        _notebook.append(cells.NotebookRun(NOTEBOOK))
    return _notebook[0]


def notebook_cell(request: dict[str, Any]) -> dict[str, Any]:
    """One cell of the trusted side's first run of the notebook (grader/notebook.py), in this
    group's shell; a fresh shell first replays the cells the trusted side has kept so far."""
    fresh = not _notebook
    run = notebook_run()
    if fresh:
        run_student("running the notebook", run.replay, request["kept"], request["budget"])
    outcome = run_student(f"cell {request['cell']}", run.run, request["cell"], request["budget"])
    outcome["defined"] = run.defined()
    return outcome


def resolve(name: str) -> Any:
    module = load_module(GRADED[name])
    if not hasattr(module, name):
        where = "the notebook" if NOTEBOOK.is_file() else f"{GRADED[name]}.py"
        raise student_exception(f"looking up {name}", NameError(f"{name} is not defined in {where}"))
    return getattr(module, name)


def describe(value: object, depth: int = 0) -> dict[str, Any]:
    """What student code returned, as plain data the trusted side can judge."""
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray:  # a subclass (np.matrix, a masked array): its base array, as the engine's
            value = np.ndarray.view(value, np.ndarray)  # np.asarray reads it; the C-level view runs none of its methods
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


def call(request: dict[str, Any]) -> dict[str, Any]:
    """forward(ctx, *inputs, **options), then backward(ctx, grad_output) if one is given; the
    inputs and grad_output as the op left them too, unless the request says `unchanged: false`
    (the scale checks, which compare no such thing, need not carry them back)."""
    from autodiff.tensor import Context

    function = resolve(request["name"])
    inputs = [np.array(x, copy=True) for x in request["inputs"]]
    needs = request["needs_input_grad"]
    ctx = Context() if needs is None else Context(needs_input_grad=tuple(needs))  # None: made by hand, as a student's test makes it
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in request["options"].items()}
    output = run_student(f"{request['name']}.forward", function.forward, ctx, *inputs, **options)
    # Described under run_student too: a returned object (a list subclass, say) can run code of its own.
    reply = {"output": run_student(f"{request['name']}.forward", describe, output)}
    carry_back = request.get("unchanged") is not False
    if carry_back and reply["output"].get("kind") == "ndarray":  # as forward returned it: backward may change it
        reply["output"] = {**reply["output"], "array": np.array(reply["output"]["array"], copy=True)}
    if request.get("grad_output") is not None:
        grad_output = np.array(request["grad_output"], copy=True)
        grads = run_student(f"{request['name']}.backward", function.backward, ctx, grad_output)
        reply["grads"] = run_student(f"{request['name']}.backward", describe, grads)
        if carry_back:
            reply["grad_output_after"] = grad_output
            if isinstance(output, np.ndarray):  # the engine's output tensor holds this very array
                reply["output_after"] = np.ndarray.view(output, np.ndarray)
    if carry_back:
        reply["inputs_after"] = inputs
    return reply


def call_graph(request: dict[str, Any]) -> dict[str, Any]:
    """A small graph through the course's engine: `steps` apply the graded op (or the course's Add)
    to earlier values; the last value's backward is seeded with `seed`. Returns the output, each
    leaf's .grad and the seed array as the backward left it (an op may change grad_output in place)."""
    from autodiff.tensor import Function, Tensor, reduce_grad_to_shape

    class Add(Function):  # the course's Add, kept here: the student's ops.py holds the other, and a bug there must not cost this op
        @staticmethod
        def forward(ctx: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            ctx.shapes = a.shape, b.shape
            return a + b

        @staticmethod
        def backward(ctx: Any, grad_output: np.ndarray) -> tuple[np.ndarray, ...]:
            # one array for both inputs when nothing was broadcast, as the course's Add
            return tuple(reduce_grad_to_shape(grad_output, shape) for shape in ctx.shapes)

    function = resolve(request["name"])
    values = [Tensor(np.array(leaf, copy=True), requires_grad=wanted)
              for leaf, wanted in zip(request["leaves"], request["requires_grad"], strict=True)]
    leaves = list(values)
    for step in request["steps"]:
        op = Add if step["op"] == "Add" else function
        options = {key: tuple(value) if isinstance(value, list) else value for key, value in step.get("options", {}).items()}
        values.append(run_student(f"{request['name']} in a graph", op.apply, *[values[i] for i in step["args"]], **options))
    seed = np.array(request["seed"], copy=True)
    run_student(f"backward through a graph of {request['name']}", values[-1].backward, seed)
    return run_student(f"{request['name']} in a graph", lambda: {
        "output": describe(values[-1].data), "grads": [describe(leaf.grad) for leaf in leaves], "seed_after": seed})


def call_regularizer(request: dict[str, Any]) -> dict[str, Any]:
    """l2_penalty(weights, lam) or l2_grad(weights, lam) on Tensors built from the request."""
    from autodiff.tensor import Tensor

    function = resolve(request["name"])
    weights = []
    for data, grad in zip(request["weights"], request["grads"], strict=True):
        weights.append(Tensor(np.array(data, copy=True), requires_grad=True))
        weights[-1].grad = None if grad is None else np.array(grad, copy=True)
    value = run_student(request["name"], function, weights, request["lam"])
    # Read under run_student too: what student code returned, or left in .grad, can run code of its own.
    return run_student(request["name"], lambda: {"value": describe(value), "data_after": [w.data for w in weights],
                                                 "grads_after": [describe(w.grad) for w in weights]})


def mnist_gradients(request: dict[str, Any]) -> dict[str, Any]:
    """Stream MLP3's loss and gradients, step after step, to the SGD loop of the trusted side
    (grader/mnist/loop.py), which owns the weights, the batch order, the update and the test accuracy.

    Per epoch, the trusted side sends the epoch's order of the training set (batches of
    `batch_size` in turn) and its weights; for each batch, the loss and SGD's update of every
    parameter, lr · its gradient, of the course's MLP3 built from the student's ops, go back as one
    frame (transport.WorkerEnd.send_updates, through the exchange file's ring); then this side
    applies to its own copy of the weights what the trusted side accepts (transport.accepted_update),
    so that it needs no round trip per step (what it computes from that copy is checked like any
    other reply). The request's fields open the transfer's end (transport.worker_end). Test images
    never come here."""
    for module in ("ops", "activations", "losses"):
        load_module(module)
    from autodiff.losses import CrossEntropyLoss
    for given in ("autodiff.nn", "autodiff.train"):
        if given in sys.modules:  # a notebook imported it before its own names were installed: bind them again
            run_student(f"reloading {given}", importlib.reload, sys.modules[given])
    from autodiff.nn import MLP3
    from autodiff.tensor import Tensor
    from autodiff.train import one_hot, prepare_images

    data = SCRATCH / request["data_dir"]  # a folder inside the scratch copy, wherever the sandbox mounts it
    # uint8, prepared a batch at a time: the values of preparing the whole set first, without its
    # 188 MB of float32 to fill before the first step, nor a gather from them for every batch.
    images = np.load(data / "train_images.npy", allow_pickle=False)[:request["train_examples"]]
    targets = one_hot(np.load(data / "train_labels.npy", allow_pickle=False)[:request["train_examples"]])
    batch_size, lr = request["batch_size"], request["lr"]
    model = MLP3(seed=request["seed"])
    parameters = model.parameters()
    shapes = [parameter.data.shape for parameter in parameters]

    def load_weights(weights: np.ndarray) -> None:
        offset = 0
        for parameter in parameters:
            size = parameter.data.size
            parameter.data = weights[offset:offset + size].reshape(parameter.data.shape)
            offset += size

    def step(batch: np.ndarray) -> tuple[float, list[dict[str, Any]]]:
        for parameter in parameters:
            parameter.grad = None
        loss = CrossEntropyLoss.apply(model(Tensor(prepare_images(images[batch]))), targets[batch])
        loss.backward()
        return float(loss.data), [describe(parameter.grad) for parameter in parameters]

    def update(sent: list[Any]) -> None:  # the trusted side's SGD step; a step it refuses stops the training there
        for parameter, described, shape in zip(parameters, sent, shapes, strict=True):
            with contextlib.suppress(transport.StepRefused):
                if (accepted := transport.accepted_update(described, shape)) is not None:
                    parameter.data -= accepted

    with transport.worker_end(data, request) as end:
        for order, weights in end.epochs():
            load_weights(weights)
            for start in range(0, len(order), batch_size):
                if end.stopped(0):
                    return {}
                loss, grads = run_student("training MLP3", step, order[start:start + batch_size])
                sent = run_student("training MLP3", end.send_updates, loss, grads, shapes, lr)
                if sent is None:
                    return {}
                run_student("training MLP3", update, sent)
    return {}


def hello(request: dict[str, Any]) -> dict[str, Any]:
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "ipython": importlib.util.find_spec("IPython") is not None}  # what runs a notebook's cells


def import_module(request: dict[str, Any]) -> dict[str, Any]:
    load_module(request["module"])
    return {}


COMMANDS = {"hello": hello, "import": import_module, "call": call, "regularizer": call_regularizer, "notebook_cell": notebook_cell,
            "mnist_gradients": mnist_gradients, "graph": call_graph}


def answer(request: dict[str, Any]) -> tuple[list[Any], bool]:
    """The reply frame to a request (its buffers), and whether it holds a result: {"result": ...},
    or {"raised": details} when student code raised or its result cannot be sent. The supervisor
    adds the rest."""
    try:
        reply = {"result": COMMANDS[request["command"]](request)}
    except StudentException as error:
        reply = {"raised": error.details}
    try:
        return protocol.encode_frame(reply), "result" in reply
    except protocol.ProtocolError as error:
        return protocol.encode_frame({"raised": {"phase": "replying", "type": "ProtocolError", "message": str(error)}}), False


def serve(requests: int, replies: int) -> None:
    """Answer request frames until the supervisor closes the pipe."""
    while (frame := protocol.read_frame(requests)) is not None:
        protocol.write_frame(replies, answer(protocol.decode_frame(*frame))[0])
