"""minirnn.attention against Keras' own layers: Attention, AdditiveAttention and
MultiHeadAttention.

Keras 3 runs in this process (the ``keras`` fixture); tf-keras (Keras 2) cannot
share a process with it, so its cases run in a child process that writes the
layers' configurations, weights, inputs and outputs into an .npz file. Each case
has random weights and non-zero biases, masks with rows masked entirely (the case
where Keras' ways of masking a score differ), and is held at atol = rtol = 1e-6 in
float32 and 1e-12 in float64.
"""

import json
import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import minirnn
from minirnn import attention, files
from minirnn.model import Model
from conftest import assert_close

# Keras itself warns about a softmax over one step (Tv = 1), a case tested on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = ["float32", "float64"]
# B, Tq, Tv, D
SHAPES = [(1, 1, 1, 1), (1, 1, 5, 3), (2, 4, 6, 5), (3, 7, 3, 2), (2, 5, 5, 8)]


def _randomise(layer, rng):
    layer.set_weights([rng.uniform(-0.6, 0.6, np.shape(w)).astype(w.dtype)
                       for w in layer.get_weights()])


def _block(layer, dtype, semantics="keras3"):
    """The minirnn block of a Keras layer: its JSON configuration and weights."""
    config = json.loads(json.dumps(layer.get_config()))
    block = attention.BLOCKS[type(layer).__name__](layer.name, config, dtype, semantics)
    block.set_weights(layer.get_weights())
    return block


def _mask(rng, B, T, dead_row=True):
    """A random mask with its first row all False (when B > 1) and another all True."""
    mask = rng.random((B, T)) > 0.35
    if B > 1 and dead_row:
        mask[0] = False
    mask[-1] = True
    return mask


def _numpy(keras, values):
    values = values if isinstance(values, (list, tuple)) else [values]
    return [keras.ops.convert_to_numpy(v) for v in values]


def _listed(values):
    return values if isinstance(values, list) else [values]


# ---- Attention and AdditiveAttention (Keras 3) -----------------------------------

KINDS = {
    "dot": ("Attention", {}),
    "dot_scale": ("Attention", {"use_scale": True}),
    "concat": ("Attention", {"score_mode": "concat"}),
    "concat_scale": ("Attention", {"score_mode": "concat", "use_scale": True}),
    "additive": ("AdditiveAttention", {}),
    "additive_unscaled": ("AdditiveAttention", {"use_scale": False}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", list(KINDS))
def test_attention(keras, kind, shape, dtype):
    """[q, v] and [q, v, k] (a value of another size), without masks, with a value
    mask, with both masks; causal or not; the scores too."""
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape, dtype)).encode()))
    B, Tq, Tv, D = shape
    class_name, options = KINDS[kind]
    q = rng.standard_normal((B, Tq, D)).astype(dtype)
    v = rng.standard_normal((B, Tv, D)).astype(dtype)
    k = rng.standard_normal((B, Tv, D)).astype(dtype)
    wide = rng.standard_normal((B, Tv, D + 2)).astype(dtype)
    for inputs in ([q, v], [q, wide, k]):
        layer = getattr(keras.layers, class_name)(dtype=dtype, **options)
        layer(inputs)
        _randomise(layer, rng)
        block = _block(layer, dtype)
        masks = [None, [None, _mask(rng, B, Tv)], [_mask(rng, B, Tq), _mask(rng, B, Tv)]]
        if len(inputs) == 3:
            masks.append([_mask(rng, B, Tq), _mask(rng, B, Tv), _mask(rng, B, Tv)])
        for mask in masks:
            for causal in (False, True):
                want = _numpy(keras, layer(inputs, mask=mask, use_causal_mask=causal,
                                           return_attention_scores=True))
                got = block(inputs, mask, return_attention_scores=True,
                            use_causal_mask=causal)
                for a, b in zip(got, want):
                    assert a.shape == b.shape and a.dtype == b.dtype
                    assert_close(a, b, dtype)
                alone = block(inputs, mask, use_causal_mask=causal)
                np.testing.assert_array_equal(alone, got[0])


def test_attention_fully_masked_rows(keras):
    """A query step whose every value is masked: s - 1e9 everywhere, so in float32
    the weights are uniform (the mean of the values); the query mask then zeroes
    the output row."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 3, 4)).astype("float32")
    v = rng.standard_normal((2, 5, 4)).astype("float32")
    value_mask = np.ones((2, 5), bool)
    value_mask[0] = False
    layer = keras.layers.Attention()
    block = _block(layer, "float32")
    y, weights = block([q, v], [None, value_mask], return_attention_scores=True)
    np.testing.assert_allclose(weights[0], np.full((3, 5), 0.2), rtol=1e-6)
    np.testing.assert_allclose(y[0], np.broadcast_to(v[0].mean(0), (3, 4)), atol=1e-6)
    query_mask = np.array([[True, False, True], [True, True, True]])
    y = block([q, v], [query_mask, value_mask])
    assert not y[0, 1].any() and y[0, 0].any()
    want = _numpy(keras, layer([q, v], mask=[query_mask, value_mask]))[0]
    assert_close(y, want, "float32")


def test_attention_mask_rule(keras):
    """The output carries the query's mask (compute_mask: mask[0]); the scores none."""
    block = _block(keras.layers.Attention(), "float32")
    query_mask, value_mask = np.array([[True, False]]), np.array([[True, True, False]])
    values = {"inputs": [np.ones((1, 2, 3)), np.ones((1, 3, 3))]}
    masks = {"inputs": [query_mask, value_mask]}
    assert block.compute_mask(values, masks) is query_mask
    values["return_attention_scores"] = True
    assert block.compute_mask(values, masks) == [query_mask, None]
    assert block.compute_mask(values, {"inputs": [None, value_mask]}) == [None, None]


# ---- MultiHeadAttention (Keras 3) -------------------------------------------------

MHA_CONFIGS = {
    "one_head": {"num_heads": 1, "key_dim": 1},
    "value_dim": {"num_heads": 2, "key_dim": 3, "value_dim": 4, "output_shape": 5},
    "no_bias": {"num_heads": 3, "key_dim": 2, "use_bias": False, "output_shape": (2, 3)},
    "dropout": {"num_heads": 2, "key_dim": 2, "dropout": 0.3},
    "gate_window": {"num_heads": 2, "key_dim": 3, "use_gate": True, "sliding_window": 2},
}
# B, Tq, Tv, query, value and key features
MHA_SHAPES = [(1, 1, 1, 1, 1, 1), (1, 1, 4, 3, 2, 5), (2, 5, 5, 4, 4, 4), (3, 6, 3, 5, 2, 3)]


def _mha_call(keras, layer, q, v, k, query_mask, value_mask, key_mask, **call):
    """Keras reads the query's mask off the tensor (and removes it): set a fresh one."""
    from keras.src.backend import set_keras_mask
    tensor = keras.ops.convert_to_tensor(q)
    if query_mask is not None:
        set_keras_mask(tensor, keras.ops.convert_to_tensor(query_mask))
    return _numpy(keras, layer(tensor, v, key=k, value_mask=value_mask, key_mask=key_mask,
                               **call))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MHA_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", list(MHA_CONFIGS))
def test_multi_head_attention(keras, config, shape, dtype):
    """Every mask source alone and together, causal or not, an attention_mask, with
    and without the scores (Keras' fused and Softmax paths)."""
    rng = np.random.default_rng(zlib.crc32(repr((config, shape, dtype)).encode()))
    B, Tq, Tv, Dq, Dv, Dk = shape
    q = rng.standard_normal((B, Tq, Dq)).astype(dtype)
    v = rng.standard_normal((B, Tv, Dv)).astype(dtype)
    k = rng.standard_normal((B, Tv, Dk)).astype(dtype)
    layer = keras.layers.MultiHeadAttention(dtype=dtype, **MHA_CONFIGS[config])
    layer(q, v, key=k)
    _randomise(layer, rng)
    block = _block(layer, dtype)
    allowed = rng.random((B, Tq, Tv)) > 0.3
    allowed[-1, 0] = False
    cases = [{}, {"query_mask": _mask(rng, B, Tq)}, {"value_mask": _mask(rng, B, Tv)},
             {"key_mask": _mask(rng, B, Tv), "attention_mask": allowed},
             {"query_mask": _mask(rng, B, Tq), "value_mask": _mask(rng, B, Tv),
              "key_mask": _mask(rng, B, Tv, dead_row=False)}]
    for masks in cases:
        for causal in (False, True):
            for scores in (False, True):
                call = {"use_causal_mask": causal, "return_attention_scores": scores,
                        "attention_mask": masks.get("attention_mask")}
                want = _mha_call(keras, layer, q, v, k, masks.get("query_mask"),
                                 masks.get("value_mask"), masks.get("key_mask"), **call)
                got = _listed(block(q, v, key=k, query_mask=masks.get("query_mask"),
                                    value_mask=masks.get("value_mask"),
                                    key_mask=masks.get("key_mask"), **call))
                assert len(got) == len(want)
                for a, b in zip(got, want):
                    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape)
                    assert_close(a, b, dtype)


def test_mha_fully_masked_rows_differ_by_path(keras):
    """A query step masked entirely: Keras 3's fused path (no scores asked) gives it
    uniform weights, the mean of the projected values; its Softmax path (scores
    asked, or dropout > 0) weights 0, so the output row is the output bias."""
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 3, 4)).astype("float32")
    v = rng.standard_normal((2, 5, 4)).astype("float32")
    layer = keras.layers.MultiHeadAttention(2, 3)
    layer(q, v)
    _randomise(layer, rng)
    block = _block(layer, "float32")
    query_mask = np.array([[True, False, True], [True, True, True]])
    fused = block(q, v, query_mask=query_mask)
    softmax, weights = block(q, v, query_mask=query_mask, return_attention_scores=True)
    assert not weights[0, :, 1].any()
    np.testing.assert_allclose(softmax[0, 1], layer.get_weights()[-1], atol=1e-6)
    assert np.abs(fused[0, 1] - softmax[0, 1]).max() > 1e-3
    assert_close(fused, _mha_call(keras, layer, q, v, None, query_mask, None, None)[0],
                 "float32")
    want = _mha_call(keras, layer, q, v, None, query_mask, None, None,
                     return_attention_scores=True)
    assert_close(softmax, want[0], "float32")
    assert_close(weights, want[1], "float32")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axes", [None, (1, 2), (2,), 1, (-2,), (2, 1)],
                         ids=["default", "both", "second", "first", "negative", "reversed"])
def test_mha_attention_axes(keras, axes, dtype):
    """4-D inputs (B, X, Y, C), attending over one axis or two (Keras' einsum
    equations; the scores in its layout)."""
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    v = rng.standard_normal((2, 3, 4, 2)).astype(dtype)
    layer = keras.layers.MultiHeadAttention(2, 3, attention_axes=axes, dtype=dtype,
                                            output_shape=(2, 2))
    layer(q, v)
    _randomise(layer, rng)
    block = _block(layer, dtype)
    for scores in (False, True):
        want = _numpy(keras, layer(q, v, return_attention_scores=scores))
        got = _listed(block(q, v, return_attention_scores=scores))
        for a, b in zip(got, want):
            assert a.shape == b.shape
            assert_close(a, b, dtype)


def test_mha_mask_rule_and_shapes(keras):
    block = _block(keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=7),
                   "float32")
    shapes = {"query": (None, 5, 6), "value": (None, 8, 2), "key": (None, 8, 3)}
    assert block.weight_shapes(shapes) == [(6, 2, 3), (2, 3), (3, 2, 3), (2, 3), (2, 2, 4),
                                           (2, 4), (2, 4, 7), (7,)]
    assert block.output_shape(shapes) == (None, 5, 7)
    shapes["return_attention_scores"] = True
    assert block.output_shape(shapes) == [(None, 5, 7), (None, 2, 5, 8)]
    query_mask = np.ones((1, 5), bool)
    assert block.compute_mask({"return_attention_scores": True}, {"query": query_mask}) \
        == [query_mask, None]


# ---- Keras 2 (tf-keras), in a child process ----------------------------------------

_KERAS2_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(11)
    out = {}

    def masked(x, mask):
        t = tf.constant(x)
        if mask is not None:
            t._keras_mask = tf.constant(mask)
        return t

    def shapes(value):  # the build shapes tf-keras' MultiHeadAttention keeps
        return value.as_list()

    def save(name, layer, inputs, outputs):
        out[name + ".config"] = np.array(json.dumps(layer.get_config(), default=shapes))
        for k, w in enumerate(layer.get_weights()):
            out[f"{name}.w{k}"] = w
        for key, value in inputs.items():
            if value is not None:
                out[f"{name}.in.{key}"] = np.asarray(value)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for k, y in enumerate(outputs):
            out[f"{name}.y{k}"] = np.asarray(y)

    def randomise(layer):
        layer.set_weights([rng.uniform(-0.6, 0.6, np.shape(w)).astype(w.dtype)
                           for w in layer.get_weights()])

    for dtype in ("float32", "float64"):
        q = rng.standard_normal((3, 4, 5)).astype(dtype)
        v = rng.standard_normal((3, 6, 5)).astype(dtype)
        qm = np.array([[1, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]], bool)
        vm = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]], bool)
        for name, make, call in [
                ("dot_causal", lambda: keras.layers.Attention(use_scale=True, causal=True,
                                                             dtype=dtype), {}),
                ("concat", lambda: keras.layers.Attention(score_mode="concat", dtype=dtype),
                 {"use_causal_mask": True}),
                ("additive", lambda: keras.layers.AdditiveAttention(dtype=dtype), {})]:
            layer = make()
            layer([q, v])
            randomise(layer)
            y = layer([q, v], mask=[qm, vm], return_attention_scores=True, **call)
            save(f"{dtype}.{name}", layer, {"q": q, "v": v, "qm": qm, "vm": vm}, y)
            if name == "dot_causal":  # `causal` is not in tf-keras' configuration
                out[f"{dtype}.{name}.config"] = np.array(json.dumps(
                    {**layer.get_config(), "causal": True}))
        allowed = (rng.random((3, 4, 6)) > 0.3).astype(dtype)
        allowed[1, 2] = 0
        for name, options, call, masks in [
                ("additive_mask", {}, {"use_causal_mask": True}, (qm, vm)),
                ("robust", {"softmax_robust_masking": True}, {}, (qm, vm)),
                ("float_mask", {"value_dim": 2, "output_shape": 3},
                 {"attention_mask": allowed}, (None, None)),
                ("scores", {"use_bias": False}, {"return_attention_scores": True},
                 (qm, None))]:
            layer = keras.layers.MultiHeadAttention(2, 3, dtype=dtype, **options)
            layer(q, v)
            randomise(layer)
            y = layer(masked(q, masks[0]), masked(v, masks[1]), **call)
            save(f"{dtype}.mha_{name}", layer,
                 {"q": q, "v": v, "qm": masks[0], "vm": masks[1],
                  "attention_mask": call.get("attention_mask")}, y)
            out[f"{dtype}.mha_{name}.call"] = np.array(json.dumps(
                {k: v for k, v in call.items() if k != "attention_mask"}))
    np.savez(sys.argv[1], **out)
''')


@pytest.fixture(scope="module")
def keras2_cases(tmp_path_factory):
    import importlib.util
    for module in ("tensorflow", "tf_keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    path = str(tmp_path_factory.mktemp("keras2") / "cases.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", _KERAS2_SCRIPT, path], env=env,
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(path)
    return {key: data[key] for key in data.files}


def _keras2_block(cases, name, class_name):
    dtype = name.split(".")[0]
    config = json.loads(str(cases[f"{name}.config"]))
    block = attention.BLOCKS[class_name](config["name"], config, dtype, "keras2")
    block.set_weights([cases[f"{name}.w{k}"] for k in range(10) if f"{name}.w{k}" in cases])
    return block, dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,class_name", [("dot_causal", "Attention"),
                                             ("concat", "Attention"),
                                             ("additive", "AdditiveAttention")])
def test_keras2_attention(keras2_cases, name, class_name, dtype):
    """tf-keras: the `causal` configuration key, result *= cast(query mask)."""
    cases, key = keras2_cases, f"{dtype}.{name}"
    block, dtype = _keras2_block(cases, key, class_name)
    causal = name == "concat"
    got = block([cases[f"{key}.in.q"], cases[f"{key}.in.v"]],
                [cases[f"{key}.in.qm"], cases[f"{key}.in.vm"]],
                return_attention_scores=True, use_causal_mask=causal)
    for k, a in enumerate(got):
        assert_close(a, cases[f"{key}.y{k}"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["additive_mask", "robust", "float_mask", "scores"])
def test_keras2_multi_head_attention(keras2_cases, name, dtype):
    """tf-keras: s + (1 - m) * -1e9 (fully masked rows: near-uniform weights, never
    zeroed), softmax_robust_masking, a float attention_mask used additively."""
    cases, key = keras2_cases, f"{dtype}.mha_{name}"
    block, dtype = _keras2_block(cases, key, "MultiHeadAttention")
    call = json.loads(str(cases[f"{key}.call"]))
    got = _listed(block(cases[f"{key}.in.q"], cases[f"{key}.in.v"],
                        query_mask=cases.get(f"{key}.in.qm"),
                        value_mask=cases.get(f"{key}.in.vm"),
                        key_mask=cases.get(f"{key}.in.vm"),
                        attention_mask=cases.get(f"{key}.in.attention_mask"), **call))
    for k, a in enumerate(got):
        assert_close(a, cases[f"{key}.y{k}"], dtype)


# ---- in models: call arguments, masks, refusals -----------------------------------

def _saved(keras, model):
    """A SavedModel of an in-memory Keras 3 model, its configuration as JSON."""
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model),
                                   default=lambda v: v.tolist()))
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()]
               for layer in model.layers}
    return config, weights


def _load(config, weights, semantics="keras3"):
    source = {"path": None, "format": "memory", "keras_version": "3.0.0",
              "semantics": semantics}
    return Model(files.SavedModel(config, weights, source))


def _layer(config, name):
    return next(l for l in config["config"]["layers"] if l["config"].get("name") == name)


def test_model_call_arguments(keras):
    """A call by keywords only, a constant attention_mask (an array in the
    configuration), a shared layer called twice with different arguments, and a
    key of its own; minirnn against Keras' model call."""
    rng = np.random.default_rng(6)
    L = keras.layers
    q = keras.Input((4, 3), name="q")
    v = keras.Input((5, 3), name="v")
    allowed = np.tril(np.ones((1, 4, 5), bool))
    shared = L.MultiHeadAttention(2, 2, name="shared")
    a = shared(query=q, value=v, attention_mask=allowed)
    b = shared(q, v, key=L.Dense(3)(v))
    # (Keras 3 cannot build a model where a shared layer's second call returns scores)
    _, scores = L.MultiHeadAttention(1, 3)(q, q, return_attention_scores=True)
    c = L.Attention(name="luong")([q, v], use_causal_mask=True)
    model = keras.Model([q, v], [a, b, scores, c])
    for layer in model.layers:
        _randomise(layer, rng)
    x = [rng.standard_normal((3, 4, 3)).astype("float32"),
         rng.standard_normal((3, 5, 3)).astype("float32")]
    config, weights = _saved(keras, model)
    kwargs = _layer(config, "shared")["inbound_nodes"][0]["kwargs"]
    assert kwargs["attention_mask"]["class_name"] in ("__tensor__", "__numpy__")
    ours = _load(config, weights)
    for got, want in zip(ours(x), _numpy(keras, model(x))):
        assert_close(got, want, "float32")
    lines = []
    ours.summary(print_fn=lines.append)
    assert any("shared" in line and "dense" in line for line in lines)


def test_model_keras3_mha_removes_its_inputs_masks(keras):
    """Keras 3's MultiHeadAttention.call removes the masks of its query, value and
    key tensors (backend.set_keras_mask(query, None)); a later layer reading the
    same tensor sees it unmasked. Here an Attention over the LSTM's sequence after
    the MultiHeadAttention: its value mask is gone."""
    rng = np.random.default_rng(7)
    L = keras.layers
    x = keras.Input((6, 3))
    h = L.LSTM(4, return_sequences=True)(L.Masking()(x))
    a = L.MultiHeadAttention(2, 2, name="mha")(h, h)
    y = L.Attention(name="after")([a, h])
    model = keras.Model(x, y)
    for layer in model.layers:
        _randomise(layer, rng)
    data = rng.standard_normal((3, 6, 3)).astype("float32")
    data[0, 3:] = 0.0
    data[1, :2] = 0.0
    want = _numpy(keras, model(data))[0]
    ours = minirnn.from_keras(model)
    assert_close(ours(data), want, "float32")
    ours.get_layer("mha").clears_masks = ()  # as if the masks stayed
    assert np.abs(ours(data) - want).max() > 1e-4


def test_model_keras3_initial_state_runs_unmasked(keras):
    """Keras 3 fills in a layer's `mask` only when its call has one tensor argument:
    a decoder LSTM given an initial state runs over padded steps unmasked (its
    output still carries the mask, which an Attention then reads)."""
    rng = np.random.default_rng(8)
    L = keras.layers
    source, target = keras.Input((5, 2)), keras.Input((None,), dtype="int32")
    _, h, c = L.LSTM(3, return_state=True)(source)
    e = L.Embedding(9, 3, mask_zero=True)(target)
    d = L.LSTM(3, return_sequences=True)(e, initial_state=[h, c])
    model = keras.Model([source, target], [d, L.Attention()([d, d])])
    for layer in model.layers:
        _randomise(layer, rng)
    tokens = rng.integers(1, 9, (3, 6)).astype("int32")
    tokens[0, 3:] = 0
    xs = [rng.standard_normal((3, 5, 2)).astype("float32"), tokens]
    want = _numpy(keras, model(xs))
    for got, wanted in zip(minirnn.from_keras(model)(xs), want):
        assert_close(got, wanted, "float32")
    assert not np.allclose(want[0][0, 3], want[0][0, 2])  # the padded steps ran


def test_operations_and_mask_kinds(keras):
    """ConvertToTensor (Attention's compute_mask records it) is a mask operation."""
    L = keras.layers
    x = keras.Input((None,), dtype="int32")
    h = L.Embedding(7, 4, mask_zero=True)(x)
    a = L.Attention()([h, h])
    model = keras.Model(x, L.GlobalAveragePooling1D()(a))
    config, weights = _saved(keras, model)
    kinds = {l["class_name"] for l in config["config"]["layers"]}
    assert "ConvertToTensor" in kinds
    tokens = np.array([[1, 2, 0, 0], [3, 0, 4, 5]], "int32")
    assert_close(_load(config, weights)(tokens), _numpy(keras, model(tokens))[0], "float32")


BAD_CONFIGS = [
    ("Attention", {"score_mode": "general"}, "score_mode"),
    ("Attention", {"use_scale": "yes"}, "use_scale"),
    ("Attention", {"dropout": 2}, "dropout"),
    ("Attention", {"causal": 1}, "causal"),
    ("AdditiveAttention", {"use_scale": None}, "use_scale"),
    ("MultiHeadAttention", {"key_dim": 2}, "num_heads"),
    ("MultiHeadAttention", {"num_heads": 0, "key_dim": 2}, "num_heads"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": "4"}, "key_dim"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "value_dim": -1}, "value_dim"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "output_shape": [3, 0]},
     "output_shape"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "attention_axes": "1"},
     "attention_axes"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "use_bias": 1}, "use_bias"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "use_gate": "no"}, "use_gate"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "sliding_window": 0},
     "sliding_window"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "flash_attention": True},
     "flash_attention"),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "dropout": "0.1"}, "dropout"),
]


@pytest.mark.parametrize("class_name,config,key", BAD_CONFIGS,
                         ids=[f"{c}-{k}" for c, _, k in BAD_CONFIGS])
def test_bad_configurations(class_name, config, key):
    with pytest.raises(ValueError, match=f"`{key}`"):
        attention.BLOCKS[class_name]("layer", config, "float32")


def test_bad_attention_axes_for_the_inputs():
    block = attention.BLOCKS["MultiHeadAttention"](
        "m", {"num_heads": 1, "key_dim": 2, "attention_axes": [2]}, "float32")
    with pytest.raises(ValueError, match="attention_axes"):
        block.output_shape({"query": (None, 4, 3), "value": (None, 4, 3)})
    with pytest.raises(ValueError, match="same rank"):
        block.weight_shapes({"query": (None, 4, 3), "value": (None, 4, 2, 3)})


def test_bad_call_arguments(keras):
    """Call arguments are checked when the model loads, naming the argument; every
    other layer still refuses arguments it does not take."""
    L = keras.layers
    q = keras.Input((3, 2), name="q")
    a = L.MultiHeadAttention(1, 2, name="mha")(q, q, use_causal_mask=True)
    y = L.Dense(2, name="dense")(a)
    model = keras.Model(q, y)
    config, weights = _saved(keras, model)
    _load(config, weights)

    def refused(edit, pattern, semantics="keras3"):
        changed = json.loads(json.dumps(config))
        edit(changed)
        with pytest.raises(ValueError, match=pattern):
            _load(changed, weights, semantics)

    def node(c, name):
        return _layer(c, name)["inbound_nodes"][0]

    refused(lambda c: node(c, "mha")["kwargs"].update(use_causal_mask="yes"),
            "`use_causal_mask` must be true or false")
    refused(lambda c: node(c, "mha")["kwargs"].update(return_attention_scores=[1]),
            "`return_attention_scores`")
    refused(lambda c: node(c, "mha")["kwargs"].update(mask=node(c, "mha")["args"][0]),
            r"passes \['mask'\]")
    refused(lambda c: node(c, "mha")["kwargs"].update(bogus=1),
            r"the call passes \['bogus'\], which minirnn does not reproduce")
    refused(lambda c: node(c, "mha")["kwargs"].update(value=node(c, "mha")["args"][0]),
            "'value' twice")
    refused(lambda c: node(c, "mha")["kwargs"].update(
        use_causal_mask=node(c, "mha")["args"][0]), "'use_causal_mask' must be a constant")
    refused(lambda c: node(c, "mha")["args"].extend([None] * 9), "positional arguments")
    refused(lambda c: node(c, "mha").update(args=[]), "'query' must be a tensor")
    refused(lambda c: node(c, "dense")["kwargs"].update(bogus=1),
            r"layer 'dense': the call passes \['bogus'\], which minirnn does not reproduce")
    refused(lambda c: node(c, "dense")["args"].append(node(c, "dense")["args"][0]),
            r"layer 'dense': the call passes 2 positional arguments")
    refused(lambda c: node(c, "mha")["kwargs"].update(attention_mask={
        "class_name": "__tensor__", "config": {"value": [["a"]], "dtype": "bool"}}),
        "array constant")
    refused(lambda c: node(c, "mha")["kwargs"].update(attention_mask={
        "class_name": "__tensor__", "config": {"value": [1], "dtype": "object"}}),
        "dtype")
    # Keras 2's MultiHeadAttention takes no value_mask
    refused(lambda c: node(c, "mha")["kwargs"].update(value_mask=None), "value_mask",
            "keras2")


def test_keras2_call_arguments():
    """Keras 2 writes tensors among call arguments as [layer, node, index]; a layer
    that takes none still refuses them."""
    def functional(kwargs, class_name="MultiHeadAttention", config=None):
        return {"class_name": "Functional", "config": {
            "name": "m", "layers": [
                {"class_name": "InputLayer", "name": "q", "inbound_nodes": [],
                 "config": {"name": "q", "batch_input_shape": [None, 3, 2]}},
                {"class_name": class_name, "name": "layer",
                 "config": config or {"name": "layer", "num_heads": 1, "key_dim": 2},
                 "inbound_nodes": [[["q", 0, 0, kwargs]]]}],
            "input_layers": [["q", 0, 0]], "output_layers": [["layer", 0, 0]]}}

    rng = np.random.default_rng(9)
    weights = {"layer": [rng.uniform(-1, 1, s).astype("float32") for s in
                         [(2, 1, 2), (1, 2), (2, 1, 2), (1, 2), (2, 1, 2), (1, 2), (1, 2, 2),
                          (2,)]]}
    model = _load(functional({"value": ["q", 0, 0], "use_causal_mask": True}), weights,
                  "keras2")
    x = rng.standard_normal((2, 3, 2)).astype("float32")
    block = model.get_layer("layer")
    np.testing.assert_array_equal(model(x), block(x, x, use_causal_mask=True))
    with pytest.raises(ValueError, match=r"the call passes \['units'\]"):
        _load(functional({"units": 3}, "Dense", {"name": "layer", "units": 2}),
              {"layer": [np.ones((2, 2), "float32"), np.ones(2, "float32")]}, "keras2")
    with pytest.raises(ValueError, match="passes no `value`"):
        _load(functional({}), weights, "keras2")


def test_keras2_explicit_masks():
    """tf-keras writes an explicit mask argument on each entry of the input; an
    explicit [None, None] switches the implicit masks off, as in tf-keras."""
    def model(mask_argument):
        entry = {} if mask_argument is None else {"mask": mask_argument}
        return {"class_name": "Functional", "config": {
            "name": "m", "layers": [
                {"class_name": "InputLayer", "name": "q", "inbound_nodes": [],
                 "config": {"name": "q", "batch_input_shape": [None, 4, 3]}},
                {"class_name": "Masking", "name": "masking",
                 "config": {"name": "masking", "mask_value": 0.0},
                 "inbound_nodes": [[["q", 0, 0, {}]]]},
                {"class_name": "Attention", "name": "att", "config": {"name": "att"},
                 "inbound_nodes": [[["masking", 0, 0, entry], ["masking", 0, 0, entry]]]}],
            "input_layers": [["q", 0, 0]], "output_layers": [["att", 0, 0]]}}

    x = np.random.default_rng(10).standard_normal((2, 4, 3)).astype("float32")
    x[0, 2:] = 0.0
    block = attention.BLOCKS["Attention"]("att", {}, "float32", "keras2")
    mask = (x != 0).any(-1)
    np.testing.assert_array_equal(_load(model(None), {}, "keras2")(x),
                                  block([x, x], [mask, mask]))
    np.testing.assert_array_equal(_load(model([None, None]), {}, "keras2")(x),
                                  block([x, x]))
    with pytest.raises(ValueError, match="different arguments"):
        bad = model([None, None])
        bad["config"]["layers"][2]["inbound_nodes"][0][1][3] = {}
        _load(bad, {}, "keras2")
