"""How `make test` spreads the suite over its test processes (pytest-xdist, `--dist loadgroup`).

- Test groups: pytest-xdist sends the tests of one `xdist_group` to one test process by adding
  `@group` to their ids, but with pytest 9.2 its way of doing so (`item._nodeid`) changes nothing,
  and every group was silently spread over all processes (each built the module's shared fixture
  again). The ids are given their `@group` here when xdist's own hook left them without it.
"""
import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
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
