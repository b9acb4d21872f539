#' Install fastlstm's Python side
#'
#' Makes a Python virtual environment with Keras, a Keras backend and the
#' `fastlstm` Python package that this R package carries (the same version,
#' built into the R package from the same source), the reticulate way. The
#' backend goes in first and fastlstm last, built against it. If anything
#' fails, an environment this call created is removed again, so a second try
#' starts clean.
#'
#' fastlstm remembers the environment (in a file under
#' [tools::R_user_dir()]), so after a restart `library(fastlstm)` finds it,
#' whether `envname` is a name or a path. To use the same Python with keras3
#' in one session, attach fastlstm first, or call
#' `reticulate::use_virtualenv(envname)` before either package touches
#' Python.
#'
#' @param envname Name of, or path to, the virtual environment. An existing
#'   environment is reused (and left in place if the installation fails).
#' @param backend The Keras backend to install: `"tensorflow"` (the CPU
#'   build), `"jax"` or `"torch"`. Select it at run time with the
#'   `KERAS_BACKEND` environment variable (TensorFlow is Keras's default).
#' @param python The Python (>= 3.10) the environment is made from; `NULL`
#'   lets reticulate find one.
#' @param fastlstm What pip installs for fastlstm; `NULL` (the default) for
#'   the copy this package carries, else a path to a fastlstm source
#'   checkout.
#' @param pip_options Other options for `pip install`, e.g.
#'   `"--index-url=..."`.
#' @returns The path of the environment's Python, invisibly.
#' @export
#' @examples
#' \dontrun{
#' install_fastlstm()
#' install_fastlstm(envname = "~/venvs/fastlstm", backend = "jax")
#' }
install_fastlstm <- function(envname = "r-fastlstm",
                             backend = c("tensorflow", "jax", "torch"),
                             python = NULL, fastlstm = NULL,
                             pip_options = character()) {
  backend <- match.arg(backend)
  if (!(is.character(envname) && length(envname) == 1 && nzchar(envname))) {
    abort("{.arg envname} must be a name or a path, not {describe_value(envname)}.",
          class = "fastlstm_bad_argument")
  }
  source <- fastlstm %||% carried_python_package()
  if (!file.exists(file.path(source, "pyproject.toml"))) {
    abort(
      c("{.arg fastlstm} must be a fastlstm source directory (with a {.file pyproject.toml}), not {.path {source}}.",
        i = "Leave {.arg fastlstm} out to install the copy this package carries."),
      class = "fastlstm_bad_argument"
    )
  }
  if (is_env_path(envname)) envname <- normalizePath(envname, mustWork = FALSE)
  existed <- reticulate::virtualenv_exists(envname)
  done <- FALSE
  on.exit(if (!done && !existed) remove_environment(envname), add = TRUE)
  # pip builds in the source tree, which may lie in a read-only library.
  build_dir <- tempfile("fastlstm-src-")
  on.exit(unlink(build_dir, recursive = TRUE), add = TRUE)

  step <- "creating the virtual environment"
  failure <- tryCatch({
    if (!existed) {
      # packages = FALSE: no upgrade of pip and friends (the bundled pip
      # installs wheels; setuptools comes with the build tools below).
      create_args <- list(envname, packages = FALSE)
      if (!is.null(python)) create_args$python <- python
      do.call(reticulate::virtualenv_create, create_args)
    }
    env_python <- reticulate::virtualenv_python(envname)
    # The backend first, then the build tools, then fastlstm, built against
    # what is installed (its compiled kernel links to the backends). No
    # --upgrade: what the environment already has is kept.
    step <- "installing Keras and the backend"
    pip_install(env_python, c("keras>=3.15", backend_requirement(backend)),
                pip_options)
    step <- "installing fastlstm's build tools"
    pip_install(env_python, build_requirements(source), pip_options)
    step <- "building and installing fastlstm"
    dir.create(build_dir)
    file.copy(list.files(source, full.names = TRUE), build_dir,
              recursive = TRUE)
    pip_install(env_python, build_dir,
                c("--no-build-isolation", pip_options))
    NULL
  }, error = function(e) e)

  if (!is.null(failure)) {
    abort(
      c("Installing fastlstm's Python side in {.file {envname}} failed while {step}.",
        x = "{conditionMessage(failure)}",
        i = if (!existed) "The environment this call created was removed; fix the cause and run {.fn install_fastlstm} again."),
      class = "fastlstm_install_error"
    )
  }
  done <- TRUE
  python_path <- absolute_path(reticulate::virtualenv_python(envname))
  remember_python(python_path)
  backend_hint <- if (backend != "tensorflow") {
    "Set {.envvar KERAS_BACKEND} to {.val {backend}} before the first use (e.g. in {.file ~/.Renviron})."
  }
  cli::cli_inform(c(
    v = "Installed fastlstm with the {backend} backend in {.file {envname}}.",
    i = "Restart R, then {.code library(fastlstm)}: it finds this environment again (remembered in {.file {remembered_python_file()}}).",
    i = backend_hint,
    i = "With keras3 in the same session, attach fastlstm first, or run {.code reticulate::use_python(\"{python_path}\")} before either package uses Python."
  ))
  invisible(python_path)
}

is_env_path <- function(envname) {
  grepl("/", envname, fixed = TRUE) || startsWith(envname, "~") ||
    startsWith(envname, ".")
}

# pip's output goes to the console as it runs; its errors are kept for the
# message.
pip_install <- function(python, packages, pip_options = character()) {
  errors <- tempfile()
  on.exit(unlink(errors), add = TRUE)
  status <- system2(python, c("-m", "pip", "install", "--no-user",
                              "--disable-pip-version-check", pip_options,
                              shQuote(packages)),
                    stdout = "", stderr = errors)
  if (!identical(status, 0L)) {
    lines <- readLines(errors, warn = FALSE)
    lines <- lines[nzchar(trimws(lines))]
    stop(paste(c(sprintf("pip install %s exited with status %s:",
                         paste(packages, collapse = " "), status),
                 utils::tail(lines, 5)), collapse = "\n"), call. = FALSE)
  }
  invisible()
}

backend_requirement <- function(backend) {
  switch(backend,
    tensorflow = "tensorflow-cpu",
    jax = "jax",
    torch = "torch"
  )
}

# setuptools builds fastlstm; with its compiled kernel (csrc/) also oneDNN.
build_requirements <- function(source) {
  c("setuptools>=77",
    if (dir.exists(file.path(source, "csrc"))) {
      c("onednn-cpu-gomp==2023.2.0", "onednn-devel-cpu-gomp==2023.2.0")
    })
}

# The Python package this R package was built with (inst/fastlstm-python,
# generated by the Makefile before R CMD build).
carried_python_package <- function() {
  path <- system.file("fastlstm-python", package = "fastlstm")
  if (!nzchar(path)) {
    abort(
      c("This installation of the fastlstm R package carries no Python package.",
        i = "It was installed from a source directory rather than from a tarball built with {.code make check-r}; pass {.arg fastlstm}, the path to a fastlstm source checkout."),
      call = NULL, class = "fastlstm_install_error"
    )
  }
  path
}

remove_environment <- function(envname) {
  path <- if (is_env_path(envname)) {
    envname
  } else {
    file.path(reticulate::virtualenv_root(), envname)
  }
  if (dir.exists(path)) unlink(path, recursive = TRUE)
}

remember_python <- function(python) {
  file <- remembered_python_file()
  dir.create(dirname(file), recursive = TRUE, showWarnings = FALSE)
  writeLines(absolute_path(python), file)
}

# An absolute path that keeps the last link: an environment's bin/python is
# a link to the Python it was made from, and only the link knows the
# environment.
absolute_path <- function(path) {
  file.path(normalizePath(dirname(path)), basename(path))
}
