"""What the TensorFlow and JAX native kernels share, in keras.ops.

oneDNN's LSTM runs every row for every step: it takes no sequence lengths.
Rows front-aligned to `lengths` (the layer rotates them so) still give exact
results: a step never sees the steps after it, so each row's outputs and
final h are read at its last valid step, and the steps after it (junk) are
masked out, which also makes their gradients zero.

The final c is the state after the last step, junk included. Where it is
needed, a flag feature marks the junk steps and a kernel row for it drives
the input gate to exactly 0 and the forget gate to exactly 1 there, so c
passes through the junk steps unchanged (and so does its gradient). Inputs
large enough to overcome `_FREEZE` (1e8) would saturate the real gates too.
"""

import numpy as np
from keras import ops

_FREEZE = 1e8


def front_aligned(lstm, x, h0, c0, kernel, recurrent_kernel, bias, lengths,
                  need_cell_state=True):
    """Runs `lstm(x, h0, c0, kernel, recurrent_kernel, bias) -> (y, h, c)`,
    a kernel over all steps, on rows front-aligned to `lengths` (or None).

    Returns `(outputs, h, c)` with outputs past a row's length zero, h read
    at the row's last valid step, and c None unless `need_cell_state`.
    """
    units = recurrent_kernel.shape[0]
    if bias is None:
        bias = ops.zeros((4 * units,), x.dtype)
    if lengths is None:
        return lstm(x, h0, c0, kernel, recurrent_kernel, bias)
    steps = ops.shape(x)[1]
    lengths = ops.cast(lengths, "int32")
    valid = ops.arange(steps, dtype="int32")[None, :] < lengths[:, None]
    if need_cell_state:
        junk = ops.cast(ops.logical_not(valid), x.dtype)[..., None]
        x = ops.concatenate([x, junk], axis=-1)
        freeze = np.zeros((1, 4 * units), "float32")
        freeze[0, :units] = -_FREEZE  # input gate -> 0
        freeze[0, units : 2 * units] = _FREEZE  # forget gate -> 1
        kernel = ops.concatenate([kernel, ops.cast(freeze, kernel.dtype)], axis=0)
    y, _, c = lstm(x, h0, c0, kernel, recurrent_kernel, bias)
    y = ops.where(valid[..., None], y, ops.zeros_like(y))
    last = ops.maximum(lengths - 1, 0)
    h = ops.take_along_axis(y, last[:, None, None], axis=1)[:, 0]
    return y, h, (c if need_cell_state else None)
