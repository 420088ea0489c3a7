# Every target installs into .venv first when needed, so a fresh clone needs only `make run` / `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= csvimport.db

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	bash samples/run.sh $(BIN)/csvimport

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check csvimport tests bench
	$(BIN)/ruff format --check csvimport tests bench
	$(BIN)/mypy --strict csvimport

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) csvimport.db out
