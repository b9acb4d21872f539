# Before install_fastlstm(): R bound to a Python that has Keras but no
# fastlstm. The first fastlstm call stops with one error that names that
# Python and the exact call that installs fastlstm there; the journey then
# runs that call.
env <- commandArgs(trailingOnly = TRUE)[[1]]
python <- file.path(env, "bin", "python")
stopifnot(Sys.getenv("RETICULATE_PYTHON") == python)
err <- tryCatch(fastlstm::layer_lstm(units = 4), error = function(e) e)
message <- gsub("\\s+", " ", conditionMessage(err)) # cli wraps lines
cat(message, "\n")
fix <- sprintf('fastlstm::install_fastlstm(envname = "%s")', env)
stopifnot(
  inherits(err, "fastlstm_no_python"),
  grepl("Importing fastlstm failed: No module named 'fastlstm'", message, fixed = TRUE),
  grepl(sprintf("The Python in use is '%s'", python), message, fixed = TRUE),
  grepl(fix, message, fixed = TRUE),
  !grepl("onLoad", message, fixed = TRUE)
)
cat("the error gives:", fix, "\n")
