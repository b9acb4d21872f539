# Models built with Keras's own LSTM, as keras3's layer_lstm() builds them.
keras_lstm <- function(...) keras$layers$LSTM(...)

# Same outputs to float32 precision (absolute: the outputs can be tiny).
expect_same_outputs <- function(a, b) expect_lt(max(abs(a - b)), 1e-5)

expect_converted <- function(model, n_swapped, x) {
  printed <- capture.output(fast <- convert_model(model))
  expect_match(printed[1], sprintf("%d LSTM layers? swapped", n_swapped))
  report <- fast$fastlstm_report
  expect_length(report$swapped, n_swapped)
  for (entry in report$swapped) {
    expect_match(paste(printed, collapse = "\n"), entry$path, fixed = TRUE)
  }
  expect_same_outputs(predict(fast, x, verbose = 0), predict(model, x, verbose = 0))
  invisible(fast)
}

lstm_classes <- function(model) {
  unlist(lapply(model$layers, function(layer) {
    if (inherits(layer, "keras.src.layers.rnn.bidirectional.Bidirectional")) {
      c(class(layer$forward_layer)[1], class(layer$backward_layer)[1])
    } else if (inherits(layer, "keras.src.layers.rnn.lstm.LSTM")) {
      class(layer)[1]
    }
  }))
}

test_that("convert_model() swaps Keras's LSTM in a Sequential model", {
  skip_if_no_fastlstm()
  set.seed(10)
  x <- array(runif(4 * 6 * 3), c(4, 6, 3))
  model <- keras_model_sequential(input_shape = c(6, 3)) |>
    keras_lstm(units = 5L, return_sequences = TRUE)() |>
    keras_lstm(units = 2L)()
  expect_identical(lstm_classes(model), rep("keras.src.layers.rnn.lstm.LSTM", 2))
  fast <- expect_converted(model, 2, x)
  expect_identical(lstm_classes(fast), rep("fastlstm.layer.LSTM", 2))
  # the original is untouched
  expect_identical(lstm_classes(model), rep("keras.src.layers.rnn.lstm.LSTM", 2))
})

test_that("convert_model() swaps inside Bidirectional and nested functional models", {
  skip_if_no_fastlstm()
  set.seed(11)
  x <- array(runif(3 * 5 * 2), c(3, 5, 2))
  inner_input <- keras_input(shape(5, 2))
  inner <- keras_model(inner_input, inner_input |> keras_lstm(units = 4L, return_sequences = TRUE)())
  input <- keras_input(shape(5, 2))
  output <- input |>
    inner() |>
    layer_bidirectional(keras_lstm(units = 3L)) |>
    layer_dense(1)
  model <- keras_model(input, output)
  fast <- expect_converted(model, 3, x)
  paths <- vapply(fast$fastlstm_report$swapped, function(e) e$path, "")
  expect_true(any(grepl("/", paths)))
})

test_that("convert_model() takes a .keras path, and verbose = FALSE prints nothing", {
  skip_if_no_fastlstm()
  x <- array(runif(2 * 4 * 3), c(2, 4, 3))
  model <- keras_model_sequential(input_shape = c(4, 3)) |> keras_lstm(units = 2L)()
  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  save_model(model, path)
  expect_silent(fast <- convert_model(path, verbose = FALSE))
  expect_s3_class(fast$layers[[1]], "fastlstm.layer.LSTM")
  expect_same_outputs(predict(fast, x, verbose = 0), predict(model, x, verbose = 0))
})

test_that("convert_model() names a bad argument", {
  expect_error(convert_model(42), "`model` must be a Keras model or the path of a")
  expect_error(convert_model(tempfile(fileext = ".keras")), "`model` names no file")
  expect_error(convert_model("x", verbose = "yes"), "`verbose` must be TRUE or FALSE")
})
