# install_fastlstm() picks CUDA builds where the machine has an NVIDIA GPU,
# as keras3's install_keras() does. The detection runs with a stand-in
# nvidia-smi, so it is checked on machines without a GPU.

fake_nvidia_smi <- function(listing, status = 0L) {
  dir <- tempfile("fake-nvidia-")
  dir.create(dir)
  path <- file.path(dir, "nvidia-smi")
  writeLines(c(
    "#!/bin/sh",
    # Only `nvidia-smi -L` lists GPUs.
    'if [ "$1" != "-L" ]; then exit 9; fi',
    sprintf("printf '%%s\\n' %s", paste(shQuote(listing), collapse = " ")),
    sprintf("exit %d", status)
  ), path)
  Sys.chmod(path, "0755")
  path
}

with_path <- function(dir, code) {
  old <- Sys.getenv("PATH")
  Sys.setenv(PATH = paste(dir, old, sep = .Platform$path.sep))
  on.exit(Sys.setenv(PATH = old), add = TRUE)
  force(code)
}

h200 <- "GPU 0: NVIDIA H200 (UUID: GPU-8c1f2a3b-0000-1111-2222-333344445555)"

test_that("an NVIDIA GPU listed by nvidia-smi on Linux is detected, and named", {
  smi <- fake_nvidia_smi(c(h200, "GPU 1: NVIDIA H200 (UUID: GPU-0000)"))
  found <- detect_nvidia_gpu(sysname = "Linux", nvidia_smi = smi)
  expect_true(found)
  expect_identical(attr(found, "why"),
                   "nvidia-smi -L lists GPU 0: NVIDIA H200; GPU 1: NVIDIA H200")
  # By default the nvidia-smi on the PATH is asked.
  found <- with_path(dirname(smi), detect_nvidia_gpu(sysname = "Linux"))
  expect_true(found)
})

test_that("no GPU is detected without a driver, with a driver that lists none, or off Linux", {
  expect_false(detect_nvidia_gpu(sysname = "Linux", nvidia_smi = ""))
  expect_match(attr(detect_nvidia_gpu(sysname = "Linux", nvidia_smi = ""), "why"),
               "no NVIDIA driver")
  none <- fake_nvidia_smi("No devices were found", status = 6L)
  found <- detect_nvidia_gpu(sysname = "Linux", nvidia_smi = none)
  expect_false(found)
  expect_identical(attr(found, "why"), "nvidia-smi -L lists no GPU")
  found <- detect_nvidia_gpu(sysname = "Darwin",
                             nvidia_smi = fake_nvidia_smi(h200))
  expect_false(found)
  expect_match(attr(found, "why"), "the system is Darwin")
  # This machine: no nvidia-smi on a PATH made of the system's directories.
  found <- with_path("/nonexistent", detect_nvidia_gpu(
    sysname = "Linux", nvidia_smi = Sys.which("no-such-nvidia-smi")))
  expect_false(found)
})

test_that("a detected GPU gets the CUDA builds of each backend", {
  smi <- fake_nvidia_smi(h200)
  builds <- function(backend) backend_builds(backend, NA, "Linux", smi)
  expect_identical(builds("tensorflow")$packages, c(tensorflow = "tensorflow[and-cuda]"))
  expect_identical(builds("jax")$packages, c(jax = "jax[cuda12]"))
  expect_identical(builds("torch")$packages, c(torch = "torch"))
  # PyPI's Linux torch wheels are CUDA builds: no CPU index.
  expect_identical(builds("torch")$pip_options, character())
  expect_identical(builds("jax")$choice, "Installing the CUDA build of jax")
  expect_match(builds("jax")$why, "GPU 0: NVIDIA H200", fixed = TRUE)
})

test_that("without a GPU, or off Linux, the CPU builds are installed", {
  builds <- function(backend, sysname = "Linux") backend_builds(backend, NA, sysname, "")
  expect_identical(builds("tensorflow")$packages, c(tensorflow = "tensorflow-cpu"))
  expect_identical(builds("jax")$packages, c(jax = "jax"))
  expect_identical(builds("torch")$packages, c(torch = "torch"))
  expect_identical(builds("torch")$pip_options,
                   "--extra-index-url=https://download.pytorch.org/whl/cpu")
  expect_identical(builds("tensorflow", "Darwin")$packages, c(tensorflow = "tensorflow"))
  expect_identical(builds("torch", "Darwin")$pip_options, character())
  expect_identical(builds("tensorflow")$choice, "Installing the CPU build of tensorflow")
})

test_that("gpu = TRUE or FALSE decides instead of the detection, and says so", {
  smi <- fake_nvidia_smi(h200)
  cpu <- backend_builds("jax", FALSE, "Linux", smi)
  expect_identical(cpu$packages, c(jax = "jax"))
  expect_identical(cpu$why, "as asked (gpu = FALSE)")
  gpu <- backend_builds("tensorflow", TRUE, "Linux", "")
  expect_identical(gpu$packages, c(tensorflow = "tensorflow[and-cuda]"))
  expect_identical(gpu$why, "as asked (gpu = TRUE)")
})

test_that("install_fastlstm() says which builds it chose and why before it installs", {
  smi <- fake_nvidia_smi(h200)
  source <- tempfile("fastlstm-source-")
  dir.create(source)
  file.create(file.path(source, "pyproject.toml"))
  env <- tempfile("env-")
  # A Python that does not exist stops the install right after the choice.
  with_path(dirname(smi), {
    expect_message(
      err <- tryCatch(
        install_fastlstm(envname = env, backend = "jax", fastlstm = source,
                         python = file.path(tempdir(), "no-such-python")),
        error = function(e) e
      ),
      "Installing the CUDA build of jax: nvidia-smi -L lists GPU 0: NVIDIA H200",
      fixed = TRUE
    )
  })
  expect_s3_class(err, "fastlstm_install_error")
  expect_false(dir.exists(env))
  expect_error(install_fastlstm(gpu = "yes"), class = "fastlstm_bad_argument")
  expect_error(install_fastlstm(gpu = "yes"), '`gpu` must be NA (detect), TRUE or FALSE, not "yes"',
               fixed = TRUE)
})
