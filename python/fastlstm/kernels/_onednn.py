"""What the three bindings of the compiled kernel share.

The compiled kernel takes the rows' valid spans itself (starts and lengths,
csrc/lstm_onednn.h): each row is read where it lies, each step runs only the
rows still running, outputs (front-aligned) past a row's length are zeros,
and its final states are those after its last valid step; the gradients
reaching outputs past a row's length are not read, and those reaching inputs
outside its span are zeros. Its inference pass writes no outputs where none
are needed.

Each binding provides `lstm(x, h0, c0, kernel, recurrent_kernel, bias,
starts, lengths, need_outputs, bf16) -> (y or None, h, c)` with these
semantics, `starts` and `lengths` int32 `(batch,)` tensors; `bf16` makes the
matrix products in bfloat16 with float32 sums (csrc: Dims::bf16), every pass
then on fastlstm's own recurrence.
"""

import functools

from keras import ops

from fastlstm.kernels import _fused


def fused(lstm):
    """The fused LSTM on the rows' spans (`kernels._fused`) that a
    binding's `lstm` (see above) gives."""

    def run(x, h0, c0, weights, starts, lengths, need_outputs, bf16=False):
        kernel, recurrent_kernel, bias = weights
        if bias is None:
            bias = ops.zeros((ops.shape(kernel)[-1],), x.dtype)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        starts = ops.zeros((batch,), "int32") if starts is None else ops.cast(starts, "int32")
        lengths = (
            ops.full((batch,), steps, "int32") if lengths is None else ops.cast(lengths, "int32")
        )
        return lstm(
            x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs, bf16
        )

    run.__name__ = getattr(lstm, "__name__", "lstm")
    return run


def native_kernel(fused_lstm, dtypes):
    """The `Kernel` of a binding's fused LSTM (`fused(lstm)`): spans read
    where they lie, bfloat16 products where the plan asks for them."""
    return _fused.fused_kernel(
        fused_lstm, dtypes, reads_spans=True,
        bf16_products=functools.partial(fused_lstm, bf16=True),
    )
