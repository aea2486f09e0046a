# Rasa backend of the intent layer; included from the main Makefile.
#
# Rasa 3.6 needs Python 3.10 and TensorFlow, so it lives in its own venv
# (.venv-rasa) and runs as its own server; the app only talks HTTP to it
# (nlu/rasa_backend.py). Nothing here downloads anything at run time.
#
#   make rasa-venv    create .venv-rasa (Python 3.10.13 from pyenv) with rasa 3.6.21
#   make rasa-train   train the NLU model from nlu/data into nlu/rasa/models
#   make rasa         venv + train + serve on http://localhost:$(RASA_PORT) (foreground)
#   make test-rasa    the real-Rasa integration test (tests/rasa_integration)

PY ?= .venv/bin/python
RASA_VERSION := 3.6.21
RASA_VENV := .venv-rasa
RASA_BIN := $(RASA_VENV)/bin/rasa
RASA_STAMP := $(RASA_VENV)/.lastmile-rasa-$(RASA_VERSION)
RASA_CONFIG ?= nlu/rasa/config.yml
RASA_DATA := nlu/data
RASA_MODELS := nlu/rasa/models
RASA_MODEL := $(RASA_MODELS)/lastmile-nlu.tar.gz
RASA_PORT ?= 5005
# Loopback by default: --enable-api also exposes model upload and training endpoints.
RASA_HOST ?= 127.0.0.1
# pyenv's 3.10.13 if there is one, else any python3.10 on PATH.
RASA_PYTHON ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.10.13/bin/python3.10) \
                           $(shell command -v python3.10 2>/dev/null))
# No telemetry, no network, Rasa's training cache kept out of the repo root.
RASA_ENV := RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 \
            TF_CPP_MIN_LOG_LEVEL=2 RASA_CACHE_DIRECTORY=$(RASA_MODELS)/.cache

.PHONY: rasa-venv rasa-train rasa test-rasa

rasa-venv: $(RASA_STAMP)

$(RASA_STAMP): nlu/rasa/constraints.txt
	@test -n "$(RASA_PYTHON)" || { echo "rasa-venv: Python 3.10 not found (pyenv install 3.10.13)" >&2; exit 1; }
	test -x $(RASA_VENV)/bin/python || $(RASA_PYTHON) -m venv $(RASA_VENV)
	nice $(RASA_VENV)/bin/pip install --disable-pip-version-check -c nlu/rasa/constraints.txt rasa==$(RASA_VERSION)
	$(RASA_ENV) $(RASA_BIN) --version >/dev/null
	touch $@

rasa-train: $(RASA_MODEL)

$(RASA_MODEL): $(RASA_STAMP) $(RASA_CONFIG) $(wildcard $(RASA_DATA)/*.yml)
	$(RASA_ENV) nice $(RASA_BIN) train nlu --config $(RASA_CONFIG) --nlu $(RASA_DATA) \
		--out $(RASA_MODELS) --fixed-model-name lastmile-nlu
	touch $@

rasa: rasa-train
	$(RASA_ENV) $(RASA_BIN) run --enable-api -i $(RASA_HOST) -p $(RASA_PORT) --model $(RASA_MODEL)

test-rasa: rasa-venv
	LASTMILE_REQUIRE_RASA=1 $(RASA_ENV) nice $(PY) -m pytest tests/rasa_integration -m rasa -p no:cacheprovider
