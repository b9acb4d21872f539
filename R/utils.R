# Forward only the arguments the caller supplied (as keras3's capture_args
# does), so Keras's own defaults apply to the rest and get_config() shows
# what the user asked for. `modifiers` coerce values (units to integer).
capture_args <- function(modifiers = list(), ignore = "object") {
  env <- parent.frame()
  fn <- sys.function(-1)
  matched <- match.call(fn, sys.call(-1), expand.dots = FALSE,
                        envir = parent.frame(2))
  # as.character(): a call with no arguments has no names at all (NULL).
  supplied <- setdiff(as.character(names(matched)[-1]), c(ignore, "..."))
  args <- mget(supplied, envir = env)
  dots <- if ("..." %in% names(formals(fn))) eval(quote(list(...)), env)
  if (length(dots) &&
      (is.null(names(dots)) || any(!nzchar(names(dots))))) {
    abort(
      "Arguments in {.arg ...} must be named: they are passed to Keras by name.",
      call = env, class = "fastlstm_bad_argument"
    )
  }
  args <- c(args, dots)
  # keras3's standard layer arguments, accepted by every layer function:
  # shapes become tuples of integers (NA: None), the batch size an integer.
  standard <- list(
    input_shape = function(x) shape_arg(x, "input_shape", env),
    batch_input_shape = function(x) shape_arg(x, "batch_input_shape", env),
    batch_size = function(x) whole_number_arg(x, "batch_size", env)
  )
  modifiers <- c(modifiers, standard[setdiff(names(standard), names(modifiers))])
  for (name in intersect(names(modifiers), names(args))) {
    args[name] <- list(modifiers[[name]](args[[name]]))
  }
  args
}

shape_arg <- function(x, arg, call) {
  if (is.null(x) || inherits(x, "python.builtin.object")) return(x)
  check_shape_arg(x, arg, call = call)
  as_py_shape(x)
}

whole_number_arg <- function(x, arg, call) {
  if (is.null(x)) return(x)
  if (!(is_whole_number(x) && x >= 1)) {
    abort("{.arg {arg}} must be a positive whole number, not {describe_value(x)}.",
          call = call, class = "fastlstm_bad_argument")
  }
  as.integer(x)
}

as_integer_or_null <- function(x) {
  if (is.numeric(x)) as.integer(x) else x
}

# A short rendering of a bad value for error messages: the value itself
# when it is a short atomic vector, else its type. Never asks a Python
# object anything but its class.
describe_value <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.atomic(x) && !is.object(x) && length(x) >= 1 && length(x) <= 4) {
    return(paste(deparse(x, width.cutoff = 60L), collapse = " "))
  }
  if (inherits(x, "python.builtin.object")) {
    return(paste0("a Python object of class <", class(x)[[1]], ">"))
  }
  paste0("an object of class <", paste(class(x), collapse = "/"), ">")
}

is_whole_number <- function(x) {
  is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    x == trunc(x)
}

# The argument checks R makes itself are those Python cannot make in R
# terms: a missing `units`, and values R would change on their way to
# Python (2.5 or "4" made an integer, NA made None, a vector made a list).
# The rules on the values themselves (units >= 1, rates in [0, 1], the
# choices of use_cudnn) are Python's, in one place
# (python/fastlstm/_validation.py); their errors reach R in R terms, naming
# the R argument (see errors.R).
check_units <- function(units, missing_units, object = NULL,
                        call = rlang::caller_env()) {
  if (missing_units) {
    # layer_lstm(4): as in keras3, the first argument is `object`.
    fn <- deparse(error_call(call)[[1]] %||% quote(layer_lstm))
    hint <- if (is_whole_number(object)) {
      "The {object} given first went to {.arg object}, the first argument (as in keras3); write {.code {fn}(units = {object})}."
    } else {
      "Give {.arg units}, a positive whole number: the dimensionality of the output space."
    }
    abort(c("{.arg units} is missing, with no default.", i = hint),
          call = call, class = "fastlstm_bad_argument")
  }
  if (!is_whole_number(units)) {
    abort(
      "{.arg units} must be a positive whole number, not {describe_value(units)}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(units)
}

check_fraction <- function(x, arg, call = rlang::caller_env()) {
  if (!(is.numeric(x) && length(x) == 1 && !is.na(x))) {
    abort(
      "{.arg {arg}} must be a number between 0 and 1, not {describe_value(x)}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(x)
}

check_use_cudnn <- function(x, call = rlang::caller_env()) {
  if (!((is.logical(x) || is.character(x)) && length(x) == 1 && !is.na(x))) {
    abort(
      '{.arg use_cudnn} must be "auto", TRUE or FALSE, not {describe_value(x)}.',
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(x)
}

# Logical flags are TRUE or FALSE; R's truthy strings and numbers are
# errors here rather than whatever Python makes of them.
check_flags <- function(..., call = rlang::caller_env()) {
  flags <- list(...)
  for (arg in names(flags)) {
    x <- flags[[arg]]
    if (!(isTRUE(x) || isFALSE(x))) {
      abort(
        "{.arg {arg}} must be TRUE or FALSE, not {describe_value(x)}.",
        call = call, class = "fastlstm_bad_argument"
      )
    }
  }
  invisible()
}

is_tensor_like <- function(x) {
  inherits(x, c("keras.src.backend.common.keras_tensor.KerasTensor",
                "numpy.ndarray")) ||
    isTRUE(tryCatch(py_keras()$ops$is_tensor(x), error = function(e) FALSE))
}

is_sequential <- function(x) {
  inherits(x, "keras.src.models.sequential.Sequential")
}

# `object` of a layer function: NULL, a Sequential model, a tensor or an R
# array. Anything else is an error, raised before any layer is built.
check_object <- function(object, call = rlang::caller_env()) {
  if (is.null(object) || is_r_array_like(object)) return(invisible())
  if (inherits(object, "python.builtin.object")) {
    require_python(call)
    if (is_sequential(object) || is_tensor_like(object)) return(invisible())
  }
  abort(
    c("{.arg object} must be NULL, a Sequential model, a tensor, an array or a {.fn keras_input}, not {describe_value(object)}.",
      i = "Leave {.arg object} out to get the layer itself."),
    call = call, class = "fastlstm_bad_argument"
  )
}

# Builds a layer from the Python class `make()` returns and composes it
# with `object` (keras3's rules): NULL gives the layer, a Sequential model
# gets the layer added (and is returned invisibly), anything else is passed
# through the layer. `context` names R arguments in Python's messages.
create_layer <- function(make, object, args, call = rlang::caller_env(),
                         context = NULL) {
  check_object(object, call)
  require_python(call)
  batch <- batch_input(args, object, call)
  layer <- with_py_errors(do.call(make(), batch$args), call, context)
  if (is.null(object)) return(layer)
  if (!is.null(batch$input)) with_py_errors(object$add(batch$input), call)
  compose_layer(object, layer, call = call, context = context)
}

# keras3's `batch_input_shape`, or `batch_size` with `input_shape`, given to
# a layer: Keras 3 layers take neither, and a batch size belongs to the
# model's input, so the layer must start a Sequential model; that model
# gets the input (keras_input(batch_shape = ...)) before the layer.
batch_input <- function(args, object, call) {
  if (is.null(args$batch_input_shape) && is.null(args$batch_size)) {
    return(list(args = args))
  }
  batch_shape <- if (!is.null(args$batch_input_shape)) {
    if (!is.null(args$batch_size) || !is.null(args$input_shape)) {
      abort("Give either {.arg batch_input_shape} or {.arg batch_size} with {.arg input_shape}, not both.",
            call = call, class = "fastlstm_bad_argument")
    }
    args$batch_input_shape
  } else {
    if (is.null(args$input_shape)) {
      abort(
        c("{.arg batch_size} needs {.arg input_shape}: together they are the shape of the model's input.",
          i = "Or give {.arg batch_input_shape}, the shape with the batch size first."),
        call = call, class = "fastlstm_bad_argument"
      )
    }
    reticulate::tuple(c(list(args$batch_size),
                        reticulate::py_to_r(reticulate::import_builtins()$list(args$input_shape))))
  }
  arg <- if (!is.null(args$batch_input_shape)) "batch_input_shape" else "batch_size"
  starts_model <- is_sequential(object) &&
    reticulate::py_len(reticulate::py_get_attr(object, "_layers")) == 0L
  if (!starts_model) {
    abort(
      c("{.arg {arg}} sets the batch size of a model's input, so the layer must start a Sequential model.",
        i = "Compose it with an empty model, {.code keras_model_sequential() |> layer_lstm(4, {arg} = ...)}, or give the model its input: {.code keras_model_sequential(input_batch_shape = ...)}."),
      call = call, class = "fastlstm_bad_argument"
    )
  }
  args[c("batch_input_shape", "batch_size", "input_shape")] <- NULL
  list(args = args, input = py_keras()$Input(batch_shape = batch_shape))
}

compose_layer <- function(object, layer, ..., call = rlang::caller_env(),
                          context = NULL) {
  if (is_sequential(object)) {
    with_py_errors(object$add(layer), call, context)
    return(invisible(object))
  }
  # py_call() on the Python object itself: calling `layer` would go through
  # the R wrapper again. Its result converts as a call from R would.
  with_py_errors(reticulate::py_to_r(reticulate::py_call(layer, object, ...)),
                 call, context)
}

check_shape_arg <- function(shape, arg = "shape", call = rlang::caller_env(),
                            known = FALSE) {
  dims <- if (inherits(shape, "keras_shape")) {
    as.integer(shape)
  } else if (is.numeric(shape) || (is.logical(shape) && all(is.na(shape)))) {
    shape
  } else {
    "bad"
  }
  ok <- is.numeric(dims) && length(dims) >= 1 &&
    all(is.na(dims) | dims == -1 | (dims >= 0 & dims == trunc(dims))) &&
    !(known && any(is.na(dims) | dims == -1))
  if (!ok) {
    abort(
      if (known) {
        "{.arg {arg}} must be a vector of non-negative whole numbers (or a {.fn shape}), not {describe_value(shape)}."
      } else {
        "{.arg {arg}} must be a vector of whole numbers (or a {.fn shape}), with {.code NA} for an unknown size, not {describe_value(shape)}."
      },
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(shape)
}

is_model <- function(x) inherits(x, "keras.src.models.model.Model")

check_model <- function(object, arg = "object", call = rlang::caller_env()) {
  if (!is_model(object)) {
    abort(
      "{.arg {arg}} must be a Keras model, not {describe_value(object)}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(object)
}

`%||%` <- function(x, y) if (is.null(x)) y else x
