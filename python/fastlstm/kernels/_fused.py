"""A fused LSTM on the rows' valid spans, made a `Kernel` (see `kernels`).

A mask without holes gives each row one valid span `[start, start +
length)`. The compiled kernel reads each row's span where it lies; for cuDNN,
which takes front-aligned rows, the rows are rotated so that each span starts
at step 0. Either runs with the lengths, and the outputs are put back where
Keras's generic loop puts them (`fastlstm._sequence`). This is how
left-padded batches, which Keras sends to its slow loop on every backend,
reach the fused kernels.
"""

from keras import backend
from keras import ops

from fastlstm import _sequence


def fused_kernel(fused, dtypes, reads_spans, bf16_products=None, gathers_valid_steps=False):
    """The `Kernel` that runs `fused` on the rows' valid spans.

    `fused(x, h0, c0, weights, starts, lengths, need_outputs)` returns
    `(outputs, h, c)`: each row runs the steps
    `x[row, starts[row] : starts[row] + lengths[row]]`; its outputs are
    front-aligned (zeros past its length; None unless `need_outputs`), h and
    c are the state after its last valid step (any value for an empty row).
    `lengths` None means every step is valid. With `reads_spans` False,
    `fused` takes front-aligned rows (`starts` None): the rows are rotated
    to the front first.

    With `gathers_valid_steps`, `fused` takes front-aligned rows and each
    row's valid steps are gathered to the front, in order, whatever the
    mask: holes too, since a masked step changes no state
    (`_sequence.valid_steps_first`).

    `dtypes` are those `fused` computes in; calls in another (mixed
    precision's float16 or bfloat16: the planner sends no other) compute in
    float32 inside and return their own dtype. `bf16_products`, where
    given, is `fused` making its matrix products in bfloat16: it runs the
    bfloat16 calls whose options ask for it (`Options.bf16_products`). The
    planner sends no per-gate input dropout and no recurrent dropout here.
    """

    def kernel(x, h0, c0, weights, mask, dropout, options):
        dtype = backend.standardize_dtype(x.dtype)
        if dtype in dtypes:
            return run(fused, x, h0, c0, weights, mask, dropout, options)
        lstm = fused
        if options.bf16_products and dtype == "bfloat16":
            if bf16_products is None:
                raise ValueError(f"{kernel.__name__} makes no bfloat16 products")
            lstm = bf16_products
        as_float32 = lambda t: None if t is None else ops.cast(t, "float32")
        result = run(
            lstm, as_float32(x), as_float32(h0), as_float32(c0),
            type(weights)(*map(as_float32, weights)), mask,
            type(dropout)(as_float32(dropout.inputs), None), options,
        )
        return tuple(None if t is None else ops.cast(t, dtype) for t in result)

    def run(fused, x, h0, c0, weights, mask, dropout, options):
        x, _ = _sequence.drop_inputs(x, dropout.inputs)
        if x.shape[-1] == 0:
            # No features: one zero feature with a zero kernel row adds
            # nothing to the gates (the fused kernels take no empty input).
            x = ops.zeros(tuple(ops.shape(x)[:2]) + (1,), x.dtype)
            units4 = ops.shape(weights.kernel)[-1]
            weights = weights._replace(
                kernel=ops.concatenate(
                    [weights.kernel, ops.zeros((1, units4), weights.kernel.dtype)], axis=0
                )
            )
        rs = options.return_sequences
        if options.layout in (_sequence.NO_MASK, _sequence.ALL_VALID):
            y, h, c = fused(x, h0, c0, weights, None, None, rs)
            return h, (y if rs else None), h, c
        if gathers_valid_steps:
            return gathered(fused, x, h0, c0, weights, mask, options)
        starts, lengths = _sequence.valid_span(mask)
        spans_at = starts
        if not reads_spans:
            spans_at = None
            if options.layout != _sequence.RIGHT_PADDED:
                x = _sequence.rotate_to_front(x, starts)
        y, h, c = fused(x, h0, c0, weights, spans_at, lengths, rs)
        last, h, c = states(h, c, h0, c0, lengths, mask, options)
        outputs = None
        if rs:
            outputs = _sequence.restore_outputs(
                y, starts, lengths, options.zero_output_for_mask
            )
        return last, outputs, h, c

    def gathered(fused, x, h0, c0, weights, mask, options):
        # Each row's valid steps, front-aligned, for as many steps as it has.
        x = _sequence.gather_steps(x, _sequence.valid_steps_first(mask))
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        y, h, c = fused(x, h0, c0, weights, None, lengths, options.return_sequences)
        last, h, c = states(h, c, h0, c0, lengths, mask, options)
        outputs = None
        if options.return_sequences:
            outputs = _sequence.restore_gathered(y, mask, options.zero_output_for_mask)
        return last, outputs, h, c

    def states(h, c, h0, c0, lengths, mask, options):
        nonempty = ops.expand_dims(lengths > 0, 1)
        h = ops.where(nonempty, h, h0)
        c = ops.where(nonempty, c, c0)
        # The last output is the last valid step's, i.e. the final h, or zeros
        # for an empty row (and for a masked last step with zero outputs).
        keep_last = nonempty
        if options.zero_output_for_mask:
            keep_last = ops.logical_and(keep_last, mask[:, -1:])
        return ops.where(keep_last, h, ops.zeros_like(h)), h, c

    kernel.__name__ = getattr(fused, "__name__", "fused")
    kernel.__doc__ = fused.__doc__
    return kernel
