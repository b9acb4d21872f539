#' fastlstm: a fast LSTM layer for Keras 3
#'
#' An R interface to the `fastlstm` Python package. [layer_lstm()] builds a
#' `fastlstm.LSTM`, a drop-in replacement for `keras.layers.LSTM` that picks
#' the fastest correct kernel for the backend and device at hand;
#' [lstm_plan()] says which one and why.
#'
#' The package needs Python (>= 3.10) with `keras`, a backend and `fastlstm`.
#' It looks for them, in order, in the Python named by `RETICULATE_PYTHON`
#' (or chosen with [reticulate::use_python()] before the first use), in the
#' environment the last [install_fastlstm()] made, in the virtual environment
#' `r-fastlstm`, and in a `.venv` in the working directory or one of its
#' parents (for development).
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

.onLoad <- function(libname, pkgname) {
  try(choose_python(), silent = TRUE)
  on_error <- function(e) abort_no_python(python_status(), call = NULL)
  keras <<- reticulate::import(
    "keras", delay_load = list(on_error = on_error)
  )
  fastlstm_py <<- reticulate::import(
    "fastlstm", delay_load = list(on_error = on_error)
  )
  invisible()
}

# Where no Python has been chosen yet: the environment install_fastlstm()
# made last, then the default `r-fastlstm`, then a development .venv.
# RETICULATE_PYTHON wins over all (reticulate reads it itself).
choose_python <- function() {
  if (nzchar(Sys.getenv("RETICULATE_PYTHON")) ||
      reticulate::py_available(initialize = FALSE)) {
    return(invisible())
  }
  remembered <- remembered_python()
  if (!is.null(remembered)) {
    reticulate::use_python(remembered, required = FALSE)
    return(invisible())
  }
  if (reticulate::virtualenv_exists("r-fastlstm")) {
    reticulate::use_virtualenv("r-fastlstm", required = FALSE)
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
  invisible()
}

# install_fastlstm() writes the environment's Python here, so a later session
# finds an environment made at a path.
remembered_python_file <- function() {
  file.path(tools::R_user_dir("fastlstm", "config"), "python")
}

remembered_python <- function() {
  file <- remembered_python_file()
  if (!file.exists(file)) return(NULL)
  python <- readLines(file, n = 1L, warn = FALSE)
  if (length(python) == 1L && file.exists(python)) python else NULL
}

python_ready <- new.env(parent = emptyenv())

# Imports keras, then fastlstm; on the first failure says which module and
# why. A success is remembered; a failure is tried again next time (the user
# may have fixed it, or set KERAS_BACKEND).
python_status <- function() {
  if (isTRUE(python_ready$ok)) return(list(ok = TRUE))
  for (module in c("keras", "fastlstm")) {
    error <- tryCatch({
      reticulate::import(module)
      NULL
    }, error = function(e) e)
    if (!is.null(error)) {
      return(list(ok = FALSE, module = module,
                  reason = one_line(python_error_text(error))))
    }
  }
  python_ready$ok <- TRUE
  list(ok = TRUE)
}

one_line <- function(text) {
  lines <- trimws(strsplit(text, "\n", fixed = TRUE)[[1]])
  paste(lines[nzchar(lines)], collapse = " ")
}

abort_no_python <- function(status, call = rlang::caller_env()) {
  backend <- Sys.getenv("KERAS_BACKEND")
  backend_hint <- NULL
  if (identical(status$module, "keras") &&
      grepl("\\b(tensorflow|jax|torch)\\b", status$reason)) {
    backend_hint <- if (nzchar(backend)) {
      "Keras loads the backend {.envvar KERAS_BACKEND} names ({.val {backend}}); install it, or set {.envvar KERAS_BACKEND} to a backend that is installed."
    } else {
      "{.envvar KERAS_BACKEND} is not set, so Keras loads TensorFlow; install it, or set {.envvar KERAS_BACKEND} to {.val jax} or {.val torch} (before the first use) if that is what is installed."
    }
  }
  python <- tryCatch(reticulate::py_config()$python, error = function(e) NULL)
  abort(
    c(
      "fastlstm needs Python (>= 3.10) with {.pkg keras}, a Keras backend and {.pkg fastlstm}.",
      x = "Importing {.pkg {status$module}} failed: {status$reason}",
      i = if (!is.null(python)) "The Python in use is {.file {python}}.",
      i = backend_hint,
      i = "Install what is missing with {.run fastlstm::install_fastlstm()}, or point {.envvar RETICULATE_PYTHON} at a Python that has it (then restart R)."
    ),
    call = call, class = "fastlstm_no_python"
  )
}

#' Is fastlstm's Python side available?
#'
#' `fastlstm_available()` says whether Python with `keras`, its backend and
#' `fastlstm` can be imported, without failing. Examples and vignettes use it
#' to run only where Python is there.
#'
#' @return `TRUE`, or `FALSE` with an attribute `"reason"` that says which
#'   module failed to import and why (for example a missing backend:
#'   `No module named 'tensorflow'`).
#' @export
#' @examples
#' fastlstm_available()
fastlstm_available <- function() {
  status <- python_status()
  if (status$ok) return(TRUE)
  structure(FALSE, reason = paste0(
    "importing ", status$module, " failed: ", status$reason
  ))
}

# Every exported function that needs Python calls this first, so the first
# use without Python is one R error that says which import failed and why.
require_python <- function(call = rlang::caller_env()) {
  status <- python_status()
  if (!status$ok) abort_no_python(status, call = call)
  invisible(TRUE)
}
