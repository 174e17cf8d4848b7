# Two commands do all the setup: `make demo` and `make test`.
# Each creates .venv from uv.lock if it is missing (bootstrapping uv with pip when absent).

PYTHON ?= python3
VENV := .venv
BOOTSTRAP := .uv-bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
WORKSPACE ?= workspace/demo

export UV_PYTHON_DOWNLOADS := never
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test lint env clean

demo: $(VENV)/.synced
	$(VENV)/bin/raqib demo --workspace $(WORKSPACE)

test: $(VENV)/.synced
	$(VENV)/bin/python -m pytest -q

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .

env: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

$(BOOTSTRAP)/bin/uv:
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet uv

clean:
	rm -rf $(VENV) $(BOOTSTRAP) workspace
