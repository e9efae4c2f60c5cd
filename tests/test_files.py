"""Reading model files safely: a file is data, never code.

Refusals (Lambda, custom objects, unsupported layers), HDF5 links and external or
virtual datasets, size limits, truncated and corrupt files, weights that do not fit
their configuration, the unzipped-folder form, and a fuzz run over mutated files in
a subprocess (tests/fuzz_model_files.py).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minirnn
from minirnn.files import safety
from tests import saved_models

pytestmark = saved_models.READERS  # the fixture files come from a child process

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def files():
    return saved_models.model_dir()


def _copy(files, name, tmp_path):
    target = str(tmp_path / name)
    shutil.copy(os.path.join(files, name), target)
    return target


def _rewrite_keras(path, config=None, weights=None):
    """Rewrite a .keras zip with another config.json and/or model.weights.h5."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if config is not None:
        members["config.json"] = json.dumps(config).encode()
    if weights is not None:
        members["model.weights.h5"] = weights
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _layer(config, class_name):
    return next(layer for layer in config["config"]["layers"]
                if layer["class_name"] == class_name)


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_lambda_is_refused_and_its_code_never_runs(files, tmp_path, monkeypatch, name):
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("MINIRNN_MARKER", str(marker))
    with pytest.raises(ValueError, match=r"'evil'.*'Lambda'.*code.*Supported layers: "
                                         r"InputLayer, Embedding"):
        minirnn.load_model(os.path.join(files, name))
    assert not marker.exists()


def test_custom_object_module_is_never_imported(files, tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "minirnn_evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _copy(files, "dense_lstm.keras", tmp_path)
    config = _config(path)
    dense = _layer(config, "Dense")
    dense.update(module="minirnn_evil_module", registered_name="Custom>Dense")
    _rewrite_keras(path, config)
    with pytest.raises(ValueError, match=r"layer 'dense[_0-9]*' uses the custom object 'Dense'"):
        minirnn.load_model(path)
    dense.update(module="keras.layers", registered_name=None, class_name="MyDense")
    _rewrite_keras(path, config)
    with pytest.raises(ValueError, match=r"'MyDense', which is not supported.*Supported"):
        minirnn.load_model(path)
    assert not marker.exists() and "minirnn_evil_module" not in sys.modules


@pytest.mark.parametrize("class_name", ["Conv3D", "GroupNormalization", "ConvLSTM1D"])
def test_unsupported_layer_is_refused_with_the_list(files, tmp_path, class_name):
    path = _copy(files, "dense_lstm.keras", tmp_path)
    config = _config(path)
    _layer(config, "Dense")["class_name"] = class_name
    _rewrite_keras(path, config)
    with pytest.raises(ValueError, match=rf"{path}: .*'{class_name}'.*Supported layers:.*LSTM"):
        minirnn.load_model(path)


def test_every_refusal_at_once(files, tmp_path):
    """A model with several unsupported layers, settings and custom objects is
    refused with all of them listed, not only the first."""
    path = _copy(files, "text_bilstm.keras", tmp_path)
    config = _config(path)
    layers = config["config"]["layers"]
    dense = [layer for layer in layers if layer["class_name"] == "Dense"][-1]
    dense["class_name"] = "Conv3D"
    bidirectional = _layer(config, "Bidirectional")
    bidirectional["config"]["layer"]["config"]["time_major"] = True
    embedding = _layer(config, "Embedding")
    embedding["config"]["embeddings_regularizer"] = {
        "module": "my_package.regularizers", "class_name": "Smooth", "config": {},
        "registered_name": "my_package>Smooth"}
    _rewrite_keras(path, config)
    with pytest.raises(ValueError) as caught:
        minirnn.load_model(path)
    text = str(caught.value)
    assert "3 things minirnn does not reproduce" in text, text
    for part in ("'Conv3D'", "time_major=True", "custom object 'Smooth'"):
        assert part in text, (part, text)
    assert text.count("Supported layers:") == 1


def test_custom_loss_in_training_config_is_not_read(files, tmp_path):
    """Inference never reads the loss: a custom one (Keras 3 compile_config, Keras 2
    training_config) does not refuse the model."""
    path = _copy(files, "dense_lstm.keras", tmp_path)
    config = _config(path)
    config["compile_config"] = {"loss": {"module": "builtins", "class_name": "function",
                                         "config": "my_loss", "registered_name": "function"},
                                "optimizer": "adam"}
    _rewrite_keras(path, config)
    want = minirnn.load_model(os.path.join(files, "dense_lstm.keras"))
    x = want.example_inputs(2)
    np.testing.assert_array_equal(minirnn.load_model(path)(x), want(x))


def _h5py2_layout(path):
    """Rewrite a legacy .h5 model's text attributes as h5py 2.x wrote them (every
    Keras 2 file before about 2021): fixed-length byte strings (numpy.bytes_) for
    model_config, keras_version and backend, fixed-length string arrays for
    layer_names and weight_names; training_config as a fixed-length string too."""
    with h5py.File(path, "r+") as f:
        for key in ("model_config", "keras_version", "backend", "training_config"):
            if key in f.attrs:
                value = f.attrs[key]
                value = value.encode() if isinstance(value, str) else bytes(value)
                del f.attrs[key]
                f.attrs[key] = np.bytes_(value)
        groups = [f["model_weights"]] + [f["model_weights"][n] for n in
                                         f["model_weights"].attrs["layer_names"]]
        for group in groups:
            for key in ("layer_names", "weight_names"):
                if key in group.attrs:
                    names = [n.encode() if isinstance(n, str) else bytes(n)
                             for n in group.attrs[key]]
                    del group.attrs[key]
                    group.attrs[key] = np.array(names, dtype="S") if names else \
                        np.zeros(0, "float64")


@pytest.mark.parametrize("name", ["k2_bidir", "k2_cells", "k2_sequential", "text_bilstm",
                                  "k2_cudnn"])
def test_h5py2_fixed_length_strings(files, tmp_path, name):
    path = _copy(files, f"{name}.h5", tmp_path)
    _h5py2_layout(path)
    with h5py.File(path, "r") as f:  # the layout really is h5py 2.x's
        assert isinstance(f.attrs["keras_version"], np.bytes_)
        assert f["model_weights"].attrs["layer_names"].dtype.kind == "S"
    xs, ys = saved_models.arrays(files, name)
    got = minirnn.load_model(path)(xs if len(xs) > 1 else xs[0])
    for a, b in zip(got if isinstance(got, list) else [got], ys):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_keras20_sequential_list_config(files, tmp_path):
    """Keras 2.0 to 2.2.2 wrote a Sequential's configuration as the list of its
    layers; it loads as the same model."""
    path = _copy(files, "k2_sequential.h5", tmp_path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential"
        layers = [layer for layer in config["config"]["layers"]
                  if layer["class_name"] != "InputLayer"]
        layers[0]["config"]["batch_input_shape"] = config["config"]["layers"][0][
            "config"]["batch_input_shape"]
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
        f.attrs["keras_version"] = "2.1.6"
    xs, ys = saved_models.arrays(files, "k2_sequential")
    np.testing.assert_allclose(minirnn.load_model(path)(xs[0]), ys[0], atol=1e-6, rtol=1e-6)


def test_json_architecture_refusals(files, tmp_path):
    """A JSON architecture needs its weights file; the weights file must be HDF5 in
    one of Keras' layouts and fit the architecture."""
    config = os.path.join(files, "dense_lstm.json")
    with pytest.raises(ValueError, match="pass its weights file too"):
        minirnn.load_model(config)
    text = tmp_path / "w.h5"
    text.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match=r"w\.h5: the weights file is not an HDF5 file"):
        minirnn.load_model(config, weights=text)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("other")
    with pytest.raises(ValueError, match="holds no Keras weights"):
        minirnn.load_model(config, weights=empty)
    with pytest.raises(ValueError, match="weight"):  # another model's weights
        minirnn.load_model(config, weights=os.path.join(files, "k2_bidir.weights.h5"))
    with pytest.raises(ValueError, match="not a Keras model architecture"):
        minirnn.load_model(os.path.join(files, "manifest.json"),
                           weights=os.path.join(files, "dense_lstm.weights.h5"))
    with pytest.raises(TypeError, match="`weights` must be a file path"):
        minirnn.load_model(config, weights=3)


def _edit_h5_config(path, edit, version=None):
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
        if version is not None:
            f.attrs["keras_version"] = version


def _walk_configs(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk_configs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_configs(item)


@pytest.mark.parametrize("name", ["k2_bidir", "k2_hard"])
def test_keras21_gru_without_reset_after(files, tmp_path, name):
    """Keras before 2.1.3 wrote GRU configurations without reset_after (it was always
    False then); such a file runs with reset_after=False, whatever its version says."""
    path = _copy(files, f"{name}.h5", tmp_path)

    def drop(config):
        grus = [c for c in _walk_configs(config) if c.get("class_name") == "GRU"]
        assert grus and all(not g["config"]["reset_after"] for g in grus)
        for gru in grus:
            del gru["config"]["reset_after"]

    _edit_h5_config(path, drop, "2.1.2")
    xs, ys = saved_models.arrays(files, name)
    got = minirnn.load_model(path)(xs if len(xs) > 1 else xs[0])
    for a, b in zip(got if isinstance(got, list) else [got], ys):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


_LEGACY_MODES = {"Add": "sum", "Multiply": "mul", "Maximum": "max", "Average": "ave",
                 "Concatenate": "concat"}


@pytest.mark.parametrize("name", ["k2_merges", "k2_misc"])
def test_keras20_legacy_merge(files, tmp_path, name):
    """Keras 2.0's legacy Merge layer (mode sum, mul, max, ave, concat) computes what
    the merge layers that replaced it compute, masks included (k2_merges masks)."""
    path = _copy(files, f"{name}.h5", tmp_path)
    changed = []

    def legacy(config):
        for layer in config["config"]["layers"]:
            mode = _LEGACY_MODES.get(layer["class_name"])
            if mode is not None:
                layer["class_name"] = "Merge"
                layer["config"] = {"name": layer["config"]["name"], "mode": mode,
                                   "mode_type": "raw", "concat_axis":
                                   layer["config"].get("axis", -1), "dot_axes": -1,
                                   "output_shape": None, "output_shape_type": "raw",
                                   "output_mask": None, "output_mask_type": "raw",
                                   "arguments": {}}
                changed.append(mode)

    _edit_h5_config(path, legacy, "2.0.6")
    assert changed
    xs, ys = saved_models.arrays(files, name)
    got = minirnn.load_model(path)(xs if len(xs) > 1 else xs[0])
    for a, b in zip(got if isinstance(got, list) else [got], ys):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)

    def function_mode(config):
        merge = next(c for c in config["config"]["layers"] if c["class_name"] == "Merge")
        merge["config"].update(mode=["base64 of marshalled code"], mode_type="function")

    _edit_h5_config(path, function_mode)
    with pytest.raises(ValueError, match="mode is a Python function stored in the file"):
        minirnn.load_model(path)


def test_keras1_files_are_refused_by_name(files, tmp_path):
    path = _copy(files, "k2_sequential.h5", tmp_path)
    _edit_h5_config(path, lambda config: None, "1.2.2")
    with pytest.raises(ValueError, match="written by Keras 1.2.2; minirnn reads files of "
                                         "Keras 2.0 and later"):
        minirnn.load_model(path)

    def keras1(config):
        lstm = next(c for c in _walk_configs(config) if c.get("class_name") == "LSTM")
        lstm["config"]["output_dim"] = lstm["config"].pop("units")

    _edit_h5_config(path, keras1, "2.0.0")
    with pytest.raises(ValueError, match=r"\(LSTM\): a Keras 1 configuration"):
        minirnn.load_model(path)


def test_refused_settings_name_the_layer(files, tmp_path):
    path = _copy(files, "dense_lstm.keras", tmp_path)
    config = _config(path)
    _layer(config, "LSTM")["config"]["dtype"] = {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"},
        "registered_name": None}
    _rewrite_keras(path, config)
    with pytest.raises(ValueError, match=r"layer 'lstm[_0-9]*' \(LSTM\).*mixed_float16"):
        minirnn.load_model(path)
    config = _config(os.path.join(files, "dense_lstm.keras"))
    _layer(config, "LSTM")["config"]["time_major"] = True
    _rewrite_keras(path, config)
    with pytest.raises(ValueError, match=r"\(LSTM\): time_major=True"):
        minirnn.load_model(path)


@pytest.mark.parametrize("kind", ["soft", "external", "external-dataset", "virtual"])
@pytest.mark.parametrize("name", ["text_bilstm.h5", "text_bilstm.keras"])
def test_hdf5_links_and_outside_data_are_refused(files, tmp_path, kind, name):
    path = _copy(files, name, tmp_path)
    weights = str(tmp_path / "weights.h5")
    if name.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            open(weights, "wb").write(archive.read("model.weights.h5"))
    else:
        weights = path
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(4, "float32").tobytes())
    with h5py.File(weights, "r+") as f:
        group = f["layers"] if "layers" in f else f["model_weights"]
        if kind == "soft":
            group["sneaky"] = h5py.SoftLink("/some/where")
        elif kind == "external":
            group["sneaky"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
        elif kind == "external-dataset":
            group.create_dataset("sneaky", shape=(4,), dtype="float32",
                                 external=[(str(outside), 0, 16)])
        else:
            layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "x", shape=(4,))
            group.create_virtual_dataset("sneaky", layout)
    if name.endswith(".keras"):
        _rewrite_keras(path, weights=open(weights, "rb").read())
    words = {"soft": "soft link", "external": "external link",
             "external-dataset": "external file", "virtual": "virtual dataset"}[kind]
    with pytest.raises(ValueError, match=rf"{path}: .*{words}"):
        minirnn.load_model(path)


def test_size_limits(files, tmp_path, monkeypatch):
    path = _copy(files, "text_bilstm.keras", tmp_path)
    monkeypatch.setitem(safety.LIMITS, "json_bytes", 1000)
    with pytest.raises(ValueError, match=r"config.json.*over the limit of 1000"):
        minirnn.load_model(path)
    monkeypatch.setitem(safety.LIMITS, "json_bytes", 64 * 2**20)
    monkeypatch.setitem(safety.LIMITS, "weights_bytes", 2000)
    with pytest.raises(ValueError, match=r"model.weights.h5.*over the limit"):
        minirnn.load_model(path)


def test_zip_bomb_is_not_inflated(tmp_path):
    """A small zip whose config.json would inflate to 200 MB: refused by its size."""
    path = str(tmp_path / "bomb.keras")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (200 * 2**20))
        archive.writestr("model.weights.h5", b"")
    assert os.path.getsize(path) < 2**20
    with pytest.raises(ValueError, match=r"config.json.*over the limit"):
        minirnn.load_model(path)


def test_deep_json_is_refused(files, tmp_path):
    path = _copy(files, "dense_lstm.keras", tmp_path)
    config = _config(path)
    text = json.dumps(config)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["config.json"] = text.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)
    with pytest.raises(ValueError, match="nested"):
        minirnn.load_model(path)


@pytest.mark.parametrize("name", ["text_bilstm.keras", "text_bilstm.h5", "k2_hard.h5"])
def test_truncated_files(files, tmp_path, name):
    data = open(os.path.join(files, name), "rb").read()
    for fraction in (0.1, 0.5, 0.9, 0.999):
        path = str(tmp_path / f"cut{fraction}{os.path.splitext(name)[1]}")
        open(path, "wb").write(data[:int(len(data) * fraction)])
        with pytest.raises(ValueError, match=rf"{path}: "):
            minirnn.load_model(path)


def test_not_a_model_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a Keras model file"):
        minirnn.load_model(str(text))
    with pytest.raises(ValueError, match="no such file"):
        minirnn.load_model(str(tmp_path / "missing.keras"))
    weights_only = str(tmp_path / "weights.h5")
    with h5py.File(weights_only, "w") as f:
        f.create_group("dense").create_dataset("kernel:0", data=np.ones((2, 2)))
    with pytest.raises(ValueError, match="weights only"):
        minirnn.load_model(weights_only)
    empty = str(tmp_path / "empty.keras")
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("hello.txt", "x")
    with pytest.raises(ValueError, match="no config.json"):
        minirnn.load_model(empty)


def test_weights_must_fit_the_configuration(files, tmp_path):
    path = _copy(files, "text_bilstm.h5", tmp_path)
    with h5py.File(path, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in f["model_weights"].attrs["layer_names"]]
        dense = f["model_weights"][names[-1]]
        weight = dense.attrs["weight_names"][0]
        weight = weight.decode() if isinstance(weight, bytes) else weight
        shape = dense[weight].shape
        del dense[weight]
        dense.create_dataset(weight, data=np.ones((shape[0] + 1, shape[1]), "float32"))
    with pytest.raises(ValueError, match=rf"layer '{names[-1]}' \(Dense\): weight 0 must "
                                         rf"have shape \({shape[0]}, {shape[1]}\)"):
        minirnn.load_model(path)
    with h5py.File(path, "r+") as f:
        dense = f["model_weights"][names[-1]]
        del dense[weight]
        dense.create_dataset(weight, data=np.ones(shape, "int32"))
    with pytest.raises(ValueError, match=r"weight 0 must be float32; the file holds int32"):
        minirnn.load_model(path)
    with h5py.File(path, "r+") as f:
        del f["model_weights"][names[-1]][weight]
    with pytest.raises(ValueError, match="not in the file"):
        minirnn.load_model(path)


def test_unzipped_folder(files, tmp_path):
    folder = tmp_path / "model"
    with zipfile.ZipFile(os.path.join(files, "seq2seq.keras")) as archive:
        archive.extractall(folder)
    xs, ys = saved_models.arrays(files, "seq2seq")
    model = minirnn.load_model(str(folder))
    for got, want in zip(model(xs), ys):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)
    assert model.source["format"] == "keras"
    os.rename(folder / "config.json", folder / "real.json")
    os.symlink(folder / "real.json", folder / "config.json")
    with pytest.raises(ValueError, match="symbolic link"):
        minirnn.load_model(str(folder))


def test_fuzzed_files_end_in_a_load_or_a_value_error(files):
    """2,000 mutated files (bytes, truncation, JSON fields, HDF5 attributes and
    shapes), in two subprocesses of 1,000 cases: each case loads or raises ValueError."""
    env = {**os.environ, "PYTHONPATH": saved_models.ROOT + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz_model_files", files, "1000", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=saved_models.ROOT,
        env=env) for seed in (20261128, 20261129)]
    counts, failures, total = {}, [], 0
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        failures += report["failures"]
        for kind, outcomes in report["counts"].items():
            for outcome, n in outcomes.items():
                counts.setdefault(kind, {}).setdefault(outcome, 0)
                counts[kind][outcome] += n
                total += n
    print(json.dumps(counts, indent=1, sort_keys=True))
    assert not failures, failures
    assert total == 2000
