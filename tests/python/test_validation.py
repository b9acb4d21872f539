"""Every bad input gets a ValueError that names the argument and the value."""

import re

import numpy as np
import pytest
from keras import ops

import fastlstm


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(units=0), r"argument `units`.*positive integer, got 0"),
        (dict(units=-3), r"argument `units`.*got -3"),
        (dict(units=2.5), r"argument `units`.*got 2.5"),
        (dict(units="4"), r"argument `units`.*got '4'"),
        (dict(units=4, dropout=1.5), r"argument `dropout`.*between 0 and 1, got 1.5"),
        (dict(units=4, dropout=-0.1), r"argument `dropout`.*got -0.1"),
        (dict(units=4, recurrent_dropout=2), r"argument `recurrent_dropout`.*got 2"),
        (dict(units=4, activation="nope"), r"argument `activation`: 'nope'"),
        (dict(units=4, recurrent_activation="nope"), r"argument `recurrent_activation`: 'nope'"),
        (dict(units=4, use_cudnn="yes"), r"argument `use_cudnn`.*'auto', True or False, got 'yes'"),
        (dict(units=4, use_cudnn=1), r"argument `use_cudnn`.*got 1"),
    ],
)
def test_bad_constructor_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fastlstm.LSTM(**kwargs)


def test_cell_checks_its_arguments_too():
    with pytest.raises(ValueError, match=r"argument `units`"):
        fastlstm.LSTMCell(0)
    with pytest.raises(ValueError, match=r"argument `dropout`.*got 3"):
        fastlstm.LSTMCell(4, dropout=3)


def test_whole_float_units_are_accepted():
    assert fastlstm.LSTM(4.0).units == 4


@pytest.mark.parametrize("shape", [(4, 3), (2, 4, 3, 1)])
def test_inputs_must_be_3d(shape):
    with pytest.raises(ValueError, match=r"argument `inputs`: expected a 3D tensor.*" + str(shape).replace("(", r"\(").replace(")", r"\)")):
        fastlstm.LSTM(4)(np.zeros(shape, "float32"))


@pytest.mark.parametrize("shape", [(2, 4), (3, 5), (2, 5, 2), (5,)])
def test_mask_of_wrong_shape(shape):
    layer = fastlstm.LSTM(4)
    with pytest.raises(ValueError, match=r"argument `mask`: expected shape \(batch, timesteps\) = \(2, 5\) \(or a batch of 1\), got shape " + re.escape(str(shape))):
        layer(np.zeros((2, 5, 3), "float32"), mask=ops.convert_to_tensor(np.ones(shape, bool)))


def test_mask_of_wrong_dtype():
    layer = fastlstm.LSTM(4)
    with pytest.raises(TypeError, match=r"argument `mask`: expected a boolean tensor.*got dtype complex64"):
        layer(np.zeros((2, 5, 3), "float32"), mask=np.ones((2, 5), "complex64"))


def test_mask_given_as_a_python_list():
    layer = fastlstm.LSTM(4)
    mask = [[True] * 5, [True, True, False, False, False]]
    with pytest.raises(TypeError, match=r"argument `mask`: expected a boolean tensor or array.*got a list\. Convert it first"):
        layer(np.zeros((2, 5, 3), "float32"), mask=mask)


def test_wrong_number_of_initial_states():
    layer = fastlstm.LSTM(4)
    x = np.zeros((2, 5, 3), "float32")
    h = ops.zeros((2, 4))
    with pytest.raises(ValueError, match=r"argument `initial_state`.*list of 2 tensors \[h, c\].*got 1"):
        layer(x, initial_state=[h])
    with pytest.raises(ValueError, match=r"got 3 tensor"):
        layer(x, initial_state=[h, h, h])


@pytest.mark.parametrize("shape", [(2, 3), (3, 4), (4,), (2, 4, 1)])
def test_initial_state_of_wrong_shape(shape):
    layer = fastlstm.LSTM(4)
    with pytest.raises(ValueError, match=r"argument `initial_state`: the c state must have shape \(batch, units\) = \(2, 4\) \(or \(1, 4\) for every row\), got " + re.escape(str(shape))):
        layer(np.zeros((2, 5, 3), "float32"), initial_state=[ops.zeros((2, 4)), ops.zeros(shape)])


def test_initial_state_of_nones():
    layer = fastlstm.LSTM(4)
    with pytest.raises(ValueError, match=r"argument `initial_state`: the h state is None\. Pass two tensors \[h, c\].*or leave `initial_state` out"):
        layer(np.zeros((2, 5, 3), "float32"), initial_state=[None, None])


def test_call_on_none():
    with pytest.raises(ValueError, match=r"argument `inputs`: expected a 3D tensor of shape \(batch, timesteps, features\), got None"):
        fastlstm.LSTM(4)(None)
    built = fastlstm.LSTM(4)
    built(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"argument `inputs`.*got None"):
        built(None)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_inputs_are_rejected(dtype):
    # Keras raises on TensorFlow and JAX; on PyTorch it drops the imaginary
    # part with a warning. fastlstm raises on all three (README).
    x = np.zeros((2, 5, 3), dtype)
    with pytest.raises(TypeError, match=r"argument `inputs`: expected a real-valued \(float, integer or boolean\) tensor, got dtype complex"):
        fastlstm.LSTM(4)(x)


def test_units_true_is_rejected():
    for units in (True, np.True_, False):
        with pytest.raises(ValueError, match=r"argument `units`, expected a positive integer, got " + repr(units)):
            fastlstm.LSTM(units)


def test_stateful_without_a_fixed_batch_size():
    import keras

    with pytest.raises(ValueError, match=r"stateful=True with an unknown batch size.*\(None, 5, 3\).*batch_size"):
        fastlstm.LSTM(4, stateful=True)(keras.Input((5, 3)))


def test_unknown_backend_is_named(monkeypatch):
    from fastlstm import kernels

    with pytest.raises(ValueError, match=r"KERAS_BACKEND='numpy'"):
        kernels.get("numpy")


def test_valid_layer_still_works_after_errors():
    assert tuple(fastlstm.LSTM(4)(np.zeros((2, 5, 3), "float32")).shape) == (2, 4)
