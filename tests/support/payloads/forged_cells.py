import sys
_worker = sys.modules["worker"]

def _forged(request):
    return {"outcome": "ran", "defined": ["Mul", "Nothing", 7, ["Mul"], {"a": 1}], "statement": -3,
            "neutralised": ["x" * 10_000] * 1000, "type": "<img src=x>"}

_worker.COMMANDS["notebook_cell"] = _forged
