# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes; torch/torchvision come from the machine's wheel cache.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/attnas-search

# Two test processes (pytest-xdist): the slow tests mostly wait on subprocesses, heartbeats and
# grace periods, so two overlap on two cores (14.6 min against 17.3 min in one process, measured).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The benchmarks that need no trained network (minutes; block_cost first measures this CPU's latency profile if profiles/ lacks it).
bench: $(STAMP)
	$(PY) -m bench.metrics
	$(PY) -m bench.latency_ratio
	$(PY) -m bench.block_cost
	$(PY) -m bench.search_efficiency

clean:
	rm -rf $(VENV) build *.egg-info
