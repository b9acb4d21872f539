# keras3 lookalike: keras3 cannot always be installed, so this stands in where it is absent (R/keras3.R).

#' Multiple assignment
#'
#' `%<-%` is zeallot's multiple assignment operator: `c(a, b) %<-% value`
#' assigns the elements of `value` to `a` and `b`. fastlstm re-exports it and
#' teaches it to unpack what Keras returns: a Python list or tuple (the
#' `list(output, h, c)` of [layer_lstm()] with `return_state = TRUE`) and a
#' [shape()]. When the number of names does not match the number of values,
#' the error says how many of each there are.
#'
#' @param x Names to assign to, as in `c(a, b, c)`; see [zeallot::%<-%].
#' @param value The value to unpack.
#' @returns `value`, invisibly.
#' @name multi-assign
#' @export
#' @examplesIf fastlstm_available()
#' input <- random_uniform(c(32, 10, 8))
#' lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
#' c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
#' shape(final_carry_state)
#' c(batch, timesteps, units) %<-% shape(whole_seq_output)
#' timesteps
`%<-%` <- function(x, value) {
  lhs <- substitute(x)
  env <- parent.frame()
  assign_call <- as.call(list(zeallot::`%<-%`, lhs, value))
  tryCatch(
    eval(assign_call, env),
    error = function(e) {
      if (!grepl("incorrect number of values", conditionMessage(e), fixed = TRUE)) {
        stop(e)
      }
      abort_count_mismatch(lhs, value, e)
    }
  )
  invisible(value)
}

abort_count_mismatch <- function(lhs, value, parent) {
  names_text <- paste(deparse(lhs, width.cutoff = 200L), collapse = " ")
  n_names <- if (is.call(lhs) && identical(lhs[[1]], as.name("c"))) {
    length(lhs) - 1L
  } else {
    1L
  }
  n_values <- tryCatch(length(value), error = function(e) NA_integer_)
  abort(
    c("{.code %<-%} has {n_names} name{?s} on the left, {.code {names_text}}, but the value on the right has {n_values} element{?s}.",
      i = "Give one name per element, or collect the rest with {.code ...rest}."),
    call = NULL, class = "fastlstm_bad_argument"
  )
}

destructure.python.builtin.list <- function(x) {
  reticulate::iterate(x, simplify = FALSE)
}

destructure.python.builtin.tuple <- destructure.python.builtin.list
