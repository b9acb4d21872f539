#' Install fastlstm's Python side
#'
#' Creates a Python virtual environment (by default `r-fastlstm`, which
#' fastlstm finds on its own) with the `fastlstm` Python package and a Keras
#' backend, the reticulate way: [reticulate::virtualenv_create()] then
#' [reticulate::py_install()]. Restart R afterwards.
#'
#' @param envname Name of (or path to) the virtual environment.
#' @param backend The Keras backend to install: `"tensorflow"` (the CPU
#'   build), `"jax"` or `"torch"`. Select it at run time with the
#'   `KERAS_BACKEND` environment variable.
#' @param fastlstm What pip installs for fastlstm: the name on a package
#'   index, a path to a source checkout, or a URL.
#' @param python The Python (>= 3.10) the environment is made from; `NULL`
#'   lets reticulate find one.
#' @param ... Other arguments of [reticulate::py_install()].
#' @returns The environment name, invisibly.
#' @export
#' @examples
#' \dontrun{
#' install_fastlstm()
#' install_fastlstm(backend = "jax", fastlstm = "path/to/fastlstm")
#' }
install_fastlstm <- function(envname = "r-fastlstm",
                             backend = c("tensorflow", "jax", "torch"),
                             fastlstm = "fastlstm", python = NULL, ...) {
  backend <- match.arg(backend)
  backend_package <- switch(backend,
    tensorflow = "tensorflow-cpu",
    jax = "jax",
    torch = "torch"
  )
  reticulate::virtualenv_create(envname, python = python)
  reticulate::py_install(
    c(fastlstm, "keras>=3.15", backend_package),
    envname = envname, method = "virtualenv", pip = TRUE, ...
  )
  cli::cli_inform(c(
    v = "Installed fastlstm with the {backend} backend in {.file {envname}}.",
    i = "Restart R, then {.code library(fastlstm)}; set {.envvar KERAS_BACKEND} to {.val {backend}} if it is not TensorFlow."
  ))
  invisible(envname)
}
