"""Build a Keras 3 recurrent layer from a plain configuration, set weights, run it.

A configuration is a dict with ``kind`` ("LSTM", "GRU", "SimpleRNN"), ``units`` and
any Keras constructor argument; ``cell=True`` builds ``keras.layers.RNN(<Kind>Cell)``
instead of the layer class. Bidirectional wraps such a configuration.
"""

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_RNN_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
             "zero_output_for_mask")


def keras():
    """Import Keras (and its backend) on first use."""
    import keras as _keras
    return _keras


def n_weights(config):
    return 3 if config.get("use_bias", True) else 2


def build_layer(config, input_dim, batch_size=None, weights=None):
    """A built Keras layer for ``config`` (see module docstring), weights set if given.

    batch_size is needed for stateful layers (Keras creates the state variables at
    build time).
    """
    k = keras()
    config = dict(config)
    kind = config.pop("kind")
    as_cell = config.pop("cell", False)
    if as_cell:
        rnn_args = {name: config.pop(name) for name in _RNN_ARGS if name in config}
        dtype = config.get("dtype")
        cell = getattr(k.layers, kind + "Cell")(**config)
        layer = k.layers.RNN(cell, dtype=dtype, **rnn_args)
    else:
        layer = getattr(k.layers, kind)(**config)
    layer.build((batch_size, None, input_dim))
    if weights is not None:
        layer.set_weights(weights)
    return layer


def build_bidirectional(config, input_dim, merge_mode="concat", backward_config=None,
                        batch_size=None, weights=None):
    """A built keras.layers.Bidirectional around ``config`` (and ``backward_config``)."""
    k = keras()
    forward = build_layer(config, input_dim, batch_size)
    backward = None
    if backward_config is not None:
        backward = build_layer(backward_config, input_dim, batch_size)
    layer = k.layers.Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward,
                                   dtype=config.get("dtype"))
    layer.build((batch_size, None, input_dim))
    if weights is not None:
        layer.set_weights(weights)
    return layer


def run(layer, x, mask=None, initial_state=None):
    """Call a Keras layer eagerly; always returns a list of NumPy arrays."""
    k = keras()
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = np.asarray(mask, bool)
    if initial_state is not None:
        kwargs["initial_state"] = [np.asarray(s) for s in initial_state]
    if type(layer).__name__ == "Bidirectional" and layer.return_state:
        # Keras 3.15's Bidirectional.compute_mask fails with return_state (it
        # multiplies a generator by 2) after call() has run, so __call__ raises;
        # call() itself is sound, so run it directly.
        result = layer.call(np.asarray(x), **kwargs)
    else:
        result = layer(np.asarray(x), **kwargs)
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(k.ops.convert_to_numpy(r)) for r in result]


def predict(layer, x, input_dim, timesteps=None):
    """Run a layer inside a functional Model with model.predict (as the seed did)."""
    k = keras()
    inputs = k.Input(shape=(timesteps, input_dim), dtype=layer.dtype)
    model = k.Model(inputs, layer(inputs))
    result = model.predict(np.asarray(x), verbose=0)
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(r) for r in result]


def random_weights(rng, kind, input_dim, units, use_bias=True, reset_after=True,
                   dtype="float64", scale=0.6):
    """Random weights in Keras' layout: every gate different, biases non-zero.

    Constant or zero weights would hide a swapped gate order or a misplaced bias.
    """
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
    width = gates * units
    kernel = rng.normal(0.0, scale, size=(input_dim, width))
    recurrent_kernel = rng.normal(0.0, scale / np.sqrt(units), size=(units, width))
    weights = [kernel, recurrent_kernel]
    if use_bias:
        shape = (2, width) if kind == "GRU" and reset_after else (width,)
        weights.append(rng.uniform(-0.5, 0.5, size=shape))
    return [w.astype(dtype) for w in weights]
