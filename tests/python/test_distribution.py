"""Scale-out through the engines' own distribution, on two CPU devices.

No home-made parallelism: a model with fastlstm trains under
tf.distribute.MirroredStrategy (TensorFlow) and keras.distribution.DataParallel
(JAX) with the same result as on one device. conftest.py splits the CPU.
"""

import keras
import numpy as np

import fastlstm
from helpers import BACKEND

# Each backend gets the test of its own engine (Keras has no multi-device
# distribution API on the PyTorch backend, so there is none for it).


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 3)).astype("float32")
    x[::2, :2] = 0.0  # left padding on half the rows
    y = rng.standard_normal((16, 1)).astype("float32")
    return x, y


def build(weights=None):
    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 3))
    out = keras.layers.Dense(1)(fastlstm.LSTM(8)(keras.layers.Masking(0.0)(inp)))
    model = keras.Model(inp, out)
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def train(model):
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return model.get_weights()


def assert_same_training(distributed_weights, single_weights):
    for a, b in zip(distributed_weights, single_weights):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(
        not np.allclose(a, b) for a, b in zip(single_weights, build().get_weights())
    ), "training changed nothing"


def mirrored_strategy_on_two_cpu_devices():
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2
    initial = build().get_weights()
    single = train(build(initial))
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = build(initial)
    assert_same_training(train(model), single)


def data_parallel_on_two_cpu_devices():
    import jax

    devices = jax.devices("cpu")
    assert len(devices) == 2
    initial = build().get_weights()
    single = train(build(initial))
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        model = build(initial)
        distributed = train(model)
    finally:
        keras.distribution.set_distribution(None)
    assert_same_training(distributed, single)


if BACKEND == "tensorflow":
    test_mirrored_strategy_on_two_cpu_devices = mirrored_strategy_on_two_cpu_devices
if BACKEND == "jax":
    test_data_parallel_on_two_cpu_devices = data_parallel_on_two_cpu_devices
