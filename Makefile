# The two commands of the README's quick start, and the pieces they are made of.
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: demo test setup compile lint typecheck bench clean

demo: setup  ## Set up, then watch this machine's traffic live in the dashboard (Ctrl-C stops)
	$(VENV)/bin/mizu tap --local

test: setup  ## Set up, then run the whole test suite (on the compiled build)
	$(PYTHON) tools/build_compiled.py --stale
	$(PYTHON) -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-dev.txt $(wildcard plugins/*/pyproject.toml examples/*/pyproject.toml) tools/build_compiled.py
	.ci/install-system-packages
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" .ci/get-helm >/dev/null
	touch $@

compile: setup  ## Rebuild the compiled modules in place (docs/compiled.md), after editing them
	$(PYTHON) tools/build_compiled.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build plugins/*/build
	find mizu_core plugins -name '*.so' -delete
