"""The native kernel in JAX: an XLA FFI call under JAX's transformations."""

import keras
import numpy as np

from fastlstm import _compiled, kernels


def test_jax_kernel_threads_follow_xla_flags(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--intra_op_parallelism_threads=1")
    assert _compiled.threads("jax") == 1


def test_jax_native_kernel_under_jit_grad_and_vmap():
    import jax
    import jax.numpy as jnp

    module = kernels.get()
    rng = np.random.default_rng(1)
    b, t, f, u = 3, 5, 2, 4
    x, h0, c0 = (jnp.asarray(rng.standard_normal(s), "float32") for s in ((b, t, f), (b, u), (b, u)))
    w = jnp.asarray(rng.standard_normal((f, 4 * u)), "float32")
    r = jnp.asarray(rng.standard_normal((u, 4 * u)), "float32")
    bias = jnp.asarray(rng.standard_normal((4 * u,)), "float32")
    lengths = jnp.array([5, 2, 1])

    def loss(fn, *args):
        y, h, c = fn(*args, lengths)
        return jnp.sum(y * jnp.cos(y)) + jnp.sum(h) + jnp.sum(c * 0.5)

    def loop(x, h0, c0, w, r, bias, lengths):
        mask = jnp.arange(t)[None, :] < lengths[:, None]
        _, y, h, c = module.recurrence(
            x @ w + bias, h0, c0, r, mask, activation=keras.activations.tanh,
            recurrent_activation=keras.activations.sigmoid,
            zero_output_for_mask=True, return_sequences=True, unroll=False,
        )
        return y, h, c

    args = (x, h0, c0, w, r, bias)
    got = jax.jit(jax.grad(lambda *a: loss(module.native, *a), argnums=range(6)))(*args)
    want = jax.grad(lambda *a: loss(loop, *a), argnums=range(6))(*args)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=1e-5)
    batched = jax.vmap(lambda x: module.native(x, h0, c0, w, r, bias, None)[0])(
        jnp.stack([x, x + 1.0])
    )
    np.testing.assert_allclose(
        np.asarray(batched[1]),
        np.asarray(module.native(x + 1.0, h0, c0, w, r, bias, None)[0]),
        atol=1e-6,
    )
