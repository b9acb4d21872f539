# fastlstm extends keras3 (in Enhances) rather than replacing it. Where
# keras3 is installed, fastlstm loads it, the functions fastlstm exports
# under keras3's names are keras3's own objects, and fastlstm registers none
# of its keras3-like S3 methods, so loading fastlstm changes no keras3
# result in either attach order. Where keras3 is absent (it cannot always be
# installed), the lookalikes in R/keras3-lookalike-*.R stand in for it.

keras3_state <- new.env(parent = emptyenv())

keras3_installed <- function() {
  nzchar(system.file(package = "keras3"))
}

# Decided once, when the namespace loads: keras3 installed and loadable.
# A keras3 that is installed but fails to load is reported when fastlstm
# is attached, and the lookalikes stand in.
use_keras3 <- function() {
  keras3_state$error <- NULL
  if (!keras3_installed()) return(FALSE)
  loaded <- tryCatch({
    loadNamespace("keras3")
    TRUE
  }, error = function(e) {
    keras3_state$error <- conditionMessage(e)
    FALSE
  })
  keras3_state$used <- loaded
  loaded
}

# Exported names that are keras3's where keras3 is installed. layer_lstm(),
# rnn_cell_lstm() and layer_rnn() have keras3's names too but are
# fastlstm's own: they build fastlstm's layers (the one attached last wins).
keras3_lookalike_names <- c(
  "%<-%", "compile", "evaluate", "fit", "get_weights", "keras",
  "keras_input", "keras_model", "keras_model_sequential",
  "layer_bidirectional", "layer_dense", "layer_masking", "load_model",
  "op_convert_to_tensor", "random_uniform", "reset_state", "save_model",
  "set_weights", "shape"
)

# Binds each lookalike name in fastlstm's namespace (before it is sealed,
# so the exports and the attached package see the same objects) to keras3's
# exported object of that name. A name keras3 lacks keeps fastlstm's.
adopt_keras3_functions <- function(ns) {
  exports <- getNamespaceExports("keras3")
  for (name in intersect(keras3_lookalike_names, exports)) {
    assign(name, getExportedValue("keras3", name), envir = ns)
  }
  invisible()
}

# The S3 methods fastlstm registers only where keras3 is absent: generic
# (with its package where it is not base's or fastlstm's own) and class.
# The methods are the functions named generic.class in this namespace.
lookalike_methods <- rbind(
  c("print", "keras_shape"), c("format", "keras_shape"),
  c("[", "keras_shape"), c("==", "keras_shape"), c("!=", "keras_shape"),
  c("Summary", "keras_shape"), c("as.integer", "keras_shape"),
  c("as.list", "keras_shape"), c("reticulate::r_to_py", "keras_shape"),
  c("zeallot::destructure", "keras_shape"),
  c("print", "keras_training_history"), c("plot", "keras_training_history"),
  c("as.data.frame", "keras_training_history"),
  c("generics::compile", "keras.src.models.model.Model"),
  c("generics::fit", "keras.src.models.model.Model"),
  c("evaluate", "keras.src.models.model.Model"),
  c("stats::predict", "keras.src.models.model.Model"),
  c("print", "keras.src.models.model.Model"),
  c("format", "keras.src.models.model.Model"),
  c("summary", "keras.src.models.model.Model"),
  c("reticulate::py_to_r_wrapper", "keras.src.layers.layer.Layer"),
  c("zeallot::destructure", "python.builtin.list"),
  c("zeallot::destructure", "python.builtin.tuple"),
  c("as.array", "tensorflow.python.framework.tensor.Tensor"),
  c("as.array", "jax.jaxlib._jax.Array"),
  c("as.array", "torch.Tensor"),
  c("as.array", "keras.src.backend.common.variables.Variable")
)
colnames(lookalike_methods) <- c("generic", "class")

register_lookalike_methods <- function() {
  ns <- topenv()
  for (i in seq_len(nrow(lookalike_methods))) {
    parts <- strsplit(lookalike_methods[i, "generic"], "::", fixed = TRUE)[[1]]
    generic <- parts[[length(parts)]]
    envir <- if (length(parts) == 2) asNamespace(parts[[1]]) else ns
    class <- lookalike_methods[i, "class"]
    method <- get(paste0(generic, ".", class), envir = ns, inherits = FALSE)
    registerS3method(generic, class, method, envir = envir)
  }
  invisible()
}
