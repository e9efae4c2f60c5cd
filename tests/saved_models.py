"""The saved-model fixtures shared by test_model.py and test_files.py.

reference/model_files.py builds them with Keras 3 and tf-keras, in two subprocesses
(the two cannot share a process, and this keeps TensorFlow out of the tests that
only read files). They are made once per session in a temporary folder, by a child process that
runs beside the other tests.
"""

import json
import os

import numpy as np
import pytest

from background import module_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Written in a child process that starts when collection ends and runs beside the other
# tests (tests/background.py); the modules that read it mark their tests with it.
FILES = module_job("reference.model_files", ["{folder}/saved_models"], kernels=False)
READERS = pytest.mark.background(FILES)


def model_dir():
    """The folder with every fixture file and manifest.json."""
    for module in ("tensorflow", "keras", "tf_keras", "h5py"):
        pytest.importorskip(module) if module == "h5py" else _require(module)
    result = FILES.result()
    if result.returncode != 0:
        raise RuntimeError("reference.model_files failed:\n" + result.stderr[-4000:])
    return os.path.join(FILES.folder, "saved_models")


def _require(module):
    import importlib.util
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: the saved-model fixtures need it")


def manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as handle:
        return json.load(handle)


def arrays(directory, name):
    """(inputs, Keras' outputs) of a fixture model."""
    data = np.load(os.path.join(directory, f"{name}.npz"))
    xs = [data[f"x{k}"] for k in range(len(data.files)) if f"x{k}" in data.files]
    ys = [data[f"y{k}"] for k in range(len(data.files)) if f"y{k}" in data.files]
    return xs, ys
