# Skips only where Python with keras and fastlstm is truly absent (a machine
# without the Python side); with `make test` everything runs, and in CI
# (CI=true) a missing Python side is an error, never a silent skip.
skip_if_no_fastlstm <- function() {
  if (!fastlstm_available()) {
    if (nzchar(Sys.getenv("CI"))) {
      stop("CI is set but Python with keras and fastlstm is not available")
    }
    testthat::skip("Python with keras and fastlstm is not available")
  }
}

# A plain R LSTM (Keras's generic path: gates i, f, c, o) to check the
# layer's numbers against.
r_lstm <- function(x, kernel, recurrent_kernel, bias) {
  sigmoid <- function(z) 1 / (1 + exp(-z))
  units <- nrow(recurrent_kernel)
  h <- c <- matrix(0, dim(x)[1], units)
  for (t in seq_len(dim(x)[2])) {
    z <- matrix(x[, t, ], nrow = dim(x)[1]) %*% kernel + h %*% recurrent_kernel +
      matrix(bias, nrow(h), length(bias), byrow = TRUE)
    gate <- function(k) z[, (k - 1) * units + seq_len(units), drop = FALSE]
    i <- sigmoid(gate(1))
    f <- sigmoid(gate(2))
    g <- tanh(gate(3))
    o <- sigmoid(gate(4))
    c <- f * c + i * g
    h <- o * tanh(c)
  }
  list(h = h, c = c)
}

weights_of <- function(layer) get_weights(layer)

# Runs R code in a fresh Rscript (the Keras backend is fixed per process)
# with the environment variables `env` set and `unset` removed; returns its
# output and exit status.
run_rscript <- function(code, env = character(), unset = character()) {
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script), add = TRUE)
  writeLines(code, script)
  lib_paths <- paste(.libPaths(), collapse = .Platform$path.sep)
  args <- c(as.vector(rbind(rep("-u", length(unset)), unset)),
            paste0("R_LIBS=", lib_paths), env,
            file.path(R.home("bin"), "Rscript"), script)
  out <- suppressWarnings(system2("env", shQuote(args), stdout = TRUE,
                                  stderr = TRUE))
  list(output = out, status = attr(out, "status") %||% 0L)
}

`%||%` <- function(x, y) if (is.null(x)) y else x
