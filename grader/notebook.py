"""Notebooks: the graded definitions as they would behave after the notebook ran top to bottom,
without running what neither defines nor feeds them (training loops, plots, prints).

Policy, version 2 (docs/SPEC.md, "Submissions"):
- imports are kept, inside try/except (a missing optional package costs nothing); an import of a
  course module that uses the graded names (`from autodiff.nn import MLP3`) is deferred: the worker
  runs it once the notebook's graded names are installed, so MLP3 is built from them;
- `def` and `class` are kept when the graded names use them (directly or through other kept
  statements); so is any other statement that binds such a name (`EPS = np.float64(1e-12)`,
  an `if` or `try` holding no loop); loops and bare expressions never run;
- the notebook's own engine classes (Tensor, Function, Context, …) become the course's: the ops
  always run on the course's engine;
- a `%%writefile …/<name>.py` cell becomes module <name> of the submission (a graded module or a
  helper; a course module's name keeps the course's). A graded name defined both there and in the
  notebook's own cells: the later of the two in the notebook is graded;
- IPython magics and `!shell` lines are dropped; a cell that does not parse is skipped whole.
Everything skipped or replaced is listed, by cell.
"""
import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from . import COURSE_PACKAGE, GIVEN_MODULES, GRADED

MAGIC = re.compile(r"^\s*([%!]|\w+\s*=\s*[%!])")
KEPT_CELL_MAGICS = {"%%time", "%%timeit", "%%capture"}  # these only wrap Python code
WRITEFILE_MAGICS = {"%%writefile", "%%file"}
# Course modules that import the graded names: imported only once the notebook's are in place.
DEFERRED_MODULES = tuple(module for module in GIVEN_MODULES if module != "tensor")
LOOPS = (ast.For, ast.AsyncFor, ast.While)
DEFERRED_IMPORTS = "__grader_deferred_imports__"  # the worker runs these, in order, after installing the graded names


class NotebookError(Exception):
    pass


@dataclass
class Notebook:
    source: str                                    # the module the worker imports as notebook_submission
    modules: dict = field(default_factory=dict)    # module name → source, from %%writefile cells
    skipped: list = field(default_factory=list)    # 'cell N, line M: code (why)'
    notes: list = field(default_factory=list)      # what was replaced or moved, and which definition is graded


@dataclass
class Statement:
    cell: int
    node: ast.stmt
    code: str
    binds: set
    kind: str            # import, deferred import, definition, binding, never


def top_level_names(tree):
    """The names a module's top-level statements bind."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


ENGINE = {node.name for node in ast.parse((COURSE_PACKAGE / "tensor.py").read_text()).body if isinstance(node, ast.ClassDef)}


def read_notebook(text):
    """A Notebook for a notebook's JSON text."""
    import nbformat  # here, not at the top: grading a folder never needs it (a tenth of a second to import)

    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for JSON and schema problems
        raise NotebookError(f"{type(error).__name__}: {str(error)[:200]}") from None
    result = Notebook(source="")
    statements, written = [], {}  # written: module → cell of its last %%writefile
    code_cells = [cell for cell in notebook.cells if cell.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, 1):
        source = cell.get("source", "")
        lines = ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        magic = lines[0].split()[0] if lines and lines[0].startswith("%%") else None
        if magic in WRITEFILE_MAGICS:
            _writefile(number, lines, result, written)
            continue
        if magic:
            if magic not in KEPT_CELL_MAGICS:
                result.skipped.append(f"cell {number}: the whole cell ({magic} magic)")
                continue
            lines = [""] + lines[1:]
        lines = ["" if MAGIC.match(line) else line for line in lines]
        try:
            tree = ast.parse("\n".join(lines))
        except (SyntaxError, ValueError) as error:
            result.skipped.append(f"cell {number}: the whole cell (it does not parse: {getattr(error, 'msg', error)})")
            continue
        statements += [_statement(number, node, _segment(lines, node)) for node in tree.body]
    kept = _needed(statements)
    parts = ['"""Taken from the student\'s notebook by the grader (grader/notebook.py)."""\n']
    deferred = []
    graded_in_files = {name: written[GRADED[name]] for module, source in result.modules.items() if module in written
                       for name in _defined_names(source) if GRADED.get(name) == module}
    last_own = {name: s.cell for s in statements if s.kind in ("definition", "binding") for name in s.binds if name in graded_in_files}
    for statement in statements:
        where, first = f"cell {statement.cell}, line {statement.node.lineno}", statement.code.strip().splitlines()[0][:70]
        replaced = sorted(name for name in statement.binds & set(graded_in_files) if graded_in_files[name] > statement.cell)
        engine = sorted(statement.binds & ENGINE) if statement.kind == "definition" else []
        if statement.kind == "deferred import":
            deferred.append(_guarded(statement.code))
            result.notes.append(f"{where}: {first} runs after the graded names are in place (it imports course code that uses them)")
        elif engine or (replaced and statement.kind == "definition"):
            home = "tensor" if engine else GRADED[replaced[0]]
            parts.append(f"# {where}\n" + _guarded(f"from autodiff.{home} import {', '.join(engine or replaced)}"))
            why = ("the ops always run on the course's engine" if engine
                   else f"%%writefile autodiff/{home}.py in cell {graded_in_files[replaced[0]]} comes later and is graded")
            result.notes.append(f"{where}: {first} replaced by the course's autodiff.{home}" if engine else
                                f"{where}: {first} not used: {why}")
        elif statement.kind == "import":
            parts.append(f"# {where}\n" + _guarded(statement.code))
        elif statement in kept:
            parts.append(f"# {where}\n{statement.code}\n")
        else:
            why = ("a loop: never run" if any(isinstance(n, LOOPS) for n in ast.walk(statement.node))
                   else "binds nothing the graded definitions use" if statement.kind == "never" else "not used by the graded definitions")
            result.skipped.append(f"{where}: {first} ({why})")
    for name, cell in graded_in_files.items():
        if name in last_own and last_own[name] > cell:
            result.notes.append(f"{name}: the notebook's own, in cell {last_own[name]}, is graded: it comes after "
                                f"%%writefile autodiff/{GRADED[name]}.py in cell {cell}")
    parts.append(f"{DEFERRED_IMPORTS} = {deferred!r}\n")
    result.source = "\n".join(parts)
    return result


def _writefile(number, lines, result, written):
    """A `%%writefile [-a] path` cell: module <name> of the submission if path names one."""
    try:
        words = shlex.split(lines[0])[1:]
    except ValueError:
        words = []
    append = bool(words) and words[0] in ("-a", "--append")
    path = PurePosixPath((words[1:] if append else words)[0].replace("\\", "/")) if words[append:] else PurePosixPath("")
    shown = f"%%writefile {path}"
    if path.suffix != ".py" or not path.stem.isidentifier():
        result.skipped.append(f"cell {number}: the whole cell ({shown}: not a module of the package)")
        return
    if path.stem == "__init__" or path.stem in GIVEN_MODULES:
        result.skipped.append(f"cell {number}: the whole cell ({shown}: the course's copy is used)")
        return
    body = "\n".join(lines[1:]) + "\n"
    result.modules[path.stem] = result.modules.get(path.stem, "") + body if append else body
    written[path.stem] = number
    result.notes.append(f"cell {number}: {shown} is module {path.stem} of the submission")


def _statement(cell, node, code):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        binds = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        return Statement(cell, node, code, binds, "deferred import" if _imports_deferred(node) else "import")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return Statement(cell, node, code, {node.name}, "definition")
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return Statement(cell, node, code, {_root(t) for t in targets} - {None}, "binding")
    if isinstance(node, (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try))) and not any(isinstance(n, LOOPS) for n in ast.walk(node)):
        binds = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        binds |= {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        binds |= {(a.asname or a.name).split(".")[0] for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))
                  for a in n.names}
        return Statement(cell, node, code, binds, "binding")
    return Statement(cell, node, code, set(), "never")


def _needed(statements):
    """The statements the graded names need: those binding a graded name, then, transitively,
    those binding a name that a needed statement uses."""
    binders = {}
    for statement in statements:
        if statement.kind in ("definition", "binding"):
            for name in statement.binds:
                binders.setdefault(name, []).append(statement)
    needed, names, seen = [], list(GRADED), set(GRADED)
    while names:
        for statement in binders.get(names.pop(), []):
            if statement in needed:
                continue
            needed.append(statement)
            used = {n.id for n in ast.walk(statement.node) if isinstance(n, ast.Name)}
            names += sorted(used - seen)
            seen |= used
    return needed


def _root(target):
    """The name an assignment target binds or changes: x, x.attr, x[i] → x."""
    while isinstance(target, (ast.Attribute, ast.Subscript, ast.Starred)):
        target = target.value
    return target.id if isinstance(target, ast.Name) else None


def _imports_deferred(node):
    """Does this import load a course module that uses the graded names (autodiff.nn, nn, …)?"""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return False
        parts = (node.module or "").split(".")
        inside = (parts[1:2] or [alias.name for alias in node.names]) if parts[0] == "autodiff" else parts[:1]
        return any(module in DEFERRED_MODULES for module in inside)
    modules = [alias.name.split(".") for alias in node.names]
    return any(parts[-1 if parts[0] == "autodiff" else 0] in DEFERRED_MODULES for parts in modules)


def _defined_names(source):
    try:
        return top_level_names(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError):
        return set()


def _guarded(code):
    indented = "\n".join("    " + line for line in code.splitlines())
    return f"try:\n{indented}\nexcept Exception:\n    pass\n"


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

    import nbformat

    cells = [nbformat.v4.new_code_cell(source) for source in inputs if source.strip() and "check_cells_run(" not in source]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(nbformat.writes(nbformat.v4.new_notebook(cells=cells)), encoding="utf-8")
    completed = subprocess.run([sys.executable, "-m", "grader", "check", out], capture_output=True, text=True)
    print(completed.stdout + completed.stderr)
