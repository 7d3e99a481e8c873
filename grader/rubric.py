"""The rubric: read and checked in one place (rubric.toml documents the format), and the salt of
the official inputs (`course_salt`)."""
import hashlib
import json
import os
import re
import secrets
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10 (a student's machine): the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT
from .sandbox.contract import CHECK_KINDS, GRADED, WHOLE_MODEL

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
MNIST_KEYS: dict[str, type | tuple[type, ...]] = {"epochs": int, "batch_size": int, "lr": float, "seed": int, "train_examples": int,
              "time_budget_seconds": (int, float), "full_credit_accuracy": (int, float),
              "zero_credit_accuracy": (int, float)}
# [limits]: seconds of worker time, all optional. A group of checks (a graded name) may spend its
# share, the whole grading the total; MNIST's share adds mnist.time_budget_seconds. A notebook's
# first run (grader/notebook.py): each cell its cell_seconds, all of them notebook_seconds.
LIMITS: dict[str, float] = {"group_seconds": 60, "total_seconds": 900, "cell_seconds": 5, "notebook_seconds": 60}
SCALE_SIDE = 1000  # [scale] side unless the rubric says otherwise: the scale checks' inputs have about side² elements


class RubricError(Exception):
    pass


@dataclass(frozen=True)
class Rubric:
    path: str
    sha256: str
    points: dict[tuple[str, str], float]  # (group, kind) → points, in the file's order
    visibility: dict[str, str]  # kind → visibility
    mnist: dict[str, Any]
    salt: str = ""    # mixed into every check's input seed: the official inputs differ from the handout's
    limits: dict[str, float] = field(default_factory=LIMITS.copy)  # [limits] with its defaults filled in
    unshipped_points: float = 0  # the course's points whose checks this rubric leaves out (a handout's)
    scale_side: int = SCALE_SIDE
    text: bytes = b""  # what it was read from, sha256's bytes: whatever grades with it reads this, salt included

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def visibility_of(self, kind: str) -> str:
        return self.visibility.get(kind, "visible")

    def visible_toml(self) -> str:
        """This rubric with only its visible checks, as TOML: the rubric of the student handout,
        which must not carry the weights of the checks it does not ship, nor the salt."""
        groups: dict[str, list[str]] = {}
        for (group, kind), points in self.points.items():
            if self.visibility_of(kind) == "visible":
                groups.setdefault(group, []).append(f"{kind} = {points}")
        lines = ["# The visible checks of the course's rubric (generated: edit the course's rubric instead).", "",
                 "[checks]"] + [f"{group} = {{ {', '.join(kinds)} }}" for group, kinds in groups.items()]
        lines += ["", "[mnist]"] + [f"{key} = {value!r}" for key, value in self.mnist.items()]
        lines += ["", "[limits]"] + [f"{key} = {value!r}" for key, value in self.limits.items()]
        lines += ["", "[scale]", f"side = {self.scale_side}"]
        hidden = self.max_score - sum(points for (_, kind), points in self.points.items() if self.visibility_of(kind) == "visible")
        lines += ["", "# the points of the checks run after the due date, for the handout's closing line",
                  "[handout]", f"unshipped_points = {hidden + self.unshipped_points!r}"]
        return "\n".join(lines) + "\n"

    def with_salt(self, salt: str) -> "Rubric":
        """This rubric with `[inputs] salt` set, in its text: the checks' process, a Dask worker and
        Gradescope's copy read the salt from the text, and its hash (which `grader batch` compares
        before keeping a report) changes with it."""
        text, table = self.text.decode("utf-8"), tomllib.loads(self.text.decode("utf-8"))
        line = f"salt = {json.dumps(salt, ensure_ascii=False)}"
        if "salt" in table.get("inputs", {}):
            raise RubricError(f"{self.path}: inputs.salt = {table['inputs']['salt']!r}: delete the line to use the course's secret")
        if "inputs" in table:
            text, found = re.subn(r"(?m)^\[inputs\][ \t]*(#.*)?$", lambda header: f"{header[0]}\n{line}", text, count=1)
            if not found:
                raise RubricError(f"{self.path}: write its inputs table as an [inputs] header, for the salt to go in it")
        else:
            text = text.rstrip("\n") + f"\n\n[inputs]\n{line}\n"
        salted = parse_rubric(text.encode("utf-8"), self.path)
        if salted.salt != salt:
            raise RubricError(f"{self.path}: the course's secret cannot be written as a TOML string: make a new one")
        return salted

    def mnist_credit(self, accuracy: float) -> float:
        """Fraction of the MNIST points for a test accuracy in %: a linear ramp."""
        low, high = self.mnist["zero_credit_accuracy"], self.mnist["full_credit_accuracy"]
        return min(1.0, max(0.0, (accuracy - low) / (high - low)))


def load_rubric(path: str | os.PathLike[str]) -> Rubric:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RubricError(f"cannot read the rubric {path}: {error}") from None
    return parse_rubric(data, path)


def parse_rubric(data: bytes, path: str | os.PathLike[str]) -> Rubric:
    """The rubric in `data` (bytes), read from `path` (said in messages and reports)."""
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RubricError(f"cannot read the rubric {path}: {error}") from None
    points = {}
    for group, kinds in table.get("checks", {}).items():
        if not isinstance(kinds, dict):
            raise RubricError(f"{path}: checks.{group} must be a table of kind = points")
        for kind, value in kinds.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise RubricError(f"{path}: checks.{group}.{kind} must be a number of points ≥ 0, not {value!r}")
            if group not in GRADED and group != WHOLE_MODEL:
                raise RubricError(f"{path}: checks.{group}: not a graded name ({', '.join(GRADED)}) nor {WHOLE_MODEL}")
            if kind not in CHECK_KINDS:
                raise RubricError(f"{path}: checks.{group}.{kind}: not a kind of check ({', '.join(CHECK_KINDS)})")
            points[(group, kind)] = value
    if not points:
        raise RubricError(f"{path}: no [checks] table")
    visibility = table.get("visibility", {})
    for kind, value in visibility.items():
        if value not in VISIBILITIES:
            raise RubricError(f"{path}: visibility.{kind} is {value!r}; expected one of {', '.join(VISIBILITIES)}")
    mnist = table.get("mnist", {})
    for key, kind in MNIST_KEYS.items():
        if not isinstance(mnist.get(key), kind) or isinstance(mnist.get(key), bool):
            raise RubricError(f"{path}: mnist.{key} is missing or not a number")
    if not mnist["zero_credit_accuracy"] < mnist["full_credit_accuracy"]:
        raise RubricError(f"{path}: mnist.zero_credit_accuracy must be below full_credit_accuracy")
    salt = table.get("inputs", {}).get("salt", "")
    if not isinstance(salt, str):
        raise RubricError(f"{path}: inputs.salt must be a string")
    limits = {**LIMITS, **table.get("limits", {})}
    for key, value in limits.items():
        if key not in LIMITS or not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise RubricError(f"{path}: limits.{key} must be one of {', '.join(LIMITS)}, a number of seconds > 0")
    unshipped = table.get("handout", {}).get("unshipped_points", 0)
    if not isinstance(unshipped, (int, float)) or isinstance(unshipped, bool) or unshipped < 0:
        raise RubricError(f"{path}: handout.unshipped_points must be a number of points ≥ 0")
    side = table.get("scale", {}).get("side", SCALE_SIDE)
    if not isinstance(side, int) or isinstance(side, bool) or side < 2:
        raise RubricError(f"{path}: scale.side must be a whole number ≥ 2")
    return Rubric(str(path), hashlib.sha256(data).hexdigest(), points, visibility, mnist, salt, limits, unshipped, side, data)


# A public salt, the placeholder of grader/rubric.toml's published copies: every course that keeps it draws the
# same official inputs as every other. Official runs refuse it.
PLACEHOLDER_SALT = "autodiff-course-salt-change-me"
SECRET_HEADER = """\
# The course's secret salt: every official grading (`grader batch`, `make gradescope`) draws its
# inputs from it when the rubric sets none; the same secret gives the same grades at every regrade.
# Keep it out of git (it is ignored) and out of students' reach. To rotate it, delete this file:
# the next official run makes a new one, and `grader batch` then regrades everyone.
"""


def secret_file() -> Path:
    """Where the course's secret is kept: course-secret.txt at the checkout's root (git-ignored; no
    package takes files from there), or the file $AUTODIFF_COURSE_SECRET names."""
    return Path(os.environ.get("AUTODIFF_COURSE_SECRET") or ROOT / "course-secret.txt")


@dataclass(frozen=True)
class Salted:
    """The rubric a grading uses, and where its salt came from: "rubric" (its own [inputs] salt),
    "kept" or "made" (the course's secret, in `file`), "placeholder" or "none" (a practice grading)."""
    rubric: Rubric
    source: str
    file: Path | None = None

    @property
    def note(self) -> str | None:
        """What to tell the user, or None."""
        if self.source == "made":
            return (f"inputs: a new secret salt for this course, made and kept in {self.file}: keep it (private, out of "
                    f"git); every regrade reuses it, and deleting it changes every input")
        if self.source == "kept":
            return f"inputs: the course's secret salt, kept in {self.file}"
        if self.source == "placeholder":
            return (f"warning: the rubric's salt is the placeholder {PLACEHOLDER_SALT!r}, which every course had: "
                    f"official runs refuse it (delete the line to use the course's own secret)")
        return None


def course_salt(rubric: Rubric, official: bool) -> Salted:
    """The rubric with the salt of the course's inputs. The rubric's own salt when it sets one; else
    the course's secret, kept in secret_file(). Official (a batch, the Gradescope build): the
    placeholder is refused, and the secret is made when none is kept. Not official (`grader grade`
    of one submission): the kept secret when there is one, never a new one."""
    if rubric.salt == PLACEHOLDER_SALT:
        if official:
            raise RubricError(f"{rubric.path}: inputs.salt is the placeholder {PLACEHOLDER_SALT!r}, the same for every "
                              f"course: delete that line (a secret of the course's own is then made and kept in "
                              f"{secret_file()}) or set a secret of your own")
        return Salted(rubric, "placeholder")
    if rubric.salt:
        return Salted(rubric, "rubric")
    path = secret_file()
    secret, source = read_secret(path), "kept"
    if secret is None and not official:
        return Salted(rubric, "none")
    if secret is None:
        secret, source = make_secret(path)
    return Salted(rubric.with_salt(secret), source, path)


def read_secret(path: str | os.PathLike[str]) -> str | None:
    """The secret kept in `path` (its first line that is not a comment), or None when there is no file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RubricError(f"cannot read the course's secret {path}: {error}") from None
    secret = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    if not secret:
        raise RubricError(f"{path} holds no secret (a line that is not a comment): delete it to have a new one made")
    return secret


def make_secret(path: str | os.PathLike[str]) -> tuple[str, str]:
    """A new random secret written to `path` (readable by its owner only), unless another run made
    one first: then that one. Returns (secret, "made" or "kept")."""
    path = Path(path)
    secret = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f"{SECRET_HEADER}{secret}\n")
    try:
        os.link(partial, path)  # never over a secret another run just made: grades drawn from it may exist
    except FileExistsError:
        kept = read_secret(path)
        if kept is None:  # made by another run, and deleted again since
            raise RubricError(f"the course's secret {path} was made and deleted by another run: run again") from None
        return kept, "kept"
    finally:
        partial.unlink()
    return secret, "made"
