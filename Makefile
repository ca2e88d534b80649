# One-command set-up: `make demo` and `make test` create .venv with Python 3.10 when it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo inspect-demo test test-all clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@bash .ci/make_venv.sh $(VENV)
	@touch $(STAMP)

# Temporary demo (until the end-to-end `snnc demo` lands): inspect the small NIR graph the repo ships
# (written by examples/make_demo_graph.py with our own exporter).
demo: $(STAMP)
	$(VENV)/bin/snnc demo

inspect-demo: $(STAMP)
	$(VENV)/bin/snnc inspect examples/data/demo_recurrent.nir

test: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
