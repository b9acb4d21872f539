"""Each kernel that can run here, called directly, against keras.layers.LSTM.

The layer tests see the kernel the planner picks; these make the others run
too (on PyTorch the loop is otherwise reached only for exotic configurations).
"""

import numpy as np
import pytest
from keras import activations, ops

import fastlstm
from fastlstm import _sequence, equations, kernels
from helpers import build_pair, forward, instrument_kernels, make_mask, pair, to_numpy

MODULE = kernels.get()
B, T, F, U = 3, 6, 2, 4


def setup(mask_kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, F)).astype("float32")
    h0, c0 = (rng.standard_normal((B, U)).astype("float32") for _ in range(2))
    layer, ref = pair(U, return_sequences=True, return_state=True)
    build_pair(layer, ref, input_shape=x.shape)
    return x, h0, c0, layer, ref, make_mask(mask_kind, B, T, seed=2)


def call_kernel(name, layer, x, h0, c0, mask):
    cell = layer.cell
    tensor = ops.convert_to_tensor
    options = kernels.Options(
        activation=activations.tanh, recurrent_activation=activations.sigmoid,
        return_sequences=True, zero_output_for_mask=False,
        layout=_sequence.mask_layout(mask),
    )
    weights = kernels.Weights(tensor(cell.kernel), tensor(cell.recurrent_kernel), tensor(cell.bias))
    return MODULE.KERNELS[name](
        tensor(x), tensor(h0), tensor(c0), weights,
        None if mask is None else tensor(mask), kernels.Dropout(), options,
    )


# The kernels that run on a CPU (make test builds the compiled kernel:
# test_kernel_contract.py asserts it loads), each with the masks it takes.
HERE = ["loop", "unrolled", "native"]
CASES = [
    (name, mask_kind)
    for name in HERE
    for mask_kind in ["none", "right", "left", "holes", "empty"]
    if not (name in kernels.FUSED and mask_kind == "holes")
]


@pytest.mark.parametrize("name,mask_kind", CASES)
def test_each_kernel_called_directly_matches_keras(name, mask_kind):
    x, h0, c0, layer, ref, mask = setup(mask_kind)
    result = call_kernel(name, layer, x, h0, c0, mask)
    assert isinstance(result, kernels.Result)
    expected = forward(ref, x, mask, [h0, c0])
    for got, want in zip([result.outputs, result.h, result.c], expected):
        np.testing.assert_allclose(to_numpy(got), want, atol=2e-5)
    np.testing.assert_allclose(to_numpy(result.last), expected[0][:, -1], atol=2e-5)


@pytest.mark.parametrize("mask_kind", ["holes", "empty", "left", "right"])
def test_rows_run_on_their_valid_steps_gathered_give_kerass_numbers_holes_too(mask_kind):
    """What the onnx kernel does with any mask (kernels._fused,
    gathers_valid_steps): each row's valid steps, gathered to the front,
    run for their number, and the outputs go back where Keras's loop puts
    them. Here the front-aligned LSTM is the compiled kernel on right-padded
    rows."""
    from fastlstm.kernels import _fused

    x, h0, c0, layer, ref, mask = setup(mask_kind)

    def right_padded(x, h0, c0, weights, starts, lengths, need_outputs):
        assert starts is None
        rows = equations.lengths_to_mask(lengths, T)
        options = kernels.Options(
            activations.tanh, activations.sigmoid, True, True, _sequence.RIGHT_PADDED
        )
        result = MODULE.KERNELS["native"](x, h0, c0, weights, rows, kernels.Dropout(), options)
        return result.outputs, result.h, result.c

    gathered = _fused.fused_kernel(
        right_padded, ("float32",), reads_spans=False, gathers_valid_steps=True
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(MODULE.KERNELS, "gathered", kernels.contract(gathered))
        result = call_kernel("gathered", layer, x, h0, c0, mask)
    expected = forward(ref, x, mask, [h0, c0])
    for got, want in zip([result.outputs, result.h, result.c], expected):
        np.testing.assert_allclose(to_numpy(got), want, atol=2e-5)
    np.testing.assert_allclose(to_numpy(result.last), expected[0][:, -1], atol=2e-5)


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

    instrument_kernels(monkeypatch, "gpu")
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
