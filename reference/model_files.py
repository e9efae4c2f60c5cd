"""Small saved Keras models and Keras' own outputs on them: the fixtures of
tests/test_model.py and tests/test_files.py.

    python -m reference.model_files DIR            # write the fixtures into DIR
    python -m reference.model_files --table DIR    # worst errors per layer and file kind
    python -m reference.model_files --speed DIR    # the real-sized model: load and predict

Two parts, each in its own process (Keras 3 and tf-keras cannot share one):

- ``keras3``: models built with Keras 3, saved as ``<name>.keras`` and (the legacy
  saver) ``<name>.h5``;
- ``keras2``: models built with tf-keras (Keras 2 on the same TensorFlow), saved as
  ``k2_<name>.h5``: time_major in the configs, implementation=1, Keras 2's
  hard_sigmoid, GRU(reset_after=False), CuDNNLSTM/CuDNNGRU weights.

Every model gets random weights that differ per gate, non-zero biases and positive
variances (a fresh Keras model has zero biases, which would hide bias mistakes). For
each model, ``<name>.npz`` holds the inputs (``x0``, ``x1``, ...) with padding at the
end, at the start and in the middle of some rows where the model masks, and Keras'
own outputs (``y0``, ``y1``, ...) from calling the model. ``manifest.json`` lists
the models with their dtype and semantics.
"""

import json
import os
import subprocess
import sys

import numpy as np

# name -> (part, dtype, bitwise): the tests are parametrised over these names.
KERAS3 = {
    "dense_lstm": "float32", "text_bilstm": "float32", "char_conv": "float32",
    "kaggle": "float32", "tagging": "float32", "seq2seq": "float32", "repeat": "float32",
    "timeseries_bn": "float32", "masking_pool": "float32", "merges": "float32",
    "reshapes": "float32", "cells": "float32", "concat_mask": "float32",
    "options": "float32", "time_lstm": "float32", "text_bilstm64": "float64",
    "merges64": "float64", "bitwise": "float32", "sequential": "float32",
}
KERAS2 = {
    "k2_hard": "float32", "k2_bidir": "float32", "k2_seq2seq": "float32",
    "k2_conv": "float32", "k2_cells": "float32", "k2_merges": "float32",
    "k2_cudnn": "float32", "k2_float64": "float64", "k2_misc": "float32",
    "k2_sequential": "float32",
}
BATCH, STEPS = 6, 7

# Fixture models of the layers that surround recurrent ones in real files, kept in
# modules of their own; each has KERAS3 and KERAS2 (name -> dtype) and
# keras3_models(rng) / keras2_models(rng) returning {name: (model, inputs)}.
from reference import models_attention, models_layers  # noqa: E402

_MORE = (models_layers, models_attention)
for _module in _MORE:
    KERAS3.update(_module.KERAS3)
    KERAS2.update(_module.KERAS2)


def _pad(x, value, rows=True):
    """Padding at the end (row 1), the start (row 2) and the middle (row 3)."""
    T = x.shape[1]
    x[1, T - 3:] = value
    x[2, :2] = value
    x[3, 2:4] = value
    x[4, :] = x[4]  # row 4 and 5 unpadded; row 0 unpadded
    return x


def _tokens(rng, high, steps=STEPS, pad=True):
    x = rng.integers(1, high, size=(BATCH, steps)).astype("int32")
    return _pad(x, 0) if pad else x


def _floats(rng, shape, pad=True, dtype="float32"):
    x = rng.standard_normal((BATCH, *shape)).astype(dtype)
    return _pad(x, 0.0) if pad else x


def randomise(model, rng):
    """Random weights: per gate, non-zero biases, positive variances."""
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        for variable, w in zip(layer.weights, weights):
            values = rng.uniform(-0.6, 0.6, size=w.shape)
            if "variance" in variable.path if hasattr(variable, "path") else \
                    "variance" in variable.name:
                values = np.abs(values) + 0.5
            new.append(values.astype(w.dtype))
        layer.set_weights(new)


def layer_classes(model):
    """The Keras classes a model uses, wrapped ones too: "RNN(StackedRNNCells)",
    "TimeDistributed(Dense)", "Bidirectional(LSTM)"."""
    names = set()
    for layer in model.layers:
        kind = type(layer).__name__
        names.add(kind)
        if kind == "RNN":
            names.add(f"RNN({type(layer.cell).__name__})")
        elif kind in ("TimeDistributed", "Bidirectional"):
            inner = layer.forward_layer if kind == "Bidirectional" else layer.layer
            names.add(f"{kind}({type(inner).__name__})")
    return sorted(names)


# ---- Keras 3 ----------------------------------------------------------------------

def keras3_models(rng):
    import keras
    from keras import layers as L

    def model_dense_lstm():
        x = keras.Input((STEPS, 3))
        y = L.LSTM(4, return_sequences=True)(x)
        return keras.Model(x, L.Dense(2, activation="tanh")(y)), [_floats(rng, (STEPS, 3), False)]

    def model_text_bilstm(dtype="float32"):
        x = keras.Input((None,), dtype="int32", name="tokens")
        e = L.Embedding(30, 5, mask_zero=True, dtype=dtype)(x)
        y = L.Bidirectional(L.LSTM(4, return_sequences=True, dtype=dtype), dtype=dtype,
                            name="bilstm")(e)
        y = L.Bidirectional(L.GRU(3, dtype=dtype), merge_mode="sum", dtype=dtype)(y)
        y = L.Dense(3, activation="softmax", dtype=dtype)(y)
        return keras.Model(x, y), [_tokens(rng, 30)]

    def model_char_conv():
        x = keras.Input((12,), dtype="int32")
        e = L.Embedding(20, 4)(x)
        c = L.Conv1D(5, 3, padding="causal", dilation_rate=2, activation="relu")(e)
        c = L.Conv1D(4, 2, strides=2, padding="valid")(c)
        p = L.MaxPooling1D(2, padding="same")(c)
        y = L.LSTM(4)(p)
        return keras.Model(x, L.Dense(1, activation="sigmoid")(y)), \
            [_tokens(rng, 20, 12, pad=False)]

    def model_kaggle():
        x = keras.Input((STEPS,), dtype="int32")
        e = L.Embedding(25, 6)(x)
        e = L.SpatialDropout1D(0.2)(e)
        r = L.Bidirectional(L.GRU(4, return_sequences=True))(e)
        c = L.Conv1D(3, 2, padding="same")(r)
        y = L.Concatenate()([L.GlobalAveragePooling1D()(c), L.GlobalMaxPooling1D()(c)])
        return keras.Model(x, L.Dense(2)(y)), [_tokens(rng, 25, pad=False)]

    def model_tagging():
        x = keras.Input((None,), dtype="int32")
        e = L.Embedding(30, 5, mask_zero=True)(x)
        r = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave")(e)
        r = L.Dropout(0.5)(r)
        return keras.Model(x, L.TimeDistributed(L.Dense(4, activation="softmax"))(r)), \
            [_tokens(rng, 30)]

    def model_seq2seq():
        a = keras.Input((5, 3), name="encoder_in")
        b = keras.Input((4, 2), name="decoder_in")
        _, h, c = L.LSTM(4, return_state=True, name="encoder")(a)
        d = L.LSTM(4, return_sequences=True, name="decoder")(b, initial_state=[h, c])
        _, g = L.GRU(3, return_state=True, go_backwards=True)(a)
        e = L.GRU(3)(b, initial_state=g)
        return keras.Model([a, b], [L.Dense(3)(d), e]), \
            [_floats(rng, (5, 3), False), _floats(rng, (4, 2), False)]

    def model_repeat():
        x = keras.Input((STEPS, 3))
        y = L.LSTM(4)(x)
        y = L.RepeatVector(3)(y)
        y = L.LSTM(2, return_sequences=True)(y)
        return keras.Model(x, L.TimeDistributed(L.Dense(2))(y)), [_floats(rng, (STEPS, 3))]

    def model_timeseries_bn():
        x = keras.Input((11, 3))
        y = L.Conv1D(4, 3, strides=2)(x)
        y = L.BatchNormalization()(y)
        y = L.AveragePooling1D(2, strides=1, padding="same")(y)
        y = L.AveragePooling1D(2)(y)
        y = L.GRU(3)(y)
        return keras.Model(x, L.Dense(1)(y)), [_floats(rng, (11, 3), False)]

    def model_masking_pool():
        x = keras.Input((STEPS, 3))
        m = L.Masking(0.0)(x)
        y = L.LSTM(3, return_sequences=True)(m)
        y = L.LayerNormalization()(y)
        y = L.GlobalAveragePooling1D()(y)
        return keras.Model(x, L.Dense(2)(y)), [_floats(rng, (STEPS, 3))]

    def model_merges(dtype="float32"):
        a = keras.Input((STEPS, 3), dtype=dtype)
        b = keras.Input((STEPS, 3), dtype=dtype)
        shared = L.LSTM(4, return_sequences=True, dtype=dtype)
        ma, mb = L.Masking(dtype=dtype)(a), L.Masking(dtype=dtype)(b)
        ya, yb = shared(ma), shared(mb)
        merged = [cls(dtype=dtype)([ya, yb]) for cls in (L.Add, L.Subtract, L.Multiply,
                                                         L.Average, L.Maximum, L.Minimum)]
        c = L.Concatenate(dtype=dtype)(merged)
        out = L.LSTM(2, dtype=dtype)(c)
        n = L.LayerNormalization(rms_scaling=True, dtype=dtype)(c)
        return keras.Model([a, b], [out, L.GlobalAveragePooling1D(dtype=dtype)(n)]), \
            [_floats(rng, (STEPS, 3), dtype=dtype), _floats(rng, (STEPS, 3), dtype=dtype)]

    def model_reshapes():
        x = keras.Input((STEPS, 4))
        y = L.Permute((2, 1))(x)
        y = L.Reshape((STEPS, 4))(y)
        y = L.Activation("tanh")(y)
        y = L.GaussianNoise(0.3)(y)
        y = L.GaussianDropout(0.3)(y)
        y = L.AlphaDropout(0.3)(y)
        y = L.ActivityRegularization(0.01)(y)
        y = L.SimpleRNN(3, return_sequences=True, go_backwards=True)(y)
        y = L.Flatten()(y)
        y = L.Reshape((-1, 3))(y)
        y = L.SimpleRNN(2, activation="relu")(y)
        return keras.Model(x, L.Dense(2)(y)), [_floats(rng, (STEPS, 4), False)]

    def model_cells():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        a = L.RNN(L.LSTMCell(3), return_sequences=True)(m)
        s = L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2), L.SimpleRNNCell(2)]),
                  return_sequences=True, return_state=True, go_backwards=True, name="stack")(a)
        out, *states = s
        t = L.RNN(L.StackedRNNCells([L.GRUCell(2), L.LSTMCell(2)]))(m)
        return keras.Model(x, [out, *states, t]), [_floats(rng, (STEPS, 3))]

    def model_concat_mask():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        y = L.LSTM(2, return_sequences=True)(m)
        c = L.Concatenate()([y, x])
        z = L.LSTM(2)(c)
        t = L.Concatenate(axis=1)([y, L.Dense(2)(m)])
        w = L.GRU(2)(t)
        return keras.Model(x, [z, w]), [_floats(rng, (STEPS, 3))]

    def model_options():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        a = L.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid",
                   implementation=1, zero_output_for_mask=True)(m)
        b = L.GRU(3, return_sequences=True, reset_after=False, use_bias=False,
                  activation="relu")(a)
        c = L.SimpleRNN(2, go_backwards=True, return_sequences=True)(b)
        d = L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="mul")(c)
        f = L.Bidirectional(L.GRU(2, return_state=True), merge_mode="concat")(d)
        return keras.Model(x, f), [_floats(rng, (STEPS, 3))]

    def model_time_lstm():
        x = keras.Input((3, 5, 2))
        y = L.TimeDistributed(L.LSTM(3))(x)
        y = L.TimeDistributed(L.Dense(2))(y)
        return keras.Model(x, L.LSTM(2)(y)), [_floats(rng, (3, 5, 2), False)]

    def model_bitwise():
        x = keras.Input((STEPS,), dtype="int32")
        e = L.Embedding(30, 5, mask_zero=True)(x)
        for noise in (L.Dropout(0.3), L.SpatialDropout1D(0.3), L.GaussianNoise(0.3),
                      L.GaussianDropout(0.3), L.AlphaDropout(0.3),
                      L.ActivityRegularization(0.1)):
            e = noise(e)
        y = L.Bidirectional(L.LSTM(4, return_sequences=True))(e)
        z = L.GRU(3, return_sequences=True)(y)
        c = L.Concatenate()([y, z])
        f = L.Reshape((-1,))(L.Flatten()(L.Permute((2, 1))(c)))
        m = keras.Input((STEPS, 3))
        r = L.SimpleRNN(2)(L.Masking()(m))
        return keras.Model([x, m], [f, L.RepeatVector(2)(r)]), \
            [_tokens(rng, 30), _floats(rng, (STEPS, 3))]

    def model_sequential():
        model = keras.Sequential([
            keras.Input((STEPS, 3)), L.Masking(), L.GRU(3, return_sequences=True),
            L.Dropout(0.2), L.LSTM(2), L.Dense(2, activation="relu")])
        return model, [_floats(rng, (STEPS, 3))]

    makers = {name: value for name, value in locals().items() if name.startswith("model_")}
    result = {}
    own = {n for n in KERAS3 if not any(n in module.KERAS3 for module in _MORE)}
    for name in sorted(own, key=list(KERAS3).index):
        if name.endswith("64"):
            model, inputs = makers["model_" + name[:-2]](dtype="float64")
        else:
            model, inputs = makers["model_" + name]()
        result[name] = (model, inputs)
    for module in _MORE:
        result.update(module.keras3_models(rng))
    return result


def write_keras3(out):
    import keras
    rng = np.random.default_rng(1)
    manifest = {}
    for name, (model, inputs) in keras3_models(rng).items():
        randomise(model, rng)
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = keras.tree.flatten(outputs)
        arrays = {f"x{k}": v for k, v in enumerate(inputs)}
        arrays.update({f"y{k}": keras.ops.convert_to_numpy(v) for k, v in enumerate(outputs)})
        np.savez(os.path.join(out, f"{name}.npz"), **arrays)
        model.save(os.path.join(out, f"{name}.keras"))
        model.save(os.path.join(out, f"{name}.h5"))
        with open(os.path.join(out, f"{name}.json"), "w") as handle:
            handle.write(model.to_json())
        model.save_weights(os.path.join(out, f"{name}.weights.h5"))
        manifest[name] = {"dtype": KERAS3[name], "semantics": "keras3",
                          "files": [f"{name}.keras", f"{name}.h5", f"{name}.json"],
                          "classes": layer_classes(model)}
    _lambda_file(out)
    return manifest


def _lambda_file(out):
    """A model with a Lambda whose code writes a marker file (the path in the
    environment variable MINIRNN_MARKER) whenever it runs. Checked here: Keras with
    safe_mode=False does run it; the tests check that minirnn never does."""
    import keras

    # a lambda, so that Keras stores its bytecode (named functions are stored by name)
    write_marker = lambda x: [  # noqa: E731
        open(__import__("os").environ["MINIRNN_MARKER"], "w").write("the file's code ran")
        if __import__("os").environ.get("MINIRNN_MARKER") else None, x][1]

    x = keras.Input((3, 2))
    y = keras.layers.Lambda(write_marker, output_shape=(3, 2), name="evil")(x)
    y = keras.layers.LSTM(2)(y)
    model = keras.Model(x, y)
    model.save(os.path.join(out, "lambda.keras"))
    model.save(os.path.join(out, "lambda.h5"))
    marker = os.path.join(out, "marker.txt")
    os.environ["MINIRNN_MARKER"] = marker
    keras.saving.load_model(os.path.join(out, "lambda.keras"), safe_mode=False)(
        np.zeros((1, 3, 2), "float32"))
    assert os.path.exists(marker), "the Lambda fixture does not write its marker"
    os.remove(marker)
    del os.environ["MINIRNN_MARKER"]


# ---- Keras 2 (tf-keras) -----------------------------------------------------------

def keras2_models(rng, out):
    import tf_keras as keras
    from tf_keras import layers as L
    from tf_keras.src.layers.rnn.cudnn_gru import CuDNNGRU
    from tf_keras.src.layers.rnn.cudnn_lstm import CuDNNLSTM

    def k2_hard():
        x = keras.Input((None,), dtype="int32")
        e = L.Embedding(30, 5, mask_zero=True)(x)
        y = L.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid",
                   implementation=1, name="lstm")(e)
        y = L.GRU(3, reset_after=False, recurrent_activation="hard_sigmoid",
                  return_sequences=True, name="gru")(y)
        y = L.SimpleRNN(3, activation="hard_sigmoid")(y)
        return keras.Model(x, L.Dense(2, activation="hard_sigmoid")(y)), [_tokens(rng, 30)]

    def k2_bidir():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        y = L.Bidirectional(L.LSTM(3, return_sequences=True))(m)
        y = L.TimeDistributed(L.Dense(2))(y)
        z = L.Bidirectional(L.GRU(2, reset_after=False), merge_mode="ave")(m)
        return keras.Model(x, [y, z]), [_floats(rng, (STEPS, 3))]

    def k2_seq2seq():
        a = keras.Input((5, 3))
        b = keras.Input((4, 2))
        _, h, c = L.LSTM(4, return_state=True)(a)
        d = L.LSTM(4, return_sequences=True)(b, initial_state=[h, c])
        return keras.Model([a, b], L.Dense(3)(d)), \
            [_floats(rng, (5, 3), False), _floats(rng, (4, 2), False)]

    def k2_conv():
        x = keras.Input((12, 3))
        y = L.Conv1D(4, 3, padding="same", activation="relu")(x)
        y = L.MaxPooling1D(2)(y)
        y = L.BatchNormalization()(y)
        y = L.SimpleRNN(3)(y)
        return keras.Model(x, L.Dense(2)(y)), [_floats(rng, (12, 3), False)]

    def k2_cells():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        y = L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2, reset_after=False)]),
                  return_sequences=True)(m)
        z = L.RNN(L.GRUCell(2))(y)
        return keras.Model(x, z), [_floats(rng, (STEPS, 3))]

    def k2_merges():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        a = L.LSTM(3, return_sequences=True)(m)
        b = L.GRU(3, return_sequences=True)(m)
        c = L.Concatenate()([L.Add()([a, b]), L.Multiply()([a, b]), L.Maximum()([a, b]), x])
        return keras.Model(x, L.LSTM(2)(c)), [_floats(rng, (STEPS, 3))]

    def k2_float64():
        keras.backend.set_floatx("float64")
        x = keras.Input((STEPS, 3), dtype="float64")
        m = L.Masking()(x)
        y = L.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid")(m)
        y = L.GRU(2, reset_after=False)(y)
        model = keras.Model(x, L.Dense(2)(y))
        keras.backend.set_floatx("float32")
        return model, [_floats(rng, (STEPS, 3), dtype="float64")]

    def k2_misc():
        a = keras.Input((STEPS, 4))
        b = keras.Input((STEPS, 4))
        y = L.Permute((2, 1))(a)
        y = L.Reshape((STEPS, 4))(y)
        y = L.Activation("tanh")(y)
        for noise in (L.Dropout(0.3), L.SpatialDropout1D(0.3), L.GaussianNoise(0.3),
                      L.GaussianDropout(0.3), L.AlphaDropout(0.3),
                      L.ActivityRegularization(0.1)):
            y = noise(y)
        y = L.LayerNormalization()(y)
        y = L.AveragePooling1D(2, strides=1, padding="same")(y)
        s = L.Subtract()([y, b])
        v = L.Average()([y, b])
        w = L.Minimum()([y, b])
        c = L.Concatenate()([s, v, w])
        g = L.Concatenate()([L.GlobalMaxPooling1D()(c), L.GlobalAveragePooling1D()(c)])
        r = L.RepeatVector(3)(g)
        r = L.SimpleRNN(2, return_sequences=True)(r)
        return keras.Model([a, b], L.Dense(2)(L.Flatten()(r))), \
            [_floats(rng, (STEPS, 4), False), _floats(rng, (STEPS, 4), False)]

    def k2_sequential():
        model = keras.Sequential([L.LSTM(3, input_shape=(STEPS, 2), return_sequences=True),
                                  L.GRU(2), L.Dense(1)])
        return model, [_floats(rng, (STEPS, 2), False)]

    result = {}
    for maker in (k2_misc, k2_sequential, k2_hard, k2_bidir, k2_seq2seq, k2_conv, k2_cells,
                  k2_merges, k2_float64):
        result[maker.__name__] = maker()
    # CuDNN layers cannot run on a CPU: the file holds their weights, and the
    # reference is the LSTM/GRU model Keras 2 loads those weights into.
    x = keras.Input((STEPS, 3))
    cudnn = keras.Model(x, [CuDNNLSTM(4, return_sequences=True)(x), CuDNNGRU(3)(x)])
    plain = keras.Model(x, [L.LSTM(4, return_sequences=True)(x), L.GRU(3, reset_after=True)(x)])
    result["k2_cudnn"] = (cudnn, [_floats(rng, (STEPS, 3), False)], plain)
    for module in _MORE:
        result.update(module.keras2_models(rng))
    return result


def write_keras2(out):
    import tensorflow as tf
    rng = np.random.default_rng(2)
    manifest = {}
    for name, entry in keras2_models(rng, out).items():
        model, inputs = entry[:2]
        randomise(model, rng)
        path = os.path.join(out, f"{name}.h5")
        model.save(path)
        with open(os.path.join(out, f"{name}.json"), "w") as handle:
            handle.write(model.to_json())
        model.save_weights(os.path.join(out, f"{name}.weights.h5"))
        reference = model
        if len(entry) > 2:
            reference = entry[2]
            reference.load_weights(path)
        outputs = reference(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = tf.nest.flatten(outputs)
        arrays = {f"x{k}": v for k, v in enumerate(inputs)}
        arrays.update({f"y{k}": np.asarray(v) for k, v in enumerate(outputs)})
        np.savez(os.path.join(out, f"{name}.npz"), **arrays)
        manifest[name] = {"dtype": KERAS2[name], "semantics": "keras2",
                          "files": [f"{name}.h5", f"{name}.json"],
                          "classes": layer_classes(model)}
    return manifest


def table(directory):
    """Markdown: per layer class and file kind, the worst |minirnn - Keras| over the
    fixtures that use it, and that error over the tolerance (1e-6 + 1e-6 |Keras| in
    float32, 1e-12 + 1e-12 |Keras| in float64)."""
    import minirnn
    with open(os.path.join(directory, "manifest.json")) as handle:
        manifest = json.load(handle)
    columns = {"Keras 3 .keras": ".keras", "Keras 3 .h5": ".h5", "Keras 2 .h5": "k2"}
    worst = {}
    for name, info in manifest.items():
        data = np.load(os.path.join(directory, f"{name}.npz"))
        xs = [data[k] for k in sorted(data.files) if k.startswith("x")]
        ys = [data[f"y{k}"] for k in range(len(data.files)) if f"y{k}" in data.files]
        for file in info["files"]:
            column = "Keras 2 .h5" if info["semantics"] == "keras2" else \
                ("Keras 3 .keras" if file.endswith(".keras") else "Keras 3 .h5")
            got = minirnn.load_model(os.path.join(directory, file))(xs)
            got = got if isinstance(got, list) else [got]
            tol = 1e-6 if info["dtype"] == "float32" else 1e-12
            error = max(float(np.max(np.abs(a.astype(float) - b))) for a, b in zip(got, ys))
            ratio = max(float(np.max(np.abs(a.astype(float) - b) / (tol + tol * np.abs(b))))
                        for a, b in zip(got, ys))
            for kind in info["classes"]:
                key = (kind, column, info["dtype"])
                old = worst.get(key, (0.0, 0.0, []))
                worst[key] = (max(old[0], error), max(old[1], ratio), old[2] + [name])
    kinds = sorted({k[0] for k in worst})
    lines = ["| layer | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for kind in kinds:
        cells = []
        for column in columns:
            parts = []
            for dtype in ("float32", "float64"):
                if (kind, column, dtype) in worst:
                    error, ratio, _ = worst[(kind, column, dtype)]
                    parts.append(f"{error:.1e} ({ratio:.2f}){' f64' if dtype == 'float64' else ''}")
            cells.append("; ".join(parts) or "—")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def real_sized(path, seed=7):
    """Embedding 20000 x 128 -> Bidirectional(LSTM 128) -> Dense(1, sigmoid), random
    weights, saved at ``path``; returns the Keras model and padded token inputs."""
    import keras
    rng = np.random.default_rng(seed)
    x = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(20000, 128, mask_zero=True)(x)
    y = keras.layers.Bidirectional(keras.layers.LSTM(128))(e)
    model = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(y))
    for layer in model.layers:
        layer.set_weights([rng.uniform(-0.1, 0.1, w.shape).astype("float32")
                           for w in layer.get_weights()])
    model.save(path)
    tokens = rng.integers(1, 20000, size=(32, 100)).astype("int32")
    tokens[1::3, -30:] = 0
    tokens[2::3, :20] = 0
    return model, tokens


def speed(directory, repeats=10):
    """Load time and predict time of the real-sized model, minirnn against Keras."""
    import time

    import keras
    import tensorflow as tf

    import minirnn
    path = os.path.join(directory, "real.keras")
    model, tokens = real_sized(path)

    def best(function, n=repeats):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times), float(np.median(times))

    rows = {}
    rows["load: keras.saving.load_model"] = best(lambda: keras.saving.load_model(path), 3)
    rows["load: minirnn.load_model"] = best(lambda: minirnn.load_model(path), 3)
    ours = minirnn.load_model(path)
    ours.predict(tokens)
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=False)
    compiled(tokens)
    model.predict(tokens, verbose=0)
    rows["predict 32x100: Keras model.predict"] = best(lambda: model.predict(tokens, verbose=0))
    rows["predict 32x100: Keras compiled call (tf.function)"] = best(lambda: compiled(tokens))
    rows["predict 32x100: minirnn Model.predict"] = best(lambda: ours.predict(tokens))
    worst = float(np.max(np.abs(ours.predict(tokens) - model.predict(tokens, verbose=0))))
    lines = [f"| what | best (ms) | median (ms) |", "|---|---:|---:|"]
    lines += [f"| {k} | {1000 * v[0]:.1f} | {1000 * v[1]:.1f} |" for k, v in rows.items()]
    lines.append(f"\nmax |minirnn - Keras| = {worst:.2e}")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--speed":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(speed(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "--table":
        print(table(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] in ("--keras3", "--keras2"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        out = argv[1]
        manifest = write_keras3(out) if argv[0] == "--keras3" else write_keras2(out)
        with open(os.path.join(out, f"manifest-{argv[0][2:]}.json"), "w") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
        return 0
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    for part in ("--keras3", "--keras2"):
        subprocess.run([sys.executable, "-m", "reference.model_files", part, out], check=True)
    manifest = {}
    for part in ("keras3", "keras2"):
        name = os.path.join(out, f"manifest-{part}.json")
        with open(name) as handle:
            manifest.update(json.load(handle))
        os.remove(name)
    with open(os.path.join(out, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
