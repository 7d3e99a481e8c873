import sys

from .preflight import refusal

# Before cli.py imports anything it needs: from a Python without the grader's packages, say which
# command to run instead, and do nothing else.
said = refusal(sys.argv[1:])
if said:
    print(said, file=sys.stderr)
    raise SystemExit(1)

from .cli import main  # noqa: E402

raise SystemExit(main())
