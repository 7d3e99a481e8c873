"""How `make test` spreads the suite over its test processes (pytest-xdist, `--dist loadgroup`).

- Test groups: pytest-xdist sends the tests of one `xdist_group` to one test process by adding
  `@group` to their ids, but with pytest 9.2 its way of doing so (`item._nodeid`) changes nothing,
  and every group was silently spread over all processes (each built the module's shared fixture
  again). The ids are given their `@group` here when xdist's own hook left them without it.
- Gradings shared across test processes: `grading.graded_once` keeps its reports in one folder
  of the run, which every test process of it sees.
- Order: the slowest tests first (those marked `long`, then the `slow` ones), the quick ones last,
  so that the test processes finish close together (pytest-xdist hands out the groups first,
  largest first, then the other tests in this order).
"""
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def start_rank(item):
    """Long tests first, then those that grade whole submissions, then grader/checks (run directly
    on the reference: a worker, MNIST's training), the quick tests last."""
    if item.get_closest_marker("long"):
        return 0
    if item.get_closest_marker("slow"):
        return 1
    return 2 if not item.path.is_relative_to(TESTS) else 3


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=start_rank)  # stable: the files' order within each rank
    if getattr(config.option, "loadgroup", False):  # set on xdist's test processes by --dist loadgroup
        for item in items:
            groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                             for mark in item.iter_markers("xdist_group")})
            if groups and not item.nodeid.endswith("@" + "_".join(groups)):
                _rename(item, f"{item.nodeid}@{'_'.join(groups)}")


def _rename(item, nodeid):
    """What pytest-xdist does to give a test its group, for the pytest that keeps the id as a NodeId."""
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid
    assert item.nodeid == nodeid, f"could not put {item.nodeid} in its xdist group"


@pytest.fixture(scope="session", autouse=True)
def course_secret(tmp_path_factory):
    """The course's secret salt (grader/rubric.py, secret_file) of this run, in its own temporary
    folder: no test reads or makes the checkout's course-secret.txt. Kept already and fixed, so that
    whatever grades with it (a Gradescope build, `grader grade` with the course's rubric) draws the
    same inputs in every test, whatever ran before. Tests of its making point elsewhere."""
    path = tmp_path_factory.getbasetemp() / "course-secret.txt"
    path.write_text("# the test suite's course secret\nthe test suite's course secret\n")
    before = os.environ.get("AUTODIFF_COURSE_SECRET")
    os.environ["AUTODIFF_COURSE_SECRET"] = str(path)
    yield path
    if before is None:
        del os.environ["AUTODIFF_COURSE_SECRET"]
    else:
        os.environ["AUTODIFF_COURSE_SECRET"] = before


@pytest.fixture(scope="session", autouse=True)
def shared_gradings(request, tmp_path_factory):
    """The folder where graded_once keeps its reports: the run's own temporary folder, which xdist's
    test processes share (each of them works in a `popen-gwN` folder inside it)."""
    from tests.support import grading

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if hasattr(request.config, "workerinput") else base) / "shared-gradings"
    folder.mkdir(exist_ok=True)
    grading.SHARED_GRADINGS = folder
    yield folder
    grading.SHARED_GRADINGS = None
