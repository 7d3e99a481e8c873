"""The graded contract is declared once (grader/sandbox/protocol.py); the rubric, the cases, the
oracle and the worker agree with it, and adding a graded op takes exactly the places that
docs/grading.md ("Adding a graded op") names."""
import json
import shutil
import subprocess
import sys

import pytest

from _grading import fast_rubric_text
from _paths import ROOT
from grader import DEFAULT_RUBRIC, GRADED
from grader.checks import oracle
from grader.checks.cases import CASES, SCALE_CASES
from grader.rubric import load_rubric
from grader.sandbox.protocol import CHECK_KINDS, FUNCTION_KINDS, WHOLE_MODEL

pytestmark = pytest.mark.xdist_group("project-copy")  # one test process builds the module's fixture


def contract_problems(graded, rubric, cases, forward, input_names):
    """Every way the rubric, the cases and the oracle can disagree with the contract."""
    problems = []
    groups = {group for group, _ in rubric.points}
    problems += [f"the rubric grades {g}, which the contract does not declare" for g in groups - {*graded, WHOLE_MODEL}]
    problems += [f"the contract declares {name}, which the rubric does not grade" for name in set(graded) - groups]
    problems += [f"the rubric has a kind of check no test defines: {g} · {k}" for g, k in rubric.points if k not in CHECK_KINDS]
    functions = {g for g, k in rubric.points if k in FUNCTION_KINDS}
    problems += [f"{g} is graded at scale but has no scale case" for g, k in rubric.points if k == "scale" and g not in SCALE_CASES]
    for table, what in ((cases, "cases"), (forward, "an oracle formula"), (input_names, "input names")):
        problems += [f"{name} is graded as a Function but has no {what}" for name in functions - set(table)]
        problems += [f"{name} has {what} but is not graded as a Function" for name in set(table) - functions]
    return problems


def test_the_rubric_cases_and_oracle_agree_with_the_contract():
    assert contract_problems(GRADED, load_rubric(DEFAULT_RUBRIC), CASES, oracle.FORWARD, oracle.INPUT_NAMES) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda g, c, f, n: g.pop("Log"), "the rubric grades Log, which the contract does not declare"),
    (lambda g, c, f, n: c.pop("Softmax"), "Softmax is graded as a Function but has no cases"),
    (lambda g, c, f, n: f.update(Exp=None), "Exp has an oracle formula but is not graded as a Function"),
    (lambda g, c, f, n: g.update(Exp="activations"), "the contract declares Exp, which the rubric does not grade"),
])
def test_a_disagreement_is_named(break_it, expected):
    graded, cases, forward, names = dict(GRADED), dict(CASES), dict(oracle.FORWARD), dict(oracle.INPUT_NAMES)
    break_it(graded, cases, forward, names)
    assert expected in contract_problems(graded, load_rubric(DEFAULT_RUBRIC), cases, forward, names)


def test_the_worker_takes_the_contract_from_the_protocol_module():
    worker = (ROOT / "grader" / "sandbox" / "worker.py").read_text()
    assert "from protocol import" in worker and '"Mul": "ops"' not in worker


# -- adding a graded op, exactly as docs/grading.md says -------------------------------------
EXP_REFERENCE = '''

class Exp(Function):
    """y = e^x, element-wise.  Backward: dX = g ⊙ e^x."""

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION compute np.exp(x) and save what backward needs
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION return g * e^x
        (y,) = ctx.saved_tensors
        return grad_output * y
        # END SOLUTION
'''
EXP_RUBRIC_LINE = "Exp              = { forward = 1, backward = 2 }\n"
ADDING_AN_OP = [  # the places, in the order the docs give them: (file, anchor, text put after it)
    ("grader/sandbox/protocol.py", '"ReLU": "activations", ', '"Exp": "activations", '),
    ("solutions/autodiff/activations.py", None, EXP_REFERENCE),
    ("grader/checks/oracle.py", '"Log": lambda x: np.log(np.maximum(x, EPS)),\n', '    "Exp": np.exp,\n'),
    ("grader/checks/oracle.py", '"Log": ("x",), ', '"Exp": ("x",), '),
    ("grader/checks/cases.py", '\nCASES = {\n', '    "Exp": [Case("3x4", [normal(3, 4)]), Case("2x3x4", [normal(2, 3, 4)])],\n'),
    ("grader/rubric.toml", "[checks]\n", EXP_RUBRIC_LINE),
]


@pytest.fixture(scope="module")
def project_with_exp(tmp_path_factory):
    """A copy of the project with a graded Exp added through the documented places, and its
    starter regenerated."""
    copy = tmp_path_factory.mktemp("project")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in tracked)):
        if not name.startswith("datasets/") and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / "datasets").symlink_to(ROOT / "datasets")
    for place, anchor, text in ADDING_AN_OP:
        path = copy / place
        source = path.read_text()
        if anchor is None:
            source += text
        else:
            assert source.count(anchor) == 1, f"{place}: the anchor {anchor!r} moved"
            source = source.replace(anchor, anchor + text)
        path.write_text(source)
    subprocess.run([sys.executable, "tools/make_starter.py"], cwd=copy, check=True, capture_output=True)
    (copy / "rubric-fast.toml").write_text(fast_rubric_text().replace("[checks]\n", "[checks]\n" + EXP_RUBRIC_LINE))
    return copy


def grade_in(project, submission, out):
    completed = subprocess.run([sys.executable, "-m", "grader", "grade", submission, "--out", out, "--rubric",
                                "rubric-fast.toml", "--isolation", "process"], cwd=project, capture_output=True,
                               text=True, timeout=600, env={"PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((project / out).read_text())


@pytest.mark.slow
def test_an_op_added_through_the_documented_places_is_graded(project_with_exp):
    report = grade_in(project_with_exp, "solutions", "reference.json")
    exp = {t["kind"]: t for t in report["tests"] if t["group"] == "Exp"}
    assert set(exp) == {"forward", "backward"} and all(t["status"] == "passed" for t in exp.values())
    assert report["score"] == report["max_score"] == 103
    assert "Exp" not in report["submission"]["missing"]
    assert "class Exp(Function)" in (project_with_exp / "starter" / "autodiff" / "activations.py").read_text()


@pytest.mark.slow
def test_a_wrong_added_op_loses_only_its_own_points(project_with_exp):
    wrong = project_with_exp / "wrong"
    shutil.copytree(project_with_exp / "solutions", wrong)
    path = wrong / "autodiff" / "activations.py"
    path.write_text(path.read_text().replace("return grad_output * y\n", "return y\n"))
    report = grade_in(project_with_exp, "wrong", "wrong.json")
    lost = {t["name"] for t in report["tests"] if t["score"] < t["max_score"]}
    assert lost == {"Exp · backward"}
    assert "does not use grad_output" in next(t["output"] for t in report["tests"] if t["name"] == "Exp · backward")


@pytest.mark.parametrize("old, new, message", [
    ("[checks]\n", "[checks]\nExp = { forward = 1 }\n", "checks.Exp: not a graded name"),
    ("{ value = 4 }", "{ value = 4, values = 1 }", "checks.l2_penalty.values: not a kind of check"),
])
def test_a_rubric_that_grades_outside_the_contract_is_refused(tmp_path, old, new, message):
    from grader.rubric import RubricError

    text = DEFAULT_RUBRIC.read_text().replace(old, new)
    (tmp_path / "rubric.toml").write_text(text)
    with pytest.raises(RubricError, match=message):
        load_rubric(tmp_path / "rubric.toml")
