"""Drop-in fidelity: what keras.layers.LSTM accepts gives Keras's numbers,
what it rejects is rejected with an error that names the argument.

Regression tests for issue 11 (reproductions 1 and 2, the lenient inputs of
3) and issue 12's unclear errors; reproduction 4 is in test_dispatch.py.
"""

import keras
import numpy as np
import pytest

import fastlstm
from helpers import (
    BACKEND,
    assert_all_close,
    build_pair,
    forward,
    grads,
    instrument_kernels,
    make_mask,
    pair,
)

B, T, F, U = 3, 6, 4, 5
MISMATCH = (
    r"argument `inputs`: this layer was built for 8 features per step \(its "
    r"kernel has shape \(8, 16\)\), got inputs of shape \((2|None), 5, 7\) with 7\. "
    r"Pass inputs with 8 features"
)


@pytest.mark.parametrize("device", ["here", "gpu"])
@pytest.mark.parametrize(
    "config", [{}, dict(activation="relu"), dict(unroll=True)], ids=["fused", "loop", "unrolled"]
)
def test_feature_size_mismatch_raises_before_any_kernel(monkeypatch, device, config):
    """Issue 11, reproduction 1: on PyTorch the fused kernel ran on 7
    features with a kernel built for 8 and returned numbers."""
    ran = instrument_kernels(monkeypatch, device)
    layer = fastlstm.LSTM(4, **config)
    layer(np.zeros((2, 5, 8), "float32"))
    assert ran, "the first call ran no kernel"
    ran.clear()
    with pytest.raises(ValueError, match=MISMATCH):
        layer(np.ones((2, 5, 7), "float32"))
    assert ran == []


def test_feature_size_mismatch_in_fit_and_predict():
    """R's fit() and predict() go through these: a model built for 8
    features refuses 7-feature data with the layer's message."""
    model = keras.Sequential(
        [keras.Input((None, 8)), fastlstm.LSTM(4), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((2, 5, 7), "float32")
    with pytest.raises(ValueError, match=MISMATCH):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=MISMATCH):
        model.fit(x, np.ones((2, 1), "float32"), verbose=0)


def test_feature_size_mismatch_after_a_call_at_the_right_size():
    """A model without an Input, built by its first predict() at 8 features,
    then given 7: TensorFlow retraces predict() with the feature axis
    relaxed to unknown, so the layer's own check sees None, and the native
    op used to run with a kernel built for 8 (it returned numbers). The op
    checks the shapes it is given; every backend raises the layer's
    message."""
    model = keras.Sequential([fastlstm.LSTM(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert model.predict(np.ones((2, 5, 8), "float32"), verbose=0).shape == (2, 1)
    x = np.ones((2, 5, 7), "float32")
    with pytest.raises(Exception, match=MISMATCH.replace("(2|None)", "2")) as raised:
        model.predict(x, verbose=0)
    # ValueError from Python's checks; from the op, TensorFlow's own error
    # type for a bad argument.
    assert type(raised.value).__name__ in ("ValueError", "InvalidArgumentError")
    with pytest.raises(Exception, match=MISMATCH):
        model.fit(x, np.ones((2, 1), "float32"), verbose=0)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_integer_inputs_are_cast_as_keras_does(dtype):
    """Issue 11, reproduction 2: tf.sigmoid on int64 inside the loop."""
    layer, ref = pair(U, return_sequences=True, return_state=True)
    x = np.random.default_rng(0).integers(0, 3, (B, T, F)).astype(dtype)
    build_pair(layer, ref, input_shape=x.shape)
    out = forward(layer, x)
    assert all(o.dtype == np.float32 for o in out)
    assert_all_close(out, forward(ref, x))


def test_bidirectional_on_integer_inputs():
    """Keras's bidirectional_test.py::test_output_shape, which failed on
    TensorFlow with fastlstm swapped in."""
    x = np.array([[[101, 202], [303, 404]]])
    for merge_mode in ["ave", "concat", "mul", "sum", None]:
        layer = keras.layers.Bidirectional(
            fastlstm.LSTM(2, return_state=True), merge_mode=merge_mode
        )
        output = layer(x)
        for out, shape in zip(output, layer.compute_output_shape(x.shape)):
            assert tuple(out.shape) == tuple(shape)


def lenient_case(kind):
    """A mask or state form Keras's loop accepts, and the strict form it
    stands for."""
    mask = make_mask("left", B, T, seed=1)
    if kind == "float_mask":
        return dict(mask=mask.astype("float32")), dict(mask=mask)
    if kind == "int_mask":
        return dict(mask=mask.astype("int32")), dict(mask=mask)
    if kind == "nonzero_float_mask":
        # Non-zero is valid, as Keras's loops cast it.
        return dict(mask=np.where(mask, 0.5, 0.0).astype("float32")), dict(mask=mask)
    if kind == "mask_with_trailing_axis":
        return dict(mask=mask[..., None]), dict(mask=mask)
    if kind == "batch_1_mask":
        return dict(mask=mask[:1]), dict(mask=np.repeat(mask[:1], B, axis=0))
    if kind == "batch_1_state":
        rng = np.random.default_rng(2)
        h, c = (rng.standard_normal((1, U)).astype("float32") for _ in range(2))
        tiled = [np.repeat(s, B, axis=0) for s in (h, c)]
        return dict(initial_state=[h, c]), dict(initial_state=tiled)
    raise ValueError(kind)


LENIENT = [
    "float_mask",
    "int_mask",
    "nonzero_float_mask",
    "mask_with_trailing_axis",
    "batch_1_mask",
    "batch_1_state",
]


@pytest.mark.parametrize("kind", LENIENT)
def test_what_keras_accepts_gives_keras_numbers(kind):
    """Issue 11, item 3. The reference is Keras given the same lenient
    value where Keras accepts it on this backend, and the strict form it
    stands for in any case (Keras on JAX rejects a batch-1 state: its scan
    carry changes shape)."""
    layer, ref = pair(U, return_sequences=True, return_state=True)
    x = np.random.default_rng(3).standard_normal((B, T, F)).astype("float32")
    build_pair(layer, ref, input_shape=x.shape)
    lenient, strict = lenient_case(kind)
    out = forward(layer, x, **lenient)
    assert_all_close(out, forward(ref, x, **strict))
    if not (kind == "batch_1_state" and BACKEND == "jax"):
        assert_all_close(out, forward(ref, x, **lenient))


def test_batch_1_state_gradient_sums_over_rows():
    layer, ref = pair(U, return_sequences=True, return_state=True)
    x = np.random.default_rng(4).standard_normal((B, T, F)).astype("float32")
    build_pair(layer, ref, input_shape=x.shape)
    h, c = lenient_case("batch_1_state")[0]["initial_state"]
    got = grads(layer, x, initial_state=[h, c])
    want = grads(ref, x, initial_state=[np.repeat(h, B, 0), np.repeat(c, B, 0)])
    want[1] = want[1].sum(axis=0, keepdims=True)
    want[2] = want[2].sum(axis=0, keepdims=True)
    assert_all_close(got, want, what="gradient")


@pytest.mark.parametrize(
    "config",
    [dict(), dict(return_sequences=True, return_state=True), dict(stateful=True, go_backwards=True)],
    ids=["last", "sequences_and_state", "stateful"],
)
def test_shape_inference_runs_no_kernel(monkeypatch, config):
    """Issue 11, item 6: Keras's first fit() on PyTorch infers the model's
    output spec on meta tensors, where torch's LSTM ran step by step (25 s at
    T = 10,000). Shape inference runs no kernel and gives the shapes and
    dtypes of a real call."""
    ran = instrument_kernels(monkeypatch)
    layer = fastlstm.LSTM(U, **config)
    x = np.random.default_rng(5).standard_normal((B, T, F)).astype("float32")
    layer.build(x.shape)
    spec = keras.src.backend.compute_output_spec(layer, keras.KerasTensor(x.shape))
    assert ran == []
    real = layer(x)
    assert ran
    for s, r in zip(keras.tree.flatten(spec), keras.tree.flatten(real)):
        assert tuple(s.shape) == tuple(r.shape)
        assert s.dtype == keras.backend.standardize_dtype(r.dtype)


def test_feature_size_mismatch_on_a_symbolic_input():
    """A built layer applied to a keras.Input of another size fails when the
    model is assembled, not later inside a kernel."""
    layer = fastlstm.LSTM(4)
    layer(keras.Input((5, 8)))
    with pytest.raises(ValueError, match=r"argument `inputs`: this layer was built for 8 features.*got inputs of shape \(None, 5, 7\) with 7"):
        layer(keras.Input((5, 7)))
