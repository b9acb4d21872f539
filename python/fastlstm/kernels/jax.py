"""JAX kernels: a lax.scan recurrence and cuDNN through jax.experimental.rnn."""

import jax
import jax.numpy as jnp
from keras import activations


# XLA:CPU runs one large (batch*time, input) x (input, 4*units) product far
# below its per-step rate (measured: ~10 GFLOP/s vs the scan's ~40), so the
# input projection is done step by step inside the scan, as Keras does.
PROJECT_IN_LOOP = True


def device():
    return "gpu" if jax.default_backend() == "gpu" else "cpu"


def has_native_cpu_kernel():
    return False


def _native(fn):
    if fn is activations.tanh:
        return jnp.tanh
    if fn is activations.sigmoid:
        return jax.nn.sigmoid
    return fn


def _step(z, c, activation, recurrent_activation):
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(
        z_c
    )
    h = recurrent_activation(z_o) * activation(c)
    return h, c


def _recurrent_term(h, recurrent_kernel, rec_masks):
    if rec_masks is None:
        return h @ recurrent_kernel
    parts = jnp.split(recurrent_kernel, 4, axis=1)
    return jnp.concatenate(
        [(h * m) @ k for m, k in zip(rec_masks, parts)], axis=-1
    )


def recurrence(
    xp,
    h0,
    c0,
    recurrent_kernel,
    mask,
    *,
    activation,
    recurrent_activation,
    zero_output_for_mask,
    return_sequences,
    unroll,
    rec_masks=None,
    input_kernel=None,
):
    """Runs the LSTM recurrence over `xp = x @ kernel + bias`.

    `xp` is `(batch, time, 4 * units)`, already in processing order, or,
    with `input_kernel=(kernel, bias)`, the inputs `(batch, time, features)`
    themselves, projected step by step inside the loop; `mask`
    is `(batch, time)` or None. Returns `(last_output, outputs, h, c)` with
    Keras's generic semantics: a masked step carries the state over and
    repeats the previous output (zeros if `zero_output_for_mask`).
    """
    act, ract = _native(activation), _native(recurrent_activation)
    xs = jnp.swapaxes(xp, 0, 1)
    zeros = jnp.zeros_like(h0)

    def body(carry, inputs):
        h, c, prev = carry
        z_t, m_t = inputs
        if input_kernel is not None:
            z_t = z_t @ input_kernel[0]
            if input_kernel[1] is not None:
                z_t = z_t + input_kernel[1]
        h_new, c_new = _step(
            z_t + _recurrent_term(h, recurrent_kernel, rec_masks), c, act, ract
        )
        if m_t is None:
            return (h_new, c_new, h_new), h_new
        out = jnp.where(m_t, h_new, zeros if zero_output_for_mask else prev)
        carry = (jnp.where(m_t, h_new, h), jnp.where(m_t, c_new, c), out)
        return carry, out

    masks = None
    if mask is not None:
        masks = jnp.swapaxes(jnp.asarray(mask, bool), 0, 1)[..., None]

    if unroll:
        carry, outs = (h0, c0, zeros), []
        for t in range(xs.shape[0]):
            carry, out = body(carry, (xs[t], None if masks is None else masks[t]))
            outs.append(out)
        h, c, last = carry
        outputs = jnp.stack(outs, axis=1) if return_sequences else None
        return last, outputs, h, c

    if not return_sequences:
        # Carry only: no (time, batch, units) stack to write or differentiate.
        def body_last(carry, inputs):
            return body(carry, inputs)[0], None

        (h, c, last), _ = jax.lax.scan(body_last, (h0, c0, zeros), (xs, masks))
        return last, None, h, c
    (h, c, last), outs = jax.lax.scan(body, (h0, c0, zeros), (xs, masks))
    return last, jnp.swapaxes(outs, 0, 1), h, c


def fused(x, h0, c0, kernel, recurrent_kernel, bias, lengths):
    """cuDNN LSTM (jax.experimental.rnn) over rows right-aligned to `lengths`.

    Returns `(outputs, h, c)`; outputs past a row's length are zeros.
    """
    from jax.experimental import rnn

    batch, steps, input_size = x.shape
    units = recurrent_kernel.shape[0]
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    if bias is None:
        bias = jnp.zeros((4 * units,), x.dtype)
    # cuDNN's flat layout: W_ih, W_hh (PyTorch's (4 * units, in) form, gate
    # order i, f, g, o as in Keras), then the input and recurrent biases.
    weights = jnp.concatenate(
        [kernel.T.ravel(), recurrent_kernel.T.ravel(), bias, jnp.zeros_like(bias)]
    )
    y, h, c = rnn.lstm(
        x,
        h0[None],
        c0[None],
        weights,
        jnp.asarray(lengths, jnp.int32),
        input_size=input_size,
        hidden_size=units,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    return y, h[0], c[0]
