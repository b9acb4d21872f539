"""TensorFlow kernels: a tf.while_loop recurrence and the CudnnRNNV3 op."""

import functools

import tensorflow as tf
from keras import activations


def device():
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def has_native_cpu_kernel():
    return False


def _native(fn):
    # Call TensorFlow's own ops for the common activations: inside the loop
    # every Python-level indirection is paid once per step while tracing.
    if fn is activations.tanh:
        return tf.tanh
    if fn is activations.sigmoid:
        return tf.sigmoid
    return fn


def _step(z, c, activation, recurrent_activation):
    z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
    c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(
        z_c
    )
    h = recurrent_activation(z_o) * activation(c)
    return h, c


def _recurrent_term(h, recurrent_kernel, rec_masks):
    if rec_masks is None:
        return tf.matmul(h, recurrent_kernel)
    parts = tf.split(recurrent_kernel, 4, axis=1)
    return tf.concat(
        [tf.matmul(h * m, k) for m, k in zip(rec_masks, parts)], axis=-1
    )


def recurrence(xp, h0, c0, recurrent_kernel, mask, *, rec_masks=None, **options):
    """Runs the LSTM recurrence over `xp = x @ kernel + bias`.

    `xp` is `(batch, time, 4 * units)`, already in processing order; `mask`
    is `(batch, time)` or None. Returns `(last_output, outputs, h, c)` with
    Keras's generic semantics: a masked step carries the state over and
    repeats the previous output (zeros if `zero_output_for_mask`).
    """
    if tf.executing_eagerly() and not options["unroll"]:
        # An eager while_loop runs op by op from Python; a traced graph, one
        # per configuration, runs the whole loop in C++.
        key = (tuple(sorted(options.items())), mask is None, rec_masks is None)
        if key not in _compiled:
            _compiled[key] = tf.function(
                functools.partial(_recurrence, **options), reduce_retracing=True
            )
        return _compiled[key](xp, h0, c0, recurrent_kernel, mask, rec_masks=rec_masks)
    return _recurrence(
        xp, h0, c0, recurrent_kernel, mask, rec_masks=rec_masks, **options
    )


_compiled = {}


def _recurrence(
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
):
    act, ract = _native(activation), _native(recurrent_activation)
    xs = tf.transpose(xp, [1, 0, 2])
    masks = None
    if mask is not None:
        masks = tf.expand_dims(tf.transpose(tf.cast(mask, tf.bool)), -1)
    zeros = tf.zeros_like(h0)

    def body(t, h, c, prev, z_t, m_t):
        h_new, c_new = _step(
            z_t + _recurrent_term(h, recurrent_kernel, rec_masks), c, act, ract
        )
        if m_t is None:
            return h_new, c_new, h_new
        out = tf.where(m_t, h_new, zeros if zero_output_for_mask else prev)
        return tf.where(m_t, h_new, h), tf.where(m_t, c_new, c), out

    if unroll:
        steps = xs.shape[0]
        h, c, out, outs = h0, c0, zeros, []
        for t in range(steps):
            h, c, out = body(t, h, c, out, xs[t], None if masks is None else masks[t])
            outs.append(out)
        outputs = tf.stack(outs, axis=1) if return_sequences else None
        return out, outputs, h, c

    steps = tf.shape(xs)[0]
    ta = tf.TensorArray(
        xp.dtype, size=steps if return_sequences else 1, element_shape=h0.shape
    )

    def loop_body(t, h, c, prev, ta):
        m_t = None if masks is None else masks[t]
        h, c, out = body(t, h, c, prev, xs[t], m_t)
        ta = ta.write(t if return_sequences else 0, out)
        return t + 1, h, c, out, ta

    _, h, c, last, ta = tf.while_loop(
        lambda t, *_: t < steps,
        loop_body,
        (tf.constant(0), h0, c0, zeros, ta),
        maximum_iterations=steps,
        parallel_iterations=1,
    )
    outputs = tf.transpose(ta.stack(), [1, 0, 2]) if return_sequences else None
    return last, outputs, h, c



def fused(x, h0, c0, kernel, recurrent_kernel, bias, lengths):
    """cuDNN LSTM (CudnnRNNV3) over rows right-aligned to `lengths`.

    Returns `(outputs, h, c)`; outputs past a row's length are zeros.
    """
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    if lengths is None:
        lengths = tf.fill([batch], steps)
    weights = tf.split(kernel, 4, axis=1) + tf.split(recurrent_kernel, 4, axis=1)
    # cuDNN adds an input and a recurrent bias; Keras has one, so the
    # input-side bias is zeros.
    biases = tf.split(tf.zeros_like(bias), 4) + tf.split(bias, 4)
    params = tf.concat(
        [tf.reshape(tf.transpose(w), [-1]) for w in weights]
        + [tf.reshape(b, [-1]) for b in biases],
        axis=0,
    )
    outputs, h, c, _, _ = tf.raw_ops.CudnnRNNV3(
        input=x,
        input_h=tf.expand_dims(h0, 1),
        input_c=tf.expand_dims(c0, 1),
        params=params,
        is_training=True,
        rnn_mode="lstm",
        sequence_lengths=tf.cast(lengths, tf.int32),
        time_major=False,
    )
    return outputs, tf.squeeze(h, 1), tf.squeeze(c, 1)
