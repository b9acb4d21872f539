"""Embeds R in this Python process and loads the installed fastlstm R package.

reticulate attaches to this very interpreter (RETICULATE_PYTHON is set to
sys.executable before R starts), so an R layer is the Python object a test
inspects. Run `make install-rpkg` first.
"""

import atexit
import os
import sys

import pytest

os.environ["RETICULATE_PYTHON"] = sys.executable
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import rpy2.rinterface  # noqa: E402
import rpy2.robjects as ro  # noqa: E402

# R's exit finalizers would run without the GIL at interpreter exit and
# crash it; this process ends R's life with its own.
atexit.unregister(rpy2.rinterface.endr)


@pytest.fixture(scope="session")
def r():
    """The R session with fastlstm attached; `r(code)` evaluates R code."""
    ro.r("suppressPackageStartupMessages(library(fastlstm))")
    if not ro.r("fastlstm_available()")[0]:
        raise RuntimeError(
            "fastlstm's R package cannot see Python's fastlstm module"
        )
    return ro.r


@pytest.fixture(scope="session")
def from_r(r):
    """Evaluates R code and returns its (Python) value as the object itself.

    The value goes to `__main__` through reticulate, as the very object R
    holds, not a copy.
    """
    import __main__

    def evaluate(code):
        r("reticulate::import_main(convert = FALSE)$obj <- local({%s})" % code)
        return __main__.obj

    return evaluate


@pytest.fixture
def r_error(r):
    """Evaluates R code that must fail and returns R's error message."""

    def evaluate(code):
        result = r(
            "tryCatch({ %s; NA_character_ }, "
            "error = function(e) conditionMessage(e))" % code
        )[0]
        assert result is not ro.NA_Character and result != "NA", (
            f"R code did not fail: {code}"
        )
        return str(result)

    return evaluate
