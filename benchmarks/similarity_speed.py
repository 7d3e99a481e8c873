"""Does the similarity report find planted copies, and how long does a class of 500 take?

    make bench-similarity   # = .venv/bin/python -m benchmarks.similarity_speed --out results/similarity.json

A synthetic class, written into a temporary folder as submissions the grader reads:
- honest students: each graded function of the reference rewritten with the student's own habits
  (input checks, conversions, intermediate names, loops, chosen at random with random constants,
  at random places), so two honest students share the reference's core, which most of the class
  shares and the report excludes, and only what they happen to write alike;
- planted copies of honest students: every name renamed; the functions and classes reordered;
  comments and blank lines changed, spaces added;
- two students who share only the starter: each hands in the starter with one op of their own.

Every planted pair must rank above every honest pair. The time is the whole comparison as
`grader similarity` runs it: reading the submissions, fingerprinting, comparing every pair; wall
and CPU seconds, with the load average (the machine may be shared).
"""
import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import GRADED_MODULES
from grader.classroom.similarity import compare_class, starter_code, submission_code

ROOT = Path(__file__).resolve().parent.parent

REFERENCE = ROOT / "solutions" / "autodiff"
SOLUTION = re.compile(r"( *)# BEGIN SOLUTION[^\n]*\n(.*?)\n *# END SOLUTION", re.S)
HABITS = [
    "assert {v}.ndim <= {n}, 'unexpected rank'",
    "{v} = np.asarray({v}, dtype=np.float64)",
    "if not np.all(np.isfinite({v})):\n    raise ValueError('input has nan or inf')",
    "shape_{n} = {v}.shape",
    "for axis in range({n}):\n    pass",
    "scale = {c}\nscale = scale * 0 + 1",
    "check = float(np.sum({v})) * {c}",
    "if {v}.size == 0:\n    return np.zeros_like({v})",
    "tmp = ({v} + {c}) - {c}",
    "count = 0\nwhile count < {n}:\n    count += 1",
]
RENAMES = {"grad_output": "upstream", "grad_a": "da", "grad_b": "db", "grad_x": "dx", "ctx": "context", "axis": "dim",
           "keepdims": "keep", "a": "left", "b": "right", "x": "inp", "y": "out", "probs": "p_hat"}


def honest(source, rng):
    """The reference module with each solution block rewritten with this student's habits."""
    def rewrite(match):
        indent, body = match[1], match[2]
        lines = body.split("\n")
        names = re.findall(r"\b(a|b|x|grad_output|probs|logits|w)\b", body) or ["grad_output"]
        for _ in range(rng.randint(1, 3)):
            habit = rng.choice(HABITS).format(v=rng.choice(names), n=rng.randint(2, 9), c=round(rng.uniform(1, 9), rng.randint(1, 3)))
            position = rng.randint(0, max(0, len(lines) - 1))
            lines[position:position] = [indent + line for line in habit.split("\n")]
        return "\n".join(lines)
    return SOLUTION.sub(rewrite, source)


def renamed(source):
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{old}\b", new, source)
    return source


def reordered(source, rng):
    header, *blocks = re.split(r"\n(?=class |def )", source)
    rng.shuffle(blocks)
    return "\n".join([header, *blocks])


def recommented(source):
    source = re.sub(r"#[^\n]*", "", source)
    source = re.sub(r"\n\n+", "\n\n\n", source)
    source = source.replace(" = ", "  =  ").replace(", ", " , ")
    return re.sub(r"(\n +)(return )", r"\1# the answer\1\2", source)


def write(folder, modules):
    (folder / "autodiff").mkdir(parents=True)
    for module, text in modules.items():
        (folder / "autodiff" / f"{module}.py").write_text(text)


def build_class(folder, size, seed):
    """{student: folder} and the planted pairs."""
    rng = random.Random(seed)
    reference = {m: (REFERENCE / f"{m}.py").read_text() for m in GRADED_MODULES}
    starter = {m: (ROOT / "starter" / "autodiff" / f"{m}.py").read_text() for m in GRADED_MODULES}
    students, planted = {}, []
    honest_count = size - 5
    for number in range(honest_count):
        students[f"honest_{number:03d}"] = {m: honest(text, rng) for m, text in reference.items()}
    originals = [f"honest_{n:03d}" for n in rng.sample(range(honest_count), 3)]  # three families: copies of copies are not counted
    for original, (kind, change) in zip(originals, (("renamed", lambda m: {k: renamed(v) for k, v in m.items()}),
                                                    ("reordered", lambda m: {k: reordered(v, rng) for k, v in m.items()}),
                                                    ("recommented", lambda m: {k: recommented(v) for k, v in m.items()})), strict=True):
        students[f"copy_{kind}_of_{original}"] = change(students[original])
        planted.append(sorted([original, f"copy_{kind}_of_{original}"]))
    for student, module in (("starter_only_1", "ops"), ("starter_only_2", "activations")):
        students[student] = {**starter, module: honest(reference[module], rng)}
    for student, modules in students.items():
        write(folder / student, modules)
    return {student: folder / student for student in students}, planted


def cpu_seconds():
    """This process's CPU time and its finished children's (the fingerprinting pool): on a shared
    machine, what the comparison costs whatever the others' load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(size, seed):
    with tempfile.TemporaryDirectory(prefix="similarity-") as temporary:
        paths, planted = build_class(Path(temporary), size, seed)
        load, cpu, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
        codes = {student: submission_code(path) for student, path in paths.items()}
        results, _ = compare_class(codes, starter_code())
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    ranked = results
    is_planted = [[a, b] in planted for a, b, _ in ranked]
    lowest_planted = min(score for (_, _, score), yes in zip(ranked, is_planted, strict=True) if yes)
    highest_honest = max(score for (_, _, score), yes in zip(ranked, is_planted, strict=True) if not yes)
    starter_pair = next(score for a, b, score in ranked if (a, b) == ("starter_only_1", "starter_only_2"))
    return {"submissions": size, "pairs": len(ranked), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "load_average_at_start": round(load, 2),
            "planted_pairs": [{"a": a, "b": b, "score": s, "rank": i + 1} for i, (a, b, s) in enumerate(ranked) if [a, b] in planted],
            "lowest_planted_score": lowest_planted, "highest_honest_score": highest_honest,
            "starter_only_pair_score": starter_pair,
            "every_planted_pair_above_every_honest_pair": lowest_planted > highest_honest,
            "top_honest_pairs": [{"a": a, "b": b, "score": s} for (a, b, s), yes in zip(ranked, is_planted, strict=True) if not yes][:5]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 500])
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # as `grader similarity` runs: the same numbers every run
        sys.exit(subprocess.call([sys.executable, "-m", __spec__.name, *sys.argv[1:]], cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"}))
    runs = []
    for size in args.sizes:
        print(f"{size} submissions ...", flush=True)
        runs.append(measure(size, args.seed))
        run = runs[-1]
        print(f"  {run['pairs']} pairs in {run['seconds']} s ({run['cpu_seconds']} s of CPU, load {run['load_average_at_start']}); "
              f"planted pairs at ranks {[p['rank'] for p in run['planted_pairs']]}, "
              f"lowest planted {run['lowest_planted_score']}, highest honest {run['highest_honest_score']}, "
              f"starter-only pair {run['starter_only_pair_score']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
        args.out.write_text(json.dumps({"machine": machine, "command": "make bench-similarity", "seed": args.seed, "runs": runs},
                                       indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
