"""Builds fastlstm's native CPU kernel (csrc/): one C++ core on oneDNN behind
a JAX FFI binding, a TensorFlow op and a C library that PyTorch's custom ops
call. Everything else is in pyproject.toml.

Each binding is compiled against the framework installed where the build
runs, so install fastlstm after TensorFlow or JAX and without build
isolation (`pip install --no-build-isolation fastlstm`). A binding whose
framework, headers or compiler is missing is skipped, never failing the
install: fastlstm then runs its loop there, and `fastlstm.plan()` says why,
from the reasons written to `fastlstm/_native_build.json`. Set
FASTLSTM_REQUIRE_NATIVE=1 to make a skipped binding an error instead.
"""

import importlib.metadata
import importlib.util
import json
import os
import pathlib

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "csrc"
CORE = f"{CSRC}/lstm_onednn.cc"


def _distribution_file(dist, suffix):
    """The installed file of `dist` whose path ends with `suffix`, or None."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            return pathlib.Path(f.locate()).resolve()
    return None


def _onednn():
    """(include dir, lib dir) of the oneDNN wheels, or raise with the fix."""
    header = _distribution_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _distribution_file("onednn-cpu-gomp", "libdnnl.so.3")
    if header is None or library is None:
        raise RuntimeError(
            "oneDNN was not found: pip install onednn-cpu-gomp==2023.2.0 "
            "onednn-devel-cpu-gomp==2023.2.0"
        )
    return str(header.parents[2]), str(library.parent)


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _jax_flags():
    jaxlib = _package_dir("jaxlib")
    if jaxlib is None or not (jaxlib / "include/xla/ffi/api/ffi.h").exists():
        raise RuntimeError("JAX (jaxlib with its XLA FFI headers) is not installed here")
    return {"include_dirs": [str(jaxlib / "include")]}


def _tensorflow_flags():
    tf = _package_dir("tensorflow")
    if tf is None or not (tf / "include/tensorflow/c/kernels.h").exists():
        raise RuntimeError("TensorFlow (with its C API headers) is not installed here")
    framework = next(iter(sorted(tf.glob("libtensorflow_framework.so*"))), None)
    if framework is None:
        raise RuntimeError(f"libtensorflow_framework.so was not found in {tf}")
    return {
        "include_dirs": [str(tf / "include")],
        "library_dirs": [str(tf)],
        "libraries": [f":{framework.name}"],
    }


def _no_flags():
    # A plain C library for ctypes: nothing of a framework's.
    return {}


C_API = f"{CSRC}/c_api.cc"
BINDINGS = {
    # extension name: (framework, its sources, its flags)
    "fastlstm._onednn_jax": ("jax", [C_API, f"{CSRC}/jax_ffi.cc"], _jax_flags),
    "fastlstm._onednn_tf": ("tensorflow", [C_API, f"{CSRC}/tf_op.cc"], _tensorflow_flags),
    # PyTorch's custom ops call the C functions through ctypes.
    "fastlstm._onednn_torch": ("torch", [C_API], _no_flags),
}


class BuildNative(build_ext):
    """Builds each binding it can; records why the others were skipped."""

    def build_extensions(self):
        report = {}
        required = os.environ.get("FASTLSTM_REQUIRE_NATIVE") == "1"
        for ext in self.extensions:
            framework, _, flags = BINDINGS[ext.name]
            try:
                include, libdir = _onednn()
                extra = flags()
                ext.include_dirs += [CSRC, include] + extra.get("include_dirs", [])
                ext.library_dirs += [libdir] + extra.get("library_dirs", [])
                ext.libraries += ["dnnl"] + extra.get("libraries", [])
                self.build_extension(ext)
                report[framework] = {"built": True, "reason": ""}
            except Exception as e:  # a missing framework, header or compiler
                if required:
                    raise
                reason = f"{type(e).__name__}: {e}".strip()
                self.warn(f"fastlstm: skipping the {framework} kernel: {reason}")
                report[framework] = {"built": False, "reason": reason}
        regular = pathlib.Path(self._report_paths()[1])
        regular.parent.mkdir(parents=True, exist_ok=True)
        regular.write_text(json.dumps(report, indent=1) + "\n")

    # The report travels with the extensions: into the wheel, or next to the
    # sources in an editable install.
    def _report_paths(self):
        build_py = self.get_finalized_command("build_py")
        inplace, regular = self._get_inplace_equivalent(build_py, self.extensions[0])
        name = "_native_build.json"
        return (
            os.path.join(os.path.dirname(inplace), name),
            os.path.join(os.path.dirname(regular), name),
        )

    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        self.copy_file(*reversed(self._report_paths()))

    def get_outputs(self):
        report = self._report_paths()[0 if self.inplace else 1]
        return [p for p in super().get_outputs() if os.path.exists(p)] + [report]

    def get_output_mapping(self):
        mapping = {
            out: src for out, src in super().get_output_mapping().items()
            if os.path.exists(src)
        }
        inplace, regular = self._report_paths()
        mapping[inplace] = regular
        return mapping


def _extension(name):
    _, sources, _ = BINDINGS[name]
    return Extension(
        name,
        sources=[CORE] + sources,
        language="c++",
        optional=True,  # a binding that cannot build is skipped (see above)
        extra_compile_args=["-std=c++17", "-O2", "-fopenmp", "-w"],
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[_extension(name) for name in BINDINGS],
    cmdclass={"build_ext": BuildNative},
)
