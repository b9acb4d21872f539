"""Each kernel that can run here, called directly, against keras.layers.LSTM.

The layer tests see the kernel the planner picks; these make the others run
too (on PyTorch the loop is otherwise reached only for exotic configurations).
"""

import numpy as np
import pytest
from keras import activations, ops

import fastlstm
from fastlstm import _sequence, kernels
from helpers import build_pair, forward, fused_stand_in, make_mask, pair, to_numpy

MODULE = kernels.get()
B, T, F, U = 3, 6, 2, 4


def setup(mask_kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, F)).astype("float32")
    h0, c0 = (rng.standard_normal((B, U)).astype("float32") for _ in range(2))
    layer, ref = pair(U, return_sequences=True, return_state=True)
    build_pair(layer, ref, input_shape=x.shape)
    return x, h0, c0, layer, ref, make_mask(mask_kind, B, T, seed=2)


@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "holes", "empty"])
@pytest.mark.parametrize("unroll", [False, True])
def test_recurrence_kernel(mask_kind, unroll):
    x, h0, c0, layer, ref, mask = setup(mask_kind)
    cell = layer.cell
    xp = _sequence.project(ops.convert_to_tensor(x), cell.kernel, cell.bias, None)
    last, outputs, h, c = MODULE.recurrence(
        xp, ops.convert_to_tensor(h0), ops.convert_to_tensor(c0),
        ops.convert_to_tensor(cell.recurrent_kernel),
        None if mask is None else ops.convert_to_tensor(mask),
        activation=activations.tanh, recurrent_activation=activations.sigmoid,
        zero_output_for_mask=False, return_sequences=True, unroll=unroll,
    )
    expected = forward(ref, x, mask, [h0, c0])
    for got, want in zip([outputs, h, c], expected):
        np.testing.assert_allclose(to_numpy(got), want, atol=2e-5)
    np.testing.assert_allclose(to_numpy(last), expected[0][:, -1], atol=2e-5)


@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "empty"])
@pytest.mark.parametrize("need_cell_state", [True, False])
def test_native_kernel_on_front_aligned_rows(mask_kind, need_cell_state):
    x, h0, c0, layer, ref, mask = setup(mask_kind)
    cell = layer.cell
    xt = ops.convert_to_tensor(x)
    lengths = None
    starts = ops.zeros((B,), "int32")
    if mask is not None:
        starts, lengths = _sequence.valid_span(ops.convert_to_tensor(mask))
        xt = _sequence.rotate_to_front(xt, starts)
    y, h, c = MODULE.native(
        xt, ops.convert_to_tensor(h0), ops.convert_to_tensor(c0),
        ops.convert_to_tensor(cell.kernel), ops.convert_to_tensor(cell.recurrent_kernel),
        ops.convert_to_tensor(cell.bias), lengths, need_cell_state=need_cell_state,
    )
    expected = forward(ref, x, mask, [h0, c0])
    if mask is None:
        np.testing.assert_allclose(to_numpy(y), expected[0], atol=2e-5)
    else:
        restored = _sequence.restore_outputs(y, starts, lengths, False)
        np.testing.assert_allclose(to_numpy(restored), expected[0], atol=2e-5)
        nonempty = mask.any(axis=1)
        np.testing.assert_allclose(to_numpy(h)[nonempty], expected[1][nonempty], atol=2e-5)
        if c is not None:
            np.testing.assert_allclose(to_numpy(c)[nonempty], expected[2][nonempty], atol=2e-5)
        else:
            assert not need_cell_state


def test_rotation_round_trip():
    x = np.arange(B * T * 2, dtype="float32").reshape(B, T, 2)
    mask = make_mask("left", B, T, seed=5)
    starts, lengths = _sequence.valid_span(ops.convert_to_tensor(mask))
    front = to_numpy(_sequence.rotate_to_front(ops.convert_to_tensor(x), starts))
    for b in range(B):
        n = int(mask[b].sum())
        np.testing.assert_array_equal(front[b, :n], x[b, mask[b]])
    assert bool(to_numpy(_sequence.is_contiguous(ops.convert_to_tensor(mask))))
    holes = make_mask("holes", B, T)
    assert not bool(to_numpy(_sequence.is_contiguous(ops.convert_to_tensor(holes))))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_cudnn_path_plumbing_in_a_compiled_model(monkeypatch, go_backwards):
    """Inside fit/predict the mask is traced: the layer picks cuDNN or the
    loop with a cond in the graph. Left-padded rows take the fused branch."""
    import keras

    monkeypatch.setattr(MODULE, "device", lambda: "gpu")
    monkeypatch.setattr(MODULE, "cudnn", fused_stand_in(MODULE.recurrence))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, F)).astype("float32")
    mask = make_mask("left", B, T, seed=4)
    x[~mask] = 0.0
    layer, ref = pair(U, return_sequences=True, go_backwards=go_backwards)
    models = []
    for lstm in (layer, ref):
        inp = keras.Input((T, F))
        models.append(keras.Model(inp, lstm(keras.layers.Masking(0.0)(inp))))
    models[1].set_weights(models[0].get_weights())
    assert fastlstm.plan(layer, x, mask=mask).kernel == "cudnn"
    np.testing.assert_allclose(
        to_numpy(models[0].predict(x, verbose=0)),
        to_numpy(models[1].predict(x, verbose=0)),
        atol=2e-5,
    )
    holes = make_mask("holes", B, T)
    x_holes = np.where(holes[..., None], x + 1.0, 0.0).astype("float32")
    np.testing.assert_allclose(
        to_numpy(models[0].predict(x_holes, verbose=0)),
        to_numpy(models[1].predict(x_holes, verbose=0)),
        atol=2e-5,
    )
