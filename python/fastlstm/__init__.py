"""fastlstm: a drop-in keras.layers.LSTM that picks the fastest correct kernel."""
__version__ = "0.1.0"
