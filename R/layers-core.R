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
  check_units(units, missing(units))
  args <- capture_args(list(units = as.integer))
  if (missing(object)) object <- NULL
  create_layer(function() keras$layers$Dense, object, args)
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
  create_layer(function() keras$layers$Masking, object, args)
}
