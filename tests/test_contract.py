"""The graded contract is declared once (grader/sandbox/contract.py); the rubric, the cases, the
oracle and the worker agree with it, and adding a graded op takes exactly the places that
docs/grading.md ("Adding a graded op") names."""
import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from grader import DEFAULT_RUBRIC, GRADED
from grader.checks.opspec import SPECS
from grader.rubric import load_rubric
from grader.sandbox.contract import CHECK_KINDS, FUNCTION_KINDS, WHOLE_MODEL
from tests.support.grading import fast_rubric_text
from tests.support.paths import ROOT

pytestmark = pytest.mark.xdist_group("project-copy")  # one test process builds the module's fixture


def contract_problems(graded, rubric, specs):
    """Every way the rubric and the ops' declarations (opspec.SPECS) can disagree with the contract."""
    problems = []
    groups = {group for group, _ in rubric.points}
    problems += [f"the rubric grades {g}, which the contract does not declare" for g in groups - {*graded, WHOLE_MODEL}]
    problems += [f"the contract declares {name}, which the rubric does not grade" for name in set(graded) - groups]
    problems += [f"the rubric has a kind of check no test defines: {g} · {k}" for g, k in rubric.points if k not in CHECK_KINDS]
    functions = {g for g, k in rubric.points if k in FUNCTION_KINDS}
    problems += [f"{name} is graded as a Function but has no OpSpec" for name in functions - set(specs)]
    problems += [f"{name} has an OpSpec but is not graded as a Function" for name in set(specs) - functions]
    needed = {"scale": ("scale", "a scale case"), "search": ("domain", "a domain"), "stability": ("stability", "stability cases")}
    for group, kind in rubric.points:
        field, what = needed.get(kind, (None, None))
        if field and group in specs and not getattr(specs[group], field):
            problems.append(f"{group} is graded by {kind} but its OpSpec has no {what}")
    problems += [f"{name}'s OpSpec has no cases" for name, spec in specs.items() if not spec.cases]
    return problems


def test_the_rubric_cases_and_oracle_agree_with_the_contract():
    assert contract_problems(GRADED, load_rubric(DEFAULT_RUBRIC), SPECS) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda g, s: g.pop("Log"), "the rubric grades Log, which the contract does not declare"),
    (lambda g, s: s.pop("Softmax"), "Softmax is graded as a Function but has no OpSpec"),
    (lambda g, s: s.update(Exp=s["Log"]), "Exp has an OpSpec but is not graded as a Function"),
    (lambda g, s: g.update(Exp="activations"), "the contract declares Exp, which the rubric does not grade"),
    (lambda g, s: s.update(Log=dataclasses.replace(s["Log"], stability=[])), "Log is graded by stability but its OpSpec has no stability cases"),
    (lambda g, s: s.update(Mul=dataclasses.replace(s["Mul"], domain=None)), "Mul is graded by search but its OpSpec has no a domain"),
])
def test_a_disagreement_is_named(break_it, expected):
    graded, specs = dict(GRADED), dict(SPECS)
    break_it(graded, specs)
    assert expected in contract_problems(graded, load_rubric(DEFAULT_RUBRIC), specs)


def test_the_worker_takes_the_contract_from_the_contract_module():
    worker = (ROOT / "grader" / "sandbox" / "worker.py").read_text()
    assert "from contract import" in worker and '"Mul": "ops"' not in worker


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
EXP_RUBRIC_LINE = "Exp              = { forward = 1, backward = 2, search = 1 }\n"
EXP_SPEC = """    OpSpec(
        "Exp", ("x",), np.exp, lambda g, x: (g * np.exp(x),), size=lambda g, x: (np.exp(x), (np.abs(g) * np.exp(x),)),
        domain=lambda: unary_domain(region(-3.0, 3.0, (0.0, 1.0, -1.0))), cases=[Case("3x4", [normal(3, 4)]), Case("2x3x4", [normal(2, 3, 4)])]),
"""
ADDING_AN_OP = [  # the places, in the order the docs give them: (file, anchor, text put after it)
    ("grader/sandbox/contract.py", '"ReLU": "activations", ', '"Exp": "activations", '),
    ("solutions/autodiff/activations.py", None, EXP_REFERENCE),
    ("grader/checks/opspec.py", "\nSPECS = {spec.name: spec for spec in [\n", EXP_SPEC),
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
    subprocess.run([sys.executable, "-m", "tools.make_starter"], cwd=copy, check=True, capture_output=True)
    (copy / "rubric-fast.toml").write_text(fast_rubric_text().replace("[checks]\n", "[checks]\n" + EXP_RUBRIC_LINE))
    return copy


def grade_in(project, submission, out):
    completed = subprocess.run([sys.executable, "-m", "grader", "grade", submission, "--out", out, "--rubric",
                                "rubric-fast.toml", "--isolation", "process"], cwd=project, capture_output=True,
                               text=True, timeout=600, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((project / out).read_text())


@pytest.mark.slow
def test_an_op_added_through_the_documented_places_is_graded(project_with_exp):
    report = grade_in(project_with_exp, "solutions", "reference.json")
    exp = {t["kind"]: t for t in report["tests"] if t["group"] == "Exp"}
    assert set(exp) == {"forward", "backward", "search"} and all(t["status"] == "passed" for t in exp.values())
    assert report["score"] == report["max_score"] == 104
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
    assert lost == {"Exp · backward", "Exp · search"}
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
