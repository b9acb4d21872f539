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

# r-cran-reticulate brings the packages a newer reticulate builds against
# (Rcpp, RcppTOML, here, png, ...); install-reticulate then adds the newer one.
R_DEBS := r-base-core r-base-dev r-cran-reticulate r-cran-testthat \
  r-cran-zeallot r-cran-knitr r-cran-rmarkdown r-cran-roxygen2 r-cran-cli \
  r-cran-rlang r-cran-generics pandoc qpdf tidy
R_PKGS := reticulate testthat zeallot knitr rmarkdown roxygen2 cli rlang generics

# reticulate >= 1.38 converts NumPy 2 arrays (JAX needs NumPy 2); bookworm has
# 1.28. Debian trixie's source archive has 1.41.0.1, which builds against
# bookworm's R and r-cran-* packages. It goes to the site library that R
# searches first.
RETICULATE_MIN := 1.38
RETICULATE_SRC := $(STAMPS)/reticulate-src
RETICULATE_LIB := /usr/local/lib/R/site-library
TRIXIE_SRC := /etc/apt/sources.list.d/fastlstm-trixie-src.sources

.PHONY: install install-r install-reticulate install-python install-rpkg \
  rpkg-export test test-python test-python-% test-keras test-keras-% test-r \
  test-rpy2 check-r test-install docs demo demo-python bench clean

install: install-r install-reticulate install-python install-rpkg

install-r: $(STAMPS)/r-debs
$(STAMPS)/r-debs:
	@mkdir -p $(STAMPS)
	@if ! command -v R >/dev/null || ! Rscript -e 'for (p in strsplit("$(R_PKGS)", " ")[[1]]) if (!requireNamespace(p, quietly=TRUE)) quit(status=1)' >/dev/null 2>&1 || ! command -v pandoc >/dev/null; then \
	  echo "== installing R and its packages from Debian"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(R_DEBS) >/dev/null; \
	fi
	@touch $@

# Checked on every run (a second), so a machine whose reticulate went back to
# Debian's gets the newer one again.
install-reticulate: $(STAMPS)/r-debs
	@if ! Rscript -e 'quit(status = packageVersion("reticulate") < "$(RETICULATE_MIN)")' >/dev/null 2>&1; then \
	  echo "== building reticulate >= $(RETICULATE_MIN) from Debian trixie's source"; \
	  grep -qs '^Types: deb-src' $(TRIXIE_SRC) || printf '%s\n' 'Types: deb-src' \
	    'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
	    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > $(TRIXIE_SRC); \
	  apt-get update -qq; \
	  rm -rf $(RETICULATE_SRC) && mkdir -p $(RETICULATE_SRC); \
	  (cd $(RETICULATE_SRC) && apt-get source --download-only r-cran-reticulate >download.log 2>&1) || true; \
	  orig=$$(ls $(RETICULATE_SRC)/r-cran-reticulate_*.orig.tar.* 2>/dev/null | head -n 1); \
	  test -n "$$orig" || { cat $(RETICULATE_SRC)/download.log; echo "no reticulate source tarball"; exit 1; }; \
	  tar -xf "$$orig" -C $(RETICULATE_SRC); \
	  R CMD INSTALL -l $(RETICULATE_LIB) $(RETICULATE_SRC)/reticulate >$(RETICULATE_SRC)/install.log 2>&1 || \
	    { tail -n 30 $(RETICULATE_SRC)/install.log; exit 1; }; \
	  Rscript -e 'quit(status = packageVersion("reticulate") < "$(RETICULATE_MIN)")' || \
	    { echo "reticulate is still older than $(RETICULATE_MIN)"; exit 1; }; \
	fi

# rpy2 compiles against R, so R comes first.
# The native kernel (csrc/) compiles against the installed TensorFlow and
# JAX, so they come first and fastlstm is built without build isolation;
# FASTLSTM_REQUIRE_NATIVE makes a binding that fails to build an error here.
ONEDNN := onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
NATIVE_SOURCES := setup.py $(wildcard csrc/*)
# Versions of build tools for packages built from source (rpy2).
BUILD_CONSTRAINTS := $(ROOT)/build-constraints.txt

install-python: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml $(NATIVE_SOURCES) $(BUILD_CONSTRAINTS) $(STAMPS)/r-debs
	@mkdir -p $(STAMPS)
	@echo "== preparing the Python environment in .venv"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@# torch first, from the CPU wheel, so nothing pulls a CUDA build.
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q $(FIND_LINKS) torch==2.13.0
	@$(PIP) install -q $(FIND_LINKS) 'setuptools>=77' $(ONEDNN) \
	  'tensorflow-cpu>=2.18' 'jax>=0.4.30' 'keras>=3.15'
	@# rpy2 (the test extra's) builds from source against R. A wheel of it
	@# built without its R interface (setuptools 84 does that, and pip's
	@# cache may hold one) installs but cannot load R: build it afresh.
	@$(PY) -c 'import _rinterface_cffi_abi' 2>/dev/null || { \
	  $(PIP) uninstall -q -y rpy2 2>/dev/null || true; \
	  $(PIP) install -q --no-cache-dir --build-constraint $(BUILD_CONSTRAINTS) 'rpy2>=3.5,<3.6'; \
	  $(PY) -c 'import _rinterface_cffi_abi'; }
	@echo "== building fastlstm and its native kernel"
	@FASTLSTM_REQUIRE_NATIVE=1 $(PIP) install -q $(FIND_LINKS) --no-build-isolation \
	  -e '.[tensorflow,jax,torch,test,bench]'
	@touch $@

# The R package as R CMD build should see it: the repository's files
# (tracked, or untracked and not ignored: never .venv or build outputs) plus
# the Python package it carries, generated here from the same sources into
# inst/fastlstm-python (install_fastlstm() installs that copy).
RPKG_EXPORT := $(STAMPS)/rpkg
CARRIED := inst/fastlstm-python
PY_PKG_PATHS := pyproject.toml README.md LICENSE setup.py csrc python/fastlstm
# $(1): git pathspecs, $(2): the directory to copy them into.
copy_sources = git ls-files -z --cached --others --exclude-standard -- $(1) | \
  while IFS= read -r -d '' f; do if [ -f "$$f" ]; then install -D -m 644 "$$f" "$(2)/$$f"; fi; done

rpkg-export:
	@rm -rf $(RPKG_EXPORT) && mkdir -p $(RPKG_EXPORT)
	@$(call copy_sources,.,$(RPKG_EXPORT))
	@$(call copy_sources,$(PY_PKG_PATHS),$(RPKG_EXPORT)/$(CARRIED))

install-rpkg: $(STAMPS)/venv install-reticulate rpkg-export
	@echo "== installing the R package"
	@R CMD INSTALL --no-test-load $(RPKG_EXPORT) >/dev/null 2>$(STAMPS)/rinstall.log || { cat $(STAMPS)/rinstall.log; exit 1; }

test: install
	@$(MAKE) --no-print-directory test-python test-rpy2 test-r check-r test-install

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

test-r: install-reticulate
	@echo "== testthat"
	@cd tests && Rscript -e 'testthat::test_local("..", reporter = testthat::ProgressReporter$$new(show_praise = FALSE), stop_on_failure = TRUE)'

docs:
	@Rscript -e 'roxygen2::roxygenise()'

check-r: install-reticulate rpkg-export
	@echo "== R CMD build and R CMD check"
	@rm -rf $(STAMPS)/check && mkdir -p $(STAMPS)/check
	@cd $(STAMPS)/check && R CMD build --no-manual $(RPKG_EXPORT) >build.log 2>&1 || { cat build.log; exit 1; }
	@# keras3 (Enhances) cannot be installed here: check without it.
	@cd $(STAMPS)/check && { _R_CHECK_FORCE_SUGGESTS_=false _R_CHECK_PACKAGE_DEPENDS_IGNORE_MISSING_ENHANCES_=true \
	  R CMD check --no-manual fastlstm_*.tar.gz >check.log 2>&1 || true; }; \
	  cat check.log | tail -n 25; \
	  grep -q '^Status: OK' check.log || { echo "R CMD check is not clean"; exit 1; }

# A new user's journey, end to end: the built tarball into a fresh library,
# install_fastlstm() into a new environment (which sees .venv's packages, so
# nothing large is downloaded), the seed example in a fresh R process that is
# told nothing about Python. See tests/install/journey.sh.
test-install: install-reticulate $(STAMPS)/venv rpkg-export
	@echo "== the standalone install: tarball, install_fastlstm(), the seed example"
	@bash tests/install/journey.sh $(RPKG_EXPORT) $(PY)

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
