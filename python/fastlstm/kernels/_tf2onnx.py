"""tf2onnx learns cuDNN's LSTM: a `CudnnRNNV3` op in LSTM mode becomes one
ONNX `LSTM` node, its `sequence_lengths` the node's `sequence_lens`.

TensorFlow's ONNX converter has no handler for `CudnnRNNV3` (its `CudnnRNN`
handler takes GRUs only). Both ops run front-aligned rows for their lengths,
so the translation is exact: only the weights' layout and gate order
(cuDNN's i, f, c, o; ONNX's i, o, f, c) and the axes change. fastlstm's
"onnx" kernel on TensorFlow is cuDNN's fused LSTM graph (never run by
TensorFlow: it is traced only to be converted), and registers this handler
with tf2onnx the first time it is traced.
"""

import functools

import numpy as np

# cuDNN's gates (i, f, c, o) in ONNX's order (i, o, f, c).
_ONNX_GATES = [0, 3, 1, 2]
# ONNX's int32, the dtype of `sequence_lens`.
_INT32 = 6


@functools.lru_cache(maxsize=None)
def register():
    """Registers the handler with tf2onnx, once per process (a no-op where
    tf2onnx is not installed: then nothing converts the graph either)."""
    try:
        from tf2onnx import handler
    except ImportError:
        return False
    handler.tf_op("CudnnRNNV3")(CudnnLstmToOnnx)
    return True


class CudnnLstmToOnnx:
    """The tf2onnx handler (its `version_N` methods, by ONNX opset: LSTM
    with `sequence_lens` is in every opset tf2onnx writes)."""

    @classmethod
    def version_7(cls, ctx, node, **kwargs):
        from tf2onnx import utils
        from tf2onnx.graph_builder import GraphBuilder

        def require(attribute, wanted):
            # An attribute left out has TensorFlow's default, the one wanted.
            found = node.get_attr_value(attribute, wanted)
            utils.make_sure(
                found == wanted,
                "CudnnRNNV3 converts to ONNX with %s=%s only (found %s)",
                attribute, wanted, found,
            )

        require("rnn_mode", b"lstm")
        require("input_mode", b"linear_input")
        require("direction", b"unidirectional")
        require("num_proj", 0)
        require("time_major", False)  # as fastlstm's graphs make it
        for reserved in node.output[3:]:
            utils.make_sure(
                not ctx.find_output_consumers(reserved),
                "CudnnRNNV3's reserve space has no ONNX equivalent, and is used",
            )
        x, h0, c0, params, lengths = node.input[:5]
        features, units = ctx.get_shape(x)[-1], ctx.get_shape(h0)[-1]
        utils.make_sure(
            features > 0 and units > 0,
            "CudnnRNNV3: the input and state sizes must be static to convert",
        )
        outputs = node.output[:3]
        shapes, dtypes = node.output_shapes[:3], node.output_dtypes[:3]
        ctx.remove_node(node.name)

        def const(name, value):
            return ctx.make_const(utils.make_name(name), np.array(value, np.int64)).output[0]

        def op(type_, inputs, **attrs):
            return ctx.make_node(type_, inputs, attr=attrs).output[0]

        def gates(begin, end, shape, axis, onnx_shape):
            # params[begin:end] as `shape`, its gates (on `axis`) in ONNX's
            # order, as `onnx_shape`.
            flat = op("Slice", [params, const("begin", [begin]), const("end", [end])])
            shaped = op("Reshape", [flat, const("shape", shape)])
            ordered = op("Gather", [shaped, const("gates", _ONNX_GATES)], axis=axis)
            return op("Reshape", [ordered, const("onnx_shape", onnx_shape)])

        # params: the 4 input and 4 recurrent weights, each transposed, then
        # the 4 input and 4 recurrent biases (ONNX's B is both, the same way).
        w_end = 4 * units * features
        r_end = w_end + 4 * units * units
        w = gates(0, w_end, [4, units, features], 0, [1, 4 * units, features])
        r = gates(w_end, r_end, [4, units, units], 0, [1, 4 * units, units])
        b = gates(r_end, r_end + 8 * units, [2, 4, units], 1, [1, 8 * units])
        # ONNX's LSTM is time-major, its states (directions, batch, units);
        # cuDNN's here batch-major, its states (batch, directions, units).
        swap = [1, 0, 2]
        major = lambda t: op("Transpose", [t], perm=swap)
        lstm = ctx.make_node(
            "LSTM",
            [major(x), w, r, b, op("Cast", [lengths], to=_INT32), major(h0), major(c0)],
            attr={"hidden_size": units, "direction": "forward"},
            output_count=3,
        )
        # Y is (time, directions, batch, units).
        y = GraphBuilder(ctx).make_squeeze({"data": lstm.output[0], "axes": [1]})
        for result, name, shape, dtype in zip(
            [y, lstm.output[1], lstm.output[2]], outputs, shapes, dtypes
        ):
            ctx.make_node(
                "Transpose", [result], outputs=[name], attr={"perm": swap},
                shapes=[shape], dtypes=[dtype],
            )
