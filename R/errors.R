# Every error fastlstm raises goes through abort(): one R condition of class
# "fastlstm_error", raised from the exported function the user called.

abort <- function(message, call = rlang::caller_env(), class = NULL, ...,
                  .envir = parent.frame()) {
  cli::cli_abort(message, call = error_call(call),
                 class = c(class, "fastlstm_error"), ..., .envir = .envir)
}

# The call an error is reported from, as the bare function name. rlang would
# otherwise inspect the whole call, and a call built by do.call() holds its
# values inline: a symbolic tensor there fails as soon as rlang asks it
# anything ("A symbolic KerasTensor cannot be used as a boolean"), and the
# real error is lost. The name is all rlang prints anyway.
error_call <- function(call) {
  if (is.environment(call)) {
    call <- tryCatch(sys_call_of(call), error = function(e) NULL)
  }
  if (!is.call(call)) return(NULL)
  fn <- call[[1]]
  if (is.symbol(fn) || is_namespaced_name(fn)) return(as.call(list(fn)))
  if (is.function(fn)) {
    name <- exported_name_of(fn)
    if (!is.null(name)) return(as.call(list(as.name(name))))
  }
  NULL
}

# sys.call() of the frame whose environment is `env`, without evaluating or
# formatting anything in it.
sys_call_of <- function(env) {
  frames <- sys.frames()
  for (i in rev(seq_along(frames))) {
    if (identical(frames[[i]], env)) return(sys.call(i))
  }
  NULL
}

is_namespaced_name <- function(x) {
  is.call(x) && length(x) == 3L &&
    (identical(x[[1]], as.name("::")) || identical(x[[1]], as.name(":::"))) &&
    is.symbol(x[[3]])
}

exported_name_of <- function(fn) {
  ns <- asNamespace("fastlstm")
  for (name in getNamespaceExports(ns)) {
    value <- get0(name, envir = ns, inherits = FALSE)
    if (is.function(value) && identical(value, fn)) return(name)
  }
  NULL
}

# Runs `expr`, turning a Python exception into one fastlstm error: the
# Python message in R terms, without the traceback hint, ANSI escapes or
# Keras's "Arguments received" block, raised from the R function the user
# called. `context` adds R argument names for messages that name Python ones.
with_py_errors <- function(expr, call = rlang::caller_env(), context = NULL) {
  tryCatch(expr, python.builtin.Exception = function(e) {
    abort_python(e, call = call, context = context)
  })
}

abort_python <- function(e, call, context = NULL) {
  text <- r_terms(python_error_text(e), context)
  type <- python_error_type(e)
  # rlang, not cli: the text is Python's, with braces and line breaks of its
  # own that cli would interpret or rewrap.
  rlang::abort(text, call = error_call(call),
               class = c(if (!is.null(type)) paste0("fastlstm_", type),
                         "fastlstm_python_error", "fastlstm_error"))
}

python_error_type <- function(e) {
  type <- grep("^python\\.builtin\\.", class(e), value = TRUE)[1]
  if (is.na(type)) NULL else sub("^python\\.builtin\\.", "", type)
}

# The message of a Python exception (as reticulate signals it), cleaned.
python_error_text <- function(e) {
  text <- conditionMessage(e)
  text <- gsub("\033\\[[0-9;]*[A-Za-z]", "", text)
  text <- sub("\n?Run `reticulate::py_last_error\\(\\)` for details\\.?", "",
              text)
  text <- sub("\nDetailed traceback:.*$", "", text)
  # Keras wraps errors raised inside a layer's call():
  #   Exception encountered when calling LSTM.call().
  #   <the error>
  #   Arguments received by LSTM.call(): ...
  text <- sub("\n+Arguments received by [^\n]*:.*$", "", text)
  text <- sub("Exception encountered when calling [^\n]*\n+", "", text)
  text <- sub("^[A-Za-z_.]*(Error|Exception|Warning): *", "", text)
  # TensorFlow's errors from inside a running graph: the op's message
  # after the Python stack of where the op was defined (which reticulate
  # may shorten), before the node's name.
  text <- sub("(?s)^Graph execution error:.*\n\n(?=\\S)", "", text,
              perl = TRUE)
  text <- sub("(?s)\n\t \\[\\[\\{\\{node .*$", "", text, perl = TRUE)
  trimws(text)
}

# Python spellings in a message, in R's: `x=True` -> `x = TRUE`,
# `x='auto'` -> `x = "auto"`, None -> NULL, `keras.Input` -> keras_input().
r_terms <- function(text, context = NULL) {
  text <- unknown_arguments(text)
  text <- gsub("\\b([A-Za-z_][A-Za-z0-9_]*)=True\\b", "\\1 = TRUE", text,
               perl = TRUE)
  text <- gsub("\\b([A-Za-z_][A-Za-z0-9_]*)=False\\b", "\\1 = FALSE", text,
               perl = TRUE)
  text <- gsub("\\b([A-Za-z_][A-Za-z0-9_]*)=None\\b", "\\1 = NULL", text,
               perl = TRUE)
  text <- gsub("\\b([A-Za-z_][A-Za-z0-9_]*)='([^']*)'", '\\1 = "\\2"', text,
               perl = TRUE)
  text <- gsub("\\bgot True\\b", "got TRUE", text, perl = TRUE)
  text <- gsub("\\bgot False\\b", "got FALSE", text, perl = TRUE)
  text <- gsub("\\bgot '([^']*)'", 'got "\\1"', text, perl = TRUE)
  text <- gsub("\\bTrue or False\\b", "TRUE or FALSE", text, perl = TRUE)
  text <- gsub("'(auto|tanh|sigmoid|relu)'", '"\\1"', text, perl = TRUE)
  # shapes: (None, 10, 4) -> (NA, 10, 4)
  text <- gsub("\\(None(?=,)", "(NA", text, perl = TRUE)
  text <- gsub(", None(?=[,)])", ", NA", text, perl = TRUE)
  text <- gsub("\\bNone\\b", "NULL", text, perl = TRUE)
  text <- gsub("pass `batch_size` to `keras.Input` \\(or `batch_shape`\\)",
               "pass `batch_size` to `keras_input()` (or `input_batch_size` to `keras_model_sequential()`)",
               text)
  text <- gsub("`keras.Input`", "`keras_input()`", text, fixed = TRUE)
  for (python_name in names(context)) {
    text <- gsub(paste0("`", python_name, "`"),
                 paste0("`", context[[python_name]], "`"), text, fixed = TRUE)
  }
  text
}

# Keras's "Unrecognized keyword arguments passed to LSTM: {'retrun_sequences':
# True}" (a misspelled argument, passed on through `...`), in R terms.
unknown_arguments <- function(text) {
  pattern <- "Unrecognized keyword arguments passed to ([A-Za-z_.]+): \\{(.*)\\}"
  m <- regmatches(text, regexec(pattern, text))[[1]]
  if (!length(m)) return(text)
  names <- regmatches(m[[3]], gregexpr("'[A-Za-z_][A-Za-z0-9_.]*':", m[[3]]))[[1]]
  names <- gsub("^'|':$", "", names)
  sprintf(
    "Unknown argument%s %s: neither this function nor Keras's %s takes %s. Check the spelling.",
    if (length(names) > 1) "s" else "", paste0("`", names, "`", collapse = ", "),
    m[[2]], if (length(names) > 1) "them" else "it"
  )
}
