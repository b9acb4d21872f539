"""Finds and loads fastlstm's compiled CPU kernel (oneDNN's LSTM) for one
backend, or says exactly why it cannot.

`setup.py` builds one binding per framework (`_onednn_jax*.so`, an XLA FFI
library; `_onednn_tf*.so`, a TensorFlow op library) and writes the reason for
any binding it skipped to `_native_build.json`. Loading never raises into a
layer call: the planner asks `status()`, and where the kernel is missing the
plan says why and the loop runs.
"""

import ctypes
import functools
import importlib.metadata
import json
import os
import pathlib

_HERE = pathlib.Path(__file__).parent
_BINDINGS = {"jax": "_onednn_jax", "tensorflow": "_onednn_tf"}
ONEDNN = "onednn-cpu-gomp==2023.2.0"
DISABLE_ENV = "FASTLSTM_DISABLE_NATIVE"


class Unavailable(RuntimeError):
    """The native kernel cannot run here; the message says why."""


def _installed_file(distribution, suffix):
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            path = pathlib.Path(f.locate())
            return path if path.exists() else None
    return None


MALLOC_ENV = "FASTLSTM_KEEP_MALLOC"
# glibc's mallopt() parameters and the values set: buffers up to 256 MB come
# from the heap, up to 512 MB of freed heap stays with the process, and new
# threads allocate from the main heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MALLOC_SETTINGS = (
    (_M_MMAP_THRESHOLD, 256 << 20),
    (_M_TRIM_THRESHOLD, 512 << 20),
    (_M_ARENA_MAX, 1),
)


def keep_large_buffers():
    """Lets glibc reuse large freed buffers instead of mapping fresh pages.

    XLA:CPU allocates its buffers with malloc. A training step of the native
    kernel hands it a workspace of tens of MB, for the backward pass, and
    glibc serves such sizes with a fresh mmap every time: touching its pages
    costs a page fault each (measured: a third of a training step at S on
    JAX). Kept on the heap, as jemalloc or tcmalloc would, the same memory is
    reused. XLA's threads would each get a heap of their own, and those grow
    to 64 MB only, so larger buffers were mapped afresh anyway (60,000 faults
    a training step at 32 rows, 2000 steps, 128 units: 240 against 184 ms);
    so new threads allocate from the main heap: fastlstm sets this when it
    is imported on the JAX backend, before XLA starts its threads. Threads
    that allocated before keep heaps of their own, which glibc also hands to
    some of XLA's threads, so a step now and then still maps afresh. The
    process keeps up to 512 MB of freed heap. FASTLSTM_KEEP_MALLOC=1, or
    glibc's own MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX or GLIBC_TUNABLES,
    leave malloc as it is.
    """
    if os.environ.get(MALLOC_ENV) == "1":
        return
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"} & set(os.environ):
        return
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its allocator is left alone
        return
    for parameter, value in _MALLOC_SETTINGS:
        libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value))


@functools.lru_cache(maxsize=None)
def _load_onednn():
    # The bindings link against libdnnl.so.3 by name. Loading it first, from
    # wherever pip put the oneDNN wheel, lets the dynamic loader resolve them
    # in an editable install and an installed wheel alike.
    path = _installed_file("onednn-cpu-gomp", "libdnnl.so.3")
    if path is None:
        raise Unavailable(f"oneDNN is not installed (pip install {ONEDNN})")
    try:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise Unavailable(f"oneDNN ({path}) did not load: {e}") from e


def _binding_file(backend):
    name = _BINDINGS[backend]
    found = sorted(_HERE.glob(f"{name}.*.so")) + sorted(_HERE.glob(f"{name}.so"))
    if found:
        return found[0]
    report = _HERE / "_native_build.json"
    reason = "fastlstm was installed without building it (no setup.py build ran)"
    if report.exists():
        entry = json.loads(report.read_text()).get(backend, {})
        if entry.get("reason"):
            reason = f"the build skipped it: {entry['reason']}"
    raise Unavailable(
        f"the {backend} binding of the oneDNN kernel was not built: {reason}. "
        "Reinstall fastlstm after the backend, without build isolation: "
        "pip install --no-build-isolation fastlstm"
    )


@functools.lru_cache(maxsize=None)
def _load(backend):
    path = _binding_file(backend)
    _load_onednn()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.load_op_library(str(path))
        return ctypes.CDLL(str(path))
    except Exception as e:  # an ABI mismatch, a missing symbol, ...
        raise Unavailable(f"loading {path.name} failed: {e}") from e


def load(backend):
    """The loaded binding of `backend`; raises `Unavailable` with the reason.

    FASTLSTM_DISABLE_NATIVE=1 turns the kernel off from then on (it is read
    at every call), e.g. to export a SavedModel that a TensorFlow without
    fastlstm can serve.
    """
    if os.environ.get(DISABLE_ENV) == "1":
        raise Unavailable(f"disabled by {DISABLE_ENV}=1")
    return _load(backend)


def status(backend):
    """`(True, "")` where the kernel loads, else `(False, why)`."""
    try:
        load(backend)
        return True, ""
    except Unavailable as e:
        return False, str(e)


def threads(backend):
    """Threads the kernel may use: the backend's intra-op setting, or
    OMP_NUM_THREADS, or the cores this process may run on."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    if backend == "tensorflow":
        import tensorflow as tf

        setting = tf.config.threading.get_intra_op_parallelism_threads()
        if setting > 0:
            return setting
    if backend == "jax":
        # XLA's CPU client takes its thread count from XLA_FLAGS.
        for flag in os.environ.get("XLA_FLAGS", "").split():
            name, _, value = flag.lstrip("-").partition("=")
            if name == "intra_op_parallelism_threads" and value.isdigit():
                return max(1, int(value))
    return len(os.sched_getaffinity(0))
