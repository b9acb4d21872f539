# Forward only the arguments the caller supplied (as keras3's capture_args
# does), so Keras's own defaults apply to the rest and get_config() shows
# what the user asked for. `modifiers` coerce values (units to integer).
capture_args <- function(modifiers = list(), ignore = "object") {
  env <- parent.frame()
  fn <- sys.function(-1)
  matched <- match.call(fn, sys.call(-1), expand.dots = FALSE,
                        envir = parent.frame(2))
  supplied <- setdiff(names(matched)[-1], c(ignore, "..."))
  args <- mget(supplied, envir = env)
  dots <- eval(quote(list(...)), env)
  if (length(dots) &&
      (is.null(names(dots)) || any(!nzchar(names(dots))))) {
    cli::cli_abort(
      "Arguments in {.arg ...} must be named: they are passed to Keras by name.",
      call = env
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
# when it is a short atomic vector, else its type.
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

check_units <- function(units, missing_units, call = rlang::caller_env()) {
  if (missing_units) {
    cli::cli_abort(
      c("{.arg units} is missing, with no default.",
        i = "Give {.arg units}, a positive whole number: the dimensionality of the output space."),
      call = call, class = "fastlstm_bad_argument"
    )
  }
  if (!is_whole_number(units) || units < 1) {
    value <- describe_value(units)
    cli::cli_abort(
      "{.arg units} must be a positive whole number, not {value}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(units)
}

check_fraction <- function(x, arg, call = rlang::caller_env()) {
  if (!(is.numeric(x) && length(x) == 1 && !is.na(x) && x >= 0 && x <= 1)) {
    value <- describe_value(x)
    cli::cli_abort(
      "{.arg {arg}} must be a number between 0 and 1, not {value}.",
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(x)
}

check_use_cudnn <- function(x, call = rlang::caller_env()) {
  if (!(identical(x, "auto") || isTRUE(x) || isFALSE(x))) {
    value <- describe_value(x)
    cli::cli_abort(
      '{.arg use_cudnn} must be "auto", TRUE or FALSE, not {value}.',
      call = call, class = "fastlstm_bad_argument"
    )
  }
  invisible(x)
}

# What `object` is, for composing a layer with it; an error for anything
# else, raised before any layer is built.
object_kind <- function(object, call = rlang::caller_env()) {
  if (is.null(object)) return("none")
  if (inherits(object, "python.builtin.object")) {
    require_python(call)
    if (bridge$is_sequential(object)) return("sequential")
    if (bridge$is_tensor_like(object)) return("tensor")
  } else if (is_r_array_like(object)) {
    return("array")
  }
  value <- describe_value(object)
  cli::cli_abort(
    c("{.arg object} must be NULL, a Sequential model, a tensor, an array or a {.fn keras_input}, not {value}.",
      i = "Leave {.arg object} out to get the layer itself."),
    call = call, class = "fastlstm_bad_argument"
  )
}

# Builds a layer from Python class `make()` and composes it with `object`:
# NULL gives the layer, a Sequential model gets the layer added (and is
# returned invisibly), a tensor or array is passed through the layer.
create_layer <- function(make, object, args, call = rlang::caller_env()) {
  kind <- object_kind(object, call)
  require_python(call)
  layer <- with_py_errors(do.call(make(), args), call)
  switch(kind,
    none = layer,
    sequential = {
      with_py_errors(object$add(layer), call)
      invisible(object)
    },
    tensor = with_py_errors(layer(object), call),
    array = with_py_errors(layer(as_py_array(object)), call)
  )
}
