test_that("without object, layer_lstm() gives a fastlstm.LSTM with only the supplied arguments", {
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 4, dropout = 0.1, seed = 3, use_cudnn = FALSE)
  expect_s3_class(lstm, "fastlstm.layer.LSTM")
  expect_s3_class(lstm, "keras.src.layers.rnn.lstm.LSTM")
  config <- lstm$get_config()
  expect_identical(config$units, 4L)
  expect_equal(config$dropout, 0.1)
  expect_identical(config$seed, 3L)
  expect_identical(config$use_cudnn, FALSE)
  expect_identical(config$activation, "tanh")
  expect_identical(layer_lstm(NULL, 2)$get_config()$use_cudnn, "auto")
})

test_that("... passes Keras arguments by name", {
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 2, name = "encoder", zero_output_for_mask = TRUE)
  expect_identical(lstm$name, "encoder")
  expect_true(lstm$zero_output_for_mask)
})

test_that("with a tensor, the layer is called on it (the seed's example)", {
  skip_if_no_fastlstm()
  input <- random_uniform(c(32, 10, 8))
  output <- input |> layer_lstm(4)
  expect_output(print(shape(output)), "^shape\\(32, 4\\)$")

  lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
  c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
  expect_output(print(shape(whole_seq_output)), "^shape\\(32, 10, 4\\)$")
  expect_output(print(shape(final_memory_state)), "^shape\\(32, 4\\)$")
  expect_output(print(shape(final_carry_state)), "^shape\\(32, 4\\)$")
  # the last step of the sequence is the final memory state
  expect_equal(as.array(whole_seq_output)[, 10, ], as.array(final_memory_state))
})

test_that("with return_state, composition returns list(output, h, c)", {
  skip_if_no_fastlstm()
  result <- random_uniform(c(5, 3, 2)) |> layer_lstm(3, return_state = TRUE)
  expect_length(result, 3)
  expect_equal(lapply(result, function(x) format(shape(x))),
               rep(list("shape(5, 3)"), 3))
})

test_that("with a Python list or tuple, %<-% destructures it", {
  skip_if_no_fastlstm()
  py_list <- reticulate::r_to_py(list(1, "a", 3))
  c(a, b, c) %<-% py_list
  expect_identical(lapply(list(a, b, c), reticulate::py_to_r), list(1, "a", 3))
  py_tuple <- reticulate::tuple(4L, 5L, convert = FALSE)
  c(x, y) %<-% py_tuple
  expect_identical(reticulate::py_to_r(x), 4L)
  expect_identical(reticulate::py_to_r(y), 5L)
})

test_that("with a keras_input(), the output is a symbolic tensor", {
  skip_if_no_fastlstm()
  input <- keras_input(shape(NA, 8))
  output <- input |> layer_lstm(6, return_sequences = TRUE)
  expect_s3_class(output, "keras.src.backend.common.keras_tensor.KerasTensor")
  expect_identical(shape(output), shape(NA, NA, 6))
  model <- keras_model(input, output)
  expect_identical(length(model$layers), 2L)
})

test_that("with a Sequential model, the layer is added and the model returned invisibly", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential(input_shape = c(10, 8))
  expect_invisible(returned <- layer_lstm(model, 16))
  expect_identical(returned, model)
  model |> layer_dense(1)
  expect_identical(length(model$layers), 2L)
  expect_s3_class(model$layers[[1]], "fastlstm.layer.LSTM")
  expect_identical(dim(predict(model, array(0, c(2, 10, 8)))), c(2L, 1L))
})

test_that("with an R array, the layer is called on it", {
  skip_if_no_fastlstm()
  x <- array(seq(0, 1, length.out = 2 * 4 * 3), c(2, 4, 3))
  out <- x |> layer_lstm(5)
  expect_identical(shape(out), shape(2, 5))
})

test_that("a layer object takes R arrays, as in keras3 (no conversion by hand)", {
  skip_if_no_fastlstm()
  set.seed(4)
  x <- array(runif(4 * 10 * 8), c(4, 10, 8))
  lstm <- layer_lstm(units = 4)
  out <- lstm(x)
  expect_identical(shape(out), shape(4, 4))
  expect_equal(as.array(out), as.array(lstm(op_convert_to_tensor(x))),
               tolerance = 1e-6)
  w <- weights_of(lstm)
  expect_equal(as.array(out), r_lstm(x, w[[1]], w[[2]], w[[3]])$h,
               tolerance = 1e-5)
  # keras.layers.Bidirectional called on an R array
  bi <- keras$layers$Bidirectional(layer_lstm(units = 4))
  expect_identical(shape(bi(x)), shape(4, 8))
})

test_that("initial_state is a list of R matrices", {
  skip_if_no_fastlstm()
  set.seed(5)
  x <- array(rnorm(3 * 4 * 2), c(3, 4, 2))
  h0 <- matrix(rnorm(3 * 5), 3, 5)
  c0 <- matrix(rnorm(3 * 5), 3, 5)
  lstm <- layer_lstm(units = 5, return_state = TRUE)
  c(out, h, c) %<-% lstm(x, initial_state = list(h0, c0))
  w <- weights_of(lstm)
  sigmoid <- function(z) 1 / (1 + exp(-z))
  hh <- h0
  cc <- c0
  for (t in 1:4) {
    z <- x[, t, ] %*% w[[1]] + hh %*% w[[2]] + matrix(w[[3]], 3, 20, byrow = TRUE)
    g <- function(k) z[, (k - 1) * 5 + 1:5]
    cc <- sigmoid(g(2)) * cc + sigmoid(g(1)) * tanh(g(3))
    hh <- sigmoid(g(4)) * tanh(cc)
  }
  expect_equal(as.array(h), hh, tolerance = 1e-5)
  expect_equal(as.array(c), cc, tolerance = 1e-5)
})

test_that("a logical R matrix is a mask", {
  skip_if_no_fastlstm()
  set.seed(6)
  x <- array(rnorm(2 * 5 * 3), c(2, 5, 3))
  mask <- matrix(TRUE, 2, 5)
  mask[1, 1:2] <- FALSE # left-padded row
  lstm <- layer_lstm(units = 4)
  out <- as.array(lstm(x, mask = mask))
  w <- weights_of(lstm)
  expect_equal(out[1, ], r_lstm(x[1, 3:5, , drop = FALSE], w[[1]], w[[2]], w[[3]])$h[1, ],
               tolerance = 1e-5)
  expect_equal(out[2, ], r_lstm(x[2, , , drop = FALSE], w[[1]], w[[2]], w[[3]])$h[1, ],
               tolerance = 1e-5)
  expect_identical(lstm_plan(lstm, x, mask = mask)$mask, "left-padded")
})

test_that("layer_bidirectional() wraps fastlstm's LSTM both ways, as Keras's does", {
  skip_if_no_fastlstm()
  set.seed(7)
  x <- array(rnorm(3 * 6 * 4), c(3, 6, 4))
  bi <- layer_bidirectional(layer = layer_lstm(units = 5))
  out <- bi(x)
  expect_identical(shape(out), shape(3, 10))
  expect_s3_class(bi$forward_layer, "fastlstm.layer.LSTM")
  expect_s3_class(bi$backward_layer, "fastlstm.layer.LSTM")

  reference <- keras$layers$Bidirectional(keras$layers$LSTM(5L))
  reference$build(reticulate::tuple(3L, 6L, 4L))
  reference$set_weights(bi$get_weights())
  expect_equal(as.array(out), as.array(reference(x)), tolerance = 1e-5)

  # composition with a tensor, an array and a Sequential model
  expect_identical(shape(x |> layer_bidirectional(layer_lstm(units = 2), merge_mode = "sum")),
                   shape(3, 2))
  model <- keras_model_sequential(input_shape = c(6, 4)) |>
    layer_bidirectional(layer_lstm(units = 3, return_sequences = TRUE))
  expect_identical(unclass(shape(model$outputs[[1]])), list(NULL, 6L, 6L))
  expect_error(layer_bidirectional(x, "lstm"), "`layer` must be a recurrent layer")
})

test_that("layer_rnn(cell = rnn_cell_lstm()) runs fastlstm's kernel with the cell's numbers", {
  skip_if_no_fastlstm()
  set.seed(8)
  x <- array(rnorm(2 * 7 * 3), c(2, 7, 3))
  rnn <- layer_rnn(cell = rnn_cell_lstm(4, unit_forget_bias = FALSE), return_sequences = TRUE)
  expect_s3_class(rnn, "fastlstm.layer.LSTM")
  expect_false(rnn$cell$unit_forget_bias)
  expect_true(rnn$return_sequences)
  out <- rnn(x)
  expect_identical(shape(out), shape(2, 7, 4))
  expect_true(lstm_plan(rnn, x)$kernel %in% c("native", "loop"))

  # the same numbers as Keras's RNN stepping the same cell
  cell <- keras$layers$LSTMCell(4L)
  reference <- keras$layers$RNN(cell, return_sequences = TRUE)
  reference$build(reticulate::tuple(2L, 7L, 3L))
  reference$set_weights(rnn$get_weights())
  expect_equal(as.array(out), as.array(reference(x)), tolerance = 1e-5)

  # a built cell brings its weights
  built <- rnn_cell_lstm(4)
  built$build(reticulate::tuple(2L, 3L))
  from_built <- layer_rnn(cell = built)
  expect_equal(get_weights(from_built), get_weights(built))

  # composing, and a stack of cells (Keras's generic RNN)
  expect_identical(shape(x |> layer_rnn(rnn_cell_lstm(2))), shape(2, 2))
  stacked <- layer_rnn(cell = list(rnn_cell_lstm(3), rnn_cell_lstm(2)))
  expect_s3_class(stacked, "keras.src.layers.rnn.rnn.RNN")
  expect_identical(shape(stacked(x)), shape(2, 2))
  expect_error(layer_rnn(), "`cell` is missing")
})

test_that("R's numbers equal the Python layer's and a plain R LSTM's on the same weights", {
  skip_if_no_fastlstm()
  set.seed(1)
  x <- array(rnorm(3 * 6 * 4), c(3, 6, 4))
  lstm <- layer_lstm(units = 5, return_state = TRUE)
  c(out, h, c) %<-% lstm(op_convert_to_tensor(x))

  keras_lstm <- keras$layers$LSTM(5L)
  keras_lstm$build(reticulate::tuple(3L, 6L, 4L))
  keras_lstm$set_weights(lstm$get_weights())
  keras_out <- as.array(keras_lstm(x))
  expect_equal(as.array(out), keras_out, tolerance = 1e-5)

  w <- weights_of(lstm)
  expected <- r_lstm(x, w[[1]], w[[2]], w[[3]])
  expect_equal(as.array(h), expected$h, tolerance = 1e-5)
  expect_equal(as.array(c), expected$c, tolerance = 1e-5)
  expect_equal(as.array(out), as.array(h))
})

test_that("a left-padded mask carries the state over", {
  skip_if_no_fastlstm()
  set.seed(2)
  x <- array(rnorm(2 * 5 * 3), c(2, 5, 3))
  x[1, 1:2, ] <- 0
  lstm <- layer_lstm(units = 4)
  masked <- as.array(x |> layer_masking() |> lstm())
  w <- weights_of(lstm)
  expected <- r_lstm(x[1, 3:5, , drop = FALSE], w[[1]], w[[2]], w[[3]])
  expect_equal(masked[1, ], expected$h[1, ], tolerance = 1e-5)
})

test_that("stateful layers carry state between calls until reset_state()", {
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 3, stateful = TRUE)
  x <- random_uniform(c(2, 4, 2), seed = 7)
  first <- as.array(lstm(x))
  second <- as.array(lstm(x))
  expect_false(isTRUE(all.equal(first, second)))
  expect_invisible(reset_state(lstm))
  expect_equal(as.array(lstm(x)), first, tolerance = 1e-6)

  # In a model, predict() carries the state as Keras's own LSTM does on this
  # backend (from one predict() to the next on TensorFlow and PyTorch, not
  # on JAX), and reset_state(model) resets it.
  model <- keras_model_sequential(input_shape = c(4, 2), input_batch_size = 2) |>
    layer_lstm(3, stateful = TRUE)
  reference <- keras_model_sequential(input_shape = c(4, 2), input_batch_size = 2) |>
    keras$layers$LSTM(3L, stateful = TRUE)()
  set_weights(reference, get_weights(model))
  x <- as.array(x)
  p1 <- predict(model, x, verbose = 0)
  p2 <- predict(model, x, verbose = 0)
  expect_equal(p1, predict(reference, x, verbose = 0), tolerance = 1e-5)
  expect_equal(p2, predict(reference, x, verbose = 0), tolerance = 1e-5)
  if (keras$backend$backend() != "jax") expect_false(isTRUE(all.equal(p1, p2)))
  reset_state(model)
  expect_equal(predict(model, x, verbose = 0), p1, tolerance = 1e-6)
})

test_that("rnn_cell_lstm() builds a fastlstm.LSTMCell", {
  skip_if_no_fastlstm()
  cell <- rnn_cell_lstm(4, dropout = 0.2)
  expect_s3_class(cell, "fastlstm.cell.LSTMCell")
  expect_identical(cell$units, 4L)
  rnn <- keras$layers$RNN(cell)
  expect_identical(shape(rnn(random_uniform(c(2, 3, 5)))), shape(2, 4))
})

test_that("lstm_plan() shows fastlstm.plan", {
  skip_if_no_fastlstm()
  lstm <- layer_lstm(units = 4)
  input <- random_uniform(c(8, 5, 3))
  plan <- lstm_plan(lstm, input)
  expect_true(plan$kernel %in% c("cudnn", "native", "loop", "unrolled"))
  expect_output(print(plan), plan$kernel, fixed = TRUE)
  expect_identical(lstm_plan(lstm, input, device = "gpu")$kernel, "cudnn")
  expect_identical(lstm_plan(layer_lstm(units = 4, unroll = TRUE), input)$kernel, "unrolled")
  expect_identical(
    lstm_plan(layer_lstm(units = 4, recurrent_dropout = 0.5), input,
              training = TRUE, device = "gpu")$kernel != "cudnn",
    TRUE
  )
})

test_that("get_weights() and set_weights() move weights between layers", {
  skip_if_no_fastlstm()
  input <- random_uniform(c(2, 5, 3))
  a <- layer_lstm(units = 4)
  b <- layer_lstm(units = 4)
  invisible(input |> a())
  invisible(input |> b())
  w <- get_weights(a)
  expect_equal(lapply(w, dim), list(c(3L, 16L), c(4L, 16L), 16L))
  expect_length(w[[3]], 16)
  expect_equal(as.vector(w[[3]][5:8]), rep(1, 4))  # unit_forget_bias
  expect_identical(set_weights(b, w), b)
  expect_equal(as.array(input |> b()), as.array(input |> a()), tolerance = 1e-6)
  expect_error(set_weights(b, "x"), "`weights` must be a list")
  expect_error(get_weights(42), "`object` must be a layer or model")
  expect_length(get_weights(a, trainable = FALSE), 0)
  expect_length(get_weights(a, trainable = TRUE), 3)
})

test_that("keras3's input_shape starts a Sequential model with that input, on every layer function", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential() |>
    layer_lstm(units = 16, input_shape = c(20, 3)) |>
    layer_dense(1)
  expect_identical(model$input_shape, list(NULL, 20L, 3L))
  expect_identical(model$output_shape, list(NULL, 1L))
  dense <- keras_model_sequential() |> layer_dense(units = 2, input_shape = 3)
  expect_identical(dense$input_shape, list(NULL, 3L))
  masked <- keras_model_sequential() |> layer_masking(input_shape = shape(NA, 4)) |>
    layer_lstm(units = 2)
  expect_identical(masked$input_shape, list(NULL, NULL, 4L))
  rnn <- keras_model_sequential() |>
    layer_rnn(cell = rnn_cell_lstm(2), input_shape = c(5, 3))
  expect_identical(rnn$input_shape, list(NULL, 5L, 3L))
  expect_s3_class(rnn$layers[[1]], "fastlstm.layer.LSTM")
  expect_error(layer_lstm(units = 2, input_shape = c(2.5, 3)),
               "`input_shape` must be a vector of whole numbers")
})

test_that("batch_input_shape, or batch_size with input_shape, gives the model's input its batch size", {
  skip_if_no_fastlstm()
  model <- keras_model_sequential() |>
    layer_lstm(units = 4, batch_input_shape = c(8, 5, 2), stateful = TRUE)
  expect_identical(model$input_shape, list(8L, 5L, 2L))
  model <- keras_model_sequential() |>
    layer_lstm(units = 4, batch_size = 8, input_shape = c(5, 2), name = "first",
               dtype = "float32")
  expect_identical(model$input_shape, list(8L, 5L, 2L))
  expect_identical(model$layers[[1]]$name, "first")
  expect_error(layer_lstm(units = 4, batch_size = 8),
               "`batch_size` needs `input_shape`")
  expect_error(layer_lstm(units = 4, batch_input_shape = c(8, 5, 2)),
               "`batch_input_shape` sets the batch size of a model's input, so the layer must start a Sequential model")
  expect_error(keras_model_sequential(input_shape = c(5, 2)) |>
                 layer_lstm(units = 4, batch_size = 2, input_shape = c(5, 2)),
               "must start a Sequential model")
  expect_error(layer_lstm(units = 4, batch_size = 0, input_shape = 3),
               "`batch_size` must be a positive whole number, not 0")
})

test_that("a number given first lands in `object`, as in keras3, and the error says how to write it", {
  err <- expect_error(layer_lstm(4), class = "fastlstm_bad_argument")
  message <- gsub("\\s+", " ", conditionMessage(err))
  expect_match(message, "`units` is missing", fixed = TRUE)
  expect_match(message, "The 4 given first went to `object`", fixed = TRUE)
  expect_match(message, "write `layer_lstm(units = 4)`", fixed = TRUE)
  skip_if_no_fastlstm()
  # The README's example, written as keras3 takes it.
  input <- random_uniform(c(32, 10, 8))
  output <- input |> layer_bidirectional(layer = layer_lstm(units = 4))
  expect_identical(shape(output), shape(32, 8))
})

test_that("a misspelled argument is an R error that names it", {
  skip_if_no_fastlstm()
  err <- expect_error(layer_lstm(units = 4, retrun_sequences = TRUE),
                      class = "fastlstm_python_error")
  expect_identical(conditionMessage(err),
                   "Unknown argument `retrun_sequences`: neither this function nor Keras's LSTM takes it. Check the spelling.")
  expect_identical(conditionCall(err), quote(layer_lstm()))
  expect_error(layer_dense(units = 2, activaton = "relu", nmae = "x"),
               "Unknown arguments `activaton`, `nmae`: neither this function nor Keras's Dense takes them")
})

test_that("lstm_plan() prints R's values, not Python's", {
  skip_if_no_fastlstm()
  printed <- capture.output(print(lstm_plan(layer_lstm(units = 4),
                                            array(0, c(8, 5, 3)))))
  text <- paste(printed, collapse = "\n")
  expect_match(text, "unroll is FALSE (found FALSE)", fixed = TRUE)
  expect_match(text, "recurrent_dropout = 0, training = FALSE", fixed = TRUE)
  expect_no_match(text, "\\bFalse\\b|\\bTrue\\b|=0\\.0")
})

test_that("fit()'s verbose = \"auto\" writes one line per epoch where R is not interactive", {
  skip_if_no_fastlstm()
  # A fresh Rscript, outside testthat (which silences "auto").
  run <- run_rscript(c(
    "library(fastlstm)",
    "x <- array(runif(16 * 4 * 2), c(16, 4, 2))",
    "model <- keras_model_sequential(input_shape = c(4, 2)) |> layer_lstm(units = 2) |> layer_dense(1)",
    "compile(model, optimizer = 'adam', loss = 'mse')",
    "invisible(fit(model, x, rowSums(x), epochs = 3, batch_size = 4))"
  ), unset = "TESTTHAT")
  expect_identical(run$status, 0L)
  epochs <- grep("^Epoch [0-9]/3$", run$output, value = TRUE)
  expect_identical(epochs, c("Epoch 1/3", "Epoch 2/3", "Epoch 3/3"))
  expect_length(grep("^4/4 - .*loss: ", run$output), 3L)
  expect_false(any(grepl("\b|\033|\r", run$output)))
})
