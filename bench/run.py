"""fastlstm benchmark: fastlstm.LSTM against keras.layers.LSTM (and torch.nn.LSTM).

    .venv/bin/python bench/run.py            # full run (make bench), 4-10 min on 2 cores
    .venv/bin/python bench/run.py --quick    # smoke test, < 2 min, writes *.tmp files

One subprocess per Keras backend (the backend is fixed per process). In each,
for every shape and case, the models are built with identical weights and
timed *interleaved* in one process: fastlstm, keras, [torch.nn], fastlstm,
keras, ... after warm-up; each number is the median of the repeats.

Models: Input -> [Masking] -> LSTM(units) -> Dense(1).
Cases:  forward (model.predict_on_batch) and a training step
        (model.train_on_batch, SGD, MSE on the last output), each unmasked and
        left-padded (zeros before the data, ~30% of a row on average, varying
        per row, as keras.utils.pad_sequences makes it; the mask comes from a
        Masking layer).
The torch.nn.LSTM anchor (oneDNN underneath on a CPU, cuDNN on a GPU) is
timed in the PyTorch backend's process, interleaved with that backend's
cases, and shown in every backend's row for the same shape and case: timed
inside the TensorFlow and JAX processes, torch's OpenMP threads and the
other framework's threads competed for the two cores and each slowed the
other by up to 3x. It uses the same weights
(weight_ih = kernel.T, weight_hh = recurrent_kernel.T, bias_ih = bias,
bias_hh = 0) and a torch.nn.Linear head; for left-padded input it rotates
rows to the front and packs them (pack_padded_sequence), inside the timing.

In each backend's process, the S, M and TEXT models (with a symbolic
batch) are also exported with model.export(format="onnx") (tf2onnx;
torch.onnx's TorchScript exporter; jax2onnx), with each LSTM, and the two
files timed in onnxruntime (`--shapes ONNX` alone).

Results: a table on stdout and, in bench/results/, `<device>.json`,
`<device>.md` and `<device>.png` (the ratios as bars). `--quick` writes the
same names with a `.tmp` suffix (ignored by git).
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# name: (batch, time, input, units)
SHAPES = {
    "S": (32, 100, 64, 128),
    "M": (64, 100, 128, 256),
    "L1": (1, 100, 64, 128),
    "LONG": (32, 2000, 64, 128),
    # Text classification: token ids pre-padded to 200 (pad_sequences'
    # default), Embedding(20000, 64, mask_zero=True) -> Bidirectional(LSTM(64))
    # -> Dense(1); "left-padded" rows have review-like lengths, "unmasked"
    # ones all 200 tokens (the same model and mask, nothing padded).
    "TEXT": (32, 200, 64, 64),
}
VOCABULARY = 20000
QUICK_SHAPES = {
    "S": (32, 100, 64, 128),
    "L1": (1, 100, 64, 128),
}
# Per shape: (fewest repeats, most repeats, warm-up rounds, seconds to spend
# per case). Between the fewest and the most, as many repeats as fit in the
# time budget, judged from the last warm-up round; the median is reported.
REPEATS = {
    "S": (7, 21, 2, 12.0),
    "M": (7, 15, 2, 20.0),
    "L1": (7, 21, 2, 6.0),
    "LONG": (3, 7, 1, 45.0),
    "TEXT": (7, 15, 2, 15.0),
}
QUICK_REPEATS = (3, 3, 1, 0.0)
# Baselines too slow to time here: Keras's PyTorch-backend loop needs minutes
# per LONG training step on a 2-core CPU. Those cases compare fastlstm with
# torch.nn.LSTM only. (backend, shape, mode, device)
SKIP_KERAS = {("torch", "LONG", "train", "cpu")}
# Likewise torch.nn.LSTM on packed sequences (left-padded rows): ATen's packed
# CPU path took 78 s per LONG training step. (shape, mode, masked, device)
SKIP_TORCH = {("LONG", "train", True, "cpu")}
CASES = [
    ("forward", False),
    ("forward", True),
    ("train", False),
    ("train", True),
]


def lstm_flops(shape, mode):
    """LSTM FLOPs: 2*B*T*4U*(I+U) forward, ~3x that for a training step."""
    b, t, i, u = shape
    fwd = 2.0 * b * t * 4 * u * (i + u)
    return fwd if mode == "forward" else 3.0 * fwd


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def numpy_peak(n=2048, repeats=5):
    """Measured float32 GEMM rate of this CPU (numpy), in GFLOP/s."""
    import numpy as np

    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / min(times) / 1e9


# --------------------------------------------------------------------------
# Worker: one backend, in its own process.
# --------------------------------------------------------------------------


def review_lengths(rng, batch, steps):
    """Token counts like movie reviews' (median about 180, a long tail:
    log-normal), cut at `steps` as pad_sequences truncates them."""
    import numpy as np

    return np.minimum(np.round(rng.lognormal(np.log(180), 0.6, size=batch)), steps).astype(int)


def padded_batch(shape, masked, seed, text=False):
    """Inputs, a target and per-row pad lengths, left-padded with zeros (for
    `text`, token ids)."""
    import numpy as np

    b, t, i, _ = shape
    rng = np.random.default_rng(seed)
    if text:
        x = rng.integers(1, VOCABULARY, size=(b, t)).astype("int32")
        pads = np.zeros(b, dtype=np.int64)
        if masked:
            pads = t - np.maximum(review_lengths(rng, b, t), 1)
            for r, p in enumerate(pads):
                x[r, :p] = 0
        return x, rng.standard_normal((b, 1)).astype("float32"), pads
    x = rng.uniform(0.1, 1.0, size=(b, t, i)).astype("float32")
    pads = np.zeros(b, dtype=np.int64)
    if masked:
        # 0..60% of each row padded, ~30% on average, at least one valid step.
        pads = np.minimum(rng.integers(0, int(0.6 * t) + 1, size=b), t - 1)
        if b == 1:
            pads[:] = int(0.3 * t)
        for r, p in enumerate(pads):
            x[r, :p] = 0.0
    y = rng.standard_normal((b, 1)).astype("float32")
    return x, y, pads


def build_model(layer_cls, shape, masked, text=False, policy=None, symbolic_batch=False):
    """The benchmark's model; `policy` (e.g. "mixed_bfloat16") for its LSTM
    and Dense layers, else Keras's global one; `symbolic_batch` for a model
    that takes any batch size (as an export for serving does)."""
    import keras

    _, t, i, u = shape
    batch = None if symbolic_batch else shape[0]
    if text:
        inp = keras.Input((t,), batch_size=batch, dtype="int32")
        h = keras.layers.Embedding(VOCABULARY, i, mask_zero=True)(inp)
        h = keras.layers.Bidirectional(layer_cls(u))(h)
        model = keras.Model(inp, keras.layers.Dense(1)(h))
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        return model
    inp = keras.Input((t, i), batch_size=batch)
    h = keras.layers.Masking(0.0)(inp) if masked else inp
    h = layer_cls(u, dtype=policy)(h)
    out = keras.layers.Dense(1, dtype=policy)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def build_floor_model(shape, masked):
    """The benchmark's model with its LSTM replaced by a pooling over time
    (the same mask, the same output shape): what a `predict_on_batch` costs
    a framework without any LSTM, the floor under every LSTM's time."""
    import keras

    b, t, i, u = shape
    inp = keras.Input((t, i), batch_size=b)
    h = keras.layers.Masking(0.0)(inp) if masked else inp
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dense(u)(h)
    model = keras.Model(inp, keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


# The key of the floor model's time in a record's "ms".
FLOOR = "no LSTM"


def lstm_of(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            layer = layer.forward_layer
        if isinstance(layer, keras.layers.LSTM):
            return layer
    raise ValueError("no LSTM in the model")


class TorchReference:
    """torch.nn.LSTM + nn.Linear with a Keras model's weights."""

    def __init__(self, keras_model, shape, masked, x, y, pads, device):
        import torch

        self.torch = torch
        _, t, i, u = shape
        self.dev = torch.device(device)
        lstm = torch.nn.LSTM(i, u, batch_first=True).to(self.dev)
        dense = torch.nn.Linear(u, 1).to(self.dev)
        layer = lstm_of(keras_model)
        k, rk, bias = [w for w in layer.get_weights()]
        dk, db = keras_model.layers[-1].get_weights()
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.from_numpy(k.T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(rk.T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
            lstm.bias_hh_l0.zero_()
            dense.weight.copy_(torch.from_numpy(dk.T.copy()))
            dense.bias.copy_(torch.from_numpy(db))
        self.lstm, self.dense = lstm, dense
        self.params = list(lstm.parameters()) + list(dense.parameters())
        self.opt = torch.optim.SGD(self.params, lr=1e-3)
        self.loss = torch.nn.MSELoss()
        self.x = torch.from_numpy(x).to(self.dev)
        self.y = torch.from_numpy(y).to(self.dev)
        self.masked = masked
        if masked:
            lengths = torch.from_numpy(t - pads)
            starts = torch.from_numpy(pads)
            self.lengths = lengths
            self.index = (
                ((torch.arange(t)[None, :] + starts[:, None]) % t)
                .to(self.dev)[..., None]
                .expand(-1, -1, i)
            )

    def _forward(self):
        torch = self.torch
        if not self.masked:
            _, (h, _) = self.lstm(self.x)
        else:
            # Left-padded rows, rotated to the front, then packed.
            xr = torch.gather(self.x, 1, self.index)
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                xr, self.lengths, batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(packed)
        return self.dense(h[0])

    def _sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize()

    def forward(self):
        with self.torch.inference_mode():
            out = self._forward()
        self._sync()
        return out

    def train(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self._forward(), self.y)
        loss.backward()
        self.opt.step()
        self._sync()
        return loss


def torch_device(device):
    """Where the torch.nn.LSTM anchor runs: the backend's kind of device."""
    import torch

    return "cuda" if device == "gpu" and torch.cuda.is_available() else "cpu"


def backend_device(backend):
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return "gpu" if jax.default_backend() == "gpu" else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def device_peak(backend):
    """float32 GEMM rate of the GPU through the backend, in GFLOP/s."""
    n, repeats = 8192, 10
    if backend == "torch":
        import torch

        a = torch.rand(n, n, device="cuda")
        b = torch.rand(n, n, device="cuda")
        (a @ b)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        torch.cuda.synchronize()
        return 2.0 * n**3 * repeats / (time.perf_counter() - t0) / 1e9
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: jnp.matmul(a, a, precision="highest"))
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        r = f(a)
    r.block_until_ready()
    return 2.0 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def time_interleaved(fns, policy):
    """Median seconds per call of each function, timed round-robin."""
    fewest, most, warmup, budget = policy
    for _ in range(warmup):
        t0 = time.perf_counter()
        for fn in fns.values():
            fn()
        round_s = time.perf_counter() - t0
    repeats = max(fewest, min(most, int(budget / max(round_s, 1e-9))))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, times


# Mixed precision: fastlstm under mixed_bfloat16 against fastlstm in float32
# and Keras under mixed_bfloat16, at M, on a CPU (`--shapes MIXED` alone).
MIXED_POLICY = "mixed_bfloat16"
MIXED_SHAPE = "M"


def mixed_precision_records(backend, device, quick):
    import keras
    import numpy as np

    import fastlstm

    shape = SHAPES[MIXED_SHAPE]
    x, y, _ = padded_batch(shape, False, seed=1)

    keras.utils.set_random_seed(0)
    models = {
        "fastlstm float32": build_model(fastlstm.LSTM, shape, False, policy="float32"),
        f"fastlstm {MIXED_POLICY}": build_model(fastlstm.LSTM, shape, False, policy=MIXED_POLICY),
        f"keras {MIXED_POLICY}": build_model(keras.layers.LSTM, shape, False, policy=MIXED_POLICY),
    }
    weights = models["fastlstm float32"].get_weights()
    for m in models.values():
        m.set_weights(weights)
    mixed = models[f"fastlstm {MIXED_POLICY}"]
    plan = fastlstm.plan(lstm_of(mixed), x, training=True)
    diff = float(np.abs(
        np.asarray(mixed.predict_on_batch(x), "float32")
        - np.asarray(models[f"keras {MIXED_POLICY}"].predict_on_batch(x), "float32")
    ).max())
    records = []
    for mode in ("forward", "train"):
        if mode == "forward":
            fns = {k: (lambda m=m: m.predict_on_batch(x)) for k, m in models.items()}
        else:
            fns = {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()}
        med, raw = time_interleaved(fns, QUICK_REPEATS if quick else REPEATS[MIXED_SHAPE])
        rec = {
            "backend": backend, "device": device, "shape": MIXED_SHAPE,
            "policy": MIXED_POLICY, "mode": mode, "kernel": plan.kernel,
            "bf16_products": plan.bf16_products,
            "ms": {k: v * 1e3 for k, v in med.items()},
            "raw_ms": {k: [v * 1e3 for v in r] for k, r in raw.items()},
            "ratio_float32": med[f"fastlstm {MIXED_POLICY}"] / med["fastlstm float32"],
            "ratio_keras": med[f"fastlstm {MIXED_POLICY}"] / med[f"keras {MIXED_POLICY}"],
            "max_abs_diff_vs_keras": diff,
        }
        records.append(rec)
        print(
            f"[{backend}] {MIXED_SHAPE} {mode:7s} {MIXED_POLICY}: "
            + "  ".join(f"{k} {v:8.2f} ms" for k, v in rec["ms"].items())
            + f"  / float32 {rec['ratio_float32']:.2f}, / keras {rec['ratio_keras']:.2f}"
            + f"  [{plan.kernel}{', bf16 products' if plan.bf16_products else ''}]",
            flush=True,
        )
    keras.backend.clear_session()
    return records


def fmt_mixed(records):
    rows = [
        "| backend | case | fastlstm float32 | fastlstm mixed_bfloat16 | "
        "keras mixed_bfloat16 | mixed / float32 | mixed / keras | products |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ms = r["ms"]
        rows.append(
            f"| {r['backend']} | {r['shape']} {r['mode']} | {ms['fastlstm float32']:.1f} | "
            f"{ms['fastlstm ' + r['policy']]:.1f} | {ms['keras ' + r['policy']]:.1f} | "
            f"{r['ratio_float32']:.2f} | {r['ratio_keras']:.2f} | "
            f"{'bfloat16' if r['bf16_products'] else 'float32'} |"
        )
    return "\n".join(rows)


# ONNX: Keras's ONNX export (tf2onnx, torch.onnx, jax2onnx)
# of the benchmark's model, with a symbolic batch, with keras.layers.LSTM and
# with fastlstm.LSTM, each run in onnxruntime on this CPU, unmasked and
# left-padded (`--shapes ONNX` alone).
ONNX_SHAPES = ("S", "M", "TEXT")
ONNX_BACKENDS = ("tensorflow", "jax", "torch")


def onnx_records(backend, quick):
    import tempfile
    import warnings

    import keras
    import numpy as np
    import onnx
    import onnxruntime

    import fastlstm

    def ops(graph):
        found = []
        for node in graph.node:
            found.append(node.op_type)
            for attribute in node.attribute:
                found += ops(attribute.g) if attribute.g.node else []
        return found

    records = []
    folder = tempfile.mkdtemp(prefix="fastlstm-bench-onnx-")
    for shape_name in ONNX_SHAPES[:1] if quick else ONNX_SHAPES:
        shape, text = SHAPES[shape_name], shape_name == "TEXT"
        for masked in (False, True):
            x, _, _ = padded_batch(shape, masked, seed=1, text=text)
            keras.utils.set_random_seed(0)
            models = {
                "keras": build_model(keras.layers.LSTM, shape, masked, text, symbolic_batch=True),
                "fastlstm": build_model(fastlstm.LSTM, shape, masked, text, symbolic_batch=True),
            }
            models["fastlstm"].set_weights(models["keras"].get_weights())
            # model(x): Keras's ONNX export wants a model that was called.
            want = keras.ops.convert_to_numpy(models["keras"](x))
            models["fastlstm"](x)
            sessions, nodes = {}, {}
            for name, model in models.items():
                path = os.path.join(folder, f"{backend}-{shape_name}-{masked}-{name}.onnx")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.export(path, format="onnx", verbose=False)
                except Exception as e:
                    if name == "fastlstm":
                        raise
                    # Keras's own export fails (jax2onnx: Bidirectional's
                    # reverse scan): fastlstm's file is timed alone.
                    nodes[name] = f"export fails: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
                    continue
                found = ops(onnx.load(path).graph)
                nodes[name] = ", ".join(
                    f"{found.count(op)} {op}" for op in ("LSTM", "Loop", "Scan", "If") if op in found
                ) or f"{len(found)} nodes, the steps unrolled"
                sessions[name] = onnxruntime.InferenceSession(path)
            feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
            got = {k: s.run(None, feeds[k])[0] for k, s in sessions.items()}
            diff = max(float(np.abs(g - want).max()) for g in got.values())
            assert diff < 1e-4, f"ONNX {shape_name}: outputs differ from Keras by {diff}"
            fns = {k: (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()}
            med, raw = time_interleaved(fns, QUICK_REPEATS if quick else REPEATS[shape_name])
            rec = {
                "backend": backend, "shape": shape_name, "masked": masked, "nodes": nodes,
                "ms": {k: v * 1e3 for k, v in med.items()},
                "raw_ms": {k: [v * 1e3 for v in r] for k, r in raw.items()},
                "ratio": med["fastlstm"] / med["keras"] if "keras" in med else None,
                "max_abs_diff_vs_keras": diff,
            }
            records.append(rec)
            print(
                f"[onnxruntime, {backend}] {shape_name} {'left-padded' if masked else 'unmasked'}: "
                + "  ".join(f"{k} {rec['ms'].get(k, float('nan')):8.2f} ms ({nodes[k]})" for k in models)
                + (f"  ratio {rec['ratio']:.2f}" if rec["ratio"] else ""),
                flush=True,
            )
            keras.backend.clear_session()
    return records


def onnx_version():
    import onnxruntime

    return onnxruntime.__version__


def fmt_onnx(records):
    rows = [
        "| backend | shape | mask | keras.layers.LSTM (ms) | its ONNX nodes | fastlstm.LSTM (ms) | "
        "its ONNX nodes | fastlstm / keras |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        keras_ms = f"{r['ms']['keras']:.2f}" if "keras" in r["ms"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        rows.append(
            f"| {r['backend']} | {r['shape']} | {'left-padded' if r['masked'] else 'none'} | "
            f"{keras_ms} | {r['nodes']['keras']} | {r['ms']['fastlstm']:.2f} | "
            f"{r['nodes']['fastlstm']} | {ratio} |"
        )
    return "\n".join(rows)


def worker(backend, quick, out_path, only=None):
    os.environ["KERAS_BACKEND"] = backend
    import keras
    import numpy as np

    import fastlstm

    assert keras.config.backend() == backend
    device = backend_device(backend)
    shapes = QUICK_SHAPES if quick else SHAPES
    if only:
        shapes = {k: v for k, v in SHAPES.items() if k in only}
    records = []
    mixed = []
    if device == "cpu" and (only is None or "MIXED" in only):
        mixed = mixed_precision_records(backend, device, quick)
    onnx = []
    if backend in ONNX_BACKENDS and (only is None or "ONNX" in only):
        onnx = onnx_records(backend, quick)
    peak = None
    if device == "gpu":
        peak = device_peak(backend)
        print(f"[{backend}] GPU float32 GEMM peak {peak:.0f} GFLOP/s", flush=True)
    for shape_name, shape in shapes.items():
        policy = QUICK_REPEATS if quick else REPEATS[shape_name]
        text = shape_name == "TEXT"
        for masked in (False, True):
            x, y, pads = padded_batch(shape, masked, seed=1, text=text)
            keras.utils.set_random_seed(0)
            km = build_model(keras.layers.LSTM, shape, masked, text)
            fm = build_model(fastlstm.LSTM, shape, masked, text)
            fm.set_weights(km.get_weights())
            floor = None if text else build_floor_model(shape, masked)
            mask = (x != 0) if text else ((x != 0).any(-1) if masked else None)
            # What the LSTM sees (the plan needs its shape and dtype only).
            lstm_input = np.zeros(shape[:3], "float32") if text else x
            # Equal numbers first: a benchmark of wrong results is worthless.
            diff = float(
                np.abs(
                    np.asarray(fm.predict_on_batch(x)) - np.asarray(km.predict_on_batch(x))
                ).max()
            )
            ref = None
            if backend == "torch" and not text:
                ref = TorchReference(
                    km, shape, masked, x, y, pads, torch_device(device)
                )
                diff_t = float(
                    np.abs(
                        ref.forward().cpu().numpy() - np.asarray(km.predict_on_batch(x))
                    ).max()
                )
            for mode, training in (("forward", False), ("train", True)):
                plan = fastlstm.plan(lstm_of(fm), lstm_input, mask=mask, training=training)
                if mode == "forward":
                    fns = {
                        "fastlstm": lambda: fm.predict_on_batch(x),
                        "keras": lambda: km.predict_on_batch(x),
                    }
                    if ref is not None:
                        fns["torch.nn"] = ref.forward
                    if floor is not None:
                        fns[FLOOR] = lambda: floor.predict_on_batch(x)
                else:
                    fns = {
                        "fastlstm": lambda: fm.train_on_batch(x, y),
                        "keras": lambda: km.train_on_batch(x, y),
                    }
                    if ref is not None:
                        fns["torch.nn"] = ref.train
                if (backend, shape_name, mode, device) in SKIP_KERAS:
                    del fns["keras"]
                if (shape_name, mode, masked, device) in SKIP_TORCH:
                    fns.pop("torch.nn", None)
                try:
                    med, raw = time_interleaved(fns, policy)
                except Exception as e:  # report, and go on with the next case
                    msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
                    print(f"[{backend}] {shape_name} {mode} masked={masked} FAILED: {msg}",
                          flush=True)
                    records.append({
                        "backend": backend, "device": device, "shape": shape_name,
                        "dims": dict(zip(("batch", "time", "input", "units"), shape)),
                        "mode": mode, "masked": masked, "kernel": plan.kernel,
                        "error": msg,
                    })
                    continue
                flops = lstm_flops(shape, mode) * (2 if text else 1)  # two directions
                keras_ms = med.get("keras")
                rec = {
                    "backend": backend,
                    "device": device,
                    "shape": shape_name,
                    "dims": dict(zip(("batch", "time", "input", "units"), shape)),
                    "mode": mode,
                    "masked": masked,
                    "kernel": plan.kernel,
                    "repeats": len(raw["fastlstm"]),
                    "ms": {k: v * 1e3 for k, v in med.items()},
                    "raw_ms": {k: [t * 1e3 for t in v] for k, v in raw.items()},
                    "gflops": {k: flops / v / 1e9 for k, v in med.items() if k != FLOOR},
                    "ratio_keras": med["fastlstm"] / keras_ms if keras_ms else None,
                    "max_abs_diff_vs_keras": diff,
                    # The share of the batch's steps that are padding.
                    "padding": float(pads.sum()) / (shape[0] * shape[1]),
                }
                if "torch.nn" in med:
                    rec["ratio_torch"] = med["fastlstm"] / med["torch.nn"]
                    rec["max_abs_diff_torch_vs_keras"] = diff_t
                records.append(rec)
                extra = (
                    f" torch.nn {rec['ms']['torch.nn']:8.2f} ms ratio {rec['ratio_torch']:.2f}"
                    if "torch.nn" in med
                    else ""
                )
                keras_part = (
                    f"keras {keras_ms * 1e3:8.2f} ms  ratio {rec['ratio_keras']:.2f}"
                    if keras_ms
                    else "keras (not timed: too slow here)"
                )
                print(
                    f"[{backend}] {shape_name:4s} {mode:7s} "
                    f"{'left-padded' if masked else 'unmasked':11s} "
                    f"fastlstm {rec['ms']['fastlstm']:8.2f} ms  {keras_part}"
                    f"{extra}  [{plan.kernel}]",
                    flush=True,
                )
            del km, fm, ref, floor
            keras.backend.clear_session()
    versions = {"keras": keras.__version__}
    mod = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    versions[mod] = __import__(mod).__version__
    with open(out_path, "w") as f:
        json.dump(
            {"backend": backend, "device": device, "peak_gflops": peak,
             "versions": versions, "records": records, "mixed": mixed, "onnx": onnx},
            f,
        )


# --------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------


def available_backends():
    found = []
    for backend, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch")):
        if importlib.util.find_spec(module) is None:
            print(f"skipping {backend}: {module} is not installed", flush=True)
        else:
            found.append(backend)
    return found


def add_torch_anchor(records):
    """Every backend's rows get the torch.nn.LSTM time of the same case,
    timed in the PyTorch backend's process."""
    anchor = {
        (r["shape"], r["mode"], r["masked"]): r["ms"]["torch.nn"]
        for r in records
        if r["backend"] == "torch" and "torch.nn" in r.get("ms", {})
    }
    for r in records:
        key = (r["shape"], r["mode"], r["masked"])
        if r["backend"] == "torch" or "error" in r or key not in anchor:
            continue
        r["ms"]["torch.nn"] = anchor[key]
        r["ratio_torch"] = r["ms"]["fastlstm"] / anchor[key]
        r["torch_timed_in"] = "torch process"


def fmt_table(records, peak_cpu):
    lines = [
        "| backend | shape (B,T,I,U) | case | mask | kernel | fastlstm ms | keras ms | torch.nn ms | fastlstm/keras | fastlstm/torch.nn | fastlstm GFLOP/s (% peak) | keras GFLOP/s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        d = r["dims"]
        if "error" in r:
            lines.append(
                f"| {r['backend']} | {r['shape']} | {r['mode']} | "
                f"{'left-padded' if r['masked'] else 'none'} | {r['kernel']} | "
                f"failed: {r['error'][:80]} | | | | | | |"
            )
            continue
        dims = f"{r['shape']} ({d['batch']},{d['time']},{d['input']},{d['units']})"
        peak = r.get("peak_gflops") or peak_cpu
        g = r["gflops"]["fastlstm"]
        torch_ms = f"{r['ms']['torch.nn']:.2f}" if "torch.nn" in r["ms"] else "-"
        torch_ratio = f"{r['ratio_torch']:.2f}" if "ratio_torch" in r else "-"
        timed = "keras" in r["ms"]
        keras_ms = f"{r['ms']['keras']:.2f}" if timed else "not timed (too slow)"
        ratio = f"**{r['ratio_keras']:.2f}**" if timed else "-"
        keras_g = f"{r['gflops']['keras']:.1f}" if timed else "-"
        lines.append(
            f"| {r['backend']} | {dims} | {r['mode']} | "
            f"{'left-padded' if r['masked'] else 'none'} | {r['kernel']} | "
            f"{r['ms']['fastlstm']:.2f} | {keras_ms} | {torch_ms} | "
            f"{ratio} | {torch_ratio} | "
            f"{g:.1f} ({100 * g / peak:.0f}%) | {keras_g} |"
        )
    return "\n".join(lines)


def fmt_backends(records):
    """fastlstm on PyTorch and on TensorFlow against fastlstm on JAX, case by
    case: one compiled kernel should cost the same on every backend."""
    ms = {
        (r["backend"], r["shape"], r["mode"], r["masked"]): r["ms"]["fastlstm"]
        for r in records
        if "error" not in r
    }
    cases = sorted(
        {k[1:] for k in ms if k[0] == "jax"},
        key=lambda k: (list(SHAPES).index(k[0]), k[1], k[2]),
    )
    floors = {
        (r["backend"], r["shape"], r["masked"]): r["ms"][FLOOR]
        for r in records
        if "error" not in r and FLOOR in r["ms"]
    }
    lines = [
        "| shape | case | mask | jax ms | torch ms | torch/jax | tensorflow ms | tensorflow/jax"
        " | without the LSTM: jax, torch, tensorflow ms | less that: torch/jax, tensorflow/jax |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, mode, masked in cases:
        jax_ms = ms[("jax", shape, mode, masked)]
        cells = []
        for backend in ("torch", "tensorflow"):
            other = ms.get((backend, shape, mode, masked))
            cells += ["-", "-"] if other is None else [f"{other:.2f}", f"**{other / jax_ms:.2f}**"]
        # Inference only: the model without its LSTM, and each backend's
        # time less that floor against JAX's (what the LSTM adds).
        floor = {b: floors.get((b, shape, masked)) for b in ("jax", "torch", "tensorflow")}
        if mode == "forward" and floor["jax"] is not None:
            cells.append(", ".join("-" if floor[b] is None else f"{floor[b]:.2f}" for b in floor))
            above = jax_ms - floor["jax"]
            cells.append(", ".join(
                "-" if floor[b] is None or (b, shape, mode, masked) not in ms
                else f"{(ms[(b, shape, mode, masked)] - floor[b]) / above:.2f}"
                for b in ("torch", "tensorflow")
            ))
        else:
            cells += ["-", "-"]
        lines.append(
            f"| {shape} | {mode} | {'left-padded' if masked else 'none'} | "
            f"{jax_ms:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def fmt_padding(records):
    """Per backend and shape, fastlstm's time on the left-padded batch
    against its time on the unmasked one: what skipping the padding saves
    a whole model."""
    ms = {
        (r["backend"], r["shape"], r["mode"], r["masked"]): r
        for r in records
        if "error" not in r
    }
    lines = [
        "| backend | shape | padding | inference: left-padded / unmasked | training: left-padded / unmasked |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, shape in sorted(
        {(k[0], k[1]) for k in ms},
        key=lambda k: (k[0], list(SHAPES).index(k[1])),
    ):
        cells = []
        padding = None
        for mode in ("forward", "train"):
            padded, plain = ms.get((backend, shape, mode, True)), ms.get((backend, shape, mode, False))
            if padded is None or plain is None:
                cells.append("-")
                continue
            padding = padded.get("padding")
            cells.append(f"**{padded['ms']['fastlstm'] / plain['ms']['fastlstm']:.2f}**")
        share = "-" if padding is None else f"{100 * padding:.0f}%"
        lines.append(f"| {backend} | {shape} | {share} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if "error" not in r]
    labels = [
        f"{r['backend'][:5]} {r['shape']} {r['mode'][:5]}{' pad' if r['masked'] else ''}"
        for r in records
    ]
    ratios = [r["ratio_keras"] or float("nan") for r in records]
    colors = {"tensorflow": "#ff8f00", "jax": "#5e97f6", "torch": "#ee4c2c"}
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(records)), 5))
    xs = range(len(records))
    ax.bar(xs, ratios, color=[colors[r["backend"]] for r in records], label="fastlstm / keras")
    torch_x = [i for i, r in enumerate(records) if "ratio_torch" in r]
    if torch_x:
        ax.scatter(
            torch_x, [records[i]["ratio_torch"] for i in torch_x], marker="_", s=200,
            color="black", zorder=3, label="fastlstm / torch.nn.LSTM",
        )
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("time ratio (lower is faster)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced smoke-test set")
    ap.add_argument("--backends", default=None, help="comma-separated subset")
    ap.add_argument(
        "--shapes", default=None,
        help="comma-separated subset of S,M,L1,LONG,TEXT,MIXED (mixed_bfloat16 at M),"
        " ONNX (onnxruntime; Keras's ONNX exports)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    only = args.shapes.split(",") if args.shapes else None

    if args.worker:
        worker(args.worker, args.quick, args.out, only)
        return

    os.makedirs(RESULTS, exist_ok=True)
    backends = available_backends()
    if args.backends:
        backends = [b for b in backends if b in args.backends.split(",")]
    peak_cpu = numpy_peak()
    model = cpu_model()
    cores = os.cpu_count()
    print(f"CPU: {model}, {cores} cores; numpy float32 GEMM peak {peak_cpu:.1f} GFLOP/s", flush=True)

    started = time.time()
    records, mixed, onnx, meta = [], [], [], {}
    for backend in backends:
        tmp = os.path.join(RESULTS, f"worker-{backend}.json.tmp")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", backend, "--out", tmp]
        if args.quick:
            cmd.append("--quick")
        if args.shapes:
            cmd += ["--shapes", args.shapes]
        t0 = time.time()
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            print(f"[{backend}] worker failed with exit status {proc.returncode}", flush=True)
            continue
        with open(tmp) as f:
            res = json.load(f)
        for r in res["records"]:
            r["peak_gflops"] = res["peak_gflops"]
        records += res["records"]
        mixed += res.get("mixed", [])
        onnx += res.get("onnx", [])
        meta[backend] = {
            "device": res["device"], "versions": res["versions"],
            "peak_gflops": res["peak_gflops"], "seconds": round(time.time() - t0, 1),
        }
    if not records and not mixed and not onnx:
        sys.exit("no backend produced results")
    add_torch_anchor(records)

    device = "gpu" if any(r["device"] == "gpu" for r in records) else "cpu"
    suffix = ".tmp" if args.quick or only else ""
    stem = os.path.join(RESULTS, device)
    table = fmt_table(records, peak_cpu) if records else ""
    header = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {model} "
        f"({cores} cores), Python {platform.python_version()}; "
        + "; ".join(
            f"{b}: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
            for b, m in meta.items()
        )
        + f". CPU float32 GEMM peak (numpy, 2048^2): {peak_cpu:.1f} GFLOP/s."
        + "".join(
            f" {b} GPU float32 GEMM peak: {m['peak_gflops']:.0f} GFLOP/s."
            for b, m in meta.items() if m["peak_gflops"]
        )
        + f" Median of interleaved repeats{' (--quick)' if args.quick else ''}."
        + " torch.nn.LSTM is timed in the PyTorch backend's process and shown"
        + " in every backend's row of the same case."
    )
    if any(r["backend"] == "jax" for r in records):
        table += (
            "\n\nfastlstm on each backend against fastlstm on JAX (time ratio; "
            "the same compiled kernel everywhere, framework overhead apart). For "
            "inference, also the same model with its LSTM replaced by a pooling "
            "over time, timed with the rest: each framework's cost of a "
            "`predict_on_batch` without any LSTM, and each backend's time less "
            "that cost against JAX's:\n\n"
            + fmt_backends(records)
        )
    if any(r["masked"] for r in records):
        table += (
            "\n\nfastlstm's time on the left-padded batch against its time on the "
            "unmasked one, the same backend and shape (the left-padded model has "
            "its Masking layer; TEXT's unmasked rows are masked too, nothing "
            "padded):\n\n" + fmt_padding(records)
        )
    if mixed:
        table += (
            f"\n\nMixed precision ({MIXED_POLICY}) at {MIXED_SHAPE}, unmasked, against "
            "fastlstm in float32 and Keras under the same policy (ms; time ratios):\n\n"
            + fmt_mixed(mixed)
        )
    if onnx:
        table += (
            "\n\nONNX: Keras's `model.export(format=\"onnx\")` (tf2onnx on TensorFlow, "
            "torch.onnx on PyTorch, jax2onnx on JAX) of the same model with each LSTM, a symbolic batch, "
            "run in onnxruntime "
            f"{onnx_version()} on this CPU (ms per batch; time ratio):\n\n"
            + fmt_onnx(onnx)
        )
    print()
    print(header)
    print()
    print(table)
    summary = {
        "machine": {"cpu": model, "cores": cores, "python": platform.python_version()},
        "cpu_peak_gflops": peak_cpu,
        "quick": args.quick,
        "backends": meta,
        "seconds": round(time.time() - started, 1),
        "records": records,
        "mixed": mixed,
        "onnx": onnx,
    }
    with open(stem + ".json" + suffix, "w") as f:
        json.dump(summary, f, indent=1)
    with open(stem + ".md" + suffix, "w") as f:
        f.write(header + "\n\n" + table + "\n")
    if records:
        plot(records, stem + ".png" + suffix, f"fastlstm / baseline time ratio, {device} ({model})")
    print(f"\nwrote {stem}.json{suffix}, {stem}.md{suffix}, {stem}.png{suffix} "
          f"in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
