test_that("shape() prints like keras3, with NA for unknown dimensions", {
  expect_output(print(shape(32, 4)), "^shape\\(32, 4\\)$")
  expect_output(print(shape(NA, 10, 8)), "^shape\\(NA, 10, 8\\)$")
  expect_output(print(shape(NULL, 3)), "^shape\\(NA, 3\\)$")
  expect_equal(format(shape(c(2, 3), 4)), "shape(2, 3, 4)")
  expect_equal(format(shape()), "shape()")
})

test_that("shape() indexes, compares and destructures like an R vector", {
  s <- shape(32, 10, 4)
  expect_identical(s[[2]], 10L)
  expect_s3_class(s[2:3], "keras_shape")
  expect_equal(format(s[-1]), "shape(10, 4)")
  expect_identical(s == c(32, 10, 4), c(TRUE, TRUE, TRUE))
  expect_identical(s == shape(32, 1, 4), c(TRUE, FALSE, TRUE))
  expect_equal(prod(s), 1280)
  expect_identical(s * 2L, c(64L, 20L, 8L))
  expect_identical(length(s), 3L)
  expect_identical(as.integer(shape(NA, 2)), c(NA, 2L))
  c(batch, timesteps, units) %<-% s
  expect_identical(c(batch, timesteps, units), c(32L, 10L, 4L))
  expect_identical(shape(array(0, c(2, 3, 5))), shape(2, 3, 5))
})

test_that("shape() of tensors and Keras inputs", {
  skip_if_no_fastlstm()
  expect_identical(shape(random_uniform(c(3, 5, 2))), shape(3, 5, 2))
  expect_identical(shape(keras_input(c(NA, 8))), shape(NA, NA, 8))
  expect_identical(shape(keras_input(c(7, 8), batch_size = 2)), shape(2, 7, 8))
  tuple <- reticulate::r_to_py(shape(NA, 4))
  expect_equal(reticulate::py_str(tuple), "(None, 4)")
})
