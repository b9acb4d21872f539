"""bfloat16 products in the compiled kernel: under mixed_bfloat16, on a CPU
that makes bfloat16 products natively (AMX or AVX512-BF16), the kernel's
matrix products take bfloat16 factors and keep float32 sums; everything else
stays float32. FASTLSTM_DISABLE_BF16=1 computes the call in float32 inside.

Tolerance: bfloat16 keeps 8 significant bits, a relative rounding of 2^-9
per factor. Over 12 steps of 24 units the outputs (in [-1, 1]) stay within
2e-2 of float32 inside and of Keras's own bfloat16 loop; gradients within
2e-2 of their largest element's size (at least 1).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastlstm
from fastlstm import kernels
from helpers import forward, grads, make_mask, pair

B, T, F, U = 16, 12, 10, 24
ATOL = 2e-2

needs_bf16 = pytest.mark.skipif(
    not kernels.get().capabilities().native_bf16,
    reason="needs a CPU with AMX or AVX512-BF16 and fastlstm's compiled kernel",
)


def _pair(**config):
    """A fastlstm.LSTM with random weights and Keras's generic loop with
    the same weights (helpers.pair)."""
    layer, ref = pair(U, return_sequences=True, return_state=True, **config)
    layer.build((B, T, F))
    rng = np.random.default_rng(3)
    layer.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32")
                       for w in layer.get_weights()])
    ref.build((B, T, F))
    ref.set_weights(layer.get_weights())
    return layer, ref


def _inputs():
    rng = np.random.default_rng(4)
    return rng.standard_normal((B, T, F)).astype("float32")


def _float32_inside(monkeypatch, run):
    monkeypatch.setenv("FASTLSTM_DISABLE_BF16", "1")
    try:
        return run()
    finally:
        monkeypatch.delenv("FASTLSTM_DISABLE_BF16")


def _as_float32(values):
    return [np.asarray(v, "float32") for v in values]


@needs_bf16
@pytest.mark.parametrize("mask_kind", ["none", "left", "right", "empty"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_bf16_products_agree_with_float32_inside_and_kerass_loop(
    monkeypatch, mask_kind, go_backwards
):
    layer, ref = _pair(dtype="mixed_bfloat16", go_backwards=go_backwards)
    x = _inputs()
    mask = make_mask(mask_kind, B, T, seed=5)
    plan = fastlstm.plan(layer, x, mask=mask)
    assert plan.kernel == "native" and plan.bf16_products, str(plan)
    assert "matrix products in bfloat16 with float32 sums" in str(plan)
    inside = _float32_inside(monkeypatch, lambda: fastlstm.plan(layer, x, mask=mask))
    assert inside.kernel == "native" and not inside.bf16_products, str(inside)

    got = _as_float32(forward(layer, x, mask))
    want = _as_float32(_float32_inside(monkeypatch, lambda: forward(layer, x, mask)))
    keras_loop = _as_float32(forward(ref, x, mask))
    for g, w, k in zip(got, want, keras_loop):
        np.testing.assert_allclose(g, w, atol=ATOL)
        np.testing.assert_allclose(g, k, atol=ATOL)
    # Not float32 inside: the products were rounded.
    assert any(np.abs(g - w).max() > 0 for g, w in zip(got, want))

    got = grads(layer, x, mask)
    want = _float32_inside(monkeypatch, lambda: grads(layer, x, mask))
    for g, w in zip(got, want):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, atol=ATOL * scale)


@needs_bf16
def test_float32_calls_never_take_bf16_products():
    layer, _ = _pair()
    plan = fastlstm.plan(layer, _inputs())
    assert plan.kernel == "native" and not plan.bf16_products, str(plan)


def test_without_bf16_instructions_bfloat16_is_computed_in_float32():
    """Where the CPU lacks AVX512-BF16 (oneDNN capped to AVX2 here), the
    compiled kernel still runs a bfloat16 call, in float32, and the plan
    says so."""
    script = textwrap.dedent("""
        import numpy as np
        import fastlstm
        from fastlstm import kernels
        assert not kernels.get().capabilities().native_bf16
        layer = fastlstm.LSTM(4, dtype="mixed_bfloat16")
        x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype("float32")
        plan = fastlstm.plan(layer, x)
        assert plan.kernel == "native" and not plan.bf16_products, plan
        assert "found bfloat16, computed in float32 inside" in str(plan), plan
        print("ok")
    """)
    env = dict(os.environ, DNNL_MAX_CPU_ISA="AVX2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
