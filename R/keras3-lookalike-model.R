# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' Create a Keras tensor (Functional API input).
#'
#' As keras3's `keras_input()`: a symbolic input to compose layers with and
#' then pass to [keras_model()].
#'
#' @param shape The shape of one sample, without the batch size: a numeric
#'   vector or [shape()], `NA` for a dimension of any size.
#' @param batch_size Optional fixed batch size (a stateful LSTM needs one).
#' @param dtype The data type of the input, by default `"float32"`.
#' @param sparse,ragged Whether the input is sparse or ragged (`NULL`:
#'   Keras's default).
#' @param batch_shape Optional shape including the batch size, instead of
#'   `shape` and `batch_size`.
#' @param name Optional name of the input layer.
#' @param tensor Optional existing tensor to wrap.
#' @param optional Whether the input may be `NULL`.
#' @returns A symbolic `KerasTensor`.
#' @export
#' @examplesIf fastlstm_available()
#' input <- keras_input(shape(NA, 8))
#' shape(input)
#' output <- input |> layer_lstm(4)
#' shape(output)
keras_input <- function(shape = NULL, batch_size = NULL, dtype = NULL,
                        sparse = NULL, ragged = NULL, batch_shape = NULL,
                        name = NULL, tensor = NULL, optional = FALSE) {
  if (!is.null(shape)) check_shape_arg(shape)
  if (!is.null(batch_shape)) check_shape_arg(batch_shape, "batch_shape")
  require_python()
  args <- capture_args(list(shape = as_py_shape, batch_shape = as_py_shape,
                            batch_size = as_integer_or_null),
                       ignore = character())
  with_py_errors(do.call(py_keras()$Input, args))
}

#' Keras Model composed of a linear stack of layers
#'
#' As keras3's `keras_model_sequential()`: given `input_shape` (or another
#' `input_*` argument) the model starts with an input and is built as
#' layers are added.
#'
#' @param input_shape Optional shape of one sample (without the batch size).
#' @param name Optional name of the model.
#' @param ... Unused; must be empty.
#' @param input_dtype,input_batch_size,input_sparse,input_ragged,input_batch_shape,input_name,input_tensor,input_optional
#'   The input's `dtype`, fixed `batch_size` (a stateful LSTM needs one),
#'   and the other arguments of [keras_input()].
#' @param trainable Whether the model's weights are trained.
#' @param layers A list of layers to start the model with.
#' @returns A Sequential model. Compose layers with it:
#'   `model |> layer_lstm(4)` adds the layer and returns the model.
#' @export
#' @examplesIf fastlstm_available()
#' model <- keras_model_sequential(input_shape = shape(10, 8)) |>
#'   layer_lstm(16) |>
#'   layer_dense(1)
#' model
keras_model_sequential <- function(input_shape = NULL, name = NULL, ...,
                                   input_dtype = NULL,
                                   input_batch_size = NULL,
                                   input_sparse = NULL, input_ragged = NULL,
                                   input_batch_shape = NULL,
                                   input_name = NULL, input_tensor = NULL,
                                   input_optional = FALSE, trainable = TRUE,
                                   layers = list()) {
  if (...length()) {
    abort(
      c("{.fn keras_model_sequential} takes no other arguments than its own.",
        i = "Pass layers as {.arg layers}, or compose them with the pipe."),
      class = "fastlstm_bad_argument"
    )
  }
  if (inherits(input_shape, "python.builtin.object") ||
      (is.list(input_shape) && !inherits(input_shape, "keras_shape"))) {
    abort(
      "{.arg layers} must be passed by name: {.code keras_model_sequential(layers = list(...))}; the first argument is {.arg input_shape}.",
      class = "fastlstm_bad_argument"
    )
  }
  if (!is.null(input_shape)) check_shape_arg(input_shape, "input_shape")
  if (!is.null(input_batch_shape)) {
    check_shape_arg(input_batch_shape, "input_batch_shape")
  }
  require_python()
  args <- capture_args(ignore = character())
  model_args <- args[intersect(names(args), c("name", "trainable"))]
  input_args <- args[setdiff(names(args), c("name", "trainable", "layers"))]
  layers <- if (inherits(layers, "python.builtin.object")) list(layers) else as.list(layers)
  if (length(input_args)) {
    names(input_args) <- sub("^input_", "", names(input_args))
    for (arg in intersect(names(input_args), c("shape", "batch_shape"))) {
      input_args[[arg]] <- as_py_shape(input_args[[arg]])
    }
    if (!is.null(input_args$batch_size)) {
      input_args$batch_size <- as.integer(input_args$batch_size)
    }
    input <- with_py_errors(do.call(py_keras()$Input, input_args),
                            context = input_arg_names)
    layers <- c(list(input), layers)
  }
  model_args$layers <- layers
  with_py_errors(do.call(py_keras()$Sequential, model_args),
                 context = input_arg_names)
}

input_arg_names <- c(
  shape = "input_shape", batch_size = "input_batch_size",
  dtype = "input_dtype", batch_shape = "input_batch_shape"
)

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
keras_model <- function(inputs = NULL, outputs = NULL, ...) {
  require_python()
  if (is.list(inputs) && is.null(names(inputs)) && length(inputs) == 1L) {
    inputs <- inputs[[1L]]
  }
  if (is.list(outputs) && is.null(names(outputs)) && length(outputs) == 1L) {
    outputs <- outputs[[1L]]
  }
  with_py_errors(py_keras()$Model(inputs = inputs, outputs = outputs, ...))
}

#' Save and load a model as a `.keras` file
#'
#' As keras3's functions. A model with fastlstm layers loads again with no
#' `custom_objects`, in R or in Python (`keras.saving.load_model()`), once
#' `fastlstm` is imported (`load_model()` imports it).
#'
#' @param model A Keras model (for `save_model()`); a path to a `.keras`
#'   file, or the raw vector `save_model()` returns without a `filepath`
#'   (for `load_model()`).
#' @param filepath Path of the `.keras` file to write; `NULL` returns the
#'   file's bytes as a raw vector instead.
#' @param overwrite Whether to replace an existing file (asked in an
#'   interactive session).
#' @param zipped Whether the file is a zip archive (`NULL`: Keras's default).
#' @param custom_objects Optional named list of extra classes or functions.
#' @param compile Whether to compile the loaded model as it was saved.
#' @param safe_mode Whether to refuse loading `lambda` code.
#' @param ... Other arguments of `keras.saving.save_model()`, by name.
#' @returns `save_model()`: the model, invisibly (or a raw vector). `load_model()`:
#'   the model.
#' @export
#' @examplesIf fastlstm_available()
#' model <- keras_model_sequential(input_shape = c(10, 2)) |> layer_lstm(4)
#' path <- tempfile(fileext = ".keras")
#' save_model(model, path)
#' restored <- load_model(path)
#' unlink(path)
save_model <- function(model, filepath = NULL, overwrite = FALSE,
                       zipped = NULL, ...) {
  check_model(model, "model")
  require_python()
  serialize <- is.null(filepath)
  if (serialize) {
    filepath <- tempfile(pattern = "keras_model-", fileext = ".keras")
    on.exit(unlink(filepath), add = TRUE)
  }
  filepath <- path.expand(filepath)
  if (file.exists(filepath) && !isTRUE(overwrite)) {
    if (interactive()) {
      overwrite <- utils::askYesNo(
        sprintf("File '%s' already exists - overwrite?", filepath),
        default = FALSE
      )
    }
    if (!isTRUE(overwrite)) {
      abort(
        "{.path {filepath}} already exists; pass {.code overwrite = TRUE} to replace it.",
        class = "fastlstm_bad_argument"
      )
    }
  }
  args <- list(model, filepath, overwrite = TRUE, ...)
  if (!is.null(zipped)) args$zipped <- zipped
  with_py_errors(do.call(py_keras()$saving$save_model, args))
  if (serialize) return(readBin(filepath, what = "raw", n = file.size(filepath)))
  invisible(model)
}

#' @rdname save_model
#' @export
load_model <- function(model, custom_objects = NULL, compile = TRUE,
                       safe_mode = TRUE) {
  require_python()
  if (is.raw(model)) {
    path <- tempfile(pattern = "keras_model-", fileext = ".keras")
    on.exit(unlink(path), add = TRUE)
    writeBin(model, path)
    model <- path
  }
  if (!(is.character(model) && length(model) == 1 && !is.na(model))) {
    abort(
      "{.arg model} must be the path of a {.file .keras} file (or the raw vector {.fn save_model} returns), not {describe_value(model)}.",
      class = "fastlstm_bad_argument"
    )
  }
  force(py_fastlstm()$LSTM) # registers fastlstm's classes for deserialisation
  with_py_errors(py_keras()$saving$load_model(
    path.expand(model), custom_objects = custom_objects, compile = compile,
    safe_mode = safe_mode
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
  if (!inherits(object, "keras.src.layers.layer.Layer")) {
    abort("{.arg object} must be a Keras layer or model, not {describe_value(object)}.",
          class = "fastlstm_bad_argument")
  }
  require_python()
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
