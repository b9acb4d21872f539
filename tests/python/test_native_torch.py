"""The compiled kernel in PyTorch: custom ops (torch.library) that autograd,
torch.compile and torch.export know; export tracing runs the loop."""

import os

import keras
import numpy as np
import pytest
import torch

import fastlstm
from helpers import make_mask, pair, to_numpy

OPS = {
    "lstm_inference": torch.ops.fastlstm.lstm_inference,
    "lstm_training": torch.ops.fastlstm.lstm_training,
    "lstm_backward": torch.ops.fastlstm.lstm_backward,
}


def _op_arguments(batch=5, steps=4, features=3, units=6, seed=0):
    rng = np.random.default_rng(seed)
    tensor = lambda *shape: torch.tensor(rng.standard_normal(shape).astype("float32"))
    return (
        tensor(batch, steps, features), tensor(batch, units), tensor(batch, units),
        tensor(features, 4 * units), tensor(units, 4 * units), tensor(4 * units),
    )


def _spans(batch):
    """Left-padded spans: at 5 rows, one block of rows; at 20, two blocks on
    two threads, the first 8 rows long and the rest short, so that blocks
    of about as many valid steps hold 8 and 12 rows."""
    if batch == 5:
        return [0, 1, 3, 0, 2], [4, 2, 1, 4, 0]
    long_rows = 8
    starts = [0] * long_rows + [3] * (batch - long_rows)
    lengths = [4] * long_rows + [1] * (batch - long_rows)
    lengths[-1] = 0
    return starts, lengths


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("batch", [5, 20])
@pytest.mark.parametrize("name", ["lstm_inference", "lstm_training"])
def test_custom_ops_pass_torch_library_opcheck(name, batch, bf16):
    """opcheck: the fake implementations agree with the real ones (the
    training workspace's size too, however the rows split across threads),
    the schema is honest, and the autograd registration works (the training
    op, whose gradient is the backward op); with bfloat16 products too."""
    if bf16 and not fastlstm.kernels.get().capabilities().native_bf16:
        pytest.skip("needs a CPU with AMX or AVX512-BF16")
    x, h0, c0, kernel, recurrent_kernel, bias = _op_arguments(batch=batch)
    starts, lengths = (torch.tensor(v, dtype=torch.int32) for v in _spans(batch))
    if name == "lstm_inference":
        args = (x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths, True, 2, bf16)
    else:
        args = tuple(t.requires_grad_(True) for t in (x, h0, c0, kernel, recurrent_kernel, bias)) + (
            starts, lengths, 2, bf16,
        )
    torch.library.opcheck(OPS[name], args)


def test_training_op_gradients_match_autograd_through_the_loop():
    inputs = [t.requires_grad_(True) for t in _op_arguments(seed=1)]
    y, h, c, _ = OPS["lstm_training"](
        *inputs, torch.zeros(5, dtype=torch.int32), torch.full((5,), 4, dtype=torch.int32), 2,
        False,
    )
    loss = (y * y.cos()).sum() + h.sum() + (c * 0.5).sum()
    got = torch.autograd.grad(loss, inputs)
    layer = fastlstm.LSTM(6, return_sequences=True, return_state=True)
    x, h0, c0, kernel, recurrent_kernel, bias = (t.detach().requires_grad_(True) for t in inputs)
    layer.build(tuple(x.shape))
    layer.set_weights([kernel.detach().numpy(), recurrent_kernel.detach().numpy(), bias.detach().numpy()])
    os.environ["FASTLSTM_DISABLE_NATIVE"] = "1"
    try:
        assert fastlstm.plan(layer, x).kernel == "loop"
        y, h, c = layer(x, initial_state=[h0, c0])
    finally:
        del os.environ["FASTLSTM_DISABLE_NATIVE"]
    loss = (y * y.cos()).sum() + h.sum() + (c * 0.5).sum()
    weights = [v.value for v in layer.trainable_variables]
    want = torch.autograd.grad(loss, [x, h0, c0] + weights)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-5)


def _model(lstm, masked, steps=7, features=3):
    inp = keras.Input((steps, features))
    h = keras.layers.Masking(0.0)(inp) if masked else inp
    return keras.Model(inp, keras.layers.Dense(1)(lstm(h)))


def _padded(masked, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 7, 3)).astype("float32")
    if masked:
        x[~make_mask("left", 16, 7, seed=seed)] = 0.0
    y = rng.standard_normal((16, 1)).astype("float32")
    return x, y


def test_torch_compile_traces_the_custom_op_in_one_graph():
    layer = fastlstm.LSTM(4, return_sequences=True)
    x = torch.tensor(_padded(False)[0])
    layer.build(tuple(x.shape))

    def loss(x):
        return (layer(x) ** 2).sum()

    explained = torch._dynamo.explain(loss)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    targets = [
        str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"
    ]
    assert "fastlstm.lstm_training.default" in targets


@pytest.mark.parametrize("masked", [False, True])
def test_jit_compile_fit_gives_the_weights_of_eager_fit(masked):
    """Keras's jit_compile=True on PyTorch is torch.compile: the compiled
    training step runs the custom op, and trains as the eager one does."""
    x, y = _padded(masked)
    models = [_model(fastlstm.LSTM(4, seed=1), masked) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    for m, jit in zip(models, (False, True)):
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
        m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert models[1].jit_compile
    start = _model(fastlstm.LSTM(4, seed=1), masked).get_weights()
    for eager, compiled, before in zip(models[0].get_weights(), models[1].get_weights(), start):
        # Compiled and eager differ in the last float bits (inductor fuses
        # the Dense layer, the loss and SGD), far less than training moved.
        np.testing.assert_allclose(compiled, eager, atol=2e-5)
    assert any(not np.allclose(a, b) for a, b in zip(models[0].get_weights(), start))


MASKS = ["none", "left", "right", "holes"]


def _export_case(mask_kind):
    x = np.random.default_rng(2).standard_normal((8, 6, 3)).astype("float32")
    mask = make_mask(mask_kind, 8, 6, seed=3)
    if mask is not None:
        mask[:, -1] = True  # Masking reads the mask from the zeros
        x[~mask] = 0.0
    model = _model(fastlstm.LSTM(4, return_sequences=False), mask is not None, steps=6)
    return model, x, np.asarray(model.predict(x, verbose=0))


@pytest.mark.parametrize("mask_kind", MASKS)
def test_torch_export_runs_the_loop_with_kerass_numbers(mask_kind):
    model, x, want = _export_case(mask_kind)
    seen = []
    real_plan = fastlstm.LSTM._decide

    def recording(self, *args, **kwargs):
        plan = real_plan(self, *args, **kwargs)
        seen.append(plan)
        return plan

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastlstm.LSTM, "_decide", recording)
        exported = torch.export.export(model, (torch.tensor(x),))
    assert seen and all(p.kernel == "loop" for p in seen)
    assert "(found: traced by torch.export)" in str(seen[-1])
    got = exported.module()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert not any("fastlstm" in t for t in targets)


def test_export_tracing_is_a_fact_the_plan_names():
    layer, _ = pair(4)
    x = np.zeros((2, 5, 3), "float32")
    layer.build(x.shape)
    assert fastlstm.plan(layer, x).kernel == "native"

    class Probe(torch.nn.Module):
        def forward(self, x):
            probe.append(fastlstm.plan(layer, x))
            return x

    probe = []
    torch.jit.trace(Probe(), torch.zeros(2, 5, 3), check_trace=False)
    assert probe[-1].kernel == "loop"
    assert "traced by torch.jit.trace" in str(probe[-1])
    assert to_numpy(layer(x)).shape == (2, 4)


def test_the_kernel_leaves_pytorchs_thread_count_as_it_was():
    """The kernel runs oneDNN single-threaded on each of its threads, the
    caller's included, and restores the caller's OpenMP setting: PyTorch
    reads its intra-op thread count from it."""
    before = torch.get_num_threads()
    layer = fastlstm.LSTM(4)
    x = torch.tensor(_padded(False)[0])
    assert fastlstm.plan(layer, x).kernel == "native"
    # 16 rows split into two blocks on two threads; 4 rows run on this one.
    for rows in (x, x[:4]):
        with torch.no_grad():
            layer(rows)
        (layer(rows) ** 2).sum().backward()
        assert torch.get_num_threads() == before


def test_unused_outputs_get_no_zero_gradients_written():
    """A training step whose final c and outputs nobody reads sends no
    gradient for them and for the workspace: none is written out as zeros
    (the workspace's would be megabytes each step)."""
    inputs = [t.requires_grad_(True) for t in _op_arguments(seed=3)]
    _, h, _, workspace = OPS["lstm_training"](
        *inputs, torch.zeros(5, dtype=torch.int32),
        torch.tensor([4, 3, 2, 1, 0], dtype=torch.int32), 1, False,
    )
    assert not workspace.requires_grad
    with torch.profiler.profile(record_shapes=True) as prof:
        h.sum().backward()
    written = [
        e.input_shapes[0] for e in prof.events()
        if e.name in ("aten::zero_", "aten::fill_") and e.input_shapes
    ]
    assert written, "the profiler saw no zeros written at all"
    assert [workspace.numel()] not in written, written


def test_a_jit_trace_gives_kerass_numbers_for_masks_it_was_not_traced_with():
    """torch.jit.trace records one run's operations: traced on left-padded
    rows it must still be right for rows with holes (a trace of the fused
    kernel's rotation would not be)."""
    model, x, _ = _export_case("left")
    traced = torch.jit.trace(model, torch.tensor(x), check_trace=False)
    for mask_kind in ("holes", "right", "none"):
        _, other, _ = _export_case(mask_kind)
        got = traced(torch.tensor(other)).detach().numpy()
        np.testing.assert_allclose(got, model.predict(other, verbose=0), atol=1e-5)
