#' Tensor shapes
#'
#' `shape()` gives the shape of a tensor, an array or a Keras input, or makes
#' a shape from its dimensions. A shape prints as `shape(32, 4)`, with `NA`
#' for a dimension that is not known yet (the batch size of a
#' [keras_input()]). It is an integer vector underneath, so it indexes,
#' compares and does arithmetic like one, and [`%<-%`] destructures it:
#' `c(batch, timesteps, features) %<-% shape(x)`. Passed to Python it becomes
#' a tuple, with `None` for `NA`.
#'
#' @param ... A tensor, an R array, a Keras input or a shape; or the
#'   dimensions, as numbers (`NA` or `NULL` for unknown ones), numeric
#'   vectors or shapes, which are concatenated.
#' @param x A `keras_shape`.
#' @return A `keras_shape` object.
#' @export
#' @examples
#' shape(32, 4)
#' shape(NA, 10, 8)
#' shape(array(0, c(2, 3)))
#' s <- shape(32, 10, 4)
#' s[[2]]
#' s == c(32, 10, 4)
#' c(batch, timesteps, units) %<-% s
#' timesteps
shape <- function(...) {
  args <- list(...)
  call <- rlang::current_env()
  if (length(args) == 1) {
    x <- args[[1]]
    if (inherits(x, "keras_shape")) return(x)
    if (inherits(x, "python.builtin.object")) {
      require_python()
      dims <- with_py_errors(bridge$shape_of(x))
      return(new_shape(vapply(dims, function(d) d %||% NA_integer_, 1L)))
    }
    if (is.array(x)) return(new_shape(dim(x)))
  }
  dims <- lapply(args, function(d) {
    if (is.null(d)) return(NA_integer_)
    if (!is.numeric(d) && !all(is.na(d))) {
      cli::cli_abort(
        "Each dimension of a shape must be a number or {.code NA}, not {.obj_type_friendly {d}}.",
        call = call
      )
    }
    as.integer(d)
  })
  new_shape(unlist(dims))
}

new_shape <- function(dims) {
  structure(as.integer(dims), class = "keras_shape")
}

#' @rdname shape
#' @export
format.keras_shape <- function(x, ...) {
  dims <- ifelse(is.na(x), "NA", format(unclass(x), trim = TRUE))
  paste0("shape(", paste(dims, collapse = ", "), ")")
}

#' @rdname shape
#' @export
print.keras_shape <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

#' @rdname shape
#' @export
`[.keras_shape` <- function(x, ...) {
  new_shape(unclass(x)[...])
}

#' @rdname shape
#' @export
as.integer.keras_shape <- function(x, ...) as.integer(unclass(x))

#' @rdname shape
#' @export
as.list.keras_shape <- function(x, ...) as.list(unclass(x))

#' @rdname shape
#' @param e1,e2 Shapes or numbers.
#' @export
Ops.keras_shape <- function(e1, e2) {
  e1 <- unclass(e1)
  if (missing(e2)) return(get(.Generic)(e1))
  get(.Generic)(e1, unclass(e2))
}

#' @rdname shape
#' @param convert Whether the tuple converts its results back to R.
#' @exportS3Method reticulate::r_to_py
r_to_py.keras_shape <- function(x, convert = FALSE) {
  as_py_shape(x, convert = convert)
}

# A Python tuple of ints and None (for NA), from a shape or numeric vector.
as_py_shape <- function(x, convert = FALSE) {
  dims <- lapply(as.integer(unclass(x)), function(d) if (is.na(d)) NULL else d)
  reticulate::tuple(dims, convert = convert)
}
