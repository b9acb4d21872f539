#' Install fastlstm's Python side
#'
#' Makes (or reuses) a Python virtual environment with Keras, a Keras
#' backend and the `fastlstm` Python package that this R package carries
#' (the same version, built into the R package from the same source), the
#' reticulate way. The backend goes in first and fastlstm last, built
#' against it. If anything fails, an environment this call created is
#' removed again, so a second try starts clean.
#'
#' On Linux with an NVIDIA driver (`nvidia-smi` lists a GPU) it installs the
#' CUDA builds, as keras3's `install_keras()` does: `tensorflow[and-cuda]`,
#' `jax[cuda12]`, or PyTorch's default Linux wheels (built with CUDA).
#' Elsewhere it installs the CPU builds (`tensorflow-cpu` on Linux,
#' `tensorflow` on other systems; `jax`; PyTorch's CPU wheels on Linux).
#' It says which it chose and why; `gpu = TRUE` or `FALSE` decides instead.
#'
#' fastlstm remembers the environment (in a file under
#' [tools::R_user_dir()]), so after a restart `library(fastlstm)` finds it,
#' whether `envname` is a name or a path.
#'
#' @section With keras3:
#' keras3 binds reticulate to its environment, `"r-keras"` (made by
#' `keras3::install_keras()`), whichever package is attached first. Install
#' fastlstm into it:
#'
#' ```r
#' fastlstm::install_fastlstm(envname = "r-keras")
#' ```
#'
#' then restart R: keras3 and fastlstm both use that environment, in either
#' attach order, with nothing else to set. What the environment already has
#' (Keras, the backend, its GPU build) is kept; only what is missing is
#' installed. Where `"r-keras"` does not exist yet, this call makes it, and
#' keras3 uses it from then on. In a session whose Python has no fastlstm,
#' the first fastlstm function called stops with an error that names the
#' Python in use and gives the call that fixes it.
#'
#' @param envname Name of, or path to, the virtual environment. An existing
#'   environment is reused (and left in place if the installation fails).
#'   `"r-keras"` is keras3's.
#' @param backend The Keras backend to install: `"tensorflow"`, `"jax"` or
#'   `"torch"`. Select it at run time with the `KERAS_BACKEND` environment
#'   variable (TensorFlow is Keras's default).
#' @param gpu `NA` (the default) to detect an NVIDIA GPU (Linux only);
#'   `TRUE` for the CUDA builds, `FALSE` for the CPU builds.
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
#' # beside keras3, in the environment keras3 uses:
#' install_fastlstm(envname = "r-keras")
#' }
install_fastlstm <- function(envname = "r-fastlstm",
                             backend = c("tensorflow", "jax", "torch"),
                             gpu = NA,
                             python = NULL, fastlstm = NULL,
                             pip_options = character()) {
  backend <- match.arg(backend)
  if (!(is.character(envname) && length(envname) == 1 && nzchar(envname))) {
    abort("{.arg envname} must be a name or a path, not {describe_value(envname)}.",
          class = "fastlstm_bad_argument")
  }
  if (!(is.logical(gpu) && length(gpu) == 1)) {
    abort("{.arg gpu} must be NA (detect), TRUE or FALSE, not {describe_value(gpu)}.",
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
  builds <- backend_builds(backend, gpu)
  cli::cli_inform(c(i = "{builds$choice}: {builds$why}."))
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
    # --upgrade, and nothing the environment can already import (keras3's
    # environment keeps its Keras and its backend build).
    step <- "installing Keras and the backend"
    wanted <- c(keras = "keras>=3.15", builds$packages)
    missing <- wanted[!python_has_modules(env_python, names(wanted))]
    if (length(missing)) {
      pip_install(env_python, unname(missing),
                  c(if (any(names(missing) == backend)) builds$pip_options,
                    pip_options))
    }
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
  keras3_hint <- if (keras3_installed()) {
    if (identical(envname, "r-keras")) {
      "keras3 uses this environment too: both packages work in either attach order."
    } else {
      "keras3 is installed and binds R to its own environment, {.val r-keras}: to use fastlstm beside keras3, run {.code fastlstm::install_fastlstm(envname = \"r-keras\")}."
    }
  }
  cli::cli_inform(c(
    v = "Installed fastlstm with the {backend} backend ({builds$build}) in {.file {envname}}.",
    i = "Restart R, then {.code library(fastlstm)}: it finds this environment again (remembered in {.file {remembered_python_file()}}).",
    i = backend_hint,
    i = keras3_hint
  ))
  invisible(python_path)
}

#' Which builds install_fastlstm() installs: GPU detection
#'
#' `detect_nvidia_gpu()` says whether this machine can run the CUDA builds
#' of the backends: a Linux system whose NVIDIA driver's `nvidia-smi` lists
#' at least one GPU (keras3's `install_keras()` asks the same). Its inputs
#' can be given, so the decision can be checked without a GPU.
#'
#' @param sysname The operating system, as `Sys.info()[["sysname"]]` gives
#'   it.
#' @param nvidia_smi The path of `nvidia-smi`, `""` where there is none; by
#'   default the one on `PATH`.
#' @returns `TRUE` or `FALSE`, with an attribute `"why"`: a sentence that
#'   says what was found.
#' @noRd
detect_nvidia_gpu <- function(sysname = Sys.info()[["sysname"]],
                              nvidia_smi = Sys.which("nvidia-smi")) {
  answer <- function(gpu, why) structure(gpu, why = why)
  if (!identical(sysname, "Linux")) {
    return(answer(FALSE, sprintf("the system is %s, and the CUDA builds are for Linux", sysname)))
  }
  if (!nzchar(nvidia_smi)) {
    return(answer(FALSE, "no NVIDIA driver was found (no nvidia-smi on the PATH)"))
  }
  listed <- tryCatch(
    suppressWarnings(system2(nvidia_smi, "-L", stdout = TRUE, stderr = FALSE)),
    error = function(e) character()
  )
  gpus <- grep("^GPU [0-9]+: ", listed, value = TRUE)
  if (!length(gpus)) {
    return(answer(FALSE, "nvidia-smi -L lists no GPU"))
  }
  answer(TRUE, sprintf("nvidia-smi -L lists %s",
                       paste(trimws(sub("\\(UUID:.*$", "", gpus)), collapse = "; ")))
}

# The pip requirements (named by the module each provides) for a backend,
# GPU or CPU builds, and the sentence that says which and why.
backend_builds <- function(backend, gpu = NA,
                           sysname = Sys.info()[["sysname"]],
                           nvidia_smi = Sys.which("nvidia-smi")) {
  if (is.na(gpu)) {
    detected <- detect_nvidia_gpu(sysname, nvidia_smi)
    gpu <- isTRUE(detected)
    why <- attr(detected, "why")
  } else {
    why <- sprintf("as asked (gpu = %s)", gpu)
  }
  linux <- identical(sysname, "Linux")
  pip_options <- character()
  packages <- switch(backend,
    tensorflow = if (gpu) "tensorflow[and-cuda]" else if (linux) "tensorflow-cpu" else "tensorflow",
    jax = if (gpu) "jax[cuda12]" else "jax",
    torch = {
      # PyPI's Linux wheels are CUDA builds; the CPU ones have an index.
      if (!gpu && linux) pip_options <- "--extra-index-url=https://download.pytorch.org/whl/cpu"
      "torch"
    }
  )
  names(packages) <- backend
  build <- if (gpu) "CUDA build" else "CPU build"
  list(packages = packages, pip_options = pip_options, gpu = gpu,
       build = build,
       choice = sprintf("Installing the %s of %s", build, backend),
       why = why)
}

# Whether the environment's Python has each module installed (found, not
# imported: importing Keras would load its backend).
python_has_modules <- function(python, modules) {
  code <- "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
  vapply(modules, function(module) {
    status <- suppressWarnings(system2(python, c("-c", shQuote(code), module),
                                       stdout = FALSE, stderr = FALSE))
    identical(status, 0L)
  }, logical(1))
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
