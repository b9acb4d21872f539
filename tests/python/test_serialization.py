"""Config round trips, .keras files without custom_objects, weight swaps."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import fastlstm
from helpers import forward, to_numpy


def test_get_config_round_trip_keeps_use_cudnn():
    layer = fastlstm.LSTM(
        7, dropout=0.25, recurrent_dropout=0.1, return_sequences=True,
        go_backwards=True, use_cudnn=False, zero_output_for_mask=True, seed=3,
    )
    config = layer.get_config()
    assert config["use_cudnn"] is False
    clone = fastlstm.LSTM.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone, keras.layers.LSTM)


@pytest.mark.parametrize("use_cudnn", ["auto", True, False])
def test_keras_file_loads_without_custom_objects(tmp_path, use_cudnn):
    inp = keras.Input((6, 3))
    out = keras.layers.Dense(2)(fastlstm.LSTM(5, use_cudnn=use_cudnn)(inp))
    model = keras.Model(inp, out)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    lstm = loaded.layers[1]
    assert type(lstm) is fastlstm.LSTM
    assert lstm.use_cudnn == use_cudnn
    if use_cudnn is not True:  # True needs a GPU to call
        x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype("float32")
        np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(loaded(x)))


FRESH_LOAD = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    path, x_path = sys.argv[1:]
    result = {"imported_before": "fastlstm" in sys.modules}
    try:
        keras.saving.load_model(path)
    except Exception as e:
        result["without_fastlstm"] = [type(e).__name__, str(e)]
    import fastlstm
    model = keras.saving.load_model(path)
    result["type"] = type(model.layers[1]).__module__ + "." + type(model.layers[1]).__name__
    y = keras.ops.convert_to_numpy(model(np.load(x_path)))
    result["y"] = np.asarray(y).tolist()
    print(json.dumps(result))
""")


def test_keras_file_in_a_fresh_process_loads_once_fastlstm_is_imported(tmp_path):
    # What the README says about loading: Keras alone cannot find the class
    # (it imports modules of its own packages only); after `import fastlstm`
    # the file loads with no custom_objects.
    inp = keras.Input((6, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(fastlstm.LSTM(5)(inp)))
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(2).standard_normal((2, 6, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND=keras.config.backend())
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, str(tmp_path / "model.keras"), str(tmp_path / "x.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["imported_before"] is False
    kind, message = result["without_fastlstm"]
    assert kind == "TypeError"
    assert "Could not locate class 'LSTM'" in message
    assert "'module': 'fastlstm.layer'" in message
    assert result["type"] == "fastlstm.layer.LSTM"
    np.testing.assert_allclose(np.asarray(result["y"]), to_numpy(model(x)), atol=1e-6)


def test_weights_swap_with_keras_both_ways():
    x = np.random.default_rng(1).standard_normal((3, 6, 4)).astype("float32")
    ours, theirs = fastlstm.LSTM(5), keras.layers.LSTM(5)
    ours.build(x.shape)
    theirs.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [(4, 20), (5, 20), (20,)]
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(forward(ours, x)[0], forward(theirs, x)[0], atol=2e-5)
    fresh = keras.layers.LSTM(5)
    fresh.build(x.shape)
    ours.set_weights(fresh.get_weights())
    np.testing.assert_allclose(forward(ours, x)[0], forward(fresh, x)[0], atol=2e-5)
    assert [v.path for v in ours.weights] == [
        p.replace(theirs.name, ours.name) for p in (v.path for v in theirs.weights)
    ]


def test_keras_weights_file_loads_into_fastlstm(tmp_path):
    def model(lstm):
        inp = keras.Input((6, 3))
        return keras.Model(inp, keras.layers.Dense(1)(lstm(inp)))

    theirs, ours = model(keras.layers.LSTM(4)), model(fastlstm.LSTM(4))
    theirs.save_weights(tmp_path / "w.weights.h5")
    ours.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unit_forget_bias_puts_ones_in_the_forget_slice():
    layer = fastlstm.LSTM(3)
    layer.build((1, 2, 2))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])


def test_cell_serializes_and_runs_in_a_keras_rnn(tmp_path):
    cell = fastlstm.LSTMCell(4)
    rnn = keras.layers.RNN(cell)
    inp = keras.Input((5, 3))
    model = keras.Model(inp, rnn(inp))
    model.save(tmp_path / "cell.keras")
    loaded = keras.saving.load_model(tmp_path / "cell.keras")
    assert type(loaded.layers[1].cell) is fastlstm.LSTMCell
    x = np.ones((2, 5, 3), "float32")
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(loaded(x)), atol=1e-6)
