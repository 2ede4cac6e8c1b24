# Two entry points a fresh machine needs: `make quickstart` and `make test`.
# Each creates the virtual environment and fetches the data it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv data browser quickstart test lint bench-quick clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

data:
	@if [ -z "$$SLIMKIT_DATA" ] && [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; fi

# A real browser engine for the report test (tests/report renders report.html in headless Chromium); best effort:
# the test skips, saying why, where apt cannot install it.
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; } \
	  >/dev/null 2>&1 || \
	  echo "chromium not installed: the browser check of report.html will be skipped"

quickstart: venv data
	$(VENV)/bin/slimkit compress recipes/quickstart.yaml --run-dir runs/quickstart --overwrite

test: venv data browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest

bench-quick: venv data
	for b in benchmarks/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
