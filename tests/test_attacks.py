"""Submissions that try to cheat or to take the grader down (the table is in tests/support/attacks.py): each earns
exactly what the honest submission with the same planted bug earns, group by group, leaks nothing,
leaves nothing running, and the grader finishes. Run at every isolation level `docs/security.md`'s table
says it holds at, `process` included (`make attacks` measures the same runs); an attack a level cannot
be expected to stop, or a level this machine lacks, is skipped with the reason."""
import pytest

from grader.sandbox.levels import ISOLATION_LEVELS
from tests.support.attacks import ATTACKS, run_attack, skip_reason

pytestmark = pytest.mark.slow  # every test here grades whole submissions


@pytest.mark.parametrize("level", ISOLATION_LEVELS)
@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_earns_nothing_and_leaves_the_rest_graded(attack, level):
    reason = skip_reason(attack, level)
    if reason:
        pytest.skip(reason)
    outcome = run_attack(attack, level)
    assert outcome.problems == []
