# Two commands a new user needs: `make quick` (the main job) and `make test` (the test suite).
# Both create or reuse the local virtual environment .venv and install kdlib into it.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdlib-installed
PYTEST_ARGS ?= -n 2

.PHONY: venv test quick proxy info lab clean-venv

$(STAMP): pyproject.toml constraints.txt .jupyter/labconfig/default_setting_overrides.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]' -c constraints.txt
	@mkdir -p $(VENV)/etc/jupyter/labconfig && cp .jupyter/labconfig/default_setting_overrides.json $(VENV)/etc/jupyter/labconfig/
	@touch $(STAMP)

venv: $(STAMP)

# one thread per test worker: two workers each running torch on every core oversubscribe a 2-core machine
# (OpenMP threads spin-wait on each other). Measured 2026-12-03 on a 2-core machine: 5 min 11 s alone (earlier
# 13-15 min with the default threads); beside a 2-process training job 24 min 38 s -> 11 min 04 s
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest $(PYTEST_ARGS)

quick: $(STAMP)
	$(BIN)/kdlib quick

proxy: $(STAMP)
	$(BIN)/kdlib proxy --jobs 2

info: $(STAMP)
	$(BIN)/kdlib info

# JupyterLab on the notebooks. The .py notebooks open as notebooks: jupytext's default-viewer setting, shipped in
# .jupyter/labconfig/ and installed into the venv's Jupyter config by `make venv`.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean-venv:
	rm -rf $(VENV)
