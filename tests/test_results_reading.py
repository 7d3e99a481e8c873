"""Reading what student code returns (the trusted side, checking.array_of): real numbers only.
Complex, object, structured, date, time-interval, string and byte arrays are refused with a message
that says what came; never cast (a cast would drop an imaginary part). An ndarray subclass (np.matrix,
a masked array) is read as the course's engine reads it, np.asarray: its base array."""
import tempfile
from pathlib import Path

import numpy as np
import pytest

from grader.checks.checking import CheckFailed, array_of, call_op
from grader.sandbox.client import WorkerClient
from grader.sandbox.launch import scratch_parent
from grader.submission import load_submission, prepare_scratch
from tests.support.grading import reference_copy

MUL_RETURN = "        return a * b\n"
RETURNS = {  # what Mul.forward returns instead of a * b → what the feedback must say
    "complex with the right real part": ("(a * b) + 1e-3j", "returned complex numbers (dtype complex128)"),
    "structured records": ("np.zeros(np.broadcast(a, b).shape, dtype=[('x', 'f8')])", "returned structured records"),
    "dates": ("np.zeros(np.broadcast(a, b).shape, dtype='datetime64[s]')", "returned dates (dtype datetime64[s])"),
    "time intervals": ("np.zeros(np.broadcast(a, b).shape, dtype='timedelta64[s]')", "returned time intervals"),
    "strings": ("(a * b).astype(str)", "returned strings"),
    "bytes": ("(a * b).astype('S8')", "returned bytes"),
    "objects": ("(a * b).astype(object)", "returned an array of dtype object and shape [3, 4] the grader cannot read"),
    "a complex scalar": ("complex(1, 1)", "returned complex, expected"),
}
ACCEPTED = {  # returned real numbers, read exactly as float64
    "float32": "(a * b).astype(np.float32)", "int64 (exact values)": "np.rint(a * b).astype(np.int64)",
    "bool": "(a * b) > 0", "uint8": "np.rint(np.abs(a * b)).astype(np.uint8)",
    # ndarray subclasses, read as the engine's np.asarray reads them: their base array
    "np.matrix": "np.asmatrix(a * b)", "an ndarray subclass": "(a * b).view(type('Tricky', (np.ndarray,), {}))",
    "a masked array": "np.ma.masked_less(a * b, 0)",
}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A worker serving the reference whose Mul.forward returns the expression RETURN names (set by forward_of)."""
    folder = reference_copy(tmp_path_factory.mktemp("reading") / "submission",
                            {"ops": [(MUL_RETURN, "        return eval(RETURN, globals(), locals())\n"),
                                     ("import numpy as np\n", "import numpy as np\nRETURN = 'a * b'\n")]})
    with tempfile.TemporaryDirectory(dir=scratch_parent()) as scratch:
        prepare_scratch(load_submission(folder), scratch)
        with WorkerClient(Path(scratch), "process") as client:
            yield client


def forward_of(student, expression, shape=(3, 4)):
    """Mul.forward's output for `expression`, read as the checks read it."""
    student.stop()  # a fresh worker re-imports ops.py: RETURN is set through its source
    source = Path(student.scratch) / "autodiff" / "ops.py"
    text = source.read_text()
    start = text.index("RETURN = ")
    source.write_text(text[:start] + f"RETURN = {expression!r}" + text[text.index("\n", start):])
    rng = np.random.default_rng(0)
    reply = call_op(student, "Mul", [rng.normal(size=shape), rng.normal(size=shape)])
    return array_of("Mul.forward", reply.get("output"), shape)


@pytest.mark.parametrize("returned", RETURNS, ids=list(RETURNS))
def test_a_result_that_is_not_real_numbers_is_refused_with_what_it_was(student, returned):
    expression, says = RETURNS[returned]
    with pytest.raises(CheckFailed) as refused:
        forward_of(student, expression)
    assert says in str(refused.value)


@pytest.mark.parametrize("returned", ACCEPTED, ids=list(ACCEPTED))
def test_real_numbers_of_any_width_and_bool_are_read_exactly(student, returned):
    got = forward_of(student, ACCEPTED[returned])
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    expected = np.asarray(eval(ACCEPTED[returned], {"np": np}, {"a": a, "b": b}))
    assert got.dtype == np.float64 and np.array_equal(got, expected.astype(np.float64))


def test_a_forged_description_of_a_complex_array_is_refused_too():
    """What the worker says is untrusted: a described 'ndarray' is read only if it holds real numbers."""
    with pytest.raises(CheckFailed, match="returned complex numbers"):
        array_of("Mul.forward", {"kind": "ndarray", "array": np.ones(3, dtype=complex)}, (3,))
    with pytest.raises(CheckFailed, match="could not read"):
        array_of("Mul.forward", {"kind": "ndarray", "array": [1.0, 2.0]}, (2,))
