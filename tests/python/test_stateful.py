"""Stateful layers carry state across calls; reset_state() clears it."""

import keras
import numpy as np

import fastlstm
from helpers import assert_all_close, build_pair, forward, pair, to_numpy


def test_stateful_matches_keras_and_one_long_call():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 2)).astype("float32")
    layer, ref = pair(4, stateful=True, return_sequences=True)
    build_pair(layer, ref, input_shape=(3, 4, 2))
    whole = fastlstm.LSTM(4, return_sequences=True)
    whole.build(x.shape)
    whole.set_weights(layer.get_weights())
    first, second = x[:, :4], x[:, 4:]
    ours = forward(layer, first) + forward(layer, second)
    assert_all_close(ours, forward(ref, first) + forward(ref, second))
    np.testing.assert_allclose(
        np.concatenate(ours, axis=1), forward(whole, x)[0], atol=2e-5
    )
    layer.reset_state()
    assert_all_close(forward(layer, first), forward(whole, first))
    layer.reset_states()
    assert all(np.all(keras.ops.convert_to_numpy(s) == 0) for s in layer.states)


def test_stateful_in_a_model_with_a_fixed_batch():
    inp = keras.Input((4, 2), batch_size=3)
    lstm = fastlstm.LSTM(4, stateful=True)
    model = keras.Model(inp, lstm(inp))
    x = np.ones((3, 4, 2), "float32")
    # Direct calls: Keras's JAX predict_on_batch does not carry RNN state
    # over for keras.layers.LSTM either.
    a = to_numpy(model(x))
    b = to_numpy(model(x))
    assert not np.allclose(a, b), "state was not carried over"
    lstm.reset_state()
    np.testing.assert_allclose(to_numpy(model(x)), a, atol=1e-6)
