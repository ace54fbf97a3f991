# The README's two commands: `make demo` and `make test`. Both create .venv when missing and
# install only when pyproject.toml changed since the last install (stamp files in .venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test lint data system-deps clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime + attacks extras: enough for the demo.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) install -e '.[attacks]'
	touch $@

# Everything the test suite needs (all extras + pytest + playwright).
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
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

# Static checks CI runs: ruff (config in pyproject) and mypy on the public API.
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: $(VENV)/.installed-dev system-deps
	$(VENV)/bin/whiteboxdl data fetch mnist
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
