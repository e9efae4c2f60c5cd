"""Shared helpers for the test suite.

Keras runs inside the pytest process (one process imports TensorFlow); tests that
need it use the ``keras`` fixture and skip cleanly where it is not installed.
"""

import os

import numpy as np
import pytest

# The Keras side: the repository's reference/ here, minirnn.reference where installed.
from minirnn.cli.keras_support import reference  # noqa: F401  (used by the test modules)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Tolerances against Keras, justified in reference/cases.py and the README.
ATOL = {"float32": 1e-6, "float64": 1e-12}
RTOL = {"float32": 1e-6, "float64": 1e-12}


@pytest.fixture(scope="session")
def keras():
    pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


def case(**overrides):
    """A reference.cases case dict: a plain layer with every option off, then overrides."""
    base = {
        "kind": "LSTM", "wrapper": "none", "merge_mode": "concat", "dtype": "float64",
        "B": 3, "T": 6, "D": 4, "M": 5, "activation": "tanh",
        "recurrent_activation": "sigmoid", "use_bias": True, "return_sequences": False,
        "return_state": False, "go_backwards": False, "stateful": False,
        "zero_output_for_mask": False, "mask": "none", "initial_state": False,
        "inference_only": False, "seed": 7,
    }
    unknown = set(overrides) - set(base)
    assert not unknown, unknown
    base.update(overrides)
    return base


def assert_close(ours, theirs, dtype):
    """Element-wise |ours - theirs| <= ATOL + RTOL |theirs|, NaN where Keras has NaN."""
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=RTOL[dtype],
                               atol=ATOL[dtype], equal_nan=True)


def random_weights(kind, D, M, use_bias=True, reset_after=True, dtype="float64", seed=0):
    make = reference("keras_layers").random_weights
    return make(np.random.default_rng(seed), kind, D, M, use_bias, reset_after, dtype)
