# The seed example (the layer_lstm() reference page) as a new user runs it
# after install_fastlstm(): no RETICULATE_PYTHON, a fresh R process.
env <- normalizePath(commandArgs(trailingOnly = TRUE)[[1]])
stopifnot(Sys.getenv("RETICULATE_PYTHON") == "")
library(fastlstm)

printed <- utils::capture.output({
  input <- random_uniform(c(32, 10, 8))
  output <- input |> layer_lstm(4)
  print(shape(output))

  lstm <- layer_lstm(units = 4, return_sequences = TRUE, return_state = TRUE)
  c(whole_seq_output, final_memory_state, final_carry_state) %<-% lstm(input)
  print(shape(whole_seq_output))
  print(shape(final_memory_state))
  print(shape(final_carry_state))
})
writeLines(printed)
stopifnot(identical(printed, c("shape(32, 4)", "shape(32, 10, 4)",
                               "shape(32, 4)", "shape(32, 4)")))

# It ran in the environment install_fastlstm() made, on the fastlstm
# installed there (not a development checkout).
prefix <- normalizePath(reticulate::import("sys")$prefix)
module <- normalizePath(reticulate::py_to_r(reticulate::import("fastlstm")$`__file__`))
cat("Python environment:", prefix, "\nfastlstm module:", module, "\n")
stopifnot(identical(prefix, env), startsWith(module, env))

# The carried package's compiled kernel was built in the new environment:
# TensorFlow on a CPU runs it.
kernel <- lstm_plan(lstm, input)$kernel
cat("kernel:", kernel, "\n")
carried <- system.file("fastlstm-python", package = "fastlstm")
if (dir.exists(file.path(carried, "csrc"))) stopifnot(identical(kernel, "native"))
