# learnchain — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# e.g. https://download.pytorch.org/whl/cpu: torch's CPU-only build (PyPI's pulls CUDA on Linux)
TORCH_INDEX_URL ?=

.PHONY: install test test-processes test-in-process test-slow test-all bench-test e2e lint format demo simulate bench proto clean \
	chaos docs testnet-up testnet-down testnet-logs testnet-join testnet-e2e browser-test

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (learnchain needs Python 3.11 or newer: make PYTHON=python3.12 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# make test runs its two halves side by side: the end-to-end tests, which start node processes,
# one at a time (two clusters would share the two cores and race for ports), and the in-process
# tests. The slowest end-to-end runs are in test-slow; CI runs both.
NOT_HOST := not docker and not chaos and not browser and not flower

test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-processes test-in-process

test-processes: $(STAMP)
	$(BIN)/pytest -q -m "e2e and not slow and $(NOT_HOST)"

test-in-process: $(STAMP)
	$(BIN)/pytest -q -m "not e2e and not slow and $(NOT_HOST)"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m "slow and $(NOT_HOST)"

test-all: test test-slow

# The benches that need an environment of their own: Flower beside learnchain (bench/peers).
bench-test: $(STAMP)
	$(BIN)/pytest -q -m flower tests/bench

# Only the end-to-end tests: separate node processes on loopback (testnet, joining, SIGKILL, demo).
e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e

# The documentation site (MkDocs, docs/ and mkdocs.yml) into site/; warnings are errors, so a
# broken link or anchor fails. The reference pages are generated from the code (docs/hooks/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/learnchain demo --validators 5

simulate: $(STAMP)
	$(BIN)/learnchain simulate --validators 7 --stakes 1,1,2,3,5,8,13 --heights 3000 --seed 1

bench: $(STAMP)
	$(BIN)/python bench/simulator_speed.py

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. learnchain/proto/learnchain.proto

# The dashboard in headless Chromium (installs Debian's chromium and chromium-driver if missing).
# LEARNCHAIN_DASHBOARD_SCREENSHOT=docs/dashboard.png also saves a picture of it.
browser-test: $(STAMP)
	tests/browser/prepare-host.sh
	$(BIN)/pytest -q -m browser tests/browser

# Real validators in network namespaces with faults from a seeded schedule and an invariant
# checker (tests/chaos); needs root. `make chaos SECONDS=3600` for a soak, SEED=N for another
# schedule. tests/chaos/prepare-host.sh installs the Debian packages it needs.
SECONDS ?= 180
SEED ?= 0

chaos: $(STAMP)
	tests/chaos/prepare-host.sh
	$(BIN)/pytest -q -m chaos tests/chaos
	$(BIN)/python -m tests.chaos --seconds $(SECONDS) --seed $(SEED)

# The docker-compose testnet (docker/): four validators, and a fifth that joins by staking.
testnet-up:
	docker/testnet.sh up

testnet-join:
	docker/testnet.sh join

testnet-logs:
	docker/testnet.sh logs

testnet-down:
	docker/testnet.sh down

# Real containers: starts dockerd and builds the base image where needed (docker/prepare-host.sh).
testnet-e2e: $(STAMP)
	export $$(docker/prepare-host.sh) && $(BIN)/pytest -q -m docker tests/docker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build site *.egg-info
