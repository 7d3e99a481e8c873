"""Generate starter/autodiff/ from solutions/autodiff/: the one place the starter comes from.

Every region between `# BEGIN SOLUTION <hint>` and `# END SOLUTION` becomes
`raise NotImplementedError("<Class>.<method>: <hint>")`; everything else is copied as is.

    python -m tools.make_starter          # regenerate starter/autodiff/
    python -m tools.make_starter --check  # exit 1 if the committed starter differs
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "autodiff"
STARTER = ROOT / "starter" / "autodiff"

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*(.*)$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
DEFINITION = re.compile(r"^(\s*)(?:class|def)\s+(\w+)")


def blank_solutions(source, filename="<source>"):
    """The source with each solution region replaced by a NotImplementedError naming its place."""
    out, scopes, inside = [], [], None  # scopes: (indent, name) of the enclosing class/def lines
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if inside is not None:
            if END.match(line):
                inside = None
            continue
        begin = BEGIN.match(line)
        if begin:
            indent, hint = begin.groups()
            where = ".".join(name for _, name in scopes)
            message = f"{where}: {hint}" if hint else where
            out.append(f"{indent}raise NotImplementedError({message!r})\n")
            inside = number
            continue
        if END.match(line):
            sys.exit(f"{filename}:{number}: '# END SOLUTION' without a BEGIN")
        definition = DEFINITION.match(line)
        if definition:
            indent = len(definition.group(1))
            scopes = [scope for scope in scopes if scope[0] < indent] + [(indent, definition.group(2))]
        out.append(line)
    if inside is not None:
        sys.exit(f"{filename}:{inside}: '# BEGIN SOLUTION' never ends")
    return "".join(out)


def generated_starter():
    """{relative path: content} of the starter, as generated from the solutions."""
    return {path.name: blank_solutions(path.read_text(), str(path)) for path in sorted(SOLUTIONS.glob("*.py"))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the committed starter is current")
    args = parser.parse_args()
    wanted = generated_starter()
    present = {path.name for path in STARTER.glob("*.py")} if STARTER.is_dir() else set()
    stale = sorted(name for name in wanted if not (STARTER / name).is_file() or (STARTER / name).read_text() != wanted[name])
    extra = sorted(present - wanted.keys())
    if args.check:
        if stale or extra:
            sys.exit(f"starter/autodiff is out of date: {', '.join(stale + extra)} differ; run `make starter`")
        print("starter/autodiff is up to date")
        return
    STARTER.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (STARTER / name).write_text(wanted[name])
    for name in extra:
        (STARTER / name).unlink()
    print(f"starter/autodiff: {len(stale)} written, {len(extra)} removed, {len(wanted) - len(stale)} unchanged")


if __name__ == "__main__":
    main()
