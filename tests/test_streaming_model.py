"""Streaming whole models: a stateful minirnn.Model fed a sequence in slices of any
length gives, at every step, the outputs of the whole sequence at once; layers that
need the whole sequence are refused, named; `minirnn predict --stream`.

The Keras models are built once per module, with random weights, and turned into
minirnn models with minirnn.from_keras (one is saved to a .keras file for the
loading and command-line tests)."""

import numpy as np
import pytest

import minirnn
from minirnn.cli import app

# Slices: one step at a time, seven at a time, and uneven lengths (summing to 40).
T = 40
CUTS = {"ones": [1] * T, "sevens": [7] * 6, "uneven": [3, 10, 1, 13, 9, 4]}
# float64 products of Dense and Conv1D go through BLAS, whose bits may depend on the
# number of rows in a product; everything else is bit for bit (test_recurrent_...).
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def randomize(model, seed=0):
    """Random weights, scaled so that the gates are neither saturated nor flat."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(w.dtype)
                           for w in weights])
    return model


def tokens(batch, seed=1, high=20):
    """Integer inputs with padding runs (0) at the start, in the middle and at the
    end of rows, some of which begin a slice."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, high, (batch, T))
    x[0, 20:30] = 0
    x[-1, :9] = 0
    x[batch // 2, 5:12] = 0
    x[batch // 2, 35:] = 0
    return x


def streamed(model, x, cuts):
    """The model's outputs over x fed in slices of these lengths, joined."""
    model.reset_states()
    outputs, start = [], 0
    for length in cuts:
        outputs.append(model(x[:, start:start + length]))
        start += length
    if isinstance(outputs[0], list):
        return [np.concatenate([o[k] for o in outputs], axis=1) for k in range(len(outputs[0]))]
    return np.concatenate(outputs, axis=1)


@pytest.fixture(scope="module")
def k(keras):
    return keras


def causal_model(k, dtype):
    """Embedding(mask_zero) -> LSTM and GRU (masked) -> causal dilated Conv1D,
    Concatenate, SimpleRNN, Dropout, LayerNormalization, TimeDistributed(Dense)."""
    layers = k.layers
    i = k.Input((None,), dtype="int32")
    e = layers.Embedding(20, 5, mask_zero=True, dtype=dtype)(i)
    a = layers.LSTM(7, return_sequences=True, dtype=dtype)(e)
    c = layers.Conv1D(4, 3, padding="causal", dilation_rate=2, dtype=dtype)(a)
    b = layers.GRU(6, return_sequences=True, dtype=dtype)(e)
    d = layers.Concatenate(dtype=dtype)([c, b])
    s = layers.SimpleRNN(9, return_sequences=True, dtype=dtype)(d)
    s = layers.LayerNormalization(dtype=dtype)(layers.Dropout(0.5, dtype=dtype)(s))
    o = layers.TimeDistributed(layers.Dense(3, activation="tanh", dtype=dtype),
                               dtype=dtype)(s)
    return randomize(k.Model(i, o))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slices_give_the_whole_sequence_outputs(k, dtype):
    model = minirnn.from_keras(causal_model(k, dtype))
    x = tokens(3)
    whole = model(x)
    model.stateful = True
    for name, cuts in CUTS.items():
        np.testing.assert_allclose(streamed(model, x, cuts), whole, rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype], err_msg=name)
    assert model.stateful and model.get_layer(model.layers[1].name).stateful


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_recurrent_layers_stream_bit_for_bit(k, dtype):
    """Embedding, Masking by mask_zero, stacked cells, LSTM and GRU, a merge: no BLAS
    product, so the slices give exactly the whole sequence's bits, batch 1 too."""
    layers = k.layers
    i = k.Input((None,), dtype="int32")
    e = layers.Embedding(20, 8, mask_zero=True, dtype=dtype)(i)
    stack = layers.RNN(layers.StackedRNNCells(
        [layers.LSTMCell(6, dtype=dtype), layers.GRUCell(5, dtype=dtype)], dtype=dtype),
                       return_sequences=True, dtype=dtype)(e)
    g = layers.GRU(5, return_sequences=True, dtype=dtype)(e)
    o = layers.Add(dtype=dtype)([stack, g])
    model = minirnn.from_keras(randomize(k.Model(i, o)))
    for batch in (1, 4):
        x = tokens(batch, seed=batch)
        model.stateful = False
        whole = model(x)
        model.stateful = True
        for name, cuts in CUTS.items():
            assert np.array_equal(streamed(model, x, cuts), whole), (batch, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_a_chain_without_masks_streams_one_step_at_a_time(k, dtype, kind):
    """Embedding (no mask_zero) -> recurrent layer -> Dense: a chain in which no mask
    ever comes runs as plain calls (the streaming benchmark's model). One step per
    call, batch 1 and 3, gives the whole sequence's outputs (the recurrent layer's
    bit for bit; Dense within the BLAS tolerance); bad token ids, negative or too
    large, are refused, named, and leave the stream as it was."""
    layers = k.layers
    i = k.Input((None,), dtype="int32")
    r = getattr(layers, kind)(7, return_sequences=True, dtype=dtype)(
        layers.Embedding(20, 5, dtype=dtype)(i))
    keras_model = randomize(k.Model(i, layers.Dense(3, dtype=dtype)(r)))
    model, hidden = minirnn.from_keras(keras_model), minirnn.from_keras(
        randomize(k.Model(i, r)))  # the same weights up to the recurrent layer
    for batch in (1, 3):
        x = tokens(batch, seed=batch).astype("int32")
        whole, whole_h = model(x), hidden(x)
        model.stateful = hidden.stateful = True
        assert streamed(hidden, x, CUTS["ones"]).tobytes() == whole_h.tobytes()
        np.testing.assert_allclose(streamed(model, x, CUTS["ones"]), whole,
                                   rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
        assert model._chain_calls[0], "the chain should run as plain calls"
        model.reset_states()
        first = model(x[:, :5])
        for bad in (-1, 20):
            wrong = x[:, 5:6].copy()
            wrong[-1, 0] = bad
            with pytest.raises(ValueError, match=r"\[0, 20\) \(input_dim\)"):
                model(wrong)
        rest = model(x[:, 5:])
        np.testing.assert_array_equal(np.concatenate([first, rest], axis=1),
                                      streamed(model, x, [5, T - 5]))
        model.stateful = hidden.stateful = False


def test_a_last_step_output_is_the_one_after_the_slice(k):
    """LSTM without return_sequences, then Dense: each call gives the value after
    its slice (the whole model's output on the steps so far)."""
    layers = k.layers
    i = k.Input((None, 3))
    o = layers.Dense(2)(layers.LSTM(6)(layers.Masking()(i)))
    keras_model = randomize(k.Model(i, o))
    model, whole = minirnn.from_keras(keras_model), minirnn.from_keras(keras_model)
    x = np.random.default_rng(2).standard_normal((2, T, 3)).astype("float32")
    x[1, 33:] = 0  # masked to the end: the last slices keep the last output
    model.stateful = True
    for cuts in CUTS.values():
        model.reset_states()
        start = 0
        for length in cuts:
            y = model(x[:, start:start + length])
            start += length
            np.testing.assert_allclose(y, whole(x[:, :start]), atol=1e-6)


def test_keras_stateful_model_fed_the_same_slices(k, tmp_path):
    """Keras' own stateful model (fixed batch size) fed the same 7-step slices, with
    masked steps inside slices; the model saved stateful loads stateful. (Keras'
    causal Conv1D pads every call with zeros instead of the steps before it, and a
    Keras stateful layer starts each call's last output at zero: with those, only
    minirnn gives the whole sequence's outputs, so they are left out here.)"""
    layers = k.layers
    batch = 3
    i = k.Input(batch_shape=(batch, None, 4))
    h = layers.Masking()(i)
    h = layers.LSTM(8, return_sequences=True, stateful=True)(h)
    h = layers.Dense(5, activation="relu")(h)
    h = layers.GRU(6, return_sequences=True, stateful=True)(h)
    o = layers.Dense(2)(h)
    keras_model = randomize(k.Model(i, o))
    x = np.random.default_rng(3).standard_normal((batch, 35, 4)).astype("float32")
    x[0, 9:12] = 0  # masked steps that do not begin a slice (see docs: Keras restarts
    x[2, 30:33] = 0  # the last output of each call at zero)
    expected = []
    for start in range(0, 35, 7):
        expected.append(np.asarray(keras_model(x[:, start:start + 7])))
    expected = np.concatenate(expected, axis=1)
    path = tmp_path / "stateful.keras"
    keras_model.save(path)
    model = minirnn.load_model(path)
    assert model.stateful
    np.testing.assert_allclose(streamed(model, x, [7] * 5), expected, atol=2e-6, rtol=1e-5)
    model.stateful = False
    np.testing.assert_allclose(model(x), expected, atol=2e-6, rtol=1e-5)
    assert not minirnn.load_model(path, stateful=False).stateful


def test_reset_states_and_the_batch_size(k):
    model = minirnn.from_keras(causal_model(k, "float32"))
    model.stateful = True
    x = tokens(3)
    first = model(x[:, :10])
    second = model(x[:, :10])
    assert not np.array_equal(first, second)  # continued, not restarted
    model.reset_states()
    assert np.array_equal(model(x[:, :10]), first)
    model.reset_state()  # the layers' spelling
    assert np.array_equal(model(x[:, :10]), first)
    with pytest.raises(ValueError, match="continues 3 sequences.*received batch size 2"):
        model(x[:2, :10])
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(x, batch_size=1)
    model.stateful = True  # forgets the batch size
    assert model(x[:2, :10]).shape == (2, 10, 3)
    with pytest.raises(TypeError, match="stateful"):
        model.stateful = "yes"


def refused(k, build):
    layers = k.layers
    i = k.Input((None, 3))
    return minirnn.from_keras(k.Model(i, build(layers, i)))


@pytest.mark.parametrize("case, pattern", [
    ("bidirectional", r"'bi' \(Bidirectional\).*backward layer"),
    ("same_conv", r"'conv' \(Conv1D\).*padding='same'"),
    ("pooling", r"'pool' \(GlobalAveragePooling1D\).*every step"),
    ("repeat", r"'repeat' \(RepeatVector\)"),
    ("backwards", r"'lstm' \(LSTM\).*go_backwards"),
    ("attention", r"'attention' \(Attention\).*later ones"),
    ("flatten", r"'flat' \(Flatten\).*time steps"),
])
def test_layers_that_need_the_future_are_refused_named(k, case, pattern):
    builds = {
        "bidirectional": lambda L, i: L.Bidirectional(L.LSTM(4, return_sequences=True),
                                                      name="bi")(i),
        "same_conv": lambda L, i: L.Conv1D(2, 3, padding="same", name="conv")(i),
        "pooling": lambda L, i: L.GlobalAveragePooling1D(name="pool")(L.LSTM(
            4, return_sequences=True)(i)),
        "repeat": lambda L, i: L.LSTM(3, return_sequences=True)(L.RepeatVector(
            5, name="repeat")(L.LSTM(4)(i))),
        "backwards": lambda L, i: L.LSTM(4, go_backwards=True, name="lstm")(i),
        "attention": lambda L, i: L.Attention(name="attention")([i, i]),
    }
    if case == "flatten":
        i = k.Input((6, 3))
        model = minirnn.from_keras(k.Model(i, k.layers.Flatten(name="flat")(i)))
    else:
        model = refused(k, builds[case])
    with pytest.raises(ValueError, match=pattern):
        model.stateful = True
    assert not model.stateful  # unchanged: the model still runs whole sequences
    assert not any(getattr(layer, "stateful", False) for layer in model.layers)


def test_predict_stream_on_a_npy_file(k, tmp_path, capsys):
    layers = k.layers
    i = k.Input((None,), dtype="int32")
    h = layers.Embedding(20, 6, mask_zero=True)(i)
    h = layers.LSTM(8, return_sequences=True)(h)
    o = layers.Dense(3)(h)
    last = layers.GRU(4)(h)
    randomize(k.Model(i, [o, last])).save(tmp_path / "m.keras")
    x = tokens(2)
    np.save(tmp_path / "x.npy", x.astype("int32"))
    expected = minirnn.load_model(tmp_path / "m.keras")(x)
    status = app.main(["predict", str(tmp_path / "m.keras"), "--input",
                       str(tmp_path / "x.npy"), "--stream", "--chunk", "7", "--output",
                       str(tmp_path / "y.npz")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "6 chunks of up to 7 steps" in out
    with np.load(tmp_path / "y.npz") as y:
        names = list(y.files)
        assert len(names) == 2
        np.testing.assert_allclose(y[names[0]], expected[0], atol=1e-6)
        np.testing.assert_allclose(y[names[1]], expected[1], atol=1e-6)
    np.savez(tmp_path / "x.npz", x=x)
    status = app.main(["predict", str(tmp_path / "m.keras"), "--input",
                       str(tmp_path / "x.npz"), "--stream"])
    assert status == 2
    assert "npz" in capsys.readouterr().err


def test_a_mask_reduced_over_time_by_a_negative_axis_is_refused(k):
    """all(mask, axis=-1) on a (batch, timesteps) mask reduces over time: refused,
    while Masking's any(..., axis=-1) over the features of (batch, timesteps, D) streams."""
    inputs = k.Input((None, 3))
    mask = k.ops.any(k.ops.not_equal(inputs, 0.0), axis=-1)
    mask = k.ops.logical_and(mask, k.ops.all(mask, axis=-1, keepdims=True))
    y = k.layers.LSTM(4, return_sequences=True)(inputs, mask=mask)
    model = minirnn.from_keras(randomize(k.Model(inputs, y)))
    with pytest.raises(ValueError, match=r"works along the time axis \(axis=-1\)"):
        model.stateful = True
    masked = k.layers.Masking(0.0)(inputs)
    fine = minirnn.from_keras(randomize(k.Model(inputs, k.layers.GRU(3, return_sequences=True)(masked))))
    fine.stateful = True  # axis -1 of (batch, timesteps, features): the features


def test_trace_and_failed_calls_leave_the_stream_as_it_was(k):
    model = minirnn.from_keras(randomize(causal_model(k, "float32")))
    model.stateful = True
    x = tokens(3)
    with pytest.raises(ValueError, match="input_dim"):
        model(np.full((5, 4), 99))           # a failed first call fixes no batch size
    first = model(x[:, :6])
    name = [layer.name for layer in model.layers if isinstance(layer, minirnn.LSTM)][0]
    model.trace(x[:, 6:], layer=name)        # looks at the next slice, moves nothing
    with pytest.raises(ValueError, match="input_dim"):
        model(np.full((3, 4), 99))           # a failed call moves nothing either
    rest = model(x[:, 6:])
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1),
                                  streamed(model, x, [6, x.shape[1] - 6]))
    with pytest.raises(TypeError, match="stateful"):
        model.stateful = None


def test_predict_stream_on_no_steps_and_on_a_fixed_slice_length(k, tmp_path, capsys):
    inputs = k.Input(batch_shape=(2, 1, 3))      # Keras' stateful: one step per call
    y = k.layers.Dense(2)(k.layers.LSTM(4, return_sequences=True, stateful=True)(inputs))
    randomize(k.Model(inputs, y)).save(tmp_path / "fixed.keras")
    x = np.random.default_rng(0).standard_normal((2, 9, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    out = str(tmp_path / "y.npz")
    assert app.main(["predict", str(tmp_path / "fixed.keras"), "--input",
                     str(tmp_path / "x.npy"), "--stream", "--output", out]) == 0
    model = minirnn.load_model(str(tmp_path / "fixed.keras"))
    np.testing.assert_array_equal(np.load(out)[model.output_names[0]],
                                  np.concatenate([model(x[:, t:t + 1]) for t in range(9)], 1))
    np.save(tmp_path / "empty.npy", x[:, :0])
    assert app.main(["predict", str(tmp_path / "fixed.keras"), "--input",
                     str(tmp_path / "empty.npy"), "--stream"]) != 0
    assert "no time steps" in capsys.readouterr().err
