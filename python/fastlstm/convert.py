"""convert_model(): an existing Keras model with every keras.layers.LSTM
(and every keras.layers.RNN over one LSTMCell) replaced by fastlstm.LSTM,
same configuration and weights; convert_layer() does the same for one layer.

The model is rebuilt from its serialized config, the way `.keras` files are
loaded, with each Keras LSTM's entry pointed at fastlstm.LSTM, and the weights
are copied over in order. Working on the config rather than on layer objects
reaches every place Keras itself knows how to rebuild: nested Sequential and
functional models, `Bidirectional` (whose config holds both directions),
`TimeDistributed` and any wrapper that serializes its inner layer.
`keras.models.clone_model(model, clone_function=...)` does not: it hands a
nested model or a `Bidirectional` to the clone function whole (nested models
are recursed into only with `recursive=True`, wrappers never).
"""

import dataclasses
import os
import warnings

import keras
from keras.saving import deserialize_keras_object
from keras.saving import serialize_keras_object

from fastlstm import kernels as _kernels
from fastlstm.cell import LSTMCell
from fastlstm.layer import LSTM

# How Keras 3 serializes its own LSTM, RNN and LSTMCell (public classes: no
# registered name).
_KERAS_LSTM = {"module": "keras.layers", "class_name": "LSTM", "registered_name": None}
_KERAS_RNN = {"module": "keras.layers", "class_name": "RNN", "registered_name": None}
_LSTM_CELLS = (
    {"module": "keras.layers", "class_name": "LSTMCell", "registered_name": None},
    {
        "module": LSTMCell.__module__,
        "class_name": LSTMCell.__name__,
        "registered_name": keras.saving.get_registered_name(LSTMCell),
    },
)
_FASTLSTM = {
    "module": LSTM.__module__,
    "class_name": LSTM.__name__,
    "registered_name": keras.saving.get_registered_name(LSTM),
}


@dataclasses.dataclass(frozen=True)
class Swapped:
    """A `keras.layers.LSTM` replaced by `fastlstm.LSTM`.

    Attributes:
        path: where the layer sits, layer names joined by "/" from the model
            down (e.g. "bidirectional/forward_lstm").
        name: the layer's name.
        kernel: the kernel `fastlstm.plan` names for an unmasked inference
            batch of the layer's input shape on this machine, or None where
            no plan can be made (see `note`).
        plan: that `fastlstm.Plan`, or None.
        note: why there is no plan, or "".
    """

    path: str
    name: str
    kernel: object
    plan: object
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An LSTM layer left as it was, and why."""

    path: str
    name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What `convert_model` swapped (`.swapped`) and left alone (`.skipped`)."""

    swapped: tuple
    skipped: tuple
    backend: str
    device: str

    def __str__(self):
        n, m = len(self.swapped), len(self.skipped)
        lines = [
            f"fastlstm.convert_model: {n} LSTM layer{'s' * (n != 1)} swapped, "
            f"{m} left alone"
        ]
        width = max([len(e.path) for e in self.swapped + self.skipped] + [0])
        for e in self.swapped:
            what = e.kernel if e.kernel is not None else f"no plan: {e.note}"
            lines.append(f"  swapped  {e.path:<{width}}  kernel {what}")
        for e in self.skipped:
            lines.append(f"  left     {e.path:<{width}}  {e.reason}")
        if self.swapped:
            lines += [
                "  kernels planned for an unmasked inference batch on "
                f"{self.backend}, {self.device};",
                "  fastlstm.plan(layer, x, mask=mask) tells what a masked batch runs",
            ]
        return "\n".join(lines)

    # For reading: the REPL (and R's print) show it whole.
    __repr__ = __str__


def convert_model(model_or_path, verbose=True):
    """Returns a copy of a model with every `keras.layers.LSTM` swapped for
    `fastlstm.LSTM`, with the same configuration and weights.

    LSTM layers are found at the top level, in nested Sequential and
    functional models, inside `Bidirectional` (both directions) and
    `TimeDistributed`, and in any layer that rebuilds its inner layers from
    its config. A `keras.layers.RNN` over one `keras.layers.LSTMCell` (or
    `fastlstm.LSTMCell`) is the same recurrence and is swapped too, its
    cell's configuration and its own (`return_sequences`, ...) becoming the
    `fastlstm.LSTM`'s; an RNN over a stack of cells stays, named in the
    report. The copy gives the same outputs, masks included, to float
    tolerance, except where Keras's own kernels depart from its generic loop
    (masked steps on Keras's TensorFlow cuDNN path, Keras's masked JAX scan
    with an `initial_state`; see the README). The original model is left
    untouched.

    Layers that are not swapped are left as they were and named in the
    report: a subclass of `keras.layers.LSTM` (its own code would be lost),
    a layer that already is a `fastlstm.LSTM`, a configuration fastlstm
    refuses (the reason is its error message), and an LSTM that a custom
    layer creates in its own code instead of from its config.

    The copy is for inference or for fresh training: it is compiled as the
    original was (same optimizer settings, loss and metrics), but the
    optimizer's state (step count, moments) is not carried over, nor is the
    state a `stateful=True` layer carries between batches (the copy starts
    from zeros, as after `reset_state()`).

    Args:
        model_or_path: a `keras.Model` (Sequential, functional, or a
            subclass that rebuilds from its config), or the path of a `.keras`
            file, loaded with `keras.saving.load_model`. Custom objects the
            model uses must be registered
            (`keras.saving.register_keras_serializable`) or in a
            `keras.saving.custom_object_scope`, as for loading.
        verbose: whether to print the report.

    Returns:
        A new `keras.Model` of the same class. Its `fastlstm_report`
        attribute is a `ConversionReport`: `.swapped`, one entry per replaced
        layer (`.path`, `.name`, `.kernel`: what `fastlstm.plan` says it
        runs on this machine, `.plan`), and `.skipped` (`.path`, `.name`,
        `.reason`).
    """
    model = _as_model(model_or_path)
    layers = list(_walk_layers(model))
    config = serialize_keras_object(model)
    entries = dict(_walk_config(config))

    swapped, skipped = [], []
    for path, layer in layers:
        if not _is_lstm_like(layer):
            continue
        name = "/".join(path)
        reason = _why_not(layer, path, entries)
        if reason:
            skipped.append(Skipped(name, layer.name, reason))
            continue
        node = entries[path]
        node["config"] = _fastlstm_config(layer, node["config"])
        node.update(_FASTLSTM)
        swapped.append(path)

    try:
        new_model = deserialize_keras_object(
            config, custom_objects=_classes(model, layers)
        )
    except Exception as e:
        raise ValueError(
            "fastlstm.convert_model rebuilds the model from its config, as "
            f"loading a .keras file does, and {type(model).__name__} "
            f"{model.name!r} could not be rebuilt. Register the custom "
            "functions and objects it uses with "
            "keras.saving.register_keras_serializable, or call convert_model "
            f"inside keras.saving.custom_object_scope. Keras said: {e}"
        ) from e
    _copy_weights(model, new_model)

    new_layers = dict(_walk_layers(new_model))
    report = ConversionReport(
        swapped=tuple(_planned(path, new_layers[path]) for path in swapped),
        skipped=tuple(skipped),
        backend=keras.config.backend(),
        device=_kernels.get().capabilities().device,
    )
    new_model.fastlstm_report = report
    if verbose:
        print(report)
    return new_model


def convert_layer(layer, strict=True):
    """Returns one layer as a `fastlstm.LSTM`: a `keras.layers.LSTM`, or a
    `keras.layers.RNN` over one `keras.layers.LSTMCell` (or
    `fastlstm.LSTMCell`), with the same configuration and, where the layer
    or its cell is built, the same weights.

    This is what `convert_model` does to each such layer of a model (R's
    `layer_rnn()` calls it for an LSTM cell). The new layer is not built
    where the given one was not; an `input_shape` given to the layer is kept.

    Args:
        layer: the layer to convert.
        strict: where `layer` cannot be converted (another cell, a stack of
            cells, a subclass with its own code, a configuration fastlstm
            refuses), raise a `ValueError` that says why (True), or return
            `layer` itself unchanged (False).

    Returns:
        A new `fastlstm.LSTM`, or (`strict=False`) `layer`.
    """
    reason = None
    if not isinstance(layer, keras.layers.Layer):
        reason = f"it is a {type(layer).__name__}, not a Keras layer"
    elif not _is_lstm_like(layer):
        reason = (
            f"{type(layer).__name__} {layer.name!r} is neither a "
            "keras.layers.LSTM nor a keras.layers.RNN over one LSTMCell"
        )
    else:
        node = serialize_keras_object(layer)
        reason = _why_not(layer, ("layer",), {("layer",): node})
    if reason:
        if not strict:
            return layer
        raise ValueError(
            "Received an invalid value for argument `layer`: fastlstm cannot "
            f"convert it, because {_lower_first(reason)}."
        )
    config = _fastlstm_config(layer, node["config"])
    input_shape = getattr(layer, "_input_shape_arg", None)
    with warnings.catch_warnings():
        # Keras warns about input_shape once, when the user passed it.
        warnings.simplefilter("ignore")
        if input_shape is not None:
            config["input_shape"] = input_shape
        new_layer = LSTM.from_config(config)
    if layer.cell.built:
        input_dim = int(layer.cell.kernel.shape[0])
        new_layer.build((None, None, input_dim))
        new_layer.cell.set_weights(layer.cell.get_weights())
    return new_layer


def _lower_first(text):
    return text[:1].lower() + text[1:]


def _as_model(model_or_path):
    if isinstance(model_or_path, (str, os.PathLike)):
        return keras.saving.load_model(model_or_path)
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    raise TypeError(
        "Received an invalid value for argument `model_or_path`: expected a "
        "keras.Model or the path of a .keras file, got "
        f"{type(model_or_path).__name__}."
    )


def _walk_layers(layer, prefix=()):
    """(path, layer) for every layer tracked below `layer`, depth first; a
    path is the tuple of layer names from `layer` down."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = prefix + (child.name,)
        yield path, child
        yield from _walk_layers(child, path)


def _walk_config(node, prefix=None):
    """(path, serialized layer) for every layer in a serialized model,
    with the same paths as `_walk_layers` (layer names survive a rebuild)."""
    if isinstance(node, list):
        for item in node:
            yield from _walk_config(item, prefix)
        return
    if not isinstance(node, dict):
        return
    inner = node.get("config")
    if "class_name" in node and isinstance(inner, dict) and isinstance(inner.get("name"), str):
        # The model itself is the root: its name is not part of paths.
        path = () if prefix is None else prefix + (inner["name"],)
        if prefix is not None:
            yield path, node
        yield from _walk_config(list(inner.values()), path)
    else:
        yield from _walk_config(list(node.values()), prefix)


def _classes(model, layers):
    """The model's own layer classes, by the name their config gives, so
    that unregistered custom layers rebuild as `clone_model` rebuilds them."""
    classes = {}
    for cls in [type(model)] + [type(layer) for _, layer in layers]:
        name = keras.saving.get_registered_name(cls)
        if classes.setdefault(name, cls) is not cls:
            raise ValueError(
                f"fastlstm.convert_model cannot rebuild {model.name!r}: two "
                f"different layer classes are both named {name!r} "
                f"({classes[name].__module__} and {cls.__module__}). Register "
                "them under distinct names with "
                "keras.saving.register_keras_serializable."
            )
    return classes


def _is_lstm_like(layer):
    """A keras.layers.LSTM (or subclass), or a keras.layers.RNN whose cell is
    an LSTMCell or a stack of cells with one among them: the layers the
    report speaks of."""
    if isinstance(layer, keras.layers.LSTM):
        return True
    if not isinstance(layer, keras.layers.RNN):
        return False
    cells = getattr(layer.cell, "cells", [layer.cell])
    return any(isinstance(cell, keras.layers.LSTMCell) for cell in cells)


def _why_not(layer, path, entries):
    """Why `layer` (see `_is_lstm_like`) is not swapped, or None."""
    if isinstance(layer, LSTM):
        return "already a fastlstm.LSTM"
    if isinstance(layer, keras.layers.LSTM):
        if type(layer) is not keras.layers.LSTM:
            return _subclass_reason(layer, "keras.layers.LSTM")
    else:
        if type(layer) is not keras.layers.RNN:
            return _subclass_reason(layer, "keras.layers.RNN")
        if not isinstance(layer.cell, keras.layers.LSTMCell):
            return (
                "a keras.layers.RNN over a stack of cells; fastlstm.LSTM "
                "runs one LSTM cell (stack fastlstm.LSTM layers instead)"
            )
        if type(layer.cell) not in (keras.layers.LSTMCell, LSTMCell):
            return _subclass_reason(layer.cell, "keras.layers.LSTMCell")
    node = entries.get(path)
    if node is None or not (_is_keras_lstm(node) or _is_keras_lstm_rnn(node)):
        return (
            "created by its parent layer's own code, not from the model's "
            "config, so a rebuilt model cannot have it replaced"
        )
    try:
        LSTM.from_config(_fastlstm_config(layer, node["config"]))
    except (ValueError, TypeError) as e:
        return f"fastlstm.LSTM refuses its configuration: {e}"
    return None


def _subclass_reason(obj, parent):
    cls = type(obj)
    return (
        f"a subclass of {parent} ({cls.__module__}.{cls.__qualname__}); "
        "swapping it would drop its own code"
    )


def _matches(node, spec):
    return all(
        node.get(key) == spec[key] for key in ("module", "class_name", "registered_name")
    )


def _is_keras_lstm(node):
    return _matches(node, _KERAS_LSTM)


def _is_keras_lstm_rnn(node):
    cell = node.get("config", {}).get("cell")
    return (
        _matches(node, _KERAS_RNN)
        and isinstance(cell, dict)
        and any(_matches(cell, spec) for spec in _LSTM_CELLS)
    )


def _fastlstm_config(layer, config):
    """fastlstm.LSTM's config for `layer`, from its serialized `config`.

    A keras.layers.LSTM's config is fastlstm.LSTM's, but for `use_cudnn`,
    which Keras does not serialize (the layer object has it). An RNN's is
    its own (name, dtype, return_sequences, ...) with its cell's
    configuration (units, activations, initializers, dropout, ...) merged in;
    it never ran cuDNN, and fastlstm chooses as for any layer ("auto").
    """
    if isinstance(layer, keras.layers.LSTM):
        return dict(config, use_cudnn=layer.use_cudnn)
    config = dict(config)
    cell_config = dict(config.pop("cell")["config"])
    for key in ("name", "trainable", "dtype"):  # the layer's own count
        cell_config.pop(key, None)
    return {**config, **cell_config}


def _copy_weights(model, new_model):
    # The rebuilt model creates its variables in the same order as the
    # original (same config; fastlstm.LSTM's weights are Keras's).
    old, new = model.weights, new_model.weights
    if len(old) != len(new) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(old, new)
    ):
        raise ValueError(
            "fastlstm.convert_model could not copy the weights: the rebuilt "
            f"model has {len(new)} weight(s) where {model.name!r} has "
            f"{len(old)}, or their shapes differ. A layer in the model does "
            "not rebuild the same weights from its config."
        )
    new_model.set_weights(model.get_weights())


def _planned(path, layer):
    import fastlstm  # the public plan(); fastlstm/__init__ imports this module

    name = "/".join(path)
    shape = _input_shape(layer)
    if shape is None:
        return Swapped(name, layer.name, None, None, "input shape unknown (layer not built)")
    x = keras.KerasTensor(shape, dtype=layer.compute_dtype)
    try:
        plan = fastlstm.plan(layer, x)
    except ValueError as e:  # use_cudnn=True where cuDNN cannot run
        return Swapped(name, layer.name, None, None, str(e))
    return Swapped(name, layer.name, plan.kernel, plan)


def _input_shape(layer):
    build = layer.get_build_config() or {}
    if "input_shape" in build:
        return tuple(build["input_shape"])
    shapes = build.get("shapes_dict", {})
    shape = shapes.get("sequences_shape")
    return None if shape is None else tuple(shape)
