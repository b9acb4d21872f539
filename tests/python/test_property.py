"""Property test: random shapes, masks and options against keras.layers.LSTM."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import assert_all_close, build_pair, forward, make_mask, pair


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.integers(1, 4),
    steps=st.integers(1, 6),
    features=st.integers(1, 4),
    units=st.integers(1, 5),
    mask_kind=st.sampled_from(["none", "right", "left", "holes", "empty"]),
    return_sequences=st.booleans(),
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    with_state=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_configurations_match_keras(
    batch, steps, features, units, mask_kind, return_sequences, go_backwards,
    zero_output_for_mask, with_state, seed,
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, features)).astype("float32")
    states = [rng.standard_normal((batch, units)).astype("float32") for _ in range(2)]
    layer, ref = pair(
        units, return_sequences=return_sequences, return_state=True,
        go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
    )
    build_pair(layer, ref, input_shape=x.shape)
    mask = make_mask(mask_kind, batch, steps, seed=seed) if steps > 1 else None
    init = states if with_state else None
    assert_all_close(forward(layer, x, mask, init), forward(ref, x, mask, init))
