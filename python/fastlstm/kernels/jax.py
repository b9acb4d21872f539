"""JAX kernels: a lax.scan loop, cuDNN through jax.experimental.rnn, and the
compiled kernel on a CPU as XLA FFI calls. Sections as in every backend
module (see `fastlstm.kernels`)."""

import functools
import os

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core
from jax.interpreters import mlir
import numpy as np
from fastlstm import equations
from fastlstm import export
from fastlstm.kernels import CUDNN_DTYPES
from fastlstm.kernels import Capabilities
from fastlstm.kernels import _compiled
from fastlstm.kernels import _fused
from fastlstm.kernels import _loop
from fastlstm.kernels import _onnx
from fastlstm.kernels import _onednn
from fastlstm.kernels import kernel_table

# ---------------------------------------------------------------------------
# 1. Capabilities
# ---------------------------------------------------------------------------

# The compiled kernel computes in float32 (mixed precision's float16 and
# bfloat16 too, cast around it: see kernels._fused; a bfloat16 call's
# matrix products in bfloat16 where the CPU makes them natively).
_NATIVE_DTYPES = ("float32",)

_BINDING = "_onednn_jax"
# Below 8 rows XLA's scan and the compiled kernel are about even, or the scan
# is faster (batch 1, 100 steps, 128 units: on an AMD EPYC 1.1 against 1.6 ms
# a call; on an Intel Xeon 0.71 against 0.67 ms unmasked, 0.79 both
# left-padded): the planner keeps the scan there.
_NATIVE_MIN_BATCH = 8


def capabilities():
    native, why = _compiled.status(_BINDING, "jax")
    return Capabilities(
        backend="jax",
        device=_device(),
        native=native,
        native_why=why,
        native_dtypes=_NATIVE_DTYPES,
        native_bf16=native and _compiled.bf16_products(_BINDING, "jax"),
        native_min_batch=_NATIVE_MIN_BATCH,
        # jax.export and jax2tf leave no mark: fastlstm.exporting() says so.
        exporting=export.current(),
        export_format=export.current_format(),
        # jax2onnx writes fastlstm's primitive as an LSTM node (section 6).
        onnx_lstm=True,
    )


@functools.lru_cache(maxsize=None)
def _device():
    # Once per process: the default backend does not change.
    return "gpu" if jax.default_backend() == "gpu" else "cpu"


def setup():
    # Before XLA's threads first allocate (see keep_large_buffers).
    _compiled.keep_large_buffers()
    _compiled.status(_BINDING, "jax")


def untaken_branch(branch):
    # lax.cond's gradient saves the residuals of both branches, the untaken
    # one's as zeros: the loop's per-step activations, written as zeros on
    # every training step of the fused branch (measured: +24% at M). Under
    # remat the loop branch saves only its inputs.
    return jax.checkpoint(branch)


def _threads():
    # XLA's CPU client takes its thread count from XLA_FLAGS.
    for flag in os.environ.get("XLA_FLAGS", "").split():
        name, _, value = flag.lstrip("-").partition("=")
        if name == "intra_op_parallelism_threads" and value.isdigit():
            return _compiled.threads(int(value))
    return _compiled.threads()


# ---------------------------------------------------------------------------
# 2. Loop
# ---------------------------------------------------------------------------

# XLA:CPU runs one large (batch*time, input) x (input, 4*units) product far
# below its per-step rate (measured: ~10 GFLOP/s vs the scan's ~40), so the
# loop projects each step's input inside the scan, as Keras does.
_HOIST = False


def loop(x, h0, c0, weights, mask, dropout, options):
    """`lax.scan` over the steps; the standard LSTM with its gradient
    written out (section 3)."""
    if _loop.is_standard(options, dropout):
        return _written_out(x, h0, c0, weights, mask, dropout, options)
    xs, projected = _loop.step_inputs(x, weights, dropout, _HOIST)
    masks = _loop.step_masks(mask)

    def body(carry, inputs):
        h, c, out = _loop.step(*inputs, *carry, weights, dropout, options, projected)
        return (h, c, out), (out if options.return_sequences else None)

    (h, c, last), outs = jax.lax.scan(body, (h0, c0, jnp.zeros_like(h0)), (xs, masks))
    return last, _loop.batch_major(outs, options), h, c


def unrolled(x, h0, c0, weights, mask, dropout, options):
    """The loop's steps unrolled in Python (unroll=True)."""
    return _loop.unrolled(x, h0, c0, weights, mask, dropout, options, _HOIST)


# ---------------------------------------------------------------------------
# 3. Loop with written-out gradient
# ---------------------------------------------------------------------------
#
# Gates stay in Keras's column order i, f, c, o: reordering the weights for
# contiguous sigmoid columns cost more than it saved (three concatenations a
# call: 0.63 against 0.52 ms for a batch-1 scan of 100 steps; XLA fuses the
# activations of the slices either way).


def _written_out(x, h0, c0, weights, mask, dropout, options):
    xs, kernel, recurrent_kernel, bias, masks = _loop.written_out_inputs(
        x, weights, mask, dropout
    )
    masked = masks is not None
    # custom_vjp takes arrays only: an empty one stands for no mask.
    masks = masks.astype(xs.dtype) if masked else jnp.zeros((0,), xs.dtype)
    run = _standard(bool(options.zero_output_for_mask), bool(options.return_sequences), masked)
    last, outs, h, c = run(xs, h0, c0, kernel, recurrent_kernel, bias, masks)
    return last, _loop.batch_major(outs, options), h, c


@functools.lru_cache(maxsize=None)
def _standard(zero_output_for_mask, return_sequences, masked):
    def forward(xs, h0, c0, w, r, b, masks, save):
        def step(carry, inputs):
            x_t, m_t = inputs
            m_t = None if m_t is None else m_t > 0.5
            h, c, out, gates = _loop.standard_step(
                x_t, m_t, *carry, w, r, b, zero_output_for_mask
            )
            saved = (gates, h, c) if save else ()
            return (h, c, out), (out if return_sequences else None, saved)

        (h, c, last), (outs, saved) = jax.lax.scan(
            step, (h0, c0, jnp.zeros_like(h0)), (xs, masks if masked else None)
        )
        if not return_sequences:
            outs = jnp.zeros((0,), xs.dtype)
        return (last, outs, h, c), saved

    @jax.custom_vjp
    def run(xs, h0, c0, w, r, b, masks):
        return forward(xs, h0, c0, w, r, b, masks, save=False)[0]

    def run_fwd(xs, h0, c0, w, r, b, masks):
        result, (gates, hs, cs) = forward(xs, h0, c0, w, r, b, masks, save=True)
        return result, (xs, h0, c0, w, r, masks, gates, hs, cs)

    def run_bwd(residuals, cotangents):
        xs, h0, c0, w, r, masks, gates, hs, cs = residuals
        d_last, d_outs, d_h, d_c = cotangents
        c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)
        r_t = r.T

        def step(carry, inputs):
            dh, dc, d_output = carry
            gates_t, c_prev_t, c_t, m_t, d_out_t = inputs
            if return_sequences:
                d_output = d_output + d_out_t
            dz, dh, dc, d_output = _loop.standard_backward_step(
                gates_t, c_prev_t, c_t, m_t, d_output, dh, dc, r_t, zero_output_for_mask
            )
            return (dh, dc, d_output), dz

        (dh0, dc0, _), dz = jax.lax.scan(
            step,
            (d_h, d_c, d_last),
            (gates, c_prev, cs, masks if masked else None,
             d_outs if return_sequences else None),
            reverse=True,
        )
        dxs, dw, dr, db = equations.weight_gradients(xs, h0, hs, dz, w)
        return dxs, dh0, dc0, dw, dr, db, jnp.zeros_like(masks)

    run.defvjp(run_fwd, run_bwd)
    return run


# ---------------------------------------------------------------------------
# 4. cuDNN
# ---------------------------------------------------------------------------


def _cudnn_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """cuDNN's LSTM (jax.experimental.rnn) on front-aligned rows. cuDNN takes
    lengths at no extra cost and writes the outputs anyway, so
    `need_outputs` changes nothing."""
    del starts, need_outputs  # front-aligned rows: no starts
    from jax.experimental import rnn

    batch, steps, input_size = x.shape
    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    if bias is None:
        bias = jnp.zeros((4 * units,), x.dtype)
    # cuDNN's flat layout: W_ih, W_hh (PyTorch's (4 * units, in) form, gate
    # order i, f, g, o as in Keras), then the input and recurrent biases.
    flat = jnp.concatenate(
        [kernel.T.ravel(), recurrent_kernel.T.ravel(), bias, jnp.zeros_like(bias)]
    )
    y, h, c = rnn.lstm(
        x,
        h0[None],
        c0[None],
        flat,
        # An empty row's state is the initial one (kernels._fused puts it
        # there): cuDNN is not asked to run zero steps.
        jnp.maximum(jnp.asarray(lengths, jnp.int32), 1),
        input_size=input_size,
        hidden_size=units,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    return y, h[0], c[0]


cudnn = _fused.fused_kernel(_cudnn_lstm, CUDNN_DTYPES, reads_spans=False)


# ---------------------------------------------------------------------------
# 5. Native binding
# ---------------------------------------------------------------------------
#
# The compiled kernel as three XLA FFI targets (inference, training forward
# with a workspace, backward), with a custom VJP.

_TARGETS = {
    "fastlstm_onednn_inference": "FastlstmInference",
    "fastlstm_onednn_training": "FastlstmTraining",
    "fastlstm_onednn_backward": "FastlstmBackward",
}


@functools.lru_cache(maxsize=None)
def _register_targets():
    library = _compiled.declare_c_api(_compiled.load(_BINDING, "jax"))
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(
            target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
    return library


def _call(target, results, *args, bf16, input_output_aliases=None):
    _register_targets()
    return jax.ffi.ffi_call(
        target, results, vmap_method="sequential",
        input_output_aliases=input_output_aliases,
    )(*args, threads=np.int64(_threads()), bf16=np.int64(bool(bf16)))


def _state_specs(x, h0, steps=None):
    batch, all_steps, _ = x.shape
    units = h0.shape[-1]
    return (
        jax.ShapeDtypeStruct((batch, all_steps if steps is None else steps, units), x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
    )


def _training(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, bf16):
    batch, steps, features = x.shape
    size = _compiled.workspace_bytes(
        _register_targets(), batch, steps, features, h0.shape[-1], _threads()
    )
    workspace = jax.ShapeDtypeStruct((size,), jnp.uint8)
    return _call(
        "fastlstm_onednn_training", _state_specs(x, h0) + (workspace,),
        x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, bf16=bf16,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def _onednn_lstm(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs,
                 bf16):
    # Not differentiated: the inference pass, which saves nothing for a
    # gradient and writes outputs only where they are needed.
    y, h, c = _call(
        "fastlstm_onednn_inference",
        _state_specs(x, h0, x.shape[1] if need_outputs else 0),
        x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, bf16=bf16,
    )
    return (y if need_outputs else None), h, c


def _onednn_lstm_fwd(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs,
                     bf16):
    y, h, c, ws = _training(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, bf16)
    outputs = ((y if need_outputs else None), h, c)
    return outputs, (x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y, ws)


def _onednn_lstm_bwd(need_outputs, bf16, residuals, cotangents):
    *inputs, starts, lengths, y, ws = residuals
    dy, dh, dc = cotangents
    dy = jnp.zeros_like(y) if dy is None or not need_outputs else dy
    dh = jnp.zeros_like(inputs[1]) if dh is None else dh
    dc = jnp.zeros_like(inputs[2]) if dc is None else dc
    specs = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inputs)
    # The last result is the workspace, overwritten in place with the
    # intermediate gradients (XLA copies it first where it is read again).
    *grads, _ = _call(
        "fastlstm_onednn_backward", specs + (jax.ShapeDtypeStruct(ws.shape, ws.dtype),),
        *inputs, starts, lengths, y, ws, dy, dh, dc, bf16=bf16, input_output_aliases={9: 6},
    )
    return tuple(grads) + (None, None)


_onednn_lstm.defvjp(_onednn_lstm_fwd, _onednn_lstm_bwd)
_onednn_fused = _onednn.fused(_onednn_lstm)


def _native_lstm(x, h0, c0, weights, starts, lengths, need_outputs, bf16=False):
    """The compiled kernel on the rows' spans, each device's rows on that
    device under keras's DataParallel."""

    def run(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths):
        return _onednn_fused(
            x, h0, c0, (kernel, recurrent_kernel, bias), starts, lengths, need_outputs, bf16
        )

    return _per_device_rows(
        run, (x, h0, c0) + tuple(weights) + (starts, lengths),
        outputs=(need_outputs, True, True),
    )


def _per_device_rows(run, args, outputs):
    """`run(*args)`, on each device's own rows under keras's DataParallel.

    `args` are `(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths)`, any
    of them None but x; `outputs` says which of `run`'s outputs are tensors
    (the others are None).

    XLA cannot partition a custom call: left to itself it gathers the whole
    batch onto every device and runs it there. Rows are independent, so each
    device runs its shard; the weights' gradients are summed over devices by
    shard_map's transpose.
    """
    import keras

    distribution = keras.distribution.distribution()
    if not isinstance(distribution, keras.distribution.DataParallel):
        return run(*args)
    mesh = distribution.device_mesh.backend_mesh
    axis = distribution.batch_dim_name
    if mesh.shape[axis] == 1 or args[0].shape[0] % mesh.shape[axis]:
        return run(*args)
    rows, shared = jax.sharding.PartitionSpec(axis), jax.sharding.PartitionSpec()
    specs = (rows, rows, rows, shared, shared, shared, rows, rows)
    present = [a is not None for a in args]

    def local(*given):
        it = iter(given)
        return run(*(next(it) if p else None for p in present))

    out_specs = tuple(rows if o else None for o in outputs)
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=tuple(s for s, p in zip(specs, present) if p),
        out_specs=out_specs,
        check_vma=False,
    )(*(a for a in args if a is not None))


native = _onednn.native_kernel(_native_lstm, _NATIVE_DTYPES)


# ---------------------------------------------------------------------------
# 6. ONNX export
# ---------------------------------------------------------------------------
#
# jax2onnx writes each JAX primitive by a plugin: fastlstm's front-aligned
# LSTM is a primitive of its own (what it computes: `kernels._onnx`, by the
# loop, where something runs it) whose plugin writes one ONNX LSTM node with
# sequence_lens. Its inputs are in ONNX's layout already.

_onnx_primitive = jax_core.Primitive("fastlstm_onnx_lstm")
_onnx_primitive.multiple_results = True
_onnx_computed = functools.partial(_onnx.computed, loop)
_onnx_primitive.def_impl(_onnx_computed)
mlir.register_lowering(_onnx_primitive, mlir.lower_fun(_onnx_computed, multiple_results=True))


@_onnx_primitive.def_abstract_eval
def _onnx_shapes(x, w, r, b, lengths, h0, c0):
    steps, batch, units = x.shape[0], x.shape[1], r.shape[2]
    return (
        jax.core.ShapedArray((steps, 1, batch, units), x.dtype),
        jax.core.ShapedArray(h0.shape, h0.dtype),
        jax.core.ShapedArray(c0.shape, c0.dtype),
    )


@functools.lru_cache(maxsize=None)
def _register_jax2onnx_plugin():
    """Registers the primitive's jax2onnx plugin, once per process (a no-op
    where jax2onnx is not installed: then nothing converts the program)."""
    try:
        from jax2onnx.plugins import plugin_system
    except ImportError:
        return False

    @plugin_system.register_primitive(
        jaxpr_primitive=_onnx_primitive.name, context="primitives.fastlstm",
        component="onnx_lstm", since="fastlstm", testcases=[],
    )
    class OnnxLstmPlugin(plugin_system.PrimitiveLeafPlugin):
        def lower(self, ctx, eqn):
            inputs = [ctx.get_value_for_var(v, name_hint=ctx.fresh_name("lstm_in")) for v in eqn.invars]
            specs = [ctx.get_value_for_var(v, name_hint=ctx.fresh_name("lstm_out")) for v in eqn.outvars]
            results = ctx.builder.LSTM(
                *inputs, hidden_size=int(eqn.invars[2].aval.shape[2]),
                _outputs=[ctx.fresh_name("lstm_out") for _ in specs],
            )
            for var, result, spec in zip(eqn.outvars, results, specs):
                result.type, result.shape = spec.type, spec.shape
                ctx.bind_value_for_var(var, result)

    return True


def _onnx_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """The primitive on front-aligned rows (each row's valid steps gathered
    to the front)."""
    del starts, need_outputs  # front-aligned rows; the outputs are cheap
    _register_jax2onnx_plugin()
    inputs = _onnx.node_inputs(x, h0, c0, *weights, lengths)
    return _onnx.keras_outputs(*_onnx_primitive.bind(*inputs))


onnx = _fused.fused_kernel(
    _onnx_lstm, ("float32",), reads_spans=False, gathers_valid_steps=True
)

KERNELS = kernel_table(
    loop=loop, unrolled=unrolled, cudnn=cudnn, native=native, onnx=onnx
)
