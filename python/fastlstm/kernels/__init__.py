"""Kernels, one module per Keras backend.

Each backend module exposes the same functions, so the layer calls one of them
and never branches on the backend itself:

- ``device()``: ``"gpu"`` or ``"cpu"``, where this backend puts new tensors.
- ``recurrence(xp, h0, c0, recurrent_kernel, mask, ...)``: the ``loop`` and
  ``unrolled`` kernels, over the input projection ``xp = x @ kernel + bias``
  or, with ``input_kernel=(kernel, bias)``, over ``x`` itself.
- ``PROJECT_IN_LOOP``: whether this backend's loop is faster multiplying each
  step's input inside the loop (then the layer passes ``input_kernel``).
- ``fused(x, h0, c0, kernel, recurrent_kernel, bias, lengths,
  need_cell_state=True)``: the backend's own fused LSTM (cuDNN on a GPU, the
  ``native`` CPU kernel where one exists) over rows front-aligned to the given
  lengths; with ``need_cell_state=False`` it may return None for the final c.
- ``has_native_cpu_kernel()``: whether ``fused`` runs on a CPU.
"""

import importlib

import keras


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
