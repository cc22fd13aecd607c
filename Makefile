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

.PHONY: setup demo test bench clean graphviz browser screenshots

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,distributed,browser]' 'transformer-lens>=4,<5'
	@touch $(STAMP)

$(STAMP3): pyproject.toml
	@test -x $(PY3) || $(PYTHON) -m venv $(VENV3)
	$(PY3) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY3) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 'transformer-lens>=3.9,<4'
	@touch $(STAMP3)

# System tools, from Debian's packages as root (else the command to run is printed):
# Graphviz's `dot` draws circuits, librsvg's `rsvg-convert` turns plots into PNG/PDF, and
# the browser test of `circ serve` drives Chromium through chromium-driver (offline).
APT_INSTALL = apt-get install -y -q
define need
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(2) (apt-get install -y $(2))"; \
	    ($(APT_INSTALL) $(2) >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && $(APT_INSTALL) $(2) >/dev/null)) || exit 1; \
	  else \
	    echo "$(1) is missing: run 'apt-get install -y $(2)' as root"; \
	    exit 1; \
	  fi; }
endef

graphviz:
	$(call need,dot,graphviz)
	$(call need,rsvg-convert,librsvg2-bin)

browser:
	$(call need,chromedriver,chromium chromium-driver)

demo: setup
	@mkdir -p $(OUT)
	$(VENV)/bin/circ check stdlib/zoo/induction.circ
	$(VENV)/bin/circ eval stdlib/zoo/induction.circ --json $(OUT)/induction.json --markdown $(OUT)/induction.md
	$(VENV)/bin/circ render stdlib/zoo/induction.circ --circuit induction -o $(OUT)/induction.svg
	$(VENV)/bin/circ track stdlib/zoo/induction_phase.circ --checkpoints 'stdlib/zoo/induction_phase/step-*' \
	  --markdown $(OUT)/training.md --plot $(OUT)/training.svg
	@echo "demo: report in $(OUT)/induction.md and $(OUT)/induction.json, drawing in $(OUT)/induction.svg;"
	@echo "      the induction circuit forming during training in $(OUT)/training.md and $(OUT)/training.svg"

test: setup browser $(STAMP3)
	@echo "== the suite under TransformerLens 4 ($(VENV)) =="
	$(PY) -m pytest
	@echo "== the suite under TransformerLens 3 ($(VENV3)) =="
	$(PY3) -m pytest -p no:cacheprovider

bench: setup
	$(PY) bench/bench_static.py
	$(PY) bench/bench_eval.py

# The pictures in docs/serve.md, taken by the browser test itself.
screenshots: setup browser
	CIRCUITLANG_SCREENSHOTS=docs/images $(PY) -m pytest -q -p no:cacheprovider tests/test_serve_browser.py

clean:
	rm -rf $(VENV) $(VENV3) $(OUT) .pytest_cache .hypothesis
