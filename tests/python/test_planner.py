"""The planner: a pure choice of kernel, with every requirement recorded."""

import dataclasses

import keras
import numpy as np
import pytest

import fastlstm
from fastlstm import kernels, planner
from fastlstm import _sequence as seq
from helpers import BACKEND, make_mask

FACTS = dict(
    activation="tanh",
    recurrent_activation="sigmoid",
    use_bias=True,
    unroll=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    implementation=2,
    use_cudnn="auto",
    mask=seq.NO_MASK,
    training=False,
    dtype="float32",
)
CAPABILITIES = kernels.Capabilities(
    backend="torch", device="cpu", native=True, native_why="",
    native_dtypes=("float32",),
)


def decide(native_status=None, **changes):
    """The planner's choice with FACTS and CAPABILITIES, changed by keyword
    (a field of either; `native_status=(loaded, why)`)."""
    caps = {k: changes.pop(k) for k in list(changes) if hasattr(CAPABILITIES, k)}
    if native_status is not None:
        caps["native"], caps["native_why"] = native_status
    capabilities = dataclasses.replace(CAPABILITIES, **caps)
    return planner.decide(capabilities=capabilities, **dict(FACTS, **changes))


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
@pytest.mark.parametrize("mask", [seq.NO_MASK, seq.RIGHT_PADDED, seq.LEFT_PADDED, seq.CONTIGUOUS, seq.RUNTIME])
def test_gpu_runs_cudnn_on_every_backend_for_masks_without_holes(backend, mask):
    assert decide(backend=backend, device="gpu", mask=mask).kernel == "cudnn"


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_mask_with_holes_needs_the_loop(backend):
    plan = decide(backend=backend, device="gpu", mask=seq.HOLES)
    assert plan.kernel == "loop"
    assert [r.text for r in plan.unmet("cudnn")] == ["the mask has no holes (found holes)"]


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
@pytest.mark.parametrize("mask", [seq.NO_MASK, seq.RIGHT_PADDED, seq.LEFT_PADDED, seq.CONTIGUOUS, seq.RUNTIME])
def test_cpu_runs_native_on_every_backend_for_masks_without_holes(backend, mask):
    assert decide(backend=backend, mask=mask).kernel == "native"


def test_native_needs_its_library_loaded_and_says_why_not():
    plan = decide(backend="jax", native_status=(False, "oneDNN is not installed"))
    assert plan.kernel == "loop"
    assert [r.text for r in plan.unmet("native")] == [
        "fastlstm's compiled kernel is loaded (not loaded: oneDNN is not installed)"
    ]


def test_native_needs_one_of_its_dtypes():
    plan = decide(backend="tensorflow", dtype="float64", native_dtypes=("float32",))
    assert plan.kernel == "loop"
    assert [r.text for r in plan.unmet("native")] == [
        "the dtype is float32, float16 or bfloat16 (found float64)"
    ]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_mixed_precision_keeps_the_fused_kernels_computing_in_float32_where_needed(dtype, device):
    plan = decide(device=device, dtype=dtype)
    assert plan.kernel == ("native" if device == "cpu" else "cudnn")
    native = [r.text for r in plan.reasons if r.kernel == "native" and "dtype" in r.text]
    assert native == [f"the dtype is float32, float16 or bfloat16 (found {dtype}, computed in float32 inside)"]
    cudnn = [r.text for r in plan.reasons if r.kernel == "cudnn" and "dtype" in r.text]
    inside = ", computed in float32 inside" if dtype == "bfloat16" else ""
    assert cudnn == [f"the dtype is float16, float32, float64 or bfloat16 (found {dtype}{inside})"]


def test_bfloat16_takes_bf16_products_where_the_cpu_makes_them():
    plan = decide(dtype="bfloat16", native_bf16=True)
    assert plan.kernel == "native" and plan.bf16_products
    native = [r.text for r in plan.reasons if r.kernel == "native" and "dtype" in r.text]
    assert native == [
        "the dtype is float32, float16 or bfloat16 (found bfloat16, matrix products in "
        "bfloat16 with float32 sums, the rest in float32)"
    ]
    assert "bfloat16 matrix products" in plan.why
    # float16 and float32 calls, and the loop, never do.
    for changes in (dict(dtype="float16"), dict(dtype="float32"), dict(mask=seq.HOLES)):
        assert not decide(native_bf16=True, **dict(dict(dtype="bfloat16"), **changes)).bf16_products


def test_native_with_a_mask_with_holes_needs_the_loop():
    plan = decide(mask=seq.HOLES)
    assert plan.kernel == "loop"
    assert [r.text for r in plan.unmet("native")] == ["the mask has no holes (found holes)"]


ONNX_EXPORT = dict(
    exporting="model.export(format='onnx')", export_format="onnx", onnx_lstm=True
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize(
    "mask", [seq.NO_MASK, seq.RIGHT_PADDED, seq.LEFT_PADDED, seq.HOLES, seq.RUNTIME]
)
def test_an_onnx_export_carries_one_onnx_lstm_node_for_any_mask(backend, device, mask):
    """Rows with holes too, since a masked step changes no state."""
    plan = decide(backend=backend, device=device, mask=mask, **ONNX_EXPORT)
    assert plan.kernel == "onnx"
    assert plan.unmet("onnx") == []
    gathered = "each row's valid steps, gathered to the front, run for their number"
    assert (gathered in plan.why) == (mask != seq.NO_MASK)


@pytest.mark.parametrize(
    "change,unmet",
    [
        (dict(activation="relu"), "activation is tanh (found relu)"),
        (dict(unroll=True), "unroll is False (found True)"),
        (dict(dtype="float64"), "the dtype is float32 (found float64)"),
        (
            dict(onnx_lstm=False, backend="jax"),
            "the call is traced by a converter that writes fastlstm's fused LSTM "
            "as one ONNX LSTM node (tf2onnx in a TensorFlow graph, torch.onnx's "
            "exporters, jax2onnx)",
        ),
        (
            dict(exporting="model.export(format='tf_saved_model')", export_format="tf_saved_model"),
            "the call is traced for an ONNX file (found: traced by "
            "model.export(format='tf_saved_model'))",
        ),
    ],
)
def test_each_onnx_requirement_is_named_when_unmet(change, unmet):
    plan = decide(**dict(dict(backend="tensorflow", **ONNX_EXPORT), **change))
    assert plan.kernel in ("loop", "unrolled")
    assert [r.text for r in plan.unmet("onnx")] == [unmet]


def test_onnx_requirements_are_shown_only_in_an_export():
    assert "onnx needs" not in str(decide(backend="tensorflow"))
    assert "onnx needs" in str(decide(backend="tensorflow", **ONNX_EXPORT))


@pytest.mark.parametrize(
    "change,unmet",
    [
        (dict(activation="relu"), "activation is tanh (found relu)"),
        (dict(recurrent_activation="hard_sigmoid"), "recurrent_activation is sigmoid (found hard_sigmoid)"),
        (dict(recurrent_dropout=0.2, training=True), "recurrent_dropout is 0 or the call is not training (found recurrent_dropout=0.2, training=True)"),
        (dict(use_bias=False), "use_bias is True (found False)"),
        (dict(dtype="int32"), "the dtype is float16, float32, float64 or bfloat16 (found int32)"),
    ],
)
def test_each_cudnn_requirement_is_named_when_unmet(change, unmet):
    plan = decide(device="gpu", **change)
    assert plan.kernel != "cudnn"
    assert [r.text for r in plan.unmet("cudnn")] == [unmet]


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_per_gate_input_dropout_in_training_needs_the_loop(device):
    """implementation=1 draws one input-dropout mask per gate, which no fused
    kernel applies: the planner says so (issue 11: the plan said native
    while the layer ran the loop)."""
    plan = decide(device=device, dropout=0.3, implementation=1, training=True)
    assert plan.kernel == "loop"
    fused = "cudnn" if device == "gpu" else "native"
    assert [r.text for r in plan.unmet(fused)] == [
        "input dropout uses one mask for all gates: implementation is 2, "
        "dropout is 0 or the call is not training (found implementation=1, "
        "dropout=0.3, training=True)"
    ]
    # One shared mask (implementation 2), or no dropout at inference, fuse.
    assert decide(device=device, dropout=0.3, implementation=2, training=True).kernel == fused
    assert decide(device=device, dropout=0.3, implementation=1, training=False).kernel == fused
    with pytest.raises(ValueError, match="input dropout uses one mask for all gates"):
        decide(device="gpu", dropout=0.3, implementation=1, training=True, use_cudnn=True)


def test_recurrent_dropout_at_inference_keeps_cudnn():
    assert decide(device="gpu", recurrent_dropout=0.3, training=False).kernel == "cudnn"


def test_unroll_gives_unrolled():
    plan = decide(device="gpu", unroll=True)
    assert plan.kernel == "unrolled"
    assert "unroll is False (found True)" in [r.text for r in plan.unmet("cudnn")]


def test_use_cudnn_false_never_picks_cudnn():
    assert decide(device="gpu", use_cudnn=False).kernel == "loop"
    assert decide(device="cpu", use_cudnn=False).kernel == "native"


def test_use_cudnn_true_raises_naming_every_unmet_requirement():
    with pytest.raises(ValueError) as info:
        decide(use_cudnn=True, activation="relu", mask=seq.HOLES)
    message = str(info.value)
    assert "use_cudnn=True" in message
    assert "the device is a GPU (found cpu)" in message
    assert "activation is tanh (found relu)" in message
    assert "the mask has no holes (found holes)" in message
    assert decide(use_cudnn=True, device="gpu").kernel == "cudnn"


def test_plan_is_pure():
    assert decide(device="gpu") == decide(device="gpu")


def test_plan_prints_the_kernel_and_each_requirement():
    text = str(decide(mask=seq.LEFT_PADDED))
    assert text.splitlines()[0] == "fastlstm plan: native (fastlstm's compiled CPU kernel)"
    assert "mask left-padded" in text
    assert "[ ] the device is a GPU (found cpu)" in text
    assert "[x] activation is tanh (found tanh)" in text
    assert text.splitlines()[-1].startswith("  => ")


@pytest.mark.parametrize(
    "kind,layout",
    [("none", seq.NO_MASK), ("right", seq.RIGHT_PADDED), ("left", seq.LEFT_PADDED), ("holes", seq.HOLES), ("empty", seq.CONTIGUOUS)],
)
def test_mask_layouts(kind, layout):
    assert seq.mask_layout(make_mask(kind, 6, 9)) == layout


def test_all_true_mask_is_all_valid():
    assert seq.mask_layout(np.ones((2, 3), bool)) == seq.ALL_VALID


def test_public_plan_for_a_real_layer_on_this_backend():
    layer = fastlstm.LSTM(4)
    x = np.zeros((8, 5, 3), "float32")
    mask = make_mask("left", 8, 5)
    here = fastlstm.plan(layer, x, mask=mask)
    assert here.backend == BACKEND and here.device == kernels.get().capabilities().device
    assert here.mask == seq.LEFT_PADDED
    assert here.kernel == ("cudnn" if here.device == "gpu" else "native")
    assert fastlstm.plan(layer, x, mask=mask, device="gpu").kernel == "cudnn"
    relu = fastlstm.LSTM(4, activation="relu")
    assert fastlstm.plan(relu, x, device="gpu").kernel == "loop"


def test_public_plan_rejects_bad_arguments():
    layer = fastlstm.LSTM(4)
    with pytest.raises(ValueError, match="argument `device`.*'tpu'"):
        fastlstm.plan(layer, np.zeros((2, 5, 3)), device="tpu")
    with pytest.raises(ValueError, match="argument `layer`.*Dense"):
        fastlstm.plan(keras.layers.Dense(2), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="argument `inputs`"):
        fastlstm.plan(layer, np.zeros((2, 5)))


def test_public_plan_names_inputs_that_are_not_tensors():
    layer = fastlstm.LSTM(4)
    with pytest.raises(ValueError, match=r"argument `inputs`: expected a 3D tensor of shape \(batch, timesteps, features\), got None"):
        fastlstm.plan(layer, None)
    with pytest.raises(TypeError, match=r"argument `inputs`: expected a 3D tensor or array.*got a str \('abc'\)"):
        fastlstm.plan(layer, "abc")
    with pytest.raises(TypeError, match=r"argument `inputs`.*got a list"):
        fastlstm.plan(layer, [[[0.0, 1.0]]])
    with pytest.raises(TypeError, match=r"argument `mask`.*got a list"):
        fastlstm.plan(layer, np.zeros((2, 5, 3)), mask=[[True] * 5] * 2)


def test_public_plan_checks_the_feature_size_of_a_built_layer():
    layer = fastlstm.LSTM(4)
    layer.build((2, 5, 3))
    with pytest.raises(ValueError, match=r"argument `inputs`: this layer was built for 3 features.*got inputs of shape \(2, 5, 2\) with 2"):
        fastlstm.plan(layer, np.zeros((2, 5, 2)))


def test_public_plan_takes_the_masks_a_call_takes():
    """Float, (batch, timesteps, 1) and batch-1 masks have the layout of the
    boolean mask they stand for."""
    layer = fastlstm.LSTM(4)
    x = np.zeros((3, 5, 2), "float32")
    left = np.array([[0, 0, 1, 1, 1]] * 3)
    for mask in (left.astype("float32"), left[..., None], left[:1].astype(bool)):
        assert fastlstm.plan(layer, x, mask=mask).mask == seq.LEFT_PADDED


def test_use_cudnn_true_on_a_cpu_raises_when_called():
    layer = fastlstm.LSTM(4, use_cudnn=True)
    if kernels.get().capabilities().device == "gpu":
        pytest.skip("needs a machine without a GPU")
    with pytest.raises(ValueError, match=r"use_cudnn=True.*the device is a GPU \(found cpu\)"):
        layer(np.zeros((2, 5, 3), "float32"))


def test_native_needs_the_backends_fewest_rows():
    plan = decide(backend="jax", batch=4, native_min_batch=8)
    assert plan.kernel == "loop"
    assert [r.text for r in plan.unmet("native")] == [
        "the batch has at least 8 rows (found 4); with fewer, jax's own loop is faster"
    ]
    assert decide(backend="jax", batch=8, native_min_batch=8).kernel == "native"
    assert decide(backend="jax", batch=None, native_min_batch=8).kernel == "native"
    assert not any("rows" in r.text for r in decide(batch=1).reasons)


def test_public_plan_follows_this_backends_fewest_rows():
    layer = fastlstm.LSTM(4)
    least = kernels.get().capabilities().native_min_batch
    x = np.zeros((least, 5, 3), "float32")
    assert fastlstm.plan(layer, x, device="cpu").kernel == "native"
    if least > 1:  # JAX: XLA's loop is faster on fewer rows
        plan = fastlstm.plan(layer, x[1:], device="cpu")
        assert plan.kernel == "loop"
        assert f"found {least - 1}" in str(plan)
