# circuitlang: `make demo` runs the main job, `make test` the whole suite.
# Both set up .venv first when it is missing (torch's CPU wheel, then the package with
# TransformerLens 4.x). `make test` also sets up .venv-tl3 (the same with TransformerLens
# 3.9) and runs the suite there too: both supported backends stay tested.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
VENV3  ?= .venv-tl3
PY3    := $(VENV3)/bin/python
STAMP3 := $(VENV3)/.installed-stamp
OUT    ?= out

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test bench clean graphviz

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,distributed]' 'transformer-lens>=4,<5'
	@touch $(STAMP)

$(STAMP3): pyproject.toml
	@test -x $(PY3) || $(PYTHON) -m venv $(VENV3)
	$(PY3) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY3) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 'transformer-lens>=3.9,<4'
	@touch $(STAMP3)

# Rendering needs Graphviz's `dot`: install it as root, else say how.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (apt-get install -y graphviz)"; \
	    (apt-get install -y -q graphviz >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null)) || exit 1; \
	  else \
	    echo "Graphviz's dot is missing: run 'apt-get install -y graphviz' as root (or install Graphviz another way)"; \
	    exit 1; \
	  fi; }

demo: setup
	@mkdir -p $(OUT)
	$(VENV)/bin/circ check stdlib/zoo/induction.circ
	$(VENV)/bin/circ eval stdlib/zoo/induction.circ --json $(OUT)/induction.json --markdown $(OUT)/induction.md
	$(VENV)/bin/circ render stdlib/zoo/induction.circ --circuit induction -o $(OUT)/induction.svg
	$(VENV)/bin/circ track stdlib/zoo/induction_phase.circ --checkpoints 'stdlib/zoo/induction_phase/step-*' \
	  --markdown $(OUT)/training.md --plot $(OUT)/training.svg
	@echo "demo: report in $(OUT)/induction.md and $(OUT)/induction.json, drawing in $(OUT)/induction.svg;"
	@echo "      the induction circuit forming during training in $(OUT)/training.md and $(OUT)/training.svg"

test: setup $(STAMP3)
	@echo "== the suite under TransformerLens 4 ($(VENV)) =="
	$(PY) -m pytest
	@echo "== the suite under TransformerLens 3 ($(VENV3)) =="
	$(PY3) -m pytest -p no:cacheprovider

bench: setup
	$(PY) bench/bench_static.py
	$(PY) bench/bench_eval.py

clean:
	rm -rf $(VENV) $(VENV3) $(OUT) .pytest_cache .hypothesis
