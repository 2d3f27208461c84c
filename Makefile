# The two quickstart commands: `make check` and `make test`.  Both build
# .venv from pyproject.toml on a fresh machine that has only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: check test test-deep bench mutate clean

# scripts/idemwrite is copied into the venv at install, hence a prerequisite.
# Editable mode compat: a plain path in a .pth.  The default editable finder
# costs 12 ms at every start of `idemwrite gocacheprog`, which the go command
# waits for; setuptools calls compat transitional, hence the fallback.
$(STAMP): pyproject.toml scripts/idemwrite
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat \
	  || $(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

check: $(STAMP)
	$(BIN)/idemwrite check

# A module per worker: module-scoped fixtures (the CrossHair runs, the
# theorems) then run once.  Plain `pytest` still runs everything serially.
PYTEST_JOBS := -n auto --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_JOBS)

test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q $(PYTEST_JOBS)

# The bench extra (matplotlib, for the plots) on top of the test install:
# `make bench` on a fresh machine installs it itself.  The full run takes
# tens of minutes (docs/BENCHMARKS.md says how long it took).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat \
	  || $(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# Mutation testing (cosmic-ray) of the modules that carry the promises,
# each with its own fast tests and time budget: under an hour on 2 cores.
# Not part of `make test`.  Writes docs/MUTATION.md; see mutation/run.py.
MUTATE_STAMP := $(VENV)/.mutate-installed

$(MUTATE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,mutate]' --config-settings editable_mode=compat \
	  || $(BIN)/pip install --quiet -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	$(BIN)/python mutation/run.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV)
