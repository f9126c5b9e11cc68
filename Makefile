# toolrec: `make run` serves on the embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install run serve test lint typecheck check-engine-imports clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo_setup
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver --noreload 127.0.0.1:$${PORT:-8000}

serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/gunicorn toolrec_site.wsgi --bind $${BIND:-127.0.0.1:8000} --workers $${WEB_WORKERS:-2} --threads $${WEB_THREADS:-4}

test: install check-engine-imports
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy recommender/engine experiments/hashing.py

check-engine-imports:
	@! grep -rnE '^\s*(import|from)\s+(django|rest_framework|celery|redis|qdrant_client|catalog|feedback|experiments|recommender\.(services|snapshots|embeddings|models|tasks))' recommender/engine experiments/hashing.py \
		|| (echo "the pure engine must not import Django, DRF, Celery, Redis or Qdrant" && false)

clean:
	rm -rf var
