"""The mutation audit: how strong the grader's checks are, measured on first-order mutants of the reference.

    make mutation-audit    # = .venv/bin/python -m benchmarks.mutation_audit --out results/mutation.json

1. Each graded body of solutions/autodiff (between `# BEGIN SOLUTION` and `# END SOLUTION`) is mutated at one
   site at a time by a small AST mutator; the mutated function is unparsed and spliced back by line numbers,
   so the rest of its module is byte-identical.
2. A mutant no input of SPEC.md's domain tells from the reference is set aside as equivalent: a differential
   test in this process (our own mutants: no sandbox) on a deterministic set of inputs, smallest first, so
   the first difference is on the smallest exposing input. Where SPEC.md defines no gradient (Pow's dB where
   a ≤ 0, an input that needs none, NLLLoss's target) nothing is compared beyond the shape.
3. Every other mutant is graded by the real checks (grader.grade.run_checks on a copy of solutions/ with the one
   module replaced), every check but MNIST's (the audit measures the op checks), with the course's rubric and
   [scale] side = 40: killed when a case of its own group fails, survived when none does (a blind spot of the
   checks), collateral when a case of some other group fails.
"""
import argparse
import ast
import copy
import difflib
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader import DEFAULT_RUBRIC, GRADED
from grader.grade import run_checks
from grader.rubric import load_rubric
from grader.submission import load_submission, prepare_scratch

ROOT = Path(__file__).resolve().parent.parent

SOLUTIONS = ROOT / "solutions" / "autodiff"
WORK = ROOT / "build" / "mutation-audit"  # mutants, scratch folders, the rubric: never /tmp
NAMES = {"Mul": "a b", "Matmul": "A B", "Pow": "a b", "Sum": "a", "ReLU": "x", "Softmax": "x", "Log": "x",
         "CrossEntropyLoss": "p t", "NLLLoss": "p target"}
EPS, RTOL = 1e-12, 1e-9

# ---------------------------------------------------------------- 1. mutants

SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<",
          ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}
BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
COMPARE = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
           ast.Is: ast.IsNot, ast.IsNot: ast.Is}
DROPPABLE = {"maximum", "asarray", "reduce_grad_to_shape", "swapaxes", "expand_dims", "broadcast_to", "float", "copy"}  # f(x, …) has x's role


@dataclass
class Mutant:
    id: str
    group: str
    module: str
    description: str
    source: str = field(repr=False)


def number(node):
    """The numeric literal a node is (-k counts as one), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = number(node.operand)
        return None if inner is None else -inner
    return node.value if isinstance(node, ast.Constant) and type(node.value) in (int, float) else None


def set_fields(node, **fields):
    for name, value in fields.items():
        setattr(node, name, value)
    return node


def mutations(node, parent, grandparent):
    """(operator, function of the node's copy returning what replaces it) for each first-order mutation of this node."""
    found = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINARY:
        new = BINARY[type(node.op)]
        found.append((f"{SYMBOL[type(node.op)]}→{SYMBOL[new]}", lambda n, new=new: set_fields(n, op=new())))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        found.append(("drop -" if isinstance(node.op, ast.USub) else "drop not", lambda n: n.operand))
    value = number(node)
    if value is not None and not (isinstance(parent, ast.UnaryOp) and number(parent) is not None):
        variants = [value + 1, value - 1, 0] if type(value) is int else [0.0, -value, 2 * value]
        index = "index " if isinstance(parent, ast.Subscript) and node is parent.slice else ""
        for new in dict.fromkeys(v for v in variants if v != value or type(v) is not type(value)):
            found.append((f"{index}{value!r}→{new!r}", lambda n, new=new: ast.Constant(new)))
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        found.append((f"{node.value}→{not node.value}", lambda n: ast.Constant(not n.value)))
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE:
                found.append((f"{SYMBOL[type(op)]}→{SYMBOL[COMPARE[type(op)]]}",
                              lambda n, i=i: set_fields(n, ops=[*n.ops[:i], COMPARE[type(n.ops[i])](), *n.ops[i + 1:]])))
    if isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        found.append((f"{SYMBOL[type(node.op)]}→{SYMBOL[new]}", lambda n, new=new: set_fields(n, op=new())))
    if isinstance(node, ast.keyword) and node.arg == "axis":
        for new in [0, -1, None]:
            if not (isinstance(node.value, ast.Constant) and node.value.value == new):
                found.append((f"axis={new}", lambda n, new=new: set_fields(n, value=ast.Constant(new))))
    if isinstance(node, ast.keyword) and node.arg == "keepdims" and not isinstance(node.value, ast.Constant):
        for new in (True, False):  # a literal keepdims is the bool operator's
            found.append((f"keepdims={new}", lambda n, new=new: set_fields(n, value=ast.Constant(new))))
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in DROPPABLE and (node.args if name != "copy" else isinstance(node.func, ast.Attribute) and not node.args):
            found.append((f"drop {'.copy()' if name == 'copy' else ast.unparse(node.func)}", lambda n: n.func.value if name == "copy" else n.args[0]))
        if len(node.args) == 2 and not any(isinstance(a, ast.Starred) for a in node.args):
            found.append(("swap arguments", lambda n: set_fields(n, args=n.args[::-1])))
    if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
        for i in range(len(node.value.elts) - 1):
            found.append((f"swap returned {i},{i + 1}", lambda n, i=i: set_fields(n.value, elts=[
                *n.value.elts[:i], n.value.elts[i + 1], n.value.elts[i], *n.value.elts[i + 2:]]) and n))
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
        found.append(("swap index", lambda n: set_fields(n, slice=ast.Tuple(n.slice.elts[::-1], ast.Load()))))
    if isinstance(node, (ast.If, ast.IfExp)):
        for new in (True, False):  # the guard dropped: its body always, or never
            found.append((f"if→{new}", lambda n, new=new: set_fields(n, test=ast.Constant(new))))
    # A minus added where a result is made: a returned value, or an assigned one (not unpacking, not a bool or None).
    result = ((isinstance(parent, ast.Return) and not isinstance(node, ast.Tuple))
              or (isinstance(parent, ast.Tuple) and isinstance(grandparent, ast.Return))
              or (isinstance(parent, ast.Assign) and node is parent.value and not isinstance(parent.targets[0], ast.Tuple))
              or (isinstance(parent, ast.AugAssign) and node is parent.value))
    if result and isinstance(node, ast.expr) and not isinstance(node, (ast.Constant, ast.Compare, ast.Tuple)):
        found.append(("add -", lambda n: ast.UnaryOp(ast.USub(), n)))
    return found


def walk(tree):
    """(node, parent, grandparent, field, index) of every node, depth first: the same walk of a deep copy meets the same nodes."""
    stack = [(tree, None, None, None, None)]
    while stack:
        node, parent, grandparent, name, index = stack.pop()
        yield node, parent, grandparent, name, index
        children = []
        for child_name, value in ast.iter_fields(node):
            for i, child in (enumerate(value) if isinstance(value, list) else [(None, value)]):
                if isinstance(child, ast.AST) and not isinstance(child, (ast.expr_context, ast.operator, ast.cmpop, ast.boolop)):
                    children.append((child, node, parent, child_name, i))
        stack.extend(reversed(children))


def place(node):
    """(line, col) of a mutation site; a binary operator's is where its left operand ends (the operator follows)."""
    left = node.left if isinstance(node, (ast.BinOp, ast.Compare)) else node.values[0] if isinstance(node, ast.BoolOp) else None
    return (left.end_lineno, left.end_col_offset) if left else (node.lineno, node.col_offset)


def graded_functions(tree):
    """(group, qualified name, def) of every graded function of a module: a Function's forward and backward, or itself."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in GRADED:
            yield from ((node.name, f"{node.name}.{f.name}", f) for f in node.body
                        if isinstance(f, ast.FunctionDef) and f.name in ("forward", "backward"))
        elif isinstance(node, ast.FunctionDef) and node.name in GRADED:
            yield node.name, node.name, node


def generate(groups):
    """Every first-order mutant of the graded bodies of `groups`, in a fixed order; and the ids of those whose
    module is the same as an earlier mutant's (set aside: the same program twice)."""
    mutants, sources, duplicates = [], {}, []
    for module in dict.fromkeys(GRADED.values()):
        text = (SOLUTIONS / f"{module}.py").read_text()
        lines = text.splitlines(keepends=True)
        solution, inside = set(), False
        for number_, line in enumerate(lines, 1):  # the graded lines: between the markers
            inside = (inside or "# BEGIN SOLUTION" in line) and "# END SOLUTION" not in line
            solution.update([number_] if inside else [])
        for group, qualname, function in graded_functions(ast.parse(text)):
            if group not in groups:
                continue
            first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
            indent, before = " " * function.col_offset, ast.unparse(function).splitlines()
            for k, (node, parent, grandparent, _, _) in enumerate(walk(function)):
                if getattr(node, "lineno", None) not in solution:
                    continue
                for operator, make in mutations(node, parent, grandparent):
                    changed = copy.deepcopy(function)
                    site, site_parent, _, name, index = next(itertools.islice(walk(changed), k, None))
                    new = make(site)
                    if index is None:
                        setattr(site_parent, name, new)
                    else:
                        getattr(site_parent, name)[index] = new
                    after = ast.unparse(ast.fix_missing_locations(changed)).splitlines()
                    source = "".join(lines[:first - 1]) + "".join(indent + line + "\n" for line in after) + "".join(lines[function.end_lineno:])
                    line, col = place(node)
                    mutant_id = f"{module}:{qualname}:{line}:{col}:{operator}"
                    diff = [(a, b) for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes() if tag != "equal"
                            for a, b in itertools.zip_longest(before[i1:i2], after[j1:j2], fillvalue="")]
                    description = f"{module}.py:{line}: " + "; ".join(f"{a.strip()}  →  {b.strip()}" for a, b in diff)
                    if source in sources:
                        duplicates.append({"id": mutant_id, "same_as": sources[source]})
                        continue
                    assert all(m.id != mutant_id for m in mutants), f"two mutants named {mutant_id}"
                    sources[source] = mutant_id
                    mutants.append(Mutant(mutant_id, group, module, description, source))
    return mutants, duplicates

# ---------------------------------------------------------------- 2. the differential test


@dataclass
class Case:
    op: str
    inputs: list               # arrays; for l2_*, the weights
    options: dict
    needs: tuple | None        # needs_input_grad; None: a Context() made by hand
    values: str                # what the values are, in words
    grads: list = None         # l2_grad: each W.grad before the call
    grad_output: np.ndarray = None

    @property
    def size(self):
        return sum(np.size(x) for x in self.inputs)


def tile(values, shape, offset=0):
    values = np.asarray(values, dtype=np.float64)
    return values[(np.arange(int(np.prod(shape))) + offset) % len(values)].reshape(shape)


ELEMENT_SHAPES = [(), (1,), (4,), (1, 1), (3, 1), (1, 4), (3, 4), (1, 3, 1), (2, 1, 4), (2, 3, 4)]
PAIRS = [(a, b) for a in ELEMENT_SHAPES for b in ELEMENT_SHAPES if all(x == y or 1 in (x, y) for x, y in zip(a[::-1], b[::-1], strict=False))]
MATMUL = [((m, k), (k, n)) for m, k, n in [(1, 1, 1), (1, 3, 2), (2, 3, 1), (3, 2, 4), (2, 2, 2)]] + [
    (a + (m, k), b + (k, n)) for m, k, n in [(1, 2, 1), (2, 3, 4)]
    for a, b in [((2,), (2,)), ((2,), ()), ((), (2,)), ((2, 1), (3,)), ((1,), (2,)), ((2,), (1,))]]
ARRAY_SHAPES = [(), (1,), (5,), (3, 1), (1, 4), (3, 4), (2, 1, 4), (2, 3, 4)]
PROBABILITY_SHAPES = [(1, 1), (1, 3), (2, 1), (3, 2), (2, 5), (4, 3)]
SIGNED_ZERO_BASES = [0.0, -1.5, 2.0, -0.5, 1.0, -2.0, 0.7]
RELU_VALUES = [0.0, 1.0, -1.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 2.5, -3.0]
LOG_VALUES = [0.0, EPS / 2, EPS, 2 * EPS, -1.0, -EPS, 1e-300, -0.0, 0.5, 1.0, 2.0, 1e30]
CLIPPED_PROBABILITIES = [0.0, EPS / 2, EPS, 2 * EPS, -0.25, 1.0, 0.3, 1e-300]


def axes(ndim):
    """Every axis form of Sum: None, (), each int both ways, each tuple in every order, positive, negative and mixed."""
    found = [None, ()] + list(range(-ndim, ndim))
    for r in range(1, ndim + 1):
        for perm in itertools.permutations(range(ndim), r):
            found += [perm, tuple(a - ndim for a in perm), (perm[0] - ndim, *perm[1:])]
    return list(dict.fromkeys(found))


def domain(op, rng):
    """(inputs, options, values in words) covering SPEC.md's domain of op, before dtypes and needs_input_grad."""
    normal = rng.normal
    if op == "Mul":
        yield from (([normal(size=a), normal(size=b)], {}, "normal") for a, b in PAIRS)
    if op == "Matmul":
        yield from (([normal(size=a), normal(size=b)], {}, "normal") for a, b in MATMUL)
    if op == "Pow":
        for a, b in PAIRS:
            yield [rng.uniform(0.3, 2, a), normal(size=b)], {}, "positive bases, real exponents"
            for offset in (0, 1):
                yield [tile(SIGNED_ZERO_BASES, a, offset), rng.integers(-2, 4, b).astype(float)], {}, "negative and zero bases, integer exponents"
        for a in ARRAY_SHAPES:
            yield [tile(SIGNED_ZERO_BASES, a, 1), rng.integers(0, 4, a)], {}, "negative and zero bases, an int64 exponent array"
            for e in [2.0, -1.0, 0.0, 1.0, 3.0, np.int64(2)]:
                yield [tile(SIGNED_ZERO_BASES, a, 1), np.asarray(e)], {}, f"negative and zero bases, a 0-d exponent {e!r}"
            for e in [0.5, -0.5]:
                yield [rng.uniform(0.3, 2, a), np.asarray(e)], {}, f"positive bases, a 0-d exponent {e}"
            for base in [2.0, 0.5]:
                yield [np.asarray(base), normal(size=a)], {}, f"a 0-d base {base}, real exponents"
            for base in [-2.0, 0.0]:
                yield [np.asarray(base), rng.integers(-2, 4, a).astype(float)], {}, f"a 0-d base {base}, integer exponents"
    if op == "Sum":
        for shape in ARRAY_SHAPES:
            yield [normal(size=shape)], {}, "normal, default options"
            yield [normal(size=shape)], {"keepdims": True}, "normal"
            yield from (([normal(size=shape)], {"axis": axis, "keepdims": keep}, "normal") for axis in axes(len(shape)) for keep in (False, True))
    if op in ("ReLU", "Log"):
        specials, family = (RELU_VALUES, "at and beside the kink: 0, -0, ±5e-324, ±1e-300, ±1") if op == "ReLU" else (
            LOG_VALUES, "at and beside the clip: 0, EPS/2, EPS, 2·EPS, negatives, 1e-300, 1e30")
        for shape in ARRAY_SHAPES[:2] + [(5,), (3, 4), (2, 3, 4)]:
            yield [normal(size=shape) if op == "ReLU" else rng.uniform(0.3, 2, shape)], {}, "normal" if op == "ReLU" else "positive"
            yield from (([tile(specials, shape, offset)], {}, family) for offset in range(len(specials) if shape in [(), (1,)] else 1))
    if op == "Softmax":
        for shape in [(1,), (5,), (1, 4), (3, 1), (3, 4), (2, 3, 4), (2, 1, 4)]:
            for axis in [None, *range(-len(shape), len(shape))]:
                options, kept = ({} if axis is None else {"axis": axis}), list(shape)
                kept[-1 if axis is None else axis] = 1
                for values, words in [(normal(size=shape), "normal"), (normal(size=shape) + 1000, "logits + 1000"),
                                      (normal(size=shape) - 1000, "logits − 1000"), (np.zeros(shape), "ties (all equal)"),
                                      (normal(size=shape) + rng.choice([-1000.0, 0.0, 50.0, 1000.0], kept), "per-slice offsets ±1000"),
                                      (100 * normal(size=shape), "spread ×100 (exp underflows to 0)")]:
                    yield [values], options, words
    if op in ("CrossEntropyLoss", "NLLLoss"):
        for n, c in PROBABILITY_SHAPES:
            for p, words in [(rng.uniform(0.05, 1, (n, c)), "probabilities"), (tile(CLIPPED_PROBABILITIES, (n, c)), "probabilities at the clip")]:
                if op == "NLLLoss":
                    yield [p, rng.integers(0, c, n)], {}, f"{words}, int64 targets"
                    yield [p, rng.integers(0, c, n).astype(np.int32)], {}, f"{words}, int32 targets"
                    yield [np.roll(p, 1, axis=1), np.arange(n) % c], {}, f"{words}, targets 0, 1, …"
                else:
                    yield [p, np.eye(c)[rng.integers(0, c, n)]], {}, f"{words}, one-hot targets"
                    yield [p, rng.dirichlet(np.ones(c), n)], {}, f"{words}, soft targets"
                    yield [p, rng.uniform(0, 2, (n, c))], {}, f"{words}, targets not normalised"
    if op in ("l2_penalty", "l2_grad"):
        for shapes in [[], [(3, 4)], [(1, 1)], [(2, 1), (1, 3)], [(4, 5), (5, 3), (3, 2)]]:
            for lam in [0.0, 0.01, 1.0]:
                yield [normal(size=s) for s in shapes], {"lam": lam}, f"λ = {lam}"


def cases(op, reference):
    """The cases of op, smallest first (ties: the order made), each with its upstream gradient and
    every dtype and needs_input_grad pattern; cases the reference raises on are outside the domain."""
    rng, made, dropped = np.random.default_rng(zlib.crc32(op.encode())), [], 0
    for inputs, options, values in domain(op, rng):
        if op.startswith("l2_"):
            for dtypes in ["float64", "float32", "float32 first"]:
                weights = [w.astype(np.float32 if dtypes == "float32" or (dtypes == "float32 first" and i == 0) else np.float64)
                           for i, w in enumerate(inputs)]
                for grads in (["none"] if op == "l2_penalty" else ["none", "all", "first none"]):
                    before = [None if grads == "none" or (grads == "first none" and i == 0) else rng.normal(size=w.shape).astype(w.dtype)
                              for i, w in enumerate(weights)]
                    made.append(Case(op, weights, options, None, f"{values}, {dtypes}, grads before: {grads}", before))
            continue
        floats = [i for i, x in enumerate(inputs) if x.dtype.kind == "f"]
        for dtypes in ([("float64",), ("float32",)] if len(floats) < 2 else [("float64", "float64"), ("float32", "float32"), ("float32", "float64")]):
            typed = [x.astype(dtypes[floats.index(i)]) if i in floats else x for i, x in enumerate(inputs)]
            for needs in ([(True,), None] if len(inputs) == 1 else [(True, True), (True, False), (False, True), None]):
                case = Case(op, typed, options, needs, values)
                out = observe(reference, case)
                if "raises" in out:
                    dropped += 1
                    continue
                forward = np.asarray(out["forward"])
                case.grad_output = rng.normal(size=forward.shape).astype(forward.dtype if forward.dtype.kind == "f" else np.float64)
                made.append(case)
    return sorted(made, key=lambda c: c.size), dropped


def observe(package, case):
    """Everything the op does on the case, by name in a fixed order; a raise ends it (key "raises")."""
    seen = {}
    try:
        if case.op.startswith("l2_"):
            weights = [package.tensor.Tensor(w.copy()) for w in case.inputs]
            for w, g in zip(weights, case.grads, strict=False):
                w.grad = None if g is None else g.copy()
            held = [w.grad for w in weights]  # the caller's arrays: l2_grad adds to them in place
            seen["returned"] = getattr(package.module, case.op)(weights, case.options["lam"])
            for i, (w, g) in enumerate(zip(weights, held, strict=False)):
                seen.update({f"W{i}.grad": w.grad, f"W{i}.data after": w.data} | ({} if g is None else {f"W{i}'s grad array before, after": g}))
            return seen
        function, calls = getattr(package.module, case.op), []
        if case.grad_output is None:  # the reference's first look: the forward's output only
            return {"forward": function.forward(package.tensor.Context(), *[x.copy() for x in case.inputs], **case.options)}
        for _ in range(2):  # two calls in a row, both forwards before either backward (the engine's order in a graph)
            inputs, ctx = [x.copy() for x in case.inputs], package.tensor.Context(*([case.needs] if case.needs else []))
            calls.append((ctx, inputs, function.forward(ctx, *inputs, **case.options)))
        for call, (ctx, inputs, output) in enumerate(calls):
            upstream = case.grad_output.copy()
            grads = function.backward(ctx, upstream)
            grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
            suffix = " (second call)" if call else ""
            seen.update({f"forward{suffix}": output, f"number of gradients{suffix}": len(grads)})
            seen.update({f"grad {name}{suffix}": grad for name, grad in zip(NAMES[case.op].split(), grads, strict=False)})
            seen.update({f"{name} after{suffix}": x for name, x in zip(NAMES[case.op].split(), inputs, strict=False)})
            seen[f"grad_output after{suffix}"] = upstream
    except Exception as error:  # any raise is an answer of the mutant's
        seen["raises"] = f"{type(error).__name__}: {error}"[:200]
    return seen


def array_difference(ref, mut, exact=False, undefined=None):
    """None when mut matches ref (shape, dtype, nan/inf positions, values within RTOL of the terms' magnitude), else what differs."""
    r, m = np.asarray(ref), np.asarray(mut)
    if r.shape != m.shape:
        return f"shape {m.shape}, the reference's {r.shape}"
    if r.dtype != m.dtype:
        return f"dtype {m.dtype}, the reference's {r.dtype}"
    if exact or r.dtype.kind not in "fc":
        wrong = ~((r == m) | (np.isnan(r) & np.isnan(m)) if r.dtype.kind in "fc" else (r == m))
    else:
        rf, mf = r.astype(np.float64), m.astype(np.float64)
        magnitude = np.max(np.abs(rf[np.isfinite(rf)]), initial=0.0)
        tolerance = max(RTOL, 16 * np.finfo(r.dtype).eps) * (np.abs(rf) + magnitude)
        wrong = ~((rf == mf) | (np.isnan(rf) & np.isnan(mf)) | (np.abs(mf - rf) <= tolerance))
    if undefined is not None:
        wrong &= ~undefined
    if not wrong.any():
        return None
    at = np.unravel_index(np.argmax(wrong), wrong.shape)
    return f"{m[at].item()!r} where the reference has {r[at].item()!r} (at {tuple(map(int, at))}; {int(wrong.sum())} of {wrong.size} elements differ)"


def difference(case, name, ref, mut, notes):
    """None when the mutant's `name` is the reference's under SPEC.md's conventions, else what differs;
    `notes` collects what differs without mattering to the contract (a type, a read-only view, a signed zero), one example each."""
    def note(what, example=None):
        notes.setdefault(f"{name.removesuffix(' (second call)')}: {what}", example)
    if name.startswith("grad ") and not name.startswith("grad_output"):
        index = NAMES[case.op].split().index(name.split()[1])
        shape = case.inputs[index].shape
        if (case.needs is not None and not case.needs[index]) or (case.op == "NLLLoss" and index == 1):
            # an input that needs no gradient: None or any array of its shape; NLLLoss's target: None or zeros
            if mut is None or (np.shape(mut) == shape and (case.op != "NLLLoss" or index == 0 or not np.any(mut))):
                if (mut is None) != (ref is None):
                    note(f"{'None' if mut is None else 'an array'} where the reference's is {'None' if ref is None else 'an array'}"
                         f" (SPEC: {'no gradient' if case.op == 'NLLLoss' else 'the input needs none'})")
                return None
            allowed = "zeros" if case.op == "NLLLoss" else "any array"
            return f"{np.shape(mut)} {np.asarray(mut).ravel()[:4]} where None (or {allowed} of shape {shape}) belongs"
        if mut is None or ref is None:
            return None if mut is ref else f"{'None' if mut is None else 'an array'} where the reference's is {'None' if ref is None else 'an array'}"
        undefined = undefined_where(*case.inputs) if case.op == "Pow" and index == 1 else None  # SPEC: dB only where a > 0
        found = array_difference(ref, mut, undefined=undefined)
        if found is None and undefined is not None and (masked := array_difference(ref, mut)):
            note("differs where SPEC defines no gradient (a ≤ 0)", masked)
    elif ref is None or mut is None or isinstance(ref, (int, str)):
        return None if (ref is None and mut is None) or (ref is not None and ref == mut) else f"{mut!r} where the reference has {ref!r}"
    else:
        found = array_difference(ref, mut, exact=name.endswith("after"))
    if found is None and type(ref) is not type(mut):
        note(f"type {type(mut).__name__} where the reference's is {type(ref).__name__}")
    if found is None and isinstance(mut, np.ndarray) and isinstance(ref, np.ndarray):
        if ref.flags.writeable and not mut.flags.writeable:
            note("a read-only array (a view), the reference's is writeable")
        if np.any(np.signbit(ref) != np.signbit(mut)) and ref.dtype.kind == "f":
            note("zeros of the other sign (-0.0 against 0.0)")
    return found


def first_difference(case, ref, mut, notes):
    if "raises" in mut:
        return f"raises {mut['raises']}"
    for name in ref:
        try:
            found = difference(case, name, ref[name], mut.get(name), notes)
        except Exception as error:  # what the mutant returned cannot even be compared (a ragged tuple, an object)
            found = f"{type(mut.get(name)).__name__} that cannot be compared ({type(error).__name__}: {error})"[:200]
        if found:
            return f"{name}: {found}"
    return None


def undefined_where(a, b):
    """Where Pow's dB is undefined: a ≤ 0 at some element that b's element was broadcast to."""
    bad = np.broadcast_to(a <= 0, np.broadcast_shapes(a.shape, b.shape)).astype(int)
    bad = bad.sum(axis=tuple(range(bad.ndim - b.ndim))) if bad.ndim > b.ndim else bad
    return bad.sum(axis=tuple(i for i, n in enumerate(b.shape) if n == 1), keepdims=True) > 0 if b.ndim else bad.sum() > 0


def describe(case, found):
    """The exposing input in words (its arrays too, when small)."""
    shapes = ", ".join(f"{name} {x.shape if x.ndim else '0-d'} {x.dtype}" for name, x in zip(
        NAMES.get(case.op, " ".join(f"W{i}" for i in range(len(case.inputs)))).split(), case.inputs, strict=False))
    words = {"op": case.op, "inputs": shapes or "no weights", "values": case.values,
             "options": ", ".join(f"{k}={v!r}" for k, v in case.options.items()) or "defaults",
             "needs_input_grad": "—" if case.op.startswith("l2_") else str(case.needs) if case.needs else "Context() made by hand (every input)",
             "elements": case.size, "difference": found}
    if case.size <= 24:
        words["arrays"] = [np.array2string(x, precision=4, separator=", ").replace("\n", "") for x in case.inputs]
    return words


@dataclass
class Package:
    tensor: object
    module: object


def load(name, folder, module):
    """folder/autodiff imported as package `name` (the course's tensor.py beside the module), and its module."""
    spec = importlib.util.spec_from_file_location(name, folder / "autodiff" / "__init__.py", submodule_search_locations=[str(folder / "autodiff")])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return Package(importlib.import_module(f"{name}.tensor"), importlib.import_module(f"{name}.{module}"))


def write_submission(folder, mutant=None):
    """A copy of solutions/ with the mutant's module in place of the reference's."""
    shutil.copytree(SOLUTIONS, folder / "autodiff", ignore=shutil.ignore_patterns("__pycache__"))
    if mutant:
        (folder / "autodiff" / f"{mutant.module}.py").write_text(mutant.source)
    return folder

# ---------------------------------------------------------------- 3. grading


def rubric_without_mnist(folder):
    text, found = re.subn(r"(?m)^MNIST\s*=.*\n", "", DEFAULT_RUBRIC.read_text())
    assert found == 1, "grader/rubric.toml has no single MNIST line"
    path = folder / "rubric-mutation.toml"
    path.write_text(text + "\n[scale]\nside = 40  # the scale checks on small inputs: the audit measures what they compare, not speed\n")
    return load_rubric(path)


def grade_mutant(mutant, folder, rubric):
    """Every check but MNIST's run on the mutant (grade.run_checks, as the flake audit runs them):
    killed when a case of its own group fails, collateral when one of another group does."""
    started = time.perf_counter()
    scratch = prepare_scratch(load_submission(folder), folder.with_name(folder.name + "-scratch"))
    cases, problem, _ = run_checks(scratch, rubric, "process", folder.with_name(folder.name + "-results.json"), select="not test_accuracy")
    lost = {}
    for case in cases:
        if case.status != "passed":
            lost.setdefault(case.group, {}).setdefault(case.kind, []).append(case.id)
    for leftover in (folder, scratch):
        shutil.rmtree(leftover, ignore_errors=True)
    verdict = "error" if problem else "killed" if mutant.group in lost else "survived"
    return {"verdict": verdict, "lost": {group: {kind: len(ids) for kind, ids in kinds.items()} for group, kinds in lost.items()},
            "collateral": sorted(set(lost) - {mutant.group}), "messages": [problem] if problem else [],
            "seconds": round(time.perf_counter() - started, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="only these graded names, comma-separated (Mul,Log)")
    parser.add_argument("--limit", type=int, help="only the first N mutants (for trying)")
    parser.add_argument("--jobs", type=int, default=2, help="gradings at once")
    parser.add_argument("--out", default="results/mutation.json")
    arguments = parser.parse_args()
    started = time.perf_counter()
    groups = arguments.ops.split(",") if arguments.ops else list(GRADED)
    assert set(groups) <= set(GRADED), f"--ops: the graded names are {', '.join(GRADED)}"
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "tmp").mkdir(parents=True)
    tempfile.tempdir = os.environ["TMPDIR"] = str(WORK / "tmp")  # the grader's scratch folders, and its subprocesses'
    sys.dont_write_bytecode = True

    mutants, duplicates = generate(groups)
    mutants = mutants[:arguments.limit] if arguments.limit else mutants
    print(f"{len(mutants)} mutants of {', '.join(groups)} ({len(duplicates)} more were the same program as an earlier one)", flush=True)

    # 2. The differential test, op by op: the reference's observations once, then each mutant's until the first difference.
    write_submission(WORK / "reference")
    exposing, notes, references, dropped = {}, {}, {}, {}
    warnings.simplefilter("ignore")
    with np.errstate(all="ignore"):
        for n, mutant in enumerate(mutants):
            if mutant.group not in references:
                reference = load(f"audit_reference_{mutant.module}", WORK / "reference", mutant.module)
                made, dropped[mutant.group] = cases(mutant.group, reference)
                references[mutant.group] = [(case, observe(reference, case)) for case in made]
                print(f"{mutant.group}: {len(made)} inputs ({dropped[mutant.group]} outside the domain: the reference raises)", flush=True)
            package = load(f"audit_mutant_{n}", write_submission(WORK / "mutants" / str(n), mutant), mutant.module)
            notes[mutant.id] = {}
            for case, ref in references[mutant.group]:
                found = first_difference(case, ref, observe(package, case), notes[mutant.id])
                if found:
                    exposing[mutant.id] = describe(case, found)
                    break
            for name in [m for m in sys.modules if m == f"audit_mutant_{n}" or m.startswith(f"audit_mutant_{n}.")]:
                del sys.modules[name]
            if mutant.id not in exposing:
                shutil.rmtree(WORK / "mutants" / str(n))
    equivalent = [m for m in mutants if m.id not in exposing]
    print(f"{len(equivalent)} equivalent mutants set aside; grading {len(mutants) - len(equivalent)}", flush=True)

    # 3. Grading, two at a time.
    rubric = rubric_without_mnist(WORK)
    graded, to_grade = {}, [(n, m) for n, m in enumerate(mutants) if m.id in exposing]
    with ThreadPoolExecutor(arguments.jobs) as pool:
        futures = {pool.submit(grade_mutant, m, WORK / "mutants" / str(n), rubric): m for n, m in to_grade}
        for done, future in enumerate(as_completed(futures), 1):
            mutant, graded[futures[future].id] = futures[future], future.result()
            outcome = graded[mutant.id]
            print(f"[{done}/{len(to_grade)}] {outcome['verdict']:8} {mutant.id} ({outcome['seconds']} s)"
                  + (f" collateral: {', '.join(outcome['collateral'])}" if outcome["collateral"] else ""), flush=True)

    verdicts = {m.id: graded[m.id]["verdict"] if m.id in graded else "equivalent" for m in mutants}

    def counts(chosen):
        return {"generated": len(chosen), "equivalent": sum(verdicts[m.id] == "equivalent" for m in chosen),
                "graded": sum(m.id in graded for m in chosen), **{v: sum(verdicts[m.id] == v for m in chosen) for v in ("killed", "survived")},
                "error": sum(verdicts[m.id] == "error" for m in chosen),
                "collateral": sum(bool(graded.get(m.id, {}).get("collateral")) for m in chosen)}
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "solutions", "grader"], cwd=ROOT, capture_output=True, text=True,
                           check=False).stdout
    result = {
        "command": "make mutation-audit", "revision": revision, "uncommitted changes to solutions/ or grader/": bool(dirty.strip()),
        "options": {"ops": groups, "limit": arguments.limit, "jobs": arguments.jobs},
        "rubric": {"derived from": "grader/rubric.toml, its MNIST line removed from [checks], [scale] side = 40", "sha256": rubric.sha256,
                   "text": Path(rubric.path).read_text()},
        "MNIST": "not run: the audit measures the op checks (run_checks selects every check but test_accuracy)",
        "counts": counts(mutants), "per_op": {g: counts([m for m in mutants if m.group == g]) for g in groups},
        "inputs_per_op": {g: len(r) for g, r in references.items()}, "inputs_outside_the_domain": dropped,
        "survivors": [{"id": m.id, "description": m.description, "smallest_exposing_input": exposing[m.id]}
                      for m in mutants if verdicts[m.id] == "survived"],
        "equivalent": [{"id": m.id, "description": m.description,
                        **({"notes": [k + (f", e.g. {v}" if v else "") for k, v in notes[m.id].items()]} if notes[m.id] else {})}
                       for m in equivalent],
        "collateral": [{"id": m.id, "description": m.description, "lost": graded[m.id]["lost"]}
                       for m in mutants if graded.get(m.id, {}).get("collateral")],
        "errors": [{"id": m.id, "messages": graded[m.id]["messages"]} for m in mutants if verdicts[m.id] == "error"],
        "killed": [{"id": m.id, "description": m.description, "lost": graded[m.id]["lost"], "smallest_exposing_input": exposing[m.id]["difference"]}
                   for m in mutants if verdicts[m.id] == "killed"],
        "duplicates": duplicates,
        "seconds": round(time.perf_counter() - started, 1),
        "grading_seconds_per_mutant": round(sum(g["seconds"] for g in graded.values()) / max(1, len(graded)), 2),
    }
    Path(arguments.out).parent.mkdir(parents=True, exist_ok=True)
    Path(arguments.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{json.dumps(result['counts'])} in {result['seconds']} s → {arguments.out}")
    for survivor in result["survivors"]:
        exposed = json.dumps(survivor["smallest_exposing_input"], ensure_ascii=False)
        print(f"survived: {survivor['id']}\n    {survivor['description']}\n    exposed by {exposed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
