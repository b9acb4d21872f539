"""The native kernel in JAX: an XLA FFI call under JAX's transformations."""

import keras
import numpy as np
import pytest

from fastlstm import kernels


def test_jax_kernel_threads_follow_xla_flags(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--intra_op_parallelism_threads=1")
    assert kernels.get()._threads() == 1


def _call(name, x, h0, c0, w, r, bias, lengths):
    """`(outputs, h, c)` of a kernel on rows front-aligned to `lengths`."""
    from keras import activations

    from fastlstm import _sequence, equations

    mask = None if lengths is None else equations.lengths_to_mask(lengths, x.shape[1])
    options = kernels.Options(
        activation=activations.tanh, recurrent_activation=activations.sigmoid,
        return_sequences=True, zero_output_for_mask=True,
        layout=_sequence.NO_MASK if mask is None else _sequence.RIGHT_PADDED,
    )
    result = kernels.get().KERNELS[name](
        x, h0, c0, kernels.Weights(w, r, bias), mask, kernels.Dropout(), options
    )
    return result.outputs, result.h, result.c


def test_jax_native_kernel_under_jit_grad_and_vmap():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    b, t, f, u = 3, 5, 2, 4
    x, h0, c0 = (jnp.asarray(rng.standard_normal(s), "float32") for s in ((b, t, f), (b, u), (b, u)))
    w = jnp.asarray(rng.standard_normal((f, 4 * u)), "float32")
    r = jnp.asarray(rng.standard_normal((u, 4 * u)), "float32")
    bias = jnp.asarray(rng.standard_normal((4 * u,)), "float32")
    lengths = jnp.array([5, 2, 1])

    def loss(name, *args):
        y, h, c = _call(name, *args, lengths)
        return jnp.sum(y * jnp.cos(y)) + jnp.sum(h) + jnp.sum(c * 0.5)

    args = (x, h0, c0, w, r, bias)
    got = jax.jit(jax.grad(lambda *a: loss("native", *a), argnums=range(6)))(*args)
    want = jax.grad(lambda *a: loss("loop", *a), argnums=range(6))(*args)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=1e-5)
    batched = jax.vmap(lambda x: _call("native", x, h0, c0, w, r, bias, None)[0])(
        jnp.stack([x, x + 1.0])
    )
    np.testing.assert_allclose(
        np.asarray(batched[1]),
        np.asarray(_call("native", x + 1.0, h0, c0, w, r, bias, None)[0]),
        atol=1e-6,
    )


def test_data_parallel_runs_each_devices_rows_on_that_device():
    """Under keras.distribution.DataParallel the kernel runs on each device's
    shard of the batch (no all-gather of the inputs), with the gradients of
    the shared weights summed over devices."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    devices = jax.devices("cpu")
    assert len(devices) == 2
    rng = np.random.default_rng(2)
    b, t, f, u = 8, 5, 3, 4
    x = jnp.asarray(rng.standard_normal((b, t, f)), "float32")
    h0 = jnp.asarray(rng.standard_normal((b, u)), "float32")
    w = jnp.asarray(rng.standard_normal((f, 4 * u)), "float32")
    r = jnp.asarray(rng.standard_normal((u, 4 * u)), "float32")
    bias = jnp.zeros((4 * u,), "float32")
    lengths = jnp.array([5, 4, 3, 2, 1, 5, 5, 5])

    def grad_of_weights(x, h0, lengths):
        def loss(w):
            y, h, c = _call("native", x, h0, h0, w, r, bias, lengths)
            return jnp.sum(y) + jnp.sum(c * h)

        return jax.jit(jax.grad(loss))

    single = grad_of_weights(x, h0, lengths)(w)
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        mesh = keras.distribution.distribution().device_mesh.backend_mesh
        rows = NamedSharding(mesh, PartitionSpec("batch"))
        args = [jax.device_put(a, rows) for a in (x, h0, lengths)]
        step = grad_of_weights(*args)
        compiled = step.lower(w).compile().as_text()
        distributed = step(w)
    finally:
        keras.distribution.set_distribution(None)
    assert "all-gather" not in compiled
    calls = [line for line in compiled.splitlines() if "custom-call(" in line]
    assert calls and all(f"f32[{b // 2},{t},{u}]" in line for line in calls)
    np.testing.assert_allclose(np.asarray(distributed), np.asarray(single), atol=1e-5)


FAULTS_PER_STEP = r"""
import resource, sys
import keras, numpy as np
import fastlstm
from fastlstm.kernels import jax as module
masked = sys.argv[1] == "1"
batch, steps, features, units = 32, 1000, 16, 128
x = np.random.default_rng(0).standard_normal((batch, steps, features)).astype("float32")
if masked:  # left-padded rows, 0-60% of their steps
    for row, pad in enumerate(np.random.default_rng(1).integers(0, 600, batch)):
        x[row, :pad] = 0.0
y = np.zeros((batch, 1), "float32")
inp = keras.Input((steps, features))
h = keras.layers.Masking(0.0)(inp) if masked else inp
lstm = fastlstm.LSTM(units)
model = keras.Model(inp, keras.layers.Dense(1)(lstm(h)))
model.compile(optimizer="sgd", loss="mse")
mask = (x != 0).any(-1) if masked else None
assert fastlstm.plan(lstm, x, mask=mask, training=True).kernel == "native"
for _ in range(2):
    model.train_on_batch(x, y)
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.train_on_batch(x, y)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# The fewest of a step: some steps may still map afresh (see below).
size = module._compiled.workspace_bytes(
    module._register_targets(), batch, steps, features, units, module._threads()
)
print(min(faults), size // 4096)
"""


@pytest.mark.parametrize("masked", [False, True])
def test_training_steps_reuse_the_workspace_memory(masked):
    """A training step hands XLA the kernel's workspace (82 MB here), larger
    than XLA's threads' own heaps can ever hold: with glibc's defaults every
    step maps it afresh, a page fault per page (measured 60,000 faults a
    step at 2000 steps, a third of its time). fastlstm has glibc serve new
    threads from the main heap, which keeps such buffers; with
    FASTLSTM_KEEP_MALLOC=1 it leaves malloc alone and every step faults.
    A left-padded batch's step (the mask known at run time: the loop
    stands by behind a cond for masks with holes, and XLA reserves its
    buffers too) takes more than 256 MB in all, and reuses it as well.
    Threads that allocated before fastlstm was imported keep heaps of their
    own, which glibc also hands to some of XLA's threads: a step now and
    then (measured: 4 in 25) still maps its buffers afresh. So the fewest
    faults of six steps are compared, each way in a fresh process."""
    import os
    import subprocess
    import sys

    measured = {}
    for keep in ("0", "1"):
        env = dict(os.environ, KERAS_BACKEND="jax", FASTLSTM_KEEP_MALLOC=keep)
        done = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_STEP, "1" if masked else "0"], env=env,
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        faults, workspace_pages = map(float, done.stdout.split()[-2:])
        measured[keep] = faults
    assert measured["0"] < workspace_pages / 10, (measured, workspace_pages)
    assert measured["1"] > workspace_pages / 2, (measured, workspace_pages)


def test_long_inference_is_split_into_chunks():
    """The shape of test_native.py's chunked test does run in chunks."""
    import ctypes

    from fastlstm.kernels import jax as module

    library = module._register_targets()
    error = ctypes.create_string_buffer(256)
    for outputs in (0, 1):
        steps = library.fastlstm_inference_chunk_steps(
            64, 600, 4, 256, outputs, error, len(error)
        )
        assert 1 <= steps < 600, (steps, error.value)
