# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

# fit()'s result: keras3's `keras_training_history`, a list of `params`
# (Keras's History.params) and `metrics` (one numeric vector per metric,
# one value per epoch), so code written for keras3 reads it the same way.
keras_training_history <- function(params, metrics) {
  metrics <- lapply(metrics, function(v) as.numeric(unlist(v)))
  structure(list(params = params, metrics = metrics),
            class = "keras_training_history")
}

#' Training history
#'
#' [fit()] returns a `keras_training_history`, keras3's structure: `$params`
#' (`epochs`, `steps`, `verbose`) and `$metrics`, a named list with one value
#' per epoch for each metric (`history$metrics$loss`), validation metrics
#' prefixed with `val_`. It prints the final epoch's values;
#' `as.data.frame()` gives one row per epoch and metric (columns `epoch`,
#' `value`, `metric`, `data`: `"training"` or `"validation"`); `plot()` draws
#' each metric against the epoch.
#'
#' @param x A `keras_training_history`.
#' @param y Unused.
#' @param metrics The metrics to plot; by default all (their validation
#'   values in the same panel).
#' @param method How to draw: only base graphics (`"auto"` or `"base"`);
#'   keras3 draws with ggplot2 where it is installed.
#' @param ... Passed to [graphics::plot()] (for `plot()`); unused otherwise.
#' @returns `plot()`: `NULL`, invisibly. `as.data.frame()`: a data frame.
#'   `print()`: `x`, invisibly.
#' @name training-history
#' @examplesIf fastlstm_available()
#' x <- array(runif(32 * 5 * 2), c(32, 5, 2))
#' model <- keras_model_sequential(input_shape = c(5, 2)) |>
#'   layer_lstm(4) |>
#'   layer_dense(1)
#' compile(model, optimizer = "adam", loss = "mse")
#' history <- fit(model, x, rowSums(x), epochs = 3, verbose = 0,
#'                validation_split = 0.25)
#' history$metrics$loss
#' as.data.frame(history)
#' plot(history)
NULL

#' @rdname training-history
print.keras_training_history <- function(x, ...) {
  epochs <- min(x$params$epochs %||% 0L, length(x$metrics[[1]]))
  last <- vapply(x$metrics, function(m) m[[epochs]], 1)
  labels <- formatC(names(last), width = max(nchar(names(last))))
  values <- prettyNum(last, big.mark = ",", digits = 4, scientific = FALSE)
  cat("\nFinal epoch (plot to see history):\n",
      paste0(labels, ": ", values, collapse = "\n"), " \n", sep = "")
  invisible(x)
}

#' @rdname training-history
#' @param row.names,optional Unused (for the generic).
as.data.frame.keras_training_history <- function(x, row.names = NULL,
                                                 optional = FALSE, ...) {
  epochs <- x$params$epochs
  names <- names(x$metrics)
  values <- unlist(lapply(x$metrics, function(m) {
    c(m, rep_len(NA_real_, epochs - length(m)))[seq_len(epochs)]
  }), use.names = FALSE)
  df <- data.frame(
    epoch = rep(seq_len(epochs), length(names)),
    value = values,
    metric = rep(sub("^val_", "", names), each = epochs),
    data = rep(grepl("^val_", names), each = epochs)
  )
  df$data <- factor(df$data, c(FALSE, TRUE), c("training", "validation"))
  df$metric <- factor(df$metric, unique(sub("^val_", "", names)))
  df
}

#' @rdname training-history
plot.keras_training_history <- function(x, y, metrics = NULL,
                                        method = c("auto", "base"), ...) {
  method <- match.arg(method)
  df <- as.data.frame(x)
  if (is.null(metrics)) {
    metrics <- Filter(function(n) !grepl("^val_", n), names(x$metrics))
  }
  validation <- any(grepl("^val_", names(x$metrics)))
  old <- graphics::par(mfrow = c(length(metrics), 1),
                       mar = c(3.5, 4.5, 1, 1))
  on.exit(graphics::par(old), add = TRUE)
  for (metric in metrics) {
    rows <- df[df$metric == metric, ]
    graphics::plot(rows$epoch, rows$value, pch = c(1, 4)[rows$data],
                   xlab = "epoch", ylab = metric, ...)
    legend <- if (validation) c(metric, paste0("val_", metric)) else metric
    training <- rows$value[rows$data == "training"]
    where <- if (isTRUE(training[1] > training[length(training)])) {
      "topright"
    } else {
      "bottomright"
    }
    graphics::legend(where, legend = legend,
                     pch = if (validation) c(1, 4) else 1)
  }
  invisible(NULL)
}
