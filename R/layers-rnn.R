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
  if (is.list(cell) && !inherits(cell, "python.builtin.object")) {
    cell <- unname(cell)
  }
  args <- c(list(cell), capture_args(ignore = c("object", "cell")))
  # fastlstm.convert.convert_layer() makes an RNN over one LSTM cell a
  # fastlstm.LSTM (with the cell's weights, if built), and returns any
  # other RNN as it is.
  make <- function(...) {
    rnn <- py_keras()$layers$RNN(...)
    reticulate::import("fastlstm.convert")$convert_layer(rnn, strict = FALSE)
  }
  create_layer(function() make, object, args)
}
