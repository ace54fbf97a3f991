# The README's commands: `make demo`, `make test` and `make docs`. Each creates .venv when missing
# and installs only when pyproject.toml changed since the last install (stamp files in .venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
DEMO_ARGS ?=
PYTEST_ARGS ?=
# Extra sphinx-build options, e.g. DOCS_ARGS='-D sphinx_gallery_conf.filename_pattern=/plot_1'
# runs only the first tutorial (the others are shown as code without output).
DOCS_ARGS ?=

.PHONY: demo test docs lint data system-deps clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime + attacks extras: enough for the demo.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) install -e '.[attacks]'
	touch $@

# Everything the test suite needs (all extras + pytest + playwright + the docs tools).
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.installed-demo $(VENV)/.installed-docs

# The documentation tools (docs extra, which includes the attacks the tutorials run).
$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PIP) install -e '.[docs]'
	touch $@ $(VENV)/.installed-demo

# Debian packages the tests use: Chromium (browser tests) and Fashion-MNIST. Root only.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "note: missing Debian packages:$$missing (tests that need them are skipped)"; fi; \
	fi

data: $(VENV)/.installed-demo
	$(VENV)/bin/whiteboxdl data fetch mnist

demo: $(VENV)/.installed-demo
	$(VENV)/bin/whiteboxdl demo $(DEMO_ARGS)

# The documentation site into site/, from scratch and strict: any warning, an unresolved
# reference into whiteboxdl or a tutorial that raises fails the build (docs/conf.py).
docs: $(VENV)/.installed-docs
	$(VENV)/bin/whiteboxdl data fetch mnist
	rm -rf site docs/_tutorials docs/sg_execution_times.rst build/docs-doctrees
	$(PY) -m sphinx -E -W --keep-going -n -b html -d build/docs-doctrees $(DOCS_ARGS) docs site

# Static checks CI runs: ruff (config in pyproject) and mypy on the public API.
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: $(VENV)/.installed-dev system-deps
	$(VENV)/bin/whiteboxdl data fetch mnist
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
