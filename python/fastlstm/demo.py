"""fastlstm on padded variable-length sequences: `python -m fastlstm.demo`.

Sequences of 5 to 60 steps are left-padded with `keras.utils.pad_sequences`
(its default, padding="pre") and go through a `Masking` layer into
`fastlstm.LSTM`. The demo shows which kernel each call runs
(`fastlstm.plan`), trains a small classifier for a few epochs, copies its
weights into `keras.layers.LSTM` to show that the two layers give the same
numbers, times a forward pass of each, and saves and reloads the model.
It runs on the configured Keras backend (KERAS_BACKEND) in well under a
minute on a two-core CPU and exits non-zero if any check fails.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import fastlstm  # noqa: E402

MAX_LEN = 60
FEATURES = 2
UNITS = 32


def make_data(n, rng):
    """Variable-length sequences of noisy steps; the label is whether the
    first feature sums to more than zero over the sequence's own steps."""
    lengths = rng.integers(5, MAX_LEN + 1, size=n)
    sequences = [
        rng.normal(0.0, 1.0, size=(int(length), FEATURES)).astype("float32")
        for length in lengths
    ]
    labels = np.array([s[:, 0].sum() > 0 for s in sequences], dtype="float32")
    x = keras.utils.pad_sequences(sequences, maxlen=MAX_LEN, dtype="float32")
    return x, labels, lengths


def build(lstm_class):
    return keras.Sequential(
        [
            keras.Input((MAX_LEN, FEATURES)),
            keras.layers.Masking(mask_value=0.0),
            lstm_class(UNITS),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def forward_seconds(model, x, repeats=5):
    """Median seconds of one compiled forward pass over `x`."""
    model.predict(x, batch_size=len(x), verbose=0)  # trace/compile once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=len(x), verbose=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def check(condition, message):
    if not condition:
        sys.exit(f"fastlstm.demo: FAILED: {message}")


def main():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    backend = keras.backend.backend()
    print(f"Keras {keras.__version__} on the {backend} backend, "
          f"fastlstm {fastlstm.__version__}")

    x_train, y_train, lengths = make_data(3000, rng)
    x_test, y_test, _ = make_data(1000, rng)
    print(f"{len(x_train)} training and {len(x_test)} test sequences, "
          f"{lengths.min()} to {lengths.max()} steps, left-padded to "
          f"{MAX_LEN}")
    print("first row's padding:", x_train[0, :3, 0], "...",
          f"({MAX_LEN - lengths[0]} padded steps)")

    # 1. Which kernel runs for the left-padded batch, here and on a GPU.
    model = build(fastlstm.LSTM)
    lstm = model.layers[1]
    mask = np.any(x_test != 0.0, axis=-1)  # what Masking(0.0) computes
    here = fastlstm.plan(lstm, x_test, mask=mask)
    gpu = fastlstm.plan(lstm, x_test, mask=mask, device="gpu")
    print("\n== fastlstm.plan for the left-padded test batch, on this machine")
    print(here)
    print("\n== ... and on a GPU")
    print(gpu)
    print(
        "\nkeras.layers.LSTM needs strictly right-padded input for cuDNN; "
        f"fastlstm runs this left-padded batch on '{gpu.kernel}' on a GPU."
    )
    check(gpu.kernel == "cudnn", "a left-padded batch should run on cuDNN")

    # 2. Train a few epochs.
    print("\n== training fastlstm.LSTM")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.005),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=5, batch_size=64, verbose=2)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.3f} "
          f"(chance: {max(y_test.mean(), 1 - y_test.mean()):.3f})")
    check(accuracy > 0.8, f"test accuracy {accuracy:.3f} is not above 0.8")

    # 3. The same weights in keras.layers.LSTM give the same numbers.
    reference = build(keras.layers.LSTM)
    reference.set_weights(model.get_weights())
    reference.compile(loss="binary_crossentropy", metrics=["accuracy"])
    ours = model.predict(x_test, batch_size=250, verbose=0)
    theirs = reference.predict(x_test, batch_size=250, verbose=0)
    diff = float(np.max(np.abs(ours - theirs)))
    ref_loss, ref_accuracy = reference.evaluate(x_test, y_test, verbose=0)
    print("\n== the same weights in keras.layers.LSTM")
    print(f"test loss {ref_loss:.4f}, test accuracy {ref_accuracy:.3f}; "
          f"largest difference in predicted probability: {diff:.2e}")
    check(diff < 1e-5, f"fastlstm and keras.layers.LSTM differ by {diff:.2e}")

    # 4. Forward pass time, one batch of the 1000 left-padded test rows.
    t_ours = forward_seconds(model, x_test)
    t_theirs = forward_seconds(reference, x_test)
    print(f"\n== forward pass, {len(x_test)} left-padded rows on {here.device}")
    print(f"fastlstm.LSTM ({here.kernel}): {1000 * t_ours:7.1f} ms")
    print(f"keras.layers.LSTM:     {1000 * t_theirs:7.1f} ms  "
          f"(fastlstm is {t_theirs / t_ours:.2f}x as fast)")
    if here.kernel == "loop":
        print("(no fused kernel here; fastlstm.plan() above says why)")

    # 5. Save and reload: no custom_objects needed.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "padded.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        same = np.array_equal(
            restored.predict(x_test, batch_size=250, verbose=0), ours
        )
    print(f"\nsaved and reloaded as .keras: "
          f"{type(restored.layers[1]).__module__}."
          f"{type(restored.layers[1]).__name__}, identical predictions: {same}")
    check(same, "the reloaded model predicts differently")
    print("\nfastlstm.demo: OK")


if __name__ == "__main__":
    main()
