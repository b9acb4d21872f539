"""ONNX's LSTM node for the backends whose converter writes it from an op
of fastlstm's (PyTorch's torch.onnx, JAX's jax2onnx; TensorFlow's tf2onnx
writes it from cuDNN's op, `kernels._tf2onnx`), in `keras.ops`, so that one
piece of code serves both: the node's inputs in ONNX's layout from Keras's
weights, its outputs back in Keras's, and what the node computes, for the
tracers that run the op while they record it.

ONNX's LSTM (one direction) takes X (steps, batch, in), W and R (1,
4 * units, in or units) with the gates in the order i, o, f, c, B (1,
8 * units: the input biases, then the recurrent ones), sequence_lens
(int32: each row's valid steps, at the front), initial_h and initial_c (1,
batch, units), and returns Y (steps, 1, batch, units; zeros past a row's
length), Y_h and Y_c (1, batch, units).
"""

from keras import activations
from keras import ops

from fastlstm import _sequence
from fastlstm import equations
from fastlstm.kernels import Dropout
from fastlstm.kernels import Options
from fastlstm.kernels import Weights

# Keras's gates (i, f, c, o) in ONNX's order (i, o, f, c), and back.
ONNX_GATES = [0, 3, 1, 2]
KERAS_GATES = [0, 2, 3, 1]


def _gates(m, order, units):
    """`m` (rows, 4 * units) with its gates taken in `order`."""
    return ops.concatenate([m[:, g * units : (g + 1) * units] for g in order], axis=1)


def node_inputs(x, h0, c0, kernel, recurrent_kernel, bias, lengths):
    """The node's inputs for front-aligned rows `x` (batch, steps, in) of
    `lengths` valid steps (None: all); `bias` may be None."""
    units = ops.shape(recurrent_kernel)[0]
    if bias is None:
        bias = ops.zeros((4 * units,), kernel.dtype)
    if lengths is None:
        # (not ops.full: a symbolic batch is no number to every tracer)
        lengths = ops.zeros_like(x[:, 0, 0], "int32") + ops.shape(x)[1]
    onnx_matrix = lambda m: ops.expand_dims(ops.transpose(_gates(m, ONNX_GATES, units)), 0)
    b = _gates(ops.reshape(bias, (1, 4 * units)), ONNX_GATES, units)
    return (
        ops.transpose(x, (1, 0, 2)), onnx_matrix(kernel), onnx_matrix(recurrent_kernel),
        ops.concatenate([b, ops.zeros_like(b)], axis=1), ops.cast(lengths, "int32"),
        ops.expand_dims(h0, 0), ops.expand_dims(c0, 0),
    )


def keras_outputs(y, h, c):
    """The node's outputs as the fused kernels return theirs."""
    return ops.transpose(y[:, 0], (1, 0, 2)), h[0], c[0]


def computed(loop, x, w, r, b, lengths, h0, c0):
    """What the node computes, by the backend's `loop` (the tracer's run)."""
    units = ops.shape(r)[2]
    keras_matrix = lambda m: _gates(ops.transpose(m[0]), KERAS_GATES, units)
    bias = _gates(ops.reshape(b[0, : 4 * units] + b[0, 4 * units :], (1, 4 * units)), KERAS_GATES, units)
    x = ops.transpose(x, (1, 0, 2))
    rows = equations.lengths_to_mask(lengths, ops.shape(x)[1])
    options = Options(
        activations.tanh, activations.sigmoid, return_sequences=True,
        zero_output_for_mask=True, layout=_sequence.RIGHT_PADDED,
    )
    weights = Weights(keras_matrix(w), keras_matrix(r), bias[0])
    _, y, h, c = loop(x, h0[0], c0[0], weights, rows, Dropout(), options)
    return ops.transpose(y, (1, 0, 2))[:, None], h[None], c[None]
