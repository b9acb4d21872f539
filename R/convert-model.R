#' Swap every Keras LSTM in a model for fastlstm's
#'
#' `convert_model()` returns a copy of a model in which every
#' `keras.layers.LSTM` (keras3's `layer_lstm()`) is a `fastlstm.LSTM` with
#' the same configuration and weights, so the copy gives the same outputs and
#' runs fastlstm's kernels. It finds LSTM layers at the top level, in nested
#' models, inside `Bidirectional` (both directions) and `TimeDistributed`.
#' Layers it cannot swap (a custom subclass of Keras's LSTM, say) are left as
#' they were and named in the report. It calls the Python function
#' `fastlstm.convert_model()`; the original model is not changed.
#'
#' The copy is compiled as the original was, but the optimizer's state is not
#' carried over, nor the state of `stateful` layers.
#'
#' @param model A Keras model, or the path of a `.keras` file.
#' @param verbose Whether to print the report: each swapped layer with the
#'   kernel it will run here, and each layer left alone with the reason.
#' @returns The converted model. Its report is `model$fastlstm_report`
#'   (`$swapped`, `$skipped`).
#' @export
#' @examplesIf fastlstm_available()
#' model <- keras_model_sequential(input_shape = c(10, 8)) |>
#'   layer_bidirectional(keras$layers$LSTM(16L)) |>
#'   layer_dense(1)
#' fast <- convert_model(model)
#' x <- array(runif(4 * 10 * 8), c(4, 10, 8))
#' all.equal(predict(fast, x, verbose = 0), predict(model, x, verbose = 0),
#'           tolerance = 1e-5)
convert_model <- function(model, verbose = TRUE) {
  check_flags(verbose = verbose)
  if (is.character(model) && length(model) == 1 && !is.na(model)) {
    path <- path.expand(model)
    if (!file.exists(path)) {
      abort("{.arg model} names no file: {.path {model}} does not exist.",
            class = "fastlstm_bad_argument")
    }
    model <- path
  } else if (!is_model(model)) {
    abort(
      "{.arg model} must be a Keras model or the path of a {.file .keras} file, not {describe_value(model)}.",
      class = "fastlstm_bad_argument"
    )
  }
  require_python()
  converted <- with_py_errors(py_fastlstm()$convert_model(model, verbose = FALSE))
  if (verbose) writeLines(reticulate::py_str(converted$fastlstm_report))
  converted
}
