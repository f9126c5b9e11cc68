# toolrec: `make run` serves on the embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install install-dev run serve test lint fuzz clean

# The runtime only (what `make run` needs); tests and linters add requirements-dev.txt.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo_setup
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver --noreload 127.0.0.1:$${PORT:-8000}

serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/gunicorn -c python:toolrec_site.gunicorn_config toolrec_site.wsgi

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# schemathesis with all checks against a scratch service of its own: 5,000+ cases, a table
# and bench/results/schema_fuzz.json (FUZZ_ARGS="--cases-per-operation 50" for a short run).
fuzz: install-dev
	$(PY) bench/schema_fuzz.py $(FUZZ_ARGS)

# ruff, the import contracts (stages one way, no cycles, a pure engine) and mypy on the
# whole project (django-stubs; strict on the pure code).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

clean:
	rm -rf var
