# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' @importFrom generics compile
#' @export
generics::compile

#' @importFrom generics fit
#' @export
generics::fit

#' Evaluate a model
#'
#' `evaluate()` is the generic keras3 uses (`evaluate(object, ...)`). Where
#' keras3 is installed it is keras3's own; where it is not, fastlstm
#' defines the same generic. The method for Keras models is documented in
#' [model-training].
#'
#' @param object The object to evaluate.
#' @param ... Arguments of the method.
#' @returns What the method returns.
#' @export
evaluate <- function(object, ...) UseMethod("evaluate")

#' Configure, train, evaluate and use a model
#'
#' `compile()`, `fit()`, `evaluate()` and `predict()` are methods for Keras
#' models of the generics keras3 uses (`generics::compile()`,
#' `generics::fit()`, [evaluate()], `stats::predict()`), with keras3's
#' arguments and results, and `fit()` on anything else (a tidymodels
#' specification) still reaches its own method. fastlstm registers these
#' methods only where keras3 is not installed; where it is, keras3's run. They take R arrays (and
#' lists of them) as well as tensors; a double array is converted to the
#' model's input dtype.
#'
#' `summary(model)` (and printing a model) shows Keras's layer table.
#'
#' @param object A Keras model.
#' @param optimizer Optimizer name or object, e.g. `"adam"`.
#' @param loss Loss name or object, e.g. `"mse"`; a list for several
#'   outputs.
#' @param metrics Optional vector or list of metric names or objects.
#' @param loss_weights,weighted_metrics,run_eagerly,steps_per_execution,jit_compile,auto_scale_loss
#'   Other arguments of Keras's `Model.compile()`.
#' @param x Inputs: an R array, a tensor, or a list of them.
#' @param y Targets, like `x`.
#' @param batch_size Number of samples per batch (Keras's default: 32).
#' @param epochs Number of passes over the data.
#' @param callbacks Optional list of Keras callbacks.
#' @param validation_split Fraction of the data held out for validation.
#' @param validation_data Optional `list(x_val, y_val)` to validate on.
#' @param shuffle Whether to shuffle the samples each epoch.
#' @param class_weight Optional named list of weights per class index.
#' @param sample_weight Optional weights per sample.
#' @param initial_epoch The epoch to start at (1-based, as in keras3).
#' @param steps_per_epoch,validation_steps,validation_batch_size,validation_freq,steps
#'   Other arguments of Keras's methods.
#' @param verbose `0` (silent), `1` (progress bar), `2` (a line per epoch) or
#'   `"auto"` (silent under testthat, one line per epoch in knitr and in a
#'   non-interactive session such as `Rscript`, the progress bar at the
#'   console). Default: `getOption("keras.verbose", "auto")`, as in keras3.
#' @param view_metrics Accepted for keras3 compatibility; fastlstm has no
#'   live metrics viewer.
#' @param ... Other arguments of the Keras method, by name.
#' @returns `compile()`: the model, invisibly. `fit()`: a
#'   `keras_training_history` (keras3's structure: `$params` and `$metrics`,
#'   a named list with one value per epoch for each metric), invisibly; it
#'   has `print()`, `plot()` and `as.data.frame()` methods. `evaluate()`: a
#'   named list of the loss and metrics. `predict()`: an R array (a list of
#'   them for a model with several outputs).
#' @name model-training
#' @examplesIf fastlstm_available()
#' x <- array(runif(64 * 10 * 2), c(64, 10, 2))
#' y <- apply(x, 1, sum)
#' model <- keras_model_sequential(input_shape = c(10, 2)) |>
#'   layer_lstm(8) |>
#'   layer_dense(1)
#' model |> compile(optimizer = "adam", loss = "mse")
#' history <- model |> fit(x, y, epochs = 2, verbose = 0)
#' history
#' as.data.frame(history)
#' dim(predict(model, x))
#' evaluate(model, x, y)
#' summary(model)
NULL

#' @rdname model-training
compile.keras.src.models.model.Model <- function(
    object, optimizer = "rmsprop", loss = NULL, metrics = NULL, ...,
    loss_weights = NULL, weighted_metrics = NULL, run_eagerly = FALSE,
    steps_per_execution = 1L, jit_compile = "auto", auto_scale_loss = TRUE) {
  require_python()
  args <- capture_args(list(
    steps_per_execution = as.integer,
    loss = as_loss,
    metrics = as_metric_list,
    weighted_metrics = as_metric_list,
    loss_weights = as.list
  ))
  with_py_errors(do.call(object$compile, args))
  invisible(object)
}

as_loss <- function(x) {
  if (is.character(x) && length(x) > 1) return(as.list(x))
  x
}

as_metric_list <- function(x) {
  if (is.null(x)) return(NULL)
  if (inherits(x, "python.builtin.object")) return(list(x))
  as.list(x)
}

#' @rdname model-training
fit.keras.src.models.model.Model <- function(
    object, x = NULL, y = NULL, ..., batch_size = NULL, epochs = 1L,
    callbacks = NULL, validation_split = 0, validation_data = NULL,
    shuffle = TRUE, class_weight = NULL, sample_weight = NULL,
    initial_epoch = 1L, steps_per_epoch = NULL, validation_steps = NULL,
    validation_batch_size = NULL, validation_freq = 1L,
    verbose = getOption("keras.verbose", default = "auto"),
    view_metrics = getOption("keras.view_metrics", default = "auto")) {
  require_python()
  normalize <- input_normalizer(object)
  args <- capture_args(list(
    x = normalize, y = normalize, sample_weight = normalize,
    validation_data = normalize,
    batch_size = as.integer, validation_batch_size = as.integer,
    epochs = as.integer, initial_epoch = function(i) as.integer(i) - 1L,
    steps_per_epoch = as.integer, validation_freq = as.integer,
    validation_steps = as.integer, class_weight = as_class_weight,
    callbacks = as_callback_list
  ), ignore = c("object", "view_metrics"))
  args$verbose <- as_model_verbose_arg(verbose)
  history <- with_py_errors(do.call(object$fit, args))
  invisible(keras_training_history(history$params, history$history))
}

#' @rdname model-training
evaluate.keras.src.models.model.Model <- function(
    object, x = NULL, y = NULL, ..., batch_size = NULL,
    verbose = getOption("keras.verbose", default = "auto"),
    sample_weight = NULL, steps = NULL, callbacks = NULL) {
  require_python()
  normalize <- input_normalizer(object)
  args <- capture_args(list(
    x = normalize, y = normalize, sample_weight = normalize,
    batch_size = as.integer, steps = as.integer,
    callbacks = as_callback_list
  ))
  args$verbose <- as_model_verbose_arg(verbose)
  args$return_dict <- TRUE
  with_py_errors(do.call(object$evaluate, args))
}

#' @rdname model-training
#' @importFrom stats predict
predict.keras.src.models.model.Model <- function(
    object, x, ..., batch_size = NULL,
    verbose = getOption("keras.verbose", default = "auto"), steps = NULL,
    callbacks = NULL) {
  require_python()
  normalize <- input_normalizer(object)
  args <- capture_args(list(
    x = normalize, batch_size = as.integer, steps = as.integer,
    callbacks = as_callback_list
  ))
  args$verbose <- as_model_verbose_arg(verbose)
  with_py_errors(do.call(object$predict, args))
}

# R arrays become NumPy arrays of the model's input dtype (doubles to
# float32, integers to int32), as keras3 converts them; tensors and other
# Python objects pass as they are.
input_normalizer <- function(model) {
  force(model)
  delayedAssign("dtype", {
    d <- tryCatch(reticulate::py_get_attr(model, "input_dtype", silent = TRUE),
                  error = function(e) NULL)
    d <- if (inherits(d, "python.builtin.object")) reticulate::py_to_r(d) else d
    if (is.character(d) && length(d) == 1) d else py_keras()$config$floatx()
  })
  normalize <- function(x) {
    if (is.null(x) || inherits(x, "python.builtin.object")) return(x)
    if (is.list(x)) return(lapply(x, normalize))
    if (is.factor(x)) {
      x <- array(as.integer(x) - 1L, dim = dim(x) %||% length(x))
    }
    target <- if ((is.double(x) && grepl("float", dtype)) ||
                  (is.integer(x) && grepl("int", dtype))) dtype
    reticulate::np_array(x, dtype = target)
  }
  normalize
}

# "auto": silent under testthat; one line per epoch in knitr and wherever
# R is not interactive (Rscript: a log gets no progress-bar escapes or
# backspaces); Keras's progress bar at the console.
as_model_verbose_arg <- function(x) {
  if (!identical(x, "auto")) return(as.integer(x))
  if (identical(Sys.getenv("TESTTHAT"), "true")) return(0L)
  if (isTRUE(getOption("knitr.in.progress")) || !interactive()) return(2L)
  x
}

as_class_weight <- function(x) {
  if (is.null(x)) return(NULL)
  if (is.numeric(x)) x <- as.list(x)
  if (!is.list(x)) {
    abort("{.arg class_weight} must be a named list of weights, not {describe_value(x)}.",
          call = NULL, class = "fastlstm_bad_argument")
  }
  reticulate::dict(x)
}

as_callback_list <- function(x) {
  if (is.null(x)) return(NULL)
  if (inherits(x, "python.builtin.object")) return(list(x))
  as.list(x)
}

#' @rdname model-training
summary.keras.src.models.model.Model <- function(object, ...) {
  writeLines(text <- format.keras.src.models.model.Model(object, ...))
  invisible(text)
}

#' @rdname model-training
#' @param line_length,positions,expand_nested,show_trainable,layer_range
#'   Arguments of Keras's `Model.summary()`; `show_trainable = NA` shows
#'   the column where the model has non-trainable weights.
#' @param compact Whether to drop the table's empty lines.
format.keras.src.models.model.Model <- function(
    x, line_length = min(getOption("width"), 180), positions = NULL,
    expand_nested = FALSE, show_trainable = NA, ..., layer_range = NULL,
    compact = TRUE) {
  require_python()
  if (is.na(show_trainable)) {
    show_trainable <- isTRUE(x$built) &&
      length(x$non_trainable_weights) > 0
  }
  args <- list(line_length = as.integer(line_length), positions = positions,
               expand_nested = expand_nested, show_trainable = show_trainable,
               layer_range = layer_range)
  text <- with_columns(getOption("width"), trimws(reticulate::py_capture_output(
    with_py_errors(do.call(x$summary, args))
  )))
  if (compact) text <- gsub("(\\n\\s*\\n)", "\n", text, perl = TRUE)
  text
}

#' @rdname model-training
print.keras.src.models.model.Model <- function(x, ...) {
  writeLines(format.keras.src.models.model.Model(x, ...))
  invisible(x)
}

# Keras draws the table with rich, which sizes it from COLUMNS.
with_columns <- function(width, expr) {
  environ <- reticulate::import("os", convert = FALSE)$environ
  old <- reticulate::py_get_item(environ, "COLUMNS", silent = TRUE)
  reticulate::py_set_item(environ, "COLUMNS", as.character(width))
  on.exit({
    if (is.null(old)) reticulate::py_del_item(environ, "COLUMNS")
    else reticulate::py_set_item(environ, "COLUMNS", old)
  }, add = TRUE)
  force(expr)
}
