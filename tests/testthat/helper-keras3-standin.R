# A small stand-in for keras3 (which cannot be installed on these machines),
# built by the tests into a temporary library: a package named keras3 that
# registers S3 methods for the classes keras3 has methods for, exports
# functions under keras3's names, and delay-loads Python's keras with
# keras3's environment "r-keras" as the preferred one. Each of its
# functions and methods returns (or is tagged with) "keras3 stand-in", so a
# test can tell whose ran.

# keras3's S3 methods for the classes fastlstm also has code for (keras3's
# NAMESPACE): generic, class, and the package of the generic.
keras3_standin_methods <- rbind(
  c("print", "keras_shape", "base"), c("format", "keras_shape", "base"),
  c("[", "keras_shape", "base"), c("==", "keras_shape", "base"),
  c("!=", "keras_shape", "base"), c("Summary", "keras_shape", "base"),
  c("as.integer", "keras_shape", "base"), c("as.list", "keras_shape", "base"),
  c("r_to_py", "keras_shape", "reticulate"),
  c("destructure", "keras_shape", "zeallot"),
  c("print", "keras_training_history", "base"),
  c("plot", "keras_training_history", "base"),
  c("as.data.frame", "keras_training_history", "base"),
  c("compile", "keras.src.models.model.Model", "generics"),
  c("fit", "keras.src.models.model.Model", "generics"),
  c("evaluate", "keras.src.models.model.Model", "keras3"),
  c("predict", "keras.src.models.model.Model", "stats"),
  c("print", "keras.src.models.model.Model", "base"),
  c("format", "keras.src.models.model.Model", "base"),
  c("summary", "keras.src.models.model.Model", "base"),
  c("py_to_r_wrapper", "keras.src.layers.layer.Layer", "reticulate")
)
colnames(keras3_standin_methods) <- c("generic", "class", "package")

# Functions keras3 exports that fastlstm exports too.
keras3_standin_exports <- c(
  "compile", "evaluate", "fit", "get_weights", "keras", "keras_input",
  "keras_model", "keras_model_sequential", "layer_bidirectional",
  "layer_dense", "layer_lstm", "layer_masking", "layer_rnn", "load_model",
  "op_convert_to_tensor", "random_uniform", "reset_state", "rnn_cell_lstm",
  "save_model", "set_weights", "shape", "%<-%"
)

# Writes the stand-in's source into `dir` and installs it into `lib`.
install_keras3_standin <- function(lib) {
  src <- file.path(tempfile("keras3-standin-"), "keras3")
  dir.create(file.path(src, "R"), recursive = TRUE)
  on.exit(unlink(dirname(src), recursive = TRUE), add = TRUE)
  writeLines(c(
    "Package: keras3",
    "Version: 0.0.0.9000",
    "Title: A Stand-in for keras3 in fastlstm's Tests",
    "Description: Registers S3 methods and exports functions under keras3's names.",
    "License: MIT",
    "Imports: generics, reticulate, stats, zeallot"
  ), file.path(src, "DESCRIPTION"))

  method_names <- paste0(keras3_standin_methods[, "generic"], ".",
                         keras3_standin_methods[, "class"])
  # compile, fit and %<-% are re-exported, as keras3 does.
  imports <- c("importFrom(generics,compile)", "importFrom(generics,fit)",
               "importFrom(stats,predict)",
               "importFrom(reticulate,r_to_py)",
               "importFrom(reticulate,py_to_r_wrapper)",
               "importFrom(zeallot,destructure)",
               "importFrom(zeallot,\"%<-%\")")
  s3 <- sprintf('S3method("%s",%s)', keras3_standin_methods[, "generic"],
                keras3_standin_methods[, "class"])
  exports <- sprintf('export("%s")', keras3_standin_exports)
  writeLines(c(imports, s3, exports), file.path(src, "NAMESPACE"))

  sentinel <- function(what) {
    sprintf('function(...) structure("keras3 stand-in", what = "%s")', what)
  }
  code <- c(
    "keras <- NULL",
    ".onLoad <- function(libname, pkgname) {",
    "  keras <<- reticulate::import('keras', delay_load = list(priority = 10, environment = 'r-keras'))",
    "}",
    "evaluate <- function(object, ...) UseMethod('evaluate')",
    # A layer called from R: a working wrapper, tagged as the stand-in's.
    "`py_to_r_wrapper.keras.src.layers.layer.Layer` <- function(x) {",
    "  force(x)",
    "  structure(function(object, ...) reticulate::py_call(x, object, ...),",
    "            keras3_standin = TRUE)",
    "}"
  )
  for (name in setdiff(keras3_standin_exports,
                       c("keras", "compile", "fit", "evaluate", "%<-%"))) {
    code <- c(code, sprintf("`%s` <- %s", name, sentinel(name)))
  }
  for (name in setdiff(method_names, "py_to_r_wrapper.keras.src.layers.layer.Layer")) {
    code <- c(code, sprintf("`%s` <- %s", name, sentinel(name)))
  }
  writeLines(code, file.path(src, "R", "keras3.R"))

  dir.create(lib, showWarnings = FALSE, recursive = TRUE)
  out <- suppressWarnings(system2(
    file.path(R.home("bin"), "R"),
    c("CMD", "INSTALL", "--no-test-load", "-l", shQuote(lib), shQuote(src)),
    stdout = TRUE, stderr = TRUE
  ))
  if (!is.null(attr(out, "status"))) {
    stop("installing the keras3 stand-in failed:\n",
         paste(utils::tail(out, 20), collapse = "\n"))
  }
  invisible(file.path(lib, "keras3"))
}

# Runs `code` in a fresh Rscript with `lib` first on the library path;
# `code` saves its findings with saveRDS() to the file named by the
# variable `result_file`. Returns those findings, or fails with the output.
run_with_library <- function(lib, code, env = character()) {
  result_file <- tempfile(fileext = ".rds")
  on.exit(unlink(result_file), add = TRUE)
  lib_paths <- paste(c(lib, .libPaths()), collapse = .Platform$path.sep)
  run <- run_rscript(
    c(sprintf("result_file <- %s", deparse(result_file)), code),
    env = c(paste0("R_LIBS=", lib_paths), env)
  )
  if (run$status != 0 || !file.exists(result_file)) {
    stop("the R process failed (status ", run$status, "):\n",
         paste(run$output, collapse = "\n"))
  }
  readRDS(result_file)
}
