# Two commands on a fresh machine: `make run` (set up + train the quickstart) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,onnx,ray,mlflow,search,parquet]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/dnnlab train configs/quickstart.yaml

# Two processes, a test file each at a time: most tests train tiny models on one core.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test-all: $(VENV)/.installed
	$(BIN)/pytest -q -n 2 --dist loadfile -m ""

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/compare_scale.py
	$(BIN)/python benchmarks/mc_predict.py
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/python benchmarks/dropout.py --write

clean:
	rm -rf $(VENV) runs .pytest_cache
