"""Fixture models for the attention blocks of saved models (see reference/model_files.py).

Attention and AdditiveAttention over bidirectional LSTMs of padded text, an
encoder-decoder with cross- and causal self-attention, MultiHeadAttention over an
LSTM's sequence with implicit masks, causal masks, an attention_mask input, scores
returned; in Keras 3 and, with "k2_" names, in Keras 2 (tf-keras); and Keras 3's
options (use_gate, sliding_window, output_shape, attention_axes, dropout at
inference, a call by keywords only). The padding of the inputs (model_files._pad:
at the end, the start and the middle of rows) with causal masks leaves query steps
whose every key is masked, the case where the ways Keras masks a score differ.
"""

KERAS3 = {
    "attention_text": "float32", "attention_seq2seq": "float32", "mha_lstm": "float32",
    "mha_masks": "float32", "mha_lstm64": "float64",
}
KERAS2 = {
    "k2_attention_text": "float32", "k2_attention_seq2seq": "float32", "k2_mha": "float32",
}


def _attention_text(keras, L, rng, causal_config=False):
    """Embedding(mask_zero) -> Bidirectional(LSTM) -> three attentions over its
    sequence -> masked average -> Dense; also the first attention's raw output."""
    from reference.model_files import _tokens
    x = keras.Input((None,), dtype="int32", name="tokens")
    e = L.Embedding(40, 6, mask_zero=True)(x)
    h = L.Bidirectional(L.LSTM(4, return_sequences=True))(e)
    if causal_config:
        # tf-keras 2.10+ takes `causal` at construction but leaves it out of the
        # configuration (it became a call argument); Keras 2 up to 2.9 wrote it there.
        # This layer writes it as those versions did.
        first = L.Attention(use_scale=True, causal=True, name="luong")
        config = first.get_config
        first.get_config = lambda: {**config(), "causal": True}
    else:
        first = L.Attention(use_scale=True, name="luong")
    a = first([h, h])
    b = L.AdditiveAttention(name="bahdanau")([h, h])
    c = L.Attention(score_mode="concat", use_scale=True, name="concat")(
        [h, h], use_causal_mask=True)
    m = L.Concatenate()([a, b, c])
    y = L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(m))
    return keras.Model(x, [y, a, c]), [_tokens(rng, 40)]


def _attention_seq2seq(keras, L, rng):
    """Encoder LSTM over padded source tokens; decoder LSTM from its states over
    padded target tokens; cross-attention (scores returned), attention with a key
    of its own, causal self-attention; a softmax over the vocabulary per step."""
    from reference.model_files import _tokens
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    enc, h, c = L.LSTM(6, return_sequences=True, return_state=True, name="encoder")(
        L.Embedding(30, 5, mask_zero=True)(source))
    dec = L.LSTM(6, return_sequences=True, name="decoder")(
        L.Embedding(30, 5, mask_zero=True)(target), initial_state=[h, c])
    context, scores = L.Attention(name="cross")([dec, enc], return_attention_scores=True)
    keys = L.Dense(6, activation="tanh", name="keys")(enc)
    keyed = L.Attention(use_scale=True, name="keyed")([dec, enc, keys])
    own = L.Attention(name="self")([dec, dec], use_causal_mask=True)
    joined = L.Concatenate()([dec, context, keyed, own])
    y = L.TimeDistributed(L.Dense(30, activation="softmax"))(joined)
    return keras.Model([source, target], [y, scores]), \
        [_tokens(rng, 30, 7), _tokens(rng, 30, 5)]


def _mha_lstm(keras, L, rng, dtype="float32", keras2=False):
    """Masking -> LSTM -> causal multi-head self-attention -> residual, LayerNorm ->
    masked average -> Dense; and a second attention with another value and key,
    value_dim, output_shape, scores returned."""
    from reference.model_files import STEPS, _floats
    x = keras.Input((STEPS, 3), dtype=dtype)
    m = L.Masking(dtype=dtype)(x)
    h = L.LSTM(8, return_sequences=True, dtype=dtype)(m)
    a = L.MultiHeadAttention(2, 4, name="self_attention", dtype=dtype)(
        h, h, use_causal_mask=True)
    n = L.LayerNormalization(dtype=dtype)(L.Add(dtype=dtype)([h, a]))
    options = {"softmax_robust_masking": True} if keras2 else {}
    s, w = L.MultiHeadAttention(3, 2, value_dim=3, output_shape=5, name="scored",
                                dtype=dtype, **options)(n, m, key=h,
                                                        return_attention_scores=True)
    y = L.Dense(2, dtype=dtype)(L.GlobalAveragePooling1D(dtype=dtype)(n))
    return keras.Model(x, [y, a, s, w]), [_floats(rng, (STEPS, 3), dtype=dtype)]


def keras3_models(rng):
    """{name: (Keras 3 model, inputs)} for every name in KERAS3."""
    import keras
    from keras import layers as L

    from reference.model_files import BATCH, STEPS, _floats

    def mha_masks():
        """An attention_mask input (a row of it all False), a call by keywords only,
        no biases; dropout at inference, use_gate, sliding_window; 4-D inputs over
        two attention axes and over one."""
        query = keras.Input((5, 4), name="query")
        memory = keras.Input((STEPS, 4), name="memory")
        allowed = keras.Input((5, STEPS), dtype="bool", name="allowed")
        cross = L.MultiHeadAttention(2, 3, use_bias=False, name="cross")(
            query=query, value=memory, attention_mask=allowed)
        gated = L.MultiHeadAttention(2, 3, dropout=0.2, use_gate=True, sliding_window=3,
                                     name="gated")(query, query, use_causal_mask=True)
        grid = keras.Input((3, 4, 2), name="grid")
        both = L.MultiHeadAttention(2, 2, attention_axes=(1, 2), name="both")(grid, grid)
        rows = L.MultiHeadAttention(1, 3, attention_axes=2, output_shape=(2, 3),
                                    name="rows")(grid, grid)
        mask = rng.random((BATCH, 5, STEPS)) > 0.4
        mask[1, 2] = False
        return keras.Model([query, memory, allowed, grid], [cross, gated, both, rows]), \
            [_floats(rng, (5, 4), False), _floats(rng, (STEPS, 4), False), mask,
             rng.standard_normal((BATCH, 3, 4, 2)).astype("float32")]

    models = {
        "attention_text": _attention_text(keras, L, rng),
        "attention_seq2seq": _attention_seq2seq(keras, L, rng),
        "mha_lstm": _mha_lstm(keras, L, rng),
        "mha_masks": mha_masks(),
        "mha_lstm64": _mha_lstm(keras, L, rng, "float64"),
    }
    assert set(models) == set(KERAS3)
    return models


def keras2_models(rng):
    """{name: (tf-keras model, inputs)} for every name in KERAS2."""
    import tf_keras as keras
    from tf_keras import layers as L

    from reference.model_files import STEPS, _floats

    def k2_mha():
        model, inputs = _mha_lstm(keras, L, rng, keras2=True)
        # an attention_mask input of 0.0 / 1.0: tf-keras adds (1 - mask) * -1e9
        query = keras.Input((5, 3), name="query")
        allowed = keras.Input((5, STEPS), name="allowed")
        cross = L.MultiHeadAttention(2, 3, name="cross")(query, model.inputs[0],
                                                          attention_mask=allowed)
        mask = (rng.random((inputs[0].shape[0], 5, STEPS)) > 0.4).astype("float32")
        mask[1, 2] = 0.0
        return keras.Model([model.inputs[0], query, allowed], [*model.outputs, cross]), \
            [inputs[0], _floats(rng, (5, 3), False), mask]

    return {
        "k2_attention_text": _attention_text(keras, L, rng, causal_config=True),
        "k2_attention_seq2seq": _attention_seq2seq(keras, L, rng),
        "k2_mha": k2_mha(),
    }
