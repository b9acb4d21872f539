"""Peak memory of one inference call, in a process of its own.

    python memory_probe.py {fastlstm,keras} {call,predict} BATCH STEPS FEATURES UNITS

Prints one JSON line: the resident set before the call and its peak during
it, in MiB (Linux: /proc/self/clear_refs resets the peak, VmHWM reads it).
Inference is what Keras makes it: a plain call, or predict(); on PyTorch
both run without autograd (predict() does so itself).
"""

import contextlib
import json
import sys


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(field)


def main(impl, mode, batch, steps, features, units):
    import keras
    import numpy as np

    import fastlstm

    cls = fastlstm.LSTM if impl == "fastlstm" else keras.layers.LSTM
    layer = cls(units)
    x = np.random.default_rng(0).standard_normal((batch, steps, features)).astype("float32")
    inference = contextlib.nullcontext
    if keras.config.backend() == "torch":
        import torch

        inference = torch.no_grad
    if mode == "call":

        def run(a):
            with inference():
                return keras.ops.convert_to_numpy(layer(a))

    else:
        model = keras.Sequential([keras.Input((steps, features)), layer])

        def run(a):
            return model.predict(a, batch_size=len(a), verbose=0)

    run(x[:2])  # traces and builds at a small batch
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = vm("VmRSS")
    run(x)
    print(json.dumps({"before_mib": before, "peak_mib": vm("VmHWM")}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7]))
