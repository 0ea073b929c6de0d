# Virtual Tutor: `make run` starts everything, `make test` runs the suite (both set up first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup chromium coturn run cluster test bench lint clean

# The venv with the runtime and the test/bench/lint tools (requirements-dev.txt includes
# requirements.txt); redone when either file changes.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP) chromium coturn

# Debian's chromium for the browser tests (Playwright never downloads a browser): installed
# when this runs as root with apt-get; otherwise it says what to install. Without it the
# browser tests are skipped, and everything else works.
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests (apt-get install chromium)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "Could not install chromium: the browser tests will be skipped until 'apt-get install chromium' works."; \
	else \
	  echo "The browser tests need Debian's chromium: run 'apt-get install chromium' as root (they are skipped without it)."; \
	fi

# Debian's coturn, the TURN server for viewers behind NATs (deploy/coturn/turnserver.conf)
# and for the relay-only test: installed like chromium; without it that test is skipped.
# The package's own service would run /etc/turnserver.conf, which allows anonymous relaying:
# on a systemd machine it is masked while installing and left disabled (see the README's
# TURN section to run it with our configuration); elsewhere Debian does not start it.
coturn:
	@if command -v turnserver >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's coturn for TURN and its test (apt-get install coturn)"; \
	  systemd=; [ -d /run/systemd/system ] && systemd=1; \
	  [ -z "$$systemd" ] || systemctl mask coturn.service >/dev/null 2>&1 || true; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null; } \
	    || echo "Could not install coturn: the TURN relay test will be skipped until 'apt-get install coturn' works."; \
	  [ -z "$$systemd" ] || { systemctl unmask coturn.service; systemctl disable coturn.service; } >/dev/null 2>&1 || true; \
	else \
	  echo "TURN needs Debian's coturn: run 'apt-get install coturn' as root (the TURN relay test is skipped without it)."; \
	fi

run: $(STAMP)
	$(PY) -m tutor_site.launcher run

# The production layout on one machine: WEB_PROCESSES web servers on PORT, PORT+1, ...,
# LIPSYNC_WORKERS live lip-sync workers, TTS_WORKERS tts workers (README: Scaling out).
cluster: $(STAMP)
	$(PY) -m tutor_site.launcher cluster

test: setup
	REDIS_KEY_PREFIX=$${REDIS_KEY_PREFIX:-vt-test} $(PY) -m tutor_site.launcher test $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m tutor_site.launcher bench

# Lint and format check (configuration in pyproject.toml); `ruff format .` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Keeps var/ (the database, media and secret key): only the venv, caches and collected static files go.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
	find . -path ./var -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
