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
  with_py_errors(keras$random$uniform(
    shape = as_py_shape(shape), minval = minval, maxval = maxval,
    dtype = dtype, seed = as_integer_or_null(seed)
  ))
}
