# The single place that knows how to install and run fastlstm.
# `make test` and `make demo` work on a fresh Debian machine as root: each
# installs what is missing (Debian's R packages, the Python environment in
# .venv, the R package) and is quick when everything is already there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := $(ROOT)/.stamps
BACKENDS := tensorflow jax torch
PYTEST_ARGS ?=

# R finds the Python package through reticulate.
export RETICULATE_PYTHON := $(PY)
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1
# The PyTorch CPU wheel that lies on this machine's disk (no CUDA download).
WHEELS := $(wildcard /opt/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)

R_DEBS := r-base-core r-base-dev r-cran-reticulate r-cran-testthat \
  r-cran-zeallot r-cran-knitr r-cran-rmarkdown r-cran-roxygen2 r-cran-cli \
  r-cran-rlang pandoc qpdf tidy

.PHONY: install install-r install-python install-rpkg test test-python \
  test-python-% test-keras test-keras-% test-r test-rpy2 check-r docs demo demo-python bench clean

install: install-r install-python install-rpkg

install-r: $(STAMPS)/r-debs
$(STAMPS)/r-debs:
	@mkdir -p $(STAMPS)
	@if ! command -v R >/dev/null || ! Rscript -e 'for (p in c("reticulate","testthat","zeallot","knitr","rmarkdown","roxygen2","cli","rlang")) if (!requireNamespace(p, quietly=TRUE)) quit(status=1)' >/dev/null 2>&1 || ! command -v pandoc >/dev/null; then \
	  echo "== installing R and its packages from Debian"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(R_DEBS) >/dev/null; \
	fi
	@touch $@

# rpy2 compiles against R, so R comes first.
# The native kernel (csrc/) compiles against the installed TensorFlow and
# JAX, so they come first and fastlstm is built without build isolation;
# FASTLSTM_REQUIRE_NATIVE makes a binding that fails to build an error here.
ONEDNN := onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
NATIVE_SOURCES := setup.py $(wildcard csrc/*)

install-python: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml $(NATIVE_SOURCES) $(STAMPS)/r-debs
	@mkdir -p $(STAMPS)
	@echo "== preparing the Python environment in .venv"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@# torch first, from the CPU wheel, so nothing pulls a CUDA build.
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q $(FIND_LINKS) torch==2.13.0
	@$(PIP) install -q $(FIND_LINKS) 'setuptools>=77' $(ONEDNN) \
	  'tensorflow-cpu>=2.18' 'jax>=0.4.30' 'keras>=3.15'
	@echo "== building fastlstm and its native kernel"
	@FASTLSTM_REQUIRE_NATIVE=1 $(PIP) install -q $(FIND_LINKS) --no-build-isolation \
	  -e '.[tensorflow,jax,torch,test,bench]'
	@touch $@

install-rpkg: $(STAMPS)/venv
	@echo "== installing the R package"
	@R CMD INSTALL --no-test-load . >/dev/null 2>$(STAMPS)/rinstall.log || { cat $(STAMPS)/rinstall.log; exit 1; }

test: install
	@$(MAKE) --no-print-directory test-python test-rpy2 test-r check-r

test-python: $(addprefix test-python-,$(BACKENDS))
test-python-%: $(STAMPS)/venv
	@echo "== pytest, Keras backend $*"
	@KERAS_BACKEND=$* $(PY) -m pytest -q -p no:cacheprovider tests/python --ignore=tests/python/r --ignore=tests/python/keras_suite $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-keras-$*

# Keras's own LSTM tests (from the installed keras package) with
# keras.layers.LSTM swapped for fastlstm.LSTM, in a pytest run of their own:
# Keras's TestCase resets global state, and the swap must never reach the
# suites that compare against Keras's LSTM.
test-keras: $(addprefix test-keras-,$(BACKENDS))
test-keras-%: $(STAMPS)/venv
	@echo "== Keras's LSTM tests on fastlstm.LSTM, Keras backend $*"
	@KERAS_BACKEND=$* $(PY) -m pytest -q -p no:cacheprovider tests/python/keras_suite $(PYTEST_ARGS)

test-rpy2: $(STAMPS)/venv
	@echo "== pytest, the R surface through rpy2"
	@$(PY) -m pytest -q -p no:cacheprovider tests/python/r $(PYTEST_ARGS)

test-r:
	@echo "== testthat"
	@cd tests && Rscript -e 'testthat::test_local("..", reporter = testthat::ProgressReporter$$new(show_praise = FALSE), stop_on_failure = TRUE)'

docs:
	@Rscript -e 'roxygen2::roxygenise()'

check-r:
	@echo "== R CMD build and R CMD check"
	@rm -rf $(STAMPS)/check && mkdir -p $(STAMPS)/check
	@cd $(STAMPS)/check && R CMD build --no-manual $(ROOT) >build.log 2>&1 || { cat build.log; exit 1; }
	@cd $(STAMPS)/check && _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual fastlstm_*.tar.gz >check.log 2>&1; status=$$?; \
	  cat check.log | tail -n 25; \
	  grep -q '^Status: OK' check.log || { echo "R CMD check is not clean"; exit 1; }

# Outputs (the .keras file, the PNG) go to demo/output/, which git ignores.
demo: install
	@FASTLSTM_DEMO_OUT=$(ROOT)/demo/output Rscript demo/forecast.R

demo-python: install
	@$(PY) -m fastlstm.demo

bench: install
	@$(PY) bench/run.py

clean:
	rm -rf $(STAMPS) .pytest_cache bench/results/*.tmp build \
	  python/fastlstm/*.so python/fastlstm/_native_build.json
