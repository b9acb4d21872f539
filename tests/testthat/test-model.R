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

  model <- keras_model_sequential(input_shape = shape(steps, 1)) |>
    layer_lstm(16) |>
    layer_dense(1)
  expect_invisible(compile(model, optimizer = "adam", loss = "mse", metrics = "mae"))
  history <- fit(model, x, y, epochs = 30, batch_size = 16, verbose = 0)
  expect_s3_class(history, "keras_training_history")
  expect_named(history, c("params", "metrics"))
  expect_identical(history$params$epochs, 30L)
  expect_named(history$metrics, c("loss", "mae"))
  expect_length(history$metrics$loss, 30)
  expect_lt(history$metrics$loss[30], history$metrics$loss[1])
  expect_output(print(history), "Final epoch \\(plot to see history\\):")
  expect_output(print(history), "mae: ")

  predictions <- predict(model, x)
  expect_identical(dim(predictions), c(64L, 1L))
  scores <- evaluate(model, x, y)
  expect_type(scores, "list")
  expect_named(scores, c("loss", "mae"))
  expect_equal(scores$loss, mean((predictions - y)^2), tolerance = 1e-3)

  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  expect_invisible(save_model(model, path))
  expect_error(save_model(model, path), "overwrite = TRUE")
  restored <- load_model(path)
  expect_s3_class(restored$layers[[1]], "fastlstm.layer.LSTM")
  expect_equal(predict(restored, x), predictions, tolerance = 1e-5)
  raw <- save_model(model)
  expect_type(raw, "raw")
  expect_equal(predict(load_model(raw), x), predictions, tolerance = 1e-5)
})

test_that("history: keras3's structure, as.data.frame() and plot()", {
  skip_if_no_fastlstm()
  set.seed(9)
  x <- array(runif(40 * 5 * 2), c(40, 5, 2))
  model <- keras_model_sequential(input_shape = c(5, 2)) |>
    layer_lstm(4) |>
    layer_dense(1)
  compile(model, optimizer = "adam", loss = "mse", metrics = "mae")
  history <- fit(model, x, rowSums(x), epochs = 3, verbose = 0,
                 validation_split = 0.25)
  expect_named(history$metrics, c("loss", "mae", "val_loss", "val_mae"))
  df <- as.data.frame(history)
  expect_identical(names(df), c("epoch", "value", "metric", "data"))
  expect_identical(nrow(df), 12L)
  expect_identical(levels(df$metric), c("loss", "mae"))
  expect_identical(levels(df$data), c("training", "validation"))
  expect_equal(df$value[df$metric == "loss" & df$data == "validation"],
               history$metrics$val_loss)
  expect_identical(df$epoch[1:3], 1:3)

  png <- tempfile(fileext = ".png")
  on.exit(unlink(png), add = TRUE)
  grDevices::png(png)
  expect_null(plot(history))
  grDevices::dev.off()
  expect_gt(file.size(png), 1000)
})

test_that("compile(), fit() and predict() are methods of the generics keras3 uses", {
  expect_identical(fastlstm::fit, generics::fit)
  expect_identical(fastlstm::compile, generics::compile)
  expect_identical(names(formals(fastlstm::evaluate)), c("object", "..."))
  # other packages' methods still dispatch; a model-less fit() is generics' error
  expect_error(fit(lm(dist ~ speed, cars)), "no applicable method for 'fit'")
  skip_if_no_fastlstm()
  model <- keras_model_sequential(input_shape = c(3, 2)) |> layer_lstm(2)
  expect_identical(compile(model, loss = "mse"), model)
  expect_error(compile("model"), "no applicable method for 'compile'")
})

test_that("summary(model) and print(model) show Keras's layer table", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential(input_shape = c(10, 8), name = "forecaster") |>
    layer_lstm(16) |>
    layer_dense(1)
  printed <- capture.output(summary(model))
  expect_match(printed[1], "Model: \"forecaster\"")
  expect_true(any(grepl("LSTM", printed)))
  expect_true(any(grepl("Total params: 1,617", printed, fixed = TRUE)))
  expect_false(any(grepl("\033", printed, fixed = TRUE)))
  expect_identical(capture.output(print(model)), printed)
})

test_that("op_convert_to_tensor() and as.array() round-trip R arrays", {
  skip_if_no_fastlstm()
  a <- array(as.double(1:24), c(2, 3, 4))
  expect_identical(as.array(op_convert_to_tensor(a)), a)
  expect_identical(as.array(op_convert_to_tensor(a, dtype = "int32")), array(1:24, c(2, 3, 4)))
  m <- matrix(c(TRUE, FALSE, TRUE, TRUE), 2)
  expect_identical(as.array(op_convert_to_tensor(m)), m)
  expect_identical(as.array(keras$Variable(m * 1)), m * 1)
  expect_error(op_convert_to_tensor("a"), "`x` must be a numeric or logical array")
})

test_that("keras_model_sequential() takes keras3's input_* arguments", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential(input_shape = c(4, 2), input_batch_size = 3,
                                  input_name = "series") |>
    layer_lstm(2, stateful = TRUE)
  expect_identical(unclass(shape(model$inputs[[1]])), list(3L, 4L, 2L))
  expect_identical(model$layers[[1]]$stateful, TRUE)
  expect_error(keras_model_sequential(layer_dense(units = 1)), "`layers` must be passed by name")
  expect_error(keras_model_sequential(c(4, 2), "m", 7), "takes no other arguments")
})

test_that("keras_model_sequential() with no arguments is an empty model that layers extend", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential()
  expect_length(model$layers, 0)
  model <- keras_model_sequential() |> layer_lstm(3)
  expect_length(model$layers, 1)
  expect_s3_class(model$layers[[1]], "fastlstm.layer.LSTM")
})

test_that("a masked model exported to ONNX from R gives its predictions in onnxruntime", {
  skip_if_no_fastlstm()
  keras <- reticulate::import("keras")
  onnxruntime <- reticulate::import("onnxruntime")
  set.seed(5)
  x <- array(runif(6 * 5 * 2), c(6, 5, 2))
  x[2, 1:2, ] <- 0  # left-padded
  x[3, 4:5, ] <- 0  # right-padded
  x[4, 3, ] <- 0    # a hole
  model <- keras_model_sequential(input_shape = c(5, 2))
  model$add(keras$layers$Masking(0))
  model <- model |> layer_lstm(4) |> layer_dense(1)
  expected <- predict(model, x, verbose = 0)
  path <- tempfile(fileext = ".onnx")
  on.exit(unlink(path), add = TRUE)
  model$export(path, format = "onnx", verbose = FALSE)
  session <- onnxruntime$InferenceSession(path)
  feed <- list(reticulate::np_array(x, dtype = "float32"))
  names(feed) <- session$get_inputs()[[1]]$name
  got <- session$run(NULL, feed)[[1]]
  expect_identical(dim(got), c(6L, 1L))
  expect_equal(got, expected, tolerance = 1e-5)
})
