"""Shared helpers for the test suite.

Keras runs inside the pytest process (one process imports TensorFlow); tests that
need it use the ``keras`` fixture and skip cleanly where it is not installed.
"""

import os

import numpy as np
import pytest

import background

# The Keras side: the repository's reference/ here, minirnn.reference where installed.
from minirnn.cli.keras_support import reference  # noqa: F401  (used by the test modules)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Tolerances against Keras, justified in reference/cases.py and docs/exactness.md.
ATOL = {"float32": 1e-6, "float64": 1e-12}
RTOL = {"float32": 1e-6, "float64": 1e-12}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "background(job): the test reads a background.Job's child process, "
        "which runs beside the other tests (see tests/background.py)")


def _job_of(item):
    """The background.Job an item reads, or None (also when a skip mark skips it)."""
    mark = item.get_closest_marker("background")
    if mark is None:
        return None
    try:
        from _pytest.skipping import evaluate_skip_marks
        if evaluate_skip_marks(item) is not None:
            return None
    except Exception:  # pytest's internals moved, or a condition failed: run the job
        pass
    return mark.args[0]


def pytest_collection_modifyitems(session, config, items):
    """Tests that read a child process go last, so their children have the whole
    session to run in."""
    last = {item for item in items if _job_of(item) is not None}
    items[:] = [item for item in items if item not in last] + \
        [item for item in items if item in last]


def pytest_collection_finish(session):
    """Start the children of the collected tests, one at a time, beside the suite."""
    if session.config.option.collectonly:
        return
    for job in map(_job_of, session.items):
        if job is not None and job not in _jobs:
            _jobs.append(job)
    if _jobs:
        _runner.append(background.run_one_by_one(list(_jobs)))


def pytest_sessionfinish(session, exitstatus):
    """Stop every child (a job not started yet never starts) and remove its folder."""
    for job in _jobs:
        job.stop()
    for thread in _runner:
        thread.join(timeout=60)


_jobs, _runner = [], []


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
