#' fastlstm: a fast LSTM layer for Keras 3
#'
#' An R interface to the `fastlstm` Python package. [layer_lstm()] builds a
#' `fastlstm.LSTM`, a drop-in replacement for `keras.layers.LSTM` that picks
#' the fastest correct kernel for the backend and device at hand;
#' [lstm_plan()] says which one and why.
#'
#' The package needs Python (>= 3.10) with `keras` and `fastlstm`. It looks
#' for them, in order, in the Python named by `RETICULATE_PYTHON`, in a
#' `.venv` in the working directory or one of its parents (for development),
#' and in the virtual environment `r-fastlstm` that [install_fastlstm()]
#' creates.
#'
#' @keywords internal
"_PACKAGE"

#' The Keras module
#'
#' The Python module `keras`, imported lazily through reticulate, for
#' everything fastlstm does not wrap: `keras$layers$GRU(8L)`,
#' `keras$optimizers$Adam()`, `keras$ops$mean(x)`. Objects built with it and
#' objects built by fastlstm are the same plain Keras objects.
#'
#' @format A reticulate module proxy; the module is imported on first use.
#' @export
keras <- NULL

# Python modules, filled in by .onLoad with delay-loaded imports, so that
# library(fastlstm) never needs Python.
fastlstm_py <- NULL
bridge <- NULL

.onLoad <- function(libname, pkgname) {
  try(choose_python(), silent = TRUE)
  on_error <- function(e) abort_no_python(conditionMessage(e))
  keras <<- reticulate::import(
    "keras", delay_load = list(on_error = on_error)
  )
  fastlstm_py <<- reticulate::import(
    "fastlstm", delay_load = list(on_error = on_error)
  )
  bridge_path <- system.file("python", package = pkgname)
  bridge <<- reticulate::import_from_path(
    "fastlstm_rbridge", path = bridge_path,
    delay_load = list(on_error = on_error)
  )
  invisible()
}

# Where no Python has been chosen yet, prefer a development .venv, then the
# environment install_fastlstm() makes. RETICULATE_PYTHON wins over both
# (reticulate reads it itself).
choose_python <- function() {
  if (nzchar(Sys.getenv("RETICULATE_PYTHON")) ||
      reticulate::py_available(initialize = FALSE)) {
    return(invisible())
  }
  dir <- normalizePath(getwd(), mustWork = FALSE)
  for (i in 1:4) {
    python <- file.path(dir, ".venv", "bin", "python")
    if (file.exists(python)) {
      reticulate::use_python(python, required = FALSE)
      return(invisible())
    }
    dir <- dirname(dir)
  }
  if (reticulate::virtualenv_exists("r-fastlstm")) {
    reticulate::use_virtualenv("r-fastlstm", required = FALSE)
  }
  invisible()
}

abort_no_python <- function(reason = NULL, call = rlang::caller_env()) {
  cli::cli_abort(
    c(
      "fastlstm needs Python (>= 3.10) with the {.pkg keras} and {.pkg fastlstm} modules.",
      x = if (!is.null(reason)) "{reason}",
      i = "Install them with {.run fastlstm::install_fastlstm()}, or point {.envvar RETICULATE_PYTHON} at a Python that has them."
    ),
    call = call, class = "fastlstm_no_python"
  )
}

python_ready <- new.env(parent = emptyenv())

#' Is fastlstm's Python side available?
#'
#' `fastlstm_available()` says whether Python with `keras` and `fastlstm` can
#' be loaded, without failing. Examples and vignettes use it to run only where
#' Python is there.
#'
#' @return `TRUE` or `FALSE`.
#' @export
#' @examples
#' fastlstm_available()
fastlstm_available <- function() {
  if (isTRUE(python_ready$ok)) return(TRUE)
  ok <- tryCatch(
    reticulate::py_module_available("keras") &&
      reticulate::py_module_available("fastlstm"),
    error = function(e) FALSE
  )
  if (ok) python_ready$ok <- TRUE
  ok
}

# Every exported function that needs Python calls this first, so the first
# use without Python is one R error that says how to install.
require_python <- function(call = rlang::caller_env()) {
  if (!fastlstm_available()) abort_no_python(call = call)
  invisible(TRUE)
}

# Runs `expr`, turning a Python exception into one R error that reads
# cleanly: the Python message, without reticulate's traceback hint, raised
# from the R function the user called. (reticulate < 1.29 signals Python
# exceptions as Rcpp exceptions, later versions with Python classes.)
with_py_errors <- function(expr, call = rlang::caller_env()) {
  rethrow <- function(e) {
    message <- python_error_message(e)
    cli::cli_abort("{message}", call = call, class = "fastlstm_python_error")
  }
  tryCatch(expr, python.builtin.Exception = rethrow,
           `Rcpp::exception` = rethrow)
}

python_error_message <- function(e) {
  message <- conditionMessage(e)
  message <- sub("\nDetailed traceback:.*$", "", message)
  message <- sub("Run `reticulate::py_last_error\\(\\)` for details\\.?", "",
                 message)
  trimws(message)
}

`%||%` <- function(x, y) if (is.null(x)) y else x
