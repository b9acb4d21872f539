"""Argument checks with Keras-style messages: what was received, what was
expected, how to fix it, naming the argument."""

import numbers

from keras import activations

USE_CUDNN_CHOICES = ("auto", True, False)


def check_units(units):
    if isinstance(units, bool) or not isinstance(units, numbers.Integral):
        if isinstance(units, numbers.Real) and float(units).is_integer():
            units = int(units)
        else:
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


def check_inputs_shape(shape):
    if len(shape) != 3:
        raise ValueError(
            "Received an invalid value for argument `inputs`: expected a 3D "
            "tensor of shape (batch, timesteps, features), got a tensor of "
            f"shape {tuple(shape)}."
        )


def check_stateful_batch(shape):
    if shape[0] is None:
        raise ValueError(
            "Received stateful=True with an unknown batch size (inputs of "
            f"shape {tuple(shape)}). A stateful layer needs a fixed batch "
            "size: pass `batch_size` to `keras.Input` (or `batch_shape`), or "
            "call the layer on a concrete batch first."
        )


def check_mask(mask_shape, mask_dtype, inputs_shape):
    expected = tuple(inputs_shape[:2])
    ok = len(mask_shape) == 2 and all(
        m is None or e is None or m == e for m, e in zip(mask_shape, expected)
    )
    if not ok:
        raise ValueError(
            "Received an invalid value for argument `mask`: expected shape "
            f"(batch, timesteps) = {expected}, got shape {tuple(mask_shape)}."
        )
    if not (mask_dtype == "bool" or "int" in mask_dtype):
        raise ValueError(
            "Received an invalid value for argument `mask`: expected a "
            f"boolean (or 0/1 integer) tensor, got dtype {mask_dtype}."
        )


def check_initial_state(states, batch, units):
    if len(states) != 2:
        raise ValueError(
            "Received an invalid value for argument `initial_state`: an LSTM "
            "takes a list of 2 tensors [h, c], each of shape (batch, units), "
            f"got {len(states)} tensor(s)."
        )
    for name, shape in zip(("h", "c"), (tuple(s.shape) for s in states)):
        if len(shape) != 2 or shape[1] != units or (
            batch is not None and shape[0] is not None and shape[0] != batch
        ):
            raise ValueError(
                "Received an invalid value for argument `initial_state`: the "
                f"{name} state must have shape (batch, units) = "
                f"({batch}, {units}), got {shape}."
            )
