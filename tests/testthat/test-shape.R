test_that("shape() is keras3's: a list with NULL for unknown dimensions", {
  s <- shape(NA, 10, 8)
  expect_s3_class(s, "keras_shape")
  expect_identical(unclass(s), list(NULL, 10L, 8L))
  expect_identical(unclass(shape(NULL, 3)), list(NULL, 3L))
  expect_identical(unclass(shape(-1, 3)), list(NULL, 3L))
  expect_identical(unclass(shape(c(2, 3), 4)), list(2L, 3L, 4L))
  expect_identical(unclass(shape(shape(2), 5)), list(2L, 5L))
})

test_that("shape() prints like keras3, with NA for unknown dimensions", {
  expect_output(print(shape(32, 4)), "^shape\\(32, 4\\)$")
  expect_output(print(shape(NA, 10, 8)), "^shape\\(NA, 10, 8\\)$")
  expect_equal(format(shape(c(2, 3), 4)), "shape(2, 3, 4)")
  expect_equal(format(shape(2, 3), prefix = FALSE), "(2, 3)")
  expect_equal(format(shape()), "shape()")
})

test_that("== compares whole shapes, as in keras3", {
  s <- shape(32, 10, 4)
  expect_identical(s == c(32, 10, 4), TRUE)
  expect_identical(s == shape(32, 1, 4), FALSE)
  expect_identical(s != shape(32, 1, 4), TRUE)
  expect_identical(shape(NA, 4) == c(NA, 4), TRUE)
  expect_identical(c(32, 10, 4) == s, TRUE)
  expect_true(isTRUE(shape(32, 4) == c(32, 4))) # stopifnot()-able
})

test_that("a shape indexes, sums up and destructures as in keras3", {
  s <- shape(32, 10, 4)
  expect_identical(s[[2]], 10L)
  expect_s3_class(s[2:3], "keras_shape")
  expect_equal(format(s[-1]), "shape(10, 4)")
  expect_identical(prod(s), 1280)
  expect_identical(max(shape(NA, 3), na.rm = TRUE), 3L)
  expect_identical(length(s), 3L)
  expect_identical(as.integer(shape(NA, 2)), c(NA, 2L))
  expect_identical(as.list(shape(NA, 2)), list(NULL, 2L))
  c(batch, timesteps, units) %<-% s
  expect_identical(c(batch, timesteps, units), c(32L, 10L, 4L))
  c(batch, features) %<-% shape(NA, 8)
  expect_null(batch)
  expect_identical(shape(array(0, c(2, 3, 5))), shape(2, 3, 5))
})

test_that("a dimension that is not a number is an error naming shape()", {
  err <- expect_error(shape(2, "a"), "Each dimension of a shape must be a whole number")
  expect_equal(conditionCall(err)[[1]], as.name("shape"))
})

test_that("shape() of tensors and Keras inputs, and shapes passed to Python", {
  skip_if_no_fastlstm()
  expect_identical(shape(random_uniform(c(3, 5, 2))), shape(3, 5, 2))
  expect_identical(shape(keras_input(c(NA, 8))), shape(NA, NA, 8))
  expect_identical(shape(keras_input(shape(7, 8), batch_size = 2)), shape(2, 7, 8))
  expect_identical(shape(keras$Variable(matrix(0, 2, 3))), shape(2, 3))
  tuple <- reticulate::r_to_py(shape(NA, 4))
  expect_equal(reticulate::py_str(tuple), "(None, 4)")
  model <- keras_model_sequential(input_shape = shape(10, 8)) |> layer_dense(2)
  expect_identical(unclass(shape(model$inputs[[1]])), list(NULL, 10L, 8L))
})
