# One entry point for everything. The first target that needs Python builds .venv from
# requirements.txt and installs the project into it (editable); later targets reuse it.
#
# The venv is made from Debian's /usr/bin/python3 when it can make one: it is world-readable,
# so the grader's sandboxed worker can run it as an unprivileged user.
BASE_PYTHON := $(shell /usr/bin/python3 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
PYTHON := $(VENV)/bin/python
# The grader's one command: the console script `pip install -e .` puts in the venv (pyproject.toml's
# [project.scripts]), which runs on the venv's Python whatever `python` a shell finds first.
GRADER := $(VENV)/bin/autodiff-grader
READY := $(VENV)/.ready

# As root, the sandboxed worker runs as an unprivileged uid, which cannot read a Python under
# /root: it gets a runtime of its own (numpy, and IPython for notebooks' cells, at the pinned
# versions), readable by everyone.
SANDBOX_VENV := /opt/autodiff-grader/venv
SANDBOX_PINS := $(shell grep -oE '^(numpy|ipython)==[^ ]+' requirements.txt)
SANDBOX := $(if $(filter 0,$(shell id -u)),sandbox-runtime)

PRESET ?= default
SUBMISSION ?= solutions
OUT ?= build/report.json
FORMAT ?= native
SUBMISSIONS ?=
# empty: as many gradings at once as there are cores
JOBS ?=
# REVEAL=after_due_date once the deadline has passed: the pages then agree with the gradebook.
REVEAL ?= visible
# Any other option of the verb, passed as it is: ARGS="--force", ARGS="--only 12345 67890".
ARGS ?=

.PHONY: sandbox-runtime test test-fast lint grade batch diff similarity canvas-upload experiment bench bench-batch bench-grading bench-notebook report-identity bench-scale bench-similarity attacks \
	flake-audit tolerances mutation-audit mnist-seeds mnist-cost docs starter notebook handout gradescope screenshots clean

$(READY): requirements.txt pyproject.toml
	$(BASE_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(GRADER) --help >/dev/null
	touch $@

# Every checkout on the machine shares this runtime, and may be grading with it: it is rebuilt only
# when the pins it records differ from this checkout's (a fresh clone's newer requirements.txt once
# rebuilt it under running gradings), built aside, then swapped in.
sandbox-runtime:
	@if [ "$$(cat $(SANDBOX_VENV)/.ready 2>/dev/null)" != "$(SANDBOX_PINS)" ]; then set -ex; \
		rm -rf $(SANDBOX_VENV).new; /usr/bin/python3 -m venv $(SANDBOX_VENV).new; \
		$(SANDBOX_VENV).new/bin/python -m pip install --quiet --disable-pip-version-check $(SANDBOX_PINS); \
		echo "$(SANDBOX_PINS)" > $(SANDBOX_VENV).new/.ready; chmod -R a+rX $(SANDBOX_VENV).new; \
		rm -rf $(SANDBOX_VENV).old; if [ -d $(SANDBOX_VENV) ]; then mv $(SANDBOX_VENV) $(SANDBOX_VENV).old; fi; \
		mv $(SANDBOX_VENV).new $(SANDBOX_VENV); rm -rf $(SANDBOX_VENV).old; fi

# On every core (pytest-xdist): a grading is one process at a time; a module's shared fixture stays
# on one test process (its xdist_group).
test: $(READY) $(SANDBOX)
	$(PYTHON) -m pytest -n auto --dist loadgroup

# The unit-level tests: no grading of whole submissions, no MNIST training (well under a minute).
test-fast: $(READY) $(SANDBOX)
	$(PYTHON) -m pytest tests -m "not slow" -n auto --dist loadgroup

lint: $(READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# One target per verb of the grader; each exits as the grader does (non-zero when a grading failed).
grade: $(READY) $(SANDBOX)
	$(GRADER) grade $(SUBMISSION) --out $(OUT) --format $(FORMAT) $(if $(HTML),--html $(HTML) --reveal $(REVEAL)) $(ARGS)

batch: OUT = build/batch
batch: $(READY) $(SANDBOX)
	$(if $(SUBMISSIONS),,$(error usage: make batch SUBMISSIONS=folder-or-zip [OUT=build/batch] [JOBS=n] [REVEAL=after_due_date] \
		[CANVAS_EXPORT=file | MOODLE_WORKSHEET=file] [RUBRIC=file] [SCHEDULER=tcp://host:port] [SIMILARITY=1] [ARGS=...]))
	$(GRADER) batch $(SUBMISSIONS) --out $(OUT) --html --reveal $(REVEAL) $(if $(JOBS),--jobs $(JOBS)) \
		$(if $(CANVAS_EXPORT),--canvas-export $(CANVAS_EXPORT)) $(if $(MOODLE_WORKSHEET),--moodle-worksheet $(MOODLE_WORKSHEET)) \
		$(if $(RUBRIC),--rubric $(RUBRIC)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(SIMILARITY),--similarity) $(ARGS)

diff: OUT =
diff: $(READY)
	$(if $(and $(OLD),$(NEW)),,$(error usage: make diff OLD=batch-output NEW=batch-output [OUT=folder for diff.md and diff.csv]))
	$(GRADER) diff $(OLD) $(NEW) $(if $(OUT),--out $(OUT))

similarity: OUT = build/batch
similarity: $(READY)
	$(GRADER) similarity $(OUT) $(if $(THRESHOLD),--threshold $(THRESHOLD))

# The token from the environment only: CANVAS_TOKEN=... make canvas-upload URL=... COURSE=... ASSIGNMENT=...
canvas-upload: OUT = build/batch
canvas-upload: $(READY)
	$(if $(and $(URL),$(COURSE),$(ASSIGNMENT)),,$(error usage: CANVAS_TOKEN=... make canvas-upload [OUT=build/batch] URL=https://canvas.example.edu COURSE=id ASSIGNMENT=id))
	$(GRADER) canvas-upload $(OUT) --url $(URL) --course $(COURSE) --assignment $(ASSIGNMENT)

experiment: $(READY)
	cd solutions && ../$(PYTHON) -m autodiff.train --preset $(PRESET) --out ../results

bench: $(READY)
	$(PYTHON) -m benchmarks.epoch_speed --out results/bench.json
	$(PYTHON) -m tools.make_docs

bench-batch: $(READY) $(SANDBOX)
	$(PYTHON) -m benchmarks.batch_speed --out results/batch_speed.json
	$(PYTHON) -m tools.make_docs

# The whole grading of the reference at revision BEFORE (a commit, a branch) and at this one, alternately.
# Which revision to compare with is the question the run answers: it has no default.
bench-grading: $(READY) $(SANDBOX)
	$(if $(BEFORE),,$(error usage: make bench-grading BEFORE=git-revision (the grader to compare this one with)))
	$(PYTHON) -m benchmarks.grading_time --before $(BEFORE) --out results/grading_time.json

# Notebooks graded at BEFORE (say, the last grader that read notebooks statically) and now, alternately.
bench-notebook: $(READY) $(SANDBOX)
	$(if $(BEFORE),,$(error usage: make bench-notebook BEFORE=git-revision (the grader to compare this one with)))
	$(PYTHON) -m benchmarks.notebook_grading --before $(BEFORE) --out results/notebook_grading.json

# The reports of the reference, the starter, the handout's notebook and every fixture of the tests' corpora, by the
# grader at BEFORE and by this one, compared byte for byte (timings, the grader's version and new fields aside).
report-identity: $(READY) $(SANDBOX)
	$(if $(BEFORE),,$(error usage: make report-identity BEFORE=git-revision (the grader to compare this one with) [JOBS=n]))
	$(PYTHON) -m benchmarks.report_identity --before $(BEFORE) $(if $(JOBS),--jobs $(JOBS)) --out results/report_identity.json
	$(PYTHON) -m tools.make_docs

bench-scale: $(READY) $(SANDBOX)
	$(PYTHON) -m benchmarks.scale --busy 0 --out results/scale_quiet.json
	$(PYTHON) -m benchmarks.scale --busy 2 --out results/scale.json

attacks: $(READY) $(SANDBOX)
	$(PYTHON) -m benchmarks.attacks --out results/attacks.json
	$(PYTHON) -m tools.make_docs

bench-similarity: $(READY)
	$(PYTHON) -m benchmarks.similarity_speed --out results/similarity.json

# The reference and every correct fixture of the tests under 20 salts of the inputs: no check may flip.
flake-audit: $(READY) $(SANDBOX)
	$(PYTHON) -m benchmarks.flake_audit --out results/flake_audit.json

# How far correct code and central differences land from the exact oracle: the tolerance's footing.
tolerances: $(READY)
	$(PYTHON) -m benchmarks.tolerances --out results/tolerances.json

# First-order mutants of the reference's graded bodies, each graded (MNIST aside): the survivors are what the checks
# miss, each with the smallest input that tells it from the reference. Our own mutants: graded at the process level.
mutation-audit: $(READY)
	$(PYTHON) -m benchmarks.mutation_audit --out results/mutation.json

mnist-seeds: $(READY) $(SANDBOX)
	$(PYTHON) -m benchmarks.mnist_seeds --out results/mnist_seeds.json
	$(PYTHON) -m tools.make_docs

# The MNIST check's wall time and accuracy, this tree against BEFORE (a git revision), alternately.
mnist-cost: $(READY) $(SANDBOX)
	$(if $(BEFORE),,$(error usage: make mnist-cost BEFORE=git-revision (the grader to compare this one with)))
	$(PYTHON) -m benchmarks.mnist_cost --before $(BEFORE) --out results/mnist_cost.json

# The figures in docs/ come from results/*.json: rewrite them after any benchmark.
docs: $(READY)
	$(PYTHON) -m tools.make_docs

starter: $(READY)
	$(PYTHON) -m tools.make_starter

# handout/autodiff.ipynb: the assignment as a notebook, generated from the solutions like the starter.
notebook: $(READY)
	$(PYTHON) -m tools.make_notebook

handout: $(READY)
	$(PYTHON) -m tools.make_handout --out dist/autodiff-handout.zip

gradescope: $(READY)
	$(PYTHON) -m tools.make_gradescope --out dist/gradescope-autograder.zip

# Needs Debian's chromium. The PNGs land in results/screenshots/.
screenshots: $(READY) $(SANDBOX)
	rm -rf build/demo
	$(PYTHON) -m tools.demo_class build/demo/submissions --small
	$(GRADER) batch build/demo/submissions --out build/demo/out --html
	$(PYTHON) -m tools.screenshot_pages build/demo/out/html/buggy_mul_unreduced_broadcast.html \
		build/demo/out/html/index.html --out results/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build dist
