"""fastlstm.LSTMCell: keras.layers.LSTMCell with strict argument checks."""

import keras

from fastlstm import _validation


@keras.saving.register_keras_serializable(package="fastlstm")
class LSTMCell(keras.layers.LSTMCell):
    """Cell class for the LSTM layer, for use in `keras.layers.RNN`.

    The same cell as `keras.layers.LSTMCell` (weights, gate order i, f, c, o,
    numbers), except that bad arguments raise a `ValueError` naming the
    argument instead of being clipped. `fastlstm.LSTM` runs whole sequences
    through fused kernels; a cell runs one step at a time.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        dropout=0.0,
        recurrent_dropout=0.0,
        **kwargs,
    ):
        super().__init__(
            _validation.check_units(units),
            activation=_validation.check_activation("activation", activation),
            recurrent_activation=_validation.check_activation(
                "recurrent_activation", recurrent_activation
            ),
            dropout=_validation.check_rate("dropout", dropout),
            recurrent_dropout=_validation.check_rate(
                "recurrent_dropout", recurrent_dropout
            ),
            **kwargs,
        )
