"""Where the two trees are, and `import_autodiff(root)`: the `autodiff` package of either tree.

Both trees define a package named `autodiff`, and tensor.py imports `.ops` lazily (on the first
`x + y`), so only one tree's modules may sit in sys.modules at a time. Switching trees stashes
the current tree's modules and brings back the other's, so each tree is imported once per session
and its classes stay the same objects.
"""
import importlib
import sys
from pathlib import Path

from grader import COURSE_MODULES

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
STARTER = ROOT / "starter"

_stashed = {}  # tree root: {module name: module}


def import_autodiff(root):
    """The `autodiff` package under `root` (SOLUTIONS or STARTER), with all its modules imported."""
    root = Path(root)
    for name in [name for name in sys.modules if name.partition(".")[0] == "autodiff"]:
        module = sys.modules.pop(name)
        _stashed.setdefault(Path(module.__file__).parents[1], {})[name] = module
    sys.modules.update(_stashed.pop(root, {}))
    sys.path.insert(0, str(root))
    try:
        package = importlib.import_module("autodiff")
        for name in COURSE_MODULES:
            importlib.import_module(f"autodiff.{name}")
    finally:
        sys.path.remove(str(root))
    return package
