#' Base class for recurrent layers
#'
#' `layer_rnn()` wraps a cell into a layer that runs it over a sequence, as
#' keras3's `layer_rnn()` does, and composes with `object` like every layer
#' function. Given a single LSTM cell, such as [rnn_cell_lstm()] makes, it
#' builds a `fastlstm.LSTM` with the cell's configuration (and its weights,
#' if the cell has been built), so the sequence runs on fastlstm's kernel
#' rather than one cell step at a time: the numbers are the same, the kernel
#' is the one [lstm_plan()] names. Any other cell, or a list of cells
#' (stacked), gives `keras.layers.RNN`.
#'
#' @inheritParams layer_lstm
#' @param cell A cell (for example [rnn_cell_lstm()]), or a list of cells,
#'   which are stacked.
#' @param zero_output_for_mask Whether masked timesteps give zeros (`TRUE`)
#'   or repeat the last output (`FALSE`) when `return_sequences = TRUE`.
#' @param ... Other arguments of the layer, by name (`name`, `dtype`).
#' @returns A `Layer`, the model, or the output tensor, as for
#'   [layer_lstm()]. With an LSTM cell the layer is a `fastlstm.LSTM`, whose
#'   `$cell` is a cell with the given one's configuration (not the same
#'   object).
#' @family lstm rnn layers
#' @family layers
#' @export
#' @examplesIf fastlstm_available()
#' input <- random_uniform(c(32, 10, 8))
#' rnn <- layer_rnn(cell = rnn_cell_lstm(4))
#' shape(rnn(input))
#' lstm_plan(rnn, input)$kernel
layer_rnn <- function(object, cell, return_sequences = FALSE,
                      return_state = FALSE, go_backwards = FALSE,
                      stateful = FALSE, unroll = FALSE,
                      zero_output_for_mask = FALSE, ...) {
  if (missing(object)) object <- NULL
  if (missing(cell)) {
    abort(
      c("{.arg cell} is missing, with no default.",
        i = "Give a cell, such as {.code rnn_cell_lstm(units = 4)}."),
      class = "fastlstm_bad_argument"
    )
  }
  check_flags(return_sequences = return_sequences,
              return_state = return_state, go_backwards = go_backwards,
              stateful = stateful, unroll = unroll,
              zero_output_for_mask = zero_output_for_mask)
  check_object(object)
  require_python()
  args <- capture_args(ignore = c("object", "cell"))
  if (is_lstm_cell(cell)) {
    config <- cell$get_config()
    config$name <- NULL
    layer_args <- utils::modifyList(config, args)
    layer <- with_py_errors(do.call(fastlstm_py$LSTM, layer_args))
    if (isTRUE(cell$built)) copy_cell_weights(cell, layer)
  } else {
    if (is.list(cell) && !inherits(cell, "python.builtin.object")) {
      cell <- unname(cell)
    }
    layer <- with_py_errors(do.call(keras$layers$RNN, c(list(cell), args)))
  }
  if (is.null(object)) return(layer)
  compose_layer(object, layer)
}

is_lstm_cell <- function(cell) {
  inherits(cell, "keras.src.layers.rnn.lstm.LSTMCell")
}

# A built cell's weights go to the layer's own cell, built for the same
# input size.
copy_cell_weights <- function(cell, layer, call = rlang::caller_env()) {
  input_dim <- shape(cell$kernel)[[1]]
  with_py_errors({
    layer$build(reticulate::tuple(NULL, NULL, input_dim))
    layer$cell$set_weights(cell$get_weights())
  }, call)
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
  create_layer(function() keras$layers$Bidirectional, object, args)
}
