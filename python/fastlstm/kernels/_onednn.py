"""What the three bindings of the compiled kernel share, in keras.ops.

The compiled kernel runs every row for every step: its inference pass takes
lengths only to read each row's h at its last valid step, its training pass
takes none. Front-aligned rows still give exact results: a step never sees
the steps after it, so each row's outputs and final h are read at its last
valid step, and the steps after it (junk) are masked out, which also makes
their gradients zero.

The final c is the state after the last step, junk included. Where it is
needed, a flag feature marks the junk steps and a kernel row for it drives
the input gate to exactly 0 and the forget gate to exactly 1 there, so c
passes through the junk steps unchanged (and so does its gradient). Inputs
large enough to overcome `_FREEZE` (1e8) would saturate the real gates too.

Each binding provides `lstm(x, h0, c0, kernel, recurrent_kernel, bias,
lengths, need_outputs) -> (y or None, h, c)` with these semantics: the
inference pass (which reads h at each row's length itself and writes no
outputs where none are needed), or the training pass followed by
`outputs_at_lengths`, with gradients mapped back by `cotangents_of_raw`.
"""

import numpy as np
from keras import ops

from fastlstm import _sequence
from fastlstm import equations

_FREEZE = 1e8


def fused(lstm):
    """The fused LSTM on front-aligned rows (`kernels._fused`) that a
    binding's `lstm` (see above) gives."""

    def run(x, h0, c0, weights, lengths, need_cell_state, need_outputs):
        kernel, recurrent_kernel, bias = weights
        units = recurrent_kernel.shape[0]
        if bias is None:
            bias = ops.zeros((4 * units,), x.dtype)
        if lengths is None:
            return lstm(x, h0, c0, kernel, recurrent_kernel, bias, None, need_outputs)
        lengths = ops.cast(lengths, "int32")
        if need_cell_state:
            junk = ops.logical_not(equations.lengths_to_mask(lengths, ops.shape(x)[1]))
            x = ops.concatenate([x, ops.cast(junk, x.dtype)[..., None]], axis=-1)
            freeze = np.zeros((1, 4 * units), "float32")
            freeze[0, :units] = -_FREEZE  # input gate -> 0
            freeze[0, units : 2 * units] = _FREEZE  # forget gate -> 1
            kernel = ops.concatenate([kernel, ops.cast(freeze, kernel.dtype)], axis=0)
        y, h, c = lstm(x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_outputs)
        return y, h, (c if need_cell_state else None)

    run.__name__ = getattr(lstm, "__name__", "lstm")
    return run


def outputs_at_lengths(y, h, c, lengths, need_outputs):
    """A training pass's raw outputs in the semantics above."""
    if lengths is not None:
        valid = equations.lengths_to_mask(lengths, ops.shape(y)[1])
        y = ops.where(valid[..., None], y, ops.zeros_like(y))
        last = ops.maximum(lengths - 1, 0)
        h = _sequence.gather_steps(y, last[:, None])[:, 0]
    return (y if need_outputs else None), h, c


def cotangents_of_raw(y, dy, dh, dc, lengths, need_outputs):
    """The gradients with respect to a training pass's raw `(y, h, c)`, from
    those with respect to `outputs_at_lengths(...)`; None counts as zeros."""
    dy = ops.zeros_like(y) if dy is None or not need_outputs else dy
    if lengths is None:
        return dy, dh, dc
    steps = ops.shape(y)[1]
    valid = equations.lengths_to_mask(lengths, steps)
    dy = ops.where(valid[..., None], dy, ops.zeros_like(dy))
    if dh is not None:
        # h was read at step max(length - 1, 0), then masked for empty rows.
        at_last = ops.arange(steps, dtype="int32")[None, :] == ops.maximum(lengths - 1, 0)[:, None]
        at_last = ops.logical_and(at_last, valid)
        dy = dy + ops.where(at_last[..., None], dh[:, None, :], ops.zeros_like(dy))
    return dy, None, dc
