"""Whole saved models: minirnn.load_model and Model against Keras' own model call.

The fixtures (tests/saved_models.py, built by reference/model_files.py) cover every
supported layer in Keras 3 .keras and .h5 files and in Keras 2 (tf-keras) .h5 files,
with masks at the end, the start and the middle of rows, several inputs and outputs,
shared layers, seq2seq states, and float64 models.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import minirnn
from reference import model_files
from tests import saved_models
from tests.conftest import ATOL, RTOL

pytestmark = saved_models.READERS  # the fixture files come from a child process

CASES = [(name, f"{name}.keras") for name in model_files.KERAS3] + \
        [(name, f"{name}.h5") for name in model_files.KERAS3] + \
        [(name, f"{name}.h5") for name in model_files.KERAS2] + \
        [(name, f"{name}.json") for name in [*model_files.KERAS3, *model_files.KERAS2]]
_FORMATS = {".keras": "keras", ".h5": "h5", ".json": "json"}


@pytest.fixture(scope="module")
def files():
    return saved_models.model_dir()


def _outputs(y):
    return y if isinstance(y, list) else [y]


def _close(name, got, want, dtype):
    assert len(got) == len(want), f"{name}: {len(got)} outputs, Keras has {len(want)}"
    worst = 0.0
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"{name} output {k}: shape {a.shape}, Keras {b.shape}"
        assert a.dtype == b.dtype, f"{name} output {k}: dtype {a.dtype}, Keras {b.dtype}"
        np.testing.assert_allclose(a, b, atol=ATOL[dtype], rtol=RTOL[dtype],
                                   err_msg=f"{name} output {k}")
        worst = max(worst, float(np.max(np.abs(a.astype(float) - b))) if a.size else 0.0)
    return worst


@pytest.mark.parametrize("name,file", CASES, ids=[c[1] for c in CASES])
def test_matches_keras(files, name, file):
    info = saved_models.manifest(files)[name]
    xs, ys = saved_models.arrays(files, name)
    # a JSON architecture (model.to_json()) goes with its save_weights file
    weights = os.path.join(files, f"{name}.weights.h5") if file.endswith(".json") else None
    model = minirnn.load_model(os.path.join(files, file), weights)
    assert model.source["semantics"] == info["semantics"]
    assert model.source["format"] == _FORMATS[os.path.splitext(file)[1]]
    _close(file, _outputs(model(xs if len(xs) > 1 else xs[0])), ys, info["dtype"])
    # predict in slices of two samples gives the same numbers
    _close(file, _outputs(model.predict(xs, batch_size=4)), ys, info["dtype"])


@pytest.mark.parametrize("name", ["text_bilstm", "merges", "k2_float64", "k2_hard"])
def test_float64_override(files, name):
    """dtype="float64" runs every layer in float64: within float32 rounding of Keras'
    float32 model, and of dtype float64."""
    xs, ys = saved_models.arrays(files, name)
    path = os.path.join(files, f"{name}.h5")
    model = minirnn.load_model(path, dtype="float64")
    for got, want in zip(_outputs(model(xs)), ys):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=2e-6)


def test_keras2_semantics(files):
    """A Keras 2 file with hard_sigmoid gives Keras 2's numbers, and Keras 3's on request."""
    xs, ys = saved_models.arrays(files, "k2_hard")
    path = os.path.join(files, "k2_hard.h5")
    model = minirnn.load_model(path)
    assert model.source == {"path": path, "format": "h5", "keras_version": "2.21.0",
                            "semantics": "keras2"}
    lines = []
    model.summary(print_fn=lines.append)
    assert "Keras 2.x semantics: hard_sigmoid = clip(0.2x + 0.5, 0, 1)" in "\n".join(lines)
    keras3 = minirnn.load_model(path, semantics="keras3")
    assert keras3.source["semantics"] == "keras3"
    assert np.max(np.abs(keras3(xs[0]) - ys[0])) > 1e-3  # Keras 3's hard_sigmoid differs
    lstm = keras3.get_layer("lstm")
    assert type(lstm) is minirnn.LSTM and lstm.recurrent_activation == "hard_sigmoid"
    assert lstm.implementation == 1
    assert isinstance(model.get_layer("lstm"), minirnn.LSTM)
    assert model.get_layer("gru").reset_after is False


@pytest.mark.parametrize("version,activation,reset_after,implementation", [
    ("2.2.4", "hard_sigmoid", False, 1), ("2.3.1", "sigmoid", False, 2),
    ("2.13.1", "sigmoid", True, 2), ("2.2.4-tf", "sigmoid", True, 2)])
def test_keras2_defaults_by_writer(files, tmp_path, version, activation, reset_after,
                                   implementation):
    """Settings a Keras 2 configuration leaves out take the writer's defaults."""
    import json
    import shutil

    import h5py
    path = str(tmp_path / "old.h5")
    shutil.copy(os.path.join(files, "k2_hard.h5"), path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            for key in ("recurrent_activation", "reset_after", "implementation"):
                layer["config"].pop(key, None)
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = version.encode()
    if reset_after:  # the file's GRU weights are reset_after=False's: refused, not misread
        with pytest.raises(ValueError, match=r"'gru' \(GRU\): weight 2 must have shape"):
            minirnn.load_model(path)
        return
    model = minirnn.load_model(path)
    lstm, gru = model.get_layer("lstm"), model.get_layer("gru")
    assert lstm.recurrent_activation == gru.recurrent_activation == activation
    assert gru.reset_after is reset_after and lstm.implementation == implementation
    assert model.source["keras_version"] == version


def test_inputs_by_name_list_and_errors(files):
    xs, ys = saved_models.arrays(files, "seq2seq")
    model = minirnn.load_model(os.path.join(files, "seq2seq.keras"))
    assert model.input_names == ["encoder_in", "decoder_in"]
    by_name = model({"decoder_in": xs[1], "encoder_in": xs[0]})
    for a, b in zip(by_name, model(xs)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="decoder_in"):
        model({"encoder_in": xs[0]})
    with pytest.raises(ValueError, match="2 arrays"):
        model([xs[0]])
    with pytest.raises(ValueError, match=r"encoder_in.*shape"):
        model([xs[0][:, :, :2], xs[1]])
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(xs, batch_size=0)


def test_layers_get_layer_and_summary(files):
    model = minirnn.load_model(os.path.join(files, "text_bilstm.keras"))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Embedding", "Bidirectional", "Bidirectional", "Dense"]
    assert isinstance(model.get_layer("bilstm"), minirnn.Bidirectional)
    with pytest.raises(ValueError, match=r"'nope'.*embedding"):
        model.get_layer("nope")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for word in ("embedding", "Embedding", "(None, None, 8)", "Total params", "tokens",
                 "Keras 3 semantics", "Keras 3.", ".keras file"):
        assert word in text, word
    assert model.output_names == [model.layers[-1].name]


def test_input_specs_and_example_inputs(files):
    text = minirnn.load_model(os.path.join(files, "text_bilstm.keras"))
    assert text.input_specs == [{"name": "tokens", "shape": (None, None), "dtype": "int32",
                                 "int_high": 30, "mask_value": None, "mask_zero": True}]
    masked = minirnn.load_model(os.path.join(files, "masking_pool.h5"))
    assert masked.input_specs[0]["mask_value"] == 0.0
    for padding in ("start", "end", "middle", None):
        x, = text.example_inputs(batch_size=4, timesteps=9, seed=3, padding=padding)
        assert x.shape == (4, 9) and x.dtype == np.int32 and x.max() < 30
        assert (x[1] == 0).any() == (padding is not None)
        assert (x[0] != 0).all()
        text(x)
        y, = masked.example_inputs(batch_size=3, padding=padding)
        assert y.shape == (3, 7, 3)
        masked(y)
    x, = text.example_inputs(padding="start", timesteps=6)
    assert (x[1, :2] == 0).all() and (x[1, 2:] != 0).all()
    with pytest.raises(ValueError, match="padding"):
        text.example_inputs(padding="left")


def test_trace_sees_the_real_mask_and_state(files):
    xs, _ = saved_models.arrays(files, "seq2seq")
    model = minirnn.load_model(os.path.join(files, "seq2seq.keras"))
    default = model.trace(xs)
    assert set(default) == {"i", "f", "g", "o", "c", "h"}  # the encoder LSTM
    decoder = model.trace(xs, layer="decoder")
    alone = model.get_layer("decoder").trace(xs[1])
    assert not np.allclose(decoder["h"], alone["h"])  # the encoder's states reach it
    _, encoder_h, _ = model.get_layer("encoder")(xs[0])
    np.testing.assert_allclose(encoder_h, default["h"][:, -1], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="recurrent layer"):
        model.trace(xs, layer="dense")

    text = minirnn.load_model(os.path.join(files, "text_bilstm.keras"))
    x, = saved_models.arrays(files, "text_bilstm")[0]
    trace = text.trace(x)
    h = trace["forward"]["h"]
    # row 1 is padded at its last 3 steps: the forward state is held there
    np.testing.assert_array_equal(h[1, -1], h[1, -4])
    assert not np.array_equal(h[0, -1], h[0, -4])


def test_stacked_cells(files):
    """RNN(StackedRNNCells) runs as a chain of minirnn layers; its trace is per cell."""
    xs, ys = saved_models.arrays(files, "cells")
    model = minirnn.load_model(os.path.join(files, "cells.keras"))
    stack = model.get_layer("stack")
    assert isinstance(stack, minirnn.recurrent.StackedRNN)
    assert [type(layer) for layer in stack.layers] == [minirnn.LSTM, minirnn.GRU,
                                                       minirnn.SimpleRNN]
    trace = model.trace(xs[0], layer="stack")
    assert [set(t) for t in trace["cells"]] == [{"i", "f", "g", "o", "c", "h"},
                                                {"z", "r", "hh", "h"}, {"h"}]
    # the last cell's h, in processing order, is the stack's output sequence
    np.testing.assert_allclose(trace["cells"][2]["h"], ys[0], atol=1e-6, rtol=1e-6)


def test_from_keras_whole_model(keras):
    rng = np.random.default_rng(5)
    x = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(40, 6, mask_zero=True)(x)
    y = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True))(e)
    y = keras.layers.GRU(3)(y)
    model = keras.Model(x, keras.layers.Dense(2)(y))
    model_files.randomise(model, rng)
    tokens = rng.integers(1, 40, size=(5, 8)).astype("int32")
    tokens[1, -3:] = 0
    tokens[2, :2] = 0
    want = keras.ops.convert_to_numpy(model(tokens))
    ours = minirnn.from_keras(model)
    assert isinstance(ours, minirnn.Model) and ours.source["format"] == "memory"
    np.testing.assert_allclose(ours(tokens), want, atol=1e-6, rtol=1e-6)
    layer = minirnn.from_keras(model.layers[2])  # a single layer: unchanged behaviour
    assert isinstance(layer, minirnn.Bidirectional)
    sequential = keras.Sequential([keras.Input((4, 3)), keras.layers.SimpleRNN(2)])
    model_files.randomise(sequential, rng)
    xs = rng.standard_normal((2, 4, 3)).astype("float32")
    np.testing.assert_allclose(minirnn.from_keras(sequential)(xs),
                               keras.ops.convert_to_numpy(sequential(xs)), atol=1e-6,
                               rtol=1e-6)


def test_bitwise(files):
    """Embedding, Masking, the noise layers, the recurrent layers, Concatenate,
    Permute, Flatten, Reshape and RepeatVector: Keras' bits with bitwise=True; a
    Dense is refused by name."""
    xs, ys = saved_models.arrays(files, "bitwise")
    path = os.path.join(files, "bitwise.keras")
    if not minirnn.bitwise_support():
        with pytest.raises(minirnn.BitwiseUnsupportedError):
            minirnn.load_model(path, bitwise=True)
        return
    model = minirnn.load_model(path, bitwise=True)
    for got, want in zip(model(xs), ys):
        assert got.tobytes() == want.tobytes()
    with pytest.raises(minirnn.BitwiseUnsupportedError, match=r"'dense[_0-9]*' \(Dense\)"):
        minirnn.load_model(os.path.join(files, "text_bilstm.keras"), bitwise=True)
    with pytest.raises(ValueError, match="float32"):
        minirnn.load_model(path, bitwise=True, dtype="float64")
    with pytest.raises(minirnn.BitwiseUnsupportedError, match="Keras 2 semantics"):
        minirnn.load_model(os.path.join(files, "k2_sequential.h5"), bitwise=True)


def test_arguments_are_checked(files):
    path = os.path.join(files, "dense_lstm.keras")
    with pytest.raises(ValueError, match="dtype"):
        minirnn.load_model(path, dtype="float16")
    with pytest.raises(ValueError, match="semantics"):
        minirnn.load_model(path, semantics="keras4")
    with pytest.raises(TypeError, match="bitwise"):
        minirnn.load_model(path, bitwise="yes")
    with pytest.raises(TypeError, match="path"):
        minirnn.load_model(3)


def test_loading_imports_no_tensorflow(files):
    code = (
        "import sys, minirnn, numpy as np\n"
        f"d = {files!r}\n"
        "for f in ['text_bilstm.keras', 'merges.h5', 'k2_hard.h5', 'cells.keras']:\n"
        "    m = minirnn.load_model(d + '/' + f)\n"
        "    m(m.example_inputs())\n"
        "    m.summary(print_fn=lambda s: None)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('tensorflow', 'keras', 'tf_keras', 'torch', 'jax'))\n"
        "print('IMPORTED', bad)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=saved_models.ROOT)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout, result.stdout


def test_real_sized_model(keras, tmp_path):
    """Embedding 20000 x 128 -> Bidirectional(LSTM 128) -> Dense: equal within float32
    rounding, with padding at both ends (timings: python -m reference.model_files
    --speed DIR)."""
    model, tokens = model_files.real_sized(str(tmp_path / "real.keras"))
    want = model.predict(tokens, verbose=0)
    start = time.perf_counter()
    ours = minirnn.load_model(str(tmp_path / "real.keras"))
    load_seconds = time.perf_counter() - start
    np.testing.assert_allclose(ours.predict(tokens), want, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(tokens, batch_size=5), want, atol=1e-6, rtol=1e-6)
    assert load_seconds < 10, load_seconds
