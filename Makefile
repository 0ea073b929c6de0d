# Virtual Tutor: `make run` starts everything, `make test` runs the suite (both set up first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m tutor_site.launcher run

test: setup
	REDIS_KEY_PREFIX=$${REDIS_KEY_PREFIX:-vt-test} $(PY) -m tutor_site.launcher test $(PYTEST_ARGS)

bench: setup
	$(PY) -m tutor_site.launcher bench

clean:
	rm -rf $(VENV) var staticfiles
