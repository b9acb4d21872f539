"""Finds and loads a binding of fastlstm's compiled CPU kernel (the C++ core
of csrc/ on oneDNN), or says exactly why it cannot.

`setup.py` builds one binding per framework (`_onednn_jax*.so`, an XLA FFI
library; `_onednn_tf*.so`, a TensorFlow op library; `_onednn_torch*.so`, a C
library for PyTorch's custom ops) and writes the reason for any binding it
skipped to `_native_build.json`. Loading never raises into a layer call: the
planner reads a backend's capabilities, and where the kernel is missing the
plan says why and the loop runs. Each backend module says which binding it
loads and how (`ctypes.CDLL`, or TensorFlow's `load_op_library`).
"""

import ctypes
import functools
import importlib.metadata
import json
import os
import pathlib

# The bindings lie beside the package's modules.
_HERE = pathlib.Path(__file__).parent.parent
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
# glibc's mallopt() parameters and the values set: buffers up to 1 GB come
# from the heap, up to 1 GB of freed heap stays with the process, and new
# threads allocate from the main heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MALLOC_SETTINGS = (
    (_M_MMAP_THRESHOLD, 1 << 30),
    (_M_TRIM_THRESHOLD, 1 << 30),
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
    is imported on the JAX backend, before XLA starts its threads. Buffers
    up to 1 GB come from the heap: a left-padded training step, whose
    program also holds the buffers of the loop that stands by for masks
    with holes, passed 256 MB at 1000 steps (30,000 faults a step; at the
    bench's LONG shape 198 against 154 ms). Threads
    that allocated before keep heaps of their own, which glibc also hands to
    some of XLA's threads, so a step now and then still maps afresh. The
    process keeps up to 1 GB of freed heap. FASTLSTM_KEEP_MALLOC=1, or
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


def _binding_file(binding, backend):
    found = sorted(_HERE.glob(f"{binding}.*.so")) + sorted(_HERE.glob(f"{binding}.so"))
    if found:
        return found[0]
    report = _HERE / "_native_build.json"
    reason = "fastlstm was installed without building it (no setup.py build ran)"
    if report.exists():
        entry = json.loads(report.read_text()).get(backend, {})
        if entry.get("reason"):
            reason = f"the build skipped it: {entry['reason']}"
    raise Unavailable(
        f"the {backend} binding of the compiled kernel was not built: {reason}. "
        "Reinstall fastlstm after the backend, without build isolation: "
        "pip install --no-build-isolation fastlstm"
    )


# (binding, backend) -> the loaded library, or the `Unavailable` that says
# why not. A plain dict, not a cache decorator, so that tracers (dynamo) read
# it without stopping.
_LOADED = {}


def _open(binding, backend, loader):
    path = _binding_file(binding, backend)
    _load_onednn()
    try:
        return loader(str(path))
    except Exception as e:  # an ABI mismatch, a missing symbol, ...
        raise Unavailable(f"loading {path.name} failed: {e}") from e


def load(binding, backend, loader=ctypes.CDLL):
    """The loaded `binding` (a file name's stem) of `backend`, opened once
    with `loader`; raises `Unavailable` with the reason.

    FASTLSTM_DISABLE_NATIVE=1 turns the kernel off from then on (it is read
    at every call): the loop runs instead.
    """
    if os.environ.get(DISABLE_ENV) == "1":
        raise Unavailable(f"disabled by {DISABLE_ENV}=1")
    key = (binding, backend)
    if key not in _LOADED:
        try:
            _LOADED[key] = _open(binding, backend, loader)
        except Unavailable as e:
            _LOADED[key] = e
    found = _LOADED[key]
    if isinstance(found, Unavailable):
        raise found
    return found


def status(binding, backend, loader=ctypes.CDLL):
    """`(True, "")` where the binding loads, else `(False, why)`."""
    try:
        load(binding, backend, loader)
        return True, ""
    except Unavailable as e:
        return False, str(e)


def threads(framework_setting=0):
    """Threads the kernel may use: OMP_NUM_THREADS, else the framework's
    intra-op setting (0 where it has none), else the cores this process may
    run on."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    if framework_setting and framework_setting > 0:
        return int(framework_setting)
    return len(os.sched_getaffinity(0))


class CError:
    """An error buffer for the C functions of csrc/c_api.cc."""

    SIZE = 1024

    def __init__(self):
        self.buffer = ctypes.create_string_buffer(self.SIZE)
        self.size = ctypes.c_size_t(self.SIZE)

    def check(self, result, what):
        if result < 0:
            raise RuntimeError(f"fastlstm's compiled kernel ({what}): {self.buffer.value.decode()}")
        return result


_I64, _I32, _PTR, _SIZE = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t
_DIMS = [_I64] * 4
_ERROR = [ctypes.c_char_p, _SIZE]
# csrc/c_api.cc's functions: (dims, [bf16,] then pointers, then threads) and
# the error buffer; each returns an int64.
_C_API = {
    "fastlstm_workspace_bytes": _DIMS + [_I32] + _ERROR,
    "fastlstm_inference_chunk_steps": _DIMS + [_I32] + _ERROR,
    # bf16; x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y, h,
    # c; threads
    "fastlstm_lstm_inference": _DIMS + [_I32] + [_PTR] * 11 + [_I32] + _ERROR,
    # bf16; x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y, h,
    # c, workspace; threads
    "fastlstm_lstm_training": _DIMS + [_I32] + [_PTR] * 12 + [_I32] + _ERROR,
    # bf16; x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y,
    # workspace, dy, dh, dc, dx, dh0, dc0, dkernel, drecurrent_kernel, dbias,
    # scratch
    "fastlstm_lstm_backward": _DIMS + [_I32] + [_PTR] * 20 + _ERROR,
}


def declare_c_api(library):
    """Sets the argument and result types of csrc/c_api.cc's functions in a
    binding that links it; returns the binding."""
    for name, argtypes in _C_API.items():
        function = getattr(library, name)
        function.argtypes = argtypes
        function.restype = _I64
    library.fastlstm_bf16_products_supported.argtypes = []
    library.fastlstm_bf16_products_supported.restype = _I32
    return library


BF16_ENV = "FASTLSTM_DISABLE_BF16"
# binding -> whether its CPU makes bfloat16 products natively.
_BF16 = {}


def bf16_products(binding, backend):
    """Whether the compiled kernel makes its matrix products in bfloat16
    (float32 sums) for bfloat16 calls: the loaded binding's CPU has AMX or
    AVX512-BF16 (csrc: bf16_products_supported()), and
    FASTLSTM_DISABLE_BF16=1 (read at every call) is not set. False where
    the binding has not loaded (ask after `status()`: a TensorFlow op
    library must be loaded by TensorFlow first)."""
    if os.environ.get(BF16_ENV) == "1":
        return False
    loaded = _LOADED.get((binding, backend))
    if loaded is None or isinstance(loaded, Unavailable):
        return False
    if binding not in _BF16:
        try:
            # The loaded file again, by ctypes (TensorFlow loads its binding
            # its own way): every binding links csrc/c_api.cc.
            library = declare_c_api(ctypes.CDLL(str(_binding_file(binding, backend))))
            _BF16[binding] = bool(library.fastlstm_bf16_products_supported())
        except (Unavailable, OSError, AttributeError):
            _BF16[binding] = False
    return _BF16[binding]


def workspace_bytes(library, batch, steps, features, units, threads):
    """The size of a training pass's workspace, from a binding with the C API."""
    error = CError()
    return error.check(
        library.fastlstm_workspace_bytes(
            batch, steps, features, units, threads, error.buffer, error.size
        ),
        "workspace size",
    )
