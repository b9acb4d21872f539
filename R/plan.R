#' Which LSTM kernel runs, and why
#'
#' `lstm_plan()` asks fastlstm which kernel a call of `layer` on `inputs`
#' would run (`"cudnn"`, `"native"`, `"onnx"`, `"loop"` or `"unrolled"`;
#' `"onnx"` only in a call traced for an ONNX file) and records
#' each requirement with whether it holds. It calls the Python function
#' `fastlstm.plan()` and runs nothing.
#'
#' @param layer A layer from [layer_lstm()].
#' @param inputs A tensor or R array of shape `(batch, timesteps, features)`.
#' @param mask Optional logical array or tensor of shape
#'   `(batch, timesteps)`.
#' @param training Optional, `TRUE` or `FALSE`: the call in training mode.
#' @param device `NULL` for the device at hand, or `"gpu"` / `"cpu"` to ask
#'   what would run there.
#' @returns The Python `Plan` object. It prints the chosen kernel and every
#'   requirement, with values in R's spelling (`FALSE`, `0`, `NULL`);
#'   `$kernel`, `$reasons`, `$backend` and `$device` give the parts.
#' @export
#' @examplesIf fastlstm_available()
#' lstm <- layer_lstm(units = 4)
#' input <- random_uniform(c(32, 10, 8))
#' lstm_plan(lstm, input)
#' lstm_plan(lstm, input, device = "gpu")$kernel
lstm_plan <- function(layer, inputs, mask = NULL, training = NULL,
                      device = NULL) {
  if (!inherits(layer, "fastlstm.layer.LSTM")) {
    abort(
      "{.arg layer} must be a layer made by {.fn layer_lstm} (a {.cls fastlstm.LSTM}), not {describe_value(layer)}.",
      class = "fastlstm_bad_argument"
    )
  }
  if (!is.null(training)) check_flags(training = training)
  if (!(is.null(device) || identical(device, "cpu") || identical(device, "gpu"))) {
    abort('{.arg device} must be NULL, "cpu" or "gpu", not {describe_value(device)}.',
          class = "fastlstm_bad_argument")
  }
  require_python()
  with_py_errors(py_fastlstm()$plan(
    layer, inputs, mask = mask, training = training, device = device
  ))
}

#' @rdname lstm_plan
#' @param x A plan, as `lstm_plan()` returns it.
#' @param ... Unused.
#' @export
format.fastlstm.planner.Plan <- function(x, ...) {
  plan_r_terms(reticulate::py_str(x))
}

#' @rdname lstm_plan
#' @export
print.fastlstm.planner.Plan <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

# The plan's text with R's spellings of values: FALSE, TRUE, NULL, 0
# (Python writes False, True, None, 0.0).
plan_r_terms <- function(text) {
  text <- r_terms(text)
  text <- gsub("\\bFalse\\b", "FALSE", text, perl = TRUE)
  text <- gsub("\\bTrue\\b", "TRUE", text, perl = TRUE)
  text <- gsub("=([0-9]+)\\.0\\b", " = \\1", text, perl = TRUE)
  text <- gsub("\\b([A-Za-z_]+)=([0-9.]+)", "\\1 = \\2", text, perl = TRUE)
  text
}
