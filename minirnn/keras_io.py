"""from_keras: a minirnn layer with the configuration and weights of a Keras layer.

Only configuration and weights are read (``get_weights()`` returns NumPy arrays on
every backend), so this works whichever Keras backend is active. Anything minirnn
cannot reproduce exactly is refused with a ValueError naming the setting, never
approximated: a custom activation function or cell, a subclass of a Keras layer,
StackedRNNCells, convolutional recurrent layers, a mixed-precision dtype policy.

May use: numpy, keras, :mod:`minirnn.activations`, :mod:`minirnn.bidirectional`,
:mod:`minirnn.layers` and :mod:`minirnn.model`.
"""

import warnings

import numpy as np

from . import activations
from .bidirectional import Bidirectional
from .layers import GRU, LSTM, SimpleRNN

__all__ = ["from_keras"]

_CELLS = {"LSTMCell": LSTM, "GRUCell": GRU, "SimpleRNNCell": SimpleRNN}
_LAYERS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


def _keras():
    try:
        import keras
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "from_keras needs Keras 3: pip install 'minirnn[keras]'") from error
    return keras


def _is_keras_class(obj, name):
    cls = type(obj)
    return cls.__name__ == name and cls.__module__.startswith("keras.")


def _activation_name(keras, function, argument, where):
    name = getattr(function, "__name__", None)
    try:
        builtin = keras.activations.get(name) if isinstance(name, str) else None
    except ValueError:  # a name Keras does not know
        builtin = None
    if builtin is None or builtin is not function:
        raise ValueError(
            f"`{argument}` of {where} is {function!r}, not a built-in Keras 3 activation: "
            "minirnn reproduces the built-in activations only.")
    return activations.canonical(name, argument)


def _dtype_name(layer, where):
    policy = getattr(layer, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None) or getattr(layer, "compute_dtype", None)
    variable = getattr(policy, "variable_dtype", None) or getattr(layer, "dtype", None)
    if compute != variable or compute not in ("float32", "float64"):
        raise ValueError(
            f"The dtype policy of {where} computes in {compute} with {variable} weights; "
            "minirnn supports float32 or float64 for both.")
    return compute


def _recurrent_from_keras(keras, layer, bitwise):
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    cell = layer.cell
    cell_name = type(cell).__name__
    if not any(_is_keras_class(cell, name) for name in _CELLS):
        raise ValueError(
            f"The cell of {where} is {cell_name}: minirnn supports LSTMCell, GRUCell and "
            "SimpleRNNCell (not StackedRNNCells, lists of cells or custom cells).")
    if not layer.built or getattr(cell, "kernel", None) is None:
        raise ValueError(
            f"{where} has no weights yet: build it (or call it once) before from_keras.")
    cls = _CELLS[cell_name]
    dtype = _dtype_name(layer, where)
    if _dtype_name(cell, f"the cell of {where}") != dtype:
        raise ValueError(f"The cell of {where} has another dtype than the layer.")
    config = dict(
        units=cell.units,
        activation=_activation_name(keras, cell.activation, "activation", where),
        use_bias=cell.use_bias,
        return_sequences=layer.return_sequences,
        return_state=layer.return_state,
        go_backwards=layer.go_backwards,
        stateful=layer.stateful,
        zero_output_for_mask=bool(layer.zero_output_for_mask),
        dtype=dtype,
        dropout=float(cell.dropout),
        recurrent_dropout=float(cell.recurrent_dropout),
        unroll=bool(layer.unroll),
        # Keras runs anything but implementation=1 as 2 (it does not check the value)
        implementation=1 if getattr(cell, "implementation", 2) == 1 else 2,
        bitwise=bitwise,
    )
    if cls is not SimpleRNN:
        config["recurrent_activation"] = _activation_name(
            keras, cell.recurrent_activation, "recurrent_activation", where)
    if cls is LSTM:
        config["unit_forget_bias"] = bool(cell.unit_forget_bias)
    if cls is GRU:
        config["reset_after"] = bool(cell.reset_after)
    if layer.unroll and layer.go_backwards and layer.zero_output_for_mask and \
            layer.return_sequences:
        warnings.warn(
            f"{where} has unroll=True, go_backwards=True and zero_output_for_mask=True: with "
            "a mask, Keras' unrolled loop zeroes the outputs of the masked steps in input "
            "order while the outputs are in processing order. minirnn follows Keras' "
            "regular (while-loop) path, where unroll changes nothing, so their outputs at "
            "masked steps can differ.", UserWarning, stacklevel=3)
    result = cls(**config)
    result.set_weights([np.asarray(w) for w in layer.get_weights()])
    if layer.stateful and getattr(layer, "states", None) is not None:
        result.states = [np.array(keras.ops.convert_to_numpy(s), dtype=dtype)
                         for s in layer.states]
    return result


def from_keras(layer, bitwise=False):
    """A minirnn layer that computes what the given Keras 3 layer computes; for a
    whole Keras Sequential or Functional model, a :class:`minirnn.Model`.

    Args:
        layer: a built keras.layers.LSTM, GRU, SimpleRNN, Bidirectional (of those),
            or RNN wrapping an LSTMCell, GRUCell or SimpleRNNCell. A stateful
            layer's current states are copied too. Or a keras.Model (Sequential or
            Functional): see minirnn.load_model for what it may contain.
        bitwise: reproduce the layer's float32 results on TensorFlow's CPU bit for
            bit (see minirnn.bitwise_support() and docs/exactness.md, "Bitwise mode").

    Returns:
        minirnn.LSTM, GRU, SimpleRNN or Bidirectional with the same configuration
        and weights. Training-only settings (dropout, initializers, regularizers,
        constraints) are carried where minirnn records them and have no effect.

    Raises:
        TypeError: ``layer`` is not a Keras layer minirnn knows.
        ValueError: a setting minirnn cannot reproduce exactly (with bitwise, also
            a float64 layer or an activation the mode does not model).
        minirnn.BitwiseUnsupportedError: bitwise=True on a platform the mode does
            not model.
    """
    if not isinstance(bitwise, (bool, np.bool_)):
        raise TypeError(f"`bitwise` must be True or False; received {bitwise!r}.")
    keras = _keras()
    if isinstance(layer, keras.Model):
        from .model import from_keras_model
        return from_keras_model(layer, bool(bitwise))
    if _is_keras_class(layer, "Bidirectional"):
        where = f"layer {layer.name!r} (Bidirectional)"
        dtype = _dtype_name(layer, where)
        forward = from_keras(layer.forward_layer, bitwise)
        backward = from_keras(layer.backward_layer, bitwise)
        result = Bidirectional(forward, merge_mode=layer.merge_mode, backward_layer=backward,
                               dtype=dtype)
        result.forward_layer.states = forward.states
        return result
    if any(_is_keras_class(layer, name) for name in _LAYERS) or _is_keras_class(layer, "RNN"):
        return _recurrent_from_keras(keras, layer, bool(bitwise))
    if isinstance(layer, keras.layers.Layer):
        raise ValueError(
            f"from_keras cannot reproduce a {type(layer).__module__}.{type(layer).__name__} "
            "layer: supported are keras.layers.LSTM, GRU, SimpleRNN, Bidirectional and RNN "
            "with an LSTMCell, GRUCell or SimpleRNNCell (exact classes, not subclasses).")
    raise TypeError(
        f"`layer` must be a Keras 3 layer; received {type(layer).__name__}.")
