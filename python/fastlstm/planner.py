"""Which kernel runs, and why: a pure function of the facts of one call.

`decide()` takes plain values (the layer's configuration, the call's mask
layout, training flag and dtype, the backend and the device) and returns a
`Plan`; `plan()` gathers those facts from a layer and its inputs.
"""

import dataclasses

from keras import activations

from fastlstm import _sequence

KERNELS = ("cudnn", "native", "loop", "unrolled")
# The kernels that run the backend's fused LSTM; the others run the recurrence.
FUSED_KERNELS = ("cudnn", "native")

_DESCRIPTIONS = {
    "cudnn": "cuDNN's fused LSTM",
    "native": "the backend's own fused CPU LSTM",
    "loop": "an optimised backend loop (input projection hoisted, gates fused)",
    "unrolled": "the recurrence unrolled step by step (unroll=True)",
}
_CUDNN_DTYPES = ("float16", "float32", "float64")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One condition of one kernel, and whether it holds for this call."""

    kernel: str
    text: str
    holds: bool


@dataclasses.dataclass(frozen=True)
class Plan:
    """The kernel chosen for one call, with every requirement checked.

    Attributes:
        kernel: one of "cudnn", "native", "loop", "unrolled".
        backend: the Keras backend.
        device: "cpu" or "gpu".
        mask: the mask's layout ("none", "left-padded", "holes", ...).
        reasons: a tuple of `Requirement`s, for cudnn and native.
        why: one sentence on the choice.
    """

    kernel: str
    backend: str
    device: str
    mask: str
    reasons: tuple
    why: str

    def unmet(self, kernel):
        return [r for r in self.reasons if r.kernel == kernel and not r.holds]

    def __str__(self):
        lines = [
            f"fastlstm plan: {self.kernel} ({_DESCRIPTIONS[self.kernel]})",
            f"  backend {self.backend}, device {self.device}, mask {self.mask}",
        ]
        for kernel in ("cudnn", "native"):
            reqs = [r for r in self.reasons if r.kernel == kernel]
            if reqs:
                lines.append(f"  {kernel} needs:")
                lines += [
                    f"    [{'x' if r.holds else ' '}] {r.text}" for r in reqs
                ]
        lines.append(f"  => {self.why}")
        return "\n".join(lines)

    # The plan is for reading: the REPL (and R's print) show it whole.
    __repr__ = __str__


def activation_name(fn):
    """'tanh', 'sigmoid', ... for Keras activations; the function's name else."""
    if fn is None:
        return "linear"
    for name in ("tanh", "sigmoid", "linear", "relu"):
        if fn is getattr(activations, name):
            return name
    return getattr(fn, "__name__", repr(fn))


def decide(
    *,
    backend,
    device,
    activation,
    recurrent_activation,
    use_bias,
    unroll,
    dropout,
    recurrent_dropout,
    implementation,
    use_cudnn,
    mask,
    training,
    dtype,
    native_status,
    native_dtypes,
    batch=None,
    native_min_batch=1,
):
    """Chooses the kernel. Pure: the same facts always give the same plan.

    Every fact that changes which kernel runs is an argument here, and the
    layer runs the kernel the plan names: nothing else overrides it.

    Args:
        backend: "tensorflow", "jax" or "torch".
        device: "cpu" or "gpu".
        activation, recurrent_activation: activation names.
        use_bias, unroll: the layer's flags.
        dropout, recurrent_dropout: the cell's rates.
        implementation: the cell's `implementation` (1 draws one input
            dropout mask per gate, which a fused kernel cannot apply).
        use_cudnn: "auto", True or False.
        mask: the mask layout (see `fastlstm._sequence`).
        training: whether the call is in training mode.
        dtype: the dtype the call computes in.
        native_status: `(loaded, why_not)`: whether the backend's fused CPU
            LSTM can run in this process, and if not, why (the loader's
            error).
        native_dtypes: the dtypes the backend's fused CPU LSTM computes in.
        batch: the call's number of rows, or None where unknown.
        native_min_batch: the fewest rows for which the fused CPU LSTM is
            faster than the backend's loop (measured; 1 where it always is).

    Returns:
        A `Plan`.

    Raises:
        ValueError: `use_cudnn=True` and cuDNN cannot run; the message names
            each unmet requirement.
    """
    no_holes = mask in _sequence.CONTIGUOUS_LAYOUTS or mask == _sequence.RUNTIME
    rec_dropout_off = not (training and recurrent_dropout)
    gate_dropout_off = not (training and dropout and implementation == 1)
    shared = [
        (f"activation is tanh (found {activation})", activation == "tanh"),
        (
            f"recurrent_activation is sigmoid (found {recurrent_activation})",
            recurrent_activation == "sigmoid",
        ),
        (
            "recurrent_dropout is 0 or the call is not training "
            f"(found recurrent_dropout={recurrent_dropout}, training={bool(training)})",
            rec_dropout_off,
        ),
        (
            "input dropout uses one mask for all gates: implementation is 2, "
            "dropout is 0 or the call is not training (found "
            f"implementation={implementation}, dropout={dropout}, "
            f"training={bool(training)})",
            gate_dropout_off,
        ),
        (f"unroll is False (found {unroll})", not unroll),
    ]
    cudnn = [("the device is a GPU (found " + device + ")", device == "gpu")]
    cudnn += shared
    cudnn += [
        (f"use_bias is True (found {use_bias})", bool(use_bias)),
        (
            f"the mask has no holes (found {mask})"
            + ("; a mask with holes falls back to loop" if mask == _sequence.RUNTIME else ""),
            no_holes,
        ),
        (f"the dtype is float16, float32 or float64 (found {dtype})", dtype in _CUDNN_DTYPES),
    ]
    loaded, why_not = native_status
    native = [
        (
            f"the {backend} backend's fused CPU LSTM is loaded"
            + ("" if loaded else f" (not loaded: {why_not})"),
            bool(loaded),
        ),
        (f"the device is a CPU (found {device})", device == "cpu"),
    ]
    native += shared
    native += [
        (
            f"the mask has no holes (found {mask})"
            + ("; a mask with holes falls back to loop" if mask == _sequence.RUNTIME else ""),
            no_holes,
        ),
        (
            f"the dtype is {' or '.join(native_dtypes)} (found {dtype})",
            dtype in native_dtypes,
        ),
    ]
    if native_min_batch > 1:
        native.append((
            f"the batch has at least {native_min_batch} rows (found {batch}); "
            f"with fewer, {backend}'s own loop is faster",
            batch is None or batch >= native_min_batch,
        ))
    reasons = tuple(Requirement("cudnn", t, h) for t, h in cudnn) + tuple(
        Requirement("native", t, h) for t, h in native
    )
    cudnn_ok = all(h for _, h in cudnn)
    if use_cudnn is True and not cudnn_ok:
        unmet = "; ".join(t for t, h in cudnn if not h)
        raise ValueError(
            "Received use_cudnn=True, but cuDNN cannot run this call: "
            f"{unmet}. Pass use_cudnn='auto' to fall back to the fastest "
            "other kernel."
        )
    if cudnn_ok and use_cudnn in ("auto", True):
        kernel, why = "cudnn", "every cuDNN requirement holds"
    elif all(h for _, h in native):
        kernel, why = "native", "every requirement of the fused CPU LSTM holds"
    elif unroll:
        kernel, why = "unrolled", "unroll=True asks for an unrolled recurrence"
    else:
        kernel = "loop"
        if use_cudnn is False:
            why = "use_cudnn=False and no fused CPU kernel applies"
        else:
            why = "no fused kernel applies: see the unmet requirements above"
    return Plan(kernel, backend, device, mask, reasons, why)
