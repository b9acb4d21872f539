"""The kernel contract (`fastlstm.kernels.KernelModule`) holds for this
backend's module: the layer calls it by the planner's kernel names only."""

import inspect

import keras
import numpy as np
import pytest

from fastlstm import kernels

MODULE = kernels.get()


def _parameters(fn, drop_self=False):
    params = list(inspect.signature(fn).parameters.values())
    return params[1:] if drop_self else params


def test_module_provides_every_member():
    assert isinstance(MODULE, kernels.KernelModule)
    assert isinstance(MODULE.PROJECT_IN_LOOP, bool)
    assert set(MODULE.NATIVE_DTYPES) <= {"float16", "bfloat16", "float32", "float64"}


@pytest.mark.parametrize(
    "name, protocol",
    [
        ("device", kernels.KernelModule.device),
        ("native_status", kernels.KernelModule.native_status),
        ("untaken_branch", kernels.KernelModule.untaken_branch),
        ("recurrence", kernels.KernelModule.recurrence),
        ("cudnn", kernels.FusedKernel.__call__),
        ("native", kernels.FusedKernel.__call__),
    ],
)
def test_function_accepts_the_protocol_signature(name, protocol):
    want = _parameters(protocol, drop_self=True)
    got = {p.name: p for p in _parameters(getattr(MODULE, name))}
    for p in want:
        assert p.name in got, f"{MODULE.__name__}.{name} lacks parameter {p.name!r}"
        assert got[p.name].kind == p.kind, (name, p.name)
        assert got[p.name].default == p.default, (name, p.name)
    extra = [p for p in got.values() if p.name not in {q.name for q in want}]
    assert all(p.default is not inspect.Parameter.empty for p in extra), extra


def test_native_status_is_a_pair_and_native_loads_on_a_cpu():
    loaded, why = MODULE.native_status()
    assert isinstance(loaded, bool) and isinstance(why, str)
    # make test builds the compiled kernel: on a CPU it must be there.
    assert loaded, why
    assert why == ""


def test_device_names_a_known_device():
    assert MODULE.device() in ("cpu", "gpu")


def test_native_kernel_runs_every_step_of_unmasked_rows():
    rng = np.random.default_rng(0)
    b, t, f, u = 2, 3, 4, 5
    x = keras.ops.convert_to_tensor(rng.standard_normal((b, t, f)).astype("float32"))
    zeros = keras.ops.zeros((b, u))
    kernel = keras.ops.convert_to_tensor(rng.standard_normal((f, 4 * u)).astype("float32"))
    recurrent = keras.ops.convert_to_tensor(rng.standard_normal((u, 4 * u)).astype("float32"))
    y, h, c = MODULE.native(x, zeros, zeros, kernel, recurrent, None, None)
    assert tuple(y.shape) == (b, t, u)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(h), keras.ops.convert_to_numpy(y)[:, -1], atol=1e-6
    )
    assert tuple(c.shape) == (b, u)
