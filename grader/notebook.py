"""Notebooks: keep what defines the graded names, skip what would run.

Policy, "definitions only": from each code cell keep imports, `def`, `class` and assignments
whose value calls nothing (constants such as `EPS = 1e-12`); skip every other top-level
statement (training loops, plots, prints) and report it. IPython magics and `!shell` lines are
dropped. Imports are kept inside try/except, so a missing optional package (matplotlib, say)
does not cost the definitions after it. A cell that does not parse is skipped whole.
"""
import ast
import re

import nbformat

MAGIC = re.compile(r"^\s*([%!]|\w+\s*=\s*[%!])")
KEPT_CELL_MAGICS = {"%%time", "%%timeit", "%%capture"}  # these only wrap Python code


class NotebookError(Exception):
    pass


def definitions_from_notebook(text):
    """Return (module source, skipped) for a notebook's JSON text; skipped lists 'cell N, line M: code'."""
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for JSON and schema problems
        raise NotebookError(f"{type(error).__name__}: {str(error)[:200]}") from None
    parts = ['"""Definitions taken from the student\'s notebook by the grader (definitions only)."""\n']
    skipped = []
    code_cells = [cell for cell in notebook.cells if cell.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, 1):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = source.splitlines()
        if lines and lines[0].startswith("%%"):
            if lines[0].split()[0] not in KEPT_CELL_MAGICS:
                skipped.append(f"cell {number}: the whole cell ({lines[0].split()[0]} magic)")
                continue
            lines = [""] + lines[1:]
        lines = ["" if MAGIC.match(line) else line for line in lines]
        try:
            tree = ast.parse("\n".join(lines))
        except (SyntaxError, ValueError) as error:
            skipped.append(f"cell {number}: the whole cell (it does not parse: {getattr(error, 'msg', error)})")
            continue
        for node in tree.body:
            code = _segment(lines, node)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                indented = "\n".join("    " + line for line in code.splitlines())
                parts.append(f"# cell {number}\ntry:\n{indented}\nexcept Exception:\n    pass\n")
            elif _is_definition(node):
                parts.append(f"# cell {number}\n{code}\n")
            else:
                first = code.strip().splitlines()[0] if code.strip() else ""
                skipped.append(f"cell {number}, line {node.lineno}: {first[:70]}")
    return "\n".join(parts), skipped


def _is_definition(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        calls = any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.NamedExpr)) for n in ast.walk(node.value))
        return all(isinstance(t, ast.Name) for t in targets) and not calls
    return False


def _segment(lines, node):
    """The statement's source, decorators included."""
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1:node.lineno - 1] + [ast.get_source_segment("\n".join(lines), node)])


def check_cells_run(inputs, out="build/notebook.ipynb"):
    """The handout notebook's check cell: the cells run so far (IPython's `In`, oldest first, so a
    cell run again overrides its earlier run; this cell left out) become a notebook, checked like
    a submission by `python -m grader check` in a separate process. Nothing needs saving first,
    which Colab could not do to a local file anyway."""
    import subprocess
    import sys
    from pathlib import Path

    cells = [nbformat.v4.new_code_cell(source) for source in inputs if source.strip() and "check_cells_run(" not in source]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(nbformat.writes(nbformat.v4.new_notebook(cells=cells)), encoding="utf-8")
    completed = subprocess.run([sys.executable, "-m", "grader", "check", out], capture_output=True, text=True)
    print(completed.stdout + completed.stderr)
