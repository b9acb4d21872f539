"""Conversions between R and Keras used by the fastlstm R package.

Arrays cross as raw bytes (R doubles, column-major) rather than through
reticulate's NumPy bridge, so they work whichever NumPy ABI reticulate was
compiled against (reticulate < 1.36 cannot convert NumPy 2 arrays).
"""

import numpy as np


def array_from_r(buf, dim, dtype):
    """Builds a NumPy array from R's doubles in column-major order."""
    values = np.frombuffer(bytes(buf), dtype=np.float64)
    values = values.reshape(tuple(int(d) for d in dim), order="F")
    return np.ascontiguousarray(values.astype(dtype))


def array_to_r(x):
    """Returns (float64 bytes in column-major order, dims, R type).

    A bytearray, because reticulate converts it to an R raw vector.
    """
    import keras

    values = np.asarray(keras.ops.convert_to_numpy(x))
    if values.dtype == np.bool_:
        kind = "logical"
    elif values.dtype.kind in "iu":
        kind = "integer"
    else:
        kind = "double"
    flat = np.asarray(values, dtype=np.float64).ravel(order="F")
    return bytearray(flat.tobytes()), [int(d) for d in values.shape], kind


def shape_of(x):
    """The shape of a tensor as a list of ints, None where unknown."""
    return [None if d is None else int(d) for d in tuple(x.shape)]


def is_tensor_like(x):
    """Whether a layer can be called on `x`."""
    import keras

    return bool(
        isinstance(x, (keras.KerasTensor, np.ndarray)) or keras.ops.is_tensor(x)
    )


def is_sequential(x):
    import keras

    return isinstance(x, keras.Sequential)


def is_model(x):
    import keras

    return isinstance(x, keras.Model)
