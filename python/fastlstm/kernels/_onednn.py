"""What the three bindings of the compiled kernel share.

The compiled kernel takes the rows' valid spans itself (starts and lengths,
csrc/lstm_onednn.h): each row is read where it lies, each step runs only the
rows still running, outputs (front-aligned) past a row's length are zeros,
and its final states are those after its last valid step; the gradients
reaching outputs past a row's length are not read, and those reaching inputs
outside its span are zeros. Its inference pass writes no outputs where none
are needed.

Each binding provides `lstm(x, h0, c0, kernel, recurrent_kernel, bias,
starts, lengths, need_outputs) -> (y or None, h, c)` with these semantics,
`starts` and `lengths` int32 `(batch,)` tensors.
"""

from keras import ops


def fused(lstm):
    """The fused LSTM on the rows' spans (`kernels._fused`) that a
    binding's `lstm` (see above) gives."""

    def run(x, h0, c0, weights, starts, lengths, need_outputs):
        kernel, recurrent_kernel, bias = weights
        if bias is None:
            bias = ops.zeros((ops.shape(kernel)[-1],), x.dtype)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        starts = ops.zeros((batch,), "int32") if starts is None else ops.cast(starts, "int32")
        lengths = (
            ops.full((batch,), steps, "int32") if lengths is None else ops.cast(lengths, "int32")
        )
        return lstm(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs)

    run.__name__ = getattr(lstm, "__name__", "lstm")
    return run
