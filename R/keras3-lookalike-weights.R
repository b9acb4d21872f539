# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' Get and set the weights of a layer or model
#'
#' `get_weights()` returns the weights as a list of R arrays (for an LSTM:
#' `kernel (input_dim, 4 * units)`, `recurrent_kernel (units, 4 * units)`,
#' `bias (4 * units)`, gates in the order i, f, c, o); `set_weights()`
#' assigns such a list. The layout is `keras.layers.LSTM`'s, so weights move
#' between the two layers both ways.
#'
#' @param object A layer or model.
#' @param trainable `NA` for all weights, `TRUE` for the trainable ones,
#'   `FALSE` for the others.
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
get_weights <- function(object, trainable = NA) {
  check_has_weights(object)
  if (!(identical(trainable, NA) || isTRUE(trainable) || isFALSE(trainable))) {
    abort("{.arg trainable} must be NA, TRUE or FALSE, not {describe_value(trainable)}.",
          class = "fastlstm_bad_argument")
  }
  require_python()
  variables <- if (is.na(trainable)) {
    object$weights
  } else if (trainable) {
    object$trainable_weights
  } else {
    object$non_trainable_weights
  }
  with_py_errors(lapply(variables, function(v) as.array(py_keras()$ops$convert_to_numpy(v))))
}

#' @rdname get_weights
#' @export
set_weights <- function(object, weights) {
  check_has_weights(object)
  if (!is.list(weights) || is.object(weights)) {
    abort(
      "{.arg weights} must be a list of arrays, not {describe_value(weights)}.",
      class = "fastlstm_bad_argument"
    )
  }
  require_python()
  with_py_errors(object$set_weights(weights))
  invisible(object)
}

check_has_weights <- function(object, call = rlang::caller_env()) {
  if (!inherits(object, "keras.src.layers.layer.Layer")) {
    abort(
      "{.arg object} must be a layer or model, not {describe_value(object)}.",
      class = "fastlstm_bad_argument", call = call
    )
  }
}
