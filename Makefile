# lastmile — `make run` to try it, `make test` to check it. Both set everything up first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
CHROMIUM := /usr/bin/chromium
CATALOG_DIR := bot/translations
LOCALES := es fr de pt

.PHONY: help venv run test test-sqlite test-pg lint i18n i18n-extract i18n-update i18n-compile schema \
        browser bench clean

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

run: venv i18n-compile
	LASTMILE_DEMO=true $(BIN)/lastmile demo seed
	LASTMILE_DEMO=true $(BIN)/lastmile serve --host $(HOST) --port $(PORT)

test: venv i18n-compile browser
	$(PY) -m pytest tests --ignore=tests/rasa_integration -p no:cacheprovider

# Headless Chromium for the browser tests (Debian's package; Playwright cannot download its own here).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

lint: venv
	$(BIN)/ruff check bot handlers db nlu tests app.py bench

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

# Regenerate the single initial migration from the models (before the first release only).
schema: venv
	rm -f /tmp/lastmile-schema.db db/migrations/versions/0001_*.py
	$(PY) -c "from db.migrate import autogenerate; autogenerate('sqlite:////tmp/lastmile-schema.db', 'initial schema', rev_id='0001')"
	rm -f /tmp/lastmile-schema.db

bench: venv
	$(PY) bench/webhook.py
	$(PY) bench/notify.py
	$(PY) bench/nlu.py

clean:
	rm -rf $(VENV) .pytest_cache instance nlu/.cache

include nlu/rasa/rasa.mk
test-rasa: venv
