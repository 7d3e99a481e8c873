"""The pytest plugin behind the checks in grader/checks/ (loaded with -p; conftest files are off).

Fixtures: `student`, the worker serving the submission; `rubric`; `mnist`, the training data the worker
may see plus the test data it may not. With --scratch the submission was prepared by
grade.py; without it (pytest run directly, as `make test` does) the checks grade the reference
in solutions/. Each test's CaseResult (results.py) is made here, from its markers and the
CheckFailed it raised, and added to the JSON report as metadata, which is all grade.py reads back.
"""
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .. import DEFAULT_RUBRIC, ROOT
from ..notebook import NOTEBOOK_FILE, as_data, cell_notes, run_notebook
from ..results import CaseResult, GraderFailed
from ..rubric import Rubric, load_rubric
from ..sandbox.client import START_TIMEOUT, SandboxError, TimeBudget, WorkerClient
from ..sandbox.contract import NOTEBOOK_GROUP, WHOLE_MODEL
from ..sandbox.launch import scratch_parent
from ..sandbox.levels import strongest_level
from ..submission import load_submission, prepare_scratch
from .checking import CheckFailed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grader")
    group.addoption("--scratch", help="a submission prepared by the grader (default: the reference in solutions/)")
    group.addoption("--rubric", default=str(DEFAULT_RUBRIC), help="rubric TOML file")
    group.addoption("--isolation", default="auto", help="isolation level of the worker (default: the strongest available)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "group(name): the graded name a check belongs to")
    config.addinivalue_line("markers", "kind(name): the kind of check, as the rubric names it (forward, backward, …)")
    config.addinivalue_line("markers", "case(id): a parametrized case's id in the report")


@pytest.fixture(scope="session")
def scratch(request: pytest.FixtureRequest) -> Iterator[Path]:
    given = request.config.getoption("--scratch")
    if given:
        yield Path(given)
        return
    # Not under pytest's own temporary folders: those are private to this user, and a sandboxed
    # worker runs as another.
    with tempfile.TemporaryDirectory(prefix="autodiff-reference-", dir=scratch_parent()) as folder:
        yield prepare_scratch(load_submission(ROOT / "solutions"), folder)


@pytest.fixture(scope="session")
def rubric(request: pytest.FixtureRequest) -> Rubric:
    return load_rubric(request.config.getoption("--rubric"))


@pytest.fixture(scope="session")
def student(request: pytest.FixtureRequest, scratch: Path) -> Iterator[WorkerClient]:
    """The sandbox serving the submission; for a notebook, after its first run (notebook.py),
    whose plan every group then replays."""
    isolation = request.config.getoption("--isolation")
    rubric = request.getfixturevalue("rubric")
    with WorkerClient(scratch, isolation=strongest_level() if isolation == "auto" else isolation,
                      budget=time_budget(rubric)) as client:
        if (Path(scratch) / NOTEBOOK_FILE).is_file():
            if not client.request("hello", START_TIMEOUT).get("ipython"):  # the supervisor's word, before any student code
                NOTEBOOK_RUN["error"] = ("the sandbox's Python has no IPython, which runs a notebook's cells: install "
                                         "requirements.txt's ipython into it (the Makefile builds it so)")
                raise SandboxError(NOTEBOOK_RUN["error"])
            client.import_seconds = max(client.import_seconds, rubric.limits["notebook_seconds"])
            results, defined = run_notebook(client, scratch, rubric.limits)
            NOTEBOOK_RUN.update(cells=as_data(results), defined=defined, notes=cell_notes(results))
        yield client


NOTEBOOK_RUN: dict[str, Any] = {}  # this grading's notebook run, for the JSON report (grade.py reads it)


def time_budget(rubric: Rubric) -> TimeBudget:
    """The rubric's [limits]; MNIST's share also holds its training budget, a notebook's first
    run all of its own."""
    limits = rubric.limits
    return TimeBudget(limits["total_seconds"], limits["group_seconds"],
                      {WHOLE_MODEL: rubric.mnist["time_budget_seconds"], NOTEBOOK_GROUP: limits["notebook_seconds"]})


@pytest.hookimpl(optionalhook=True)
def pytest_json_modifyreport(json_report: dict[str, Any]) -> None:
    if NOTEBOOK_RUN:
        json_report["notebook"] = NOTEBOOK_RUN


@pytest.fixture(scope="session")
def mnist(scratch: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Training images and labels written where the worker reads them; the test images and labels,
    which stay here."""
    from ..course import expose_mnist

    return expose_mnist(scratch)


@pytest.fixture(scope="session")
def scale_ahead(request: pytest.FixtureRequest, rubric: Rubric) -> Iterator[Future[dict[str, Any]] | None]:
    """The scale checks' expected directional derivatives (test_scale.derivatives_ahead), computed
    in a thread from when first asked for: the MNIST check asks, and runs first, so that they are
    computed while MNIST trains (the worker computing, this process mostly waiting) rather than in
    the scale checks' own time, of which they are a large part; for the scale checks collected only.
    None when none is to run (a selection, or a handout whose rubric does not ship them)."""
    def derivatives(ops):
        from .test_scale import derivatives_ahead
        return derivatives_ahead(rubric.scale_side, rubric.salt, ops)

    yield from computed_ahead(request, "scale", derivatives)


@pytest.fixture(scope="session")
def search_ahead(request: pytest.FixtureRequest, rubric: Rubric) -> Iterator[Future[dict[str, Any]] | None]:
    """The search checks' draws (test_search.draws_ahead), generated in a thread from when first
    asked for, as scale_ahead's derivatives are: while MNIST trains. Drawing them is most of what
    the search costs a correct submission. None when no search is to run."""
    def draws(ops):
        from .test_search import draws_ahead
        return draws_ahead(rubric.salt, ops)

    yield from computed_ahead(request, "search", draws)


def computed_ahead(request: pytest.FixtureRequest, kind: str, compute: Callable[[list[str]], Any]) -> Iterator[Future | None]:
    """compute(ops) for the ops of the `kind` checks collected, as a Future, in a thread of its own
    from when first asked for; None when no such check is to run."""
    ops = [item.callspec.params["op"] for item in request.session.items  # type: ignore[attr-defined]  # a check's items: Functions
           if check_kind(item) == kind]
    if not ops:
        yield None
        return
    with ThreadPoolExecutor(1, thread_name_prefix=f"{kind}-ahead") as thread:
        yield thread.submit(compute, ops)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The checks of one group run one after another: the sandbox keeps a worker child per group,
    and every change of group forks a fresh one that imports the student's modules again (a
    notebook's cells replayed, their imports included: matplotlib, say). MNIST's group first (see
    scale_ahead); otherwise stable: the order within a group, and of the groups, stay the files'."""
    checks = Path(__file__).resolve().parent
    if not all(Path(item.path).parent == checks for item in items):  # the project's own test run: leave it be
        return
    first_seen: dict[str | None, int] = {}
    for item in items:
        first_seen.setdefault(check_group(item), len(first_seen))
    items.sort(key=lambda item: (check_group(item) != WHOLE_MODEL, first_seen[check_group(item)]))


def check_group(item: pytest.Item) -> str | None:
    """The graded name a test belongs to: its `op` parameter, or its `group` marker."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "op" in params:
        return params["op"]
    marker = item.get_closest_marker("group")
    return marker.args[0] if marker else None


def check_kind(item: pytest.Item) -> str | None:
    """The kind of check a test is: its `kind` marker."""
    marker = item.get_closest_marker("kind")
    return marker.args[0] if marker else None


def case_id(item: pytest.Item) -> str:
    """A test's case id in the report: its `case` marker ("-" for a check of one case)."""
    marker = item.get_closest_marker("case")
    return marker.args[0] if marker else "-"


CASE = pytest.StashKey[CaseResult]()
SECONDS = pytest.StashKey[float]()
TRAINING = pytest.StashKey[dict]()  # the MNIST check's training (accuracy, curve, …), set by the check


@pytest.hookimpl(optionalhook=True)
def pytest_json_runtest_metadata(item: pytest.Item, call: pytest.CallInfo[None]) -> dict[str, Any]:
    """Each test's CaseResult, for grade.py (pytest-json-report's hook, called after setup, call
    and teardown): made where its verdict is known, the call (or a setup that failed), its seconds
    those of all three. Its verdict is the check's own: it passed, or it failed the submission
    (CheckFailed); anything else that ended it is the grader's failure, no verdict (a teardown's
    too, undoing the call's)."""
    item.stash[SECONDS] = item.stash.get(SECONDS, 0.0) + call.duration
    if call.when == "call" or call.excinfo is not None:
        item.stash[CASE] = case_result(item, call.when, call.excinfo.value if call.excinfo else None)
    if CASE not in item.stash:  # a setup that went well: nothing decided yet
        return {}
    return {"case": replace(item.stash[CASE], seconds=item.stash[SECONDS]).to_data()}


def case_result(item: pytest.Item, when: str, error: BaseException | None) -> CaseResult:
    """The case's result as the check left it (its seconds are counted apart)."""
    ids: dict[str, Any] = {"group": check_group(item), "kind": check_kind(item), "id": case_id(item), "mnist": item.stash.get(TRAINING, None)}
    if error is None:
        return CaseResult(**ids, status="passed")
    if isinstance(error, CheckFailed):  # the check's verdict on the submission; anything else is the grader's failure
        return CaseResult(**ids, status=error.status, output=str(error), cause=error.cause, fraction=error.fraction)
    where = "setting up" if when == "setup" else "running"
    return CaseResult(**ids, status="error", fraction=0.0, verdict=False,
                      output=f"the grader failed while {where} this check ({type(error).__name__}: {str(error)[:300]})",
                      cause=GraderFailed(type(error).__name__, str(error)[:300]))
