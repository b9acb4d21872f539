# fastlstm beside keras3: with keras3 installed, loading fastlstm overwrites
# none of keras3's S3 methods and fastlstm's keras3-named functions are
# keras3's, in either attach order. keras3 itself cannot be installed here,
# so a stand-in package named keras3 (helper-keras3-standin.R) is built into
# a temporary library, and each check runs in a fresh R process with that
# library first on the path.

standin_lib <- local({
  lib <- NULL
  function() {
    if (is.null(lib)) {
      lib <<- tempfile("keras3-lib-")
      install_keras3_standin(lib)
    }
    lib
  }
})

# What a session sees of keras3's methods and functions once both packages
# are loaded in the given way: for each stand-in method, the namespace the
# registered method comes from; whether each of fastlstm's keras3-named
# exports is the stand-in's object; what the attached `shape` is; and every
# registered S3 method whose code is fastlstm's.
inspect_session <- function(load) {
  methods <- keras3_standin_methods
  code <- c(
    load,
    sprintf("methods <- %s", paste(deparse(methods), collapse = "\n")),
    "owner <- function(f) environmentName(environment(f))",
    "registered <- vapply(seq_len(nrow(methods)), function(i) {",
    "  f <- getS3method(methods[i, 'generic'], methods[i, 'class'], optional = TRUE,",
    "                   envir = asNamespace(methods[i, 'package']))",
    "  if (is.null(f)) NA_character_ else owner(f)",
    "}, '')",
    "names(registered) <- paste0(methods[, 'generic'], '.', methods[, 'class'])",
    "shared <- intersect(getNamespaceExports('fastlstm'), getNamespaceExports('keras3'))",
    "same <- vapply(shared, function(n) identical(getExportedValue('fastlstm', n),",
    "                                             getExportedValue('keras3', n)), TRUE)",
    # Every S3 methods table of every loaded namespace: methods from fastlstm.
    "fastlstm_methods <- unlist(lapply(loadedNamespaces(), function(pkg) {",
    "  table <- asNamespace(pkg)[['.__S3MethodsTable__.']]",
    "  if (is.null(table)) return(character())",
    "  Filter(function(n) owner(get(n, envir = table)) == 'fastlstm', ls(table, all.names = TRUE))",
    "}))",
    "attached_shape <- if ('shape' %in% ls(search()[2])) owner(get('shape', pos = 2))",
    "saveRDS(list(registered = registered, same = same,",
    "             fastlstm_methods = fastlstm_methods,",
    "             attached_shape = attached_shape,",
    "             shape_result = fastlstm::shape(1, 2),",
    "             dense_result = fastlstm::layer_dense(units = 1)), result_file)"
  )
  run_with_library(standin_lib(), code)
}

keras3_named_functions <- function(same) {
  # fastlstm's own layer builders keep their code; everything else is keras3's.
  same[setdiff(names(same), c("layer_lstm", "rnn_cell_lstm", "layer_rnn"))]
}

expect_keras3_untouched <- function(found) {
  expect_identical(unname(found$registered),
                   rep("keras3", nrow(keras3_standin_methods)),
                   label = paste(names(found$registered), "registered by",
                                 found$registered, collapse = "; "))
  # fastlstm's only methods are for its own classes.
  own <- c("format.fastlstm.planner.Plan", "print.fastlstm.planner.Plan",
           "$.fastlstm_unavailable_module", "print.fastlstm_unavailable_module")
  expect_true(all(found$fastlstm_methods %in% own),
              label = paste("fastlstm registered:", paste(found$fastlstm_methods, collapse = ", ")))
  expect_false(any(grepl("keras_shape|keras_training_history|keras\\.src|python\\.builtin",
                         found$fastlstm_methods)))
  same <- keras3_named_functions(found$same)
  expect_gte(length(same), 15)
  expect_true(all(same), label = paste("not keras3's:", paste(names(same)[!same], collapse = ", ")))
  expect_identical(attr(found$shape_result, "what"), "shape")
  expect_identical(attr(found$dense_result, "what"), "layer_dense")
}

test_that("with keras3 attached first, loading fastlstm leaves keras3's methods and functions in place", {
  found <- inspect_session(c("library(keras3)", "library(fastlstm)"))
  expect_keras3_untouched(found)
  # fastlstm, attached last, shows keras3's own shape().
  expect_identical(found$attached_shape, "keras3")
})

test_that("with fastlstm attached first, keras3's methods and functions are keras3's", {
  found <- inspect_session(c("library(fastlstm)", "library(keras3)"))
  expect_keras3_untouched(found)
  expect_identical(found$attached_shape, "keras3")
})

test_that("loading only fastlstm's namespace beside keras3 registers none of its lookalike methods", {
  found <- inspect_session(c("library(keras3)", "invisible(fastlstm::fastlstm_available)"))
  expect_keras3_untouched(found)
})

test_that("without keras3, fastlstm registers its own lookalike methods and functions", {
  # The same inspection, on the ordinary library path: the lookalikes stand in.
  found <- run_with_library(tempfile("empty-lib-"), c(
    "stopifnot(!requireNamespace('keras3', quietly = TRUE))",
    "library(fastlstm)",
    "owner <- function(f) environmentName(environment(f))",
    "saveRDS(list(",
    "  print_shape = owner(getS3method('print', 'keras_shape')),",
    "  fit_model = owner(getS3method('fit', 'keras.src.models.model.Model', envir = asNamespace('generics'))),",
    "  wrapper = owner(getS3method('py_to_r_wrapper', 'keras.src.layers.layer.Layer', envir = asNamespace('reticulate'))),",
    "  plot_history = owner(getS3method('plot', 'keras_training_history')),",
    "  shape = format(shape(32, NA, 4))), result_file)"
  ))
  expect_identical(found$print_shape, "fastlstm")
  expect_identical(found$fit_model, "fastlstm")
  expect_identical(found$wrapper, "fastlstm")
  expect_identical(found$plot_history, "fastlstm")
  expect_identical(found$shape, "shape(32, NA, 4)")
})

test_that("with keras3 installed, layer_lstm() still builds fastlstm's layer and keras3's wrapper calls it", {
  skip_if_no_fastlstm()
  found <- run_with_library(standin_lib(), c(
    "library(keras3)", "library(fastlstm)",
    "lstm <- layer_lstm(units = 3, return_sequences = TRUE)",
    "x <- reticulate::np_array(array(runif(2 * 5 * 4), c(2, 5, 4)), dtype = 'float32')",
    "out <- lstm(x)",
    "rnn <- layer_rnn(cell = rnn_cell_lstm(2))",
    "saveRDS(list(class = class(lstm)[1], standin = isTRUE(attr(lstm, 'keras3_standin')),",
    "             dims = unlist(reticulate::import('keras')$ops$shape(out)),",
    "             rnn = class(rnn)[1]), result_file)"
  ))
  expect_identical(found$class, "fastlstm.layer.LSTM")
  expect_true(found$standin)
  expect_identical(as.integer(found$dims), c(2L, 5L, 3L))
  expect_identical(found$rnn, "fastlstm.layer.LSTM")
})

test_that("a Python without fastlstm gives one error naming that Python and the call that installs fastlstm there", {
  skip_if_no_fastlstm()
  # A virtual environment that sees this one's packages but not fastlstm
  # (an editable install is found only through this environment's .pth).
  base <- reticulate::py_config()$python
  site <- reticulate::py_eval("__import__('sysconfig').get_paths()['purelib']")
  base_python <- reticulate::py_eval("__import__('sys')._base_executable")
  env <- file.path(tempfile("no-fastlstm-"), "env")
  dir.create(dirname(env))
  on.exit(unlink(dirname(env), recursive = TRUE), add = TRUE)
  status <- system2(base_python, c("-m", "venv", "--without-pip", shQuote(env)))
  expect_identical(status, 0L)
  env_site <- system2(file.path(env, "bin", "python"),
                      c("-c", shQuote("import sysconfig; print(sysconfig.get_paths()['purelib'])")),
                      stdout = TRUE)
  writeLines(site, file.path(env_site, "_dev_site.pth"))
  python <- file.path(env, "bin", "python")
  # Python started by another package before fastlstm's namespace loads
  # (as keras3 does), then a fastlstm function.
  found <- run_with_library(tempfile("empty-lib-"), c(
    "reticulate::py_config()",
    "err <- tryCatch(fastlstm::layer_lstm(units = 2), error = function(e) e)",
    "saveRDS(list(class = class(err), message = conditionMessage(err),",
    "             call = deparse(conditionCall(err))), result_file)"
  ), env = c(paste0("RETICULATE_PYTHON=", python), "PYTHONPATH="))
  message <- gsub("\\s+", " ", found$message)
  expect_true("fastlstm_no_python" %in% found$class)
  expect_match(message, "Importing fastlstm failed: No module named 'fastlstm'", fixed = TRUE)
  expect_match(message, paste0("The Python in use is '", python, "'"), fixed = TRUE)
  expect_match(message, sprintf('fastlstm::install_fastlstm(envname = "%s")', env), fixed = TRUE)
  expect_no_match(message, "onLoad", fixed = TRUE)
  expect_identical(found$call, "fastlstm::layer_lstm()")
})
