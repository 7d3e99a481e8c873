"""The rubric: read and checked in one place (rubric.toml documents the format)."""
import hashlib

try:
    import tomllib
except ImportError:  # Python 3.10 (a student's machine): the same parser, from PyPI
    import tomli as tomllib
from dataclasses import dataclass
from pathlib import Path

from .sandbox.protocol import CHECK_KINDS, GRADED, WHOLE_MODEL

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
MNIST_KEYS = {"epochs": int, "batch_size": int, "lr": float, "seed": int, "train_examples": int,
              "time_budget_seconds": (int, float), "full_credit_accuracy": (int, float),
              "zero_credit_accuracy": (int, float)}
# [limits]: seconds of worker time, all optional. A group of checks (a graded name) may spend its
# share, the whole grading the total; MNIST's share adds mnist.time_budget_seconds. A notebook's
# first run (grader/notebook.py): each cell its cell_seconds, all of them notebook_seconds.
LIMITS = {"group_seconds": 60, "total_seconds": 900, "cell_seconds": 5, "notebook_seconds": 60}
SCALE_SIDE = 1000  # [scale] side unless the rubric says otherwise: the scale checks' inputs have about side² elements


class RubricError(Exception):
    pass


@dataclass(frozen=True)
class Rubric:
    path: str
    sha256: str
    points: dict      # (group, kind) → points, in the file's order
    visibility: dict  # kind → visibility
    mnist: dict
    salt: str = ""    # mixed into every check's input seed: the official inputs differ from the handout's
    limits: dict = None  # [limits] with its defaults filled in
    unshipped_points: float = 0  # the course's points whose checks this rubric leaves out (a handout's)
    scale_side: int = SCALE_SIDE

    @property
    def max_score(self):
        return sum(self.points.values())

    def visibility_of(self, kind):
        return self.visibility.get(kind, "visible")

    def visible_toml(self):
        """This rubric with only its visible checks, as TOML: the rubric of the student handout,
        which must not carry the weights of the checks it does not ship, nor the salt."""
        groups = {}
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

    def mnist_credit(self, accuracy):
        """Fraction of the MNIST points for a test accuracy in %: a linear ramp."""
        low, high = self.mnist["zero_credit_accuracy"], self.mnist["full_credit_accuracy"]
        return min(1.0, max(0.0, (accuracy - low) / (high - low)))


def load_rubric(path):
    path = Path(path)
    try:
        data = path.read_bytes()
        table = tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
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
    return Rubric(str(path), hashlib.sha256(data).hexdigest(), points, visibility, mnist, salt, limits, unshipped, side)
