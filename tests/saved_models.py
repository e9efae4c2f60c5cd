"""The saved-model fixtures shared by test_model.py and test_files.py.

reference/model_files.py builds them with Keras 3 and tf-keras, in two subprocesses
(the two cannot share a process, and this keeps TensorFlow out of the tests that
only read files). They are made once per session in a temporary folder.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CACHE = {}


def model_dir(tmp_path_factory):
    """The folder with every fixture file and manifest.json (built on first use)."""
    if "dir" not in _CACHE:
        for module in ("tensorflow", "keras", "tf_keras", "h5py"):
            pytest.importorskip(module) if module == "h5py" else _require(module)
        out = str(tmp_path_factory.mktemp("saved_models"))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT + os.pathsep
               + os.environ.get("PYTHONPATH", "")}
        result = subprocess.run([sys.executable, "-m", "reference.model_files", out], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError("reference.model_files failed:\n" + result.stderr[-4000:])
        _CACHE["dir"] = out
    return _CACHE["dir"]


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
