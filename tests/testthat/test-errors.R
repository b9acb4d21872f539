test_that("units must be given as a positive whole number", {
  expect_error(layer_lstm(), "`units` is missing")
  # What R would change on the way to Python is checked in R ...
  expect_error(layer_lstm(units = 2.5), "`units` must be a positive whole number, not 2.5")
  expect_error(layer_lstm(units = "four"), "`units`.*not \"four\"")
  expect_error(layer_lstm(units = c(2, 3)), "`units`.*not c\\(2, 3\\)")
  expect_error(layer_lstm(units = NA), "`units`.*not NA")
  skip_if_no_fastlstm()
  # ... the range by Python's one rule, its error in R terms.
  expect_error(layer_lstm(units = -1), "`units`, expected a positive integer, got -1")
  expect_error(layer_lstm(units = 0), "`units`.*positive integer, got 0")
  expect_error(rnn_cell_lstm(units = -3), "`units`.*positive integer, got -3")
  expect_error(layer_dense(units = 0), "`units`.*positive integer.*0")
  err <- expect_error(layer_lstm(units = -1), class = "fastlstm_python_error")
  expect_equal(conditionCall(err)[[1]], as.name("layer_lstm"))
})

test_that("dropout and recurrent_dropout must lie in [0, 1]", {
  expect_error(layer_lstm(units = 4, recurrent_dropout = "a"), "`recurrent_dropout` must be a number between 0 and 1, not \"a\"")
  expect_error(layer_lstm(units = 4, dropout = c(0.1, 0.2)), "`dropout`.*not c\\(0.1, 0.2\\)")
  skip_if_no_fastlstm()
  expect_error(layer_lstm(units = 4, dropout = 1.5), "`dropout`, expected a float between 0 and 1, got 1.5")
  expect_error(layer_lstm(units = 4, dropout = -0.1), "`dropout`.*got -0.1")
  expect_error(layer_lstm(units = 4, recurrent_dropout = 2), "`recurrent_dropout`.*got 2")
  expect_error(rnn_cell_lstm(units = 4, dropout = 7), "`dropout`.*got 7")
})

test_that("use_cudnn must be \"auto\", TRUE or FALSE", {
  expect_error(layer_lstm(units = 4, use_cudnn = NA), "`use_cudnn` must be \"auto\", TRUE or FALSE, not NA")
  expect_error(layer_lstm(units = 4, use_cudnn = 1), "`use_cudnn`.*not 1")
  skip_if_no_fastlstm()
  expect_error(layer_lstm(units = 4, use_cudnn = "yes"),
               "`use_cudnn`, expected one of \"auto\", TRUE or FALSE, got \"yes\"")
})

test_that("an unsupported object is an error naming `object`", {
  expect_error(layer_lstm("text", 4), "`object` must be NULL, a Sequential model, a tensor, an array")
  expect_error(layer_lstm(list(1, 2), 4), "`object`.*list")
  expect_error(layer_lstm(data.frame(a = 1), 4), "`object`.*data.frame")
  skip_if_no_fastlstm()
  expect_error(layer_lstm(layer_dense(units = 2), 4), "`object`.*Python object of class <keras.src.layers.core.dense.Dense>")
})

test_that("errors are raised from the R function the user called", {
  err <- expect_error(layer_lstm(units = 2.5), class = "fastlstm_bad_argument")
  expect_equal(conditionCall(err)[[1]], as.name("layer_lstm"))
})

test_that("unnamed arguments in ... are an error", {
  expect_error(layer_lstm(NULL, 4, "tanh", "sigmoid", TRUE, "glorot_uniform",
                          "orthogonal", "zeros", TRUE, NULL, NULL, NULL, NULL,
                          NULL, NULL, NULL, 0, 0, NULL, FALSE, FALSE, FALSE,
                          FALSE, FALSE, "auto", 99),
               "Arguments in `...` must be named")
})

test_that("Python errors become one clean R error", {
  skip_if_no_fastlstm()
  err <- expect_error(layer_lstm(units = 4, activation = "no_such_activation"),
                      class = "fastlstm_python_error")
  expect_match(conditionMessage(err), "activation")
  expect_match(conditionMessage(err), "no_such_activation")
  expect_no_match(conditionMessage(err), "py_last_error")
  expect_equal(conditionCall(err)[[1]], as.name("layer_lstm"))
})

test_that("a bad input shape is an R error, and the session goes on", {
  skip_if_no_fastlstm()
  expect_error(random_uniform(c(2, 3)) |> layer_lstm(4), class = "fastlstm_python_error")
  expect_error(random_uniform(-1), "`shape` must be a vector of non-negative whole numbers")
  expect_error(random_uniform(c(NA, 2)), "`shape` must be a vector of non-negative whole numbers")
  expect_equal(shape(random_uniform(c(2, 3, 1)) |> layer_lstm(4)), shape(2, 4))
})

test_that("%<-% with the wrong number of names says how many of each", {
  expect_error(c(a, b) %<-% list(1, 2, 3),
               "`%<-%` has 2 names on the left, `c\\(a, b\\)`, but the value on the right has 3 elements")
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 2, return_state = TRUE)
  expect_error(c(out, h) %<-% lstm(random_uniform(c(1, 3, 2))),
               "2 names on the left.*3 elements")
  expect_error(c(a, b, c, d) %<-% shape(1, 2, 3), "4 names on the left.*3 elements")
})

test_that("functions that need a model or layer say so", {
  expect_error(lstm_plan(42, array(0, c(1, 2, 3))), "`layer` must be a layer made by `layer_lstm\\(\\)`")
  expect_error(save_model("model", tempfile()), "`model` must be a Keras model")
  expect_error(reset_state("x"), "`object` must be a Keras layer or model")
  skip_if_no_fastlstm()
  expect_error(lstm_plan(layer_dense(units = 1), random_uniform(c(1, 2, 3))), "`layer` must be a layer made by `layer_lstm\\(\\)`")
})

test_that("logical flags are TRUE or FALSE, checked in R", {
  for (flag in c("return_sequences", "return_state", "go_backwards",
                 "stateful", "unroll", "use_bias", "unit_forget_bias")) {
    args <- list(units = 4)
    args[[flag]] <- "yes"
    expect_error(do.call(layer_lstm, args),
                 sprintf("`%s` must be TRUE or FALSE, not \"yes\"", flag))
  }
  expect_error(layer_lstm(units = 4, return_sequences = NA), "`return_sequences`.*not NA")
  expect_error(layer_lstm(units = 4, stateful = c(TRUE, FALSE)), "`stateful`.*not c\\(TRUE, FALSE\\)")
  expect_error(layer_rnn(cell = NULL, return_state = 1), "`return_state` must be TRUE or FALSE, not 1")
  expect_error(rnn_cell_lstm(4, use_bias = "no"), "`use_bias` must be TRUE or FALSE")
})

# The message an error prints, and nothing of Python's decoration.
expect_clean_error <- function(expr, pattern) {
  err <- expect_error(expr, class = "fastlstm_error")
  message <- conditionMessage(err)
  expect_match(message, pattern)
  expect_no_match(message, "\033", fixed = TRUE)
  expect_no_match(message, "Arguments received")
  expect_no_match(message, "Exception encountered")
  expect_no_match(message, "py_last_error")
  expect_no_match(message, "^[A-Za-z]*Error:")
  invisible(err)
}

test_that("a direct layer call fails with one clean R error", {
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 4)
  x <- array(runif(2 * 3 * 4), c(2, 3, 4))
  lstm(x)
  err <- expect_clean_error(lstm(x, mask = matrix(TRUE, 3, 3)),
                            "`mask`: expected shape \\(batch, timesteps\\) = \\(2, 3\\)")
  expect_s3_class(err, "fastlstm_python_error")
  expect_equal(conditionCall(err)[[1]], as.name("lstm"))
  expect_clean_error(lstm(x, initial_state = list(matrix(0, 2, 3))),
                     "`initial_state`")
  expect_clean_error(lstm(array(0, c(2, 3))), "`inputs`: expected a 3D tensor")
  bi <- layer_bidirectional(layer = layer_lstm(units = 2))
  expect_clean_error(bi(array(0, c(2, 3))), "3D")
})

test_that("Python's messages come in R's terms", {
  skip_if_no_fastlstm()
  # a stateful layer without a batch size names keras_input()'s and
  # keras_model_sequential()'s arguments
  err <- expect_clean_error(
    keras_model_sequential(input_shape = c(5, 2)) |> layer_lstm(4, stateful = TRUE),
    "stateful = TRUE with an unknown batch size"
  )
  expect_match(conditionMessage(err), "`input_batch_size` to `keras_model_sequential()`", fixed = TRUE)
  expect_match(conditionMessage(err), "`batch_size` to `keras_input()`", fixed = TRUE)
  expect_match(conditionMessage(err), "(NA, 5, 2)", fixed = TRUE)
  # use_cudnn = TRUE where cuDNN cannot run (no GPU here, or not this call)
  lstm <- layer_lstm(units = 4, use_cudnn = TRUE, recurrent_dropout = 0.5)
  err <- expect_clean_error(lstm(array(0, c(2, 3, 2)), training = TRUE),
                            "use_cudnn = TRUE")
  expect_match(conditionMessage(err), 'use_cudnn = "auto"', fixed = TRUE)
  expect_no_match(conditionMessage(err), "use_cudnn=")
})

test_that("errors keep their own message whatever the shape of the call", {
  skip_if_no_fastlstm()
  input <- keras_input(shape(NA, 4))
  tensor <- random_uniform(c(2, 3, 4))
  cases <- list(
    list(list(input, 4, stateful = TRUE), "stateful = TRUE with an unknown batch size"),
    list(list(input, 2.5), "`units` must be a positive whole number"),
    list(list(input, -4), "`units`, expected a positive integer, got -4"),
    list(list(input, 4, dropout = 3), "`dropout`, expected a float between 0 and 1, got 3"),
    list(list(input, 4, return_state = "yes"), "`return_state` must be TRUE or FALSE"),
    list(list(input, 4, activation = "nope"), "`activation`"),
    list(list(tensor, 4, activation = "nope"), "`activation`"),
    list(list(array(0, c(2, 3)), 4), "`inputs`: expected a 3D tensor"),
    list(list(input, 4, use_cudnn = "yes"), "`use_cudnn`, expected one of"),
    list(list(input, 4, use_cudnn = NA), "`use_cudnn` must be")
  )
  for (case in cases) {
    # do.call() puts the values themselves (a symbolic tensor) into the call
    err <- expect_error(do.call(layer_lstm, case[[1]]), class = "fastlstm_error")
    expect_match(conditionMessage(err), case[[2]])
    expect_no_match(conditionMessage(err), "cannot be used as a boolean")
    expect_equal(conditionCall(err), quote(layer_lstm()))
    # and with the function itself inlined, and under another name
    err <- expect_error(do.call(fastlstm::layer_lstm, case[[1]]), class = "fastlstm_error")
    expect_match(conditionMessage(err), case[[2]])
    lstm_layer <- layer_lstm
    err <- expect_error(do.call("lstm_layer", case[[1]]), class = "fastlstm_error")
    expect_match(conditionMessage(err), case[[2]])
  }
  err <- expect_error(do.call(layer_dense, list(input, 0)), "`units`")
  err <- expect_error(do.call(lstm_plan, list(input, input)), "`layer` must be")
})

test_that("fastlstm_available() and the first use say which import failed and why", {
  skip_if_no_fastlstm()
  # A Python where TensorFlow is missing (blocked at start-up) and
  # KERAS_BACKEND is unset: Keras cannot load its default backend.
  site <- tempfile("site-")
  dir.create(site)
  on.exit(unlink(site, recursive = TRUE), add = TRUE)
  writeLines("import sys; sys.modules['tensorflow'] = None",
             file.path(site, "sitecustomize.py"))
  python_path <- paste(c(site, Sys.getenv("PYTHONPATH")[nzchar(Sys.getenv("PYTHONPATH"))]),
                       collapse = .Platform$path.sep)
  result <- run_rscript(c(
    "library(fastlstm)",
    "ok <- fastlstm_available()",
    "cat('available:', ok, '\\n')",
    "cat('reason:', attr(ok, 'reason'), '\\n')",
    "err <- tryCatch(random_uniform(c(2, 3)), error = function(e) e)",
    "cat(conditionMessage(err), '\\n')"
  ), env = c(paste0("PYTHONPATH=", python_path),
             paste0("RETICULATE_PYTHON=", reticulate::py_config()$python)),
  unset = "KERAS_BACKEND")
  output <- paste(result$output, collapse = "\n")
  expect_match(output, "available: FALSE")
  expect_match(output, "reason: importing keras failed: .*tensorflow")
  expect_match(output, "Importing keras failed")
  expect_match(output, "KERAS_BACKEND")
  expect_no_match(output, "Importing fastlstm failed")
})

test_that("a model built for 8 features refuses 7 in predict() and fit()", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential() |> layer_lstm(4) |> layer_dense(1)
  compile(model, optimizer = "sgd", loss = "mse")
  x8 <- array(runif(2 * 5 * 8), c(2, 5, 8))
  expect_identical(dim(predict(model, x8)), c(2L, 1L))
  x7 <- array(runif(2 * 5 * 7), c(2, 5, 7))
  expect_error(predict(model, x7), "`inputs`: this layer was built for 8 features per step.*with 7")
  expect_error(fit(model, x7, matrix(0, 2, 1), epochs = 1, verbose = 0),
               "`inputs`: this layer was built for 8 features per step.*with 7")
})
