"""TensorFlow kernels: a tf.while_loop loop, cuDNN through the CudnnRNNV3 op,
and the compiled kernel on a CPU as custom ops. Sections as in every backend
module (see `fastlstm.kernels`)."""

import functools

import tensorflow as tf

from fastlstm import equations
from fastlstm import export
from fastlstm.kernels import CUDNN_DTYPES
from fastlstm.kernels import Capabilities
from fastlstm.kernels import _compiled
from fastlstm.kernels import _fused
from fastlstm.kernels import _loop
from fastlstm.kernels import _onednn
from fastlstm.kernels import _tf2onnx
from fastlstm.kernels import _tf_graph
from fastlstm.kernels import kernel_table

# ---------------------------------------------------------------------------
# 1. Capabilities
# ---------------------------------------------------------------------------

# The compiled kernel computes in float32 (mixed precision's float16 and
# bfloat16 too, cast around it: see kernels._fused; a bfloat16 call's
# matrix products in bfloat16 where the CPU makes them natively).
_NATIVE_DTYPES = ("float32",)

_BINDING = "_onednn_tf"


def _native_status():
    ok, why = _compiled.status(_BINDING, "tensorflow", tf.load_op_library)
    if ok and _tf_graph.in_xla_context():
        # The op has no XLA kernel (Keras's compile(jit_compile=True)).
        return False, "the call is being compiled by XLA (jit_compile=True), which cannot run a custom op"
    return ok, why


def capabilities():
    native, why = _native_status()
    return Capabilities(
        backend="tensorflow",
        device=_device(),
        native=native,
        native_why=why,
        native_dtypes=_NATIVE_DTYPES,
        native_bf16=native and _compiled.bf16_products(_BINDING, "tensorflow"),
        # TensorFlow's loop is slower than the compiled kernel at every batch
        # size measured.
        native_min_batch=1,
        exporting=_exporting(),
        export_format=export.current_format(),
        # tf2onnx converts cuDNN's LSTM op (section 6) in a traced graph,
        # which TensorFlow does not run.
        onnx_lstm=not tf.executing_eagerly(),
    )


def _exporting():
    """The exporter tracing this call for a portable artifact, or ""."""
    return export.current(
        detected="tf.saved_model.save" if _tf_graph.in_save_context() else ""
    )


@functools.lru_cache(maxsize=None)
def _device():
    # Once per process: TensorFlow's logical devices are fixed once it runs.
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def setup():
    """Loads the ops and registers their gradients where the kernel is
    built (graphs saved by model.export() name the ops: tf.saved_model.load()
    then finds them after `import fastlstm`); a failure is left for
    `capabilities()` to report."""
    if _compiled.status(_BINDING, "tensorflow", tf.load_op_library)[0]:
        _register_gradients()


def untaken_branch(branch):
    """The branch as it is: measured, a training step through tf.cond
    (native or loop) costs what the native kernel alone does."""
    return branch


def _threads():
    return _compiled.threads(tf.config.threading.get_intra_op_parallelism_threads())


# ---------------------------------------------------------------------------
# 2. Loop
# ---------------------------------------------------------------------------

# On a CPU, TensorFlow runs a while_loop op by op, and the op overhead, not
# the arithmetic, bounds an LSTM step at these sizes; a large input product
# hoisted out of the loop does not pay for itself. So the loop multiplies
# each step's input inside the loop.
_HOIST = False


def loop(x, h0, c0, weights, mask, dropout, options):
    """`tf.while_loop` over the steps; the standard LSTM with its gradient
    written out (section 3). Eagerly, the loop runs as a traced graph."""
    # A written-out gradient's saved tensors cannot leave a cond branch
    # (cond_v2 finds no capture for them); autodiff's can. An export gets the
    # loop built in its own graph: converters (tf2onnx) mistype the nested
    # functions' loops.
    if (
        _loop.is_standard(options, dropout)
        and not _tf_graph.in_cond_branch()
        and not _exporting()
    ):
        return _written_out(x, h0, c0, weights, mask, dropout, options)
    if tf.executing_eagerly():
        # An eager while_loop runs op by op from Python; a traced graph, one
        # per configuration, runs the whole loop in C++.
        return _traced_loop(options, mask is None, dropout.recurrent is None)(
            x, h0, c0, weights, mask, dropout
        )
    return _while_loop(x, h0, c0, weights, mask, dropout, options)


@functools.lru_cache(maxsize=None)
def _traced_loop(options, no_mask, no_recurrent_dropout):
    # One tf.function per configuration (and per presence of the optional
    # tensors), so that switching between them never retraces.
    del no_mask, no_recurrent_dropout

    def run(x, h0, c0, weights, mask, dropout):
        return _while_loop(x, h0, c0, weights, mask, dropout, options)

    return tf.function(run, reduce_retracing=True)


def _while_loop(x, h0, c0, weights, mask, dropout, options):
    xs, projected = _loop.step_inputs(x, weights, dropout, _HOIST)
    masks = _loop.step_masks(mask)
    # The static number of steps where it is known: tf2onnx mistypes a loop
    # whose bound is a tensor that its condition also reads.
    steps = xs.shape[0] if xs.shape[0] is not None else tf.shape(xs)[0]
    rs = options.return_sequences
    # Read steps from TensorArrays: the gradient of `xs[t]` on a captured
    # tensor is a full-size tensor per step (quadratic in time).
    xs_ta = tf.TensorArray(xs.dtype, size=steps).unstack(xs)
    ms_ta = None if masks is None else tf.TensorArray(tf.bool, size=steps).unstack(masks)
    # Only the outputs returned are kept.
    outs = (tf.TensorArray(xs.dtype, size=steps, element_shape=h0.shape),) if rs else ()

    def body(t, h, c, out, *outs):
        m_t = None if ms_ta is None else ms_ta.read(t)
        h, c, out = _loop.step(
            xs_ta.read(t), m_t, h, c, out, weights, dropout, options, projected
        )
        # A traced graph may know fewer dims of `xs` than of the state.
        for new, like in ((h, h0), (c, c0), (out, h0)):
            new.set_shape(like.shape)
        return (t + 1, h, c, out) + tuple(ta.write(t, out) for ta in outs)

    _, h, c, last, *outs = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, tf.zeros_like(h0)) + outs,
        maximum_iterations=steps,
        parallel_iterations=1,
    )
    return last, (_loop.batch_major(outs[0].stack(), options) if rs else None), h, c


def unrolled(x, h0, c0, weights, mask, dropout, options):
    """The loop's steps unrolled in Python (unroll=True)."""
    return _loop.unrolled(x, h0, c0, weights, mask, dropout, options, _HOIST)


# ---------------------------------------------------------------------------
# 3. Loop with written-out gradient
# ---------------------------------------------------------------------------
#
# The training loops (forward with saved residuals, backward) are compiled by
# XLA, which fuses their per-step arithmetic; the inference loop, with less
# of it, ran faster without XLA's launch cost (measured with bench/run.py).


def _written_out(x, h0, c0, weights, mask, dropout, options):
    xs, kernel, recurrent_kernel, bias, masks = _loop.written_out_inputs(
        x, weights, mask, dropout
    )
    flags = (bool(options.zero_output_for_mask), bool(options.return_sequences), masks is not None)
    grad = _tf_graph.recording([xs, h0, c0, kernel, recurrent_kernel, bias])
    run = _with_gradient(*flags) if grad else _standard(*flags)[0]
    last, outs, h, c = run(
        xs, h0, c0, kernel, recurrent_kernel, bias, *(() if masks is None else (masks,))
    )
    return last, _loop.batch_major(outs, options), h, c


@functools.lru_cache(maxsize=None)
def _standard(zero_output_for_mask, return_sequences, masked):
    """The loops for one configuration, compiled: inference, training
    forward (saving each step's gates, h and c), backward."""

    def forward(xs, h0, c0, w, r, b, masks=None, *, save):
        steps = tf.shape(xs)[0]
        state = lambda: tf.TensorArray(xs.dtype, size=steps, element_shape=h0.shape)
        tas = {}
        if return_sequences:
            tas["out"] = state()
        if save:
            tas.update(gates=tf.TensorArray(xs.dtype, size=steps), h=state(), c=state())

        def body(t, h, c, out, tas):
            m_t = masks[t] if masked else None
            h, c, out, gates = _loop.standard_step(
                xs[t], m_t, h, c, out, w, r, b, zero_output_for_mask
            )
            # A relaxed trace may know fewer dims of `xs` than of the state.
            for new, like in ((h, h0), (c, c0), (out, h0)):
                new.set_shape(like.shape)
            tas = dict(tas)
            if return_sequences:
                tas["out"] = tas["out"].write(t, out)
            if save:
                for name, value in (("gates", gates), ("h", h), ("c", c)):
                    tas[name] = tas[name].write(t, value)
            return t + 1, h, c, out, tas

        _, h, c, last, tas = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, c0, tf.zeros_like(h0), tas),
            maximum_iterations=steps,
        )
        outs = tas["out"].stack() if return_sequences else tf.zeros([0], xs.dtype)
        if not save:
            return last, outs, h, c
        return (last, outs, h, c) + tuple(tas[k].stack() for k in ("gates", "h", "c"))

    def backward(gates, c0, cs, r, masks, d_last, d_outs, d_h, d_c):
        steps = tf.shape(gates)[0]
        r_t = tf.transpose(r)
        c_prev = tf.concat([c0[None], cs[:-1]], axis=0)
        if masked:
            masks = tf.cast(masks, gates.dtype)
        dz_ta = tf.TensorArray(gates.dtype, size=steps)

        def body(t, dh, dc, d_output, dz_ta):
            if return_sequences:
                d_output = d_output + d_outs[t]
            dz, dh, dc, d_output = _loop.standard_backward_step(
                gates[t], c_prev[t], cs[t], masks[t] if masked else None,
                d_output, dh, dc, r_t, zero_output_for_mask,
            )
            dh.set_shape(d_h.shape)
            return t - 1, dh, dc, d_output, dz_ta.write(t, dz)

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
    _, forward, backward = _standard(zero_output_for_mask, return_sequences, masked)

    @tf.custom_gradient
    def run(xs, h0, c0, w, r, b, masks=None):
        # Unwatched inputs: the tape must not differentiate the compiled loop
        # itself (its TensorLists cannot leave an XLA cluster).
        last, outs, h, c, gates, hs, cs = forward(
            *(tf.stop_gradient(v) for v in (xs, h0, c0, w, r, b)), masks
        )

        def grad(d_last, d_outs, d_h, d_c):
            zero = lambda d, like: tf.zeros_like(like) if d is None else d
            dz, dh0, dc0 = backward(
                gates, c0, cs, r, masks, zero(d_last, last), zero(d_outs, outs),
                zero(d_h, h), zero(d_c, c),
            )
            dxs, dw, dr, db = equations.weight_gradients(xs, h0, hs, dz, w)
            return (dxs, dh0, dc0, dw, dr, db) + ((None,) if masked else ())

        return (last, outs, h, c), grad

    return run


# ---------------------------------------------------------------------------
# 4. cuDNN
# ---------------------------------------------------------------------------


def _cudnn_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """cuDNN's LSTM (CudnnRNNV3) on front-aligned rows. cuDNN takes lengths
    at no extra cost and writes the outputs anyway, so `need_outputs`
    changes nothing."""
    del starts, need_outputs  # front-aligned rows: no starts
    kernel, recurrent_kernel, bias = weights
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    if lengths is None:
        lengths = tf.fill([batch], steps)
    if bias is None:
        bias = tf.zeros_like(kernel[0])
    # An empty row's state is the initial one (kernels._fused puts it
    # there): cuDNN is not asked to run zero steps.
    lengths = tf.maximum(tf.cast(lengths, tf.int32), 1)
    parts = tf.split(kernel, 4, axis=1) + tf.split(recurrent_kernel, 4, axis=1)
    # cuDNN adds an input and a recurrent bias; Keras has one, so the
    # input-side bias is zeros.
    biases = tf.split(tf.zeros_like(bias), 4) + tf.split(bias, 4)
    params = tf.concat(
        [tf.reshape(tf.transpose(w), [-1]) for w in parts]
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


cudnn = _fused.fused_kernel(_cudnn_lstm, CUDNN_DTYPES, reads_spans=False)


# ---------------------------------------------------------------------------
# 5. Native binding
# ---------------------------------------------------------------------------
#
# The compiled kernel as custom ops (csrc/tf_op.cc). Where no tape records
# the call, FastlstmLstmInference runs the inference pass, which saves
# nothing for a gradient; a gradient asked for anyway (e.g. tf.gradients in
# a graph) reruns the forward pass in training mode.


def _ops():
    _register_gradients()
    return _compiled.load(_BINDING, "tensorflow", tf.load_op_library)


def _backward(inputs, raw, dy, dh, dc, bf16):
    """The backward op, from the forward inputs (starts and lengths last)
    and the training op's results; None gradients count as zeros."""
    y, h, c, workspace = raw
    dy = tf.zeros_like(y) if dy is None else dy
    dh = tf.zeros_like(h) if dh is None else dh
    dc = tf.zeros_like(c) if dc is None else dc
    grads = _ops().fastlstm_lstm_grad(
        *inputs, y, workspace, dy, dh, dc, threads=_threads(), bf16=bf16
    )
    return list(grads) + [None, None]  # none for the starts and lengths


@functools.lru_cache(maxsize=None)
def _register_gradients():
    # Once per process: TensorFlow refuses a second registration.
    @tf.RegisterGradient("FastlstmLstm")
    def _training_grad(op, dy, dh, dc, _):
        return _backward(
            list(op.inputs), list(op.outputs), dy, dh, dc, op.get_attr("bf16")
        )

    @tf.RegisterGradient("FastlstmLstmInference")
    def _inference_grad(op, dy, dh, dc):
        # The inference op saved nothing: the training op runs again.
        inputs, bf16 = list(op.inputs), op.get_attr("bf16")
        raw = list(_ops().fastlstm_lstm(*inputs, threads=_threads(), bf16=bf16))
        if not op.get_attr("sequences"):
            dy = None  # no outputs were returned, so none were used
        return _backward(inputs, raw, dy, dh, dc, bf16)


def _onednn_lstm(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs,
                 bf16):
    inputs = [x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths]
    if _tf_graph.recording(inputs[:6]):
        y, h, c, _ = _ops().fastlstm_lstm(*inputs, threads=_threads(), bf16=bf16)
        return (y if need_outputs else None), h, c
    y, h, c = _ops().fastlstm_lstm_inference(
        *inputs, sequences=need_outputs, threads=_threads(), bf16=bf16
    )
    if not need_outputs:
        return None, h, c
    y.set_shape(x.shape[:2].concatenate(h0.shape[-1:]))
    return y, h, c


native = _onednn.native_kernel(_onednn.fused(_onednn_lstm), _NATIVE_DTYPES)


# ---------------------------------------------------------------------------
# 6. ONNX export
# ---------------------------------------------------------------------------


def _onnx_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """cuDNN's LSTM op on front-aligned rows, traced only for tf2onnx, which
    converts it into one ONNX `LSTM` node with `sequence_lens`
    (`kernels._tf2onnx`); TensorFlow never runs it. Each row's valid steps
    are gathered to the front, whatever the mask (holes too)."""
    _tf2onnx.register()
    return _cudnn_lstm(x, h0, c0, weights, starts, lengths, need_outputs)


onnx = _fused.fused_kernel(
    _onnx_lstm, ("float32",), reads_spans=False, gathers_valid_steps=True
)

KERNELS = kernel_table(
    loop=loop, unrolled=unrolled, cudnn=cudnn, native=native, onnx=onnx
)
