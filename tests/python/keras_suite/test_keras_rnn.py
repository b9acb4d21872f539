"""Keras's LSTM, Bidirectional and stacked-cell test cases, run on
fastlstm.LSTM and fastlstm.LSTMCell.

The test classes are imported from the installed keras package (its wheel
ships them), so the suite follows the installed version and no Keras file is
copied here; conftest.py makes `layers.LSTM` and `layers.LSTMCell`
fastlstm's. Keras's rnn_test.py has no LSTM case (it tests
`keras.layers.RNN` with cells of its own); stacked_rnn_cells_test.py stacks
LSTMCells.
"""

import keras
from keras.src.layers.rnn import bidirectional_test
from keras.src.layers.rnn import lstm_test
from keras.src.layers.rnn.bidirectional_test import SimpleRNNTest as BidirectionalTest  # noqa: F401
from keras.src.layers.rnn.lstm_test import LSTMTest  # noqa: F401
from keras.src.layers.rnn import stacked_rnn_cells_test
from keras.src.layers.rnn.stacked_rnn_cells_test import StackedRNNTest  # noqa: F401

import fastlstm


def test_keras_tests_build_fastlstm_layers():
    """Without the swap these tests would pass on Keras's own LSTM."""
    for module in (lstm_test, bidirectional_test, stacked_rnn_cells_test):
        assert type(module.layers.LSTM(2)) is fastlstm.LSTM
        assert type(module.layers.LSTMCell(2)) is fastlstm.LSTMCell
    assert type(keras.layers.LSTM(2)) is fastlstm.LSTM
