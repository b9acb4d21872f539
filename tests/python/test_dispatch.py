"""The kernel that runs is the kernel the plan names.

For every option that changes the planner's choice, the kernel functions
are instrumented (`cudnn`, `native`, and `recurrence` for the loop and the
unrolled loop) and the one that actually ran is compared with
`fastlstm.plan()` for the same call. Issue 11: with dropout and
implementation=1 in training the plan said native while the loop ran.
"""

import keras
import numpy as np
import pytest
from keras import ops

import fastlstm
from fastlstm import kernels
from helpers import instrument_kernels, make_mask, to_numpy

MODULE = kernels.get()
B, T, F, U = 8, 6, 2, 4


@pytest.fixture(params=["here", "gpu"])
def ran(request, monkeypatch):
    return instrument_kernels(monkeypatch, request.param)


CASES = {
    "default": dict(),
    "relu": dict(config=dict(activation="relu")),
    "hard_sigmoid": dict(config=dict(recurrent_activation="hard_sigmoid")),
    "no_bias": dict(config=dict(use_bias=False)),
    "unroll": dict(config=dict(unroll=True)),
    "use_cudnn_false": dict(config=dict(use_cudnn=False)),
    "dropout_training": dict(config=dict(dropout=0.3), training=True),
    "dropout_per_gate_training": dict(config=dict(dropout=0.3, implementation=1), training=True),
    "dropout_per_gate_inference": dict(config=dict(dropout=0.3, implementation=1)),
    "recurrent_dropout_training": dict(config=dict(recurrent_dropout=0.3), training=True),
    "recurrent_dropout_inference": dict(config=dict(recurrent_dropout=0.3)),
    "float64": dict(config=dict(dtype="float64")),
    "mixed_float16": dict(config=dict(dtype="mixed_float16")),
    "mixed_bfloat16": dict(config=dict(dtype="mixed_bfloat16")),
    "go_backwards": dict(config=dict(go_backwards=True), mask="left"),
    "return_state": dict(config=dict(return_state=True), mask="right"),
}
MASKS = ["none", "right", "left", "holes", "empty", "all_valid"]


def run_case(ran, config=None, training=False, mask="none"):
    config = dict(return_sequences=True, **(config or {}))
    layer = fastlstm.LSTM(U, seed=1, **config)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, F)).astype("float32")
    m = np.ones((B, T), bool) if mask == "all_valid" else make_mask(mask, B, T, seed=2)
    layer.build(x.shape)
    plan = fastlstm.plan(layer, x, mask=m, training=training)
    kwargs = {"training": training}
    if m is not None:
        kwargs["mask"] = ops.convert_to_tensor(m)
    ran.clear()
    layer(ops.convert_to_tensor(x), **kwargs)
    return plan


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_kernel_that_runs_is_the_planned_one(ran, case):
    plan = run_case(ran, **CASES[case])
    assert ran == [plan.kernel], str(plan)


@pytest.mark.parametrize("mask", MASKS)
def test_the_kernel_that_runs_is_the_planned_one_for_each_mask_layout(ran, mask):
    plan = run_case(ran, mask=mask)
    assert ran == [plan.kernel], str(plan)


def test_every_kernel_is_reached(ran):
    """The cases above are not all one kernel: here the loop and the unrolled
    loop, and the fused kernel where this backend (or the stood-in GPU) has
    one."""
    kernels_seen = {run_case(ran, **case).kernel for case in CASES.values()}
    assert {"loop", "unrolled"} <= kernels_seen
    if MODULE.capabilities().device == "gpu":
        assert "cudnn" in kernels_seen
    elif MODULE.capabilities().native:
        assert "native" in kernels_seen


def test_per_gate_input_dropout_matches_keras(ran):
    """The planned loop applies Keras's four per-gate input-dropout masks
    (a fused kernel would drop them: the planner must be told)."""
    layer = fastlstm.LSTM(U, dropout=0.4, implementation=1, seed=3, return_sequences=True)
    ref = keras.layers.LSTM(U, dropout=0.4, implementation=1, seed=3, return_sequences=True, use_cudnn=False)
    x = np.random.default_rng(4).standard_normal((B, T, F)).astype("float32")
    layer.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())
    ref.cell.seed_generator.state.assign(layer.cell.seed_generator.state.value)
    assert fastlstm.plan(layer, x, training=True).kernel == "loop"
    out = to_numpy(layer(x, training=True))
    assert ran == ["loop"]
    np.testing.assert_allclose(out, to_numpy(ref(x, training=True)), atol=2e-5)
    assert not np.allclose(out, to_numpy(layer(x))), "dropout had no effect"
