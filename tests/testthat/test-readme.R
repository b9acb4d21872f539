# The README's R examples run as written. The README is not part of the R
# package, so this runs from the repository (make test-r) and not in
# R CMD check, which runs the help pages' examples instead.

readme_path <- function() {
  path <- testthat::test_path("..", "..", "README.md")
  if (!file.exists(path)) testthat::skip("README.md is not part of the installed package")
  path
}

# The fenced ```r blocks of the README, in order.
readme_r_blocks <- function() {
  lines <- readLines(readme_path(), warn = FALSE)
  starts <- which(lines == "```r")
  ends <- which(lines == "```")
  lapply(starts, function(s) {
    e <- min(ends[ends > s])
    lines[(s + 1):(e - 1)]
  })
}

run_block <- function(code, env) {
  utils::capture.output(for (e in parse(text = code)) {
    v <- withVisible(eval(e, env))
    if (v$visible) print(v$value)
  })
}

test_that("the README's R blocks run and print what the README shows", {
  skip_if_no_fastlstm()
  blocks <- readme_r_blocks()
  # Installing is the install journey's (make test-install), not this test's.
  installing <- vapply(blocks, function(b) any(grepl("install", b)), TRUE)
  expect_gte(sum(!installing), 2)
  for (block in blocks[!installing]) {
    dir <- tempfile("readme-")
    dir.create(dir)
    old <- setwd(dir)
    env <- new.env(parent = globalenv())
    if (any(grepl('convert_model("model.keras")', block, fixed = TRUE))) {
      # The model the block speaks of: one built with Keras's own LSTM.
      model <- keras_model_sequential(input_shape = c(10, 8))
      model$add(keras$layers$LSTM(4L))
      layer_dense(model, 1)
      save_model(model, "model.keras")
    }
    printed <- run_block(block, env)
    setwd(old)
    # Each "## value" comment is what the line above it prints.
    shown <- sub("^## ", "", grep("^## ", block, value = TRUE))
    expect_identical(printed[printed %in% shown], shown)
    unlink(dir, recursive = TRUE)
  }
})

test_that("the README's one-line R examples run", {
  skip_if_no_fastlstm()
  text <- paste(readLines(readme_path(), warn = FALSE), collapse = "\n")
  examples <- c(
    "layer_bidirectional(layer = layer_lstm(units = 4))",
    "layer_rnn(cell = rnn_cell_lstm(4))",
    "layer_lstm(units = 16, input_shape = c(20, 3))"
  )
  for (example in examples) {
    expect_true(grepl(example, gsub("\\s+", " ", text), fixed = TRUE), label = example)
    expect_s3_class(eval(parse(text = example)[[1]]), "keras.src.layers.layer.Layer")
  }
})
