"""The package's dependencies (pyproject.toml, as ranges, with extras) against what grader/ imports,
and against the lock the Makefile installs (requirements.txt, exact versions).

Installing the grader must bring what grading needs and nothing of the project's own tooling; each
optional part of the grader (its extras) must bring what that part imports.
"""
import ast
import functools
import importlib.metadata
import re
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from grader.sandbox.launch import SANDBOX_FILES
from tests.support.paths import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CORE = [Requirement(line) for line in PROJECT["dependencies"]]
EXTRAS = {extra: [Requirement(line) for line in lines] for extra, lines in PROJECT["optional-dependencies"].items()}

# The extras a part of grader/ may import from, beyond the core: the class-level verbs; batch's
# --scheduler is Dask's. Everything else in grader/ (a grading, the sandbox) imports the core only.
OPTIONAL_PARTS = {"grader/classroom/": ("classroom", "dask")}
# Core dependencies no module imports: loaded by name in the checks' pytest process (grade.py's --json-report).
PLUGINS = {"pytest-json-report"}
STUDENT_PACKAGE = "autodiff"  # the submission's own package: the sandbox imports it, nothing installs it


def names(requirements):
    return {canonicalize_name(requirement.name) for requirement in requirements
            if requirement.marker is None or requirement.marker.evaluate() or "sys_platform" in str(requirement.marker)}


def fallback_imports(tree):
    """Imports inside an `except ImportError` handler: another Python's way to the same module (tomli)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and "ImportError" in ast.unparse(node.type or ast.Name("")):
            inside |= {id(child) for statement in node.body for child in ast.walk(statement)}
    return inside


@functools.cache
def third_party_imports():
    """{(path under the root, top-level module)} of every module grader/ imports that is neither the
    standard library nor its own: relative imports, and, in the sandbox's files, the others it
    ships beside them (imported flat)."""
    shipped = {path.resolve() for path in SANDBOX_FILES}
    found = set()
    for path in sorted((ROOT / "grader").rglob("*.py")):
        tree = ast.parse(path.read_text())
        skipped = fallback_imports(tree)
        siblings = {sibling.stem for sibling in shipped} if path.resolve() in shipped else set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in siblings | {"grader", STUDENT_PACKAGE}:
                    found.add((path.relative_to(ROOT).as_posix(), top))
    return found


@functools.cache
def installed():
    return importlib.metadata.packages_distributions()


def distributions(module):
    """The installed distributions that provide the top-level `module`."""
    return {canonicalize_name(name) for name in installed().get(module, [])}


def allowed(path):
    """The distributions a module of grader/ at `path` may import: the core's, and its part's extras'."""
    extras = next((extras for part, extras in OPTIONAL_PARTS.items() if path.startswith(part)), ())
    return names(CORE).union(*(names(EXTRAS[extra]) for extra in extras))


def test_every_import_in_grader_is_a_dependency_of_the_package_or_of_its_parts_extra():
    imports = third_party_imports()
    assert {module for _, module in imports} >= {"numpy", "hypothesis", "pytest", "distributed", "copydetect"}, imports
    unlisted = [f"{path}: {module} (from {', '.join(sorted(distributions(module))) or 'no installed distribution'})"
                for path, module in sorted(imports) if not distributions(module) & allowed(path)]
    assert not unlisted, "imported, but not a dependency in pyproject.toml where that module may use it:\n" + "\n".join(unlisted)


def test_every_core_dependency_is_what_a_grading_imports_and_no_tool_of_the_project():
    """What only the class-level verbs, Dask or the project's development use is an extra: installing
    the grader does not bring ruff, pytest-xdist, Dask or matplotlib."""
    used = {name for path, module in third_party_imports() if not any(path.startswith(part) for part in OPTIONAL_PARTS)
            for name in distributions(module)}
    assert names(CORE) - PLUGINS <= used, f"core dependencies nothing outside {list(OPTIONAL_PARTS)} imports: {names(CORE) - PLUGINS - used}"
    assert not names(CORE) & {"ruff", "mypy", "pytest-xdist", "dask", "distributed", "matplotlib", "tqdm", "copydetect"}


def test_each_extra_of_grader_is_imported_by_the_part_it_is_for():
    classroom = {name for path, module in third_party_imports() if path.startswith("grader/classroom/") for name in distributions(module)}
    assert names(EXTRAS["classroom"]) <= classroom
    assert "distributed" in classroom and names(EXTRAS["dask"]) == {"dask", "distributed"}


def lock():
    """{distribution: version} pinned by requirements.txt."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        pin = line.partition("#")[0].strip()
        if pin:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", pin)
            assert match, f"requirements.txt: {pin!r} is not pinned as name==version"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_the_lock_pins_every_dependency_and_extra_within_its_range_and_nothing_else():
    pins = lock()
    declared = [requirement for requirement in CORE + [r for extra in EXTRAS.values() for r in extra]
                if canonicalize_name(requirement.name) != canonicalize_name(PROJECT["name"])]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"requirements.txt does not pin {name}, a dependency in pyproject.toml"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside pyproject.toml's {requirement}"
    assert set(pins) == {canonicalize_name(requirement.name) for requirement in declared}, "pinned but not a dependency in pyproject.toml"


def test_the_dev_extra_brings_the_other_extras_for_the_tests():
    assert any(canonicalize_name(r.name) == canonicalize_name(PROJECT["name"]) and r.extras == {"classroom", "dask"}
               for r in EXTRAS["dev"])


def test_the_gradescope_autograder_installs_the_locks_pins_of_the_core_only():
    """Gradescope runs `grade` alone: what its requirements.txt installs is the package's own dependencies."""
    from tools.bundle import core_requirements

    shipped = {canonicalize_name(line.partition("==")[0]) for line in core_requirements().splitlines()}
    assert shipped == names(CORE), shipped ^ names(CORE)
    assert all(f"{name}=={lock()[name]}" in core_requirements() for name in shipped)
