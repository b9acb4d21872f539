"""The LSTM's equations, stated once, and their one keras.ops implementation.

Every kernel computes these, and points here: the loops and their written-out
gradients of each backend (`fastlstm.kernels.*`) call the functions below;
the C++ core (`csrc/lstm_onednn.cc`) and cuDNN compute the same in their own
languages.

Forward, one step t of one row (Keras's weights: gate order i, f, c, o; the
cell candidate, Keras's "c" gate, is called g here to keep it apart from the
cell state c):

    z   = x_t W + h_{t-1} R + b                 (4 * units: z_i, z_f, z_g, z_o)
    i   = σ(z_i)   f = σ(z_f)   g = φ(z_g)   o = σ(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * φ(c_t)

σ is `recurrent_activation` (sigmoid), φ is `activation` (tanh). The
*standard* LSTM is σ = sigmoid, φ = tanh: the one the fused kernels and the
written-out gradients compute.

Masks (Keras's generic loop). A step whose mask is False leaves the state as
it was: h_t, c_t = h_{t-1}, c_{t-1}. Its output y_t repeats y_{t-1} (zeros
with `zero_output_for_mask`); before a row's first valid step y is zeros.
A row with no valid step ends with its initial state and zero outputs.

Backward, the standard LSTM. With dh the gradient reaching h_t (from step t+1
and from the output y_t) and dc the one reaching c_t:

    dc'  = dc + dh * o * (1 - φ(c_t)^2)
    dz_i = dc' * g * i * (1 - i)           dz_f = dc' * c_{t-1} * f * (1 - f)
    dz_g = dc' * i * (1 - g^2)             dz_o = dh * φ(c_t) * o * (1 - o)
    dc_{t-1} = dc' * f                     dh_{t-1} = dz R^T
    dW = Σ_t x_t^T dz_t    dR = Σ_t h_{t-1}^T dz_t    db = Σ_t dz_t
    dx_t = dz_t W^T

A masked step passes dh and dc through to step t-1 unchanged and has dz = 0;
the gradient of a repeated output flows to the output it repeats.

The written-out gradients save, per step, the residuals `gates` (i, f, g, o,
activated, in that order), `h` and `c` (the states after the step).
"""

from keras import ops


def split_gates(z):
    """The four gate slices of `(..., 4 * units)`: i, f, g, o."""
    return ops.split(z, 4, axis=-1)


def step(z, c, activation, recurrent_activation):
    """One step from the gate products `z` (x W + h R + b) and the previous
    c, with any activations: the new `(h, c)`."""
    z_i, z_f, z_g, z_o = split_gates(z)
    c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(z_g)
    return recurrent_activation(z_o) * activation(c), c


def standard_step(z, c):
    """One step of the standard LSTM: `(gates, h, c)`, `gates` being the
    activated i, f, g, o side by side (the backward pass's residuals)."""
    z_i, z_f, z_g, z_o = split_gates(z)
    i, f, o = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.sigmoid(z_o)
    g = ops.tanh(z_g)
    c = f * c + i * g
    return ops.concatenate([i, f, g, o], axis=-1), o * ops.tanh(c), c


def masked_step(m, h_new, c_new, h, c, previous_output, zero_output_for_mask):
    """The masked-step rule: `(h, c, output)` after a step whose mask is `m`
    (`(batch, 1)`, boolean), from the step's new states and the old ones."""
    fill = ops.zeros_like(previous_output) if zero_output_for_mask else previous_output
    return ops.where(m, h_new, h), ops.where(m, c_new, c), ops.where(m, h_new, fill)


def backward_step(gates, c_prev, c, dh, dc, d_output, m, zero_output_for_mask):
    """One step of the standard LSTM's backward pass (see above).

    Args:
        gates, c_prev, c: the step's saved gates, the cell state before it
            and after it.
        dh, dc: the gradients reaching h_t and c_t from step t + 1.
        d_output: the gradient reaching the step's output y_t (its own, plus
            what later repeats of it pass back).
        m: the step's mask as a float `(batch, 1)` (1 valid, 0 masked), or
            None for an unmasked step.
        zero_output_for_mask: whether masked steps output zeros.

    Returns:
        `(dz, dh_through, dc_prev, d_output_prev)`: the gate gradients; the
        part of dh_{t-1} not through R (add `dz R^T`), None where there is
        none; dc_{t-1}; and the gradient that reaches y_{t-1} through this
        step's output (zeros where the output did not repeat it).
    """
    if m is not None:
        # A masked step's h and c are the previous ones, and its output the
        # previous output: each gradient passes to its own source.
        keep = 1.0 - m
        dh_through, dc_through = keep * dh, keep * dc
        dh, dc = m * (dh + d_output), m * dc
    else:
        dh = dh + d_output
    i, f, g, o = split_gates(gates)
    tc = ops.tanh(c)
    dc = dc + dh * o * (1.0 - tc * tc)
    dz = ops.concatenate(
        [
            dc * g * i * (1.0 - i),
            dc * c_prev * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            dh * tc * o * (1.0 - o),
        ],
        axis=-1,
    )
    dc_prev = dc * f
    if m is None:
        return dz, None, dc_prev, ops.zeros_like(d_output)
    d_output_prev = ops.zeros_like(d_output) if zero_output_for_mask else keep * d_output
    return dz, dh_through, dc_prev + dc_through, d_output_prev


def weight_gradients(xs, h0, hs, dz, kernel):
    """The weight work of the backward pass, a few large products over all
    steps: `(dx, dW, dR, db)`.

    `xs (time, batch, features)`, `hs (time, batch, units)` (the states after
    each step) and `dz (time, batch, 4 * units)` are time-major.
    """
    steps, batch, features = ops.shape(xs)
    rows = steps * batch  # not -1: a reshape cannot infer it with no features
    dz2 = ops.reshape(dz, (rows, ops.shape(dz)[-1]))
    h_prev = ops.concatenate([ops.expand_dims(h0, 0), hs[:-1]], axis=0)
    dw = ops.matmul(ops.transpose(ops.reshape(xs, (rows, features))), dz2)
    dr = ops.matmul(ops.transpose(ops.reshape(h_prev, (rows, ops.shape(h0)[-1]))), dz2)
    db = ops.sum(dz2, axis=0)
    dx = ops.reshape(ops.matmul(dz2, ops.transpose(kernel)), ops.shape(xs))
    return dx, dw, dr, db


def lengths_to_mask(lengths, steps):
    """The `(batch, steps)` mask of rows front-aligned to `lengths`: step t
    of a row is valid where t < its length."""
    return ops.arange(steps, dtype="int32")[None, :] < ops.cast(lengths, "int32")[:, None]
