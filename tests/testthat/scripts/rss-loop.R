# Randomized layer_lstm() calls from R (arrays, tensors, layers with masks,
# fresh symbolic inputs, R-side and Python-side errors, do.call() with values
# inlined): after a warm-up, 1,000 more calls must not grow the process's
# memory. Prints "growth_kb <n>" for the test to read: the smallest growth of
# up to three consecutive windows of 1,000 calls (a leak grows in every
# window; the allocator's occasional one-off step, seen as often without R,
# in one). Run with a Keras backend set.
#
# The shapes come from a small set: the backends keep per-shape state (on
# PyTorch memory grows for the first few thousand calls over many distinct
# shapes, in Python alike, then levels off), and the warm-up visits them all.
# Each symbolic call gets a fresh keras_input(): calls on one shared input
# all stay in Keras's functional graph, as they do in Python.
library(fastlstm)
set.seed(12)

rss_kb <- function() {
  status <- readLines("/proc/self/status")
  as.numeric(sub("\\D*(\\d+).*", "\\1", grep("^VmRSS", status, value = TRUE)))
}
# Collect R's garbage, then Python's; a Python call lets reticulate release
# the objects R has just let go of.
settle <- function() {
  invisible(gc())
  reticulate::import("gc")$collect()
  invisible(gc())
  reticulate::py_eval("None")
  rss_kb()
}

one_call <- function() {
  units <- sample(3:4, 1)
  batch <- sample(2:3, 1)
  steps <- sample(c(3, 5), 1)
  features <- 2
  x <- array(runif(batch * steps * features), c(batch, steps, features))
  flags <- list(return_sequences = sample(c(TRUE, FALSE), 1),
                return_state = sample(c(TRUE, FALSE), 1),
                go_backwards = sample(c(TRUE, FALSE), 1))
  kind <- sample(c("array", "tensor", "layer", "symbolic", "r_error",
                   "py_error", "do_call"), 1)
  result <- tryCatch(switch(kind,
    array = do.call(layer_lstm, c(list(x, units), flags)),
    tensor = layer_lstm(op_convert_to_tensor(x), units, dropout = 0.1),
    layer = {
      lstm <- do.call(layer_lstm, c(list(units = units), flags))
      mask <- matrix(TRUE, batch, steps)
      mask[1, 1] <- steps == 1
      lstm(x, mask = mask)
    },
    symbolic = layer_lstm(keras_input(shape(NA, features)), units),
    r_error = layer_lstm(x, units = sample(list(-1, "a", 2.5, NA), 1)[[1]]),
    py_error = layer_lstm(units = units)(array(0, c(batch, steps))),
    do_call = do.call(layer_lstm, list(keras_input(shape(NA, features)), units,
                                       stateful = TRUE))
  ), fastlstm_error = function(e) conditionMessage(e))
  invisible(result)
}

for (i in 1:1000) one_call()
growth <- Inf
for (window in 1:3) {
  before <- settle()
  for (i in 1:1000) one_call()
  growth <- min(growth, settle() - before)
  cat("window", window, "growth_kb", settle() - before, "\n")
  if (growth < 1024) break
}
cat("growth_kb", growth, "\n")
