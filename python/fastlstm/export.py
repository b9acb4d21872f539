"""Export tracing: a fact the planner sees.

An exported artifact (a SavedModel, a LiteRT or ONNX file, a `jax.export` or
`torch.export` program) is meant to run where fastlstm may not be installed,
so a call traced for one plans a kernel it can carry: the backend's loop,
with Keras's numbers on every mask. The plan says which exporter traced it.

fastlstm knows an export is being traced

- during `keras.Model.export()` in any format (fastlstm wraps it when
  imported, to set the context below: nothing else of Keras changes);
- on PyTorch, while `torch.export`, `torch.onnx.export` or `torch.jit.trace`
  trace (their own flags);
- on TensorFlow, while `tf.saved_model.save()` traces;
- inside `with fastlstm.exporting():`, for any other exporter (`jax.export`,
  `jax2tf`, `tf.lite.TFLiteConverter`, ...).

`fastlstm.exporting(portable=False)` says the artifact will run where
fastlstm is installed (a SavedModel served by a TensorFlow that imports
fastlstm): the compiled kernel stays in it. It is never the default.

The export's format is a fact too: an ONNX file written by TensorFlow's
converter (tf2onnx) carries each LSTM layer as one ONNX `LSTM` node
(`kernels._tf2onnx`).
"""

import contextlib
import contextvars
import functools

# (the exporter's name, whether the artifact must run without fastlstm, the
# artifact's format), or None outside any export.
_CURRENT = contextvars.ContextVar("fastlstm_exporting", default=None)


def current(detected=""):
    """The exporter tracing now for a portable artifact (e.g.
    "model.export(format='onnx')"), or "" where none is.

    `detected` is the exporter a backend sees tracing by its own flags (e.g.
    "torch.export"); an `exporting()` context wins over it, so that
    `portable=False` keeps the compiled kernel in any exporter.
    """
    state = _CURRENT.get()
    if state is None:
        return detected
    by, portable, _ = state
    return by if portable else ""


def current_format():
    """The format of the portable artifact being traced ("onnx", ...), or
    "" where none is (or the exporter did not say)."""
    state = _CURRENT.get()
    if state is None or not state[1]:
        return ""
    return state[2]


@contextlib.contextmanager
def exporting(by="fastlstm.exporting()", portable=True, format=""):
    """Marks the calls traced inside as traced for an exported artifact.

    Args:
        by: the exporter's name, as the plan shows it.
        portable: True (the default) where the artifact must run without
            fastlstm: the loop is planned. False where it runs with
            fastlstm installed: the compiled kernel stays.
        format: the artifact's format, as `keras.Model.export` names it.
            It matters for "onnx": on TensorFlow, a file converted by
            tf2onnx then carries each LSTM layer as one ONNX `LSTM` node.
    """
    if not isinstance(format, str):
        raise TypeError(
            "Argument `format` must be a string such as 'onnx' (or '' where "
            f"it does not matter). Received: format={format!r}"
        )
    token = _CURRENT.set((by, bool(portable), format))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def install_keras_hook():
    """Wraps `keras.Model.export` once, so that every format it writes is
    traced as a portable export (unless an `exporting()` context is already
    set: the caller's wins)."""
    import keras

    export = keras.Model.export
    if getattr(export, "_fastlstm_hook", False):
        return

    @functools.wraps(export)
    def export_with_plan(self, filepath, format="tf_saved_model", *args, **kwargs):
        if _CURRENT.get() is not None:
            return export(self, filepath, format, *args, **kwargs)
        with exporting(f"model.export(format={format!r})", format=format):
            return export(self, filepath, format, *args, **kwargs)

    export_with_plan._fastlstm_hook = True
    keras.Model.export = export_with_plan
