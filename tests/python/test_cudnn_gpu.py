"""The cuDNN kernel gives the reference numbers, on every backend.

These run where the backend sees a CUDA GPU and skip elsewhere: cuDNN cannot
run on a CPU, and nothing here fakes it. The planner's GPU decisions are
tested on every machine in test_planner.py.
"""

import itertools

import pytest

import fastlstm
from fastlstm import kernels
from helpers import assert_all_close, build_pair, forward, grads, make_mask, pair
from test_equivalence import B, T, U, inputs

pytestmark = pytest.mark.skipif(
    kernels.get().capabilities().device != "gpu", reason="needs a CUDA GPU"
)


@pytest.mark.parametrize(
    "mask_kind,go_backwards,return_sequences",
    list(itertools.product(["none", "right", "left", "empty"], [False, True], [False, True])),
)
def test_cudnn_matches_the_generic_loop(mask_kind, go_backwards, return_sequences):
    layer, ref = pair(
        U, return_sequences=return_sequences, return_state=True,
        go_backwards=go_backwards, use_cudnn=True,
    )
    x, states = inputs(3)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, B, T, seed=4)
    assert fastlstm.plan(layer, x, mask=mask).kernel == "cudnn"
    assert_all_close(forward(layer, x, mask, states), forward(ref, x, mask, states), atol=1e-4)
    assert_all_close(
        grads(layer, x, mask, states), grads(ref, x, mask, states), atol=1e-4, what="gradient"
    )


def test_mask_with_holes_falls_back_to_the_loop_on_a_gpu():
    layer, ref = pair(U, return_sequences=True, return_state=True)
    x, states = inputs(5)
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask("holes", B, T)
    assert fastlstm.plan(layer, x, mask=mask).kernel == "loop"
    assert_all_close(forward(layer, x, mask, states), forward(ref, x, mask, states), atol=1e-4)
