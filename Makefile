# lastmile — `make run` to try it, `make test` to check it. Both set everything up first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
CHROMIUM := /usr/bin/chromium
AXE := tests/browser/axe/node_modules/axe-core/axe.min.js
CATALOG_DIR := bot/translations
LOCALES := es fr de pt

.PHONY: help venv nlu-model run test test-at test-sqlite test-pg lint i18n i18n-extract i18n-update i18n-compile migration cluster \
        browser axe bench clean

help:
	@echo "make run    set up, migrate, seed demo data, serve on http://$(HOST):$(PORT) (simulator at /simulator)"
	@echo "make test   set up, then run the whole test suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)"
	@echo "make rasa   build the Rasa 3.6 venv (Python 3.10), train, serve on :5005"
	@echo "make bench  run the benchmarks in bench/"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The NLU model for the current data (nlu/.cache, ~30 s once; skipped while the data is unchanged).
nlu-model: venv
	@$(PY) -c "import sys; from nlu.embedded.artifact import artifact_path; sys.exit(not artifact_path().exists())" \
	  || $(BIN)/lastmile nlu train

run: venv i18n-compile nlu-model
	LASTMILE_DEMO=true $(BIN)/lastmile demo seed
	LASTMILE_DEMO=true LASTMILE_PUBLIC_BASE_URL="$${LASTMILE_PUBLIC_BASE_URL:-http://$(HOST):$(PORT)}" \
	  $(BIN)/lastmile serve --host $(HOST) --port $(PORT)

# The model is trained first, alone: the test workers would otherwise each start on it at once.
test: venv i18n-compile browser axe nlu-model
	$(PY) -m pytest tests --ignore=tests/rasa_integration -p no:cacheprovider -n 2 --dist loadgroup

# The suite with the clock moved (libfaketime; the clock starts at AT, UTC, and runs): dates near midnight, month
# ends and DST changes in the customers' zones. `make test-at AT="2027-03-14 06:58:30"` (US spring forward).
# The monotonic clock is moved too: with FAKETIME_DONT_FAKE_MONOTONIC=1 every time.sleep() fails with EINVAL
# (libfaketime 0.9.10 and Python's clock_nanosleep), which is the tool's fault, not the code's.
test-at: venv i18n-compile browser axe nlu-model
	@test -n "$(AT)" || { echo 'usage: make test-at AT="2027-01-01 04:58:30" [TESTS=tests/test_notify.py]' >&2; exit 1; }
	@command -v faketime >/dev/null || { echo "install Debian's faketime package (apt-get install faketime)" >&2; exit 1; }
	FAKETIME_DONT_FAKE_MONOTONIC=0 faketime -f "@$(AT)" \
	  $(PY) -m pytest $(or $(TESTS),tests) --ignore=tests/rasa_integration -p no:cacheprovider -n 2 --dist loadgroup

# Headless Chromium for the browser tests (Debian's package; Playwright cannot download its own here).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

# axe-core (the accessibility engine of the browser tests), pinned by tests/browser/axe/package-lock.json.
axe: $(AXE)

$(AXE): tests/browser/axe/package.json tests/browser/axe/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the accessibility check (apt-get install npm)" >&2; exit 1; }
	npm ci --prefix tests/browser/axe --no-audit --no-fund --loglevel=error
	touch $@

lint: venv
	$(BIN)/ruff check bot handlers db nlu tests app.py bench
	$(PY) -m mypy

# --- translations (Babel) ---------------------------------------------------------------------
i18n: i18n-extract i18n-update i18n-compile

i18n-extract: venv
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 -k lazy_gettext \
		--no-location --sort-output --project lastmile -o $(CATALOG_DIR)/messages.pot .

i18n-update: venv
	for l in $(LOCALES); do \
	  test -f $(CATALOG_DIR)/$$l/LC_MESSAGES/messages.po \
	    && $(BIN)/pybabel update -i $(CATALOG_DIR)/messages.pot -d $(CATALOG_DIR) -l $$l --no-fuzzy-matching \
	    || $(BIN)/pybabel init -i $(CATALOG_DIR)/messages.pot -d $(CATALOG_DIR) -l $$l; \
	done

i18n-compile: venv
	@$(BIN)/pybabel compile -d $(CATALOG_DIR) >/dev/null 2>&1 || $(BIN)/pybabel compile -d $(CATALOG_DIR)

# A new Alembic revision on top of head, from the difference between the models and the migrated schema.
# Pilots run 0001 already: never edit a released revision, add one (`make migration MSG="add brands"`).
migration: venv
	@test -n "$(MSG)" || { echo 'usage: make migration MSG="what changes"' >&2; exit 1; }
	rm -f /tmp/lastmile-schema.db
	$(PY) -c "from db.migrate import autogenerate; autogenerate('sqlite:////tmp/lastmile-schema.db', '$(MSG)')"
	rm -f /tmp/lastmile-schema.db

# The production topology as plain processes: migrate, 2 web nodes, 2 workers, 1 beat (local PostgreSQL + Redis).
cluster: venv i18n-compile nlu-model
	$(PY) deploy/cluster.py --database-url "$${DATABASE_URL:-postgresql://root@127.0.0.1:5432/test}" \
		--redis-url "$${LASTMILE_CELERY_BROKER_URL:-redis://127.0.0.1:6379/3}"

bench: venv
	$(PY) bench/webhook.py
	$(PY) bench/notify.py
	$(PY) bench/dispatch.py
	$(PY) bench/email_send.py
	$(PY) bench/nlu.py

clean:
	rm -rf $(VENV) .pytest_cache instance nlu/.cache tests/browser/axe/node_modules

include nlu/rasa/rasa.mk
test-rasa: venv
