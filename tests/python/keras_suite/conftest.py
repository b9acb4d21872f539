"""Keras's own RNN tests with `keras.layers.LSTM` and `LSTMCell` replaced by
fastlstm's.

The test classes are imported from the installed keras package (see
test_keras_rnn.py). The swap is an autouse fixture of this directory: it
holds for the tests collected here and is undone after each, so the suites
that compare fastlstm with the real `keras.layers.LSTM` never see it, even in
one pytest run. `make test-keras-<backend>` runs this directory.
"""

import keras
import pytest
from keras.src import layers as src_layers

import fastlstm


@pytest.fixture(autouse=True)
def fastlstm_as_keras_lstm(monkeypatch):
    for name in ("LSTM", "LSTMCell"):
        monkeypatch.setattr(keras.layers, name, getattr(fastlstm, name))
        monkeypatch.setattr(src_layers, name, getattr(fastlstm, name))
