"""Which kernel runs, and why: a pure function of the facts of one call.

`decide()` takes plain values (the layer's configuration, the call's mask
layout, training flag and dtype, the backend and the device) and returns a
`Plan`; `plan()` gathers those facts from a layer and its inputs.
"""

import dataclasses

from keras import activations

from fastlstm import _sequence
from fastlstm.kernels import HALF_DTYPES

KERNELS = ("cudnn", "native", "onnx", "loop", "unrolled")
# The kernels that run the backend's fused LSTM; the others run the recurrence.
FUSED_KERNELS = ("cudnn", "native", "onnx")

_DESCRIPTIONS = {
    "cudnn": "cuDNN's fused LSTM",
    "native": "fastlstm's compiled CPU kernel",
    "onnx": "one ONNX LSTM node with sequence_lens, for an ONNX file",
    "loop": "an optimised backend loop (gates fused, weight gradients as large products)",
    "unrolled": "the recurrence unrolled step by step (unroll=True)",
}


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
        kernel: one of "cudnn", "native", "onnx", "loop", "unrolled".
        backend: the Keras backend.
        device: "cpu" or "gpu".
        mask: the mask's layout ("none", "left-padded", "holes", ...).
        reasons: a tuple of `Requirement`s, for cudnn and native (and for
            onnx, in a call traced for export).
        why: one sentence on the choice.
        bf16_products: the compiled kernel makes a bfloat16 call's matrix
            products in bfloat16, with float32 sums (else everything of a
            mixed-precision call is computed in float32).
    """

    kernel: str
    backend: str
    device: str
    mask: str
    reasons: tuple
    why: str
    bf16_products: bool = False

    def unmet(self, kernel):
        return [r for r in self.reasons if r.kernel == kernel and not r.holds]

    def __str__(self):
        lines = [
            f"fastlstm plan: {self.kernel} ({_DESCRIPTIONS[self.kernel]})",
            f"  backend {self.backend}, device {self.device}, mask {self.mask}",
        ]
        for kernel in FUSED_KERNELS:
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


def _dtype_requirement(dtype, computed_in, bf16_products=False):
    """A fused kernel's dtype requirement: the dtypes it computes in, and
    mixed precision's, which it computes in float32 where it lacks them
    (a bfloat16 call's matrix products in bfloat16 where `bf16_products`)."""
    accepted = tuple(computed_in) + tuple(d for d in HALF_DTYPES if d not in computed_in)
    found = dtype
    if bf16_products:
        found += ", matrix products in bfloat16 with float32 sums, the rest in float32"
    elif dtype in HALF_DTYPES and dtype not in computed_in:
        found += ", computed in float32 inside"
    return f"the dtype is {_one_of(accepted)} (found {found})", dtype in accepted


def _one_of(names):
    """'float32', 'float16 or float32', 'float16, float32 or float64'."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def activation_name(fn):
    """'tanh', 'sigmoid', ... for Keras activations; the function's name else."""
    if fn is None:
        return "linear"
    for name in ("tanh", "sigmoid", "linear", "relu"):
        if fn is getattr(activations, name):
            return name
    return getattr(fn, "__name__", repr(fn))


# Plans already made, by their facts: a layer called again with the same
# facts (every training step) gets the same plan without writing out its
# requirements again. Facts are few per process (configurations, layouts,
# dtypes, batch sizes); the dict stops growing at _PLANS_KEPT. A plan made
# while a compiler traces the call is not kept: it may leave nothing behind
# (torch.compile cannot rebuild such an object after its trace).
_PLANS = {}
_PLANS_KEPT = 4096


def decide(
    *, capabilities, activation, recurrent_activation, use_bias, unroll,
    dropout, recurrent_dropout, implementation, use_cudnn, mask, training,
    dtype, batch=None,
):
    """Chooses the kernel (see `_decide`, which documents the facts); the
    same facts always give the same plan, made once."""
    facts = (
        capabilities, activation, recurrent_activation, use_bias, unroll, dropout,
        recurrent_dropout, implementation, use_cudnn, mask, training, dtype, batch,
    )
    plan = _PLANS.get(facts)
    if plan is None:
        plan = _decide(*facts)
        if len(_PLANS) < _PLANS_KEPT and not capabilities.compiling:
            _PLANS[facts] = plan
    return plan


def _decide(
    capabilities,
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
    batch=None,
):
    """Chooses the kernel. Pure: the same facts always give the same plan.

    Every fact that changes which kernel runs is an argument here, and the
    layer runs the kernel the plan names: nothing else overrides it.

    Args:
        capabilities: the backend's `fastlstm.kernels.Capabilities`: its
            name, the device, whether the compiled kernel can run here (and
            if not, why), the dtypes of the fused kernels and the fewest
            rows for which the compiled kernel beats the backend's loop.
        activation, recurrent_activation: activation names.
        use_bias, unroll: the layer's flags.
        dropout, recurrent_dropout: the cell's rates.
        implementation: the cell's `implementation` (1 draws one input
            dropout mask per gate, which a fused kernel cannot apply).
        use_cudnn: "auto", True or False.
        mask: the mask layout (see `fastlstm._sequence`).
        training: whether the call is in training mode.
        dtype: the dtype the call computes in.
        batch: the call's number of rows, or None where unknown.

    Returns:
        A `Plan`.

    Raises:
        ValueError: `use_cudnn=True` and cuDNN cannot run; the message names
            each unmet requirement.
    """
    caps = capabilities
    backend, device = caps.backend, caps.device
    no_holes = mask in _sequence.CONTIGUOUS_LAYOUTS or mask == _sequence.RUNTIME
    # An exported artifact must run without fastlstm, and where no GPU is.
    portable = (
        "the call is not traced for export (an artifact that runs without "
        "fastlstm, on any device, carries the loop)"
        + (f" (found: traced by {caps.exporting})" if caps.exporting else ""),
        not caps.exporting,
    )
    # A bfloat16 call's products in bfloat16, where the compiled kernel runs.
    bf16_products = dtype == "bfloat16" and caps.native_bf16
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
    cudnn = [("the device is a GPU (found " + device + ")", device == "gpu"), portable]
    cudnn += shared
    cudnn += [
        (f"use_bias is True (found {use_bias})", bool(use_bias)),
        (
            f"the mask has no holes (found {mask})"
            + ("; a mask with holes falls back to loop" if mask == _sequence.RUNTIME else ""),
            no_holes,
        ),
        _dtype_requirement(dtype, caps.cudnn_dtypes),
    ]
    native = [
        (
            "fastlstm's compiled kernel is loaded"
            + ("" if caps.native else f" (not loaded: {caps.native_why})"),
            bool(caps.native),
        ),
        (f"the device is a CPU (found {device})", device == "cpu"),
        portable,
    ]
    native += shared
    native += [
        (
            f"the mask has no holes (found {mask})"
            + ("; a mask with holes falls back to loop" if mask == _sequence.RUNTIME else ""),
            no_holes,
        ),
        _dtype_requirement(dtype, caps.native_dtypes, bf16_products),
    ]
    if caps.native_min_batch > 1:
        native.append((
            f"the batch has at least {caps.native_min_batch} rows (found {batch}); "
            f"with fewer, {backend}'s own loop is faster",
            # A symbolic batch (an export for any batch size) is not
            # compared with a number.
            not isinstance(batch, int) or batch >= caps.native_min_batch,
        ))
    # An ONNX file can carry the fused LSTM as ONNX's own LSTM node, where
    # the backend's converter makes one (tf2onnx, from cuDNN's op).
    onnx = [
        (
            "the call is traced for an ONNX file"
            + (f" (found: traced by {caps.exporting})" if caps.exporting else ""),
            caps.export_format == "onnx",
        ),
        (
            "the call is traced by a converter that writes fastlstm's fused LSTM "
            "as one ONNX LSTM node (tf2onnx in a TensorFlow graph, torch.onnx's "
            "exporters, jax2onnx)",
            caps.onnx_lstm,
        ),
    ]
    # Any mask: each row's valid steps are gathered to the front.
    onnx += shared + [(f"the dtype is float32 (found {dtype})", dtype == "float32")]
    reasons = tuple(Requirement("cudnn", t, h) for t, h in cudnn) + tuple(
        Requirement("native", t, h) for t, h in native
    )
    if caps.exporting:
        # Shown only where an export is traced: elsewhere it never applies.
        reasons += tuple(Requirement("onnx", t, h) for t, h in onnx)
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
        kernel, why = "native", "every requirement of the compiled kernel holds"
        if mask not in (_sequence.NO_MASK, _sequence.ALL_VALID):
            # Ragged compute (csrc/lstm_onednn.h): padding costs nothing.
            why += "; each row runs only its valid steps, read where they lie"
        if bf16_products:
            why += "; bfloat16 matrix products (this CPU has AMX or AVX512-BF16)"
    elif all(h for _, h in onnx):
        kernel, why = "onnx", "every requirement of an ONNX LSTM node holds"
        if mask not in (_sequence.NO_MASK, _sequence.ALL_VALID):
            why += (
                "; each row's valid steps, gathered to the front, run for their "
                "number (a masked step changes no state: holes too)"
            )
    elif unroll:
        kernel, why = "unrolled", "unroll=True asks for an unrolled recurrence"
    else:
        kernel = "loop"
        if use_cudnn is False:
            why = "use_cudnn=False and the compiled kernel does not apply"
        else:
            why = "no fused kernel applies: see the unmet requirements above"
    return Plan(kernel, backend, device, mask, reasons, why, kernel == "native" and bf16_products)
