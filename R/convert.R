# R arrays go to Python as bytes through the bridge module, because
# reticulate's own NumPy conversion needs the NumPy 1.x ABI in older releases.

is_r_array_like <- function(x) {
  (is.numeric(x) || is.logical(x)) && !is.object(x)
}

as_py_array <- function(x, dtype = NULL) {
  dtype <- dtype %||%
    if (is.logical(x)) "bool" else if (is.integer(x)) "int32" else "float32"
  dims <- dim(x) %||% length(x)
  buf <- writeBin(as.double(x), raw())
  bridge$array_from_r(buf, as.list(as.integer(dims)), dtype)
}

# Leaves Python objects alone, converts R arrays; lists are converted
# element by element (several inputs or targets).
as_py_value <- function(x, dtype = NULL) {
  if (is.null(x) || inherits(x, "python.builtin.object")) return(x)
  if (is_r_array_like(x)) return(as_py_array(x, dtype))
  if (is.list(x) && !is.object(x)) return(lapply(x, as_py_value, dtype = dtype))
  x
}

py_to_r_array <- function(x) {
  parts <- bridge$array_to_r(x)
  dims <- as.integer(unlist(parts[[2]]))
  n <- if (length(dims)) prod(dims) else 1L
  values <- readBin(parts[[1]], "double", n = n)
  values <- switch(parts[[3]],
    logical = as.logical(values),
    integer = as.integer(values),
    values
  )
  if (length(dims) > 1) dim(values) <- dims
  values
}

#' Convert between R arrays and tensors
#'
#' `as_tensor()` turns an R array (numeric, integer or logical) into a tensor
#' of the current Keras backend, so a layer can be called on it directly
#' (`lstm(as_tensor(x))`). `as.array()` turns a tensor (or a NumPy array)
#' back into an R array.
#'
#' @param x An R array or vector (for `as_tensor()`), a tensor (for
#'   `as.array()`).
#' @param dtype The tensor's data type; by default `"float32"` for doubles,
#'   `"int32"` for integers and `"bool"` for logicals.
#' @param ... Unused.
#' @return `as_tensor()`: a backend tensor. `as.array()`: an R array, or a
#'   vector for a tensor of rank 0 or 1.
#' @export
#' @examplesIf fastlstm_available()
#' x <- as_tensor(array(1:24, c(2, 3, 4)), dtype = "float32")
#' shape(x)
#' as.array(x)[2, 3, 4]
as_tensor <- function(x, dtype = NULL) {
  require_python()
  if (!is_r_array_like(x) && !inherits(x, "python.builtin.object")) {
    cli::cli_abort(
      "{.arg x} must be a numeric or logical array or a tensor, not {.obj_type_friendly {x}}."
    )
  }
  with_py_errors(keras$ops$convert_to_tensor(as_py_value(x, dtype), dtype = dtype))
}

# Tensors of the three backends convert through the bridge (reticulate's
# own methods need the NumPy 1.x ABI).
as_array_tensor <- function(x, ...) {
  with_py_errors(py_to_r_array(x))
}

#' @rdname as_tensor
#' @export
`as.array.tensorflow.python.framework.tensor.Tensor` <- as_array_tensor

#' @rdname as_tensor
#' @export
`as.array.jax.jaxlib._jax.Array` <- as_array_tensor

#' @rdname as_tensor
#' @export
`as.array.torch.Tensor` <- as_array_tensor
