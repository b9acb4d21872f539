"""Export: a model with fastlstm exports as one with keras.layers.LSTM does,
with Keras's numbers on every mask layout, and the artifact runs where
fastlstm is not installed. (PyTorch's torch.export, torch.onnx and
torch.jit.trace: test_native_torch.py.)"""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import fastlstm
from helpers import BACKEND, make_mask

MASKS = ["none", "left", "right", "holes"]

# Runs an exported SavedModel (TensorFlow's own, or JAX's through jax2tf) on
# the saved inputs in a fresh TensorFlow process; argv[2] says whether that
# process imports fastlstm.
SAVED_MODEL_LOADER = """
import sys
import numpy as np
import tensorflow as tf
if sys.argv[2] == "with fastlstm":
    import fastlstm
loaded = tf.saved_model.load(sys.argv[1])
print(np.asarray(loaded.serve(np.load(sys.argv[1] + "/x.npy"))).tolist())
assert ("fastlstm" in sys.modules) == (sys.argv[2] == "with fastlstm")
"""


# The LSTM of each exported model.
LAYERS = {
    "last output": lambda lstm: lstm(4),
    "return_sequences": lambda lstm: lstm(4, return_sequences=True),
    "go_backwards": lambda lstm: lstm(4, go_backwards=True),
    "Bidirectional": lambda lstm: keras.layers.Bidirectional(lstm(4, return_sequences=True)),
}


def case(mask_kind, layer="last output", batch=8, steps=6):
    """A model Input -> [Masking] -> fastlstm.LSTM -> Dense, inputs whose
    zeros give the mask, and the predictions of the same model with
    keras.layers.LSTM and the same weights."""
    x = np.random.default_rng(2).standard_normal((batch, steps, 3)).astype("float32")
    mask = make_mask(mask_kind, batch, steps, seed=3)
    if mask is not None:
        x[~mask] = 0.0

    def model(lstm):
        inp = keras.Input((steps, 3))
        h = keras.layers.Masking(0.0)(inp) if mask is not None else inp
        return keras.Model(inp, keras.layers.Dense(1)(LAYERS[layer](lstm)(h)))

    fast, reference = model(fastlstm.LSTM), model(keras.layers.LSTM)
    reference.set_weights(fast.get_weights())
    fast.predict(x[:2], verbose=0)  # a called model, as Keras's exports need
    return fast, x, np.asarray(reference.predict(x, verbose=0))


def onnx_ops(graph):
    """The op types of an ONNX graph and of its subgraphs (If's branches,
    Loop's body)."""
    found = []
    for node in graph.node:
        found.append(node.op_type)
        for attribute in node.attribute:
            if attribute.g.node:
                found += onnx_ops(attribute.g)
    return found


def planned_while(export):
    """The plans made while `export()` runs."""
    plans = []
    real = fastlstm.LSTM._decide

    def recording(self, *args, **kwargs):
        plans.append(real(self, *args, **kwargs))
        return plans[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastlstm.LSTM, "_decide", recording)
        export()
    return plans


def load_saved_model(path, x, how="without fastlstm"):
    """The SavedModel's outputs for `x`, from a fresh TensorFlow process."""
    np.save(os.path.join(path, "x.npy"), x)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_LOADER, path, how],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.array(eval(done.stdout))


if BACKEND in ("tensorflow", "jax"):  # Keras writes SavedModels on these

    @pytest.mark.parametrize("mask_kind", MASKS)
    def test_saved_model_runs_without_fastlstm_with_kerass_numbers(tmp_path, mask_kind):
        model, x, want = case(mask_kind)
        path = str(tmp_path / "exported")
        plans = planned_while(lambda: model.export(path, verbose=False))
        assert plans and all(p.kernel == "loop" for p in plans), [p.kernel for p in plans]
        assert "(found: traced by model.export(format='tf_saved_model'))" in str(plans[-1])
        np.testing.assert_allclose(load_saved_model(path, x), want, atol=1e-5)


def test_outside_an_export_the_fused_kernel_runs():
    model, x, _ = case("left")
    mask = (x != 0).any(-1)
    assert fastlstm.plan(model.layers[2], x, mask=mask).kernel in ("native", "cudnn")
    with fastlstm.exporting(by="my exporter"):
        plan = fastlstm.plan(model.layers[2], x, mask=mask)
    assert plan.kernel == "loop"
    assert "(found: traced by my exporter)" in str(plan)
    assert fastlstm.plan(model.layers[2], x, mask=mask).kernel in ("native", "cudnn")


def test_an_export_that_keeps_the_compiled_kernel_is_an_explicit_choice():
    model, x, _ = case("left")
    mask = (x != 0).any(-1)
    with fastlstm.exporting(portable=False):
        assert fastlstm.plan(model.layers[2], x, mask=mask).kernel in ("native", "cudnn")


if BACKEND == "tensorflow":

    def test_saved_model_with_the_compiled_kernel_needs_fastlstm(tmp_path):
        """Opting in keeps fastlstm's op in the graph: a TensorFlow that
        imports fastlstm serves it, one that does not stops clearly."""
        model, x, want = case("left")
        path = str(tmp_path / "fast")
        with fastlstm.exporting(portable=False):
            model.export(path, verbose=False)
        np.testing.assert_allclose(load_saved_model(path, x, "with fastlstm"), want, atol=1e-5)
        with pytest.raises(AssertionError, match="Op type not registered 'FastlstmLstm"):
            load_saved_model(path, x)

    def test_tf_saved_model_save_traces_a_portable_graph(tmp_path):
        """tf.saved_model.save() itself is an export, with no Keras around."""
        import tensorflow as tf

        model, x, want = case("left")

        class Serving(tf.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            @tf.function(input_signature=[tf.TensorSpec((None, 6, 3), tf.float32)])
            def serve(self, x):
                return self.model(x)

        path = str(tmp_path / "module")
        plans = planned_while(lambda: tf.saved_model.save(Serving(model), path))
        assert plans and all(p.kernel == "loop" for p in plans)
        assert "traced by tf.saved_model.save" in str(plans[-1])
        np.testing.assert_allclose(load_saved_model(path, x), want, atol=1e-5)

    @pytest.mark.parametrize("mask_kind", MASKS)
    def test_litert_file_runs_with_kerass_numbers(tmp_path, mask_kind):
        import tensorflow as tf

        model, x, want = case(mask_kind)
        path = str(tmp_path / "model.tflite")
        model.export(path, format="litert", verbose=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation
            interpreter = tf.lite.Interpreter(model_path=path)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, want, atol=1e-5)


# Keras's ONNX export: tf2onnx on TensorFlow, torch.onnx on PyTorch, jax2onnx
# on JAX (where keras.layers.LSTM, too, exports and gives its predict()
# numbers on every one of these mask layouts).
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("mask_kind", MASKS + ["empty"])
def test_onnx_file_runs_in_onnxruntime_with_kerass_numbers(tmp_path, mask_kind, layer):
    import onnx
    import onnxruntime

    model, x, want = case(mask_kind, layer)
    if BACKEND == "jax":
        model(x[:1])  # predict() on JAX leaves the model "never called" for Keras's ONNX export
    path = str(tmp_path / "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plans = planned_while(lambda: model.export(path, format="onnx", verbose=False))
    assert "(found: traced by model.export(format='onnx'))" in str(plans[-1])
    ops = onnx_ops(onnx.load(path).graph)
    lstms = 2 if layer == "Bidirectional" else 1
    # tf2onnx, torch.onnx's TorchScript exporter (Keras's for a symbolic
    # batch; dynamo's: below) and jax2onnx write each LSTM layer as one ONNX
    # LSTM node, whatever the mask: no loop is left in the file.
    assert plans and all(p.kernel == "onnx" for p in plans), [p.kernel for p in plans]
    assert ops.count("LSTM") == lstms, ops
    assert not {"Loop", "Scan", "If"} & set(ops), ops
    session = onnxruntime.InferenceSession(path)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # The batch stays symbolic: the file runs on another number of rows.
    got = session.run(None, {session.get_inputs()[0].name: x[3:]})[0]
    np.testing.assert_allclose(got, want[3:], atol=1e-5)


if BACKEND == "torch":

    @pytest.mark.parametrize("layer", list(LAYERS))
    @pytest.mark.parametrize("mask_kind", MASKS + ["empty"])
    def test_torch_onnx_dynamo_exporter_writes_one_lstm_node_with_kerass_numbers(
        tmp_path, mask_kind, layer
    ):
        """torch.onnx.export(dynamo=True), called directly (Keras's
        model.export uses it for a fixed batch, TorchScript's exporter for a
        symbolic one): the same ONNX LSTM node per layer, every mask."""
        import onnx
        import onnxruntime
        import torch

        model, x, want = case(mask_kind, layer)
        path = str(tmp_path / "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plans = planned_while(
                lambda: torch.onnx.export(model, (torch.tensor(x),), path, dynamo=True, verbose=False)
            )
        assert plans and all(p.kernel == "onnx" for p in plans), [p.kernel for p in plans]
        assert "(found: traced by torch.onnx.export)" in str(plans[-1])
        ops = onnx_ops(onnx.load(path).graph)
        assert ops.count("LSTM") == (2 if layer == "Bidirectional" else 1), ops
        assert not {"Loop", "Scan", "If"} & set(ops), ops
        session = onnxruntime.InferenceSession(path)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, want, atol=1e-5)


if BACKEND == "jax":

    @pytest.mark.parametrize("mask_kind", MASKS)
    def test_jax_export_with_a_symbolic_batch_round_trips(mask_kind):
        """jax.export leaves no mark fastlstm could see: fastlstm.exporting()
        says it. The batch stays symbolic (the planner does not compare it
        with a number) and the serialized program gives Keras's numbers."""
        import jax
        import jax.numpy as jnp

        model, x, want = case(mask_kind)
        trainable = [v.value for v in model.trainable_variables]
        other = [v.value for v in model.non_trainable_variables]

        def serve(x):
            return model.stateless_call(trainable, other, x)[0]

        (batch,) = jax.export.symbolic_shape("batch")
        with fastlstm.exporting(by="jax.export"):
            exported = jax.export.export(jax.jit(serve))(
                jax.ShapeDtypeStruct((batch, 6, 3), jnp.float32)
            )
        restored = jax.export.deserialize(exported.serialize())
        np.testing.assert_allclose(np.asarray(restored.call(jnp.asarray(x))), want, atol=1e-5)
