"""Fixture models for the layers blocks of saved models (see reference/model_files.py):
the activation layers (minirnn.activation_blocks) and the convolution, pooling,
padding, cropping and up-sampling layers (minirnn.convolution) around recurrent
layers, as real models use them.

- ``layers_crnn`` / ``k2_layers_crnn``: a CRNN (images -> Conv2D and pooling ->
  Permute, Reshape to (width, features) -> Bidirectional LSTM -> per-step classes),
  with a second head of global poolings;
- ``layers_text`` / ``k2_layers_text``: tokens with mask_zero through an LSTM and the
  activation layers, which pass the mask on to a GRU; and a branch where padding,
  a separable convolution, up-sampling and cropping drop the mask before an LSTM;
- ``layers_attention_mask``: a Keras 3 Softmax over the steps with an explicit mask
  computed from the tokens (Keras 3 writes the mask operations into the file);
- ``layers_float64`` / ``k2_layers_float64``: the activation layers in float64,
  where TensorFlow rounds some constants through float32.
"""

KERAS3 = {
    "layers_crnn": "float32", "layers_text": "float32", "layers_attention_mask": "float32",
    "layers_float64": "float64",
}
KERAS2 = {
    "k2_layers_crnn": "float32", "k2_layers_text": "float32", "k2_layers_float64": "float64",
}
IMAGE = (12, 16, 1)  # height, width, channels


def keras3_models(rng):
    """{name: (Keras 3 model, inputs)} for every name in KERAS3."""
    import keras
    from keras import layers as L

    from reference.model_files import STEPS, _floats, _tokens

    def crnn():
        x = keras.Input(IMAGE, name="image")
        y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        y = L.MaxPooling2D((2, 2))(y)
        y = L.ZeroPadding2D(((1, 0), (0, 1)))(y)
        y = L.Conv2D(5, (3, 2), strides=(1, 1), dilation_rate=(1, 2), padding="same")(y)
        y = L.BatchNormalization()(y)
        y = L.ReLU(max_value=6.0)(y)
        y = L.AveragePooling2D((2, 1), padding="same")(y)
        h, w, c = y.shape[1:]
        s = L.Permute((2, 1, 3))(y)
        s = L.Reshape((w, h * c))(s)
        s = L.Bidirectional(L.LSTM(6, return_sequences=True))(s)
        s = L.Dense(5)(s)
        s = L.Softmax()(s)
        g = L.Concatenate()([L.GlobalAveragePooling2D()(y), L.GlobalMaxPooling2D()(y)])
        k = L.Flatten()(L.GlobalMaxPooling2D(keepdims=True)(y))
        return keras.Model(x, [s, L.Dense(2)(g), k]), [_floats(rng, IMAGE, False)]

    def text():
        x = keras.Input((None,), dtype="int32", name="tokens")
        e = L.Embedding(30, 6, mask_zero=True)(x)
        r = L.LSTM(5, return_sequences=True)(e)
        a = L.LeakyReLU(negative_slope=0.15)(r)
        a = L.PReLU(shared_axes=[1])(a)
        a = L.ELU(alpha=0.7)(a)
        a = L.ReLU(negative_slope=0.1, threshold=0.05, max_value=2.0)(a)
        a = L.UnitNormalization()(a)
        g = L.GRU(4)(a)  # reads the mask the activation layers passed on
        # each of these drops the mask, so the recurrent layers after them run every
        # step (a mask passed on would not even fit the new number of steps)
        p = L.GRU(4, return_sequences=True)(L.ZeroPadding1D((2, 1))(r))
        u = L.SimpleRNN(4, return_sequences=True)(L.UpSampling1D(2)(r))
        k = L.LSTM(4, return_sequences=True)(L.Cropping1D((1, 2))(r))
        c = L.Concatenate(axis=1)([p, u, k])
        c = L.SeparableConv1D(4, 3, depth_multiplier=2, dilation_rate=2, padding="same",
                              activation="tanh")(c)
        c = L.SeparableConv1D(3, 2, strides=2, padding="valid")(c)
        t = L.LSTM(3)(c)
        y = L.Dense(3)(L.Concatenate()([g, t]))
        return keras.Model(x, [L.Softmax()(y), L.UnitNormalization(axis=[1, 2])(c)]), \
            [_tokens(rng, 30)]

    def attention_mask():
        x = keras.Input((STEPS,), dtype="int32", name="tokens")
        m = keras.ops.expand_dims(keras.ops.not_equal(x, 0), -1)
        e = L.Embedding(25, 5, mask_zero=True)(x)
        h = L.Bidirectional(L.GRU(4, return_sequences=True))(e)
        s = L.Dense(1)(h)
        w = L.Softmax(axis=1)(s, mask=m)
        tokens = _tokens(rng, 25)
        tokens[5] = 0  # a row of padding only: Keras 3 gives it weights 0, not 1 / STEPS
        return keras.Model(x, [w, L.Flatten()(w)]), [tokens]

    def float64():
        d = "float64"
        x = keras.Input((STEPS, 4), dtype=d)
        m = L.Masking(dtype=d)(x)
        y = L.LSTM(4, return_sequences=True, dtype=d)(m)
        y = L.LeakyReLU(negative_slope=0.3, dtype=d)(y)
        a = L.ReLU(negative_slope=0.1, dtype=d)(y)  # TensorFlow's LeakyRelu: float32 slope
        b = L.ReLU(threshold=0.1, max_value=0.3, negative_slope=0.2, dtype=d)(y)
        c = L.ELU(alpha=0.3, dtype=d)(y)
        z = L.Concatenate(dtype=d)([a, b, c])
        z = L.PReLU(shared_axes=[1], dtype=d)(z)
        z = L.UnitNormalization(dtype=d)(z)
        g = L.GRU(3, dtype=d)(z)
        c2 = L.Conv2D(2, 2, padding="same", dtype=d)(L.Reshape((STEPS, 4, 1), dtype=d)(x))
        c2 = L.MaxPooling2D((1, 2), dtype=d)(c2)
        return keras.Model(x, [L.Softmax(dtype=d)(g), L.GlobalAveragePooling2D(dtype=d)(c2)]), \
            [_floats(rng, (STEPS, 4), dtype=d)]

    makers = {"layers_crnn": crnn, "layers_text": text,
              "layers_attention_mask": attention_mask, "layers_float64": float64}
    return {name: makers[name]() for name in KERAS3}


def keras2_models(rng):
    """{name: (tf-keras model, inputs)} for every name in KERAS2."""
    import tf_keras as keras
    from tf_keras import layers as L

    from reference.model_files import STEPS, _floats, _tokens

    def crnn():
        x = keras.Input(IMAGE)
        y = L.Conv2D(4, (3, 3), padding="same", activation="relu")(x)
        y = L.MaxPooling2D((2, 2), padding="same")(y)
        y = L.Conv2D(5, 2, strides=(2, 1), padding="valid")(y)
        y = L.LeakyReLU(alpha=0.2)(y)
        y = L.ZeroPadding2D(1)(y)
        y = L.AveragePooling2D((2, 2), strides=(1, 2))(y)
        h, w, c = y.shape[1:]
        s = L.Permute((2, 1, 3))(y)
        s = L.Reshape((w, h * c))(s)
        s = L.Bidirectional(L.LSTM(5, return_sequences=True))(s)
        s = L.Softmax()(L.Dense(4)(s))
        g = L.GlobalAveragePooling2D()(y)
        k = L.GlobalMaxPooling2D(keepdims=True)(y)
        return keras.Model(x, [s, g, L.Flatten()(k)]), [_floats(rng, IMAGE, False)]

    def text():
        x = keras.Input((None,), dtype="int32")
        e = L.Embedding(30, 6, mask_zero=True)(x)
        r = L.LSTM(5, return_sequences=True)(e)
        a = L.LeakyReLU(alpha=0.1)(r)
        a = L.PReLU(shared_axes=[1])(a)
        a = L.ELU(alpha=0.5)(a)
        a = L.ThresholdedReLU(theta=0.05)(a)
        a = L.ReLU(negative_slope=0.2, threshold=0.01)(a)
        a = L.UnitNormalization()(a)
        g = L.GRU(4, reset_after=False)(a)
        f = keras.Input((STEPS, 3))  # Keras 2 refuses a mask into the padding layers
        c = L.ZeroPadding1D(2)(f)
        c = L.SeparableConv1D(4, 3, padding="causal", dilation_rate=2, depth_multiplier=2,
                              activation="relu")(c)
        c = L.Cropping1D((1, 1))(c)
        c = L.UpSampling1D(3)(c)
        c = L.SeparableConv1D(3, 2, strides=2, padding="same")(c)
        t = L.LSTM(3)(c)
        y = L.Dense(3)(L.Concatenate()([g, t]))
        return keras.Model([x, f], [L.Softmax()(y), L.UnitNormalization(axis=[1, 2])(c)]), \
            [_tokens(rng, 30), _floats(rng, (STEPS, 3), False)]

    def float64():
        keras.backend.set_floatx("float64")
        x = keras.Input((STEPS, 4), dtype="float64")
        m = L.Masking()(x)
        y = L.LSTM(4, return_sequences=True)(m)
        a = L.LeakyReLU(alpha=0.3)(y)
        b = L.ReLU(threshold=0.1, max_value=0.3, negative_slope=0.2)(y)
        c = L.ELU(alpha=0.3)(y)
        z = L.Concatenate()([a, b, c, L.ThresholdedReLU(0.2)(y)])
        z = L.PReLU(shared_axes=[1])(z)
        z = L.UnitNormalization()(z)
        g = L.GRU(3)(z)
        model = keras.Model(x, L.Softmax()(g))
        keras.backend.set_floatx("float32")
        return model, [_floats(rng, (STEPS, 4), dtype="float64")]

    makers = {"k2_layers_crnn": crnn, "k2_layers_text": text, "k2_layers_float64": float64}
    return {name: makers[name]() for name in KERAS2}
