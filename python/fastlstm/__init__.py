"""fastlstm: a drop-in keras.layers.LSTM that picks the fastest correct kernel.

    from fastlstm import LSTM
    layer = LSTM(4, return_sequences=True)
    print(fastlstm.plan(layer, x, mask=mask))
"""

from fastlstm import export
from fastlstm import kernels
from fastlstm.cell import LSTMCell
from fastlstm.export import exporting
from fastlstm.convert import ConversionReport, convert_model
from fastlstm.layer import LSTM
from fastlstm.planner import KERNELS, Plan, Requirement

__version__ = "0.1.0"


# Import-time setup of the backend's kernels (registering ops, allocator
# settings), through the kernel contract.
kernels.get().setup()
# Keras's model.export() traces for a portable artifact (see fastlstm.export).
export.install_keras_hook()
__all__ = ["LSTM", "LSTMCell", "plan", "Plan", "Requirement", "KERNELS"]
__all__ += ["convert_model", "ConversionReport", "exporting"]


def plan(layer, inputs, mask=None, training=None, device=None):
    """Which kernel `layer(inputs, mask=mask, training=training)` runs, and why.

    Args:
        layer: a `fastlstm.LSTM`.
        inputs: the 3D input (a tensor or array); only its shape, dtype and,
            with `mask`, the mask's layout matter.
        mask: an optional `(batch, timesteps)` boolean mask.
        training: whether the call is in training mode (dropout active).
        device: "cpu" or "gpu" to ask what would run there; default: the
            device the backend uses now.

    Returns:
        A `fastlstm.Plan`: `.kernel`, `.reasons` (each requirement with
        whether it holds), `.why`, and a readable `str()`.
    """
    if not isinstance(layer, LSTM):
        raise ValueError(
            "Received an invalid value for argument `layer`: expected a "
            f"fastlstm.LSTM, got {type(layer).__name__}."
        )
    if device not in (None, "cpu", "gpu"):
        raise ValueError(
            "Received an invalid value for argument `device`: expected "
            f"'cpu', 'gpu' or None, got {device!r}."
        )
    return layer.plan(inputs, mask=mask, training=training, device=device)
