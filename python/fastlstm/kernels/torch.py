"""PyTorch kernels: a Python-loop recurrence and torch's fused LSTM op.

torch's LSTM op is cuDNN on a CUDA device and ATen's fused kernel on a CPU,
with the same weight layout and gradients through the Keras variables.
"""

import torch
from keras import activations


# torch runs the loop step by step from Python: one large input product up
# front saves a product per step.
PROJECT_IN_LOOP = False


def device():
    return "gpu" if torch.cuda.is_available() else "cpu"


# ATen's fused LSTM runs in both.
NATIVE_DTYPES = ("float32", "float64")
# ATen's fused LSTM is faster than a Python loop at every batch size.
NATIVE_MIN_BATCH = 1


def untaken_branch(branch):
    """The branch as it is: torch runs a cond eagerly, one branch only."""
    return branch


def native_status():
    """torch's fused LSTM op is part of torch: always there."""
    return True, ""


def _native(fn):
    if fn is activations.tanh:
        return torch.tanh
    if fn is activations.sigmoid:
        return torch.sigmoid
    return fn


def _step(z, c, activation, recurrent_activation):
    z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)
    c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(
        z_c
    )
    h = recurrent_activation(z_o) * activation(c)
    return h, c


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

    `xp` is `(batch, time, 4 * units)`, already in processing order; `mask`
    is `(batch, time)` or None. Returns `(last_output, outputs, h, c)` with
    Keras's generic semantics: a masked step carries the state over and
    repeats the previous output (zeros if `zero_output_for_mask`).
    A Python loop is torch's own way to run a recurrence, so `unroll` changes
    nothing here.
    """
    del unroll
    if input_kernel is not None:
        # PROJECT_IN_LOOP is False: one product up front is faster here.
        kernel, bias = input_kernel
        xp = xp @ kernel if bias is None else torch.addmm(bias, xp.flatten(0, 1), kernel).unflatten(0, xp.shape[:2])
    act, ract = _native(activation), _native(recurrent_activation)
    rk_parts = None if rec_masks is None else recurrent_kernel.chunk(4, dim=1)
    masks = None if mask is None else mask.to(torch.bool).unsqueeze(-1)
    h, c = h0, c0
    out = torch.zeros_like(h0)
    outs = []
    for t in range(xp.shape[1]):
        if rk_parts is None:
            z = torch.addmm(xp[:, t], h, recurrent_kernel)
        else:
            z = xp[:, t] + torch.cat(
                [(h * m) @ k for m, k in zip(rec_masks, rk_parts)], dim=-1
            )
        h_new, c_new = _step(z, c, act, ract)
        if masks is None:
            h, c, out = h_new, c_new, h_new
        else:
            m_t = masks[:, t]
            out = torch.where(
                m_t, h_new, torch.zeros_like(out) if zero_output_for_mask else out
            )
            h = torch.where(m_t, h_new, h)
            c = torch.where(m_t, c_new, c)
        if return_sequences:
            outs.append(out)
    outputs = torch.stack(outs, dim=1) if return_sequences else None
    return out, outputs, h, c


def _torch_lstm(
    x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=True,
    need_outputs=True,
):
    """torch's fused LSTM over rows front-aligned to `lengths`.

    Returns `(outputs, h, c)`; outputs past a row's length are zeros. With
    `need_cell_state=False` the caller never reads `c`, and on a CPU `c` is
    None: see below. torch's op writes the outputs anyway: `need_outputs`
    changes nothing.
    """
    del need_outputs
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
    lengths = lengths.to(torch.int64)
    if not need_cell_state and x.device.type == "cpu":
        # ATen's CPU kernel for packed sequences runs about half as fast as
        # its plain one, forward and backward. Front-aligned rows need no
        # packing for their outputs: a step never sees the steps after it, so
        # running all steps and reading each row's output at length - 1 gives
        # the exact outputs and final h. Only the final c would need packing.
        y, _, _ = torch.lstm(x, hx, params, bias is not None, 1, 0.0, train, False, True)
        steps = torch.arange(x.shape[1], device=x.device)
        y = y * (steps[None, :] < lengths[:, None]).unsqueeze(-1).to(y.dtype)
        last = (lengths - 1).clamp(min=0)
        h = y[torch.arange(y.shape[0], device=y.device), last]
        return y, h, None
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False
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


# One op, two kernels: the tensors' device decides, as the planner did.
cudnn = _torch_lstm
native = _torch_lstm
