"""Notebooks: read here as JSON, run in the sandbox as Jupyter runs them (grader/sandbox/cells.py).

Read here, on the trusted side, only what must exist before any cell runs:
- the code cells, each numbered by its place in the notebook, markdown cells counted (the
  numbers a student counts scrolling down; Jupyter's `In [n]` depends on the order they ran);
- a `%%writefile path/<name>.py` cell makes module <name> of the submission (a graded module or
  a helper; a course module's name keeps the course's), laid out before the sandbox starts,
  whose copy of the package is read-only: the cell itself then writes nothing when it runs.
Run in the sandbox, first cell by cell (`run_notebook`, the `notebook` group): each cell under a
budget of its own, timed here; a cell that raises or overruns is reported and the run goes on.
That run decides the plan every group of checks then replays in its own worker (ran or raised:
whole; over budget: up to the statement it was stopped in; stopped the worker: not at all), so a
cell that overran costs its budget once, not once per group. The graded names are those of the
notebook's namespace after the plan ran (a module written by a later %%writefile than the
cell that last bound the name keeps its own). What the worker says about a cell is untrusted data:
it only words the report and shapes the student's own replay.
"""
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from . import GIVEN_MODULES, GRADED
from .sandbox.client import BudgetSpent, StudentException, WorkerClient, WorkerFailure
from .sandbox.contract import NOTEBOOK_GROUP, writefile_module

NOTEBOOK_FILE, PLAN_FILE = "notebook.json", "notebook-plan.json"  # in the scratch folder (sandbox/worker.py)
WRITEFILE_MAGICS = ("%%writefile", "%%file")
CELL_GRACE = 5      # seconds past a cell's budget before the worker is stopped (the worker stops the cell at its budget)
MAX_NEUTRALISED = 20
MAX_LISTED = 200    # cells in the report, and notes about them
OUTCOMES = ("ran", "raised", "over budget")  # what a worker may say of a cell
# The first line of the handout notebook's setup cell, as tools/make_notebook.py writes it: the
# course's cell, which finds the handout's files and installs what the notebook needs. It runs as
# any cell does (the others use its imports); what the sandbox neutralises in it (its %pip) is the
# course's doing, not the student's, and is never reported.
SETUP_MARKER = "# autodiff handout: the setup cell (run it first)"


def is_setup_cell(source: str) -> bool:
    """Is this the handout's setup cell? Its first line is the marker, exactly."""
    return source.partition("\n")[0].rstrip() == SETUP_MARKER


class NotebookError(Exception):
    pass


@dataclass
class Notebook:
    cells: list[dict[str, Any]] = field(default_factory=list)  # code cells: {"number": place in the notebook, "source": text}
    modules: dict[str, str] = field(default_factory=dict)  # module name → source, from %%writefile cells
    notes: list[str] = field(default_factory=list)


@dataclass
class CellResult:
    """What one code cell did in the first run (outcome: ran, raised, over budget, stopped the
    worker, not run), timed on the trusted side."""
    cell: int
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    neutralised: list[str] = field(default_factory=list)


def read_notebook(text: str) -> Notebook:
    """A Notebook for a notebook's JSON text (any nbformat version nbformat reads)."""
    import nbformat  # here, not at the top: grading a folder never needs it, and its import takes time

    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for JSON and schema problems
        raise NotebookError(f"{type(error).__name__}: {str(error)[:200]}") from None
    from IPython.core.inputtransformer2 import TransformerManager  # IPython's own reading of a cell's first lines

    # leading blank lines, a common indent, prompts: linear
    cleanup = cast(list[Callable[[list[str]], list[str]]], TransformerManager().cleanup_transforms)
    parts: dict[str, list[str]]
    result, parts = Notebook(), {}  # parts: module → the bodies its %%writefile cells leave it as, joined once
    for number, cell in enumerate(notebook.cells, 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        result.cells.append({"number": number, "source": source})
        lines = source.splitlines(keepends=True)
        for transform in cleanup:
            lines = transform(lines)
        if lines and lines[0].startswith("%%"):
            magic, _, arguments = lines[0].rstrip().partition(" ")
            if magic in WRITEFILE_MAGICS:
                _writefile(number, arguments, "".join(lines[1:]), result, parts)
    result.modules = {module: "".join(bodies) for module, bodies in parts.items()}
    return result


def _writefile(number, arguments, body, notebook, parts):
    module, appends = writefile_module(arguments)
    shown = f"{WRITEFILE_MAGICS[0]} {arguments.strip()}"
    if module is None:
        return
    if module == "__init__" or module in GIVEN_MODULES:
        notebook.notes.append(f"cell {number}: {shown}: the course's {module}.py is used")
        return
    if appends:
        parts.setdefault(module, []).append(body)
    else:
        parts[module] = [body]
    notebook.notes.append(f"cell {number}: {shown} is module {module} of the submission")


def write_cells(notebook_cells: list[dict[str, Any]], scratch: str | os.PathLike[str]) -> None:
    (Path(scratch) / NOTEBOOK_FILE).write_text(json.dumps({"cells": notebook_cells}), encoding="utf-8")


def run_notebook(client: WorkerClient, scratch: str | os.PathLike[str], limits: dict[str, float]) -> tuple[list[CellResult], list[str]]:
    """The notebook's first run, cell by cell, in the sandbox's `notebook` group; writes the plan
    every other group replays. Returns (a CellResult per code cell, the graded names defined)."""
    scratch = Path(scratch)
    cells = json.loads((scratch / NOTEBOOK_FILE).read_text(encoding="utf-8"))["cells"]
    budget, total = limits["cell_seconds"], limits["notebook_seconds"]
    kept: list[list[int | None]]  # [cell index, statements kept (None: all)]
    results, kept, kept_seconds, spent, defined = [], [], 0.0, 0.0, set()
    for index, cell in enumerate(cells):
        if spent >= total:
            results.append(CellResult(cell["number"], "not run", f"the notebook's {total:g} s were spent by the cells before it"))
            continue
        try:
            replay = client.fresh_child or client.process is None  # a child that has run nothing replays the cells kept
            reply = client.request("notebook_cell", budget + CELL_GRACE + (kept_seconds if replay else 0), group=NOTEBOOK_GROUP,
                                   cell=index, budget=budget, kept=kept if replay else [])
            result, keep, names = _read_reply(reply, cell["number"], budget)
        except BudgetSpent as spent_out:
            result, keep, names = CellResult(cell["number"], "not run", str(spent_out)), False, []
        except WorkerFailure as failure:
            why = (f"it did not stop at its budget of {budget:g} s (did it catch the interruption?)"
                   if failure.status == "timeout" else str(failure))
            result, keep, names = CellResult(cell["number"], "stopped the worker", f"{why}; not run for the checks"), False, []
        except StudentException as raised:  # the replay before it, or the shell itself, failed
            result, keep, names = CellResult(cell["number"], "raised", str(raised)[:300]), False, []
        result.seconds = round(client.last_seconds, 3)
        if is_setup_cell(cell["source"]):
            result.neutralised = []
        spent += client.last_seconds
        if keep is not False:
            kept.append([index, keep])
            kept_seconds += client.last_seconds
            defined = set(names)
        results.append(result)
    (scratch / PLAN_FILE).write_text(json.dumps({"cell_seconds": budget, "cells": kept}), encoding="utf-8")
    return results, [name for name in GRADED if name in defined]


def _read_reply(reply, number, budget):
    """(CellResult, statements to keep in the replay — None for all —, graded names defined)
    from a worker's reply, read as untrusted data."""
    outcome = reply.get("outcome") if reply.get("outcome") in OUTCOMES else "raised"
    neutralised = [str(item)[:80] for item in reply.get("neutralised", [])[:MAX_NEUTRALISED]] \
        if isinstance(reply.get("neutralised"), list) else []
    names = [name for name in reply.get("defined", []) if isinstance(name, str) and name in GRADED] \
        if isinstance(reply.get("defined"), list) else []
    keep, detail = None, ""
    if outcome == "raised":
        detail = f"{str(reply.get('type', '?'))[:100]}: {str(reply.get('message', ''))[:300]}"
    elif outcome == "over budget":
        statement = reply.get("statement")
        keep = statement if isinstance(statement, int) and not isinstance(statement, bool) and statement >= 0 else 0
        detail = (f"stopped at its budget of {budget:g} s, in its statement {keep + 1}: the checks use what the "
                  f"statements before that one define")
    return CellResult(number, outcome, detail, neutralised=neutralised), keep, names


def cell_notes(results: list[CellResult]) -> list[str]:
    """The report's lines for the cells that did not simply run (at most MAX_LISTED, then how many more)."""
    notes = []
    for result in results:
        said = [] if result.outcome == "ran" else [f"{result.outcome}" + (f": {result.detail}" if result.detail else "")]
        if result.neutralised:
            said.append(f"neutralised: {', '.join(result.neutralised)}")
        if said:
            notes.append(f"cell {result.cell}: {'; '.join(said)}")
    return notes[:MAX_LISTED] + ([f"… and {len(notes) - MAX_LISTED} more cells that did not simply run"]
                                 if len(notes) > MAX_LISTED else [])


def as_data(results: list[CellResult]) -> list[dict[str, Any]]:
    """The report's list of the cells (the first MAX_LISTED: a report stays small, whatever the notebook)."""
    return [asdict(result) for result in results[:MAX_LISTED]]


def check_cells_run(inputs: list[str], out: str = "build/notebook.ipynb") -> None:
    """The handout notebook's check cell: the cells run so far (IPython's `In`, oldest first, so a
    cell run again overrides its earlier run; this cell left out) become a notebook, checked like
    a submission by `python -m grader check` in a separate process. Nothing needs saving first,
    which Colab could not do to a local file anyway. Cell n of the report is In[n], the cell
    Jupyter marks [n]: what is not run (In[0], empty inputs, this cell) keeps its place as an
    empty markdown cell, which the numbering counts."""
    import subprocess
    import sys

    import nbformat

    cells = [nbformat.v4.new_code_cell(source) if source.strip() and "check_cells_run(" not in source
             else nbformat.v4.new_markdown_cell("") for source in inputs[1:]]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(nbformat.writes(nbformat.v4.new_notebook(cells=cells)), encoding="utf-8")
    # check=False: the report printed is the answer; a failing check is no error of this cell.
    completed = subprocess.run([sys.executable, "-m", "grader", "check", out], capture_output=True, text=True, check=False)
    print(completed.stdout + completed.stderr)
