#' Get and set the weights of a layer or model
#'
#' `get_weights()` returns the weights as a list of R arrays (for an LSTM:
#' `kernel (input_dim, 4 * units)`, `recurrent_kernel (units, 4 * units)`,
#' `bias (4 * units)`, gates in the order i, f, c, o); `set_weights()`
#' assigns such a list. The layout is `keras.layers.LSTM`'s, so weights move
#' between the two layers both ways.
#'
#' @param object A layer or model.
#' @param weights A list of R arrays (or tensors), in the order
#'   `get_weights()` returns them.
#' @returns `get_weights()`: a list of R arrays. `set_weights()`: `object`,
#'   invisibly.
#' @export
#' @examplesIf fastlstm_available()
#' lstm <- layer_lstm(units = 4)
#' invisible(random_uniform(c(2, 5, 3)) |> lstm())
#' w <- get_weights(lstm)
#' sapply(w, dim)
#' set_weights(lstm, lapply(w, function(a) a * 0))
get_weights <- function(object) {
  require_python()
  check_has_weights(object)
  with_py_errors(lapply(object$weights, function(v) py_to_r_array(v$value)))
}

#' @rdname get_weights
#' @export
set_weights <- function(object, weights) {
  require_python()
  check_has_weights(object)
  if (!is.list(weights) || is.object(weights)) {
    cli::cli_abort(
      "{.arg weights} must be a list of arrays, not {describe_value(weights)}.",
      class = "fastlstm_bad_argument"
    )
  }
  with_py_errors(object$set_weights(lapply(weights, as_py_value)))
  invisible(object)
}

check_has_weights <- function(object, call = rlang::caller_env()) {
  if (!inherits(object, "python.builtin.object") ||
      !reticulate::py_has_attr(object, "set_weights")) {
    cli::cli_abort(
      "{.arg object} must be a layer or model, not {describe_value(object)}.",
      class = "fastlstm_bad_argument", call = call
    )
  }
}
