"""Embeds R in this Python process and loads the installed fastlstm R package.

reticulate attaches to this very interpreter (RETICULATE_PYTHON is set to
sys.executable before R starts), so an R layer is the Python object a test
inspects. Run `make install-rpkg` first.

rpy2 calls R with the GIL released, and reticulate (1.28, Debian's, at
least) frees Python objects from R's garbage collector without taking it,
which crashes the interpreter when a collection happens mid-call. So every
piece of R code here runs inside an R function called *from Python by
reticulate*, which holds the GIL, and ends with a collection there.
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

_SETUP = r"""
suppressPackageStartupMessages(library(fastlstm))
.gil <- new.env()
.gil$run <- reticulate::r_to_py(function() {
  .gil$result <- tryCatch(
    {
      env <- new.env(parent = globalenv())
      lines <- character()
      for (e in parse(text = .gil$code)) {
        lines <- c(lines, utils::capture.output({
          v <- withVisible(eval(e, env))
          if (v$visible && .gil$print) print(v$value)
        }))
      }
      list(ok = TRUE, value = if (.gil$print) lines else v$value)
    },
    error = function(e) list(ok = FALSE, value = conditionMessage(e))
  )
  invisible(gc())
  NULL
})
"""


class R:
    """Runs R code with the GIL held; see the module docstring."""

    def __init__(self):
        ro.r(_SETUP)
        self._gil = ro.globalenv.find(".gil")
        if not self("fastlstm_available()")[0]:
            raise RuntimeError(
                "fastlstm's R package cannot see Python's fastlstm module"
            )

    def _run(self, code, printed):
        self._gil["code"] = ro.StrVector([code])
        self._gil["print"] = ro.BoolVector([printed])
        ro.r("invisible(reticulate::py_call(.gil$run))")
        result = ro.r(".gil$result")
        return bool(result.rx2("ok")[0]), result.rx2("value")

    def __call__(self, code):
        """The value of the last expression; an R error fails the test."""
        ok, value = self._run(code, printed=False)
        if not ok:
            raise AssertionError(f"R error: {value[0]}")
        return value

    def printed(self, code):
        """What R prints, line by line, running `code` at the console."""
        ok, value = self._run(code, printed=True)
        if not ok:
            raise AssertionError(f"R error: {value[0]}")
        return list(value)

    def error(self, code):
        """R's error message for code that must fail."""
        ok, value = self._run(code, printed=False)
        assert not ok, f"R code did not fail: {code}"
        return str(value[0])


@pytest.fixture(scope="session")
def r():
    return R()


@pytest.fixture(scope="session")
def from_r(r):
    """Evaluates R code and returns its value as the very Python object R
    holds (through reticulate's __main__), not a copy."""
    import __main__

    def evaluate(code):
        r("main <- reticulate::import_main(convert = FALSE)\n"
          "main$obj <- local({%s})\nNULL" % code)
        return __main__.obj

    return evaluate


@pytest.fixture
def r_error(r):
    return r.error


_exit_status = [0]


def pytest_sessionfinish(session, exitstatus):
    _exit_status[0] = int(exitstatus)


def pytest_unconfigure(config):
    """Leaves without finalising the interpreter: with R embedded, Python's
    teardown frees objects R still points at (and R's event hook outlives
    rpy2), which crashes after the tests have passed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status[0])
