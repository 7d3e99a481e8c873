"""Submissions that try to cheat or to take the grader down (the table is in tests/support/attacks.py): each earns
exactly what the honest submission with the same planted bug earns, group by group, leaks nothing,
leaves nothing running, and the grader finishes. Run at every sandboxed isolation level (`make attacks`
adds `process`); an attack a level cannot be expected to stop, or a level this machine lacks, is
skipped with the reason."""
import pytest

from grader.sandbox.levels import ISOLATION_LEVELS
from tests.support.attacks import ATTACKS, run_attack, skip_reason

pytestmark = pytest.mark.slow  # every test here grades whole submissions

# The sandboxed levels, where a grading is protected; `process` (a student's own machine: their
# code, their computer) is measured by `make attacks` (benchmarks/attacks.py), which runs every level.
SANDBOXED_LEVELS = [level for level in ISOLATION_LEVELS if level != "process"]


@pytest.mark.parametrize("level", SANDBOXED_LEVELS)
@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_earns_nothing_and_leaves_the_rest_graded(attack, level):
    reason = skip_reason(attack, level)
    if reason:
        pytest.skip(reason)
    outcome = run_attack(attack, level)
    assert outcome.problems == []
