# hifuse-mm developer entry points.
#   make venv                      create/refresh .venv (reused; reinstalled only when setup.py,
#                                  requirements/constraints.txt or this file change)
#   make demo [DATA=dir]           train + test HiFuse-Tiny on a synthetic dataset (or on DATA)
#   make test                      run the test suite
#   make venv-onedl / test-onedl   the same on the maintained OneDL forks of mmengine, mmcv and
#                                  mmpretrain, in .venv-onedl (requirements/constraints-onedl.txt)
# .venv gets the `openmmlab` extra (upstream mmengine, mmcv-lite, mmpretrain), .venv-onedl the
# `onedl` extra; both get the test tools and grad-cam; .venv also the split audit (`audit`) and
# ONNX export / onnxruntime (`deploy`). See the stack note in setup.py.

PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.hifuse-installed
EXTRAS := openmmlab,tests,cam,audit,deploy
ONEDL_VENV := .venv-onedl
ONEDL_VPY := $(ONEDL_VENV)/bin/python
ONEDL_STAMP := $(ONEDL_VENV)/.hifuse-installed
ONEDL_EXTRAS := onedl,tests,cam
DATA ?=

.PHONY: venv demo test venv-onedl test-onedl

venv: $(STAMP)

$(STAMP): setup.py requirements/constraints.txt Makefile
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -c requirements/constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

demo: venv
	$(VPY) tools/demo.py $(if $(DATA),--data '$(DATA)')

test: venv
	$(VPY) -m pytest -q tests

venv-onedl: $(ONEDL_STAMP)

$(ONEDL_STAMP): setup.py requirements/constraints-onedl.txt Makefile
	@test -x $(ONEDL_VPY) || $(PYTHON) -m venv $(ONEDL_VENV)
	$(ONEDL_VPY) -m pip install -c requirements/constraints-onedl.txt -e '.[$(ONEDL_EXTRAS)]'
	@touch $@

test-onedl: venv-onedl
	$(ONEDL_VPY) -m pytest -q tests
