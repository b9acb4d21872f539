"""The kernel contract (`fastlstm.kernels`) holds for this backend's module:
every kernel takes the same arguments and returns a `Result`, calls without
rows, steps or features give what the equations give, and the module has the
protocol's members and section order."""

import inspect
import re

import numpy as np
import pytest
from keras import activations, ops

from fastlstm import _sequence, kernels
from helpers import BACKEND, to_numpy

MODULE = kernels.get()
# cuDNN runs on a GPU only (tests/python/test_cudnn_gpu.py).
HERE = ["loop", "unrolled", "cudnn", "native"] if MODULE.capabilities().device == "gpu" else [
    "loop", "unrolled", "native"
]


# The onnx kernel, which every backend's ONNX converter writes as one ONNX
# LSTM node (tf2onnx, torch.onnx's exporters, jax2onnx); planned only in an
# export.
ONNX = ["onnx"]


def test_module_provides_every_member_of_the_protocol():
    assert isinstance(MODULE, kernels.Backend)
    assert set(MODULE.KERNELS) == {"loop", "unrolled", "cudnn", "native", *ONNX}


def test_capabilities_are_one_object_with_the_plans_facts():
    caps = MODULE.capabilities()
    assert isinstance(caps, kernels.Capabilities)
    assert caps.backend == BACKEND
    assert caps.device in ("cpu", "gpu")
    assert set(caps.native_dtypes) <= {"float16", "bfloat16", "float32", "float64"}
    assert isinstance(caps.native_min_batch, int) and caps.native_min_batch >= 1
    # make test builds the compiled kernel: on a CPU it must be there.
    assert caps.native, caps.native_why
    assert caps.native_why == ""


@pytest.mark.parametrize("name", ["loop", "unrolled", "cudnn", "native", *ONNX])
def test_every_kernel_has_the_protocols_signature(name):
    want = list(inspect.signature(kernels.Kernel.__call__).parameters)[1:]
    # The contract's wrapper, and the backend's own function inside it.
    kernel = MODULE.KERNELS[name]
    assert list(inspect.signature(kernel).parameters) == want
    assert list(inspect.signature(kernel.__wrapped__).parameters) == want


def test_backend_module_has_the_sections_in_order():
    import sys

    source = inspect.getsource(sys.modules[MODULE.__name__])
    sections = re.findall(r"^# \d\. (.+)$", source, flags=re.M)
    assert sections == [
        "Capabilities", "Loop", "Loop with written-out gradient", "cuDNN", "Native binding",
        "ONNX export",
    ]


def _arguments(batch, steps, features, units=3, mask_kind=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, features)).astype("float32")
    h0, c0 = (rng.standard_normal((batch, units)).astype("float32") for _ in range(2))
    weights = kernels.Weights(
        ops.convert_to_tensor(rng.standard_normal((features, 4 * units)).astype("float32")),
        ops.convert_to_tensor(rng.standard_normal((units, 4 * units)).astype("float32")),
        ops.convert_to_tensor(rng.standard_normal((4 * units,)).astype("float32")),
    )
    mask = None
    if mask_kind == "left":
        mask = np.arange(steps)[None, :] >= (np.arange(batch) % max(steps, 1))[:, None]
    options = kernels.Options(
        activation=activations.tanh, recurrent_activation=activations.sigmoid,
        return_sequences=True, zero_output_for_mask=False,
        layout=_sequence.mask_layout(mask),
    )
    tensor = ops.convert_to_tensor
    return (tensor(x), tensor(h0), tensor(c0), weights,
            None if mask is None else tensor(mask), kernels.Dropout(), options)


@pytest.mark.parametrize("name", HERE)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_every_kernel_returns_a_result_of_the_contracts_shapes(name, return_sequences):
    args = list(_arguments(4, 5, 2, units=3))
    args[-1] = args[-1]._replace(return_sequences=return_sequences)
    result = MODULE.KERNELS[name](*args)
    assert isinstance(result, kernels.Result)
    assert tuple(result.last.shape) == tuple(result.h.shape) == tuple(result.c.shape) == (4, 3)
    if return_sequences:
        assert tuple(result.outputs.shape) == (4, 5, 3)
    else:
        assert result.outputs is None


# (batch, steps, features): no rows, no steps, no features.
EMPTY = [(0, 5, 2), (4, 0, 2), (4, 5, 0), (0, 0, 0)]


def _loss_and_grads(name, shape, mask_kind):
    """The kernel's outputs and the gradients of a sum of them with respect
    to x, h0, c0 and the weights, on this backend."""
    x, h0, c0, weights, mask, dropout, options = _arguments(*shape, mask_kind=mask_kind)
    kernel = MODULE.KERNELS[name]

    def loss(x, h0, c0, kernel_w, recurrent_w, bias):
        r = kernel(x, h0, c0, kernels.Weights(kernel_w, recurrent_w, bias), mask, dropout, options)
        return ops.sum(r.outputs) + ops.sum(r.h * 0.5) + ops.sum(r.c * 0.25) + ops.sum(r.last), r

    inputs = [x, h0, c0, *weights]
    if BACKEND == "jax":
        import jax

        (_, result), grads = jax.value_and_grad(
            lambda *a: loss(*a), argnums=range(6), has_aux=True
        )(*inputs)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value, result = loss(*inputs)
        grads = tape.gradient(value, inputs)
    else:
        import torch

        inputs = [t.detach().requires_grad_(True) for t in inputs]
        value, result = loss(*inputs)
        grads = torch.autograd.grad(value, inputs, allow_unused=True)
    return result, [to_numpy(g) if g is not None else None for g in grads], inputs


@pytest.mark.parametrize("name", HERE)
@pytest.mark.parametrize("shape", EMPTY, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask_kind", [None, "left"])
def test_zero_size_dimensions_give_what_the_equations_give(name, shape, mask_kind):
    """No rows: empty results. No steps: no outputs, the initial states, and
    their gradients passed through; nothing reaches the weights. No
    features: the inputs add nothing to the gates. Never a crash."""
    batch, steps, features = shape
    result, grads, inputs = _loss_and_grads(name, shape, mask_kind)
    units = 3
    assert tuple(result.outputs.shape) == (batch, steps, units)
    assert tuple(result.h.shape) == tuple(result.c.shape) == (batch, units)
    x, h0, c0, kernel_w, recurrent_w, bias = (to_numpy(t) for t in inputs)
    for g, t in zip(grads, inputs):
        assert g is None or g.shape == tuple(t.shape)
    if steps == 0:
        np.testing.assert_array_equal(to_numpy(result.h), h0)
        np.testing.assert_array_equal(to_numpy(result.c), c0)
        np.testing.assert_array_equal(to_numpy(result.last), np.zeros((batch, units)))
        if batch:
            np.testing.assert_allclose(grads[1], np.full(h0.shape, 0.5))
            np.testing.assert_allclose(grads[2], np.full(c0.shape, 0.25))
        for g in grads[3:]:
            assert g is None or not g.any()
    if features == 0 and steps and batch:
        # The loop computes the same from the recurrence alone.
        loop_result, loop_grads, _ = _loss_and_grads("loop", shape, mask_kind)
        for got, want in zip(result, loop_result):
            np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=2e-5)
        for got, want in zip(grads, loop_grads):
            if got is not None and want is not None:
                np.testing.assert_allclose(got, want, atol=2e-5)
