#' fastlstm: a fast LSTM layer for Keras 3
#'
#' An R interface to the `fastlstm` Python package. [layer_lstm()] builds a
#' `fastlstm.LSTM`, a drop-in replacement for `keras.layers.LSTM` that picks
#' the fastest correct kernel for the backend and device at hand;
#' [lstm_plan()] says which one and why. On a CPU, every backend runs
#' fastlstm's one compiled kernel, its C++ core on oneDNN (a TensorFlow op,
#' an XLA FFI call on JAX, a PyTorch custom op); on a GPU, every backend runs
#' cuDNN.
#'
#' @section With keras3:
#' fastlstm extends keras3 (it is in `Enhances`). Where keras3 is installed,
#' fastlstm loads it, and the functions fastlstm exports under keras3's
#' names ([shape()], [fit()], [keras_model_sequential()], [layer_dense()],
#' [save_model()], `%<-%`, ...) are keras3's own; fastlstm registers none of
#' the S3 methods keras3 has (models' `fit()`, `print()`, `summary()`,
#' shapes, training histories, layers called from R), so loading fastlstm
#' changes no keras3 result, in either attach order. [layer_lstm()],
#' [rnn_cell_lstm()] and [layer_rnn()] are fastlstm's own: they build
#' fastlstm's layers (where both packages are attached, the one attached
#' last provides them; `fastlstm::layer_lstm()` always does). Where keras3
#' is not installed, fastlstm's own versions of those functions stand in
#' (with the same results), so fastlstm works on its own.
#'
#' @section Python:
#' The package needs Python (>= 3.10) with `keras`, a backend and `fastlstm`.
#' Where keras3 is installed, keras3 chooses the Python (its environment
#' `"r-keras"`): install fastlstm there with
#' `install_fastlstm(envname = "r-keras")`. Otherwise fastlstm looks, in
#' order, in the Python named by `RETICULATE_PYTHON` (or chosen with
#' [reticulate::use_python()] before the first use), in the environment the
#' last [install_fastlstm()] made, in the virtual environment `r-fastlstm`,
#' and in a `.venv` in the working directory or one of its parents (for
#' development). Where the Python in use has no fastlstm, the first fastlstm
#' function called says which Python that is and the call that fixes it.
#'
#' @keywords internal
"_PACKAGE"

#' The Keras module
#'
#' The Python module `keras`, imported lazily through reticulate, for
#' everything fastlstm does not wrap: `keras$layers$GRU(8L)`,
#' `keras$optimizers$Adam()`, `keras$ops$mean(x)`. Objects built with it and
#' objects built by fastlstm are the same plain Keras objects. Where keras3
#' is installed this is keras3's `keras` object.
#'
#' @format A reticulate module proxy; the module is imported on first use.
#' @export
keras <- NULL

.onLoad <- function(libname, pkgname) {
  if (use_keras3()) {
    # keras3 chooses the Python, registers the S3 methods and provides the
    # functions that have its names (see keras3.R).
    adopt_keras3_functions(topenv())
  } else {
    try(choose_python(), silent = TRUE)
    keras <<- lazy_module("keras")
    register_lookalike_methods()
  }
  # A .keras file with fastlstm layers loads in any session where this
  # package is loaded, whichever package's load_model() reads it: Keras
  # finds fastlstm's classes once the Python package is imported.
  on_python_module_load("keras", import_fastlstm_quietly)
  invisible()
}

# reticulate runs the hook named "reticulate::<module>::load" when it
# imports the module (what reticulate's own py_register_load_hook(), not
# exported before 1.42, does); a module already imported runs it now.
on_python_module_load <- function(module, hook) {
  if (reticulate::py_available(initialize = FALSE) &&
      isTRUE(reticulate::py_eval(sprintf("'%s' in __import__('sys').modules", module)))) {
    hook()
  } else {
    setHook(paste("reticulate", module, "load", sep = "::"), hook)
  }
  invisible()
}

.onAttach <- function(libname, pkgname) {
  if (!is.null(keras3_state$error)) {
    packageStartupMessage(
      "keras3 is installed but could not be loaded (", keras3_state$error,
      "); fastlstm uses its own keras3-like functions in this session."
    )
  }
}

# The Python modules, for fastlstm's own code: imported on first use (after
# require_python() has said why they cannot be, where they cannot).
py_keras <- function() reticulate::import("keras")
py_fastlstm <- function() reticulate::import("fastlstm")

import_fastlstm_quietly <- function() {
  try(reticulate::import("fastlstm"), silent = TRUE)
  invisible()
}

# The exported `keras` where keras3 is absent: reticulate's delay-loaded
# module while Python is not started; once it is (another package started
# it before fastlstm loaded) the module itself, or, where it cannot be
# imported, a stand-in whose first use raises fastlstm's error instead of
# failing library(fastlstm) with a raw ModuleNotFoundError.
lazy_module <- function(module) {
  if (!reticulate::py_available(initialize = FALSE)) {
    on_error <- function(e) abort_no_python(python_status(), call = NULL)
    return(reticulate::import(module, delay_load = list(on_error = on_error)))
  }
  tryCatch(reticulate::import(module), error = function(e) {
    structure(list(module = module), class = "fastlstm_unavailable_module")
  })
}

#' @export
`$.fastlstm_unavailable_module` <- function(x, name) {
  require_python(call = NULL)
  module <- reticulate::import(unclass(x)$module)
  do.call(`$`, list(module, name))
}

#' @export
print.fastlstm_unavailable_module <- function(x, ...) {
  cat("Module(", unclass(x)$module, "), not importable yet\n", sep = "")
  invisible(x)
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
  fix <- python_fix(python)
  abort(
    c(
      "fastlstm needs Python (>= 3.10) with {.pkg keras}, a Keras backend and {.pkg fastlstm}.",
      x = "Importing {.pkg {status$module}} failed: {status$reason}",
      i = if (!is.null(python)) "The Python in use is {.file {python}}{fix$where}.",
      i = backend_hint,
      i = "Install what is missing with {.code {fix$call}}{fix$then}."
    ),
    call = call, class = "fastlstm_no_python"
  )
}

# The one call that gives the Python in use what fastlstm needs. A
# virtual environment is installed into (where keras3 made it, the name
# keras3 uses); anything else (reticulate's throwaway environment, a system
# Python) cannot be, so the call makes the environment the session will
# find after a restart: keras3's "r-keras" where keras3 is installed.
python_fix <- function(python) {
  env <- if (!is.null(python)) virtualenv_of(python)
  if (!is.null(env) && !is_ephemeral_env(env)) {
    in_root <- identical(normalizePath(dirname(env), mustWork = FALSE),
                         normalizePath(reticulate::virtualenv_root(),
                                       mustWork = FALSE))
    envname <- if (in_root) basename(env) else env
    where <- if (in_root) sprintf(' (the virtual environment "%s")', envname) else ""
    return(list(
      call = sprintf('fastlstm::install_fastlstm(envname = "%s")', envname),
      where = where, then = ", then restart R"
    ))
  }
  if (keras3_installed()) {
    return(list(
      call = 'fastlstm::install_fastlstm(envname = "r-keras")',
      where = if (!is.null(env)) " (an environment reticulate made for this session)" else "",
      then = ", then restart R: keras3 and fastlstm then both use that environment"
    ))
  }
  list(call = "fastlstm::install_fastlstm()", where = "",
       then = paste0(", then restart R",
                     if (nzchar(Sys.getenv("RETICULATE_PYTHON"))) " with RETICULATE_PYTHON unset"))
}

# The virtual environment a Python belongs to, or NULL.
virtualenv_of <- function(python) {
  dir <- dirname(dirname(python))
  if (file.exists(file.path(dir, "pyvenv.cfg"))) dir else NULL
}

# reticulate's throwaway environments for py_require() live in its cache.
is_ephemeral_env <- function(env) {
  cache <- normalizePath(tools::R_user_dir("reticulate", "cache"),
                         mustWork = FALSE)
  startsWith(normalizePath(env, mustWork = FALSE), cache)
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
