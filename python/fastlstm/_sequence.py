"""Sequence plumbing around the kernels, in keras.ops: mask layouts, valid
spans, rotating rows to the front and back (see `fastlstm.kernels._fused`),
input dropout and the input projection.

A mask without holes gives every row one valid span `[start, start+length)`;
rotated so that each span starts at step 0, the rows are front-aligned.
"""

import sys

import numpy as np
from keras import ops

# Mask layouts, as the planner reports them.
NO_MASK = "none"
ALL_VALID = "all steps valid"
RIGHT_PADDED = "right-padded"
LEFT_PADDED = "left-padded"
CONTIGUOUS = "one contiguous span per row"
HOLES = "holes"
RUNTIME = "decided at run time"

CONTIGUOUS_LAYOUTS = (NO_MASK, ALL_VALID, RIGHT_PADDED, LEFT_PADDED, CONTIGUOUS)


def concrete(x):
    """`x` as a NumPy array, or None while it is symbolic (traced)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.jit.is_tracing():
        # A jit trace (torch.onnx's TorchScript exporter) has values, but
        # records what they decide as constants for every later call.
        return None
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:  # a symbolic tensor: TF graph, JAX tracer, torch trace
        return None


def standardize_mask(mask, sequences):
    """A mask Keras's loop accepts (checked by `_validation.check_mask`) as
    the boolean `(batch, timesteps)` tensor the kernels take."""
    if len(mask.shape) == 3:
        mask = ops.squeeze(mask, axis=-1)
    # Non-zero means valid, as Keras's loops cast it.
    mask = ops.cast(mask, "bool")
    if mask.shape[0] == 1 and sequences.shape[0] != 1:
        # One row for the whole batch, as Keras broadcasts it.
        mask = ops.broadcast_to(mask, tuple(ops.shape(sequences)[:2]))
    return mask


def mask_layout(mask):
    """Classifies a `(batch, time)` mask: one of the layout names above."""
    if mask is None:
        return NO_MASK
    m = concrete(mask)
    if m is None:
        return RUNTIME
    m = m.astype(bool)
    if m.all():
        return ALL_VALID
    lengths = m.sum(axis=1)
    steps = m.shape[1]
    starts = np.where(lengths > 0, m.argmax(axis=1), 0)
    span = np.arange(steps)[None, :] - starts[:, None]
    inside = (span >= 0) & (span < lengths[:, None])
    if not np.array_equal(inside, m):
        return HOLES
    if np.all(starts == 0):
        return RIGHT_PADDED
    if np.all(starts + lengths == steps):
        return LEFT_PADDED
    return CONTIGUOUS


def is_contiguous(mask):
    """Symbolic twin of `mask_layout(...) in CONTIGUOUS_LAYOUTS`."""
    starts, lengths = valid_span(mask)
    inside = _inside(ops.shape(mask)[1], starts, lengths)
    return ops.all(ops.equal(inside, ops.cast(mask, "bool")))


def valid_span(mask):
    """Per row, the first valid step (0 if none) and the number of them."""
    m = ops.cast(mask, "int32")
    return ops.cast(ops.argmax(m, axis=1), "int32"), ops.sum(m, axis=1)


def _inside(steps, starts, lengths):
    rel = positions(steps)[None, :] - starts[:, None]
    return ops.logical_and(rel >= 0, rel < lengths[:, None])


def positions(steps):
    """0, 1, ..., steps - 1 (int32). Start, stop and step are all given:
    jax2onnx's arange takes no other form."""
    return ops.arange(0, steps, 1, dtype="int32")


def row_numbers(x):
    """Each row's number, as a `(batch, 1)` int32 column, for `x (batch,
    ...)`: a cumulative sum, not an arange, since the batch may be symbolic
    (an export for any batch size, which jax2onnx's arange cannot take)."""
    return ops.cumsum(ops.ones_like(x[:, :1], dtype="int32"), axis=0) - 1


def gather_steps(x, index):
    """`x[row, index[row, j]]` for `x (batch, time, width)` and an int32
    `index (batch, k)`: a `(batch, k, width)` tensor.

    A gather of whole rows of `x` flattened to `(batch * time, width)`.
    take_along_axis with an index broadcast to every element ran an
    element-wise gather, and on TensorFlow transposed `x` first (measured:
    8.8 ms for a (64, 100, 128) batch, against 1 to 1.8 ms for the rows).
    """
    shape = ops.shape(x)
    rows = row_numbers(index) * shape[1] + index
    flat = ops.reshape(x, (-1, shape[2]))
    taken = ops.take(flat, ops.reshape(rows, (-1,)), axis=0)
    # -1, not the batch: a symbolic one is no number to jax2onnx's reshape.
    return ops.reshape(taken, (-1, ops.shape(index)[1], shape[2]))


def rotate_to_front(x, starts):
    """Rotates each row of `x (batch, time, features)` left by `starts`."""
    steps = ops.shape(x)[1]
    index = (positions(steps)[None, :] + starts[:, None]) % steps
    return gather_steps(x, index)


def restore_outputs(y, starts, lengths, zero_output_for_mask):
    """Puts front-aligned kernel outputs back in Keras's masked layout.

    Before a row's span the output is zeros; inside it, the kernel's output;
    after it, the last valid output repeated (zeros if `zero_output_for_mask`).
    """
    steps = ops.shape(y)[1]
    rel = positions(steps)[None, :] - starts[:, None]
    inside = ops.logical_and(rel >= 0, rel < lengths[:, None])
    if zero_output_for_mask:
        keep = inside
    else:
        keep = ops.logical_and(rel >= 0, lengths[:, None] > 0)
    source = ops.clip(ops.minimum(rel, lengths[:, None] - 1), 0, steps - 1)
    out = gather_steps(y, source)
    return ops.where(ops.expand_dims(keep, -1), out, ops.zeros_like(out))


def valid_steps_first(mask):
    """Per row, its step indices with the valid steps first, in order, then
    the masked ones: a `(batch, time)` int32 index for `gather_steps`.

    A masked step leaves Keras's states as they were, so running a row's
    valid steps alone, gathered to the front, gives the states after each
    of them, holes included (`restore_gathered` puts the outputs back).
    """
    steps = ops.shape(mask)[1]
    t = positions(steps)[None, :]
    # The steps by ascending key, the valid ones first; a top-k of the
    # negated keys, which every exporter writes (a stable argsort is not).
    _, order = ops.top_k(-ops.where(mask, t, t + steps), steps)
    return ops.cast(order, "int32")


def restore_gathered(y, mask, zero_output_for_mask):
    """Puts the outputs of rows run with their valid steps first
    (`valid_steps_first`) back where Keras's generic loop puts them.

    At a valid step, its own output; at a masked one, the last valid output
    before it (zeros if `zero_output_for_mask`, and before the first one).
    """
    # Per step, the valid steps up to and including it.
    counts = ops.cumsum(ops.cast(mask, "int32"), axis=1)
    keep = counts > 0
    if zero_output_for_mask:
        keep = ops.logical_and(keep, mask)
    out = gather_steps(y, ops.maximum(counts - 1, 0))
    return ops.where(ops.expand_dims(keep, -1), out, ops.zeros_like(out))


def in_processing_order(layout, go_backwards):
    """The layout of a mask once its steps run reversed (go_backwards):
    left- and right-padded swap, the others stay."""
    if not go_backwards:
        return layout
    return {LEFT_PADDED: RIGHT_PADDED, RIGHT_PADDED: LEFT_PADDED}.get(layout, layout)


def drop_inputs(x, inputs_mask):
    """Applies Keras's input dropout: `(x, None)` with one mask for every
    gate applied to `x`, or `(x, masks)` with four per-gate masks, which only
    a per-gate projection (`project`) can apply."""
    if inputs_mask is None:
        return x, None
    if isinstance(inputs_mask, (list, tuple)):
        return x, inputs_mask
    return x * ops.expand_dims(inputs_mask, 1), None


def project(x, kernel, bias, gate_dropout_masks=None):
    """`x @ kernel + bias` for all steps at once.

    `gate_dropout_masks` are Keras's four per-gate input-dropout masks
    (implementation 1, used with recurrent dropout), or None.
    """
    if gate_dropout_masks is None:
        xp = ops.matmul(x, kernel)
    else:
        parts = ops.split(kernel, 4, axis=1)
        xp = ops.concatenate(
            [
                ops.matmul(x * ops.expand_dims(m, 1), k)
                for m, k in zip(gate_dropout_masks, parts)
            ],
            axis=-1,
        )
    if bias is not None:
        xp = xp + bias
    return xp
