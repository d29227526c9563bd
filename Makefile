# hifuse-mm developer entry points.
#   make venv                      create/refresh .venv (reused; reinstalled only when setup.py or
#                                  requirements/constraints.txt change)
#   make demo [DATA=dir]           train + test HiFuse-Tiny on a synthetic dataset (or on DATA)
#   make test                      run the test suite
# The venv gets the `lite` extra (mmcv-lite), the test tools and grad-cam; see the MMCV note in setup.py.

PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.hifuse-installed
EXTRAS := lite,tests,cam
DATA ?=

.PHONY: venv demo test

venv: $(STAMP)

$(STAMP): setup.py requirements/constraints.txt Makefile
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -c requirements/constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

demo: venv
	$(VPY) tools/demo.py $(if $(DATA),--data '$(DATA)')

test: venv
	$(VPY) -m pytest -q tests
