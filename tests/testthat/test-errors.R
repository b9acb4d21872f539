test_that("units must be given as a positive whole number", {
  expect_error(layer_lstm(), "`units` is missing")
  expect_error(layer_lstm(units = -1), "`units` must be a positive whole number, not -1")
  expect_error(layer_lstm(units = 0), "`units`.*not 0")
  expect_error(layer_lstm(units = 2.5), "`units`.*not 2.5")
  expect_error(layer_lstm(units = "four"), "`units`.*not \"four\"")
  expect_error(layer_lstm(units = c(2, 3)), "`units`.*not c\\(2, 3\\)")
  expect_error(layer_lstm(units = NA), "`units`.*not NA")
  expect_error(rnn_cell_lstm(units = -3), "`units`.*not -3")
  expect_error(layer_dense(units = 0), "`units`.*not 0")
})

test_that("dropout and recurrent_dropout must lie in [0, 1]", {
  expect_error(layer_lstm(units = 4, dropout = 1.5), "`dropout` must be a number between 0 and 1, not 1.5")
  expect_error(layer_lstm(units = 4, dropout = -0.1), "`dropout`.*not -0.1")
  expect_error(layer_lstm(units = 4, recurrent_dropout = 2), "`recurrent_dropout`.*not 2")
  expect_error(layer_lstm(units = 4, recurrent_dropout = "a"), "`recurrent_dropout`.*not \"a\"")
  expect_error(rnn_cell_lstm(units = 4, dropout = 7), "`dropout`.*not 7")
})

test_that("use_cudnn must be \"auto\", TRUE or FALSE", {
  expect_error(layer_lstm(units = 4, use_cudnn = "yes"), "`use_cudnn` must be \"auto\", TRUE or FALSE, not \"yes\"")
  expect_error(layer_lstm(units = 4, use_cudnn = NA), "`use_cudnn`.*not NA")
  expect_error(layer_lstm(units = 4, use_cudnn = 1), "`use_cudnn`.*not 1")
})

test_that("an unsupported object is an error naming `object`", {
  expect_error(layer_lstm("text", 4), "`object` must be NULL, a Sequential model, a tensor, an array")
  expect_error(layer_lstm(list(1, 2), 4), "`object`.*list")
  expect_error(layer_lstm(data.frame(a = 1), 4), "`object`.*data.frame")
  skip_if_no_fastlstm()
  expect_error(layer_lstm(layer_dense(units = 2), 4), "`object`.*Python object of class <keras.src.layers.core.dense.Dense>")
})

test_that("errors are raised from the R function the user called", {
  err <- expect_error(layer_lstm(units = -1), class = "fastlstm_bad_argument")
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
  expect_error(random_uniform(-1), "`shape` must be a vector of whole numbers")
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

test_that("functions that need a model say so", {
  skip_if_no_fastlstm()
  expect_error(compile("model"), "`object` must be a Keras model, not \"model\"")
  expect_error(fit(layer_dense(units = 1), 1, 1), "`object` must be a Keras model")
  expect_error(lstm_plan(layer_dense(units = 1), random_uniform(c(1, 2, 3))), "`layer` must be a layer made by `layer_lstm\\(\\)`")
})
