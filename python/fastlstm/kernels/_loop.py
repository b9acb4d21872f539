"""The loops' steps, in keras.ops, for every backend's loop drivers
(lax.scan, tf.while_loop, a torch loop): what one step computes is written
here once, after `fastlstm.equations`; a driver only iterates.

Drivers read their inputs time-major: `(time, batch, width)`.
"""

from keras import ops

from fastlstm import _sequence
from fastlstm import equations


def time_major(x):
    return ops.transpose(x, (1, 0, 2))


def step_inputs(x, weights, dropout, hoist):
    """`(xs, projected)`: what the loop reads at each step, time-major.

    With `hoist` (or per-gate input dropout, which only a per-gate product
    applies) the inputs are projected up front, `x W + b` for all steps at
    once, and `projected` is True; else they are projected step by step
    inside the loop (`gate_products`), which is faster where a backend runs
    one large product far below its per-step rate.
    """
    x, gate_masks = _sequence.drop_inputs(x, dropout.inputs)
    if hoist or gate_masks is not None:
        xp = _sequence.project(x, weights.kernel, weights.bias, gate_masks)
        return time_major(xp), True
    return time_major(x), False


def recurrent_term(h, recurrent_kernel, recurrent_masks=None):
    """`h R`, with Keras's per-gate recurrent dropout masks where given."""
    if recurrent_masks is None:
        return ops.matmul(h, recurrent_kernel)
    parts = ops.split(recurrent_kernel, 4, axis=1)
    return ops.concatenate(
        [ops.matmul(h * m, k) for m, k in zip(recurrent_masks, parts)], axis=-1
    )


def gate_products(x_t, h, weights, recurrent_masks, projected):
    """z = x_t W + h R + b for one step; `x_t` is already `x_t W + b` where
    `projected`."""
    z = recurrent_term(h, weights.recurrent_kernel, recurrent_masks)
    if projected:
        return x_t + z
    z = z + ops.matmul(x_t, weights.kernel)
    return z if weights.bias is None else z + weights.bias


def step(x_t, m_t, h, c, previous_output, weights, dropout, options, projected):
    """One step of the loop for any activation: the new `(h, c, output)`.

    `m_t` is the step's `(batch, 1)` boolean mask, or None.
    """
    z = gate_products(x_t, h, weights, dropout.recurrent, projected)
    h_new, c_new = equations.step(
        z, c, options.activation, options.recurrent_activation
    )
    if m_t is None:
        return h_new, c_new, h_new
    return equations.masked_step(
        m_t, h_new, c_new, h, c, previous_output, options.zero_output_for_mask
    )


def unrolled(x, h0, c0, weights, mask, dropout, options, hoist):
    """The loop's steps unrolled in Python, for any backend: `(last,
    outputs, h, c)`."""
    xs, projected = step_inputs(x, weights, dropout, hoist)
    masks = step_masks(mask)
    h, c, out, outs = h0, c0, ops.zeros_like(h0), []
    for t in range(xs.shape[0]):
        m_t = None if masks is None else masks[t]
        h, c, out = step(xs[t], m_t, h, c, out, weights, dropout, options, projected)
        if options.return_sequences:
            outs.append(out)
    return out, (ops.stack(outs, axis=1) if options.return_sequences else None), h, c


def step_masks(mask):
    """The mask, time-major, as each step reads it: `(time, batch, 1)`
    boolean, or None."""
    if mask is None:
        return None
    return ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1)


# The standard LSTM with its gradient written out: a forward pass that saves
# each step's residuals, a backward pass of gate gradients only, and the
# weight work as a few large products (`equations.weight_gradients`).


def is_standard(options, dropout):
    """Whether the written-out gradient applies: tanh / sigmoid, no recurrent
    dropout, one input-dropout mask for every gate."""
    from keras import activations

    return (
        options.activation is activations.tanh
        and options.recurrent_activation is activations.sigmoid
        and dropout.recurrent is None
        and not isinstance(dropout.inputs, (list, tuple))
    )


def written_out_inputs(x, weights, mask, dropout):
    """What a written-out gradient's loops take: `(xs, kernel,
    recurrent_kernel, bias, masks)`, the inputs (input dropout applied) and
    the step masks time-major, and zeros for a bias the layer has not."""
    x, _ = _sequence.drop_inputs(x, dropout.inputs)
    kernel, recurrent_kernel, bias = weights
    if bias is None:
        bias = ops.zeros((ops.shape(kernel)[-1],), kernel.dtype)
    return time_major(x), kernel, recurrent_kernel, bias, step_masks(mask)


def batch_major(outputs, options):
    """A loop's time-major outputs as the kernel returns them: batch-major,
    or None without return_sequences."""
    return time_major(outputs) if options.return_sequences else None


def standard_step(x_t, m_t, h, c, previous_output, kernel, recurrent_kernel, bias,
                  zero_output_for_mask):
    """One forward step of the standard LSTM: `(h, c, output, gates)`.

    `x_t` is projected in the step, or is `x_t W + b` already where `kernel`
    is None; `m_t` is a `(batch, 1)` boolean mask, or None.
    """
    z = ops.matmul(h, recurrent_kernel)
    z = z + (x_t if kernel is None else ops.matmul(x_t, kernel) + bias)
    gates, h_new, c_new = equations.standard_step(z, c)
    if m_t is None:
        return h_new, c_new, h_new, gates
    h_new, c_new, out = equations.masked_step(
        m_t, h_new, c_new, h, c, previous_output, zero_output_for_mask
    )
    return h_new, c_new, out, gates


def standard_backward_step(gates, c_prev, c, m_t, d_output, dh, dc,
                           recurrent_kernel_t, zero_output_for_mask):
    """One backward step: `(dz, dh_prev, dc_prev, d_output_prev)`.

    `m_t` is the step's float `(batch, 1)` mask, or None; `d_output` the
    gradient reaching the step's output (its own and what later repeats of
    it pass back); `recurrent_kernel_t` is R transposed.
    """
    dz, dh_through, dc_prev, d_output_prev = equations.backward_step(
        gates, c_prev, c, dh, dc, d_output, m_t, zero_output_for_mask
    )
    dh_prev = ops.matmul(dz, recurrent_kernel_t)
    if dh_through is not None:
        dh_prev = dh_prev + dh_through
    return dz, dh_prev, dc_prev, d_output_prev
