"""fastlstm.convert_model: Keras LSTMs swapped everywhere in a model, same
outputs, the original untouched, and a report of what ran and what did not."""

import keras
import numpy as np
import pytest

import fastlstm
from helpers import ATOL, to_numpy

RNG = np.random.default_rng(12)


def left_padded(batch, steps, features):
    """Inputs whose leading steps are zeros in some rows, for Masking(0.0)."""
    x = RNG.standard_normal((batch, steps, features)).astype("float32")
    for row, pad in enumerate([0, 2, steps - 1, 1][:batch]):
        x[row, :pad] = 0.0
    return x


def assert_same_outputs(model, converted, x):
    np.testing.assert_allclose(
        to_numpy(converted(x)), to_numpy(model(x)), atol=ATOL, rtol=1e-4
    )


def lstm_types(model):
    """Layer path -> class name, for every LSTM in the model."""
    from fastlstm.convert import _walk_layers

    return {
        "/".join(path): type(layer).__name__
        for path, layer in _walk_layers(model)
        if isinstance(layer, keras.layers.LSTM)
    }


def test_sequential_with_a_mask(capsys):
    model = keras.Sequential([
        keras.Input((7, 3)),
        keras.layers.Masking(0.0),
        keras.layers.LSTM(5, return_sequences=True, name="first"),
        keras.layers.LSTM(4, go_backwards=True, name="second"),
        keras.layers.Dense(2),
    ])
    before = [w.copy() for w in model.get_weights()]
    converted = fastlstm.convert_model(model)

    assert type(converted) is keras.Sequential and converted is not model
    assert lstm_types(converted) == {"first": "LSTM", "second": "LSTM"}
    assert all(type(converted.get_layer(n)) is fastlstm.LSTM for n in ("first", "second"))
    assert_same_outputs(model, converted, left_padded(4, 7, 3))
    # The original is untouched: its own classes, weights and no report.
    assert all(type(model.get_layer(n)) is keras.layers.LSTM for n in ("first", "second"))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not hasattr(model, "fastlstm_report")
    # The weights are copies, not shared.
    converted.get_layer("first").cell.kernel.assign(
        np.zeros((3, 20), "float32")
    )
    np.testing.assert_array_equal(model.get_layer("first").get_weights()[0], before[0])

    report = converted.fastlstm_report
    assert [(e.path, e.name) for e in report.swapped] == [
        ("first", "first"), ("second", "second"),
    ]
    assert report.skipped == ()
    for e in report.swapped:
        layer = converted.get_layer(e.name)
        # Each layer's own input: "second" takes the 5 features "first" gives.
        x = np.zeros((8, 7, layer.cell.kernel.shape[0]), "float32")
        assert e.kernel == fastlstm.plan(layer, x).kernel
        assert e.plan.kernel == e.kernel
    assert str(report) in capsys.readouterr().out


def test_functional_with_nested_models_and_bidirectional():
    # Layer names below are Keras's automatic ones, counted per session.
    keras.backend.clear_session()
    encoder = keras.Sequential(
        [keras.Input((6, 3)), keras.layers.LSTM(4, return_sequences=True, name="enc")],
        name="encoder",
    )
    inp = keras.Input((6, 3))
    x = keras.layers.Masking(0.0)(encoder(inp))
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_sequences=True), name="bi"
    )(x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(2),
        backward_layer=keras.layers.LSTM(2, go_backwards=True, name="back"),
        merge_mode="sum",
        name="bi_sum",
    )(x)
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    converted = fastlstm.convert_model(model, verbose=False)

    swapped = {
        "encoder/enc", "bi/forward_lstm", "bi/backward_lstm",
        "bi_sum/forward_lstm_1", "bi_sum/back",
    }
    assert lstm_types(model) == dict.fromkeys(swapped, "LSTM")
    assert {e.path for e in converted.fastlstm_report.swapped} == swapped
    from fastlstm.convert import _walk_layers

    for path, layer in _walk_layers(converted):
        if "/".join(path) in swapped:
            assert type(layer) is fastlstm.LSTM
    assert_same_outputs(model, converted, left_padded(4, 6, 3))


def test_time_distributed():
    inp = keras.Input((3, 5, 2))
    x = keras.layers.TimeDistributed(keras.layers.LSTM(4, name="inner"), name="td")(inp)
    model = keras.Model(inp, x)
    converted = fastlstm.convert_model(model, verbose=False)
    assert type(converted.get_layer("td").layer) is fastlstm.LSTM
    assert [e.path for e in converted.fastlstm_report.swapped] == ["td/inner"]
    x = RNG.standard_normal((2, 3, 5, 2)).astype("float32")
    assert_same_outputs(model, converted, x)


def test_keras_file_path(tmp_path):
    model = keras.Sequential([
        keras.Input((5, 2)), keras.layers.LSTM(3, name="lstm"), keras.layers.Dense(1),
    ])
    path = tmp_path / "keras_lstm.keras"
    model.save(path)
    for given in (path, str(path)):
        converted = fastlstm.convert_model(given, verbose=False)
        assert type(converted.get_layer("lstm")) is fastlstm.LSTM
        assert_same_outputs(model, converted, RNG.standard_normal((3, 5, 2)).astype("float32"))


def test_custom_subclass_and_inner_lstm_left_alone_and_named():
    class MyLSTM(keras.layers.LSTM):  # unregistered, as in a user's script
        def call(self, sequences, initial_state=None, mask=None, training=False):
            out = super().call(sequences, initial_state, mask, training)
            return out * 2.0

    class Encoder(keras.layers.Layer):  # builds its LSTM in its own code
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.lstm = keras.layers.LSTM(units, name="inner")

        def build(self, input_shape):
            self.lstm.build(input_shape)

        def call(self, x):
            return self.lstm(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    inp = keras.Input((4, 3))
    x = MyLSTM(3, return_sequences=True, name="mine")(inp)
    x = keras.layers.LSTM(3, return_sequences=True, name="plain")(x)
    model = keras.Model(inp, Encoder(2, name="encoder")(x))
    converted = fastlstm.convert_model(model, verbose=False)

    report = converted.fastlstm_report
    assert [e.path for e in report.swapped] == ["plain"]
    skipped = {e.path: e.reason for e in report.skipped}
    assert set(skipped) == {"mine", "encoder/inner"}
    assert "subclass of keras.layers.LSTM" in skipped["mine"]
    assert "MyLSTM" in skipped["mine"]
    assert "parent layer's own code" in skipped["encoder/inner"]
    assert type(converted.get_layer("mine")) is MyLSTM
    assert type(converted.get_layer("encoder").lstm) is keras.layers.LSTM
    assert type(converted.get_layer("plain")) is fastlstm.LSTM
    for e in report.skipped:
        assert e.path in str(report) and e.reason in str(report)
    assert_same_outputs(model, converted, RNG.standard_normal((2, 4, 3)).astype("float32"))


def test_converting_a_converted_model_changes_nothing():
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3, name="lstm")])
    once = fastlstm.convert_model(model, verbose=False)
    twice = fastlstm.convert_model(once, verbose=False)
    assert twice is not once
    assert twice.get_config() == once.get_config()
    assert twice.fastlstm_report.swapped == ()
    assert [(e.path, e.reason) for e in twice.fastlstm_report.skipped] == [
        ("lstm", "already a fastlstm.LSTM")
    ]
    assert "0 LSTM layers swapped, 1 left alone" in str(twice.fastlstm_report)
    x = RNG.standard_normal((2, 5, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(twice(x)), to_numpy(once(x)))


def test_use_cudnn_is_carried_over():
    # Keras's LSTM does not put use_cudnn in its config; the layer has it.
    model = keras.Sequential([
        keras.Input((5, 2)),
        keras.layers.LSTM(3, return_sequences=True, use_cudnn=False, name="off"),
        keras.layers.LSTM(3, use_cudnn=True, name="on"),
    ])
    converted = fastlstm.convert_model(model, verbose=False)
    assert converted.get_layer("off").use_cudnn is False
    assert converted.get_layer("on").use_cudnn is True
    off, on = converted.fastlstm_report.swapped
    assert off.kernel != "cudnn"
    # No GPU here: cuDNN cannot run, and the report says so instead of a kernel.
    assert on.kernel is None and on.plan is None
    assert "use_cudnn=True" in on.note and "the device is a GPU" in on.note
    assert "no plan: Received use_cudnn=True" in str(converted.fastlstm_report)


def test_a_configuration_fastlstm_refuses_is_left_alone():
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3, name="lstm")])
    model.get_layer("lstm").cell.dropout = 1.5  # set past Keras's clipping
    converted = fastlstm.convert_model(model, verbose=False)
    assert converted.fastlstm_report.swapped == ()
    (skipped,) = converted.fastlstm_report.skipped
    assert skipped.path == "lstm"
    assert skipped.reason.startswith("fastlstm.LSTM refuses its configuration")
    assert "`dropout`" in skipped.reason and "1.5" in skipped.reason
    assert type(converted.get_layer("lstm")) is keras.layers.LSTM


def test_compiled_model_keeps_its_compile_settings_with_a_fresh_optimizer(tmp_path):
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = RNG.standard_normal((8, 5, 2)).astype("float32")
    y = RNG.standard_normal((8, 1)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    converted = fastlstm.convert_model(model, verbose=False)
    assert converted.compiled and converted.loss == "mse"
    assert float(to_numpy(converted.optimizer.learning_rate)) == pytest.approx(0.01)
    assert int(to_numpy(converted.optimizer.iterations)) == 0
    converted.fit(x, y, epochs=1, verbose=0)
    # A converted model saves and loads as fastlstm.
    converted.save(tmp_path / "converted.keras")
    loaded = keras.saving.load_model(tmp_path / "converted.keras")
    assert type(loaded.layers[0]) is fastlstm.LSTM
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(converted(x)))


def test_model_or_path_must_be_a_model_or_a_path():
    with pytest.raises(TypeError, match="`model_or_path`: expected a keras.Model or the path"):
        fastlstm.convert_model(keras.layers.LSTM(3))
    with pytest.raises(ValueError, match="nowhere.keras"):
        fastlstm.convert_model("nowhere.keras")


# keras.layers.RNN over one LSTMCell is the same recurrence as an LSTM layer:
# convert_model and convert_layer swap it too (R's layer_rnn() relies on it).


def rnn_layers(model):
    """Layer path -> class name, for every RNN (LSTM included) in the model."""
    from fastlstm.convert import _walk_layers

    return {
        "/".join(path): type(layer).__name__
        for path, layer in _walk_layers(model)
        if isinstance(layer, keras.layers.RNN)
    }


@pytest.mark.parametrize("cell_class", [keras.layers.LSTMCell, fastlstm.LSTMCell])
def test_rnn_over_one_lstm_cell_is_swapped_with_the_same_outputs(cell_class):
    model = keras.Sequential([
        keras.Input((7, 3)),
        keras.layers.Masking(0.0),
        keras.layers.RNN(cell_class(5), return_sequences=True, name="seq"),
        keras.layers.RNN(cell_class(4), go_backwards=True, name="last"),
        keras.layers.Dense(2),
    ])
    converted = fastlstm.convert_model(model, verbose=False)

    assert rnn_layers(converted) == {"seq": "LSTM", "last": "LSTM"}
    for name in ("seq", "last"):
        layer = converted.get_layer(name)
        assert type(layer) is fastlstm.LSTM
        assert layer.units == model.get_layer(name).cell.units
    assert converted.get_layer("seq").return_sequences is True
    assert converted.get_layer("last").go_backwards is True
    assert [e.path for e in converted.fastlstm_report.swapped] == ["seq", "last"]
    assert converted.fastlstm_report.skipped == ()
    assert_same_outputs(model, converted, left_padded(4, 7, 3))
    # The original keeps its RNN layers.
    assert rnn_layers(model) == {"seq": "RNN", "last": "RNN"}


def test_rnn_cell_configuration_and_state_outputs_carry_over():
    cell = keras.layers.LSTMCell(
        3, activation="relu", recurrent_activation="hard_sigmoid",
        unit_forget_bias=False, use_bias=False, dropout=0.25, seed=7,
    )
    inp = keras.Input((6, 2))
    outputs = keras.layers.RNN(cell, return_state=True, name="rnn")(inp)
    model = keras.Model(inp, outputs)
    converted = fastlstm.convert_model(model, verbose=False)

    layer = converted.get_layer("rnn")
    assert type(layer) is fastlstm.LSTM
    config = layer.get_config()
    assert config["activation"] == "relu"
    assert config["recurrent_activation"] == "hard_sigmoid"
    assert config["use_bias"] is False and config["unit_forget_bias"] is False
    assert config["dropout"] == 0.25 and config["seed"] == 7
    assert config["return_state"] is True and config["name"] == "rnn"
    x = RNG.standard_normal((3, 6, 2)).astype("float32")
    for got, want in zip(converted(x), model(x)):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=ATOL, rtol=1e-4)


def test_rnn_over_a_stack_of_cells_stays_and_is_named():
    model = keras.Sequential([
        keras.Input((5, 3)),
        keras.layers.RNN(
            [keras.layers.LSTMCell(4), keras.layers.LSTMCell(2)], name="stacked"
        ),
        keras.layers.Dense(2),
    ])
    converted = fastlstm.convert_model(model, verbose=False)
    assert type(converted.get_layer("stacked")) is keras.layers.RNN
    assert converted.fastlstm_report.swapped == ()
    (skipped,) = converted.fastlstm_report.skipped
    assert skipped.path == "stacked"
    assert "stack of cells" in skipped.reason
    assert_same_outputs(model, converted, RNG.standard_normal((2, 5, 3)).astype("float32"))


def test_rnn_over_other_cells_is_not_reported():
    model = keras.Sequential([
        keras.Input((5, 3)),
        keras.layers.RNN(keras.layers.GRUCell(2), name="gru"),
    ])
    converted = fastlstm.convert_model(model, verbose=False)
    assert type(converted.get_layer("gru")) is keras.layers.RNN
    assert converted.fastlstm_report.swapped == ()
    assert converted.fastlstm_report.skipped == ()


def test_rnn_over_a_custom_lstm_cell_subclass_is_left_alone():
    class MyCell(keras.layers.LSTMCell):  # unregistered, as in a user's script
        pass

    model = keras.Sequential([
        keras.Input((5, 3)), keras.layers.RNN(MyCell(2), name="mine"),
    ])
    converted = fastlstm.convert_model(model, verbose=False)
    (skipped,) = converted.fastlstm_report.skipped
    assert skipped.path == "mine"
    assert "subclass of keras.layers.LSTMCell" in skipped.reason
    assert "MyCell" in skipped.reason


def test_convert_layer_keeps_a_built_cells_weights_and_numbers():
    from fastlstm.convert import convert_layer

    cell = keras.layers.LSTMCell(4)
    rnn = keras.layers.RNN(cell, return_sequences=True, name="rnn")
    x = RNG.standard_normal((3, 6, 2)).astype("float32")
    expected = to_numpy(rnn(x))  # builds the cell
    layer = convert_layer(rnn)
    assert type(layer) is fastlstm.LSTM and layer is not rnn
    assert layer.name == "rnn" and layer.return_sequences is True
    for a, b in zip(layer.get_weights(), rnn.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=ATOL, rtol=1e-4)


def test_convert_layer_on_an_unbuilt_rnn_keeps_its_input_shape():
    from fastlstm.convert import convert_layer

    with pytest.warns(UserWarning, match="input_shape"):
        rnn = keras.layers.RNN(fastlstm.LSTMCell(3), input_shape=(10, 2))
    layer = convert_layer(rnn)
    assert type(layer) is fastlstm.LSTM and not layer.built
    model = keras.Sequential([layer])  # the input_shape becomes the Input
    assert tuple(model.input_shape) == (None, 10, 2)


def test_convert_layer_says_why_it_cannot():
    from fastlstm.convert import convert_layer

    gru = keras.layers.RNN(keras.layers.GRUCell(2), name="gru")
    assert convert_layer(gru, strict=False) is gru
    with pytest.raises(ValueError, match="`layer`.*'gru' is neither a keras.layers.LSTM"):
        convert_layer(gru)
    stacked = keras.layers.RNN([keras.layers.LSTMCell(2), keras.layers.LSTMCell(2)])
    assert convert_layer(stacked, strict=False) is stacked
    with pytest.raises(ValueError, match="a keras.layers.RNN over a stack of cells"):
        convert_layer(stacked)
    with pytest.raises(ValueError, match="not a Keras layer"):
        convert_layer("lstm")
