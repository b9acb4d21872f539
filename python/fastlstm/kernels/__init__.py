"""Kernels, one module per Keras backend.

Every backend module follows `KernelModule`, so the layer calls one of its
functions by the name the planner chose and never branches on the backend.
`tests/python/test_kernel_contract.py` checks each module against it; a new
backend (or kernel) starts from this protocol, not from the closest module.
"""

import importlib
import typing

import keras


class FusedKernel(typing.Protocol):
    def __call__(
        self, x, h0, c0, kernel, recurrent_kernel, bias, lengths,
        need_cell_state=True, need_outputs=True,
    ):
        """One LSTM over rows front-aligned to `lengths`.

        `x` is `(batch, time, features)` in processing order, rows rotated so
        that each valid span starts at step 0; `lengths` is `(batch,)` or None
        (every step valid); `bias` may be None. Returns `(outputs, h, c)`:
        outputs `(batch, time, units)`, zeros past a row's length; h and c
        the state after each row's last valid step (any value for an empty
        row: the layer puts the initial state there). With
        `need_cell_state=False` nobody reads c, with `need_outputs=False`
        nobody reads the outputs, and either may be None.
        """


@typing.runtime_checkable
class KernelModule(typing.Protocol):
    """What a backend module provides.

    Attributes:
        PROJECT_IN_LOOP: whether this backend's loop is faster multiplying
            each step's input inside the loop (the layer then passes
            `input_kernel=(kernel, bias)` to `recurrence`).
        NATIVE_DTYPES: the compute dtypes `native` runs in.
        NATIVE_MIN_BATCH: the fewest rows for which `native` is faster than
            `recurrence` (1 where it always is); the planner's to apply.
        cudnn: cuDNN's fused LSTM (a `FusedKernel`), for GPU tensors.
        native: the fused CPU LSTM (a `FusedKernel`), for CPU tensors.
    """

    PROJECT_IN_LOOP: bool
    NATIVE_DTYPES: tuple
    NATIVE_MIN_BATCH: int
    cudnn: FusedKernel
    native: FusedKernel

    def device(self):
        """"gpu" or "cpu": where this backend puts new tensors."""

    def native_status(self):
        """`(True, "")` where `native` can run in this process and context,
        else `(False, why)`, the reason the plan shows."""

    def untaken_branch(self, branch):
        """`branch` (a function of no arguments), prepared to be the branch
        of a runtime cond that rarely runs (the loop, beside a fused
        kernel): where differentiating a cond materializes both branches'
        saved tensors, this keeps the rare branch's out of the common path
        (it then recomputes them); elsewhere `branch` itself."""

    def recurrence(
        self, xp, h0, c0, recurrent_kernel, mask, *, activation,
        recurrent_activation, zero_output_for_mask, return_sequences, unroll,
        rec_masks=None, input_kernel=None,
    ):
        """The `loop` and `unrolled` kernels, with Keras's generic semantics.

        Runs over `xp = x @ kernel + bias` `(batch, time, 4 * units)` or,
        with `input_kernel=(kernel, bias)`, over `x` itself; `mask` is
        `(batch, time)` or None; `rec_masks` are per-gate recurrent dropout
        masks. Returns `(last_output, outputs or None, h, c)`.
        """


def get(backend=None):
    """Returns the kernel module of `backend` (default: Keras's backend)."""
    backend = backend or keras.config.backend()
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(
            "fastlstm runs on the TensorFlow, JAX and PyTorch backends of "
            f"Keras. Received: KERAS_BACKEND={backend!r}. Set KERAS_BACKEND to "
            "'tensorflow', 'jax' or 'torch'."
        )
    return importlib.import_module(f"fastlstm.kernels.{backend}")
