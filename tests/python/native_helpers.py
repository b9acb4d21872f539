"""Shared by the tests of the compiled native kernel (TensorFlow and JAX)."""

import keras
import numpy as np


def masked_model(lstm):
    inp = keras.Input((6, 3))
    out = keras.layers.Dense(1)(lstm(keras.layers.Masking(0.0)(inp)))
    return keras.Model(inp, out)


def padded_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 3)).astype("float32")
    x[:5, :2] = 0.0  # left-padded rows
    return x
