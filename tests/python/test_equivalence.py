"""fastlstm.LSTM gives keras.layers.LSTM's numbers: outputs and gradients."""

import itertools

import keras
import numpy as np
import pytest

import fastlstm
from fastlstm import kernels
from helpers import (
    ATOL,
    assert_all_close,
    build_pair,
    forward,
    grads,
    instrument_kernels,
    make_mask,
    pair,
)

B, T, F, U = 8, 7, 3, 5
MASKS = ["none", "right", "left", "holes", "empty"]


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, F)).astype("float32")
    states = [rng.standard_normal((B, U)).astype("float32") for _ in range(2)]
    return x, states


GRID = list(
    itertools.product(
        [False, True],  # return_sequences
        [False, True],  # go_backwards
        MASKS,
        [False, True],  # initial_state
    )
)


@pytest.mark.parametrize("return_sequences,go_backwards,mask_kind,with_state", GRID)
def test_forward_and_gradients_match_keras(
    monkeypatch, return_sequences, go_backwards, mask_kind, with_state
):
    layer, ref = pair(
        U, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
    )
    x, states = inputs()
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T)
    init = states if with_state else None
    planned = fastlstm.plan(layer, x, mask=mask).kernel
    # On a CPU every backend's fused kernel runs, but for masks with holes.
    if kernels.get().capabilities().device == "cpu":
        assert planned == ("loop" if mask_kind == "holes" else "native")
    ran = instrument_kernels(monkeypatch)
    out = forward(layer, x, mask, init)
    assert_all_close(out, forward(ref, x, mask, init))
    assert_all_close(
        grads(layer, x, mask, init), grads(ref, x, mask, init), what="gradient"
    )
    assert set(ran) == {planned}


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_without_return_state_matches_keras(mask_kind, go_backwards, return_sequences):
    """Without return_state the final c is unobservable, and a kernel may
    skip it (PyTorch's CPU kernel then runs unpacked)."""
    layer, ref = pair(U, return_sequences=return_sequences, go_backwards=go_backwards)
    x, states = inputs(4)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T, seed=7)
    assert_all_close(forward(layer, x, mask, states), forward(ref, x, mask, states))
    assert_all_close(
        grads(layer, x, mask, states), grads(ref, x, mask, states), what="gradient"
    )


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_unrolled_matches_keras(mask_kind, go_backwards):
    layer, ref = pair(
        U, unroll=True, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    x, states = inputs(1)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T, seed=3)
    assert fastlstm.plan(layer, x, mask=mask).kernel == "unrolled"
    assert_all_close(forward(layer, x, mask, states), forward(ref, x, mask, states))
    assert_all_close(
        grads(layer, x, mask, states), grads(ref, x, mask, states), what="gradient"
    )


@pytest.mark.parametrize("mask_kind", MASKS)
def test_zero_output_for_mask(mask_kind):
    layer, ref = pair(U, return_sequences=True, return_state=True, zero_output_for_mask=True)
    x, states = inputs(2)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T, seed=4)
    out = forward(layer, x, mask, states)
    assert_all_close(out, forward(ref, x, mask, states))
    if mask is not None:
        assert np.all(out[0][~mask] == 0)


@pytest.mark.parametrize(
    "config",
    [
        dict(activation="relu"),
        dict(recurrent_activation="hard_sigmoid"),
        dict(use_bias=False),
        dict(unit_forget_bias=False, bias_initializer="random_normal"),
        dict(activation=None),
    ],
    ids=["relu", "hard_sigmoid", "no_bias", "random_bias", "linear"],
)
@pytest.mark.parametrize("mask_kind", ["none", "left"])
def test_other_configurations_match_keras(config, mask_kind):
    layer, ref = pair(U, return_sequences=True, return_state=True, **config)
    x, states = inputs(5)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T, seed=6)
    assert_all_close(forward(layer, x, mask, states), forward(ref, x, mask, states))
    assert_all_close(
        grads(layer, x, mask, states), grads(ref, x, mask, states), what="gradient"
    )


def test_all_false_row_returns_initial_state_and_zero_outputs():
    layer = fastlstm.LSTM(U, return_sequences=True, return_state=True)
    x, states = inputs(7)
    mask = np.ones((B, T), bool)
    mask[2] = False
    out, h, c = forward(layer, x, mask, states)
    np.testing.assert_array_equal(out[2], np.zeros((T, U), "float32"))
    np.testing.assert_allclose(h[2], states[0][2], atol=1e-6)
    np.testing.assert_allclose(c[2], states[1][2], atol=1e-6)


def test_go_backwards_returns_outputs_in_processing_order():
    layer = fastlstm.LSTM(U, return_sequences=True, go_backwards=True)
    forward_layer = fastlstm.LSTM(U, return_sequences=True)
    x, _ = inputs(8)
    layer.build(x.shape)
    forward_layer.build(x.shape)
    forward_layer.set_weights(layer.get_weights())
    (backwards,) = forward(layer, x)
    (on_reversed,) = forward(forward_layer, x[:, ::-1].copy())
    np.testing.assert_allclose(backwards, on_reversed, atol=1e-6)


def test_return_state_false_returns_one_tensor():
    layer = fastlstm.LSTM(U)
    x, _ = inputs()
    out = layer(x)
    assert tuple(out.shape) == (B, U)


@pytest.mark.parametrize("rate_name", ["dropout", "recurrent_dropout"])
def test_dropout_in_training_matches_keras_with_the_same_masks(rate_name):
    layer, ref = pair(U, return_sequences=True, return_state=True, seed=11, **{rate_name: 0.4})
    x, states = inputs(9)
    build_pair(layer, ref, input_shape=x.shape)
    # Seed both layers' dropout generators identically: the same masks.
    ref.cell.seed_generator.state.assign(layer.cell.seed_generator.state.value)
    mask = make_mask("left", B, T, seed=10)
    out = forward(layer, x, mask, states, training=True)
    assert_all_close(out, forward(ref, x, mask, states, training=True))
    inference = forward(layer, x, mask, states, training=False)
    assert not np.allclose(out[0], inference[0]), "dropout had no effect in training"


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("mask_kind", ["none", "left", "right", "empty"])
def test_mixed_precision_matches_keras(policy, mask_kind):
    layer, ref = pair(U, return_sequences=True, return_state=True, dtype=policy)
    x, states = inputs(12)
    build_pair(layer, ref, input_shape=x.shape)
    assert layer.kernel.dtype == "float32" if hasattr(layer, "kernel") else True
    mask = make_mask(mask_kind, B, T, seed=13)
    out = forward(layer, x, mask, states)
    compute = policy.split("_")[1]
    assert all(keras.backend.standardize_dtype(o.dtype) == compute for o in out) or all(
        o.dtype == np.dtype(compute) for o in out if compute != "bfloat16"
    )
    ref_out = forward(ref, x, mask, states)
    # Each dtype's tolerance: a few units in the last place of outputs in
    # [-1, 1] (float16 has 11 significant bits, bfloat16 8).
    atol = 2e-2 if policy == "mixed_bfloat16" else 3e-3
    assert_all_close(
        [o.astype("float32") for o in out], [o.astype("float32") for o in ref_out], atol=atol
    )
    # Mixed precision keeps the fused kernel, which computes in float32
    # (bfloat16's products in bfloat16 where the CPU makes them).
    plan = fastlstm.plan(layer, x, mask=mask)
    assert plan.kernel == ("cudnn" if plan.device == "gpu" else "native"), str(plan)
    if plan.kernel == "native":
        bf16_products = compute == "bfloat16" and kernels.get().capabilities().native_bf16
        assert plan.bf16_products == bf16_products
        inside = (
            "matrix products in bfloat16 with float32 sums" if bf16_products
            else "computed in float32 inside"
        )
        assert f"found {compute}, {inside}" in str(plan)
    # Gradients (of float32 variables): against a float32 LSTM's, to the
    # dtype's tolerance relative to their size. (Keras's loop, which
    # computes every step in the half dtype, strays further from them.)
    float32_layer = fastlstm.LSTM(U, return_sequences=True, return_state=True)
    build_pair(layer, float32_layer, input_shape=x.shape)
    got, want = grads(layer, x, mask, states), grads(float32_layer, x, mask, states)
    for g, w in zip(got, want):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g.astype("float32"), w.astype("float32"), atol=atol * scale)


@pytest.mark.parametrize("padding", ["left", "holes"])
def test_inside_a_compiled_model_matches_keras(padding):
    """fit/predict trace the call (tf.function, jax.jit): masks are symbolic,
    and a cond in the graph runs the fused kernel or, for holes, the loop."""
    x, _ = inputs(14)
    x[:, :2] = 0.0  # left padding, seen through a Masking layer
    if padding == "holes":
        x[::2, 4] = 0.0  # a masked step inside half the rows
    layer, ref = pair(U)
    models = []
    for lstm in (layer, ref):
        inp = keras.Input((T, F))
        out = keras.layers.Dense(1)(lstm(keras.layers.Masking(0.0)(inp)))
        models.append(keras.Model(inp, out))
    models[1].set_weights(models[0].get_weights())
    if kernels.get().capabilities().device == "cpu":
        # Inside the compiled graph the mask is traced: a cond on its layout
        # picks this kernel for rows without holes.
        expected = "loop" if padding == "holes" else "native"
        assert fastlstm.plan(layer, x, mask=(x != 0).any(-1)).kernel == expected
    np.testing.assert_allclose(
        models[0].predict(x, verbose=0), models[1].predict(x, verbose=0), atol=ATOL
    )
    y = np.ones((B, 1), "float32")
    for m in models:
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        m.fit(x, y, epochs=2, batch_size=2, verbose=0, shuffle=False)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)
