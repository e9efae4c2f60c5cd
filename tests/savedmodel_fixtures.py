"""tf.keras SavedModel folders and tf-keras' own numbers on them: the fixtures of
tests/test_savedmodel.py.

    python -m tests.savedmodel_fixtures DIR

Runs in a process of its own (tf-keras and Keras 3 cannot share one). For each
model, ``DIR/<name>/`` is the folder ``model.save()`` writes and ``DIR/<name>.npz``
holds the inputs (``x0``, ``x1``, ...; padded at the end, the start and the middle
of rows where the model masks), tf-keras' outputs (``y0``, ...) and every layer's
``get_weights()`` (``w:<layer>:<i>``), which the reader's arrays must equal in order.
Every model has random weights that differ per gate, non-zero biases and positive
variances; those in TRAINED were trained for a step first, so that the checkpoint
also holds optimizer slots and a step count (which the reader must ignore). Those in
TRACED are saved as model.save() does by default; the others without the traced
functions (``save_traces=False``, much sooner), whose checkpoints lack the layers'
"variables" lists, so that the reader's other way to order variables is tested
too. ``manifest.json`` lists the models with their dtype.
"""

import json
import os
import sys

import numpy as np

BATCH, STEPS = 6, 7
TRAINED = ("sm_text", "sm_sharded")
TRACED = ("sm_text", "sm_two_io", "sm_cells", "sm_conv_bn")


def _pad(x, value):
    """Padding at the end (row 1), the start (row 2) and the middle (row 3)."""
    x[1, -3:] = value
    x[2, :2] = value
    x[3, 2:4] = value
    return x


def _tokens(rng, high, steps=STEPS):
    return _pad(rng.integers(1, high, size=(BATCH, steps)).astype("int32"), 0)


def _floats(rng, shape, pad=True, dtype="float32"):
    x = rng.standard_normal((BATCH, *shape)).astype(dtype)
    return _pad(x, 0.0) if pad else x


def randomise(model, rng):
    """Random weights: uniform in (-0.6, 0.6), variances in (0.5, 1.1)."""
    for layer in model.layers:
        new = []
        for variable, w in zip(layer.weights, layer.get_weights()):
            values = rng.uniform(-0.6, 0.6, size=w.shape)
            if "variance" in variable.name:
                values = np.abs(values) + 0.5
            new.append(values.astype(w.dtype))
        if new:
            layer.set_weights(new)


def models(rng):
    """{name: (model, inputs, dtype, save options or None)}."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers as L

    def sm_text():
        x = keras.Input((None,), dtype="int32", name="tokens")
        e = L.Embedding(30, 5, mask_zero=True)(x)
        y = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bilstm")(e)
        y = L.Bidirectional(L.GRU(3), merge_mode="sum")(y)
        return keras.Model(x, L.Dense(3, activation="softmax")(y)), [_tokens(rng, 30)]

    def sm_sequential():
        model = keras.Sequential([
            L.Embedding(20, 4, mask_zero=True, input_length=STEPS),
            L.LSTM(3, return_sequences=True), L.Dropout(0.2),
            L.GRU(3, reset_after=False, return_sequences=True),
            L.SimpleRNN(2), L.Dense(2)])
        model.build((None, STEPS))
        return model, [_tokens(rng, 20)]

    def sm_gru():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        a = L.GRU(4, reset_after=True, return_sequences=True)(m)
        b = L.GRU(4, reset_after=False, return_sequences=True, go_backwards=True)(m)
        y = L.Concatenate()([a, b])
        y = L.SimpleRNN(3, activation="relu")(y)
        return keras.Model(x, L.Dense(2, activation="tanh")(y)), [_floats(rng, (STEPS, 3))]

    def sm_cells():
        x = keras.Input((STEPS, 3))
        m = L.Masking()(x)
        cells = [L.LSTMCell(3), L.GRUCell(2, reset_after=False), L.SimpleRNNCell(2)]
        y = L.RNN(L.StackedRNNCells(cells), return_sequences=True)(m)
        z = L.RNN(L.GRUCell(2))(y)
        return keras.Model(x, z), [_floats(rng, (STEPS, 3))]

    def sm_conv_bn():
        x = keras.Input((12, 3))
        y = L.Conv1D(4, 3, padding="same", activation="relu")(x)
        y = L.BatchNormalization()(y)
        y = L.MaxPooling1D(2)(y)
        y = L.LSTM(3, return_sequences=True)(y)
        y = L.TimeDistributed(L.Dense(2))(y)
        return keras.Model(x, L.Flatten()(y)), [_floats(rng, (12, 3), pad=False)]

    def sm_two_io():
        a = keras.Input((5, 3), name="encoder_in")
        b = keras.Input((4, 2), name="decoder_in")
        _, h, c = L.LSTM(4, return_state=True)(a)
        d = L.LSTM(4, return_sequences=True)(b, initial_state=[h, c])
        out1 = L.TimeDistributed(L.Dense(3), name="steps")(d)
        out2 = L.Dense(1, name="summary")(h)
        return keras.Model([a, b], [out1, out2]), \
            [_floats(rng, (5, 3), pad=False), _floats(rng, (4, 2), pad=False)]

    def sm_float64():
        keras.backend.set_floatx("float64")
        try:
            x = keras.Input((STEPS, 3), dtype="float64")
            m = L.Masking()(x)
            y = L.LSTM(3, return_sequences=True)(m)
            y = L.Bidirectional(L.GRU(2, reset_after=False))(y)
            model = keras.Model(x, L.Dense(2)(y))
        finally:
            keras.backend.set_floatx("float32")
        return model, [_floats(rng, (STEPS, 3), dtype="float64")]

    def sm_sharded():
        # Shards of at most 2000 bytes: the LSTM's kernels are cut into slices.
        model = keras.Sequential([L.LSTM(24, input_shape=(STEPS, 10)), L.Dense(3)])
        return model, [_floats(rng, (STEPS, 10), pad=False)]

    sharded = tf.saved_model.SaveOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(2000))
    made = {}
    for maker in (sm_text, sm_sequential, sm_gru, sm_cells, sm_conv_bn, sm_two_io,
                  sm_float64, sm_sharded):
        model, inputs = maker()
        made[maker.__name__] = (model, inputs, "float64" if maker is sm_float64 else "float32",
                                sharded if maker is sm_sharded else None)
    return made


def write(out):
    import tensorflow as tf
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(11)
    manifest = {}
    for name, (model, inputs, dtype, options) in models(rng).items():
        feed = inputs if len(inputs) > 1 else inputs[0]
        if name in TRAINED:  # one training step: optimizer slots in the file
            targets = tf.nest.map_structure(lambda t: np.zeros(t.shape[1:], t.dtype.name),
                                            model.outputs)
            model.compile("adam", "mse")
            batch = [np.zeros((BATCH, *t.shape)) for t in targets]
            model.fit(feed, batch if len(batch) > 1 else batch[0], epochs=1, verbose=0)
        randomise(model, rng)
        model.save(os.path.join(out, name), options=options, save_traces=name in TRACED)
        outputs = tf.nest.flatten(model(feed, training=False))
        arrays = {f"x{k}": v for k, v in enumerate(inputs)}
        arrays.update({f"y{k}": np.asarray(v) for k, v in enumerate(outputs)})
        for layer in model.layers:
            for k, w in enumerate(layer.get_weights()):
                arrays[f"w:{layer.name}:{k}"] = w
        np.savez(os.path.join(out, f"{name}.npz"), **arrays)
        manifest[name] = {"dtype": dtype, "layers": [layer.name for layer in model.layers],
                          "traced": name in TRACED, "trained": name in TRAINED}
    with open(os.path.join(out, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)


if __name__ == "__main__":
    write(sys.argv[1])
