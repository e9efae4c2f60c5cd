"""Pickling: layers and whole models travel as data and come back bit for bit.

A layer pickles as its constructor's arguments, then its weights and states,
assigned again through the checks of minirnn.attributes; a Model as its file's
configuration and arrays (with a stateful model's states), built again through
load_model's checks. So the round trip (pickle and cloudpickle, as Spark and Dask
send them) computes the same bits, nothing compiled travels, and a payload that
does not fit (a weight of the wrong shape, states of the wrong size) is refused
with ValueError by those checks.
"""

import copy
import io
import os
import pickle

import numpy as np
import pytest

import minirnn
from minirnn import attributes, blocks, keras2, model as models, recurrent

cloudpickle = pytest.importorskip("cloudpickle")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus", "files")
ETHNICOLR = os.path.join(CORPUS, "ethnicolr", "ethnicolr", "models", "wiki", "lstm",
                         "wiki_ln_lstm.h5")
MASKING = os.path.join(CORPUS, "sleepecg", "sleepecg", "classifiers", "wrn-gru-mesa",
                       "classifier.keras")          # Masking, Bidirectional GRU
ATTENTION = os.path.join(CORPUS, "netra-transliterate", "khmer_transliterator", "weights",
                         "bi_gru_attention_khmer_transliterator.keras")  # TimeDistributed
CONVOLUTION = os.path.join(CORPUS, "ao-compensation-model", "ao_compensation_model", "model",
                           "2026_03_24_18_43_0.1902", "gru_model.keras")  # Conv1D, pooling
BITWISE = bool(minirnn.bitwise_support())
DUMPS = {"pickle": pickle.dumps, "cloudpickle": cloudpickle.dumps}

KINDS = {
    "LSTM": lambda **kw: minirnn.LSTM(4, **kw),
    "GRU": lambda **kw: minirnn.GRU(4, **kw),
    "GRU_v1": lambda **kw: minirnn.GRU(4, reset_after=False, **kw),
    "SimpleRNN": lambda **kw: minirnn.SimpleRNN(4, **kw),
}


def random_layer(kind, dtype="float32", seed=0, **kwargs):
    """A layer with random weights that differ per gate, biases included."""
    layer = KINDS[kind](dtype=dtype, **kwargs)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.7, 0.7, shape) for shape in layer._weight_shapes(3)])
    return layer


def inputs(dtype="float32", batch=3, steps=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, 3)).astype(dtype)
    mask = np.ones((batch, steps), bool)
    mask[1, :2] = mask[2, -3:] = False
    return x, mask


def flat(result):
    return [np.asarray(r) for r in (result if isinstance(result, list) else [result])]


def assert_same_bits(a, b):
    a, b = flat(a), flat(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


def round_trip(value, how="pickle"):
    return pickle.loads(DUMPS[how](value))


class Tampered:
    """Pickles as the (function, arguments) it is given: a payload changed on the way."""

    def __init__(self, reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def globals_of(payload):
    """The module.name of every global a pickle loads (classes and functions)."""
    found = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(f"{module}.{name}")
            return super().find_class(module, name)

    Recorder(io.BytesIO(payload)).load()
    return found


# ---- layers -------------------------------------------------------------------------

@pytest.mark.parametrize("how", sorted(DUMPS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layer_round_trip_gives_the_same_bits(kind, dtype, how):
    layer = random_layer(kind, dtype, return_sequences=True, return_state=True,
                         go_backwards=kind == "GRU")
    layer.name = "named"
    twin = round_trip(layer, how)
    assert type(twin) is type(layer) and twin is not layer
    assert twin.get_config() == layer.get_config() and twin.name == "named"
    assert_same_bits(twin.get_weights(), layer.get_weights())
    x, mask = inputs(dtype)
    assert_same_bits(twin(x, mask=mask), layer(x, mask=mask))
    assert_same_bits(twin.trace(x, mask=mask)["h"], layer.trace(x, mask=mask)["h"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unbuilt_layers_and_copies(kind):
    layer = KINDS[kind](seed=5, engine="numpy", zero_output_for_mask=True)
    twin = round_trip(layer)
    assert not twin.built and twin.get_config() == layer.get_config()
    built = random_layer(kind)
    for copied in (copy.copy(built), copy.deepcopy(built)):
        assert_same_bits(copied(inputs()[0]), built(inputs()[0]))


@pytest.mark.parametrize("how", sorted(DUMPS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_stateful_layer_carries_its_states(kind, dtype, how):
    layer = random_layer(kind, dtype, stateful=True, return_sequences=True)
    x, mask = inputs(dtype)
    layer(x, mask=mask)
    twin = round_trip(layer, how)
    assert_same_bits(list(twin.states), list(layer.states))
    for _ in range(2):  # both continue from the same states
        assert_same_bits(twin(x), layer(x))
    layer.reset_state()
    assert_same_bits(round_trip(layer).states, layer.states)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
def test_bidirectional_round_trip_with_states(merge_mode):
    forward = random_layer("LSTM", return_sequences=True, stateful=True)
    backward = random_layer("LSTM", seed=3, return_sequences=True, stateful=True,
                            go_backwards=True)
    bi = minirnn.Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward)
    bi.name = "bi"
    x, mask = inputs()
    bi(x, mask=mask)
    for how in DUMPS:
        twin = round_trip(bi, how)
        assert twin.name == "bi" and twin.merge_mode == merge_mode
        assert_same_bits(twin.forward_layer.states, bi.forward_layer.states)
        assert_same_bits(twin.backward_layer.states, bi.backward_layer.states)
        assert_same_bits(twin(x, mask=mask), copy.deepcopy(bi)(x, mask=mask))


def test_bidirectional_of_another_dtype_and_gru():
    bi = minirnn.Bidirectional(random_layer("GRU", "float64", return_sequences=True,
                                            return_state=True), dtype="float32")
    bi.backward_layer.set_weights([w * 0.5 for w in bi.forward_layer.get_weights()])
    twin = round_trip(bi, "cloudpickle")
    assert twin.dtype == "float32" and twin.forward_layer.dtype == "float64"
    x, mask = inputs("float64")
    assert_same_bits(twin(x, mask=mask), bi(x, mask=mask))


@pytest.mark.skipif(not BITWISE, reason="bitwise mode not supported on this platform")
def test_bitwise_layers_stay_bitwise():
    for kind in ("LSTM", "GRU", "SimpleRNN"):
        layer = random_layer(kind, bitwise=True, return_sequences=True)
        twin = round_trip(layer)
        assert twin.bitwise
        x, mask = inputs()
        assert_same_bits(twin(x, mask=mask), layer(x, mask=mask))
    bi = minirnn.Bidirectional(random_layer("LSTM", bitwise=True, return_sequences=True),
                               backward_layer=random_layer("LSTM", seed=4, bitwise=True,
                                                           return_sequences=True,
                                                           go_backwards=True))
    twin = round_trip(bi, "cloudpickle")
    assert twin.bitwise
    assert_same_bits(twin(*inputs()), bi(*inputs()))


def test_keras2_layers_and_stacks_keep_their_class():
    model = minirnn.load_model(ETHNICOLR)
    lstm = model.get_layer("lstm")
    assert isinstance(lstm, keras2.Keras2LSTM) or not keras2.uses_hard_sigmoid(lstm)
    twin = round_trip(lstm)
    assert type(twin) is type(lstm) and twin.name == "lstm"
    x = np.random.default_rng(0).standard_normal((2, 5, lstm.input_dim)).astype("float32")
    assert_same_bits(twin(x), lstm(x))
    second = minirnn.LSTM(4, return_sequences=True, return_state=True)
    second.set_weights([np.full((4, 16), 0.1), np.full((4, 16), -0.2), np.zeros(16)])
    stack = recurrent.StackedRNN([random_layer("GRU", return_sequences=True,
                                               return_state=True), second],
                                 False, True, False, False)
    twin = round_trip(stack, "cloudpickle")
    assert isinstance(twin, recurrent.StackedRNN)
    assert_same_bits(twin(inputs()[0]), stack(inputs()[0]))


# ---- refused payloads -----------------------------------------------------------------

def test_a_tampered_layer_payload_is_refused():
    layer = random_layer("LSTM", stateful=True)
    layer(inputs()[0])
    function, (cls, arguments, assignments) = layer.__reduce__()
    assert function is attributes.rebuild

    def load(arguments=arguments, assignments=assignments, cls=cls):
        return pickle.loads(pickle.dumps(Tampered((function, (cls, arguments,
                                                              assignments)))))

    assert_same_bits(load()(inputs()[0]), layer(inputs()[0]))
    weights = dict(assignments[0], kernel=np.zeros((3, 12)))       # units=4 needs (3, 16)
    with pytest.raises(ValueError, match="kernel"):
        load(assignments=[weights, *assignments[1:]])
    with pytest.raises(ValueError, match="states"):
        load(assignments=[assignments[0], {"states": [np.zeros((3, 5))] * 2}])
    with pytest.raises(ValueError, match="public attributes"):
        load(assignments=[{"_w": np.zeros((3, 16))}])
    with pytest.raises(ValueError, match="units"):
        load(arguments=dict(arguments, units=-1))
    with pytest.raises(ValueError, match="activation"):
        load(arguments=dict(arguments, activation="no such function"))
    with pytest.raises(TypeError, match="layer class"):
        load(cls=dict)


def test_a_tampered_model_payload_is_refused():
    model = minirnn.load_model(ETHNICOLR, stateful=True)
    model(model.example_inputs(batch_size=2)[0])
    function, (config, weights, source, options, carried) = model.__reduce__()

    def load(**changes):
        parts = dict(config=config, weights=weights, source=source, options=options,
                     carried=carried)
        parts.update(changes)
        return pickle.loads(pickle.dumps(Tampered((function, tuple(parts.values())))))

    assert load().stateful
    wrong = dict(weights, lstm=[np.zeros((32, 256), np.float32), *weights["lstm"][1:]])
    with pytest.raises(ValueError, match=r"layer 'lstm'.*weight 0 must have shape"):
        load(weights=wrong)
    with pytest.raises(ValueError, match="layer 'dense'"):
        load(weights=dict(weights, dense=weights["dense"][:1]))
    states = {"batch": 2, "layers": {"lstm": [[np.zeros((2, 7), np.float32)] * 2]},
              "contexts": {}}
    with pytest.raises(ValueError, match="states"):
        load(carried=states)
    with pytest.raises(ValueError, match="batch size"):
        load(carried=dict(carried, batch=5))
    with pytest.raises(ValueError, match="not a recurrent layer"):
        load(carried=dict(carried, layers={"dense": [None]}))
    with pytest.raises(ValueError):
        load(options=dict(options, dtype="float16"))
    custom = {**config, "config": {**config["config"], "layers": [
        {**layer, "class_name": "Lambda"} if layer.get("class_name") == "Dense" else layer
        for layer in config["config"]["layers"]]}}
    with pytest.raises(ValueError, match="Lambda"):
        load(config=custom)


def test_a_tampered_block_payload_is_refused():
    dense = minirnn.load_model(ETHNICOLR).get_layer("dense")
    function, arguments = dense.__reduce_ex__(5)
    assert function is models.rebuild_block
    twin = pickle.loads(pickle.dumps(Tampered((function, arguments))))
    x = np.ones((2, 128), np.float32)
    assert_same_bits(twin(x), dense(x))
    kernel, bias = arguments[-1]
    with pytest.raises(ValueError, match="weight 0 must have shape"):
        pickle.loads(pickle.dumps(Tampered((function, (*arguments[:-1],
                                                       [kernel[:5], bias])))))
    with pytest.raises(ValueError, match="LSTM"):
        pickle.loads(pickle.dumps(Tampered((function, ("LSTM", *arguments[1:])))))


# ---- models ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", sorted(DUMPS))
@pytest.mark.parametrize("path", [ETHNICOLR, MASKING, ATTENTION, CONVOLUTION],
                         ids=["ethnicolr", "masking", "attention", "convolution"])
def test_saved_models_round_trip(path, how):
    model = minirnn.load_model(path)
    payload = DUMPS[how](model)
    twin = pickle.loads(payload)
    assert isinstance(twin, minirnn.Model) and twin is not model
    assert twin.input_names == model.input_names and twin.output_names == model.output_names
    assert twin.source == model.source and twin.semantics == model.semantics
    x = model.example_inputs(batch_size=4, timesteps=9, padding="end")
    assert_same_bits(twin.predict(x), model.predict(x))
    for layer, other in zip(model.layers, twin.layers):
        assert type(layer) is type(other)
        assert_same_bits(layer.get_weights(), other.get_weights())
        assert_same_bits(round_trip(layer, how).get_weights(), layer.get_weights())
    # Data only: configuration, arrays, the rebuilding functions; no compiled code.
    names = globals_of(pickle.dumps(model))
    assert "minirnn.model._rebuild_model" in names
    assert not any(name.startswith("numba") for name in names), names
    assert all(name.split(".")[0] in ("minirnn", "numpy") for name in names), names


def test_the_options_travel():
    model = minirnn.load_model(MASKING, dtype="float64", semantics="keras3")
    twin = round_trip(model, "cloudpickle")
    assert twin.layers[-1].dtype == "float64" and twin.semantics == "keras3"
    x = model.example_inputs(batch_size=3, timesteps=5, padding="start")
    assert_same_bits(twin(x), model(x))
    assert round_trip(minirnn.load_model(ETHNICOLR)).semantics == "keras2"


@pytest.mark.parametrize("how", sorted(DUMPS))
def test_a_stateful_model_carries_its_states(how):
    model = minirnn.load_model(ETHNICOLR, stateful=True)   # 20 steps per call
    x = np.concatenate(model.example_inputs(batch_size=3, seed=7) +
                       model.example_inputs(batch_size=3, seed=8) +
                       model.example_inputs(batch_size=3, seed=9), axis=1)
    assert_same_bits(round_trip(model, how)(x[:, :20]), model.predict(x[:, :20]))
    twin = round_trip(model, how)
    assert twin.stateful and twin._stream.batch == 3
    assert_same_bits(twin.get_layer("lstm").states, model.get_layer("lstm").states)
    assert_same_bits(twin(x[:, 20:40]), model(x[:, 20:40]))
    assert_same_bits(twin(x[:, 40:]), model(x[:, 40:]))
    model.reset_states()
    assert_same_bits(round_trip(model)(x[:, :20]), model(x[:, :20]))
    with pytest.raises(ValueError, match="batch size"):
        round_trip(model)(x[:2, :20])


def test_a_stateful_model_with_a_causal_convolution(keras, tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 4)(tokens)
    h = keras.layers.Conv1D(3, 3, padding="causal", dilation_rate=2)(h)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    y = keras.layers.Dense(2)(keras.layers.GRU(3, return_sequences=True)(h))
    keras.Model(tokens, y).save(tmp_path / "causal.keras")
    model = minirnn.load_model(tmp_path / "causal.keras", stateful=True)
    x = model.example_inputs(batch_size=2, timesteps=10, padding=None)[0]
    model(x[:, :3])
    twin = round_trip(model, "cloudpickle")
    assert twin._stream.contexts.keys() == model._stream.contexts.keys()
    assert_same_bits(twin(x[:, 3:]), model(x[:, 3:]))


def test_a_keras_model_with_masks(keras, tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(30, 4, mask_zero=True)(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(h)
    y = keras.layers.GRU(2)(h)            # every layer modelled by the bitwise mode
    keras.Model(tokens, y).save(tmp_path / "masked.keras")
    for options in ({}, {"bitwise": True} if BITWISE else {"dtype": "float64"}):
        model = minirnn.load_model(tmp_path / "masked.keras", **options)
        for padding in ("start", "middle", "end"):
            x = model.example_inputs(batch_size=4, timesteps=7, padding=padding)
            assert_same_bits(round_trip(model, "cloudpickle")(x), model(x))
    in_memory = minirnn.from_keras(keras.saving.load_model(tmp_path / "masked.keras"))
    x = in_memory.example_inputs(batch_size=3, timesteps=5)
    assert_same_bits(round_trip(in_memory)(x), in_memory(x))


def test_a_model_holds_its_recurrent_weights_once():
    model = minirnn.load_model(ETHNICOLR)
    kept = model._saved.weights["lstm"]
    lstm = model.get_layer("lstm")
    assert kept[0] is lstm.kernel and kept[1] is lstm.recurrent_kernel
    assert isinstance(model.get_layer("dense"), blocks.Dense)
