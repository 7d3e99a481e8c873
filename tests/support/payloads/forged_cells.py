import sys

# The worker's module is out of sys.modules, not out of reach: its import hook's globals are its own.
_worker = next(type(finder).find_spec.__globals__ for finder in sys.meta_path if type(finder).__name__ == "CourseModuleAliases")

def _forged(request):
    return {"outcome": "ran", "defined": ["Mul", "Nothing", 7, ["Mul"], {"a": 1}], "statement": -3,
            "neutralised": ["x" * 10_000] * 1000, "type": "<img src=x>"}

_worker["COMMANDS"]["notebook_cell"] = _forged
