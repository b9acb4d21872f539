# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' Just your regular densely-connected NN layer.
#'
#' `layer_dense()` implements the operation
#' `output = activation(dot(input, kernel) + bias)`, with the same composing
#' rules as [layer_lstm()]: `object` may be missing or `NULL` (the layer),
#' a Sequential model (the layer is added) or a tensor, array or
#' [keras_input()] (the layer is called on it).
#'
#' @inheritParams layer_lstm
#' @param units Positive integer, dimensionality of the output space.
#' @param activation Activation function to use. If you don't specify
#'   anything, no activation is applied (ie. "linear" activation:
#'   `a(x) = x`).
#' @param use_bias Boolean, whether the layer uses a bias vector.
#' @param kernel_initializer Initializer for the `kernel` weights matrix.
#' @param bias_initializer Initializer for the bias vector.
#' @param ... Other arguments of `keras.layers.Dense`, by name.
#' @returns A `Layer`, the model, or the output tensor, as for
#'   [layer_lstm()].
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' random_uniform(c(2, 3)) |> layer_dense(5) |> shape()
layer_dense <- function(object, units, activation = NULL, use_bias = TRUE,
                        kernel_initializer = "glorot_uniform",
                        bias_initializer = "zeros", ...) {
  if (missing(object)) object <- NULL
  check_units(units, missing(units), object)
  args <- capture_args(list(units = as.integer))
  create_layer(function() py_keras()$layers$Dense, object, args)
}

#' Masks a sequence by using a mask value to skip timesteps.
#'
#' For each timestep in the input tensor (dimension 2 in R, 1 in Python), if
#' all values in the input tensor at that timestep are equal to
#' `mask_value`, then the timestep will be masked (skipped) in all
#' downstream layers (as long as they support masking), such as
#' [layer_lstm()]. fastlstm's LSTM runs contiguous masks, left- or
#' right-padded, on its fast kernels.
#'
#' @inheritParams layer_lstm
#' @param mask_value The value that marks a padded timestep. Default: 0.
#' @param ... Other arguments of `keras.layers.Masking`, by name.
#' @returns A `Layer`, the model, or the output tensor, as for
#'   [layer_lstm()].
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' x <- array(runif(2 * 5 * 3), c(2, 5, 3))
#' x[1, 1:2, ] <- 0 # left padding
#' x |> layer_masking() |> layer_lstm(4) |> shape()
layer_masking <- function(object, mask_value = 0, ...) {
  args <- capture_args()
  if (missing(object)) object <- NULL
  create_layer(function() py_keras()$layers$Masking, object, args)
}

#' Bidirectional wrapper for RNNs
#'
#' `layer_bidirectional()` runs a recurrent layer over the sequence forwards
#' and a copy of it backwards and merges the two outputs, as keras3's
#' function does. Wrapping a [layer_lstm()], both directions are
#' `fastlstm.LSTM` layers (Keras copies the forward layer's class and
#' configuration for the backward one), so both run fastlstm's kernel.
#'
#' @inheritParams layer_lstm
#' @param layer A recurrent layer, such as `layer_lstm(units = 4)`, to run
#'   forwards (and, copied, backwards).
#' @param merge_mode How the two outputs are combined: `"concat"`, `"sum"`,
#'   `"mul"`, `"ave"`, or `NULL` for a list of both.
#' @param weights Optional initial weights.
#' @param backward_layer Optional recurrent layer for the backward direction
#'   (it must have `go_backwards = TRUE`); by default a copy of `layer`.
#' @param ... Other arguments of `keras.layers.Bidirectional`, by name.
#' @returns A `Layer`, the model, or the output tensor, as for
#'   [layer_lstm()].
#' @family lstm rnn layers
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' input <- random_uniform(c(32, 10, 8))
#' output <- input |> layer_bidirectional(layer_lstm(units = 4))
#' shape(output)
layer_bidirectional <- function(object, layer, merge_mode = "concat",
                                weights = NULL, backward_layer = NULL, ...) {
  if (missing(object)) object <- NULL
  if (missing(layer)) {
    abort(
      c("{.arg layer} is missing, with no default.",
        i = "Give a recurrent layer, such as {.code layer_lstm(units = 4)}."),
      class = "fastlstm_bad_argument"
    )
  }
  if (!inherits(layer, "python.builtin.object")) {
    abort(
      "{.arg layer} must be a recurrent layer such as {.code layer_lstm(units = 4)}, not {describe_value(layer)}.",
      class = "fastlstm_bad_argument"
    )
  }
  args <- capture_args()
  create_layer(function() py_keras()$layers$Bidirectional, object, args)
}

# Every Keras layer and model, called from R, composes as in keras3
# (`layer(model)` adds it to a Sequential model) and turns Python errors
# into one R error raised from the call the user wrote.
py_to_r_wrapper.keras.src.layers.layer.Layer <- function(x) {
  force(x)
  function(object, ...) {
    call <- environment()
    if (missing(object)) {
      return(with_py_errors(reticulate::py_to_r(reticulate::py_call(x, ...)),
                            call))
    }
    compose_layer(object, x, ..., call = call)
  }
}
