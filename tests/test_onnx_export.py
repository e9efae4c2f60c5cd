"""ONNX export (minirnn.bridge.onnx): layers and models written as ONNX graphs, each
checked in ONNX Runtime against minirnn before it is written.

Every export below runs the exporter's own check (onnx.checker, then ONNX Runtime on
example inputs within 1e-6 abs + 1e-6 rel in float32, 1e-12 in float64); the tests
also run the written file again on inputs of their own.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import minirnn
from minirnn import keras2

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
bridge = pytest.importorskip("minirnn.bridge.onnx")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def make(cls, D=3, M=4, seed=0, **settings):
    """A layer with random per-gate weights and non-zero biases."""
    rng = np.random.default_rng(seed)
    layer = cls(M, **settings)
    base = cls.__name__.replace("Keras2", "")
    width = GATES[base] * M
    weights = [rng.normal(size=(D, width)) * 0.5, rng.normal(size=(M, width)) * 0.5]
    if settings.get("use_bias", True):
        two_rows = base == "GRU" and settings.get("reset_after", True)
        weights.append(rng.normal(size=(2, width) if two_rows else (width,)))
    layer.set_weights([w.astype(settings.get("dtype", "float32")) for w in weights])
    return layer


def recurrent_ops(proto):
    return [n.op_type for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN", "Scan")]


def run_file(path, feed):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def assert_close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    tol = TOLERANCE[ours.dtype.name]
    np.testing.assert_allclose(theirs, ours, rtol=tol, atol=tol)


# ---- layers ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "GRU_before", "SimpleRNN"])
@pytest.mark.parametrize("settings", [
    {}, {"return_sequences": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"return_state": True, "use_bias": False}])
def test_layers_export_and_match(tmp_path, cell, dtype, settings):
    cls = minirnn.GRU if cell.startswith("GRU") else getattr(minirnn, cell)
    extra = {"reset_after": False} if cell == "GRU_before" else {}
    layer = make(cls, D=5, M=3, dtype=dtype, **settings, **extra)
    path = str(tmp_path / "layer.onnx")
    proto = bridge.to_onnx(layer, path, initial_state=True)
    # float32 without a mask: the ONNX recurrent node itself; float64: a Scan
    expected_op = {"LSTM": "LSTM", "SimpleRNN": "RNN"}.get(cell, "GRU")
    assert recurrent_ops(proto) == [expected_op if dtype == "float32" else "Scan"]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 1, 5)).astype(dtype)               # B = 1, T = 1
    states = [rng.normal(size=(1, 3)).astype(dtype) for _ in layer._state_names]
    names = ["initial_h", "initial_c"][:len(states)]
    got = run_file(path, {"x": x, **dict(zip(names, states))})
    ours = layer(x, initial_state=states)
    for a, b in zip(ours if isinstance(ours, list) else [ours], got):
        assert_close(a, b)


def test_go_backwards_keeps_keras_processed_order(tmp_path):
    """Keras returns a go_backwards sequence in processed order: output[:, 0] comes from
    the last input step; ONNX's reverse direction aligns Y with the inputs, so the
    graph flips it."""
    layer = make(minirnn.LSTM, go_backwards=True, return_sequences=True)
    path = str(tmp_path / "backwards.onnx")
    bridge.to_onnx(layer, path)
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype("float32")
    (y,) = run_file(path, {"x": x})
    assert_close(layer(x), y)
    forward = make(minirnn.LSTM, return_sequences=True)
    assert_close(forward(x[:, ::-1]), y)


def test_units_one_and_odd_sizes():
    for cls in (minirnn.LSTM, minirnn.GRU, minirnn.SimpleRNN):
        bridge.export_model(make(cls, D=1, M=1, return_sequences=True, return_state=True))
        bridge.export_model(make(cls, D=7, M=5, dtype="float64"), mask=True)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_every_merge_mode(tmp_path, merge_mode, dtype):
    forward = make(minirnn.GRU, D=4, M=3, dtype=dtype, return_sequences=True,
                   return_state=True)
    layer = minirnn.Bidirectional(forward, merge_mode=merge_mode,
                                  backward_layer=make(minirnn.GRU, D=4, M=3, seed=5,
                                                      dtype=dtype, go_backwards=True,
                                                      return_sequences=True,
                                                      return_state=True))
    path = str(tmp_path / "bi.onnx")
    proto = bridge.to_onnx(layer, path, initial_state=True)
    assert len(recurrent_ops(proto)) == 2
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 4)).astype(dtype)
    states = [rng.normal(size=(3, 3)).astype(dtype) for _ in range(2)]
    got = run_file(path, {"x": x, "initial_forward_h": states[0],
                          "initial_backward_h": states[1]})
    ours = layer(x, initial_state=states)
    assert len(got) == len(ours)
    for a, b in zip(ours, got):
        assert_close(a, b)
    bridge.export_model(layer, mask=True)   # the masked Scan of both directions


def test_masks_are_a_scan_with_keras_rule():
    """Masked steps hold the states and repeat the previous output (zeros with
    zero_output_for_mask); holes in the middle as well as padding."""
    for zero in (False, True):
        layer = make(minirnn.LSTM, return_sequences=True, return_state=True,
                     zero_output_for_mask=zero)
        proto = bridge.export_model(layer, mask=True)
        assert recurrent_ops(proto) == ["Scan"]
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
        mask = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
        for a, b in zip(layer(x, mask=mask), session.run(None, {"x": x, "mask": mask})):
            assert_close(a, b)


@pytest.mark.parametrize("semantics", ["keras3", "keras2"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hard_sigmoid_variants(semantics, dtype):
    """Keras 3's relu6(x + 3) / 6 is HardSigmoid alpha 1/6, Keras 2's alpha 0.2; both
    beta 0.5. As the first activation the node takes it; elsewhere a Scan."""
    cls = minirnn.LSTM if semantics == "keras3" else keras2.Keras2LSTM
    gate = make(cls, dtype=dtype, recurrent_activation="hard_sigmoid")
    proto = bridge.export_model(gate)
    assert recurrent_ops(proto) == ["LSTM" if dtype == "float32" else "Scan"]
    if dtype == "float32":
        node = next(n for n in proto.graph.node if n.op_type == "LSTM")
        alpha = next(a for a in node.attribute if a.name == "activation_alpha").floats[0]
        assert alpha == pytest.approx(1 / 6 if semantics == "keras3" else 0.2)
    candidate = make(cls, dtype=dtype, activation="hard_sigmoid", return_sequences=True)
    assert recurrent_ops(bridge.export_model(candidate)) == ["Scan"]


@pytest.mark.parametrize("activation", ["swish", "gelu", "elu", "softplus", "mish",
                                        "softmax", "relu6", "hard_silu"])
def test_activations_onnx_nodes_lack_become_a_scan(activation):
    layer = make(minirnn.GRU, activation=activation, return_sequences=True)
    assert recurrent_ops(bridge.export_model(layer)) == ["Scan"]


# ---- refusals and checks -----------------------------------------------------------------

def test_refusals_name_the_layer_and_why(tmp_path):
    path = str(tmp_path / "never.onnx")
    with pytest.raises(ValueError, match=r"layer 'lstm'.*stateful"):
        bridge.to_onnx(make(minirnn.LSTM, stateful=True), path)
    with pytest.raises(ValueError, match=r"'soft_shrink'.*refused"):
        bridge.to_onnx(make(minirnn.LSTM, activation="soft_shrink"), path)
    with pytest.raises(ValueError, match=r"'gelu'.*float32 only"):
        bridge.to_onnx(make(minirnn.GRU, activation="gelu", dtype="float64"), path)
    with pytest.raises(ValueError, match="opset"):
        bridge.to_onnx(make(minirnn.LSTM), path, opset=9)
    with pytest.raises(TypeError):
        bridge.to_onnx(np.zeros(3), path)
    assert not os.path.exists(path)


def test_a_graph_that_computes_something_else_is_not_written(tmp_path, monkeypatch):
    layer = make(minirnn.LSTM)
    proto = bridge.export_model(layer)
    for init in proto.graph.initializer:
        if init.name.endswith("_R"):
            array = onnx.numpy_helper.to_array(init).copy()
            array[0, 0, 0] += 1e-3
            init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    with pytest.raises(bridge.ExportError, match="differs from minirnn"):
        bridge.check_export(proto, layer)
    # and to_onnx writes nothing when its check fails
    monkeypatch.setattr(bridge, "check_export", lambda *a, **k: (_ for _ in ()).throw(
        bridge.ExportError("differs")))
    path = str(tmp_path / "bad.onnx")
    with pytest.raises(bridge.ExportError):
        bridge.to_onnx(layer, path)
    assert not os.path.exists(path)


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"minirnn\[export\]"):
        bridge.export_model(make(minirnn.LSTM))


def test_import_minirnn_stays_free_of_onnx():
    code = ("import sys, minirnn, minirnn.bridge.onnx; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---- whole models ----------------------------------------------------------------------------

def _model(keras, build):
    return minirnn.from_keras(build(keras))


def _embedding_lstm(keras):
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 6, mask_zero=True)(inputs)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    h = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="tanh"))(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))


def _masking_bidirectional(keras):
    inputs = keras.Input((7, 3))
    h = keras.layers.Masking(0.0)(inputs)
    h = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True),
                                   merge_mode="sum")(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.SimpleRNN(3, go_backwards=True)(h)
    return keras.Model(inputs, keras.layers.Dense(2)(h))


def _conv_gru(keras):
    inputs = keras.Input((9, 2))
    h = keras.layers.Conv1D(4, 3, padding="causal", activation="relu")(inputs)
    h = keras.layers.MaxPooling1D(2, padding="same")(h)
    a = keras.layers.GRU(3, return_sequences=True, recurrent_activation="hard_sigmoid")(h)
    b = keras.layers.LSTM(3, return_sequences=True, activation="swish")(h)
    h = keras.layers.Concatenate()([keras.layers.Add()([a, b]), a])
    h = keras.layers.BatchNormalization()(keras.layers.Flatten()(h))
    return keras.Model(inputs, keras.layers.Dense(2, activation="gelu")(h))


def _decoder_with_mask(keras):
    """An encoder-decoder whose decoder gets an initial state and an explicit mask
    computed from its float input: the mask must reach the exported decoder."""
    encoder, decoder = keras.Input((None, 3), name="enc"), keras.Input((None, 3), name="dec")
    _, h, c = keras.layers.LSTM(4, return_state=True)(encoder)
    mask = keras.ops.any(keras.ops.not_equal(decoder, 0.0), axis=-1)
    y = keras.layers.LSTM(4, return_sequences=True)(decoder, initial_state=[h, c], mask=mask)
    return keras.Model([encoder, decoder], y)


def _leaky_relu(keras):
    inputs = keras.Input((6, 3))
    h = keras.layers.LeakyReLU(negative_slope=0.17)(keras.layers.Dense(5)(inputs))
    return keras.Model(inputs, keras.layers.LSTM(4)(h))


def _uint8_tokens(keras):
    inputs = keras.Input((None,), dtype="uint8")
    h = keras.layers.Embedding(30, 4, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.GRU(3)(h))


@pytest.mark.parametrize("build", [_embedding_lstm, _masking_bidirectional, _conv_gru,
                                   _decoder_with_mask, _uint8_tokens, _leaky_relu])
def test_whole_models_export(keras, tmp_path, build):
    model = _model(keras, build)
    path = str(tmp_path / "model.onnx")
    proto = bridge.to_onnx(model, path)
    assert [i.name for i in proto.graph.input] == model.input_names
    for padding in ("start", "end"):
        arrays = model.example_inputs(batch_size=2, seed=7, padding=padding)
        arrays = [np.asarray(a).astype(spec["dtype"]) for a, spec in
                  zip(arrays, model.input_specs)]
        arrays = [_zero_steps(a) for a in arrays]  # whole float steps of zeros: masked
        got = run_file(path, dict(zip(model.input_names, arrays)))
        ours = model(arrays)
        ours = ours if isinstance(ours, list) else [ours]
        assert len(got) == len(ours)
        for a, b in zip(ours, got):
            assert_close(a, b)


def _zero_steps(x):
    if x.dtype.kind != "f" or x.ndim < 3 or x.shape[1] < 3:
        return x
    x = x.copy()
    x[0, -2:] = 0
    x[1, :1] = 0
    return x


# ---- the committed corpus -------------------------------------------------------------------

def _corpus():
    from reference import corpus
    manifest = corpus.load_manifest()
    found = []
    for name, entry in manifest["files"].items():
        if not entry["committed"]:
            continue
        path = os.path.join(corpus.COMMITTED, corpus.local_name(entry))
        found.append((name, path, corpus.weights_path(entry, path)))
    return found


CORPUS = _corpus()


def test_corpus_files_export_or_are_refused_with_the_reason():
    """Every committed corpus file either exports (checked) or is refused with a
    ValueError naming its layer (a layer not exported) or the check's difference
    (float32 rounding over long sequences)."""
    exported, refused = [], {}
    for name, path, weights in CORPUS:
        if not os.path.exists(path):
            continue
        model = minirnn.load_model(path, weights=weights)
        try:
            bridge.export_model(model)
            exported.append(name)
        except ValueError as error:
            text = str(error)
            assert "layer '" in text or "differs from minirnn" in text, text
            refused[name] = text
    if not exported and not refused:
        pytest.skip("no committed corpus file here")
    print(f"\ncorpus: {len(exported)} exported, {len(refused)} refused")
    for name, why in refused.items():
        print(f"  refused {name}: {why[:160]}")
    assert len(exported) >= 20


# ---- streaming export -----------------------------------------------------------------
#
# Small models written as Keras 3 configurations (no TensorFlow needed), random weights;
# exported with streaming=True, whose own check already feeds slices; the tests feed the
# written file again, slices of 1 and of uneven lengths, the carried values threaded
# through, against the stateful minirnn model fed the same slices.

STREAM_T = 11
STREAM_CUTS = {"ones": [1] * STREAM_T, "uneven": [3, 1, 5, 2]}


def _layer(class_name, name, **config):
    return {"class_name": class_name, "config": {"name": name, "dtype": "float32", **config}}


def _sequential(layers, input_shape, input_dtype="float32"):
    return {"class_name": "Sequential", "config": {"name": "stream", "layers": [
        {"class_name": "InputLayer",
         "config": {"name": "x", "batch_shape": [None, *input_shape], "dtype": input_dtype}},
        *layers]}}


def _streaming_model(layers, weights, input_shape, input_dtype="float32", dtype=None,
                     stateful=False, seed=0):
    """A minirnn Model from a Sequential configuration; ``weights``: name -> shapes,
    filled with random numbers."""
    from minirnn import files
    rng = np.random.default_rng(seed)
    arrays = {name: [(rng.standard_normal(shape) * 0.5).astype("float32") for shape in shapes]
              for name, shapes in weights.items()}
    saved = files.SavedModel(_sequential(layers, input_shape, input_dtype), arrays,
                             {"path": None, "format": "memory", "keras_version": "3.0.0",
                              "semantics": "keras3"})
    return minirnn.Model(saved, dtype=dtype, stateful=stateful)


def _recurrent_weights(cell, D, M, reset_after=True):
    G = GATES[cell] * M
    return [(D, G), (M, G), (2, G) if cell == "GRU" and reset_after else (G,)]


def _padded_floats(batch, D, seed=0):
    """Float inputs with all-zero steps (masked by Masking) at the start of a row, in its
    middle and at its end, some of which begin or fill a slice."""
    x = np.random.default_rng(seed).standard_normal((batch, STREAM_T, D)).astype("float32")
    x[0, 4:6] = 0     # inside the uneven slice 4:9, and steps 4 and 5 of the ones
    x[-1, :2] = 0     # before anything, filling slices
    x[batch // 2, 9:] = 0
    return x


def _stream_both(model, path, x, cuts):
    """The model's outputs (stateful minirnn, ONNX Runtime on the file) over x fed in
    slices of these lengths, each joined along time; and the final carried values."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    pairs = bridge.streaming_states(onnx.load(path))
    inputs = session.get_inputs()
    carry = {i.name: np.zeros([x.shape[0] if isinstance(n, str) or n is None else n
                               for n in i.shape],
                              np.float64 if "double" in i.type else np.float32)
             for i in inputs[1:]}
    model.stateful = True
    ours, theirs, start = [], [], 0
    for length in cuts:
        part = np.ascontiguousarray(x[:, start:start + length])
        ours.append(model(part))
        got = session.run(None, {inputs[0].name: part, **carry})
        theirs.append(got[0])
        for pair, value in zip(pairs, got[1:]):
            carry[pair["input"]] = value
        start += length
    axis = 1 if ours[0].ndim == 3 else 0
    join = (lambda parts: np.concatenate(parts, axis=1)) if axis == 1 else \
        (lambda parts: np.stack(parts, axis=1))
    return join(ours), join(theirs), carry


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_streaming_export_one_recurrent_layer(tmp_path, cell, dtype):
    """Masking -> cell (return_sequences) -> Dense: the states are inputs
    <layer>_h_in (_c_in) and outputs <layer>_h_out (_c_out); masked runs inside
    slices and at their starts."""
    model = _streaming_model(
        [_layer("Masking", "masking", mask_value=0.0),
         _layer(cell, "rnn", units=4, return_sequences=True),
         _layer("Dense", "dense", units=2, activation="tanh")],
        {"rnn": _recurrent_weights(cell, 3, 4), "dense": [(4, 2), (2,)]}, [None, 3],
        dtype=dtype)
    path = str(tmp_path / "stream.onnx")
    proto = bridge.to_onnx(model, path, streaming=True)
    states = ["h", "c"] if cell == "LSTM" else ["h"]
    assert [i.name for i in proto.graph.input] == ["x"] + [f"rnn_{s}_in" for s in states]
    assert [o.name for o in proto.graph.output][1:] == [f"rnn_{s}_out" for s in states]
    assert not model.stateful                       # given back as it was
    x = _padded_floats(3, 3)   # float32, as the graph input (the model casts it)
    for name, cuts in STREAM_CUTS.items():
        ours, theirs, carry = _stream_both(model, path, x, cuts)
        assert_close(ours, theirs)
        for k, s in enumerate(states):
            assert_close(model.get_layer("rnn").states[k], carry[f"rnn_{s}_in"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_streaming_export_stacked_with_embedding(tmp_path, dtype):
    """Embedding(mask_zero) -> LSTM -> GRU (reset_after=False) -> SimpleRNN without
    return_sequences -> Dense: each call's output is the value after its slice."""
    model = _streaming_model(
        [_layer("Embedding", "embedding", input_dim=12, output_dim=5, mask_zero=True),
         _layer("LSTM", "lstm", units=4, return_sequences=True),
         _layer("GRU", "gru", units=3, return_sequences=True, reset_after=False),
         _layer("SimpleRNN", "rnn", units=5),
         _layer("Dense", "dense", units=2)],
        {"embedding": [(12, 5)], "lstm": _recurrent_weights("LSTM", 5, 4),
         "gru": _recurrent_weights("GRU", 4, 3, reset_after=False),
         "rnn": _recurrent_weights("SimpleRNN", 3, 5), "dense": [(5, 2), (2,)]},
        [None], "int32", dtype=dtype)
    path = str(tmp_path / "stacked.onnx")
    proto = bridge.to_onnx(model, path, streaming=True)
    assert [p["input"] for p in bridge.streaming_states(proto)] == [
        "lstm_h_in", "lstm_c_in", "gru_h_in", "rnn_h_in"]
    x = np.random.default_rng(4).integers(1, 12, (3, STREAM_T)).astype("int32")
    x[0, 3:7], x[1, :4], x[2, 8:] = 0, 0, 0
    for name, cuts in STREAM_CUTS.items():
        ours, theirs, _ = _stream_both(model, path, x, cuts)
        assert_close(ours, theirs)
        assert ours.shape == (3, len(cuts), 2)


def test_streaming_export_causal_conv_carries_its_past_inputs(tmp_path):
    """A causal dilated Conv1D carries its last (3 - 1) * 2 input steps."""
    model = _streaming_model(
        [_layer("Conv1D", "conv", filters=4, kernel_size=[3], padding="causal",
                dilation_rate=[2], activation="relu"),
         _layer("LSTM", "lstm", units=3, return_sequences=True),
         _layer("Dense", "dense", units=2)],
        {"conv": [(3, 2, 4), (4,)], "lstm": _recurrent_weights("LSTM", 4, 3),
         "dense": [(3, 2), (2,)]}, [None, 2])
    path = str(tmp_path / "conv.onnx")
    proto = bridge.to_onnx(model, path, streaming=True)
    past = next(i for i in proto.graph.input if i.name == "conv_past_in")
    assert [d.dim_value for d in past.type.tensor_type.shape.dim][1:] == [4, 2]
    x = np.random.default_rng(5).standard_normal((2, STREAM_T, 2)).astype("float32")
    for name, cuts in STREAM_CUTS.items():
        ours, theirs, _ = _stream_both(model, path, x, cuts)
        assert_close(ours, theirs)


def test_a_stateful_model_exports_streaming_and_keeps_its_states(tmp_path):
    """streaming=None follows model.stateful; the check runs the model on its own
    slices and gives it back with the states it had; streaming=False is refused for
    a stateful model, streaming=True for a layer."""
    model = _streaming_model(
        [_layer("LSTM", "lstm", units=3, return_sequences=True)],
        {"lstm": _recurrent_weights("LSTM", 2, 3)}, [None, 2], stateful=True)
    x = np.random.default_rng(6).standard_normal((2, 6, 2)).astype("float32")
    model(x[:, :3])
    states = [s.copy() for s in model.get_layer("lstm").states]
    proto = bridge.export_model(model)
    assert bridge.streaming_states(proto)
    assert model.stateful
    for before, after in zip(states, model.get_layer("lstm").states):
        assert np.array_equal(before, after)
    fresh = _streaming_model([_layer("LSTM", "lstm", units=3, return_sequences=True)],
                             {"lstm": _recurrent_weights("LSTM", 2, 3)}, [None, 2])
    np.testing.assert_array_equal(model(x[:, 3:]), fresh(x)[:, 3:])
    with pytest.raises(ValueError, match="stateful.*streaming=True"):
        bridge.export_model(model, streaming=False)
    with pytest.raises(ValueError, match="whole Model"):
        bridge.export_model(make(minirnn.LSTM), streaming=True)


@pytest.mark.parametrize("layers, weights, why", [
    ([_layer("Bidirectional", "bi", layer=_layer("GRU", "g", units=2, return_sequences=True))],
     {"bi": _recurrent_weights("GRU", 2, 2) * 2},
     r"layer 'bi' \(Bidirectional\).*backward layer"),
    ([_layer("LSTM", "back", units=2, return_sequences=True, go_backwards=True)],
     {"back": _recurrent_weights("LSTM", 2, 2)}, r"layer 'back' \(LSTM\).*go_backwards"),
    ([_layer("Conv1D", "conv", filters=2, kernel_size=[3], padding="same")],
     {"conv": [(3, 2, 2), (2,)]}, r"layer 'conv' \(Conv1D\).*padding='same'"),
    ([_layer("LSTM", "lstm", units=2, return_sequences=True),
      _layer("MaxPooling1D", "pool", pool_size=[2])],
     {"lstm": _recurrent_weights("LSTM", 2, 2)}, r"layer 'pool' \(MaxPooling1D\).*pools"),
], ids=["bidirectional", "go_backwards", "same_conv", "pooling"])
def test_streaming_export_refuses_what_cannot_stream(tmp_path, layers, weights, why):
    model = _streaming_model(layers, weights, [None, 2])
    path = str(tmp_path / "never.onnx")
    with pytest.raises(ValueError, match="exported for streaming: " + why):
        bridge.to_onnx(model, path, streaming=True)
    assert not os.path.exists(path)
    assert not model.stateful
    bridge.export_model(model)     # the whole-sequence graph still exports


def test_a_streaming_graph_that_computes_something_else_is_refused():
    model = _streaming_model([_layer("GRU", "gru", units=3, return_sequences=True)],
                             {"gru": _recurrent_weights("GRU", 2, 3)}, [None, 2])
    proto = bridge.export_model(model, streaming=True)
    for node in proto.graph.node:     # carry the state out before the update
        if node.output[0] == "gru_h_out":
            node.input[0] = "gru_h_in"
    with pytest.raises(bridge.ExportError, match="gru_h_out|differs"):
        bridge.check_export(proto, model)   # streaming: from the metadata
