# install_fastlstm() where pip can reach no package index: it fails while
# installing Keras, says so with pip's own reason, and removes the
# environment it had created.
env <- commandArgs(trailingOnly = TRUE)[[1]]
err <- tryCatch(fastlstm::install_fastlstm(envname = env), error = function(e) e)
stopifnot(inherits(err, "fastlstm_install_error"))
message <- gsub("\\s+", " ", conditionMessage(err)) # cli wraps lines
cat(message, "\n")
stopifnot(
  grepl("failed while installing Keras and the backend", message, fixed = TRUE),
  grepl("keras", message, fixed = TRUE),
  grepl("was removed", message, fixed = TRUE),
  !file.exists(env)
)
