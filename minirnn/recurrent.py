"""Recurrent layers out of saved configurations, and how a model graph calls them.

A file's LSTM, GRU, SimpleRNN, RNN(cell), RNN(StackedRNNCells), Bidirectional,
CuDNNLSTM and CuDNNGRU become minirnn layers (:mod:`minirnn.layers`), with Keras'
defaults for the writer's version where a configuration leaves a setting out.
:class:`RecurrentNode` gives them the interface of the other blocks: weight
shapes, output shapes, Keras' mask rule (the output keeps the mask with
return_sequences, and drops it without), and a call that takes the mask and the
initial state the graph hands over. :class:`StackedRNN` runs RNN(StackedRNNCells)
as a chain of layers, one per cell. Both pickle as their constructor's arguments
(the layers pickle as theirs, :mod:`minirnn.attributes`).

May use: numpy, :mod:`minirnn.bidirectional`, :mod:`minirnn.keras2` and
:mod:`minirnn.layers`.
"""

import numpy as np

from . import keras2
from .bidirectional import Bidirectional
from .layers import GRU, LSTM, SimpleRNN

__all__ = ["RecurrentNode", "StackedRNN", "build_recurrent", "RECURRENT"]

RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "CuDNNLSTM", "CuDNNGRU")
_CELLS = {"LSTMCell": LSTM, "GRUCell": GRU, "SimpleRNNCell": SimpleRNN,
          "LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}
_GATES = {LSTM: 4, GRU: 3, SimpleRNN: 1}


def _version(keras_version):
    """(major, minor) of a Keras version string; tf.keras ("2.x.y-tf") counts as 2.4+."""
    if not isinstance(keras_version, str):
        return (3, 0)
    try:
        major, minor = (int(p) for p in keras_version.split("-")[0].split(".")[:2])
    except ValueError:
        return (3, 0)
    if keras_version.endswith("-tf"):
        return (major, max(minor, 4))
    return (major, minor)


def defaults(semantics, keras_version):
    """Settings a configuration may omit, as the Keras that wrote it defaulted them.

    Keras <= 2.2: recurrent_activation hard_sigmoid, GRU reset_after False,
    implementation 1; Keras 2.3: sigmoid, False, 2; tf.keras 2.x and Keras 3:
    sigmoid, True, 2. (A Keras 2 GRU configuration without reset_after and without a
    version predates the setting: False; see :func:`_cell_arguments`.)"""
    if semantics != "keras2":
        return {"recurrent_activation": "sigmoid", "reset_after": True, "implementation": 2}
    version = _version(keras_version)
    if version < (2, 3):
        return {"recurrent_activation": "hard_sigmoid", "reset_after": False,
                "implementation": 1}
    if version < (2, 4):
        return {"recurrent_activation": "sigmoid", "reset_after": False, "implementation": 2}
    return {"recurrent_activation": "sigmoid", "reset_after": True, "implementation": 2}


def _flag(config, key, where, default=False):
    value = config.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, bool):
        raise ValueError(f"{where}: `{key}` must be true or false; received {value!r}.")
    return value


def _cell_arguments(cls, config, layer_config, dtype, semantics, keras_version, where):
    """minirnn constructor arguments from a cell's (or a flat layer's) configuration."""
    default = defaults(semantics, keras_version)
    if _flag(layer_config, "time_major", where):
        raise ValueError(f"{where}: time_major=True is not reproduced (inputs must be "
                         "(batch, timesteps, features)).")
    if "units" not in config and "output_dim" in config:
        raise ValueError(f"{where}: a Keras 1 configuration (output_dim, inner_activation); "
                         "minirnn reads files of Keras 2.0 and later.")
    units = config.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{where}: `units` must be a positive integer; received {units!r}.")
    arguments = dict(
        units=units,
        activation=config.get("activation", "tanh"),
        use_bias=_flag(config, "use_bias", where, True),
        return_sequences=_flag(layer_config, "return_sequences", where),
        return_state=_flag(layer_config, "return_state", where),
        go_backwards=_flag(layer_config, "go_backwards", where),
        stateful=_flag(layer_config, "stateful", where),
        zero_output_for_mask=_flag(layer_config, "zero_output_for_mask", where),
        unroll=_flag(layer_config, "unroll", where),
        dtype=dtype,
    )
    for key in ("dropout", "recurrent_dropout"):
        value = config.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{where}: `{key}` must be a number in [0, 1]; received {value!r}.")
        arguments[key] = float(value)
    if cls is not SimpleRNN:
        arguments["recurrent_activation"] = config.get(
            "recurrent_activation", default["recurrent_activation"])
        implementation = config.get("implementation", default["implementation"])
        arguments["implementation"] = 1 if implementation == 1 else 2
    if cls is GRU:
        reset_after = default["reset_after"]
        if semantics == "keras2" and "reset_after" not in config and \
                not isinstance(keras_version, str):
            # Keras added reset_after in 2.1.3 and wrote it into every GRU configuration
            # since, so a Keras 2 GRU without it, of an unknown version, predates it.
            reset_after = False
        arguments["reset_after"] = _flag(config, "reset_after", where, reset_after)
    for key in ("activation", "recurrent_activation"):
        if key in arguments and not (arguments[key] is None or isinstance(arguments[key], str)):
            raise ValueError(f"{where}: `{key}` must be the name of a built-in activation; "
                             f"received {arguments[key]!r} (custom activations are refused).")
    return arguments


def _make(cls, arguments, semantics, where, bitwise):
    layer_cls = cls
    probe = {k: arguments.get(k) for k in ("activation", "recurrent_activation")}
    if semantics == "keras2" and "hard_sigmoid" in probe.values():
        layer_cls = keras2.recurrent_class(cls)
    try:
        return layer_cls(**arguments, bitwise=bitwise)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def _expected(cls, arguments, input_dim, cudnn=False):
    M, G = arguments["units"], _GATES[cls]
    shapes = [(input_dim, G * M), (M, G * M)]
    if cudnn:
        return shapes + [(2 * G * M,)]
    if arguments["use_bias"]:
        if cls is GRU and arguments["reset_after"]:
            shapes.append((2, G * M))
        else:
            shapes.append((G * M,))
    return shapes


def _convert_cudnn(cls, weights, units):
    """Keras 2's CuDNNLSTM / CuDNNGRU weights in LSTM / GRU(reset_after=True) layout,
    as Keras 2 converts them when loading: per gate, the input kernel is transposed
    from cuDNN's column-major layout and the recurrent kernel transposed; the LSTM's
    two biases (input, recurrent) are summed, the GRU's reshaped to (2, 3M)."""
    gates = _GATES[cls]
    kernel, recurrent, bias = weights
    kernel = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(kernel, gates)])
    recurrent = np.hstack([k.T for k in np.hsplit(recurrent, gates)])
    if cls is LSTM:
        bias = np.sum(np.split(bias, 2, axis=0), axis=0)
    else:
        bias = bias.reshape(2, -1)
    return [kernel, recurrent, bias]


class StackedRNN:
    """Keras' RNN(StackedRNNCells([cell_1, ..., cell_n])) as a chain of layers.

    At every step cell k reads cell k-1's output, so running cell 1 over the whole
    sequence, then cell 2 over its outputs, and so on, computes the same thing; the
    mask holds every cell's state at the same steps. go_backwards reverses the input
    (and mask) once, before the first cell. States are [*states of cell 1, ..., *states
    of cell n], as Keras flattens them."""

    def __init__(self, layers, return_sequences, return_state, go_backwards,
                 zero_output_for_mask):
        self.layers = layers
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask
        self.dtype = layers[-1].dtype
        self.bitwise = all(layer.bitwise for layer in layers)
        self.units = layers[-1].units

    def __reduce__(self):
        """Pickle as the constructor's arguments (each layer as its own), and the
        name a model gives it."""
        arguments = (self.layers, self.return_sequences, self.return_state,
                     self.go_backwards, self.zero_output_for_mask)
        return _rebuild_stack, (arguments, getattr(self, "name", None))

    @property
    def stateful(self):
        return self.layers[0].stateful

    @stateful.setter
    def stateful(self, value):
        for layer in self.layers:
            layer.stateful = value

    @property
    def states(self):
        """The stored states of a stateful stack, [*cell 1's, ..., *cell n's], or
        None before its first call."""
        if any(layer.states is None for layer in self.layers):
            return None
        return [s for layer in self.layers for s in layer.states]

    @property
    def _state_counts(self):
        return [len(layer._state_names) for layer in self.layers]

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def reset_state(self):
        for layer in self.layers:
            layer.reset_state()

    reset_states = reset_state

    def _split(self, initial_state):
        if initial_state is None:
            return [None] * len(self.layers)
        counts = self._state_counts
        if len(initial_state) != sum(counts):
            raise ValueError(f"`initial_state` for this stack of cells must hold "
                             f"{sum(counts)} arrays; received {len(initial_state)}.")
        parts, start = [], 0
        for n in counts:
            parts.append(list(initial_state[start:start + n]))
            start += n
        return parts

    def _run(self, x, mask, initial_state, trace=False):
        x = np.asarray(x)
        if self.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else np.asarray(mask)[:, ::-1]
        sequence, states, traces = x, [], []
        for layer, state in zip(self.layers, self._split(initial_state)):
            if trace:
                traces.append(layer.trace(sequence, mask, state))
            output, *final = layer(sequence, mask, state)
            sequence = output
            states += final
        return sequence, states, traces

    def __call__(self, x, mask=None, initial_state=None, training=None):
        sequence, states, _ = self._run(x, mask, initial_state)
        if self.zero_output_for_mask and mask is not None:
            keep = np.asarray(mask)[:, ::-1] if self.go_backwards else np.asarray(mask)
            last = sequence[:, -1] * keep[:, -1, None]
            sequence = np.where(keep[:, :, None], sequence, 0).astype(sequence.dtype)
        else:
            last = sequence[:, -1]
        output = sequence if self.return_sequences else np.ascontiguousarray(last)
        return [output, *states] if self.return_state else output

    def trace(self, x, mask=None, initial_state=None):
        """{"cells": [trace of cell 1, ..., trace of cell n]} in processing order."""
        return {"cells": self._run(x, mask, initial_state, trace=True)[2]}


def _rebuild_stack(arguments, name):
    """A pickled :class:`StackedRNN`: its constructor on checked arguments."""
    layers, *flags = arguments
    if not isinstance(layers, list) or not layers or not all(
            isinstance(layer, (LSTM, GRU, SimpleRNN)) for layer in layers):
        raise TypeError("a pickled StackedRNN must hold a list of minirnn LSTM, GRU or "
                        "SimpleRNN layers.")
    if not all(isinstance(flag, bool) for flag in flags) or len(flags) != 4:
        raise TypeError("a pickled StackedRNN's return_sequences, return_state, "
                        "go_backwards and zero_output_for_mask must be True or False.")
    stack = StackedRNN(layers, *flags)
    if name is not None:
        stack.name = str(name)
    return stack


def _rnn_layers(class_name, config, dtype, semantics, keras_version, where, bitwise):
    """(minirnn layer or StackedRNN, list of (class, arguments, cudnn) per weight group)."""
    if class_name in ("CuDNNLSTM", "CuDNNGRU"):
        cls = LSTM if class_name == "CuDNNLSTM" else GRU
        arguments = _cell_arguments(cls, {"units": config.get("units"), "activation": "tanh",
                                          "recurrent_activation": "sigmoid",
                                          "reset_after": True, "use_bias": True},
                                    config, dtype, semantics, keras_version, where)
        return _make(cls, arguments, semantics, where, bitwise), [(cls, arguments, True)]
    if class_name in ("LSTM", "GRU", "SimpleRNN"):
        cls = _CELLS[class_name]
        arguments = _cell_arguments(cls, config, config, dtype, semantics, keras_version, where)
        return _make(cls, arguments, semantics, where, bitwise), [(cls, arguments, False)]
    cell = config.get("cell")
    if not isinstance(cell, dict) or not isinstance(cell.get("config"), dict):
        raise ValueError(f"{where}: the RNN has no cell configuration.")
    cell_class = cell.get("class_name")
    if cell_class == "StackedRNNCells":
        cells = cell["config"].get("cells")
        if not isinstance(cells, list) or not cells:
            raise ValueError(f"{where}: StackedRNNCells has no list of cells.")
    elif cell_class in ("LSTMCell", "GRUCell", "SimpleRNNCell"):
        cells = [cell]
    else:
        raise ValueError(
            f"{where}: the cell is of class {cell_class!r}; supported cells are LSTMCell, "
            "GRUCell, SimpleRNNCell and StackedRNNCells of those (custom cells run code "
            "minirnn does not have).")
    layers, groups = [], []
    for k, item in enumerate(cells):
        item_class = item.get("class_name") if isinstance(item, dict) else None
        if item_class not in ("LSTMCell", "GRUCell", "SimpleRNNCell") or \
                not isinstance(item.get("config"), dict):
            raise ValueError(f"{where}: cell {k} is of class {item_class!r}; supported cells "
                             "are LSTMCell, GRUCell and SimpleRNNCell.")
        cls = _CELLS[item_class]
        arguments = _cell_arguments(cls, item["config"], config, dtype, semantics,
                                    keras_version, where)
        if len(cells) > 1:
            arguments.update(return_sequences=True, return_state=True, go_backwards=False,
                             zero_output_for_mask=False)
        layers.append(_make(cls, arguments, semantics, where, bitwise))
        groups.append((cls, arguments, False))
    if len(cells) == 1:
        return layers[0], groups
    stack = StackedRNN(layers, _flag(config, "return_sequences", where),
                       _flag(config, "return_state", where), _flag(config, "go_backwards", where),
                       _flag(config, "zero_output_for_mask", where))
    return stack, groups


class RecurrentNode:
    """A recurrent layer as the model graph calls it (the layer itself is ``layer``).

    Mask rule (Keras' RNN.compute_mask): the output keeps the input's mask with
    return_sequences and has none without; states never carry a mask."""

    uses_mask = True
    merges = False

    def __init__(self, name, keras_class, layer, groups, where, weight_dtype):
        self.name = name
        self.keras_class = keras_class
        self.layer = layer
        self.groups = groups
        self.where = where
        self.weight_dtype = weight_dtype
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def __reduce__(self):
        """Pickle as the constructor's arguments (the layer as its own)."""
        return RecurrentNode, (self.name, self.keras_class, self.layer, self.groups,
                               self.where, self.weight_dtype)

    @property
    def dtype(self):
        return self.layer.dtype

    @property
    def units(self):
        if isinstance(self.layer, Bidirectional):
            return (self.layer.forward_layer.units, self.layer.backward_layer.units)
        return self.layer.units

    def weight_shapes(self, input_shape):
        shapes, feature = [], input_shape[-1]
        stacked = isinstance(self.layer, StackedRNN)
        for cls, arguments, cudnn in self.groups:
            shapes += _expected(cls, arguments, feature, cudnn)
            if stacked:
                feature = arguments["units"]
        return shapes

    def set_weights(self, arrays):
        layers = self._weight_layers()
        start = 0
        for layer, (cls, arguments, cudnn) in zip(layers, self.groups):
            n = 3 if arguments["use_bias"] or cudnn else 2
            part = [np.asarray(a) for a in arrays[start:start + n]]
            start += n
            if cudnn:
                part = _convert_cudnn(cls, part, arguments["units"])
            layer.set_weights(part)

    def _weight_layers(self):
        if isinstance(self.layer, Bidirectional):
            return [self.layer.forward_layer, self.layer.backward_layer]
        if isinstance(self.layer, StackedRNN):
            return self.layer.layers
        return [self.layer]

    def get_weights(self):
        return self.layer.get_weights()

    def count_params(self):
        return int(sum(w.size for w in self.get_weights()))

    def _state_units(self):
        if isinstance(self.layer, Bidirectional):
            sides = [self.layer.forward_layer, self.layer.backward_layer]
            return [s.units for s in sides for _ in s._state_names]
        layers = self.layer.layers if isinstance(self.layer, StackedRNN) else [self.layer]
        return [layer.units for layer in layers for _ in layer._state_names]

    def output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        layer = self.layer
        if isinstance(layer, Bidirectional):
            f, b = layer.forward_layer.units, layer.backward_layer.units
            width = f + b if layer.merge_mode == "concat" else f
        else:
            width = layer.units
        out = (B, T, width) if self.return_sequences else (B, width)
        outputs = [out]
        if isinstance(layer, Bidirectional) and layer.merge_mode is None:
            outputs = [(*out[:-1], layer.forward_layer.units),
                       (*out[:-1], layer.backward_layer.units)]
        if self.return_state:
            outputs += [(B, units) for units in self._state_units()]
        return outputs if len(outputs) > 1 else outputs[0]

    def compute_mask(self, x, mask):
        out = mask if self.return_sequences else None
        n_outputs = 2 if isinstance(self.layer, Bidirectional) and \
            self.layer.merge_mode is None else 1
        if self.return_state or n_outputs > 1:
            return [out] * n_outputs + [None] * (len(self._state_units())
                                                 if self.return_state else 0)
        return out

    def __call__(self, x, mask=None, initial_state=None):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"{self.where}: the input must be 3-D (batch, timesteps, "
                             f"features); received shape {x.shape}.")
        return self.layer(x, mask=mask, initial_state=initial_state)

    def trace(self, x, mask=None, initial_state=None):
        return self.layer.trace(x, mask, initial_state)

    def set_stateful(self, value):
        """Make the layer (every layer of a stack or a Bidirectional) stateful or
        not, its stored states forgotten: the next call starts from zeros and
        fixes the batch size (minirnn.model streams a stateful model)."""
        for layer in self._weight_layers():
            layer.stateful = value
            layer.states = None


def build_recurrent(name, class_name, config, dtype, semantics, keras_version, bitwise,
                    weight_dtype, build_inner=None):
    """A :class:`RecurrentNode` for one recurrent layer of a saved configuration."""
    where = f"layer {name!r} ({class_name})"
    if class_name != "Bidirectional":
        layer, groups = _rnn_layers(class_name, config, dtype, semantics, keras_version,
                                    where, bitwise)
        node = RecurrentNode(name, class_name, layer, groups, where, weight_dtype)
        layer.name = name
        return node
    inner, backward = config.get("layer"), config.get("backward_layer")
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise ValueError(f"{where}: `merge_mode` must be concat, sum, mul, ave or null; "
                         f"received {merge_mode!r}.")
    sides = []
    for label, side in (("layer", inner), ("backward_layer", backward)):
        if side is None and label == "backward_layer":
            continue
        side_class = side.get("class_name") if isinstance(side, dict) else None
        if side_class not in ("LSTM", "GRU", "SimpleRNN", "RNN", "CuDNNLSTM", "CuDNNGRU") or \
                not isinstance(side.get("config"), dict):
            raise ValueError(f"{where}: the wrapped {label} is of class {side_class!r}; "
                             "supported are LSTM, GRU, SimpleRNN and RNN of one cell.")
        sides.append((side_class, dict(side["config"])))
    if backward is None:
        backward_config = dict(sides[0][1])
        backward_config["go_backwards"] = not _flag(backward_config, "go_backwards", where)
        sides.append((sides[0][0], backward_config))
    layers, groups = [], []
    for side_class, side_config in sides:
        layer, side_groups = _rnn_layers(side_class, side_config, dtype, semantics,
                                         keras_version, where, bitwise)
        if isinstance(layer, StackedRNN):
            raise ValueError(f"{where}: Bidirectional around StackedRNNCells is not "
                             "reproduced.")
        layers.append(layer)
        groups += side_groups
    try:
        wrapper = Bidirectional(layers[0], merge_mode=merge_mode, backward_layer=layers[1],
                                dtype=dtype, bitwise=bitwise)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
    wrapper.name = name
    return RecurrentNode(name, class_name, wrapper, groups, where, weight_dtype)
