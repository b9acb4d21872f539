# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

is_r_array_like <- function(x) {
  (is.numeric(x) || is.logical(x)) && !is.object(x)
}

#' Convert between R arrays and tensors
#'
#' `op_convert_to_tensor()` turns an R array (numeric, integer or logical)
#' into a tensor of the current Keras backend, as keras3's function of that
#' name does. `as.array()` turns a tensor or a Keras variable back into an R
#' array. Layers, [fit()] and [predict()] take R arrays directly, so neither
#' is needed to call them.
#'
#' @param x An R array or vector (for `op_convert_to_tensor()`), a tensor or
#'   variable (for `as.array()`).
#' @param dtype The tensor's data type, e.g. `"float32"`; by default Keras
#'   chooses (`"float32"` for doubles, `"int32"` for integers, `"bool"` for
#'   logicals). A double array converted to an integer type is truncated
#'   first.
#' @param sparse Whether to keep a sparse tensor sparse (`NULL`: Keras's
#'   default).
#' @param ... Unused.
#' @return `op_convert_to_tensor()`: a backend tensor. `as.array()`: an R
#'   array.
#' @export
#' @examplesIf fastlstm_available()
#' x <- op_convert_to_tensor(array(1:24, c(2, 3, 4)), dtype = "float32")
#' shape(x)
#' as.array(x)[2, 3, 4]
op_convert_to_tensor <- function(x, dtype = NULL, sparse = NULL) {
  if (!is_r_array_like(x) && !inherits(x, "python.builtin.object")) {
    abort(
      "{.arg x} must be a numeric or logical array or a tensor, not {describe_value(x)}.",
      class = "fastlstm_bad_argument"
    )
  }
  require_python()
  if (is.character(dtype) && length(dtype) == 1 && is.double(x) &&
      grepl("int", dtype, fixed = TRUE)) {
    storage.mode(x) <- "integer"
  }
  if (is.atomic(x) && length(x) > 1L) x <- as.array(x)
  with_py_errors(py_keras()$ops$convert_to_tensor(x, dtype = dtype, sparse = sparse))
}

as_array_tensor <- function(x, ...) {
  require_python()
  as.array(with_py_errors(py_keras()$ops$convert_to_numpy(x)))
}

#' @rdname op_convert_to_tensor
`as.array.tensorflow.python.framework.tensor.Tensor` <- as_array_tensor

#' @rdname op_convert_to_tensor
`as.array.jax.jaxlib._jax.Array` <- as_array_tensor

#' @rdname op_convert_to_tensor
`as.array.torch.Tensor` <- as_array_tensor

#' @rdname op_convert_to_tensor
`as.array.keras.src.backend.common.variables.Variable` <- as_array_tensor

#' Draw random samples from a uniform distribution.
#'
#' The values lie in `[minval, maxval)`.
#'
#' @param shape The shape of the output tensor: a numeric vector or a
#'   [shape()].
#' @param minval,maxval Lower and upper bound of the range of values.
#' @param dtype The data type of the tensor; `NULL` means Keras's float
#'   type (`"float32"`).
#' @param seed An integer seed, or `NULL` for a random one.
#' @returns A tensor of the current backend.
#' @export
#' @examplesIf fastlstm_available()
#' x <- random_uniform(c(32, 10, 8), seed = 1)
#' shape(x)
random_uniform <- function(shape, minval = 0, maxval = 1, dtype = NULL,
                           seed = NULL) {
  check_shape_arg(shape, known = TRUE)
  require_python()
  with_py_errors(py_keras()$random$uniform(
    shape = as_py_shape(shape), minval = minval, maxval = maxval,
    dtype = dtype, seed = as_integer_or_null(seed)
  ))
}
