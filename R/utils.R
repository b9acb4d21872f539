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
  for (name in intersect(names(modifiers), names(args))) {
    args[name] <- list(modifiers[[name]](args[[name]]))
  }
  args
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
check_units <- function(units, missing_units, call = rlang::caller_env()) {
  if (missing_units) {
    abort(
      c("{.arg units} is missing, with no default.",
        i = "Give {.arg units}, a positive whole number: the dimensionality of the output space."),
      call = call, class = "fastlstm_bad_argument"
    )
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
    isTRUE(tryCatch(keras$ops$is_tensor(x), error = function(e) FALSE))
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
  layer <- with_py_errors(do.call(make(), args), call, context)
  if (is.null(object)) return(layer)
  compose_layer(object, layer, call = call, context = context)
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

# Every Keras layer and model, called from R, composes as in keras3
# (`layer(model)` adds it to a Sequential model) and turns Python errors
# into one R error raised from the call the user wrote.
#' @exportS3Method reticulate::py_to_r_wrapper keras.src.layers.layer.Layer
py_to_r_wrapper.keras.src.layers.layer.Layer <- function(x) {
  force(x)
  function(object, ...) {
    call <- environment()
    if (missing(object)) {
      return(with_py_errors(reticulate::py_to_r(reticulate::py_call(x, ...)),
                            call))
    }
    compose_layer(object, x, ..., call = call)
  }
}

`%||%` <- function(x, y) if (is.null(x)) y else x
