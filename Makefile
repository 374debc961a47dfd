# jacobite — two commands do all set-up on a fresh machine:
#   make demo   creates .venv, installs jacobite, runs `jacobite tour`
#   make test   creates .venv with the dev extras, runs ruff, mypy, the whole suite and the doctests
#
# torch: where there is no GPU the CPU build is installed (on these machines
# `pip install torch==2.13.0` resolves to a local CPU wheel; a plain `torch` would pull a
# multi-GB CUDA build). Override with e.g. `make test TORCH='torch>=2.4'`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
JOBS   ?= 2

.PHONY: demo test test-gpu lint typecheck bench clean venv docs dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	@touch $@

$(VENV)/.base: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[all]"
	@touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[dev]"
	@touch $@ $(VENV)/.base

venv: $(VENV)/.dev

demo: $(VENV)/.base
	$(BIN)/jacobite tour

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: $(VENV)/.dev lint typecheck
	$(BIN)/python -m pytest -n $(JOBS) -q

# On a machine with a GPU (and a CUDA build of torch): the device battery alone.
test-gpu: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m cuda

# The documentation site (guides, worked examples, API reference from the docstrings) in site/;
# --strict turns every warning (a broken link, a docstring griffe cannot read) into an error.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The sdist and the wheel in dist/, checked as the package index will render them.
dist: $(VENV)/.dev
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	$(BIN)/twine check --strict dist/*

bench: $(VENV)/.dev
	$(PIP) install -e ".[bench]"
	$(PIP) install --no-deps -r benchmarks/peers-no-deps.txt
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
