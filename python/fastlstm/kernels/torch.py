"""PyTorch kernels: a Python loop, cuDNN through torch's LSTM op on a CUDA
device, and the compiled kernel on a CPU as custom ops (`torch.library`,
with their autograd formula and fake implementations, so that autograd,
torch.compile and torch.export know them). Sections as in every backend
module (see `fastlstm.kernels`)."""

import ctypes
import functools

import torch

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

_BINDING = "_onednn_torch"


def capabilities():
    native, why = _compiled.status(_BINDING, "torch", _open)
    return Capabilities(
        backend="torch",
        device=_device(),
        native=native,
        native_why=why,
        native_dtypes=_NATIVE_DTYPES,
        native_bf16=native and _compiled.bf16_products(_BINDING, "torch"),
        # The custom op is faster than a Python loop at every batch size.
        native_min_batch=1,
        exporting=_exporting(),
        export_format=_export_format(),
        # Both of torch.onnx's exporters, TorchScript's (a jit trace) and
        # dynamo's (torch.export), write an ONNX LSTM node (section 6).
        onnx_lstm=_onnx_tracing(),
        compiling="torch.compile" if torch.compiler.is_compiling() else "",
    )


# Once per process (asking CUDA each call cost more than the rest of the
# plan); a constant to torch.compile.
@torch.compiler.assume_constant_result
@functools.lru_cache(maxsize=None)
def _device():
    return "gpu" if torch.cuda.is_available() else "cpu"


# Evaluated in Python while torch.compile traces (it reads flags and a
# context variable, which dynamo would stop at).
@torch.compiler.assume_constant_result
def _exporting():
    """The tracer exporting this call for a portable artifact, or "".
    torch.compile is not one: it runs the custom ops in the process that
    compiled them."""
    detected = ""
    if torch.onnx.is_in_onnx_export():
        detected = "torch.onnx.export"
    elif torch.compiler.is_exporting():
        detected = "torch.export"
    elif torch.jit.is_tracing():
        detected = "torch.jit.trace"
    return export.current(detected)


@torch.compiler.assume_constant_result
def _export_format():
    # torch.onnx.export called directly says so by its flag.
    return export.current_format() or ("onnx" if torch.onnx.is_in_onnx_export() else "")


@torch.compiler.assume_constant_result
def _onnx_tracing():
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def setup():
    # PyTorch's CPU allocator takes every buffer from malloc, and glibc maps
    # large ones afresh each time: the compiled kernel's training workspace
    # and outputs would cost a page fault per page on every step.
    _compiled.keep_large_buffers()
    # Loaded now, not first while torch.compile traces a call.
    if _compiled.status(_BINDING, "torch", _open)[0]:
        # The kernel's blocks of rows run on PyTorch's intra-op threads (the
        # caller's OpenMP team): after each of PyTorch's parallel ops those
        # threads spin a while, and threads of the kernel's own would share
        # the cores with them (measured at 32 rows, 100 steps, 128 units:
        # 5 ms more per inference call after a matrix product).
        _library().fastlstm_use_callers_openmp_threads(ctypes.c_int32(1))


def untaken_branch(branch):
    """The branch as it is: torch runs a cond eagerly, one branch only."""
    return branch


# A constant to torch.compile: a compiled graph keeps the threads it was
# traced with.
@torch.compiler.assume_constant_result
def _threads():
    return _compiled.threads(torch.get_num_threads())


# ---------------------------------------------------------------------------
# 2. Loop
# ---------------------------------------------------------------------------

# torch runs the loop step by step from Python: one large input product up
# front saves a product per step.
_HOIST = True


def loop(x, h0, c0, weights, mask, dropout, options):
    """A Python loop over the steps (torch's own way to run a recurrence);
    the standard LSTM with its gradient written out (section 3)."""
    if _loop.is_standard(options, dropout) and _recording(x, h0, c0, *weights):
        return _written_out(x, h0, c0, weights, mask, dropout, options)
    return _loop.unrolled(x, h0, c0, weights, mask, dropout, options, _HOIST)


def unrolled(x, h0, c0, weights, mask, dropout, options):
    """The loop: a Python loop is unrolled by nature, so `unroll` changes
    nothing here."""
    return loop(x, h0, c0, weights, mask, dropout, options)


def _recording(*tensors):
    """Whether autograd records a call on `tensors` for a gradient: only then
    is the written-out gradient worth its saved tensors. A tracer for export
    gets plain ops (an autograd.Function is opaque to the ONNX exporter)."""
    return (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in tensors)
        and not _exporting()
    )


# ---------------------------------------------------------------------------
# 3. Loop with written-out gradient
# ---------------------------------------------------------------------------


def _written_out(x, h0, c0, weights, mask, dropout, options):
    xs, kernel, recurrent_kernel, bias, masks = _loop.written_out_inputs(
        x, weights, mask, dropout
    )
    last, outs, h, c = _WrittenOut.apply(
        xs, h0, c0, kernel, recurrent_kernel, bias, masks,
        bool(options.zero_output_for_mask), bool(options.return_sequences),
    )
    return last, _loop.batch_major(outs, options), h, c


class _WrittenOut(torch.autograd.Function):
    """The standard LSTM over time-major `xs`; the backward pass computes the
    gate gradients step by step and the weight work as a few products."""

    @staticmethod
    def forward(ctx, xs, h0, c0, w, r, b, masks, zero_output_for_mask, return_sequences):
        xp = (xs.flatten(0, 1) @ w + b).unflatten(0, xs.shape[:2])
        h, c, out = h0, c0, torch.zeros_like(h0)
        outs, gates, hs, cs = [], [], [], []
        for t in range(xs.shape[0]):
            m_t = None if masks is None else masks[t]
            h, c, out, g = _loop.standard_step(
                xp[t], m_t, h, c, out, None, r, None, zero_output_for_mask
            )
            outs.append(out)
            gates.append(g)
            hs.append(h)
            cs.append(c)
        # Steps >= 1: kernels.contract answers calls without steps.
        outs = torch.stack(outs) if return_sequences else h0.new_zeros((0,))
        ctx.save_for_backward(
            xs, h0, c0, w, r, masks, torch.stack(gates), torch.stack(hs), torch.stack(cs)
        )
        ctx.flags = (zero_output_for_mask, return_sequences)
        return out, outs, h, c

    @staticmethod
    def backward(ctx, d_last, d_outs, d_h, d_c):
        xs, h0, c0, w, r, masks, gates, hs, cs = ctx.saved_tensors
        zero_output_for_mask, return_sequences = ctx.flags
        zero = lambda d, like: torch.zeros_like(like) if d is None else d
        dh, dc, d_output = zero(d_h, h0), zero(d_c, c0), zero(d_last, h0)
        float_masks = None if masks is None else masks.to(xs.dtype)
        r_t = r.t()
        dz = [None] * xs.shape[0]
        for t in reversed(range(xs.shape[0])):
            if return_sequences and d_outs is not None:
                d_output = d_output + d_outs[t]
            c_prev = cs[t - 1] if t else c0
            m_t = None if float_masks is None else float_masks[t]
            dz[t], dh, dc, d_output = _loop.standard_backward_step(
                gates[t], c_prev, cs[t], m_t, d_output, dh, dc, r_t, zero_output_for_mask
            )
        dxs, dw, dr, db = equations.weight_gradients(xs, h0, hs, torch.stack(dz), w)
        return dxs, dh, dc, dw, dr, db, None, None, None


# ---------------------------------------------------------------------------
# 4. cuDNN
# ---------------------------------------------------------------------------


def _cudnn_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """torch's LSTM op (cuDNN on a CUDA device) on front-aligned rows, packed
    by their lengths. It writes the outputs anyway, so `need_outputs`
    changes nothing."""
    del starts, need_outputs  # front-aligned rows: no starts
    kernel, recurrent_kernel, bias = weights
    # Keras's (in, 4 * units) kernels are torch's (4 * units, in) weights
    # transposed; the gate order i, f, c, o is the same. One bias suffices.
    params = [kernel.t(), recurrent_kernel.t()]
    if bias is not None:
        params += [bias, torch.zeros_like(bias)]
    hx = (h0.unsqueeze(0), c0.unsqueeze(0))
    train = torch.is_grad_enabled()
    if lengths is None:
        y, h, c = torch.lstm(x, hx, params, bias is not None, 1, 0.0, train, False, True)
        return y, h[0], c[0]
    # An empty row's state is the initial one (kernels._fused puts it there).
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths.to(torch.int64).cpu().clamp(min=1), batch_first=True,
        enforce_sorted=False,
    )
    order = packed.sorted_indices
    hx = (hx[0][:, order], hx[1][:, order])
    data, h, c = torch.lstm(
        packed.data, packed.batch_sizes, hx, params, bias is not None, 1, 0.0,
        train, False,
    )
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(
        torch.nn.utils.rnn.PackedSequence(
            data, packed.batch_sizes, order, packed.unsorted_indices
        ),
        batch_first=True,
        total_length=x.shape[1],
    )
    restore = packed.unsorted_indices
    return y, h[0][restore], c[0][restore]


cudnn = _fused.fused_kernel(_cudnn_lstm, CUDNN_DTYPES, reads_spans=False)


# ---------------------------------------------------------------------------
# 5. Native binding
# ---------------------------------------------------------------------------
#
# The compiled kernel as three custom ops, which call csrc/c_api.cc through
# ctypes (which releases the GIL while the kernel runs): inference, training
# forward (with a workspace for the backward) and backward. The training
# op's autograd formula is the backward op. The fake implementations give
# torch.compile and torch.export the results' shapes without running it.


def _open(path):
    # Argument types declared once, at load: every op call asks for the
    # library.
    return _compiled.declare_c_api(ctypes.CDLL(path))


def _library():
    return _compiled.load(_BINDING, "torch", _open)


def _pointer(t):
    return ctypes.c_void_p(t.data_ptr())


def _dims(x, recurrent_kernel):
    return (*x.shape, recurrent_kernel.shape[0])


def _spans(starts, lengths):
    """The rows' spans as the kernel reads them: contiguous int32."""
    return [t.to(torch.int32).contiguous() for t in (starts, lengths)]


def _checked(tensors):
    """Contiguous float32 CPU tensors for the kernel (the layer computes in
    float32 where it plans this kernel)."""
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != "cpu":
            raise ValueError(
                "fastlstm's compiled kernel takes float32 CPU tensors, got "
                f"{t.dtype} on {t.device}"
            )
    return [t.contiguous() for t in tensors]


@torch.library.custom_op("fastlstm::lstm_inference", mutates_args=(), device_types="cpu")
def _inference_op(
    x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor, bias: torch.Tensor, starts: torch.Tensor,
    lengths: torch.Tensor, need_outputs: bool, threads: int, bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = _checked([x, h0, c0, kernel, recurrent_kernel, bias])
    spans = _spans(starts, lengths)
    batch, steps, _, units = _dims(x, recurrent_kernel)
    y = x.new_empty((batch, steps if need_outputs else 0, units))
    h, c = h0.new_empty(h0.shape), c0.new_empty(c0.shape)
    error = _compiled.CError()
    error.check(
        _library().fastlstm_lstm_inference(
            *_dims(x, recurrent_kernel), bf16, *map(_pointer, inputs + spans),
            _pointer(y) if need_outputs else None, _pointer(h), _pointer(c), threads,
            error.buffer, error.size,
        ),
        "inference",
    )
    return y, h, c


@_inference_op.register_fake
def _inference_fake(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs,
                    threads, bf16):
    batch, steps, _, units = _dims(x, recurrent_kernel)
    return (
        x.new_empty((batch, steps if need_outputs else 0, units)),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
    )


@torch.library.custom_op("fastlstm::lstm_training", mutates_args=(), device_types="cpu")
def _training_op(
    x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor, bias: torch.Tensor, starts: torch.Tensor,
    lengths: torch.Tensor, threads: int, bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = _checked([x, h0, c0, kernel, recurrent_kernel, bias])
    spans = _spans(starts, lengths)
    library = _library()
    dims = _dims(x, recurrent_kernel)
    y = x.new_empty((dims[0], dims[1], dims[3]))
    h, c = h0.new_empty(h0.shape), c0.new_empty(c0.shape)
    workspace = torch.empty(
        _compiled.workspace_bytes(library, *dims, threads), dtype=torch.uint8
    )
    error = _compiled.CError()
    error.check(
        library.fastlstm_lstm_training(
            *dims, bf16, *map(_pointer, inputs + spans), _pointer(y),
            _pointer(h), _pointer(c),
            _pointer(workspace), threads, error.buffer, error.size,
        ),
        "training",
    )
    return y, h, c, workspace


@_training_op.register_fake
def _training_fake(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, threads, bf16):
    dims = _dims(x, recurrent_kernel)
    if all(isinstance(d, int) for d in dims):
        size = _compiled.workspace_bytes(_library(), *dims, threads)
    else:  # symbolic shapes: a size known only when the op runs
        size = torch.library.get_ctx().new_dynamic_size()
    return (
        x.new_empty((dims[0], dims[1], dims[3])),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        x.new_empty((size,), dtype=torch.uint8),
    )


@torch.library.custom_op("fastlstm::lstm_backward", mutates_args=(), device_types="cpu")
def _backward_op(
    x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor, bias: torch.Tensor, starts: torch.Tensor,
    lengths: torch.Tensor, y: torch.Tensor, workspace: torch.Tensor,
    dy: torch.Tensor, dh: torch.Tensor, dc: torch.Tensor, bf16: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = _checked([x, h0, c0, kernel, recurrent_kernel, bias])
    spans = _spans(starts, lengths)
    y, dy, dh, dc = _checked([y, dy, dh, dc])
    grads = [torch.empty_like(t) for t in inputs]
    # The workspace is saved for the backward and may be read again
    # (retain_graph=True): the intermediate gradients go to a scratch copy.
    scratch = torch.empty_like(workspace)
    error = _compiled.CError()
    error.check(
        _library().fastlstm_lstm_backward(
            *_dims(x, recurrent_kernel), bf16, *map(_pointer, inputs + spans),
            _pointer(y), _pointer(workspace), _pointer(dy), _pointer(dh), _pointer(dc),
            *map(_pointer, grads), _pointer(scratch), error.buffer, error.size,
        ),
        "backward",
    )
    return tuple(grads)


@_backward_op.register_fake
def _backward_fake(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y, workspace, dy,
                   dh, dc, bf16):
    return tuple(torch.empty_like(t) for t in (x, h0, c0, kernel, recurrent_kernel, bias))


def _training_setup(ctx, inputs, output):
    x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, _, bf16 = inputs
    y, _, _, workspace = output
    ctx.bf16 = bf16
    ctx.save_for_backward(
        x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, y, workspace
    )
    # No zeros written for gradients nobody sends (the workspace's, 8 MB a
    # step at 32 rows, 100 steps, 128 units): the backward makes its own.
    ctx.mark_non_differentiable(workspace)
    ctx.set_materialize_grads(False)


def _training_backward(ctx, dy, dh, dc, _):
    saved = ctx.saved_tensors
    y = saved[8]
    zero = lambda d, like: torch.zeros_like(like) if d is None else d
    grads = _backward_op(
        *saved, zero(dy, y), zero(dh, saved[1]), zero(dc, saved[2]), ctx.bf16
    )
    return (*grads, None, None, None, None)  # none for the starts, lengths, threads, bf16


_training_op.register_autograd(_training_backward, setup_context=_training_setup)


def _onednn_lstm(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, need_outputs,
                 bf16):
    inputs = (x, h0, c0, kernel, recurrent_kernel, bias)
    if _recording(*inputs):
        y, h, c, _ = _training_op(*inputs, starts, lengths, _threads(), bf16)
    else:
        y, h, c = _inference_op(*inputs, starts, lengths, need_outputs, _threads(), bf16)
    return (y if need_outputs else None), h, c


native = _onednn.native_kernel(_onednn.fused(_onednn_lstm), _NATIVE_DTYPES)


# ---------------------------------------------------------------------------
# 6. ONNX export
# ---------------------------------------------------------------------------
#
# Both of torch.onnx's exporters write fastlstm's front-aligned LSTM as one
# ONNX LSTM node with sequence_lens (`kernels._onnx`: its inputs, put in
# ONNX's layout by torch ops that the exporters fold into the file's
# constants). The node is `torch.onnx.ops.symbolic_multi_out` for the dynamo
# exporter and the custom op `fastlstm::onnx_lstm`, whose registered
# symbolic is the node, for the TorchScript one (Keras's for a symbolic
# batch, and its fallback).


@torch.library.custom_op("fastlstm::onnx_lstm", mutates_args=())
def _onnx_op(
    x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor,
    lengths: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX's LSTM node; run by the tracer only, the file holds the node."""
    return _onnx.computed(loop, x, w, r, b, lengths, h0, c0)


@_onnx_op.register_fake
def _onnx_fake(x, w, r, b, lengths, h0, c0):
    steps, batch = x.shape[:2]
    return x.new_empty((steps, 1, batch, r.shape[2])), h0.new_empty(h0.shape), c0.new_empty(c0.shape)


def _onnx_symbolic(g, x, w, r, b, lengths, h0, c0):
    """`_onnx_op` as the ONNX node, for the TorchScript exporter."""
    from torch.onnx import symbolic_helper

    units = symbolic_helper._get_tensor_sizes(r)[2]
    return g.op("LSTM", x, w, r, b, lengths, h0, c0, hidden_size_i=units, outputs=3)


torch.onnx.register_custom_op_symbolic("fastlstm::onnx_lstm", _onnx_symbolic, 13)


def _onnx_lstm(x, h0, c0, weights, starts, lengths, need_outputs):
    """One ONNX LSTM node on front-aligned rows (each row's valid steps
    gathered to the front)."""
    del starts, need_outputs  # front-aligned rows; the outputs are cheap
    inputs = _onnx.node_inputs(x, h0, c0, *weights, lengths)
    if torch.jit.is_tracing():
        return _onnx.keras_outputs(*_onnx_op(*inputs))
    # the dynamo exporter
    units, (steps, batch) = weights.recurrent_kernel.shape[0], x.shape[1::-1]
    return _onnx.keras_outputs(*torch.onnx.ops.symbolic_multi_out(
        "LSTM", inputs, {"hidden_size": units}, dtypes=(x.dtype,) * 3,
        shapes=((steps, 1, batch, units), (1, batch, units), (1, batch, units)),
    ))


onnx = _fused.fused_kernel(
    _onnx_lstm, ("float32",), reads_spans=False, gathers_valid_steps=True
)

KERNELS = kernel_table(
    loop=loop, unrolled=unrolled, cudnn=cudnn, native=native, onnx=onnx
)
