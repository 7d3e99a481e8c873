"""Generate handout/autodiff.ipynb from solutions/autodiff/ and the handout README: the notebook
form of the assignment, for Jupyter and Colab. Never edit it by hand.

The README's text as Markdown cells; the setup cell, first (finds or unpacks the handout next to
the notebook, installs what handout/requirements.txt lists if the kernel lacks some of it, then
imports what the other cells use); one code cell per graded class or function, its solution
regions blanked exactly as in the starter (tools/make_starter.py, the same markers); a cell that
runs the visible checks on the cells run so far; a training cell that trains MLP3 with them.

    python -m tools.make_notebook          # regenerate handout/autodiff.ipynb
    python -m tools.make_notebook --check  # exit 1 if the committed notebook differs
"""
import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

from grader import GRADED, GRADED_MODULES  # the contract
from grader.notebook import SETUP_MARKER  # how the grader knows the setup cell
from tools.make_starter import BEGIN, END, SOLUTIONS, blank_solutions

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOK = ROOT / "handout" / "autodiff.ipynb"
README = ROOT / "handout" / "README.md"
REQUIREMENTS = ROOT / "handout" / "requirements.txt"
IMPORT_NAMES = {"pytest-json-report": "pytest_jsonreport", "ipython": "IPython"}  # where it differs from the distribution's
TEXT_SECTIONS = ("The Function API", "What each operation computes", "Broadcasting and `reduce_grad_to_shape`")

def required_modules():
    """The lines of the setup cell that list the modules handout/requirements.txt installs: a
    requirement with the marker `python_version < "X.Y"` only below that version."""
    always, below = [], {}
    for line in REQUIREMENTS.read_text().splitlines():
        requirement, _, marker = line.partition("#")[0].partition(";")
        if not requirement.strip():
            continue
        name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)[1]
        module = IMPORT_NAMES.get(name.lower(), name.replace("-", "_"))
        if not marker.strip():
            always.append(module)
        elif version := re.fullmatch(r'\s*python_version\s*<\s*"(\d+)\.(\d+)"\s*', marker):
            below.setdefault((int(version[1]), int(version[2])), []).append(module)
        else:
            sys.exit(f"{REQUIREMENTS.relative_to(ROOT)}: the setup cell cannot check the marker of {line.strip()!r}")
    return "\n".join([f"_required = {always!r}"] + [f"if sys.version_info < {version!r}:\n    _required += {modules!r}"
                                                     for version, modules in below.items()])


def setup_cell():
    return f'''\
{SETUP_MARKER}
# It finds the handout's files next to this notebook (the folder autodiff-handout, or
# autodiff-handout.zip uploaded to Colab's Files pane), installs what requirements.txt lists if
# this Python lacks some of it (nothing else is downloaded), and imports what the cells below use.
import importlib.util
import os
import sys
import zipfile

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one BLAS thread: faster on these small matrices
if not os.path.isdir("autodiff") and not os.path.isdir("autodiff-handout") and os.path.isfile("autodiff-handout.zip"):
    zipfile.ZipFile("autodiff-handout.zip").extractall(".")
if not os.path.isdir("autodiff") and os.path.isdir("autodiff-handout"):
    os.chdir("autodiff-handout")
if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
{required_modules()}
if not all(importlib.util.find_spec(_module) for _module in _required):
    %pip install --quiet -r requirements.txt
    importlib.invalidate_caches()

import numpy as np

from autodiff.tensor import EPS, Function, reduce_grad_to_shape
'''


CHECK = '''\
# The visible checks, as `make check` runs them, on the cells you have run so far (no need to save):
# cell n in what it says is the cell Jupyter marks [n].
from grader.notebook import check_cells_run

check_cells_run(In)
'''


def training_cell():
    lines = ["# Train MLP3 on MNIST with the operations defined above: the handout's two runs, with and",
             "# without L2, 10 epochs each (an epoch takes a few seconds on an idle machine; the bars show ETAs).",
             "import importlib",
             "",
             *[f"import autodiff.{module}" for module in sorted([*GRADED_MODULES, "nn", "train"])],
             "from autodiff.data import load_mnist",
             ""]
    for module in GRADED_MODULES:
        names = [name for name, owner in GRADED.items() if owner == module]
        lines.append(f"{', '.join(f'autodiff.{module}.{name}' for name in names)} = {', '.join(names)}")
    lines += ["importlib.reload(autodiff.nn)  # the layers and the training loop now use your operations",
              "importlib.reload(autodiff.train)",
              "runs = autodiff.train.run_experiment(autodiff.train.PRESETS['default'], load_mnist())",
              "print(autodiff.train.format_table(runs))"]
    return "\n".join(lines) + "\n"


def readme_sections():
    """{heading: Markdown} of the handout README's level-2 sections."""
    sections = re.split(r"^## ", README.read_text(), flags=re.MULTILINE)
    return {part.splitlines()[0]: "## " + part.strip() for part in sections[1:]}


def graded_cells(module, filled):
    """The graded definitions of one module, one source per definition: blanked like the starter,
    or (filled) the reference with its markers removed."""
    path = SOLUTIONS / f"{module}.py"
    text = path.read_text()
    if filled:
        source = "".join(line for line in text.splitlines(keepends=True) if not (BEGIN.match(line) or END.match(line)))
    else:
        source = blank_solutions(text, str(path))
    lines = source.splitlines()
    return ["\n".join(lines[node.lineno - 1:node.end_lineno]) + "\n" for node in ast.parse(source).body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in GRADED]


def build_notebook(filled=False):
    """The handout's notebook (filled: with the reference's bodies, as a fully correct submission)."""
    title, _, rest = README.read_text().partition("\n\n[한국어](README.ko.md)\n\n")
    intro = rest.split("\n## ")[0].strip()
    sections = readme_sections()
    cells = [nbformat.v4.new_markdown_cell(
        f"{title}\n\n{intro}\n\nThis notebook is the same assignment as the `autodiff/` folder: fill in the cells "
        "below instead of the files, and hand in this notebook. It runs in Jupyter and in Colab next to the "
        "handout's files (see the first cell); the README says how to hand it in."),
        nbformat.v4.new_code_cell(setup_cell())]
    cells += [nbformat.v4.new_markdown_cell(sections[heading]) for heading in TEXT_SECTIONS]
    for module in GRADED_MODULES:
        names = ", ".join(f"`{name}`" for name, owner in GRADED.items() if owner == module)
        cells.append(nbformat.v4.new_markdown_cell(f"## `{module}.py`: {names}\n\nReplace each "
                                                   "`raise NotImplementedError(...)` with your code."))
        cells += [nbformat.v4.new_code_cell(source) for source in graded_cells(module, filled)]
    cells += [nbformat.v4.new_markdown_cell(sections["Checking your work"]), nbformat.v4.new_code_cell(CHECK),
              nbformat.v4.new_markdown_cell("## Training"), nbformat.v4.new_code_cell(training_cell())]
    for number, cell in enumerate(cells, 1):
        cell.id = f"cell-{number}"  # fixed ids: the same sources give the same file
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    return nbformat.writes(notebook) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the committed notebook is current")
    args = parser.parse_args()
    wanted = build_notebook()
    current = NOTEBOOK.is_file() and NOTEBOOK.read_text() == wanted
    if args.check:
        if not current:
            sys.exit(f"{NOTEBOOK.relative_to(ROOT)} is out of date; run `make notebook`")
        print(f"{NOTEBOOK.relative_to(ROOT)} is up to date")
        return
    NOTEBOOK.write_text(wanted)
    print(f"{NOTEBOOK.relative_to(ROOT)}: {'unchanged' if current else 'written'}")


if __name__ == "__main__":
    main()
