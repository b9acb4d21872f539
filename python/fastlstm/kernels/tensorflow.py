"""TensorFlow kernels: a tf.while_loop recurrence, the CudnnRNNV3 op, and
oneDNN's LSTM on a CPU as a custom op (the native kernel)."""

import functools

import tensorflow as tf
from keras import activations

from fastlstm import _compiled
from fastlstm.kernels import _onednn


def device():
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


# The native kernel computes in float32 only.
NATIVE_DTYPES = ("float32",)
# TensorFlow's loop is slower than oneDNN at every batch size measured.
NATIVE_MIN_BATCH = 1


def untaken_branch(branch):
    """The branch as it is: measured, a training step through tf.cond
    (native or loop) costs what the native kernel alone does."""
    return branch


def native_status():
    """`(True, "")` where the native kernel can run, else `(False, why)`.

    The op has no XLA kernel, so it cannot run inside a function compiled
    with `jit_compile=True` (Keras's `compile(jit_compile=True)`).
    """
    ok, why = _compiled.status("tensorflow")
    if ok and _in_xla_context():
        return False, "the call is being compiled by XLA (jit_compile=True), which cannot run a custom op"
    return ok, why


def _in_cond_branch():
    """Whether ops built now go into a branch of a tf.cond."""
    from tensorflow.python.ops import control_flow_v2_func_graphs as cf_graphs

    graph = tf.compat.v1.get_default_graph()
    while isinstance(graph, tf.__internal__.FuncGraph):
        if isinstance(graph, cf_graphs.CondBranchFuncGraph):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def _in_xla_context():
    from tensorflow.python.ops import control_flow_util

    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


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


def _recording(tensors):
    """Whether a gradient may be taken through ops built now on `tensors`.

    Eagerly: whether a tape watches them. While a graph is traced: whether
    any tape is active (a tape outside a traced function differentiates it
    from its graph later). Without a tape, the inference kernels save
    nothing that only a gradient needs; a gradient taken anyway
    (tf.gradients) goes through them by autodiff.
    """
    try:
        from tensorflow.python.eager import record
    except ImportError:  # TensorFlow before 2.13
        from tensorflow.python.eager import tape as record
    if tf.executing_eagerly():
        return bool(record.should_record_backprop([t for t in tensors if t is not None]))
    return bool(record.could_possibly_record())


# On a CPU, TensorFlow runs a while_loop op by op, and the op overhead, not
# the arithmetic, bounds an LSTM step at these sizes; a large input product
# hoisted out of the loop does not pay for itself. So the standard LSTM
# (tanh/sigmoid) multiplies each step's input inside the loop. The training
# loops (forward with saved activations, backward) are compiled by XLA, which
# fuses their per-step arithmetic; the inference loop, with less of it, ran
# faster without XLA's launch cost (measured with bench/run.py).
PROJECT_IN_LOOP = True


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
    """Runs the LSTM recurrence.

    `xp` is `x @ kernel + bias`, `(batch, time, 4 * units)`, or, with
    `input_kernel=(kernel, bias)`, the inputs `x` themselves; either in
    processing order. `mask` is `(batch, time)` or None. Returns
    `(last_output, outputs, h, c)` with Keras's generic semantics: a masked
    step carries the state over and repeats the previous output (zeros if
    `zero_output_for_mask`).
    """
    options = dict(
        activation=activation,
        recurrent_activation=recurrent_activation,
        zero_output_for_mask=zero_output_for_mask,
        return_sequences=return_sequences,
        unroll=unroll,
    )
    act, ract = _native(activation), _native(recurrent_activation)
    standard = act is tf.tanh and ract is tf.sigmoid and rec_masks is None
    if _in_cond_branch():
        # A hand-written gradient's saved tensors cannot leave a cond branch
        # (cond_v2 finds no capture for them); the generic loop's can.
        standard = False
    if input_kernel is not None and standard and not options["unroll"]:
        kernel, bias = input_kernel
        return _standard_recurrence(
            xp, h0, c0, kernel, recurrent_kernel, bias, mask,
            zero_output_for_mask=options["zero_output_for_mask"],
            return_sequences=options["return_sequences"],
        )
    if input_kernel is not None:
        kernel, bias = input_kernel
        xp = tf.matmul(xp, kernel)
        if bias is not None:
            xp = xp + bias
    if tf.executing_eagerly() and not options["unroll"]:
        # An eager while_loop runs op by op from Python; a traced graph, one
        # per configuration, runs the whole loop in C++.
        traced = _traced_recurrence(
            tuple(sorted(options.items())), mask is None, rec_masks is None
        )
        return traced(xp, h0, c0, recurrent_kernel, mask, rec_masks=rec_masks)
    return _recurrence(
        xp, h0, c0, recurrent_kernel, mask, rec_masks=rec_masks, **options
    )


@functools.lru_cache(maxsize=None)
def _traced_recurrence(options, no_mask, no_rec_masks):
    # One tf.function per configuration (and per presence of the optional
    # tensors), so that switching between them never retraces.
    del no_mask, no_rec_masks
    return tf.function(functools.partial(_recurrence, **dict(options)), reduce_retracing=True)


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


# The standard LSTM, with its gradient written out.
#
# Gate columns are reordered i, f, c, o -> i, f, o, c so that one sigmoid and
# one tanh cover a step. The forward loop keeps each step's activated gates
# and carried state; the backward loop computes only the gate gradients dZ;
# every weight gradient is then one large product over all steps (dW = X^T dZ,
# dR = H_prev^T dZ), and dX = dZ W^T. The gradients with respect to the
# reordered weights flow back through the reordering by autodiff.


def _to_ifoc(w):
    i, f, c, o = tf.split(w, 4, axis=-1)
    return tf.concat([i, f, o, c], axis=-1)


def _standard_recurrence(
    x, h0, c0, kernel, recurrent_kernel, bias, mask, *, zero_output_for_mask,
    return_sequences,
):
    xs = tf.transpose(x, [1, 0, 2])
    w = _to_ifoc(kernel)
    r = _to_ifoc(recurrent_kernel)
    b = tf.zeros_like(w[0]) if bias is None else _to_ifoc(bias)
    masks = None
    if mask is not None:
        masks = tf.expand_dims(tf.transpose(tf.cast(mask, tf.bool)), -1)
    flags = (zero_output_for_mask, return_sequences, masks is not None)
    grad = _recording([xs, h0, c0, w, r, b])
    run = _with_gradient(*flags) if grad else _loops(*flags)[0]
    last, outs, h, c = run(xs, h0, c0, w, r, b, *(() if masks is None else (masks,)))
    outputs = tf.transpose(outs, [1, 0, 2]) if return_sequences else None
    return last, outputs, h, c


@functools.lru_cache(maxsize=None)
def _loops(zero_output_for_mask, return_sequences, masked):
    """The loops for one configuration, compiled: inference, training
    forward, backward.

    With `save`, the forward loop keeps, per step, what the backward step
    needs ready-made: `a`, the gates' local derivatives laid out so that
    dZ = [dc, dc, dh, dc] * a; `k = o * (1 - tanh(c)^2)`; `f`; and the
    carried h. A backward step is then a handful of ops around one product.
    """

    def forward(xs, h0, c0, w, r, b, masks=None, *, save):
        steps = tf.shape(xs)[0]
        units = tf.shape(h0)[-1]
        dtype = xs.dtype
        zeros = tf.zeros_like(h0)
        state = lambda: tf.TensorArray(dtype, size=steps, element_shape=h0.shape)
        tas = {}
        if return_sequences:
            tas["out"] = state()
        if save:
            tas["a"] = tf.TensorArray(dtype, size=steps)
            tas["k"] = state()
            tas["f"] = state()
            tas["h"] = state()

        def body(t, h, c, prev, tas):
            z = tf.matmul(xs[t], w) + tf.matmul(h, r) + b
            s, g = tf.split(z, [3 * units, units], axis=1)
            s = tf.sigmoid(s)
            g = tf.tanh(g)
            i, f, o = tf.split(s, 3, axis=1)
            c_new = f * c + i * g
            tc = tf.tanh(c_new)
            h_new = o * tc
            # A relaxed trace may know fewer dims of `z` than of the state.
            h_new.set_shape(h0.shape)
            c_new.set_shape(c0.shape)
            tas = dict(tas)
            if save:
                ds = s * (1.0 - s)
                tas["a"] = tas["a"].write(
                    t, tf.concat([g, c, tc, i * (1.0 - g * g)], axis=1)
                    * tf.concat([ds, tf.ones_like(g)], axis=1)
                )
                tas["k"] = tas["k"].write(t, o * (1.0 - tc * tc))
                tas["f"] = tas["f"].write(t, f)
            if masked:
                m = masks[t]
                out = tf.where(m, h_new, zeros if zero_output_for_mask else prev)
                h_new = tf.where(m, h_new, h)
                c_new = tf.where(m, c_new, c)
            else:
                out = h_new
            if return_sequences:
                tas["out"] = tas["out"].write(t, out)
            if save:
                tas["h"] = tas["h"].write(t, h_new)
            return t + 1, h_new, c_new, out, tas

        _, h, c, last, tas = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, c0, zeros, tas),
            maximum_iterations=steps,
        )
        outs = tas["out"].stack() if return_sequences else tf.zeros([0], dtype)
        if not save:
            return last, outs, h, c
        saved = tuple(tas[k].stack() for k in ("a", "k", "f", "h"))
        return (last, outs, h, c) + saved

    def backward(a_all, k_all, f_all, r, masks, d_last, d_outs, d_h, d_c):
        steps = tf.shape(a_all)[0]
        r_t = tf.transpose(r)
        if masked:
            masks = tf.cast(masks, a_all.dtype)
        dz_ta = tf.TensorArray(a_all.dtype, size=steps)

        def body(t, dh, dc, dprev, dz_ta):
            d_out = dprev + d_outs[t] if return_sequences else dprev
            dhn = dh + d_out
            dcn = dc
            if masked:
                m = masks[t]
                dhn = m * dhn
                dcn = m * dcn
            dcn = dcn + dhn * k_all[t]
            dz = tf.concat([dcn, dcn, dhn, dcn], axis=1) * a_all[t]
            dz_ta = dz_ta.write(t, dz)
            dh_prev = tf.matmul(dz, r_t)
            dh_prev.set_shape(dh.shape)
            dc_prev = dcn * f_all[t]
            if masked:
                keep = 1.0 - m
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
        )
        return dz_ta.stack(), dh0, dc0

    infer = tf.function(functools.partial(forward, save=False), reduce_retracing=True)
    xla = functools.partial(tf.function, jit_compile=True, reduce_retracing=True)
    return infer, xla(functools.partial(forward, save=True)), xla(backward)


def _with_gradient(zero_output_for_mask, return_sequences, masked):
    _, forward, backward = _loops(zero_output_for_mask, return_sequences, masked)

    @tf.custom_gradient
    def run(xs, h0, c0, w, r, b, masks=None):
        # Unwatched inputs: the tape must not differentiate the compiled loop
        # itself (its TensorLists cannot leave an XLA cluster).
        last, outs, h, c, a, k, f, hs = forward(
            *(tf.stop_gradient(v) for v in (xs, h0, c0, w, r, b)), masks
        )

        def grad(d_last, d_outs, d_h, d_c):
            zero = lambda d, like: tf.zeros_like(like) if d is None else d
            dz, dh0, dc0 = backward(
                a, k, f, r, masks, zero(d_last, last), zero(d_outs, outs),
                zero(d_h, h), zero(d_c, c),
            )
            # The weight work: a few large products over all steps.
            units4 = tf.shape(dz)[-1]
            dz2 = tf.reshape(dz, [-1, units4])
            h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
            dr = tf.matmul(tf.reshape(h_prev, [-1, tf.shape(h0)[-1]]), dz2, transpose_a=True)
            dw = tf.matmul(tf.reshape(xs, [-1, tf.shape(xs)[-1]]), dz2, transpose_a=True)
            db = tf.reduce_sum(dz2, axis=0)
            dxs = tf.reshape(tf.matmul(dz2, w, transpose_b=True), tf.shape(xs))
            grads = (dxs, dh0, dc0, dw, dr, db)
            return grads + ((None,) if masked else ())

        return (last, outs, h, c), grad

    return run


def cudnn(
    x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=True,
    need_outputs=True,
):
    """cuDNN LSTM (CudnnRNNV3) over rows right-aligned to `lengths`.

    Returns `(outputs, h, c)`; outputs past a row's length are zeros.
    cuDNN takes lengths at no extra cost, so `need_cell_state` changes
    nothing; nor does `need_outputs` (cuDNN writes them anyway).
    """
    del need_cell_state, need_outputs
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    if lengths is None:
        lengths = tf.fill([batch], steps)
    # An empty row's state is replaced by the initial one by the caller;
    # cuDNN is not asked to run zero steps.
    lengths = tf.maximum(tf.cast(lengths, tf.int32), 1)
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
        sequence_lengths=lengths,
        time_major=False,
    )
    return outputs, tf.squeeze(h, 1), tf.squeeze(c, 1)


# The native kernel: oneDNN's LSTM as custom ops (csrc/tf_op.cc). Where no
# tape records the call, FastlstmLstmInference runs oneDNN's inference pass,
# which saves nothing for a gradient; a gradient asked for anyway (e.g.
# tf.gradients in a graph) reruns the forward pass in training mode.


def _ops():
    _register_gradient()
    return _compiled.load("tensorflow")


def register_op():
    """Loads the ops and registers their gradients where the kernel is
    built; a failure is left for `native_status()` to report."""
    if _compiled.status("tensorflow")[0]:
        _register_gradient()


def _threads():
    return _compiled.threads("tensorflow")


def _backward(inputs, raw, dy, dh, dc):
    y, h, c, workspace = raw
    dy = tf.zeros_like(y) if dy is None else dy
    dh = tf.zeros_like(h) if dh is None else dh
    dc = tf.zeros_like(c) if dc is None else dc
    return _ops().fastlstm_lstm_grad(
        *inputs, y, workspace, dy, dh, dc, threads=_threads()
    )


@functools.lru_cache(maxsize=None)
def _register_gradient():
    # Once per process: TensorFlow refuses a second registration.
    @tf.RegisterGradient("FastlstmLstm")
    def _training_grad(op, dy, dh, dc, _):
        return _backward(list(op.inputs), list(op.outputs), dy, dh, dc)

    @tf.RegisterGradient("FastlstmLstmInference")
    def _inference_grad(op, dy, dh, dc):
        inputs, lengths = list(op.inputs[:6]), op.inputs[6]
        sequences = op.get_attr("sequences")
        raw = list(_ops().fastlstm_lstm(*inputs, threads=_threads()))
        dy, dh, dc = _onednn.cotangents_of_raw(raw[0], dy, dh, dc, lengths, sequences)
        return list(_backward(inputs, raw, dy, dh, dc)) + [None]


def _onednn_lstm(x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_outputs):
    inputs = [x, h0, c0, kernel, recurrent_kernel, bias]
    if _recording(inputs):
        y, h, c, _ = _ops().fastlstm_lstm(*inputs, threads=_threads())
        return _onednn.outputs_at_lengths(y, h, c, lengths, need_outputs)
    if lengths is None:
        lengths = tf.fill(tf.shape(x)[:1], tf.shape(x)[1])
    y, h, c = _ops().fastlstm_lstm_inference(
        *inputs, tf.cast(lengths, tf.int32), sequences=need_outputs,
        threads=_threads(),
    )
    if not need_outputs:
        return None, h, c
    y.set_shape(x.shape[:2].concatenate(h0.shape[-1:]))
    return y, h, c


def native(
    x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=True,
    need_outputs=True,
):
    """oneDNN's LSTM over rows front-aligned to `lengths` (or all steps).

    Returns `(outputs, h, c)`; outputs past a row's length are zeros (None
    unless `need_outputs`); c is None unless `need_cell_state` (see
    `kernels._onednn`).
    """
    return _onednn.front_aligned(
        _onednn_lstm, x, h0, c0, kernel, recurrent_kernel, bias, lengths,
        need_cell_state, need_outputs,
    )
