# Two commands: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-tuning test bench install clean vsix mlflow-server-venv

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m mlflowdsl.demo

# A tune block: an Optuna study whose trials run as Dask tasks (a rerun serves them from the cache).
demo-tuning: $(STAMP)
	$(VENV)/bin/mlw run examples/tuning.mlw

# The MLflow tracking server of the tests (tests/integration/mlflow_support.py) runs from its own
# venv: full mlflow pins gunicorn<27 and pyarrow<26, below ours. The fixture builds it too if missing.
MLFLOW_SERVER_VENV := .venv-mlflow-server
$(MLFLOW_SERVER_VENV)/bin/mlflow:
	$(PYTHON) -m venv $(MLFLOW_SERVER_VENV)
	$(MLFLOW_SERVER_VENV)/bin/pip install --quiet "mlflow>=3.17,<4"

mlflow-server-venv: $(MLFLOW_SERVER_VENV)/bin/mlflow

test: $(STAMP) $(MLFLOW_SERVER_VENV)/bin/mlflow
	@bash .ci/ensure_chromium.sh
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Each script compares us with its anchor in one run and prints ratios; see bench/RESULTS.md.
bench: $(STAMP) $(MLFLOW_SERVER_VENV)/bin/mlflow
	$(PY) bench/compile_scale.py
	$(PY) bench/runtime_overhead.py
	$(PY) bench/locks.py
	$(PY) bench/failover.py
	$(PY) bench/tuning.py
	$(PY) bench/serving.py
	$(PY) bench/mlflow.py

# The VS Code extension (editors/vscode/) as a .vsix: npm installs its client library and
# @vscode/vsce into editors/vscode/node_modules (not committed), then vsce packages it.
vsix:
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; install Node.js 20 or later"; exit 2; }
	cd editors/vscode && npm install --no-audit --no-fund --loglevel=error && npx --no-install vsce package --skip-license --out mlw.vsix

clean:
	rm -rf $(VENV) .mlw .pytest_cache .hypothesis
