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


def _recording():
    """Whether a gradient tape may record the ops built now."""
    try:
        from tensorflow.python.eager import tape as tape_lib

        return bool(tape_lib.could_possibly_record())
    except Exception:  # a TensorFlow without the private helper
        return True


def recurrence(xp, h0, c0, recurrent_kernel, mask, *, rec_masks=None, **options):
    """Runs the LSTM recurrence over `xp = x @ kernel + bias`.

    `xp` is `(batch, time, 4 * units)`, already in processing order; `mask`
    is `(batch, time)` or None. Returns `(last_output, outputs, h, c)` with
    Keras's generic semantics: a masked step carries the state over and
    repeats the previous output (zeros if `zero_output_for_mask`).
    """
    act, ract = _native(options["activation"]), _native(options["recurrent_activation"])
    standard = act is tf.tanh and ract is tf.sigmoid and rec_masks is None
    if standard and not options["unroll"]:
        grad = _recording()
        if tf.executing_eagerly():
            key = ("fast", grad, options["zero_output_for_mask"],
                   options["return_sequences"], mask is None)
            if key not in _compiled:
                _compiled[key] = tf.function(
                    functools.partial(
                        _fast_recurrence,
                        zero_output_for_mask=options["zero_output_for_mask"],
                        return_sequences=options["return_sequences"],
                        custom_grad=grad,
                    ),
                    reduce_retracing=True,
                )
            return _compiled[key](xp, h0, c0, recurrent_kernel, mask)
        return _fast_recurrence(
            xp, h0, c0, recurrent_kernel, mask,
            zero_output_for_mask=options["zero_output_for_mask"],
            return_sequences=options["return_sequences"],
            custom_grad=grad,
        )
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
# Lets steps overlap the reads and writes that do not wait on the carry.
_PARALLEL = 32


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
        # A traced graph may know fewer dims of `xp` than of the state.
        h_new.set_shape(h0.shape)
        c_new.set_shape(c0.shape)
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

    # Read steps from TensorArrays: the gradient of `xs[t]` on a captured
    # tensor is a full-size tensor per step (quadratic in time).
    xs_ta = tf.TensorArray(xp.dtype, size=steps).unstack(xs)
    ms_ta = None if masks is None else tf.TensorArray(tf.bool, size=steps).unstack(masks)

    def loop_body(t, h, c, prev, ta):
        m_t = None if ms_ta is None else ms_ta.read(t)
        h, c, out = body(t, h, c, prev, xs_ta.read(t), m_t)
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



def _to_ifoc(w):
    """Gate columns i, f, c, o -> i, f, o, c: the sigmoid gates side by side."""
    i, f, c, o = tf.split(w, 4, axis=-1)
    return tf.concat([i, f, o, c], axis=-1)


def _from_ifoc(w):
    i, f, o, c = tf.split(w, 4, axis=-1)
    return tf.concat([i, f, c, o], axis=-1)


def _fast_recurrence(
    xp, h0, c0, recurrent_kernel, mask, *, zero_output_for_mask,
    return_sequences, custom_grad,
):
    """tanh/sigmoid recurrence with few ops per step and a custom gradient.

    The gates are reordered to i, f, o, c so that one sigmoid and one tanh
    cover them. With `custom_grad` (a tape is recording), the forward loop
    keeps the activations and a hand-written backward loop computes only the
    gate gradients dZ, step by step; the recurrent kernel's gradient is then
    one matrix product H_prev^T @ dZ over all steps, and dxp is dZ itself.
    """
    xs = _to_ifoc(tf.transpose(xp, [1, 0, 2]))
    rk = _to_ifoc(recurrent_kernel)
    masks = None
    if mask is not None:
        masks = tf.expand_dims(tf.transpose(tf.cast(mask, xp.dtype)), -1)
    run = _make_fast(zero_output_for_mask, return_sequences, masks is not None, custom_grad)
    args = (xs, h0, c0, rk) + (() if masks is None else (masks,))
    res = run(*args)
    if return_sequences:
        last, outs, h, c = res
        return last, tf.transpose(outs, [1, 0, 2]), h, c
    last, h, c = res
    return last, None, h, c


def _make_fast(zero_output_for_mask, return_sequences, masked, custom_grad):
    def forward(xs, h0, c0, rk, masks, save):
        steps = tf.shape(xs)[0]
        units = tf.shape(h0)[-1]
        dtype = xs.dtype
        zeros = tf.zeros_like(h0)
        ta = lambda: tf.TensorArray(dtype, size=steps, element_shape=h0.shape)
        tas = {}
        if return_sequences:
            tas["out"] = ta()
        if save:
            tas["s"] = tf.TensorArray(dtype, size=steps)
            tas["g"] = ta()
            tas["cp"] = ta()
            tas["hp"] = ta()
            tas["tc"] = ta()

        def body(t, h, c, prev, tas):
            z = xs[t] + tf.matmul(h, rk)
            s, g = tf.split(z, [3 * units, units], axis=1)
            s = tf.sigmoid(s)
            g = tf.tanh(g)
            i, f, o = tf.split(s, 3, axis=1)
            c_new = f * c + i * g
            tc = tf.tanh(c_new)
            h_new = o * tc
            tas = dict(tas)
            if save:
                tas["s"] = tas["s"].write(t, s)
                tas["g"] = tas["g"].write(t, g)
                tas["cp"] = tas["cp"].write(t, c)
                tas["hp"] = tas["hp"].write(t, h)
                tas["tc"] = tas["tc"].write(t, tc)
            if masked:
                m = tf.cast(masks[t], tf.bool)
                out = tf.where(m, h_new, zeros if zero_output_for_mask else prev)
                h_new = tf.where(m, h_new, h)
                c_new = tf.where(m, c_new, c)
            else:
                out = h_new
            if return_sequences:
                tas["out"] = tas["out"].write(t, out)
            return t + 1, h_new, c_new, out, tas

        _, h, c, last, tas = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, c0, zeros, tas),
            maximum_iterations=steps,
            parallel_iterations=_PARALLEL,
        )
        outs = tas["out"].stack() if return_sequences else None
        return last, outs, h, c, tas

    def backward(tas, rk, masks, d_last, d_outs, d_h, d_c):
        s_all, g_all = tas["s"].stack(), tas["g"].stack()
        cp_all, tc_all = tas["cp"].stack(), tas["tc"].stack()
        h_prev = tas["hp"].stack()
        steps = tf.shape(s_all)[0]
        dtype = s_all.dtype
        dz_ta = tf.TensorArray(dtype, size=steps)

        def body(t, dh, dc, dprev, dz_ta):
            d_out = dprev
            if return_sequences:
                d_out = d_out + d_outs[t]
            s = s_all[t]
            g = g_all[t]
            tc = tc_all[t]
            i, f, o = tf.split(s, 3, axis=1)
            if masked:
                m = masks[t]
                keep = 1.0 - m
                dhn = m * (dh + d_out)
                dcn = m * dc
            else:
                dhn = dh + d_out
                dcn = dc
            do = dhn * tc
            dcn = dcn + dhn * o * (1.0 - tc * tc)
            ds = tf.concat([dcn * g, dcn * cp_all[t], do], axis=1) * (s * (1.0 - s))
            dg = dcn * i * (1.0 - g * g)
            dz = tf.concat([ds, dg], axis=1)
            dz_ta = dz_ta.write(t, dz)
            dh_prev = tf.matmul(dz, rk, transpose_b=True)
            dc_prev = dcn * f
            if masked:
                dh_prev = dh_prev + keep * dh
                dc_prev = dc_prev + keep * dc
                dprev = tf.zeros_like(dprev) if zero_output_for_mask else keep * d_out
            else:
                dprev = tf.zeros_like(dprev)
            return t - 1, dh_prev, dc_prev, dprev, dz_ta

        _, dh0, dc0, _, dz_ta = tf.while_loop(
            lambda t, *_: t >= 0,
            body,
            (steps - 1, d_h, d_c, d_last, dz_ta),
            maximum_iterations=steps,
            parallel_iterations=_PARALLEL,
        )
        dz = dz_ta.stack()
        units4 = tf.shape(dz)[-1]
        units = tf.shape(h_prev)[-1]
        drk = tf.matmul(
            tf.reshape(h_prev, [-1, units]), tf.reshape(dz, [-1, units4]),
            transpose_a=True,
        )
        return dz, dh0, dc0, drk

    def zero_if_none(g, like):
        return tf.zeros_like(like) if g is None else g

    if not custom_grad:
        def run(xs, h0, c0, rk, masks=None):
            last, outs, h, c, _ = forward(xs, h0, c0, rk, masks, save=False)
            return (last, outs, h, c) if return_sequences else (last, h, c)

        return run

    @tf.custom_gradient
    def run(xs, h0, c0, rk, masks=None):
        last, outs, h, c, tas = forward(xs, h0, c0, rk, masks, save=True)

        def grad(*grads):
            if return_sequences:
                d_last, d_outs, d_h, d_c = grads
                d_outs = zero_if_none(d_outs, outs)
            else:
                d_last, d_h, d_c = grads
                d_outs = None
            dxs, dh0, dc0, drk = backward(
                tas, rk, masks, zero_if_none(d_last, last), d_outs,
                zero_if_none(d_h, h), zero_if_none(d_c, c),
            )
            res = (dxs, dh0, dc0, drk)
            return res + ((None,) if masked else ())

        res = (last, outs, h, c) if return_sequences else (last, h, c)
        return res, grad

    return run


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
