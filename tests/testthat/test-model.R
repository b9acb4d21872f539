test_that("a small forecasting model trains, predicts, evaluates, saves and loads", {
  skip_if_no_fastlstm()
  set.seed(3)
  n <- 64
  steps <- 8
  phase <- runif(n, 0, 2 * pi)
  t <- outer(phase, seq_len(steps + 1) * 0.4, `+`)
  series <- sin(t)
  x <- array(series[, seq_len(steps)], c(n, steps, 1))
  y <- series[, steps + 1]

  model <- keras_model_sequential(input_shape = c(steps, 1)) |>
    layer_lstm(16) |>
    layer_dense(1)
  expect_invisible(compile(model, optimizer = "adam", loss = "mse", metrics = "mae"))
  history <- fit(model, x, y, epochs = 30, batch_size = 16, verbose = 0)
  expect_s3_class(history, "fastlstm_history")
  expect_named(history, c("loss", "mae"))
  expect_length(history$loss, 30)
  expect_lt(history$loss[30], history$loss[1])
  expect_output(print(history), "Trained for 30 epochs")

  predictions <- predict(model, x)
  expect_identical(dim(predictions), c(64L, 1L))
  scores <- evaluate(model, x, y)
  expect_named(scores, c("loss", "mae"))
  expect_equal(unname(scores[["loss"]]), mean((predictions - y)^2), tolerance = 1e-3)

  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  expect_invisible(save_model(model, path))
  expect_error(save_model(model, path), "overwrite = TRUE")
  restored <- load_model(path)
  expect_s3_class(restored$layers[[1]], "fastlstm.layer.LSTM")
  expect_equal(predict(restored, x), predictions, tolerance = 1e-5)
})

test_that("as_tensor() and as.array() round-trip R arrays", {
  skip_if_no_fastlstm()
  a <- array(as.double(1:24), c(2, 3, 4))
  expect_identical(as.array(as_tensor(a)), a)
  expect_identical(as.array(as_tensor(a, dtype = "int32")), array(1:24, c(2, 3, 4)))
  m <- matrix(c(TRUE, FALSE, TRUE, TRUE), 2)
  expect_identical(as.array(as_tensor(m)), m)
  expect_error(as_tensor("a"), "`x` must be a numeric or logical array")
})
