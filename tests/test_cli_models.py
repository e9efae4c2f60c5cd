"""The commands on saved models: summary, predict, trace --model, verify --model.

The models are built here with Keras 3 (saved as .keras) and, where tf-keras is
installed, with tf-keras in a process of its own (a true Keras 2 .h5 file).
summary, predict and trace read them without TensorFlow; verify --model runs the
Keras side in a process of its own.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minirnn
from minirnn import cli
from minirnn.cli import keras_support, models, predict, verify_model


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def keras3_models(tmp_path_factory):
    """Two Keras 3 models: "masked" (Embedding with mask_zero, Bidirectional LSTM, GRU:
    every layer modelled by the bitwise mode) and "two_inputs" (two inputs, a Dense,
    a concatenation, two outputs)."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("keras3")
    keras.utils.set_random_seed(3)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 4, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True),
                                   name="bilstm")(x)
    x = keras.layers.GRU(2, name="gru")(x)
    masked = keras.Model(tokens, x)
    masked.save(folder / "masked.keras")
    a = keras.Input((None, 3), name="a")
    b = keras.Input((None, 2), name="b")
    joined = keras.layers.Concatenate()([keras.layers.Dense(4)(a), b])
    sequence = keras.layers.SimpleRNN(5, return_sequences=True, name="rnn")(joined)
    last = keras.layers.LSTM(2, name="last")(sequence)
    two = keras.Model([a, b], [sequence, last])
    two.save(folder / "two_inputs.keras")
    return {"masked": folder / "masked.keras", "two_inputs": folder / "two_inputs.keras"}


@pytest.fixture(scope="module")
def keras2_model(tmp_path_factory):
    """A true Keras 2 file: tf-keras in a process of its own (it cannot share one with
    Keras 3), with Keras 2's hard_sigmoid and GRU(reset_after=False)."""
    import importlib.util
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras is not installed")
    path = tmp_path_factory.mktemp("keras2") / "keras2.h5"
    script = textwrap.dedent(f"""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tf_keras as k
        k.utils.set_random_seed(2)
        model = k.Sequential([
            k.layers.Embedding(20, 4, mask_zero=True, input_shape=(None,)),
            k.layers.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True),
            k.layers.GRU(2, reset_after=False)])
        model.save({str(path)!r})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return path


# ---- summary --------------------------------------------------------------------

def test_summary(capsys, keras3_models):
    status, out, _ = run(capsys, "summary", keras3_models["masked"])
    assert status == 0, out
    assert "bilstm" in out and "Bidirectional" in out and "Total params" in out
    assert "tokens: (None, None) int32; integers below 30 (Embedding); 0 = padding" in out
    assert "Recurrent layers (minirnn trace --model" in out and "bilstm, gru" in out
    assert "Keras 3 semantics" in out


def test_summary_and_predict_of_a_json_architecture(capsys, tmp_path, keras3_models):
    """PATH = model.json with --weights: the JSON and weights pair loads as the model."""
    import keras
    model = keras.saving.load_model(keras3_models["two_inputs"])
    (tmp_path / "m.json").write_text(model.to_json())
    model.save_weights(tmp_path / "m.weights.h5")
    status, out, _ = run(capsys, "summary", tmp_path / "m.json", "--weights",
                         tmp_path / "m.weights.h5")
    assert status == 0, out
    assert "JSON architecture with a weights file" in out and "rnn" in out
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", a=rng.standard_normal((2, 4, 3)).astype("float32"),
             b=rng.standard_normal((2, 4, 2)).astype("float32"))
    status, out, _ = run(capsys, "predict", tmp_path / "m.json", "--weights",
                         tmp_path / "m.weights.h5", "--input", tmp_path / "x.npz",
                         "--output", tmp_path / "y.npz")
    assert status == 0, out
    with np.load(tmp_path / "y.npz") as y, np.load(tmp_path / "x.npz") as x:
        want = model([x["a"], x["b"]])
        for got, expected in zip(y.values(), want):
            np.testing.assert_allclose(got, np.asarray(expected), atol=1e-6, rtol=1e-6)
    status, _, err = run(capsys, "summary", tmp_path / "m.json")
    assert status == 2 and "pass its weights file too" in err
    status, out, _ = run(capsys, "verify", "--model", tmp_path / "m.json", "--weights",
                         tmp_path / "m.weights.h5")
    assert status == 0, out
    assert "Result: 4 of 4 outputs within tolerance." in out


def test_summary_of_a_keras2_file(capsys, keras2_model):
    status, out, _ = run(capsys, "summary", keras2_model)
    assert status == 0
    assert "Keras 2.x semantics: hard_sigmoid = clip(0.2x + 0.5, 0, 1)" in out


def test_trace_of_a_keras2_file(capsys, tmp_path, keras2_model):
    status, out, _ = run(capsys, "trace", "--model", keras2_model, "--plot",
                         tmp_path / "lstm.png")
    assert status == 0, out
    assert "layer 'lstm'" in out and "i_t = hard_sigmoid(x_t W_i" in out
    assert "its hard_sigmoid is clip(0.2 x + 0.5, 0, 1)" in out
    assert (tmp_path / "lstm.png").exists()


def test_bad_model_files(capsys, tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("PK not really a zip")
    for command in (["summary"], ["predict", "--input", text], ["verify", "--model"]):
        status, _, err = run(capsys, *command, text)
        assert status == 2 and str(text) in err and "Traceback" not in err


# ---- predict --------------------------------------------------------------------

def test_predict_prints_shapes_and_writes_the_outputs(capsys, tmp_path, keras3_models):
    model = minirnn.load_model(keras3_models["two_inputs"])
    a, b = model.example_inputs(batch_size=5, timesteps=7, seed=1, padding=None)
    np.savez(tmp_path / "by_name.npz", b=b, a=a)            # by name, any order
    np.savez(tmp_path / "in_order.npz", a, b)               # arr_0, arr_1: in order
    status, out, _ = run(capsys, "predict", keras3_models["two_inputs"], "--input",
                         tmp_path / "by_name.npz")
    assert status == 0, out
    assert "rnn     (5, 7, 5)  float32" in out and "last    (5, 2)" in out
    target = tmp_path / "outputs"                           # no .npz added
    status, out, _ = run(capsys, "predict", keras3_models["two_inputs"], "--input",
                         tmp_path / "in_order.npz", "--output", target, "--batch-size", "2")
    assert status == 0
    assert f"Wrote {target}:" in out and os.listdir(tmp_path).count("outputs") == 1
    expected = model.predict([a, b])
    with np.load(target) as saved:
        assert saved.files == ["rnn", "last"]
        np.testing.assert_array_equal(saved["rnn"], expected[0])
        np.testing.assert_array_equal(saved["last"], expected[1])


def test_predict_refuses_inputs_that_do_not_fit(capsys, tmp_path, keras3_models):
    path = keras3_models["two_inputs"]
    np.save(tmp_path / "one.npy", np.zeros((2, 3, 3), np.float32))
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "one.npy")
    assert status == 2 and "holds one array, but the model has 2 inputs ['a', 'b']" in err
    np.savez(tmp_path / "three.npz", np.zeros((2, 3, 3)), np.zeros((2, 3, 2)), np.zeros(1))
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "three.npz")
    assert status == 2 and "expected the model's inputs ['a', 'b']" in err
    np.savez(tmp_path / "shape.npz", a=np.zeros((2, 3, 4)), b=np.zeros((2, 3, 2)))
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "shape.npz")
    assert status == 2
    assert "the input 'a' from" in err and "must have shape (None, None, 3)" in err
    np.savez(tmp_path / "batch.npz", a=np.zeros((2, 3, 3)), b=np.zeros((3, 3, 2)))
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "batch.npz")
    assert status == 2 and "one batch size" in err
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    status, _, err = run(capsys, "predict", keras3_models["masked"], "--input",
                         tmp_path / "objects.npy")
    assert status == 2 and "cannot read" in err and "pickle" in err.lower()
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "junk.npz")
    assert status == 2 and "as NumPy arrays" in err
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "none.npz")
    assert status == 2 and "no such file" in err
    status, _, err = run(capsys, "predict", path, "--input", tmp_path / "shape.npz",
                         "--output", tmp_path / "missing" / "y.npz")
    assert status == 2 and "does not exist" in err


def test_npz_inputs_by_name_or_in_order():
    class FakeModel:
        input_names = ["first", "second"]

    def load(**arrays):
        import tempfile
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "x.npz")
            np.savez(path, **arrays)
            return models.read_inputs(path, FakeModel())

    one, two = np.zeros(1), np.ones(1)
    assert [a[0] for a in load(second=two, first=one)] == [0, 1]
    assert [a[0] for a in load(first=one, second=two, labels=two)] == [0, 1]
    assert [a[0] for a in load(x=one, y=two)] == [0, 1]
    with pytest.raises(cli.common.CommandError, match="holds the arrays"):
        load(first=one)


# ---- trace --model ----------------------------------------------------------------

def test_trace_model_layers(capsys, tmp_path, keras3_models):
    path = keras3_models["masked"]
    status, out, _ = run(capsys, "trace", "--model", path, "--timesteps", "5")
    assert status == 0, out
    assert "layer 'bilstm' (Bidirectional)" in out
    assert "forward layer: LSTM(3)" in out and "backward layer: LSTM(3)" in out
    assert out.count("Statistics over 1 sequence x 5 steps x 3 units") == 2
    tokens = np.array([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]], np.int32)
    np.save(tmp_path / "tokens.npy", tokens)
    picture = tmp_path / "gru"
    status, out, _ = run(capsys, "trace", "--model", path, "--layer", "gru", "--input",
                         tmp_path / "tokens.npy", "--plot", picture)
    assert status == 0, out
    assert "layer 'gru' (GRU)" in out and "tokens (2, 5) int32" in out
    assert "Statistics over 2 sequences x 5 steps x 2 units" in out
    assert f"Wrote {picture}.png" in out and (tmp_path / "gru.png").exists()
    # The trace is Model.trace's: the layer's input inside the model, mask included.
    expected = minirnn.load_model(path).trace(tokens, layer="gru")["h"]
    assert f"{expected.mean():+.3f}" in [line.split()[3] for line in out.splitlines()
                                         if line.strip().startswith("h ")][0:1]
    status, _, err = run(capsys, "trace", "--model", path, "--layer", "embedding")
    assert status == 2
    assert "--layer 'embedding': not a recurrent layer" in err and "'bilstm', 'gru'" in err


def test_model_commands_import_no_tensorflow(keras3_models, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from minirnn.cli import main
        path = {str(keras3_models["masked"])!r}
        assert main(["summary", path]) == 0
        assert main(["trace", "--model", path, "--timesteps", "3"]) == 0
        import numpy as np
        np.save({str(tmp_path / "x.npy")!r}, np.ones((2, 4), np.int32))
        assert main(["predict", path, "--input", {str(tmp_path / "x.npy")!r}]) == 0
        heavy = [m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


# ---- verify --model ---------------------------------------------------------------

def test_verify_model_against_keras3(capsys, tmp_path, keras3_models):
    path = keras3_models["masked"]
    report = tmp_path / "verify.json"
    status, out, _ = run(capsys, "verify", "--model", path, "--json", report)
    assert status == 0, out
    assert "against Keras 3 in a process of its own" in out
    assert "example, padded at the end" in out and "example, padded at the start" in out
    assert "Result: 2 of 2 outputs within tolerance." in out
    records = json.loads(report.read_text())["results"]
    assert [r["within"] for r in records] == [True, True]
    assert all(r["max_abs"] <= 1e-6 for r in records)
    if minirnn.bitwise_support():
        status, out, _ = run(capsys, "verify", "--model", path, "--bitwise")
        assert status == 0, out
        assert out.count(" identical") >= 2 and "identical bit for bit" in out


def test_verify_model_keras2_file_against_tf_keras(capsys, keras2_model):
    status, out, _ = run(capsys, "verify", "--model", keras2_model)
    assert status == 0, out
    assert "against tf-keras (Keras 2)" in out and "semantics: keras2" in out
    assert "Result: 2 of 2 outputs within tolerance." in out


def test_verify_model_with_inputs_fails_beyond_tolerance(capsys, tmp_path, keras3_models,
                                                         monkeypatch):
    path = keras3_models["two_inputs"]
    model = minirnn.load_model(path)
    a, b = model.example_inputs(batch_size=3, timesteps=4, padding=None)
    np.savez(tmp_path / "x.npz", a=a, b=b)
    seen = {}

    def keras_side(model_path, engine, sets, timeout=0, weights=None):
        seen["engine"], seen["sets"] = engine, sets
        outputs = model.predict(sets[0])
        return [[outputs[0] + 1e-3, outputs[1]]], "3.fake"

    monkeypatch.setattr(verify_model, "keras_outputs", keras_side)
    status, out, _ = run(capsys, "verify", "--model", path, "--input", tmp_path / "x.npz")
    assert status == 1
    assert seen["engine"] == "keras" and len(seen["sets"]) == 1
    assert "rnn     (3, 4, 5)" in out and "1.0e-03  FAIL: beyond tolerance" in out
    assert "Result: 1 of 2 outputs within tolerance." in out

    def unavailable(*args, **kwargs):
        raise keras_support.KerasUnavailable("ModuleNotFoundError: No module named 'keras'")

    monkeypatch.setattr(verify_model, "keras_outputs", unavailable)
    status, out, _ = run(capsys, "verify", "--model", path)
    assert status == 2 and 'pip install "minirnn[keras]"' in out


def test_verify_model_options(capsys, keras3_models, tmp_path):
    path = keras3_models["masked"]
    status, _, err = run(capsys, "verify", "--model", path, "--cases", "3")
    assert status == 2 and "--cases applies to random configurations" in err
    status, _, err = run(capsys, "verify", "--input", path)
    assert status == 2 and "--input needs --model" in err


def test_compare():
    a = np.array([1.0, np.nan, 2.0, np.inf], np.float32)
    assert verify_model.compare(a, a.copy())["within"]
    assert not verify_model.compare(a, a + np.float32(1e-5))["within"]
    near = verify_model.compare(a, a + np.float32(1e-7))
    assert near["within"] and not verify_model.compare(a, a + np.float32(1e-7), True)["within"]
    assert "shape" in verify_model.compare(a, a[:2])["problem"]
    b = np.array([1.0], np.float64)
    assert not verify_model.compare(b, b + 1e-11)["within"]
    assert verify_model.compare(b, b + 1e-13)["within"]


def test_write_outputs_keeps_the_name(tmp_path):
    predict.write_outputs(tmp_path / "y", ["out"], [np.arange(3)])
    assert os.listdir(tmp_path) == ["y"]
