"""Every rule on what fastlstm accepts, in one place.

Messages in Keras's style: what was received, what was expected, how to fix
it, naming the argument. ValueError for bad values, TypeError for wrong
types. Where keras.layers.LSTM is lenient (integer inputs, float masks,
`(batch, timesteps, 1)` masks, batch-1 masks and states), these rules accept
the same; the layer then brings such values to the one form its kernels take.
"""

import numbers

import numpy as np
from keras import activations
from keras import backend

USE_CUDNN_CHOICES = ("auto", True, False)


def check_units(units):
    # A bool is an int to Python, but `units=True` is a mistake (R's
    # layer_lstm() rejects TRUE too).
    if isinstance(units, (bool, np.bool_)) or not isinstance(units, numbers.Real):
        raise ValueError(
            "Received an invalid value for argument `units`, expected a "
            f"positive integer, got {units!r}."
        )
    if not isinstance(units, numbers.Integral):
        if not float(units).is_integer():
            raise ValueError(
                "Received an invalid value for argument `units`, expected a "
                f"positive integer, got {units!r}."
            )
    if units <= 0:
        raise ValueError(
            "Received an invalid value for argument `units`, expected a "
            f"positive integer, got {units}."
        )
    return int(units)


def check_rate(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a "
            f"float between 0 and 1, got {value!r}. (keras.layers.LSTM clips "
            "it silently; fastlstm does not.)"
        )
    return float(value)


def check_activation(name, value):
    try:
        return activations.get(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: {value!r} is "
            "not a known activation. Use a name such as 'tanh', 'sigmoid' or "
            "'relu', a callable, or None for linear."
        ) from e


def check_use_cudnn(value):
    if not any(value is c or (isinstance(c, str) and value == c) for c in USE_CUDNN_CHOICES):
        raise ValueError(
            "Received an invalid value for argument `use_cudnn`, expected one "
            f"of 'auto', True or False, got {value!r}."
        )
    return value


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def dtype_of(x):
    """The standardized dtype name of a tensor or array."""
    return backend.standardize_dtype(x.dtype)


def needs_cast(dtype):
    """Whether inputs of `dtype` are cast to the compute dtype first, as the
    generic Keras loop promotes them (integers and booleans)."""
    return dtype == "bool" or "int" in dtype


def check_inputs(inputs):
    """The sequences given to a call or to `fastlstm.plan()`."""
    if inputs is None:
        raise ValueError(
            "Received an invalid value for argument `inputs`: expected a 3D "
            "tensor of shape (batch, timesteps, features), got None."
        )
    if not _is_array(inputs):
        raise TypeError(
            "Received an invalid value for argument `inputs`: expected a 3D "
            "tensor or array of shape (batch, timesteps, features), got a "
            f"{type(inputs).__name__} ({inputs!r:.60})."
        )
    check_inputs_shape(tuple(inputs.shape))
    dtype = dtype_of(inputs)
    if not (dtype.startswith("float") or dtype.startswith("bfloat") or needs_cast(dtype)):
        raise TypeError(
            "Received an invalid value for argument `inputs`: expected a "
            f"real-valued (float, integer or boolean) tensor, got dtype {dtype}. "
            "An LSTM computes in real numbers; pass the real part or a float "
            "encoding of the data."
        )


def check_inputs_shape(shape):
    if shape is None or len(shape) != 3:
        raise ValueError(
            "Received an invalid value for argument `inputs`: expected a 3D "
            "tensor of shape (batch, timesteps, features), got "
            + ("None." if shape is None else f"a tensor of shape {tuple(shape)}.")
        )


def check_feature_size(inputs_shape, kernel_shape):
    """The inputs' last axis against the built kernel `(features, 4 * units)`."""
    received, expected = inputs_shape[-1], kernel_shape[0]
    if received is not None and received != expected:
        raise ValueError(
            "Received an invalid value for argument `inputs`: this layer was "
            f"built for {expected} features per step (its kernel has shape "
            f"{tuple(kernel_shape)}), got inputs of shape {tuple(inputs_shape)} "
            f"with {received}. Pass inputs with {expected} features, or use a "
            f"new layer for {received}."
        )


def check_stateful_batch(shape):
    if shape[0] is None:
        raise ValueError(
            "Received stateful=True with an unknown batch size (inputs of "
            f"shape {tuple(shape)}). A stateful layer needs a fixed batch "
            "size: pass `batch_size` to `keras.Input` (or `batch_shape`), or "
            "call the layer on a concrete batch first."
        )


def check_mask_type(mask):
    """A mask is a tensor or an array; a Python list is not (Keras agrees)."""
    if not _is_array(mask):
        raise TypeError(
            "Received an invalid value for argument `mask`: expected a "
            "boolean tensor or array of shape (batch, timesteps), got a "
            f"{type(mask).__name__}. Convert it first, e.g. with "
            "`np.asarray(mask, dtype=bool)`."
        )


def _compatible(a, b):
    return a is None or b is None or a == b


def check_mask(mask_shape, mask_dtype, inputs_shape):
    """A `(batch, timesteps)` mask, as Keras takes it.

    Also accepted, as Keras's loop accepts them: a trailing axis of size 1,
    a batch of 1 (broadcast to every row), and float or integer values
    (non-zero means valid).
    """
    batch, steps = tuple(inputs_shape[:2])
    shape = tuple(mask_shape)
    if len(shape) == 3 and _compatible(shape[2], 1):
        shape = shape[:2]
    ok = (
        len(shape) == 2
        and _compatible(shape[1], steps)
        and (_compatible(shape[0], batch) or shape[0] == 1)
    )
    if not ok:
        raise ValueError(
            "Received an invalid value for argument `mask`: expected shape "
            f"(batch, timesteps) = {(batch, steps)} (or a batch of 1), got "
            f"shape {tuple(mask_shape)}."
        )
    if not (mask_dtype == "bool" or "int" in mask_dtype or "float" in mask_dtype):
        raise TypeError(
            "Received an invalid value for argument `mask`: expected a "
            "boolean tensor (or 0/1 numbers, non-zero meaning valid), got "
            f"dtype {mask_dtype}."
        )


def state_shape(state):
    return tuple(state.shape) if hasattr(state, "shape") else np.shape(state)


def check_initial_state(states, batch, units):
    """`[h, c]`, each `(batch, units)`, or `(1, units)` for every row."""
    if len(states) != 2:
        raise ValueError(
            "Received an invalid value for argument `initial_state`: an LSTM "
            "takes a list of 2 tensors [h, c], each of shape (batch, units), "
            f"got {len(states)} tensor(s)."
        )
    for name, state in zip(("h", "c"), states):
        if state is None:
            raise ValueError(
                "Received an invalid value for argument `initial_state`: the "
                f"{name} state is None. Pass two tensors [h, c] of shape "
                f"(batch, units) = ({batch}, {units}), or leave "
                "`initial_state` out to start from zeros."
            )
        shape = state_shape(state)
        if (
            len(shape) != 2
            or not _compatible(shape[1], units)
            or not (_compatible(shape[0], batch) or shape[0] == 1)
        ):
            raise ValueError(
                "Received an invalid value for argument `initial_state`: the "
                f"{name} state must have shape (batch, units) = "
                f"({batch}, {units}) (or (1, {units}) for every row), got "
                f"{shape}."
            )
