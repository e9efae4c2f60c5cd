"""The public contract of design.md section 2: names, defaults, return structures,
weights, states, initialisation, from_keras' refusals, and import hygiene."""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minirnn
from background import Job
from conftest import random_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_public_names():
    for name in ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "from_keras"]:
        assert hasattr(minirnn, name)


def test_defaults_are_keras():
    lstm = minirnn.LSTM(4)
    assert (lstm.activation, lstm.recurrent_activation, lstm.use_bias) == ("tanh", "sigmoid", True)
    assert not any([lstm.return_sequences, lstm.return_state, lstm.go_backwards, lstm.stateful,
                    lstm.zero_output_for_mask])
    assert lstm.dtype == "float32" and lstm.unit_forget_bias
    assert minirnn.GRU(4).reset_after is True
    assert minirnn.SimpleRNN(4).activation == "tanh"
    assert minirnn.LSTM(4, activation=None).activation == "linear"
    assert minirnn.GRU(2, recurrent_activation="swish").recurrent_activation == "silu"


@pytest.mark.parametrize("kind, n_states", [("LSTM", 2), ("GRU", 1), ("SimpleRNN", 1)])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_return_structure(kind, n_states, return_sequences, return_state):
    layer = getattr(minirnn, kind)(3, return_sequences=return_sequences,
                                   return_state=return_state, seed=0)
    out = layer(np.random.default_rng(0).normal(size=(2, 5, 4)))
    expected = (2, 5, 3) if return_sequences else (2, 3)
    if return_state:
        assert isinstance(out, list) and len(out) == 1 + n_states
        assert out[0].shape == expected
        assert all(s.shape == (2, 3) for s in out[1:])
        last = out[0][:, -1] if return_sequences else out[0]
        np.testing.assert_array_equal(last, out[1])  # no mask: last output is h
    else:
        assert isinstance(out, np.ndarray) and out.shape == expected
    assert (out[0] if return_state else out).dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.dtype("float64")])
def test_computes_in_layer_dtype(dtype):
    layer = minirnn.GRU(3, dtype=dtype, return_state=True, seed=0)
    out = layer(np.ones((1, 2, 2), np.int64))  # integer input is cast, as Keras does
    assert all(o.dtype == np.dtype(dtype) for o in out)
    assert all(w.dtype == np.dtype(dtype) for w in layer.get_weights())


def test_lists_are_accepted_as_arrays():
    out = minirnn.SimpleRNN(2, seed=0)([[[1.0], [2.0]]], mask=[[1, 0]])
    assert out.shape == (1, 2)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1", "SimpleRNN"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_weights_round_trip(kind, use_bias):
    base = "GRU" if kind == "GRU_v1" else kind
    extra = {"reset_after": False} if kind == "GRU_v1" else {}
    layer = getattr(minirnn, base)(4, use_bias=use_bias, dtype="float64", **extra)
    assert layer.get_weights() == []
    weights = random_weights(base, 3, 4, use_bias, kind != "GRU_v1")
    layer.set_weights(weights)
    for a, b in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert len(layer.get_weights()) == (3 if use_bias else 2)
    layer.get_weights()[0][:] = 0  # copies: the layer's weights do not change
    np.testing.assert_array_equal(layer.get_weights()[0], weights[0])


@pytest.mark.parametrize("kind, gates", [("LSTM", 4), ("GRU", 3), ("SimpleRNN", 1)])
def test_initialisation_is_keras_like_and_seeded(kind, gates):
    layer = getattr(minirnn, kind)(6, seed=42)
    layer(np.zeros((1, 1, 5)))
    kernel, recurrent, bias = layer.get_weights()
    limit = np.sqrt(6 / (5 + gates * 6))  # glorot_uniform
    assert kernel.shape == (5, gates * 6) and np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.8 * limit
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(6), atol=1e-5)  # orthogonal
    expected_bias = np.zeros(bias.shape)
    if kind == "LSTM":
        expected_bias[6:12] = 1  # unit_forget_bias
    np.testing.assert_array_equal(bias, expected_bias)
    again = getattr(minirnn, kind)(6, seed=42)
    again(np.zeros((1, 1, 5)))
    np.testing.assert_array_equal(again.get_weights()[0], kernel)
    other = getattr(minirnn, kind)(6, seed=43)
    other(np.zeros((1, 1, 5)))
    assert not np.array_equal(other.get_weights()[0], kernel)
    assert np.all(minirnn.LSTM(2, unit_forget_bias=False, seed=0)
                  .trace(np.zeros((1, 1, 1)))["f"] == 0.5)


def test_stateful_carries_and_resets():
    layer = minirnn.LSTM(3, stateful=True, return_state=True, seed=1, dtype="float64")
    fresh = minirnn.LSTM(3, return_state=True, dtype="float64")
    x1, x2 = np.random.default_rng(0).normal(size=(2, 2, 4, 2))
    out1 = layer(x1)
    fresh.set_weights(layer.get_weights())
    out2 = layer(x2)
    np.testing.assert_allclose(out2[0], fresh(x2, initial_state=out1[1:])[0], rtol=1e-14)
    np.testing.assert_array_equal(layer.states[0], out2[1])
    layer.reset_states()
    assert all(np.all(s == 0) for s in layer.states)
    np.testing.assert_allclose(layer(x1)[0], out1[0], rtol=1e-14)
    layer.reset_state()
    explicit = [np.ones((2, 3)), np.ones((2, 3))]
    np.testing.assert_allclose(layer(x1, initial_state=explicit)[0],
                               fresh(x1, initial_state=explicit)[0], rtol=1e-14)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1", "SimpleRNN"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("settings", [
    {"stateful": True, "return_sequences": True},
    {"stateful": True, "return_state": True, "go_backwards": True},
    {"return_sequences": True, "return_state": True},
    {"activation": "relu", "stateful": True},  # the general steps of the kernels
])
def test_one_ready_row_gives_the_general_paths_bits(kind, dtype, settings):
    """A C-contiguous (1, T, D) input in the layer's dtype, without mask or initial
    state, takes the layer's short path (the call a streaming model makes at each
    step); the same values as a nested list take the general one. Both run the
    same kernel, so every output and stored state has the same bits, call after
    call."""
    base = "GRU" if kind == "GRU_v1" else kind
    extra = {"reset_after": False} if kind == "GRU_v1" else {}
    layers = [getattr(minirnn, base)(5, dtype=dtype, **extra, **settings) for _ in range(2)]
    weights = random_weights(base, 3, 5, True, kind != "GRU_v1")
    rng = np.random.default_rng(7)
    for layer in layers:
        layer.set_weights(weights)
    for T in (1, 1, 4, 1):
        x = rng.standard_normal((1, T, 3)).astype(dtype)
        short, general = layers[0](x), layers[1](x.tolist())
        for a, b in zip(*(o if isinstance(o, list) else [o] for o in (short, general))):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == dtype
        if settings.get("stateful"):
            for a, b in zip(layers[0].states, layers[1].states):
                np.testing.assert_array_equal(a, b)


def test_stored_states_are_read_only_and_apart_from_what_a_call_returns():
    """A stateful layer keeps its own states: the arrays a call returns can be
    written without changing them, and ``layer.states`` gives read-only views."""
    layer = minirnn.LSTM(3, stateful=True, return_state=True, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 2, 4)).astype("float32")
    _, h, c = layer(x)
    kept = [s.copy() for s in layer.states]
    h[:], c[:] = 5.0, 5.0
    for a, b in zip(layer.states, kept):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="read-only"):
        layer.states[0][:] = 0
    plain = minirnn.GRU(3, stateful=True, seed=0)
    y = plain(x)
    with pytest.raises(ValueError, match="read-only"):
        plain.states[0][:] = 0
    np.testing.assert_array_equal(plain.states[0], y)
    with pytest.raises(ValueError, match="batch size 1 of its states.*received batch size 2"):
        plain(np.zeros((2, 1, 4), "float32"))
    layer.states = [np.ones((1, 3)), np.zeros((1, 3))]  # checked, copied, then carried
    assert layer(x[:, :1])[1].shape == (1, 3) and not np.array_equal(layer.states[0], kept[0])


@pytest.mark.parametrize("merge_mode, shape", [("concat", (2, 5, 6)), ("sum", (2, 5, 3)),
                                               ("mul", (2, 5, 3)), ("ave", (2, 5, 3))])
def test_bidirectional_structure(merge_mode, shape):
    bi = minirnn.Bidirectional(minirnn.LSTM(3, return_sequences=True, return_state=True, seed=0),
                               merge_mode=merge_mode)
    out = bi(np.ones((2, 5, 4)))
    assert len(out) == 5 and out[0].shape == shape
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    assert bi.forward_layer.zero_output_for_mask and bi.backward_layer.zero_output_for_mask
    assert len(bi.get_weights()) == 6


def test_bidirectional_none_and_alignment():
    layer = minirnn.GRU(3, return_sequences=True, return_state=True, seed=0, dtype="float64")
    bi = minirnn.Bidirectional(layer, merge_mode=None)
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    forward, backward, h_forward, h_backward = bi(x)
    np.testing.assert_array_equal(forward[:, -1], h_forward)
    np.testing.assert_array_equal(backward[:, 0], h_backward)  # flipped back in time
    np.testing.assert_array_equal(forward, layer(x)[0])  # the forward copy keeps weights
    assert set(bi.trace(x)) == {"forward", "backward"}


def test_repr_and_config():
    text = repr(minirnn.GRU(3, reset_after=False))
    assert text.startswith("GRU(units=3") and "reset_after=False" in text


def test_import_does_not_import_tensorflow():
    code = ("import sys, minirnn; bad = [m for m in ('tensorflow', 'keras', 'torch') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# The package copied where its __pycache__ cannot be made; run in a child process
# that starts when collection ends (tests/background.py).
UNWRITABLE = Job("""
import os, shutil, sys
folder = sys.argv[1]
package = os.path.join(folder, "site", "minirnn")
shutil.copytree(sys.argv[2], package, ignore=shutil.ignore_patterns("__pycache__"))
with open(os.path.join(package, "__pycache__"), "w") as blocker:
    blocker.write("not a directory")
sys.path.insert(0, os.path.join(folder, "site"))
import numpy as np, minirnn
assert minirnn.__file__.startswith(folder), minirnn.__file__
print(minirnn.SimpleRNN(2, seed=0)(np.ones((1, 3, 2))).shape)
print(os.environ["NUMBA_CACHE_DIR"])
""", args=["{folder}", os.path.join(ROOT, "minirnn")],
    env={"NUMBA_CACHE_DIR": None, "XDG_CACHE_HOME": "{folder}/cache"}, cwd="{folder}",
    timeout=300)


@pytest.mark.background(UNWRITABLE)
def test_unwritable_package_uses_a_writable_cache():
    """Numba's cache moves to a writable place when the package's cannot be written.

    The tests run as any user, root included (who may write anywhere), so the
    package's ``__pycache__`` is made unusable by putting a file in its place.
    """
    result = UNWRITABLE.result()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    cache = os.path.join(UNWRITABLE.folder, "cache", "minirnn-numba")
    assert lines[0] == "(1," and lines[-1] == cache
    assert any(name.endswith(".nbi") for _, _, files in os.walk(cache) for name in files)


def test_cache_dir_fallback_order(tmp_path, monkeypatch):
    import numba
    from minirnn import kernels
    # _ensure_cache_dir sets os.environ itself, behind monkeypatch's back: a variable
    # that was not set must be removed again, or every later child process compiles
    # into this test's folder.
    original = os.environ.get("NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    try:
        writable = tmp_path / "pkg"
        writable.mkdir()
        assert kernels._ensure_cache_dir(str(writable)) is None
        blocked = tmp_path / "blocked"
        blocked.mkdir()
        (blocked / "__pycache__").write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        chosen = kernels._ensure_cache_dir(str(blocked))
        assert chosen == str(tmp_path / "xdg" / "minirnn-numba")
        assert os.environ["NUMBA_CACHE_DIR"] == chosen
        assert numba.core.config.CACHE_DIR == chosen  # Numba reads it again
        monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere")
        assert kernels._ensure_cache_dir(str(blocked)) is None
    finally:  # this process and its children cache where they did before
        monkeypatch.undo()
        if original is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = original
        numba.core.config.reload_config()
    assert os.environ.get("NUMBA_CACHE_DIR") == original
    assert numba.core.config.CACHE_DIR == (original or "")


# ---- from_keras -----------------------------------------------------------------


def test_from_keras_refusals(keras):
    built = lambda layer, shape=(None, 4, 2): (layer.build(shape), layer)[1]
    with pytest.raises(ValueError, match=r"has no weights yet"):
        minirnn.from_keras(keras.layers.LSTM(3))
    def double(v):
        return v * 2

    with pytest.raises(ValueError, match=r"not a built-in Keras 3 activation"):
        minirnn.from_keras(built(keras.layers.GRU(3, activation=double)))
    with pytest.raises(ValueError, match=r"StackedRNNCells"):
        cells = [keras.layers.LSTMCell(3), keras.layers.LSTMCell(2)]
        minirnn.from_keras(built(keras.layers.RNN(cells)))
    with pytest.raises(ValueError, match=r"computes in float16 with float32 weights"):
        minirnn.from_keras(built(keras.layers.LSTM(3, dtype="mixed_float16")))
    with pytest.raises(ValueError, match=r"cannot reproduce a .*ConvLSTM1D"):
        minirnn.from_keras(built(keras.layers.ConvLSTM1D(2, 3), (None, 4, 5, 2)))
    with pytest.raises(ValueError, match=r"cannot reproduce a .*Dense"):
        minirnn.from_keras(built(keras.layers.Dense(3), (None, 2)))

    class MyLSTM(keras.layers.LSTM):
        pass

    with pytest.raises(ValueError, match=r"exact classes, not subclasses"):
        minirnn.from_keras(built(MyLSTM(3)))
    with pytest.raises(TypeError, match=r"`bitwise` must be True or False; received 'yes'"):
        minirnn.from_keras(built(keras.layers.LSTM(3)), bitwise="yes")


def test_from_keras_carries_configuration(keras):
    layer = keras.layers.GRU(4, activation="relu", recurrent_activation="hard_sigmoid",
                             use_bias=False, reset_after=False, return_sequences=True,
                             go_backwards=True, zero_output_for_mask=True, dropout=0.3,
                             recurrent_dropout=0.2, unroll=True, dtype="float64")
    layer.build((None, 5, 2))
    ours = minirnn.from_keras(layer)
    assert isinstance(ours, minirnn.GRU)
    config = ours.get_config()
    for key, value in dict(units=4, activation="relu", recurrent_activation="hard_sigmoid",
                           use_bias=False, reset_after=False, return_sequences=True,
                           go_backwards=True, zero_output_for_mask=True, dropout=0.3,
                           recurrent_dropout=0.2, unroll=True, dtype="float64",
                           implementation=1).items():  # recurrent_dropout: Keras takes 1
        assert config[key] == value, key


@pytest.mark.parametrize("implementation, carried", [(1, 1), (2, 2), (0, 2), (3, 2)])
def test_from_keras_carries_implementation(keras, implementation, carried):
    """Keras runs any implementation but 1 as 2 (it does not check the value)."""
    layer = keras.layers.LSTM(3, implementation=implementation)
    layer.build((None, 4, 2))
    assert minirnn.from_keras(layer).implementation == carried


TORCH_BACKEND = Job("""
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras, minirnn
assert keras.backend.backend() == "torch"
rng = np.random.default_rng(0)
layer = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True, return_state=True))
x = rng.normal(size=(2, 4, 2)).astype("float32")
layer.build((None, 4, 2))
layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
theirs = [keras.ops.convert_to_numpy(t) for t in layer(x)]
ours = minirnn.from_keras(layer)(x)
assert len(ours) == len(theirs) == 3
for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
""", env={"TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


@pytest.mark.skipif(not (importlib.util.find_spec("torch") and importlib.util.find_spec("keras")),
                    reason="needs torch and keras")
@pytest.mark.background(TORCH_BACKEND)
def test_from_keras_with_the_torch_backend():
    """from_keras reads configuration and weights only: another backend works too
    (in a child process that starts when collection ends, tests/background.py)."""
    result = TORCH_BACKEND.result()
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_cache_made_from_other_sources_is_emptied(tmp_path, monkeypatch):
    """Numba checks a cached function against its own file only, so a kernel cached
    with an inlined copy of a helper from another module would outlive a change of that
    helper: minirnn stamps its cache folders with a digest of all the compiled modules'
    sources and empties a folder whose stamp differs."""
    from numba.core.caching import UserProvidedCacheLocator
    from minirnn import kernels

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    folder = os.path.join(ROOT, "minirnn", "kernels")
    cache = tmp_path / UserProvidedCacheLocator.get_suitable_cache_subpath(
        os.path.join(folder, "__init__.py"))
    cache.mkdir(parents=True)
    (cache / "lstm.lstm_sequence-10.py311.nbi").write_text("old")
    (cache / kernels.STAMP).write_text("made from other sources")
    kernels._drop_stale_cache()
    assert not (cache / "lstm.lstm_sequence-10.py311.nbi").exists()
    digest = (cache / kernels.STAMP).read_text()
    assert digest == kernels._sources_digest(os.path.join(ROOT, "minirnn"))
    (cache / "lstm.lstm_sequence-10.py311.nbi").write_text("current")
    kernels._drop_stale_cache()  # the same sources: the cache stays
    assert (cache / "lstm.lstm_sequence-10.py311.nbi").read_text() == "current"
    # A new cache folder is stamped before Numba fills it, so that the next process
    # keeps what this one compiled (unstamped, it was emptied once more).
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "new"))
    kernels._drop_stale_cache()
    fresh = tmp_path / "new" / cache.relative_to(tmp_path)
    (fresh / "lstm.lstm_sequence-10.py311.nbi").write_text("compiled by the first process")
    kernels._drop_stale_cache()
    assert (fresh / "lstm.lstm_sequence-10.py311.nbi").exists()
