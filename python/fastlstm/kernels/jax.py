"""JAX kernels: a lax.scan recurrence, cuDNN through jax.experimental.rnn,
and oneDNN's LSTM on a CPU through an XLA FFI call (the native kernel)."""

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np
from keras import activations

from fastlstm import _compiled
from fastlstm.kernels import _onednn


# XLA:CPU runs one large (batch*time, input) x (input, 4*units) product far
# below its per-step rate (measured: ~10 GFLOP/s vs the scan's ~40), so the
# input projection is done step by step inside the scan, as Keras does.
PROJECT_IN_LOOP = True


def device():
    return "gpu" if jax.default_backend() == "gpu" else "cpu"


# The native kernel computes in float32 only.
NATIVE_DTYPES = ("float32",)
# Below 8 rows XLA's scan and the native kernel are about even, or the scan
# is faster (batch 1, 100 steps, 128 units: on an AMD EPYC 1.1 against 1.6 ms
# a call; on an Intel Xeon 0.71 against 0.67 ms unmasked, 0.79 both
# left-padded): the planner keeps the scan there.
NATIVE_MIN_BATCH = 8


def untaken_branch(branch):
    # lax.cond's gradient saves the residuals of both branches, the untaken
    # one's as zeros: the loop's per-step activations, written as zeros on
    # every training step of the fused branch (measured: +24% at M). Under
    # remat the loop branch saves only its inputs.
    return jax.checkpoint(branch)


def native_status():
    """`(True, "")` where the native kernel can run, else `(False, why)`."""
    return _compiled.status("jax")


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
    if (
        input_kernel is not None
        and act is jnp.tanh
        and ract is jax.nn.sigmoid
        and rec_masks is None
        and not unroll
    ):
        return _standard_recurrence(
            xp, h0, c0, input_kernel[0], recurrent_kernel, input_kernel[1], mask,
            zero_output_for_mask, return_sequences,
        )
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


# The standard LSTM (tanh/sigmoid), with its gradient written out.
#
# Gates stay in Keras's column order i, f, c, o: reordering the weights for
# contiguous sigmoid columns cost more than it saved (three concatenations a
# call: 0.63 against 0.52 ms for a batch-1 scan of 100 steps; XLA fuses the
# activations of the slices either way). The forward scan keeps each step's
# activated gates and carried state; the backward scan computes only the
# gate gradients dZ (one product with the recurrent kernel per step) where
# autodiff of the scan would also accumulate both weight gradients step by
# step; the weight gradients are then one large product each over all steps.


def _gates(z, units):
    """Activated gates i, f, g (the cell candidate), o of a step."""
    i = jax.nn.sigmoid(z[:, :units])
    f = jax.nn.sigmoid(z[:, units : 2 * units])
    g = jnp.tanh(z[:, 2 * units : 3 * units])
    o = jax.nn.sigmoid(z[:, 3 * units :])
    return i, f, g, o


def _standard_recurrence(
    x, h0, c0, kernel, recurrent_kernel, bias, mask, zero_output_for_mask,
    return_sequences,
):
    xs = jnp.swapaxes(x, 0, 1)
    b = jnp.zeros(kernel.shape[-1], kernel.dtype) if bias is None else bias
    masked = mask is not None
    masks = (
        jnp.swapaxes(jnp.asarray(mask, xs.dtype), 0, 1)[..., None]
        if masked
        else jnp.zeros((0,), xs.dtype)
    )
    run = _standard(bool(zero_output_for_mask), bool(return_sequences), masked)
    last, outs, h, c = run(xs, h0, c0, kernel, recurrent_kernel, b, masks)
    return last, (jnp.swapaxes(outs, 0, 1) if return_sequences else None), h, c


@functools.lru_cache(maxsize=None)
def _standard(zero_output_for_mask, return_sequences, masked):
    def scan_forward(xs, h0, c0, w, r, b, masks, save):
        units = h0.shape[-1]
        zeros = jnp.zeros_like(h0)

        def step(carry, inputs):
            h, c, prev = carry
            x_t, m_t = inputs
            i, f, g, o = _gates(x_t @ w + h @ r + b, units)
            c_new = f * c + i * g
            h_new = o * jnp.tanh(c_new)
            if masked:
                m = m_t > 0.5
                out = jnp.where(m, h_new, zeros if zero_output_for_mask else prev)
                h_new = jnp.where(m, h_new, h)
                c_new = jnp.where(m, c_new, c)
            else:
                out = h_new
            saved = (jnp.concatenate([i, f, g, o], axis=1), h_new, c_new) if save else ()
            return (h_new, c_new, out), (out if return_sequences else None, saved)

        (h, c, last), (outs, saved) = jax.lax.scan(
            step, (h0, c0, zeros), (xs, masks if masked else None)
        )
        if not return_sequences:
            outs = jnp.zeros((0,), xs.dtype)
        return (last, outs, h, c), saved

    @jax.custom_vjp
    def run(xs, h0, c0, w, r, b, masks):
        return scan_forward(xs, h0, c0, w, r, b, masks, save=False)[0]

    def run_fwd(xs, h0, c0, w, r, b, masks):
        result, (acts, hs, cs) = scan_forward(xs, h0, c0, w, r, b, masks, save=True)
        return result, (xs, h0, c0, w, r, masks, acts, hs, cs)

    def run_bwd(residuals, cotangents):
        xs, h0, c0, w, r, masks, acts, hs, cs = residuals
        d_last, d_outs, d_h, d_c = cotangents
        units = h0.shape[-1]
        c_prev_all = jnp.concatenate([c0[None], cs[:-1]], axis=0)

        def step(carry, inputs):
            dh, dc, dprev = carry
            a, c_prev, m, d_out_t = inputs
            d_out = dprev + d_out_t if return_sequences else dprev
            i, f, g, o = jnp.split(a, 4, axis=1)
            tc = jnp.tanh(f * c_prev + i * g)
            if masked:
                dhn = m * (dh + d_out)
                dcn = m * dc
            else:
                dhn = dh + d_out
                dcn = dc
            dcn = dcn + dhn * o * (1.0 - tc * tc)
            dz = jnp.concatenate(
                [
                    dcn * g * i * (1.0 - i),
                    dcn * c_prev * f * (1.0 - f),
                    dcn * i * (1.0 - g * g),
                    dhn * tc * o * (1.0 - o),
                ],
                axis=1,
            )
            dh_prev = dz @ r.T
            dc_prev = dcn * f
            if masked:
                keep = 1.0 - m
                dh_prev = dh_prev + keep * dh
                dc_prev = dc_prev + keep * dc
                dprev = jnp.zeros_like(dprev) if zero_output_for_mask else keep * d_out
            else:
                dprev = jnp.zeros_like(dprev)
            return (dh_prev, dc_prev, dprev), dz

        (dh0, dc0, _), dz = jax.lax.scan(
            step,
            (d_h, d_c, d_last),
            (
                acts,
                c_prev_all,
                masks if masked else None,
                d_outs if return_sequences else None,
            ),
            reverse=True,
        )
        # The weight work: a few large products over all steps.
        dz2 = dz.reshape(-1, dz.shape[-1])
        h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0).reshape(-1, units)
        dw = xs.reshape(-1, xs.shape[-1]).T @ dz2
        dr = h_prev.T @ dz2
        db = dz2.sum(axis=0)
        dxs = (dz2 @ w.T).reshape(xs.shape)
        return dxs, dh0, dc0, dw, dr, db, jnp.zeros_like(masks)

    run.defvjp(run_fwd, run_bwd)
    return run


def cudnn(
    x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=True,
    need_outputs=True,
):
    """cuDNN LSTM (jax.experimental.rnn) over rows right-aligned to `lengths`.

    Returns `(outputs, h, c)`; outputs past a row's length are zeros.
    cuDNN takes lengths at no extra cost, so `need_cell_state` changes
    nothing; nor does `need_outputs` (cuDNN writes them anyway).
    """
    del need_cell_state, need_outputs
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
        # An empty row's state is replaced by the initial one by the caller;
        # cuDNN is not asked to run zero steps.
        jnp.maximum(jnp.asarray(lengths, jnp.int32), 1),
        input_size=input_size,
        hidden_size=units,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    return y, h[0], c[0]


# The native kernel: oneDNN's LSTM as three XLA FFI targets (inference,
# training forward with a workspace, backward), with a custom VJP.

_TARGETS = {
    "fastlstm_onednn_inference": "FastlstmInference",
    "fastlstm_onednn_training": "FastlstmTraining",
    "fastlstm_onednn_backward": "FastlstmBackward",
}


@functools.lru_cache(maxsize=None)
def _register_targets():
    library = _compiled.load("jax")
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(
            target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
    library.fastlstm_workspace_bytes.restype = ctypes.c_int64
    return library


def _workspace_bytes(batch, steps, features, units):
    error = ctypes.create_string_buffer(1024)
    size = _register_targets().fastlstm_workspace_bytes(
        ctypes.c_int64(batch), ctypes.c_int64(steps), ctypes.c_int64(features),
        ctypes.c_int64(units), ctypes.c_int32(_compiled.threads("jax")), error,
        ctypes.c_size_t(len(error)),
    )
    if size < 0:
        raise RuntimeError(f"oneDNN LSTM: {error.value.decode()}")
    return size


def _call(target, results, *args, input_output_aliases=None):
    _register_targets()
    return jax.ffi.ffi_call(
        target, results, vmap_method="sequential",
        input_output_aliases=input_output_aliases,
    )(*args, threads=np.int64(_compiled.threads("jax")))


def _state_specs(x, h0, steps=None):
    batch, all_steps, _ = x.shape
    units = h0.shape[-1]
    return (
        jax.ShapeDtypeStruct((batch, all_steps if steps is None else steps, units), x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
    )


def _training(x, h0, c0, kernel, recurrent_kernel, bias):
    batch, steps, features = x.shape
    workspace = jax.ShapeDtypeStruct(
        (_workspace_bytes(batch, steps, features, h0.shape[-1]),), jnp.uint8
    )
    return _call(
        "fastlstm_onednn_training", _state_specs(x, h0) + (workspace,),
        x, h0, c0, kernel, recurrent_kernel, bias,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _onednn_lstm(x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_outputs):
    # Not differentiated: oneDNN's inference pass, which saves nothing for a
    # gradient, reads h at each row's length and writes outputs only where
    # they are needed.
    steps = x.shape[1]
    full = jnp.full((x.shape[0],), steps, jnp.int32) if lengths is None else lengths
    y, h, c = _call(
        "fastlstm_onednn_inference",
        _state_specs(x, h0, steps if need_outputs else 0),
        x, h0, c0, kernel, recurrent_kernel, bias, jnp.asarray(full, jnp.int32),
    )
    return (y if need_outputs else None), h, c


def _onednn_lstm_fwd(x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_outputs):
    y, h, c, ws = _training(x, h0, c0, kernel, recurrent_kernel, bias)
    outputs = _onednn.outputs_at_lengths(y, h, c, lengths, need_outputs)
    return outputs, (x, h0, c0, kernel, recurrent_kernel, bias, y, h, c, ws, lengths)


def _onednn_lstm_bwd(need_outputs, residuals, cotangents):
    *inputs, y, h, c, ws, lengths = residuals
    dy, dh, dc = _onednn.cotangents_of_raw(y, *cotangents, lengths, need_outputs)
    dh = jnp.zeros_like(h) if dh is None else dh
    dc = jnp.zeros_like(c) if dc is None else dc
    specs = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inputs)
    # The last result is the workspace, overwritten in place with the
    # intermediate gradients (XLA copies it first where it is read again).
    *grads, _ = _call(
        "fastlstm_onednn_backward", specs + (jax.ShapeDtypeStruct(ws.shape, ws.dtype),),
        *inputs, y, ws, dy, dh, dc, input_output_aliases={7: 6},
    )
    return tuple(grads) + (None,)


_onednn_lstm.defvjp(_onednn_lstm_fwd, _onednn_lstm_bwd)


def native(
    x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=True,
    need_outputs=True,
):
    """oneDNN's LSTM over rows front-aligned to `lengths` (or all steps).

    Returns `(outputs, h, c)`; outputs past a row's length are zeros (None
    unless `need_outputs`); c is None unless `need_cell_state` (see
    `kernels._onednn`).
    """

    def run(x, h0, c0, kernel, recurrent_kernel, bias, lengths):
        return _onednn.front_aligned(
            _onednn_lstm, x, h0, c0, kernel, recurrent_kernel,
            bias, lengths, need_cell_state, need_outputs,
        )

    no_cell_state = lengths is not None and not need_cell_state
    return _per_device_rows(
        run, (x, h0, c0, kernel, recurrent_kernel, bias, lengths),
        outputs=(need_outputs, True, not no_cell_state),
    )


def _per_device_rows(run, args, outputs):
    """`run(*args)`, on each device's own rows under keras's DataParallel.

    `args` are `(x, h0, c0, kernel, recurrent_kernel, bias, lengths)`, any
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
    specs = (rows, rows, rows, shared, shared, shared, rows)
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
