"""The compiled kernel (fastlstm's C++ core on oneDNN), on every backend:
what surrounds it. Its numbers and gradients are in test_equivalence.py and
test_kernels.py, which run it wherever the plan says `native`; each
backend's own binding has test_native_<backend>.py."""

import os

import numpy as np
import pytest

import fastlstm
from fastlstm import kernels
from fastlstm.kernels import _compiled
from helpers import BACKEND, pair, to_numpy
from native_helpers import padded_data


def test_disabled_kernel_falls_back_to_the_loop_and_the_plan_says_why(monkeypatch):
    layer, ref = pair(4, return_sequences=True)
    x = padded_data()
    mask = (x != 0).any(-1)
    assert fastlstm.plan(layer, x, mask=mask).kernel == "native"
    monkeypatch.setenv(_compiled.DISABLE_ENV, "1")
    plan = fastlstm.plan(layer, x, mask=mask)
    assert plan.kernel == "loop"
    assert f"(not loaded: disabled by {_compiled.DISABLE_ENV}=1)" in str(plan)
    got = to_numpy(layer(x, mask=mask))
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())
    np.testing.assert_allclose(got, to_numpy(ref(x, mask=mask)), atol=2e-5)


def test_kernel_threads_follow_omp_num_threads_then_the_backends_setting(monkeypatch):
    module = kernels.get()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert module._threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    if BACKEND == "torch":
        import torch

        assert module._threads() == torch.get_num_threads()
    else:  # neither sets intra-op threads here: every core this process has
        assert module._threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_long_sequences_run_in_chunks_with_the_loops_numbers(
    monkeypatch, return_sequences, masked
):
    """Inference over 600 steps at this size needs a scratchpad of about
    150 MB in one pass: the kernel runs it in chunks of steps, carrying the
    state across, and reads each row's last output in whichever chunk it
    falls. Same numbers as the loop."""
    rng = np.random.default_rng(4)
    batch, steps = 64, 600
    x = rng.standard_normal((batch, steps, 4)).astype("float32")
    mask = None
    if masked:
        # Left-padded rows whose last valid steps fall in different chunks.
        lengths = rng.integers(1, steps + 1, size=batch)
        mask = np.arange(steps)[None, :] >= (steps - lengths)[:, None]
    layer = fastlstm.LSTM(256, return_sequences=return_sequences, return_state=True)
    layer.build(x.shape)
    assert fastlstm.plan(layer, x, mask=mask).kernel == "native"
    got = [to_numpy(t) for t in layer(x, mask=mask)]
    monkeypatch.setenv(_compiled.DISABLE_ENV, "1")
    assert fastlstm.plan(layer, x, mask=mask).kernel == "loop"
    want = [to_numpy(t) for t in layer(x, mask=mask)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=5e-5)


@pytest.mark.parametrize("mask_kind", ["none", "left", "long rows first"])
def test_rows_split_across_threads_give_the_same_numbers_and_gradients(
    monkeypatch, mask_kind
):
    """With two threads a call splits its rows into two blocks of
    consecutive rows (13 and 12 rows unmasked; left-padded, blocks of about
    as many valid steps: 8 and 17 rows where the long rows come first),
    each run on its own thread, the weight gradients summed; the backward
    pass splits them as its training pass did."""
    from helpers import forward, grads, make_mask

    rng = np.random.default_rng(5)
    batch, steps = 25, 9
    x = rng.standard_normal((batch, steps, 3)).astype("float32")
    states = [rng.standard_normal((batch, 6)).astype("float32") for _ in range(2)]
    if mask_kind == "long rows first":
        mask = np.zeros((batch, steps), bool)
        mask[:9] = True
        mask[9:, -2:] = True
    else:
        mask = make_mask(mask_kind, batch, steps, seed=6)
    layer = fastlstm.LSTM(6, return_sequences=True, return_state=True)
    layer.build(x.shape)
    results = {}
    for threads, disabled in (("2", "0"), ("1", "0"), ("1", "1")):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        monkeypatch.setenv(_compiled.DISABLE_ENV, disabled)
        kernel = fastlstm.plan(layer, x, mask=mask).kernel
        assert kernel == ("loop" if disabled == "1" else "native")
        results[threads, kernel] = (
            forward(layer, x, mask, states) + grads(layer, x, mask, states)
        )
    want = results["1", "loop"]
    for key in (("2", "native"), ("1", "native")):
        for got, expected in zip(results[key], want):
            np.testing.assert_allclose(got, expected, atol=5e-5, err_msg=str(key))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_ragged_rows_never_read_their_padding(go_backwards, return_sequences):
    """Each row runs only its valid span, read where it lies: NaN in the
    padded steps (before, after and around the spans, and all of an empty
    row) changes no output and no gradient, and the gradient reaching the
    padding is zero. A kernel that ran the padded steps and masked their
    results would carry the NaN into the weight gradients."""
    from helpers import forward, grads

    rng = np.random.default_rng(7)
    batch, steps = 9, 8
    x = rng.standard_normal((batch, steps, 3)).astype("float32")
    starts = np.array([0, 3, 1, 0, 5, 2, 0, 4, 0])
    lengths = np.array([8, 5, 4, 1, 3, 0, 6, 2, 8])
    t = np.arange(steps)[None, :]
    mask = (t >= starts[:, None]) & (t < (starts + lengths)[:, None])
    layer = fastlstm.LSTM(
        6, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
    )
    layer.build(x.shape)
    plan = fastlstm.plan(layer, x, mask=mask, training=True)
    assert plan.kernel == "native"
    assert "each row runs only its valid steps" in plan.why
    clean = np.where(mask[..., None], x, 0.0).astype("float32")
    poisoned = np.where(mask[..., None], x, np.nan).astype("float32")
    for got, want in zip(forward(layer, poisoned, mask), forward(layer, clean, mask)):
        np.testing.assert_array_equal(got, want)
    got, want = grads(layer, poisoned, mask), grads(layer, clean, mask)
    for g, w in zip(got, want):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, w, atol=1e-6)
    assert not got[0][~mask].any(), "a gradient reached the padding"
