# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Empty: torch as plain PyPI resolves it (on Linux x86_64 the CUDA build: 4.6 GB of CUDA here).
# A CPU-only machine: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu (README, "Install").
TORCH_INDEX ?=
# glibc malloc returns buffers to the OS after each forward pass; on CPUs that costs 1.5-4x.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 100000000000

.PHONY: demo test install install-dev browser clean

# dev includes [all]: every extra (train, explain, export) and the test tools.
$(BIN)/drgrader: pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifneq ($(strip $(TORCH_INDEX)),)
	$(BIN)/pip install --index-url "$(TORCH_INDEX)" torch torchvision
endif
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(BIN)/drgrader

# Headless Chromium for the web-demo browser test (Debian package; nothing downloaded by playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the browser test"; fi; }

demo: install
	$(BIN)/drgrader demo

test: install browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .drgrader-cache demo-data
