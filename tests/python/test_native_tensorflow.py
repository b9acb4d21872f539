"""The native kernel in TensorFlow: graphs and XLA. (SavedModels:
test_export.py.)"""

import numpy as np

import fastlstm
from fastlstm import kernels
from helpers import pair
from native_helpers import masked_model, padded_data


def test_tensorflow_inference_runs_the_kernel_without_a_workspace():
    """predict() builds oneDNN's inference op (nothing saved for a gradient,
    no outputs written where only the last is returned); a training step
    builds the training op."""
    import tensorflow as tf

    layer = fastlstm.LSTM(4)
    x = tf.constant(padded_data())

    def lstm_ops(fn):
        graph = tf.function(fn).get_concrete_function(x).graph
        graphs = [graph] + [f.graph for f in graph._functions.values()]
        return [
            op for g in graphs for op in g.get_operations()
            if op.type.startswith("FastlstmLstm")
        ]

    inference = lstm_ops(lambda x: layer(x))
    assert [op.type for op in inference] == ["FastlstmLstmInference"]
    assert inference[0].get_attr("sequences") is False

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, layer.trainable_weights)

    training = {op.type for op in lstm_ops(step)}
    assert training == {"FastlstmLstm", "FastlstmLstmGrad"}


def test_tensorflow_gradient_of_the_inference_op_matches_keras():
    """A gradient taken where no tape recorded the call (tf.gradients in a
    graph) goes through the inference op's registered gradient."""
    import keras
    import tensorflow as tf

    x = tf.constant(padded_data())
    mask = tf.constant((padded_data() != 0).any(-1))
    layer, ref = pair(4, return_sequences=True, return_state=True)
    layer.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())

    def gradients(lstm):
        @tf.function
        def run(x, mask):
            y, h, c = lstm(x, mask=mask)
            loss = tf.reduce_sum(y * y) + tf.reduce_sum(h) + tf.reduce_sum(c * 0.5)
            return tf.gradients(loss, [x, lstm.cell.kernel, lstm.cell.recurrent_kernel])

        return run(x, mask)

    for got, want in zip(gradients(layer), gradients(ref)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    del keras


def test_tensorflow_jit_compile_runs_the_loop_and_says_why():
    import tensorflow as tf

    module = kernels.get()
    seen = []

    @tf.function(jit_compile=True)
    def compiled():
        capabilities = module.capabilities()
        seen.append((capabilities.native, capabilities.native_why))
        return tf.constant(0)

    compiled()
    assert seen[0][0] is False and "XLA" in seen[0][1]
    layer, ref = pair(4)
    x = padded_data()
    models = [masked_model(lstm) for lstm in (layer, ref)]
    models[1].set_weights(models[0].get_weights())
    y = np.ones((len(x), 1), "float32")
    for m in models:
        m.compile(optimizer="sgd", loss="mse", jit_compile=True)
        m.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
