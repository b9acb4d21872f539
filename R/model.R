#' Create a Keras tensor (Functional API input).
#'
#' @param shape The shape of one sample, without the batch size: a numeric
#'   vector or [shape()], `NA` for a dimension of any size.
#' @param batch_size Optional fixed batch size (a stateful LSTM needs one).
#' @param dtype The data type of the input, by default `"float32"`.
#' @param name Optional name of the input layer.
#' @param ... Other arguments of `keras.Input`, by name.
#' @returns A symbolic `KerasTensor`, to compose layers with and then pass to
#'   [keras_model()].
#' @export
#' @examplesIf fastlstm_available()
#' input <- keras_input(shape(NA, 8))
#' shape(input)
#' output <- input |> layer_lstm(4)
#' shape(output)
keras_input <- function(shape = NULL, batch_size = NULL, dtype = NULL,
                        name = NULL, ...) {
  if (!is.null(shape)) check_shape_arg(shape)
  require_python()
  args <- capture_args(ignore = character())
  if (!is.null(shape)) args$shape <- as_py_shape(shape)
  args["batch_size"] <- list(as_integer_or_null(batch_size))
  with_py_errors(do.call(keras$Input, args))
}

#' Keras Model composed of a linear stack of layers
#'
#' @param input_shape Optional shape of one sample (without the batch size).
#'   Given, the model starts with an input and is built as layers are added.
#' @param name Optional name of the model.
#' @param ... Other arguments of `keras.Sequential`, by name.
#' @param input_batch_size Optional fixed batch size of the input.
#' @param input_dtype Optional data type of the input.
#' @param layers A list of layers to start the model with.
#' @returns A Sequential model. Compose layers with it:
#'   `model |> layer_lstm(4)` adds the layer and returns the model.
#' @export
#' @examplesIf fastlstm_available()
#' model <- keras_model_sequential(input_shape = c(10, 8)) |>
#'   layer_lstm(16) |>
#'   layer_dense(1)
#' model
keras_model_sequential <- function(input_shape = NULL, name = NULL, ...,
                                   input_batch_size = NULL,
                                   input_dtype = NULL, layers = list()) {
  if (!is.null(input_shape)) check_shape_arg(input_shape, "input_shape")
  require_python()
  model <- with_py_errors(keras$Sequential(name = name, ...))
  if (!is.null(input_shape)) {
    input <- keras$Input(
      shape = as_py_shape(input_shape),
      batch_size = as_integer_or_null(input_batch_size),
      dtype = input_dtype
    )
    with_py_errors(model$add(input))
  }
  for (layer in layers) with_py_errors(model$add(layer))
  model
}

#' Keras Model (Functional API)
#'
#' @param inputs The input(s) of the model: a [keras_input()] or a list.
#' @param outputs The output(s) of the model, computed from `inputs`.
#' @param ... Other arguments of `keras.Model` (such as `name`), by name.
#' @returns A Keras model.
#' @export
#' @examplesIf fastlstm_available()
#' input <- keras_input(c(10, 8))
#' c(output, h, c) %<-% layer_lstm(input, 4, return_state = TRUE)
#' model <- keras_model(input, list(output, h, c))
keras_model <- function(inputs, outputs = NULL, ...) {
  require_python()
  with_py_errors(keras$Model(inputs = inputs, outputs = outputs, ...))
}

check_model <- function(object, call = rlang::caller_env()) {
  require_python(call)
  if (!(inherits(object, "python.builtin.object") && bridge$is_model(object))) {
    value <- describe_value(object)
    cli::cli_abort(
      "{.arg object} must be a Keras model, not {value}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(object)
}

#' Configure, train, evaluate and use a model
#'
#' Thin wrappers around the Keras model methods of the same names that take
#' R arrays as well as tensors. `compile()` modifies the model in place and
#' returns it invisibly, so it pipes.
#'
#' @param object A Keras model.
#' @param optimizer Optimizer name or object, e.g. `"adam"`.
#' @param loss Loss name or object, e.g. `"mse"`.
#' @param metrics Optional list or vector of metric names or objects.
#' @param x Inputs: an R array, a tensor or a list of them.
#' @param y Targets, like `x`.
#' @param batch_size Number of samples per batch.
#' @param epochs Number of passes over the data.
#' @param verbose `0` (silent), `1` (progress bar), `2` (a line per epoch) or
#'   `"auto"`.
#' @param validation_split Fraction of the data held out for validation.
#' @param shuffle Whether to shuffle the samples each epoch.
#' @param ... Other arguments of the Keras method, by name.
#' @returns `compile()`: the model, invisibly. `fit()`: a
#'   `fastlstm_history`, a list of numeric vectors (one per metric, one value
#'   per epoch), invisibly. `predict()`: an R array (a list of them for a
#'   model with several outputs). `evaluate()`: a named numeric vector.
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
#' dim(predict(model, x))
#' evaluate(model, x, y)
NULL

#' @rdname model-training
#' @export
compile <- function(object, optimizer = "rmsprop", loss = NULL,
                    metrics = NULL, ...) {
  check_model(object)
  if (!is.null(metrics) && !inherits(metrics, "python.builtin.object")) {
    metrics <- as.list(metrics)
  }
  with_py_errors(object$compile(optimizer = optimizer, loss = loss,
                                metrics = metrics, ...))
  invisible(object)
}

#' @rdname model-training
#' @export
fit <- function(object, x = NULL, y = NULL, batch_size = NULL, epochs = 10,
                verbose = "auto", validation_split = 0, shuffle = TRUE, ...) {
  check_model(object)
  history <- with_py_errors(object$fit(
    as_py_value(x), as_py_value(y),
    batch_size = as_integer_or_null(batch_size), epochs = as.integer(epochs),
    verbose = verbose, validation_split = validation_split,
    shuffle = shuffle, ...
  ))
  metrics <- lapply(history$history, function(v) as.numeric(unlist(v)))
  invisible(structure(metrics, class = "fastlstm_history"))
}

#' @export
print.fastlstm_history <- function(x, ...) {
  epochs <- if (length(x)) length(x[[1]]) else 0L
  cat("Trained for ", epochs, " epoch", if (epochs != 1) "s", "\n", sep = "")
  for (name in names(x)) {
    cat(sprintf("  final %s: %.4g\n", name, x[[name]][[epochs]]))
  }
  invisible(x)
}

#' @rdname model-training
#' @importFrom stats predict
#' @exportS3Method stats::predict keras.src.models.model.Model
predict.keras.src.models.model.Model <- function(object, x, batch_size = NULL,
                                                 verbose = 0, ...) {
  check_model(object)
  result <- with_py_errors(object$predict(
    as_py_value(x), batch_size = as_integer_or_null(batch_size),
    verbose = verbose, ...
  ))
  if (is.list(result)) lapply(result, py_to_r_array) else py_to_r_array(result)
}

#' @rdname model-training
#' @export
evaluate <- function(object, x = NULL, y = NULL, batch_size = NULL,
                     verbose = 0, ...) {
  check_model(object)
  result <- with_py_errors(object$evaluate(
    as_py_value(x), as_py_value(y),
    batch_size = as_integer_or_null(batch_size), verbose = verbose,
    return_dict = TRUE, ...
  ))
  vapply(result, function(v) as.numeric(v), 1)
}

#' Save and load a model as a `.keras` file
#'
#' A model with fastlstm layers loads again with no `custom_objects`, in R or
#' in Python (`keras.saving.load_model()`), once `fastlstm` is imported.
#'
#' @param model A Keras model (for `save_model()`); a path to a `.keras`
#'   file (for `load_model()`).
#' @param filepath Path of the `.keras` file to write.
#' @param overwrite Whether to replace an existing file.
#' @param custom_objects Optional named list of extra classes or functions.
#' @param compile Whether to compile the loaded model as it was saved.
#' @param ... Other arguments of the Keras function, by name.
#' @returns `save_model()`: the model, invisibly. `load_model()`: the model.
#' @export
#' @examplesIf fastlstm_available()
#' model <- keras_model_sequential(input_shape = c(10, 2)) |> layer_lstm(4)
#' path <- tempfile(fileext = ".keras")
#' save_model(model, path)
#' restored <- load_model(path)
#' unlink(path)
save_model <- function(model, filepath, overwrite = FALSE, ...) {
  check_model(model, call = rlang::current_env())
  if (file.exists(filepath) && !isTRUE(overwrite)) {
    cli::cli_abort(
      "{.path {filepath}} exists; set {.code overwrite = TRUE} to replace it.",
      class = "fastlstm_bad_argument"
    )
  }
  with_py_errors(model$save(path.expand(filepath), ...))
  invisible(model)
}

#' @rdname save_model
#' @export
load_model <- function(model, custom_objects = NULL, compile = TRUE, ...) {
  require_python()
  force(fastlstm_py$LSTM) # registers fastlstm's classes for deserialisation
  with_py_errors(keras$saving$load_model(
    path.expand(model), custom_objects = custom_objects, compile = compile,
    ...
  ))
}

#' Reset the state of a stateful layer or model
#'
#' A layer built with `stateful = TRUE` keeps its last state as the initial
#' state of the next batch; `reset_state()` sets it back to zeros. Given a
#' model, every stateful layer in it is reset.
#'
#' @param object A layer or a model.
#' @returns `object`, invisibly.
#' @export
#' @examplesIf fastlstm_available()
#' lstm <- layer_lstm(units = 2, stateful = TRUE)
#' x <- random_uniform(c(1, 3, 2), seed = 1)
#' a <- as.array(lstm(x))
#' b <- as.array(lstm(x)) # starts from the state `a` left
#' reset_state(lstm)
#' all.equal(as.array(lstm(x)), a)
reset_state <- function(object) {
  require_python()
  if (!inherits(object, "python.builtin.object")) {
    value <- describe_value(object)
    cli::cli_abort("{.arg object} must be a Keras layer or model, not {value}.",
                   class = "fastlstm_bad_argument")
  }
  if (reticulate::py_has_attr(object, "reset_state")) {
    with_py_errors(object$reset_state())
  } else if (reticulate::py_has_attr(object, "layers")) {
    for (layer in object$layers) {
      if (reticulate::py_has_attr(layer, "reset_state") &&
          reticulate::py_has_attr(layer, "stateful") && isTRUE(layer$stateful)) {
        with_py_errors(layer$reset_state())
      }
    }
  }
  invisible(object)
}
