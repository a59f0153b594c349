# learnchain — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test e2e lint format demo simulate bench proto clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (learnchain needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

# Separate node processes on loopback (testnet, SIGKILL/restart, demo). Kept out of `make test`
# until the intermittent daemon stall they exposed under CI load is fixed (see bench/README.md).
e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/learnchain demo --validators 5 --rounds 30

simulate: $(STAMP)
	$(BIN)/learnchain simulate --validators 7 --stakes 1,1,2,3,5,8,13 --heights 3000 --seed 1

bench: $(STAMP)
	$(BIN)/python bench/simulator_speed.py

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. proto/learnchain.proto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
