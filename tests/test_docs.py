"""The documentation: a short front door, links that resolve, figures that match the results,
and nothing that points outside the repository."""
import re
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", document.read_text()):
        if not re.match(r"[a-z]+:", target):
            assert (document.parent / target).exists(), f"{document.name} links to {target}, which does not exist"


def test_the_figures_in_the_docs_are_what_the_results_say():
    completed = subprocess.run([sys.executable, "-m", "tools.make_docs", "--check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_the_attack_table_shows_every_run_that_did_not_hold_as_failed():
    """benchmarks/attacks.py's outcomes as it writes them (held, FAILED, not applicable): a failure is never shown as n/a."""
    from tools.make_docs import attacks
    runs = [{"attack": "a", "level": "namespace", "outcome": "held"},
            {"attack": "a", "level": "process", "outcome": "FAILED", "problems": ["Mul: 0/8"]},
            {"attack": "a", "level": "uid", "outcome": "not applicable", "reason": "a level this attack's defence is beyond"}]
    data = {"machine": {"levels": {"namespace": True, "uid": True, "process": True}}, "runs": runs,
            "counts": {"attacks": 1, "runs": 2, "held": 1, "failed": 1, "unearned_points": 0, "grader_crashes": 0, "other_groups_graded": "1 of 2"},
            "isolation_cost": {"ratio_to_process": {"process": 1.0}, "repeats": 1, "goal": 1.15}}
    assert "| a | held | n/a | **failed** |" in attacks(data)


def test_nothing_in_the_project_refers_to_the_shared_folder_outside_it():
    outside = "../" + "shared"  # spelled apart, so that this file is not a hit of its own search
    found = subprocess.run(["git", "grep", "-l", "-F", outside], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    assert found == []


def test_the_spine_picture_names_modules_that_exist():
    """docs/grading.md's picture of the grader names its modules by file: each must still be one."""
    text = (ROOT / "docs" / "grading.md").read_text()
    picture = re.search(r"## The spine in one picture\n\n```text\n(.*?)```", text, re.S).group(1)
    named = set(re.findall(r"([\w/]+\.py)\b", picture))
    modules = {path.relative_to(ROOT / "grader").as_posix() for path in (ROOT / "grader").rglob("*") if path.is_file()}
    missing = {name for name in named if not any(module == name or module.endswith("/" + name) for module in modules)}
    assert named and not missing, f"the picture names files grader/ no longer has: {sorted(missing)}"
