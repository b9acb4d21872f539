"""Helpers for comparing fastlstm.LSTM with keras.layers.LSTM."""

import keras
import numpy as np
from keras import ops

import fastlstm

BACKEND = keras.config.backend()
ATOL = 2e-5


def to_numpy(x):
    if BACKEND == "torch" and hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(ops.convert_to_numpy(x))


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def make_mask(kind, batch, steps, seed=0):
    """Masks by layout: none, right, left, holes, empty (all-False rows)."""
    if kind == "none":
        return None
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    t = np.arange(steps)[None, :]
    if kind == "right":
        return t < lengths[:, None]
    if kind == "left":
        return t >= (steps - lengths)[:, None]
    if kind == "holes":
        mask = rng.random((batch, steps)) > 0.3
        mask[:, 0] = True
        mask[0, steps // 2] = False
        mask[0, -1] = True
        return mask
    if kind == "empty":
        mask = t >= (steps - lengths)[:, None]
        mask[1 % batch] = False
        return mask
    raise ValueError(kind)


def pair(units=5, **config):
    """A fastlstm.LSTM and a keras.layers.LSTM with the same configuration.

    The reference is Keras's generic loop (use_cudnn=False). On JAX, Keras's
    scan path repeats h0 for leading masked steps where every other Keras path
    (TensorFlow, PyTorch, JAX unrolled) gives zeros; DESIGN.md makes the
    generic semantics the contract, so the JAX reference is unrolled -- except
    with zero_output_for_mask, which Keras's unrolled JAX loop ignores and its
    scan path honours. Elsewhere
    the reference is never unrolled: `unroll` does not change the numbers, and
    Keras's unrolled PyTorch loop fails with go_backwards and a mask.
    """
    layer = fastlstm.LSTM(units, **config)
    ref_config = dict(
        config, use_cudnn=False, unroll=BACKEND == "jax" and not config.get("zero_output_for_mask")
    )
    return layer, keras.layers.LSTM(units, **ref_config)


def build_pair(layer, *references, input_shape):
    layer.build(input_shape)
    for ref in references:
        ref.build(input_shape)
        ref.set_weights(layer.get_weights())


def forward(layer, x, mask=None, initial_state=None, training=False):
    kwargs = {"training": training}
    if mask is not None:
        kwargs["mask"] = ops.convert_to_tensor(mask)
    if initial_state is not None:
        kwargs["initial_state"] = [ops.convert_to_tensor(s) for s in initial_state]
    return [to_numpy(o) for o in as_list(layer(ops.convert_to_tensor(x), **kwargs))]


def grads(layer, x, mask=None, initial_state=None, training=False, seed=1):
    """Gradients of a fixed random projection of every output, with respect
    to the inputs, the initial state and each trainable weight."""
    rng = np.random.default_rng(seed)
    kwargs = {"training": training}
    if mask is not None:
        kwargs["mask"] = ops.convert_to_tensor(mask)
    probes = None

    def loss_of(outs):
        nonlocal probes
        outs = as_list(outs)
        if probes is None:
            probes = [rng.standard_normal(tuple(o.shape)).astype("float32") for o in outs]
        return sum(
            ops.sum(ops.cast(o, "float32") * ops.convert_to_tensor(p))
            for o, p in zip(outs, probes)
        )

    states = [np.asarray(s, "float32") for s in initial_state] if initial_state else []
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x)] + [tf.constant(s) for s in states]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            if states:
                kwargs["initial_state"] = xs[1:]
            loss = loss_of(layer(xs[0], **kwargs))
        result = tape.gradient(loss, xs + [v.value for v in layer.trainable_variables])
        return [to_numpy(g) for g in result]
    if BACKEND == "jax":
        import jax

        def f(trainable, xs):
            if states:
                kwargs["initial_state"] = list(xs[1:])
            out, _ = layer.stateless_call(
                trainable, [v.value for v in layer.non_trainable_variables], xs[0], **kwargs
            )
            return loss_of(out)

        g_vars, g_xs = jax.grad(f, argnums=(0, 1))(
            [v.value for v in layer.trainable_variables],
            [jax.numpy.asarray(x)] + [jax.numpy.asarray(s) for s in states],
        )
        return [to_numpy(g) for g in list(g_xs) + list(g_vars)]
    import torch

    xs = [torch.tensor(a, requires_grad=True) for a in [x] + states]
    for v in layer.trainable_variables:
        v.value.grad = None
    if states:
        kwargs["initial_state"] = xs[1:]
    loss_of(layer(xs[0], **kwargs)).backward()
    return [to_numpy(t.grad) for t in xs] + [
        to_numpy(v.value.grad) for v in layer.trainable_variables
    ]


def assert_all_close(actual, expected, atol=ATOL, what="output"):
    assert len(actual) == len(expected), (len(actual), len(expected))
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{what} {i}: shape {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-4, err_msg=f"{what} {i}")


def fused_stand_in(module):
    """cuDNN's part of the contract (front-aligned rows with their lengths,
    outputs past a row's length zeros) computed by the backend's loop, made
    a kernel as cuDNN is (rows rotated to the front), so that the cuDNN
    branch runs on a CPU. It proves
    the dispatch and the plumbing around the kernel, not cuDNN."""
    from keras import activations

    from fastlstm import _sequence, equations
    from fastlstm.kernels import Dropout, Options, _fused, contract

    loop = module.KERNELS["loop"]

    def stand_in(x, h0, c0, weights, starts, lengths, need_outputs):
        mask = None
        if lengths is not None:
            mask = equations.lengths_to_mask(lengths, ops.shape(x)[1])
        options = Options(
            activation=activations.tanh, recurrent_activation=activations.sigmoid,
            return_sequences=True, zero_output_for_mask=True,
            layout=_sequence.RIGHT_PADDED if mask is not None else _sequence.NO_MASK,
        )
        _, y, h, c = loop(x, h0, c0, weights, mask, Dropout(), options)
        return y, h, c

    return contract(_fused.fused_kernel(stand_in, ("float16", "float32", "float64"), reads_spans=False))


def instrument_kernels(monkeypatch, device="here"):
    """Records which kernel each call runs: "cudnn", "native", "loop" or
    "unrolled". With device="gpu" the backend reports a GPU and cuDNN is
    stood in for by the loop."""
    import dataclasses

    from fastlstm import kernels

    module = kernels.get()
    calls = []
    table = dict(module.KERNELS)
    if device == "gpu":
        table["cudnn"] = fused_stand_in(module)
        real_capabilities = module.capabilities
        monkeypatch.setattr(
            module, "capabilities",
            lambda: dataclasses.replace(real_capabilities(), device="gpu"),
        )

    def recording(name, run):
        def kernel(*args, **kwargs):
            calls.append(name)
            return run(*args, **kwargs)

        return kernel

    for name, run in table.items():
        monkeypatch.setitem(module.KERNELS, name, recording(name, run))
    return calls
