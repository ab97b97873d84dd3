# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test worker api migrate makemigrations bench clean vendor vendor-check upgrade-fixture

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Run the whole service on the embedded stack (SQLite + embedded Redis + in-process worker).
## Honours DATABASE_URL / REDIS_URL when they are set.
run: $(STAMP)
	$(PY) -m api serve

## Run the test suite against the real MariaDB and Redis (see README for the variables).
test: $(STAMP)
	$(PY) -m pytest

## Production-style processes.
api: $(STAMP)
	$(PY) -m api serve --no-embedded-worker

worker: $(STAMP)
	$(VENV)/bin/arq workers.settings.WorkerSettings

migrate: $(STAMP)
	$(PY) -m api migrate

makemigrations: $(STAMP)
	$(VENV)/bin/tortoise makemigrations

## Re-fetch the console's pinned browser libraries from npm (versions in console/vendor/fetch.py) and
## rewrite console/vendor/manifest.json; `vendor-check` verifies the committed files against it.
vendor:
	$(PYTHON) console/vendor/fetch.py

vendor-check:
	$(PYTHON) console/vendor/fetch.py --check

## Rebuild the previous release's populated database, API answers and OpenAPI document (docs/releases.md).
upgrade-fixture: $(STAMP)
	$(PY) tests/upgrade/build_previous_release.py

clean:
	rm -rf $(VENV) var
