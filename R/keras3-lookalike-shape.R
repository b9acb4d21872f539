# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' Tensor shapes
#'
#' `shape()` gives the shape of a tensor, an array or a Keras input, or makes
#' a shape from its dimensions, exactly as keras3's `shape()` does (the same
#' representation, so the two packages' shapes are interchangeable): a list
#' of class `keras_shape` with an integer per known dimension and `NULL` per
#' unknown one (the batch size of a [keras_input()]). It prints as
#' `shape(32, 4)`, with `NA` for an unknown dimension.
#'
#' `==` compares whole shapes and gives one `TRUE` or `FALSE`
#' (`shape(output) == c(32, 4)`); `[` keeps the class; `as.integer()` gives an
#' integer vector with `NA` for unknown dimensions; `prod()` and the other
#' `Summary` functions work on that vector; [`%<-%`] destructures a shape
#' (`c(batch, timesteps, features) %<-% shape(x)`). Passed to Python a shape
#' becomes a tuple, with `None` for an unknown dimension.
#'
#' @param ... A tensor, an R array, a Keras input or a shape; or the
#'   dimensions, as numbers (`NA`, `NULL` or `-1` for unknown ones), numeric
#'   vectors or shapes, which are concatenated. A scalar integer tensor is an
#'   axis size (wrap it in `I()` for its own shape).
#' @param x,y Shapes (for `==` and `!=`, anything `shape()` accepts).
#' @param prefix Whether `format()` writes the `shape` prefix.
#' @param na.rm Passed on to the `Summary` functions; unknown dimensions are
#'   `NA`.
#' @return A `keras_shape`.
#' @export
#' @examples
#' shape(32, 4)
#' shape(NA, 10, 8)
#' shape(array(0, c(2, 3)))
#' s <- shape(32, 10, 4)
#' s[[2]]
#' s == c(32, 10, 4)
#' prod(s)
#' c(batch, timesteps, units) %<-% s
#' timesteps
shape <- function(...) {
  call <- environment()
  fix <- function(x) {
    if (inherits(x, "python.builtin.object")) return(python_shape(x))
    if (is.array(x)) return(dim(x))
    if (is.null(x) || identical(x, NA_integer_) || identical(x, NA_real_) ||
        identical(x, NA) ||
        (is.numeric(x) && length(x) == 1 && isTRUE(x == -1))) {
      return(NA_integer_)
    }
    if (!is.atomic(x) || length(x) > 1) return(lapply(x, fix))
    if (!is.numeric(x) && !is.logical(x)) {
      abort(
        "Each dimension of a shape must be a whole number, {.code NA} or {.code NULL}, not {describe_value(x)}.",
        call = call, class = "fastlstm_bad_argument"
      )
    }
    as.integer(x)
  }
  dims <- unlist(lapply(list(...), fix), use.names = FALSE)
  dims <- lapply(dims, function(d) if (identical(d, NA_integer_)) NULL else d)
  class(dims) <- "keras_shape"
  dims
}

python_shape <- function(x) {
  require_python()
  if (inherits(x, "tensorflow.python.framework.tensor_shape.TensorShape")) {
    return(vapply(reticulate::py_to_r(x$as_list()),
                  function(d) d %||% NA_integer_, 1L))
  }
  py_shape <- with_py_errors(keras_ops_raw()$shape(x))
  dims <- reticulate::py_to_r(reticulate::import_builtins()$tuple(py_shape))
  if (length(dims) == 0 && !inherits(x, "AsIs") &&
      isTRUE(tryCatch(py_keras()$backend$is_int_dtype(x$dtype),
                      error = function(e) FALSE))) {
    return(x) # a scalar integer tensor is an axis size
  }
  lapply(dims, function(d) if (is.null(d)) NA_integer_ else as.integer(d))
}

# keras.ops without conversion of results to R.
keras_ops_raw <- function() {
  reticulate::import("keras", convert = FALSE)$ops
}

#' @rdname shape
format.keras_shape <- function(x, ..., prefix = TRUE) {
  dims <- vapply(x, function(d) format(d %||% "NA"), "")
  prefix <- if (isTRUE(prefix)) "shape" else if (is.character(prefix)) prefix else ""
  paste0(prefix, "(", paste0(dims, collapse = ", "), ")")
}

#' @rdname shape
print.keras_shape <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

#' @rdname shape
`[.keras_shape` <- function(x, ...) {
  out <- unclass(x)[...]
  class(out) <- class(x)
  out
}

#' @rdname shape
as.integer.keras_shape <- function(x, ...) {
  vapply(x, function(d) d %||% NA_integer_, 1L)
}

#' @rdname shape
as.list.keras_shape <- function(x, ...) unclass(x)

#' @rdname shape
Summary.keras_shape <- function(..., na.rm = FALSE) {
  x <- as.integer.keras_shape(shape(...))
  do.call(.Generic, list(x, na.rm = na.rm))
}

#' @rdname shape
`==.keras_shape` <- function(x, y) {
  if (!inherits(x, "keras_shape")) x <- shape(x)
  if (!inherits(y, "keras_shape")) y <- shape(y)
  identical(x, y)
}

#' @rdname shape
`!=.keras_shape` <- function(x, y) {
  !`==.keras_shape`(x, y)
}

destructure.keras_shape <- function(x) unclass(x)

#' @param convert Whether the tuple converts its results back to R.
#' @rdname shape
r_to_py.keras_shape <- function(x, convert = FALSE) {
  reticulate::tuple(unclass(x), convert = convert)
}

# A Python tuple of ints and None, from anything shape() accepts.
as_py_shape <- function(x) {
  if (is.null(x) || inherits(x, "python.builtin.object")) return(x)
  r_to_py.keras_shape(fastlstm_shape(x))
}

# fastlstm's shape(), for its own code also where the exported `shape` is
# keras3's.
fastlstm_shape <- shape
