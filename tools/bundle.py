"""What the package builders share: deterministic zips, and the guards that keep solutions and
hidden checks out of anything students receive."""
import argparse
import ast
import stat
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canonical

from grader import GRADED_MODULES  # the contract

ROOT = Path(__file__).resolve().parent.parent

FIXED_TIME = (2026, 1, 1, 0, 0, 0)  # the same inputs give the same zip, byte for byte
SKIPPED = {"__pycache__", ".pytest_cache"}


class Zip:
    """A zip written in the order files are added, with fixed timestamps and modes."""

    def __init__(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self.names = []

    def add_bytes(self, name, data, executable=False):
        info = zipfile.ZipInfo(name, FIXED_TIME)
        info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.archive.writestr(info, data)
        self.names.append(name)

    def add_file(self, name, path, executable=False):
        self.add_bytes(name, Path(path).read_bytes(), executable)

    def add_tree(self, prefix, folder, keep=lambda path: True):
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not SKIPPED & set(path.parts) and keep(path):
                self.add_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path)

    def close(self):
        """Finish the zip, then refuse it if anything in it carries solution code."""
        self.archive.close()
        assert_no_solutions(self.archive.filename)
        return self.names


def add_grading_engine(archive, prefix, rubric_text=None, check_files=None, requirements=None, for_students=False):
    """What grading needs wherever it runs: requirements.txt (the pinned core requirements unless
    given), the grader (its rubric replaced by rubric_text when given; of its check files, only
    check_files when given; for students, without the core ops' closed forms: their oracle takes
    central differences), the course's given modules and MNIST."""
    archive.add_bytes(f"{prefix}requirements.txt", requirements or core_requirements())

    def keep(path):
        if for_students and path == ROOT / "grader" / "checks" / "closed_forms.py":
            return False
        if rubric_text is not None and path == ROOT / "grader" / "rubric.toml":
            return False
        is_check_file = path.parent == ROOT / "grader" / "checks" and path.name.startswith("test_")
        return not is_check_file or check_files is None or path in check_files

    archive.add_tree(f"{prefix}grader", ROOT / "grader", keep=keep)
    if rubric_text is not None:
        archive.add_bytes(f"{prefix}grader/rubric.toml", rubric_text)
    archive.add_tree(f"{prefix}grader/course/autodiff", ROOT / "starter" / "autodiff")
    archive.add_tree(f"{prefix}datasets/mnist", ROOT / "datasets" / "mnist")


def main(build, default_out, description):
    """The command line of a package builder: --out, then a line saying what was built."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    print(f"{args.out}: {len(build(args.out))} files")


def check_kinds(path):
    """The kinds of check a test file defines: its test functions' `kind` markers
    (`@pytest.mark.kind("forward")`, which the checks' plugin reads too)."""
    tree = ast.parse(Path(path).read_text())
    return {decorator.args[0].value for node in tree.body if isinstance(node, ast.FunctionDef)
            for decorator in node.decorator_list if isinstance(decorator, ast.Call)
            and ast.unparse(decorator.func) == "pytest.mark.kind"}


def core_requirements():
    """requirements.txt's pins of the package's own dependencies (pyproject.toml's, not its extras'):
    grading, without what only instructors' class-level work and the project's development need."""
    core = {canonical(Requirement(line).name) for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if "==" in line.partition("#")[0] and canonical(line.partition("==")[0]) in core]
    return "\n".join(pins) + "\n"


def assert_no_secret(zip_path):
    """Nothing in a package for students carries the course's secret salt (a rubric that holds it)."""
    from grader.rubric import RubricError, read_secret, secret_file

    try:
        secret = read_secret(secret_file())
    except RubricError:  # a file holding no secret: none to leak
        secret = None
    with zipfile.ZipFile(zip_path) as archive:
        leaked = [name for name in archive.namelist() if secret and secret.encode() in archive.read(name)]
    if leaked:
        Path(zip_path).unlink()
        raise SystemExit(f"{zip_path}: {leaked[0]} carries the course's secret salt; refusing to ship it (removed)")


def assert_no_solutions(zip_path):
    """No solution region, and no graded body of the reference, in anything packaged."""
    solution_lines = set()
    for module in GRADED_MODULES:
        inside = False
        for line in (ROOT / "solutions" / "autodiff" / f"{module}.py").read_text().splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 25:
                solution_lines.add(line.strip())
    with zipfile.ZipFile(zip_path) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8", errors="replace")
            leaked = "# BEGIN SOLUTION" in text or any(line.strip() in solution_lines for line in text.splitlines())
            if leaked:
                Path(zip_path).unlink()
                raise SystemExit(f"{zip_path}: {name} carries solution code; refusing to ship it (removed)")
