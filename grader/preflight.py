"""Before the command line does anything: does this Python have the packages the verb needs?

`python -m grader` runs on whichever `python` comes first: the machine's own, an unactivated
shell's. Without the grader's packages a grading cannot run, and finding that out halfway is too
late: a grading without pytest's JSON plugin has no results to score, and a batch has already
changed its output folder.
This module imports the standard library only, and only looks the packages up (find_spec: none
is imported), so that `python -m grader` can refuse before anything is created or changed, and
say which command to run instead. `grader/__init__.py` imports nothing heavy for the same reason.
"""
import importlib.util
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "autodiff-grader"  # installed by the Makefile (pyproject.toml's [project.scripts])

# The modules each verb imports, here and in the checks' pytest process (grade.run_checks runs it
# on this same Python). The sandbox's own Python is levels.py's to find.
REPORTS = ("numpy", "jsonschema")  # every verb reads or writes reports (cli.py imports them all)
GRADING = (*REPORTS, "tomllib" if sys.version_info >= (3, 11) else "tomli", "pytest", "pytest_jsonreport", "hypothesis",
           "nbformat", "IPython")
NEEDS = {
    "grade": (*GRADING, "inflate64"),  # without inflate64, a Deflate64 zip would be called unreadable: a 0
    "check": GRADING,                  # a student's own check (the handout's requirements have no inflate64)
    "batch": (*GRADING, "inflate64", "tqdm", "matplotlib"),
    "diff": REPORTS,
    "similarity": (*REPORTS, "copydetect"),
    "canvas-upload": (*REPORTS, "canvasapi"),
}
OPTIONS = {"--scheduler": ("distributed",), "--similarity": ("copydetect",)}  # what an option of batch adds
MAKE_TARGETS = {  # the Makefile's target for each verb, as README.md shows it
    "grade": "make grade SUBMISSION=… [OUT=…]",
    "batch": "make batch SUBMISSIONS=… [OUT=…]",
    "diff": "make diff OLD=… NEW=…",
    "similarity": "make similarity OUT=…",
    "canvas-upload": "make canvas-upload OUT=… URL=… COURSE=… ASSIGNMENT=…",
}


def missing(argv: list[str]) -> list[str]:
    """The modules the command line `argv` needs that this Python cannot import, in order."""
    verb = next((argument for argument in argv if not argument.startswith("-")), "")
    needed = [*NEEDS.get(verb, REPORTS), *(module for option, modules in OPTIONS.items()
                                           if any(a == option or a.startswith(option + "=") for a in argv) for module in modules)]
    return [module for module in dict.fromkeys(needed) if not _importable(module)]


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def refusal(argv: list[str], program: str = "python -m grader") -> str | None:
    """None when this Python can run `argv`; else what to tell the user: what is missing, and the
    command to run instead (the project's venv, where the Makefile installs everything)."""
    absent = missing(argv)
    if not absent:
        return None
    verb = next((argument for argument in argv if not argument.startswith("-")), "")
    lines = [f"{program}: this Python ({sys.executable}, {sys.version.split()[0]}) lacks {', '.join(absent)}, "
             f"which {'`' + verb + '`' if verb else 'the grader'} needs; nothing was done."]
    if (ROOT / "pyproject.toml").is_file():  # the repository: its venv, built by make
        lines.append("Run the grader from the project's venv, which `make` builds (from the repository's root):")
        if verb in MAKE_TARGETS:
            lines.append(f"    {MAKE_TARGETS[verb]}")
        lines.append(f"    {shlex.join([_shown(CONSOLE_SCRIPT), *argv])}"
                     + ("" if CONSOLE_SCRIPT.exists() else "    (after any make target has built .venv)"))
    else:  # a package made from it (the handout, Gradescope's autograder): its requirements.txt
        requirements = _shown(ROOT / "requirements.txt")
        lines += ["Install its packages into a venv, then run the grader with the venv's Python:",
                  f"    python3 -m venv .venv && .venv/bin/python -m pip install -r {shlex.quote(requirements)}",
                  f"    {shlex.join(['.venv/bin/python', '-m', 'grader', *argv])}"]
        if (ROOT / "Makefile").is_file() and verb == "check":
            lines.append("    (or `make check`, which does both)")
    return "\n".join(lines)


def _shown(path):
    """A path as short as it can be said from here: relative under the working folder, absolute elsewhere."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)

