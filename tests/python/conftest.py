"""Test setup shared by the Python suites.

Two CPU devices for the scale-out tests: JAX reads XLA_FLAGS at import, and
TensorFlow's logical devices must be set before its runtime starts, so both
happen here, before any test module imports a backend.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()


def pytest_configure(config):
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow as tf

        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )


# Modules that only one backend's engine can run: each backend collects its
# own (no skipped tests for the others).
BACKEND_ONLY = {
    "test_native_tensorflow.py": ("tensorflow",),
    "test_native_jax.py": ("jax",),
    "test_native_torch.py": ("torch",),
}
collect_ignore = [
    name
    for name, backends in BACKEND_ONLY.items()
    if os.environ.get("KERAS_BACKEND", "tensorflow") not in backends
]
