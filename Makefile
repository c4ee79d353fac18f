# Two commands a new user needs: `make quick` (the main job) and `make test` (the test suite).
# Both create or reuse the local virtual environment .venv and install kdlib into it.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdlib-installed
PYTEST_ARGS ?= -n 2

.PHONY: venv test quick proxy info clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

quick: $(STAMP)
	$(BIN)/kdlib quick

proxy: $(STAMP)
	$(BIN)/kdlib proxy --jobs 2

info: $(STAMP)
	$(BIN)/kdlib info

clean-venv:
	rm -rf $(VENV)
