"""Scale-out through the engines' own distribution, on two CPU devices.

No home-made parallelism: a model with fastlstm trains under
tf.distribute.MirroredStrategy (TensorFlow), keras.distribution.DataParallel
(JAX) and PyTorch's DistributedDataParallel (two processes) with the same
result as on one device. conftest.py splits the CPU.
"""

import keras
import numpy as np

import fastlstm
from helpers import BACKEND

# Each backend gets the test of its own engine (Keras has no multi-device
# distribution API on the PyTorch backend: there, PyTorch's own DDP).


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 3)).astype("float32")
    x[::2, :2] = 0.0  # left padding on half the rows
    y = rng.standard_normal((16, 1)).astype("float32")
    return x, y


def build(weights=None):
    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 3))
    out = keras.layers.Dense(1)(fastlstm.LSTM(8)(keras.layers.Masking(0.0)(inp)))
    model = keras.Model(inp, out)
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def train(model):
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return model.get_weights()


def assert_same_training(distributed_weights, single_weights):
    for a, b in zip(distributed_weights, single_weights):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(
        not np.allclose(a, b) for a, b in zip(single_weights, build().get_weights())
    ), "training changed nothing"


def mirrored_strategy_on_two_cpu_devices():
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2
    initial = build().get_weights()
    single = train(build(initial))
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = build(initial)
    assert_same_training(train(model), single)


def data_parallel_on_two_cpu_devices():
    import jax

    devices = jax.devices("cpu")
    assert len(devices) == 2
    initial = build().get_weights()
    single = train(build(initial))
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        model = build(initial)
        distributed = train(model)
    finally:
        keras.distribution.set_distribution(None)
    assert_same_training(distributed, single)


DDP_WORKER = r"""
import sys
import numpy as np
import torch
import torch.distributed as dist
import keras
import fastlstm
sys.path.insert(0, sys.argv[4])
from test_distribution import build, data

rank, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group(
    "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
)
model = build(list(np.load(folder + "/initial.npz").values()))
x, y = data()
rows = slice(rank * 8, rank * 8 + 8)  # each process its half of the batch
x, y = torch.tensor(x[rows]), torch.tensor(y[rows])
assert fastlstm.plan(model.layers[2], x, mask=(x != 0).any(-1), training=True).kernel == "native"
ddp = torch.nn.parallel.DistributedDataParallel(model)
loss = torch.mean((ddp(x, training=True) - y) ** 2)
loss.backward()
np.savez(
    f"{folder}/grads{rank}.npz",
    *[v.value.grad.numpy() for v in model.trainable_variables],
)
# Both processes done before either closes its connections (gloo aborts a
# process whose peer hangs up mid-call).
dist.barrier()
dist.destroy_process_group()
"""


def distributed_data_parallel_in_two_processes(tmp_path):
    """DDP averages the gradients of the processes' halves of a batch: the
    compiled kernel's gradients in each process, all-reduced by DDP's hooks,
    are the gradient of the whole batch in one process."""
    import os
    import socket
    import subprocess
    import sys

    import torch

    initial = build().get_weights()
    np.savez(tmp_path / "initial.npz", *initial)
    model = build(initial)
    x, y = (torch.tensor(a) for a in data())
    torch.mean((model(x, training=True) - y) ** 2).backward()
    whole = [v.value.grad.numpy() for v in model.trainable_variables]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", DDP_WORKER, str(rank), port, str(tmp_path), here],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in (0, 1)
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    per_rank = [list(np.load(tmp_path / f"grads{r}.npz").values()) for r in (0, 1)]
    for a, b, want in zip(*per_rank, whole):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, want, atol=1e-5)
    assert any(np.abs(g).max() > 0 for g in whole)


if BACKEND == "torch":
    test_distributed_data_parallel_in_two_processes = distributed_data_parallel_in_two_processes
if BACKEND == "tensorflow":
    test_mirrored_strategy_on_two_cpu_devices = mirrored_strategy_on_two_cpu_devices
if BACKEND == "jax":
    test_data_parallel_on_two_cpu_devices = data_parallel_on_two_cpu_devices
