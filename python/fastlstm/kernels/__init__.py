"""Kernels: one contract, one module per Keras backend.

On a CPU, every backend runs fastlstm's one compiled kernel, its C++ core on
oneDNN (a TensorFlow op, an XLA FFI call on JAX, a PyTorch custom op); on a
GPU, every backend runs cuDNN. (`SUMMARY` below is that sentence; the README,
the R help and both package descriptions repeat it.)

The contract. Every kernel is a `Kernel`: it is called with the inputs in
processing order (unprojected: each kernel decides for itself whether to
hoist the input product), the initial states, the `Weights`, the mask (or
None), the `Dropout` masks and the call's `Options`, and returns a `Result`
with Keras's generic semantics (`fastlstm.equations`). A backend module
(`Backend`) has the same sections in the same order:

1. capabilities: `capabilities()`, `setup()`, `untaken_branch()`;
2. loop: the recurrence for any activation and dropout (`loop`, `unrolled`);
3. loop with written-out gradient: the standard LSTM, its gradient by hand;
4. cuDNN: `cudnn`;
5. native binding: `native`, the compiled kernel;
6. ONNX export: `onnx`, an op that the backend's ONNX converter writes as
   one ONNX `LSTM` node (`Capabilities.onnx_lstm`): cuDNN's op, for which
   fastlstm adds a tf2onnx handler (`kernels._tf2onnx`);
   `torch.onnx.ops.symbolic_multi_out` for torch.onnx's dynamo exporter and
   the custom op `fastlstm::onnx_lstm` with a registered symbolic for its
   TorchScript one; a JAX primitive with a jax2onnx plugin. The node's
   inputs and what it computes are written once (`kernels._onnx`);

and ends with `KERNELS`, the planner's kernel names mapped to its kernels.
`run()` is how the layer calls the kernel a plan names; nothing outside this
package names a backend.

Glossary. *Front-aligned* rows are rows whose valid steps come first: each
row's valid span starts at step 0 and runs for its *length*. The fused
kernels (cudnn, native) take front-aligned rows with their lengths;
`fastlstm.kernels._fused` rotates other rows to the front and back. A mask's
*layout* (right-padded, left-padded, ...; `fastlstm._sequence`) describes
the mask as the user gave it.
"""

import dataclasses
import importlib
import typing

import keras
from keras import ops

from fastlstm import _sequence

SUMMARY = (
    "On a CPU, every backend runs fastlstm's one compiled kernel, its C++ core "
    "on oneDNN (a TensorFlow op, an XLA FFI call on JAX, a PyTorch custom op); "
    "on a GPU, every backend runs cuDNN."
)
BACKENDS = ("tensorflow", "jax", "torch")
# The planner's kernels that run a backend's fused LSTM on rows without holes
# (a mask known only at run time puts them behind a cond with the loop). The
# onnx kernel takes every mask: it runs each row's valid steps gathered.
FUSED = ("cudnn", "native")
# Mixed precision's compute dtypes: a fused kernel that does not compute in
# one of them computes it in float32 inside and returns the dtype it was
# given (`kernels._fused`), so a mixed_float16 or mixed_bfloat16 policy keeps
# the fused kernels. The compiled kernel makes a bfloat16 call's matrix
# products in bfloat16 (float32 sums) where the CPU does so natively
# (`Capabilities.native_bf16`).
HALF_DTYPES = ("float16", "bfloat16")
# The dtypes cuDNN computes in, on every backend.
CUDNN_DTYPES = ("float16", "float32", "float64")


class Weights(typing.NamedTuple):
    """The layer's weights, in Keras's layout and gate order (i, f, c, o)."""

    kernel: typing.Any  # (features, 4 * units)
    recurrent_kernel: typing.Any  # (units, 4 * units)
    bias: typing.Any = None  # (4 * units,), or None without use_bias


class Dropout(typing.NamedTuple):
    """Keras's dropout masks for one call, or None where there are none.

    `inputs` is one `(batch, features)` mask for every gate, or four (one
    per gate, Keras's `implementation=1`); `recurrent` is four `(batch,
    units)` masks, one per gate. Every step uses the same masks.
    """

    inputs: typing.Any = None
    recurrent: typing.Any = None


class Options(typing.NamedTuple):
    """The static facts of one call that a kernel needs."""

    activation: typing.Callable
    recurrent_activation: typing.Callable
    return_sequences: bool
    zero_output_for_mask: bool
    # The mask's layout in processing order (`fastlstm._sequence` names).
    layout: str
    # The compiled kernel's matrix products in bfloat16 (`Plan.bf16_products`).
    bf16_products: bool = False


class Result(typing.NamedTuple):
    """What every kernel returns, with Keras's generic semantics."""

    last: typing.Any  # (batch, units): the last step's output
    outputs: typing.Any  # (batch, time, units), or None without return_sequences
    h: typing.Any  # (batch, units): the final states
    c: typing.Any


class Kernel(typing.Protocol):
    def __call__(self, x, h0, c0, weights, mask, dropout, options):
        """One LSTM layer over `x (batch, time, features)`.

        Args:
            x: the inputs in processing order (flipped for go_backwards).
            h0, c0: the initial states, `(batch, units)`.
            weights: a `Weights`.
            mask: `(batch, time)` boolean in processing order, or None.
            dropout: a `Dropout`.
            options: an `Options`.

        Returns:
            A `Result`.
        """


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a backend can run here, as the planner weighs it.

    Attributes:
        backend: the Keras backend's name.
        device: "cpu" or "gpu": where the backend puts new tensors.
        native: whether the compiled kernel can run in this process and
            context; `native_why` says why not.
        native_dtypes: the compute dtypes the compiled kernel computes in;
            it takes `HALF_DTYPES` too, computed in float32.
        native_bf16: whether the compiled kernel makes bfloat16 calls'
            matrix products in bfloat16, with float32 sums (the CPU has AMX
            or AVX512-BF16; FASTLSTM_DISABLE_BF16=1 turns it off); the rest
            of such a call is computed in float32.
        native_min_batch: the fewest rows for which the compiled kernel is
            faster than the backend's loop (1 where it always is).
        cudnn_dtypes: the compute dtypes cuDNN computes in; it takes
            `HALF_DTYPES` too, those it lacks computed in float32.
        exporting: the tracer that is tracing this call for an artifact
            meant to run elsewhere (e.g. "torch.export"), which cannot carry
            the compiled kernel; "" where none is.
        compiling: the compiler tracing this call to run it here (e.g.
            "torch.compile"), which carries every kernel; "" where none is.
        export_format: the format of the artifact being exported ("onnx",
            ...), where `exporting` is set and the exporter said.
        onnx_lstm: whether this call is traced by an ONNX converter that
            writes the `onnx` kernel as one ONNX `LSTM` node (tf2onnx in a
            TensorFlow graph, torch.onnx's exporters, jax2onnx; section 6).
    """

    backend: str
    device: str
    native: bool
    native_why: str
    native_dtypes: tuple
    native_bf16: bool = False
    native_min_batch: int = 1
    cudnn_dtypes: tuple = CUDNN_DTYPES
    exporting: str = ""
    compiling: str = ""
    export_format: str = ""
    onnx_lstm: bool = False


@typing.runtime_checkable
class Backend(typing.Protocol):
    """What a backend module provides (see the module docstring)."""

    KERNELS: typing.Mapping

    def capabilities(self):
        """The backend's `Capabilities` in this process and context."""

    def setup(self):
        """Import-time setup, once, when fastlstm is imported."""

    def untaken_branch(self, branch):
        """`branch` (a function of no arguments), prepared to be the branch
        of a runtime cond that rarely runs (the loop, beside a fused kernel):
        where differentiating a cond materializes both branches' saved
        tensors, this keeps the rare branch's out of the common path (it
        then recomputes them); elsewhere `branch` itself."""


# Backend name -> its module, once imported: a plain dict lookup, which
# tracers (dynamo) follow without stopping.
_MODULES = {}


def get(backend=None):
    """The `Backend` module of `backend` (default: Keras's backend)."""
    backend = backend or keras.config.backend()
    if backend not in _MODULES:
        if backend not in BACKENDS:
            raise ValueError(
                "fastlstm runs on the TensorFlow, JAX and PyTorch backends of "
                f"Keras. Received: KERAS_BACKEND={backend!r}. Set KERAS_BACKEND "
                "to 'tensorflow', 'jax' or 'torch'."
            )
        _MODULES[backend] = importlib.import_module(f"fastlstm.kernels.{backend}")
    return _MODULES[backend]


def kernel_table(**kernels):
    """A backend's `KERNELS`: each of its kernels under `contract`."""
    return {name: contract(kernel) for name, kernel in kernels.items()}


def contract(kernel):
    """`kernel` as a `Kernel`: its result as a `Result`, and calls with no
    rows or no steps answered by the equations without running it (no
    outputs; the initial states after zero steps)."""

    def run(x, h0, c0, weights, mask, dropout, options):
        batch, steps = x.shape[0], x.shape[1]
        if batch == 0 or steps == 0:
            units = weights.recurrent_kernel.shape[0]
            outputs = None
            if options.return_sequences:
                outputs = ops.zeros((batch, steps, units), x.dtype)
            return Result(ops.zeros_like(h0), outputs, h0, c0)
        return Result(*kernel(x, h0, c0, weights, mask, dropout, options))

    run.__name__ = run.__qualname__ = getattr(kernel, "__name__", "kernel")
    run.__doc__ = kernel.__doc__
    run.__wrapped__ = kernel
    return run


def run(plan, x, h0, c0, weights, mask, dropout, options):
    """Runs the kernel `plan` names: the layer's one way to a kernel.

    Where the plan's mask is only known at run time (a traced mask), a fused
    kernel runs behind a cond on the mask's contiguity, with the loop for
    masks with holes, as the plan says.
    """
    module = get(plan.backend)
    kernel = module.KERNELS[plan.kernel]
    args = (x, h0, c0, weights, mask, dropout, options)
    if plan.kernel not in FUSED or plan.mask != _sequence.RUNTIME:
        return kernel(*args)

    def tensors(chosen):
        # Both branches of a cond return tensors of one structure.
        last, outputs, h, c = chosen(*args)
        return last, (ops.expand_dims(last, 1) if outputs is None else outputs), h, c

    last, outputs, h, c = ops.cond(
        _sequence.is_contiguous(mask),
        lambda: tensors(kernel),
        module.untaken_branch(lambda: tensors(module.KERNELS["loop"])),
    )
    return Result(last, outputs if options.return_sequences else None, h, c)
