"""The R surface of fastlstm, driven from Python through rpy2."""

import pathlib
import re

import keras
import numpy as np
import pytest

import fastlstm

REFERENCE = pathlib.Path("/work/shared/reference/layer_lstm.md")


def test_layer_lstm_builds_a_fastlstm_lstm_with_the_given_config(from_r):
    layer = from_r("layer_lstm(units = 4, dropout = 0.1)")
    assert isinstance(layer, fastlstm.LSTM)
    assert isinstance(layer, keras.layers.LSTM)
    config = layer.get_config()
    expected = fastlstm.LSTM(4, dropout=0.1).get_config()
    for key in ("units", "dropout", "recurrent_dropout", "activation",
                "recurrent_activation", "use_cudnn", "return_sequences",
                "return_state", "stateful", "unroll", "use_bias"):
        assert config[key] == expected[key], key
    assert type(config["units"]) is int
    assert config["units"] == 4 and config["dropout"] == 0.1


def test_only_supplied_arguments_are_forwarded_and_converted(from_r):
    layer = from_r(
        'layer_lstm(units = 3, seed = 5, use_cudnn = FALSE, '
        'return_sequences = TRUE, name = "r_lstm")'
    )
    assert layer.name == "r_lstm"
    assert layer.use_cudnn is False
    assert layer.return_sequences is True
    assert layer.get_config()["seed"] == 5


def test_r_composition_matches_the_python_layer_on_the_same_weights(r, from_r):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 5)).astype("float32")
    import __main__

    __main__.x = x
    result = from_r(
        "x <- reticulate::import_main()$x\n"
        "lstm <- layer_lstm(units = 6, return_sequences = TRUE, return_state = TRUE)\n"
        "c(out, h, c) %<-% (x |> lstm())\n"
        "list(lstm, out, h, c)"
    )
    r_layer, out, h, c = result
    assert isinstance(r_layer, fastlstm.LSTM)

    py_layer = fastlstm.LSTM(6, return_sequences=True, return_state=True)
    py_layer.build(x.shape)
    py_layer.set_weights(r_layer.get_weights())
    py_out, py_h, py_c = py_layer(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out),
                               keras.ops.convert_to_numpy(py_out), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h),
                               keras.ops.convert_to_numpy(py_h), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c),
                               keras.ops.convert_to_numpy(py_c), atol=1e-5)

    keras_layer = keras.layers.LSTM(6, return_sequences=True)
    keras_layer.build(x.shape)
    keras_layer.set_weights(r_layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out),
                               keras.ops.convert_to_numpy(keras_layer(x)),
                               atol=1e-5)


def test_r_arrays_arrive_in_python_unchanged(from_r):
    values = from_r("op_convert_to_tensor(array(as.double(1:24), c(2, 3, 4)))")
    expected = np.arange(1, 25, dtype="float64").reshape((2, 3, 4), order="F")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(values), expected)


def test_sequential_composition_adds_to_the_same_model(from_r):
    model = from_r(
        "model <- keras_model_sequential(input_shape = c(10, 8))\n"
        "model |> layer_lstm(16) |> layer_dense(1)\n"
        "model"
    )
    assert isinstance(model, keras.Sequential)
    assert [type(layer) for layer in model.layers] == [
        fastlstm.LSTM, keras.layers.Dense]
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("code, argument", [
    ("layer_lstm()", "`units`"),
    ("layer_lstm(units = -2)", "`units`"),
    ("layer_lstm(units = 4, dropout = 1.5)", "`dropout`"),
    ("layer_lstm(units = 4, recurrent_dropout = -1)", "`recurrent_dropout`"),
    ('layer_lstm(units = 4, use_cudnn = "always")', "`use_cudnn`"),
    ('layer_lstm("text", 4)', "`object`"),
    ("c(a, b) %<-% list(1, 2, 3)", "`%<-%`"),
])
def test_r_errors_name_the_r_argument(r_error, code, argument):
    message = r_error(code)
    assert argument in message
    assert not re.search(r"\bself\.", message)
    assert "py_last_error" not in message


def test_python_errors_are_translated(r_error):
    message = r_error('layer_lstm(units = 4, activation = "no_such_thing")')
    assert "activation" in message and "no_such_thing" in message
    assert "py_last_error" not in message


def _reference_example():
    """The seed's example code and the output the page prints."""
    text = REFERENCE.read_text()
    block = text[text.index("For example:"):text.index("## Usage")]
    code, printed = [], []
    for line in block.splitlines():
        if not line.startswith("    "):
            continue
        line = line[4:]
        if line.startswith("## "):
            printed.append(line[3:])
        else:
            code.append(line)
    return "\n".join(code), printed


def test_the_seed_example_prints_what_the_page_prints(r):
    code, printed = _reference_example()
    assert printed == ["shape(32, 4)", "shape(32, 10, 4)", "shape(32, 4)",
                       "shape(32, 4)"]
    lines = r.printed(code)
    assert lines == printed


def test_lstm_plan_is_fastlstm_plan(from_r):
    plan = from_r(
        "lstm <- layer_lstm(units = 4)\n"
        "lstm_plan(lstm, random_uniform(c(8, 5, 3)), device = 'gpu')"
    )
    assert isinstance(plan, fastlstm.Plan)
    assert plan.kernel == "cudnn"
    assert plan.device == "gpu"
    assert re.search("cudnn", str(plan))


def test_an_r_array_reaches_the_layer_exactly(from_r):
    """A layer called from R on an R array (reticulate's own conversion, no
    bridge) gives what the same layer gives on the same NumPy array."""
    layer, out = from_r(
        "x <- array(seq(-1, 1, length.out = 2 * 5 * 3), c(2, 5, 3))\n"
        "lstm <- layer_lstm(units = 4)\n"
        "list(lstm, lstm(x))"
    )
    x = np.linspace(-1, 1, 2 * 5 * 3).reshape((2, 5, 3), order="F")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out),
                               keras.ops.convert_to_numpy(layer(x)),
                               atol=1e-6)


def test_layer_rnn_with_an_lstm_cell_is_fastlstm(from_r):
    layer = from_r(
        "layer_rnn(cell = rnn_cell_lstm(3, dropout = 0.25), return_sequences = TRUE)"
    )
    assert type(layer) is fastlstm.LSTM
    assert layer.units == 3 and layer.return_sequences is True
    assert layer.cell.dropout == 0.25


def test_layer_bidirectional_runs_fastlstm_both_ways(from_r):
    layer = from_r("layer_bidirectional(layer = layer_lstm(units = 2))")
    assert isinstance(layer, keras.layers.Bidirectional)
    assert type(layer.forward_layer) is fastlstm.LSTM
    assert type(layer.backward_layer) is fastlstm.LSTM
    assert layer.backward_layer.go_backwards is True
