"""Model: a saved Keras model's graph, run node by node, masks carried beside values.

:func:`load_model` reads a file (:mod:`minirnn.files`), turns its configuration into
a graph of calls (:mod:`minirnn.graph`), builds one minirnn object per layer
(recurrent layers from :mod:`minirnn.recurrent`, the others from
:mod:`minirnn.blocks`), checks every weight against the configuration, and orders
the calls so that each runs once its inputs exist. Running the model is a plain
walk over that order: each call reads its input values and their masks, runs its
layer, and stores its outputs with the masks Keras' ``compute_mask`` gives them. A
mask given explicitly in the configuration (Keras 3 writes them, with the
operations that compute them) takes the place of the implicit one, as in Keras.

A *stateful* model (``load_model(path, stateful=True)``, ``model.stateful = True``,
or a file whose recurrent layers are stateful) streams: each call continues the
sequences of the call before, so that a long sequence fed in slices of any length
gives, at every step, the outputs of the whole sequence at once. Which layers can
do that, and what each carries from one slice to the next, is the table of the
table of :mod:`minirnn.streaming`; the others are refused when streaming is switched on.

May use: numpy, :mod:`minirnn.activation_blocks`, :mod:`minirnn.attention`,
:mod:`minirnn.bitwise`, :mod:`minirnn.blocks`, :mod:`minirnn.convolution`,
:mod:`minirnn.files`, :mod:`minirnn.graph`, :mod:`minirnn.mask_operations`,
:mod:`minirnn.recurrent` and :mod:`minirnn.streaming`; keras only
inside ``from_keras_model``, for a model in memory.
"""

import heapq
import math

import numpy as np

from . import activation_blocks, attention, blocks, convolution, files, graph as graphs, recurrent
from .bitwise import BitwiseUnsupportedError
from .graph import refs_in as _refs_in, take as _take
from .mask_operations import MaskOperation
from .streaming import Streaming, carry_recurrent, span as _span
from .files.safety import FileFormatError, check_class, custom_objects, refusal

__all__ = ["Model", "load_model"]

_SEMANTICS = ("keras2", "keras3")
# Layers whose Keras results minirnn reproduces bit for bit (tests/test_model.py holds
# each against Keras' own model call): the recurrent layers in their bitwise mode, and
# the layers that only move, copy or select numbers.
_BITWISE_BLOCKS = ("InputLayer", "Embedding", "Masking", "Dropout", "SpatialDropout1D",
                   "GaussianNoise", "GaussianDropout", "AlphaDropout",
                   "ActivityRegularization", "Flatten", "Reshape", "Permute", "RepeatVector",
                   "Concatenate")
_DEFAULT_TIMESTEPS = 6
_EXAMPLE_ELEMENTS = 2**28  # a file's input shape may declare any size: bound what is made
# Every non-recurrent block by its Keras class name.
_BLOCKS = {**blocks.BLOCKS, **convolution.BLOCKS, **activation_blocks.BLOCKS,
           **attention.BLOCKS}


# ---- building ---------------------------------------------------------------------

def _policy(config, where):
    """The dtype of a layer's configuration: a name, or a DTypePolicy object."""
    dtype = config.get("dtype", "float32")
    if dtype is None:
        return "float32"
    if isinstance(dtype, dict):
        inner = dtype.get("config")
        dtype = inner.get("name") if isinstance(inner, dict) else None
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{where}: its dtype policy is {dtype!r}; minirnn computes in "
                         "float32 or float64 (mixed precision is not reproduced).")
    return dtype


def _build(spec, dtype, semantics, keras_version, bitwise):
    """The minirnn object for one layer of the configuration."""
    name, class_name, config = spec.name, spec.class_name, spec.config
    if spec.is_operation:
        return MaskOperation(name, class_name, config)
    return _build_layer(name, class_name, config, dtype, semantics, keras_version, bitwise)


def _build_layer(name, class_name, config, dtype, semantics, keras_version, bitwise):
    where = f"layer {name!r} ({class_name})"
    class_name = check_class(class_name, f"layer {name!r}", None)
    if class_name == "InputLayer":
        return None
    own = _policy(config, where)
    layer_dtype = dtype or own
    if bitwise and semantics == "keras2":
        raise BitwiseUnsupportedError(
            f"{where}: bitwise=True reproduces Keras 3's bits; this model has Keras 2 "
            "semantics, which are not modelled bit for bit (semantics='keras3' asks for "
            "Keras 3's numbers).")
    if bitwise and class_name not in _BITWISE_BLOCKS and class_name not in recurrent.RECURRENT:
        raise BitwiseUnsupportedError(
            f"{where}: bitwise=True needs every layer to be modelled bit for bit; "
            f"{class_name} is not (modelled: the recurrent layers and "
            f"{', '.join(_BITWISE_BLOCKS)}).")
    if class_name in recurrent.RECURRENT:
        return recurrent.build_recurrent(name, class_name, config, layer_dtype, semantics,
                                         keras_version, bitwise, own)
    if class_name == "TimeDistributed":
        inner = config.get("layer")
        if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
            raise ValueError(f"{where}: the wrapped layer has no configuration.")
        inner_config = inner["config"]
        inner_name = inner_config.get("name", f"{name}_layer")
        wrapped = _build_layer(str(inner_name), inner.get("class_name"), inner_config, dtype,
                               semantics, keras_version, bitwise)
        if wrapped is None:
            raise ValueError(f"{where}: cannot wrap an InputLayer.")
        block = blocks.TimeDistributed(name, wrapped, layer_dtype, semantics)
        block.weight_dtype = own
        block._keras_config = (class_name, config)
        return block
    block = _BLOCKS[class_name](name, config, layer_dtype, semantics)
    block.weight_dtype = own
    block._keras_config = (class_name, config)
    return block


def _check_weights(runner, arrays, input_shape, where):
    """Every array has the shape and dtype the configuration gives it."""
    expected = runner.weight_shapes(input_shape)
    if len(arrays) != len(expected):
        raise ValueError(
            f"{where}: the configuration needs {len(expected)} weight arrays of shapes "
            f"{[tuple(s) for s in expected]}; the file holds {len(arrays)} of shapes "
            f"{[a.shape for a in arrays]}.")
    dtype = getattr(runner, "weight_dtype", None)
    for k, (array, shape) in enumerate(zip(arrays, expected)):
        if array.dtype.kind != "f" or (dtype is not None and array.dtype.name != dtype):
            raise ValueError(f"{where}: weight {k} must be {dtype or 'floating point'}; "
                             f"the file holds {array.dtype}.")
        if array.ndim != len(shape) or any(e is not None and e != n
                                           for e, n in zip(shape, array.shape)):
            raise ValueError(f"{where}: weight {k} must have shape {tuple(shape)} for the "
                             f"configuration and its input shape {tuple(input_shape)}; the "
                             f"file holds {array.shape}.")


def rebuild_block(class_name, name, config, dtype, semantics, input_shape, weights):
    """A pickled block of a model (see ``Block.__reduce_ex__``): built from its Keras
    configuration, its weights checked against its input shape, as load_model
    builds and checks it; ValueError for a payload that does not fit."""
    if not isinstance(class_name, str) or class_name in recurrent.RECURRENT or \
            not isinstance(config, dict) or not isinstance(weights, list):
        raise ValueError(f"a pickled block must hold a Keras class name, a configuration "
                         f"and a list of weights; received class {class_name!r}.")
    where = f"layer {name!r} ({class_name})"
    block = _build_layer(name, class_name, config, dtype, semantics, None, False)
    if block is None:
        raise ValueError(f"{where}: an InputLayer is not pickled as a block.")
    if input_shape is not None:
        _check_weights(block, weights, input_shape, where)
        block._input_shape = input_shape
    elif weights:
        raise ValueError(f"{where}: weights without the input shape to check them.")
    block.set_weights(weights)
    return block


class _Step:
    """One call of one layer in the order of execution."""

    def __init__(self, spec, index, call, runner):
        self.spec, self.index, self.call, self.runner = spec, index, call, runner
        x, state, self.mask = call.inputs, call.initial_state, call.mask
        # Keras 2 writes a recurrent layer's initial state as extra inputs.
        if isinstance(runner, recurrent.RecurrentNode) and isinstance(x, list) and \
                state is None:
            if len(x) == 1:
                x = x[0]
            else:
                x, state = x[0], x[1:]
        # A block with a call signature (the attention layers) takes its call's other
        # arguments by name; every other layer refuses them.
        self.arguments = None
        if getattr(runner, "call_signature", None):
            self.arguments = self._bind(runner, call)
            x = self.arguments.pop(runner.call_signature[0])
            if self.arguments.get("mask") is not None and self.mask is None:
                self.mask = self.arguments.pop("mask")  # a mask passed by position
            self.arguments.pop("mask", None)
        elif call.args or call.kwargs or x is None:
            where = f"layer {spec.name!r}"
            if call.args:
                raise ValueError(f"{where}: the call passes {len(call.args) + 1} positional "
                                 "arguments")
            raise ValueError(f"{where}: the call passes {sorted(call.kwargs)}, which "
                             "minirnn does not reproduce")
        self.x, self.initial_state = x, state

    def _bind(self, runner, call):
        """The call's arguments by name, as Python binds them to the Keras layer's
        call signature (``runner.call_signature``, the input first); tensors are
        Refs (or array constants) where ``runner.tensor_arguments`` allows them, the
        other arguments constants that the block checks."""
        where = f"layer {self.spec.name!r} ({self.spec.class_name})"
        names = runner.call_signature
        if call.mask is not None and "mask" not in names:
            raise ValueError(f"{where}: the call passes ['mask'], which minirnn does not "
                             "reproduce")
        positional = ([] if call.inputs is None else [call.inputs]) + list(call.args)
        if len(positional) > len(names):
            raise ValueError(f"{where}: the call passes {len(positional)} positional "
                             f"arguments; the layer takes at most {len(names)}")
        bound = dict(zip(names, positional))
        for key, value in call.kwargs.items():
            if key not in names:
                raise ValueError(f"{where}: the call passes [{key!r}], which minirnn does "
                                 "not reproduce")
            if key in bound:
                raise ValueError(f"{where}: the call passes {key!r} twice")
            bound[key] = value
        first = bound.get(names[0])
        if not (isinstance(first, graphs.Ref) or (isinstance(first, list) and first and all(
                isinstance(r, graphs.Ref) for r in first))):
            raise ValueError(f"{where}: the call's {names[0]!r} must be a tensor or a list of "
                             f"tensors; received {str(first)[:80]}")
        for key, value in bound.items():
            if key not in runner.tensor_arguments and _refs_in(value):
                raise ValueError(f"{where}: the call argument {key!r} must be a constant; "
                                 "received a tensor")
        runner.check_call_arguments(
            {k: v for k, v in bound.items() if k not in runner.tensor_arguments})
        return bound

    def runs_unmasked(self, semantics):
        """Whether this call runs without its input's mask. Keras 3 fills in `mask`
        from the input's mask only for a call with one tensor argument
        (Layer.__call__, "Populate mask argument(s)"): a recurrent layer given an
        initial state, and no explicit mask, runs unmasked, and its output carries the
        input's mask all the same (compute_mask, "previous_mask")."""
        return self.mask is None and self.call.initial_state is not None and \
            semantics == "keras3"

    def reads(self):
        arguments = [] if self.arguments is None else list(self.arguments.values())
        return _refs_in(self.x) + _refs_in(self.mask) + _refs_in(self.initial_state) + \
            [r for c in self.call.constants for r in _refs_in(c)] + _refs_in(arguments)


class Model:
    """A whole Keras model, run by minirnn. Build it with :func:`load_model` or
    ``minirnn.from_keras(keras_model)``.

    Attributes:
        layers: the minirnn objects in configuration order (the recurrent ones are
            minirnn.LSTM, GRU, SimpleRNN, Bidirectional; RNN(StackedRNNCells) is a
            minirnn.recurrent.StackedRNN; the others are minirnn.blocks classes).
        input_names, output_names: as Keras names them.
        input_specs: per input, {"name", "shape", "dtype", "int_high", "mask_value",
            "mask_zero"}.
        source: {"path", "format", "keras_version", "semantics"}.
    """

    def __init__(self, saved, *, dtype=None, bitwise=False, semantics=None, problems=(),
                 stateful=None):
        _check_arguments(dtype, bitwise, semantics)
        _check_stateful(stateful)
        self._dtype_override = dtype
        self.source = dict(saved.source)
        if semantics is not None:
            self.source["semantics"] = semantics
        self.semantics = self.source["semantics"]
        self.bitwise = bool(bitwise)
        version = self.source.get("keras_version")
        if isinstance(version, str) and version.startswith("1."):
            raise ValueError(f"the file was written by Keras {version}; minirnn reads files "
                             "of Keras 2.0 and later (Keras 1 stored recurrent weights in "
                             "another layout).")
        try:
            self._graph = graphs.parse(saved.config)
        except ValueError:
            if problems:  # e.g. a subclassed model: its custom class says why
                raise refusal(None, list(problems)) from None
            raise
        self._runners = self._build_all(dtype, problems)
        self._order = self._schedule()
        self._shapes = self._propagate_shapes(saved.weights)
        # What pickling sends (see __reduce__): the file's configuration and arrays,
        # and the options it was loaded with.
        self._saved = files.SavedModel(saved.config, self._shared_weights(saved.weights),
                                       saved.source)
        self._options = {"dtype": dtype, "bitwise": self.bitwise, "semantics": semantics}
        self.input_names = [r.layer for r in self._graph.inputs]
        self.output_names = [r.layer for r in self._graph.outputs]
        self.input_specs = self._input_specs()
        self._mark_plain_steps()
        self._stateful, self._stream = False, None
        if stateful is None:  # as the file says: stateful if a recurrent layer is
            stateful = any(node.layer.stateful for node in self._recurrent_nodes())
            if stateful:
                try:
                    self.stateful = True
                except ValueError as error:
                    raise ValueError(f"{error} (the file's recurrent layers are stateful; "
                                     "stateful=False runs the model on whole sequences)"
                                     ) from None
        else:
            self.stateful = bool(stateful)

    # ---- structure ---------------------------------------------------------------

    def _build_all(self, dtype, problems=()):
        """One minirnn object per layer. Every layer is tried, so that a refusal
        lists all the layers and settings minirnn does not reproduce at once (with
        ``problems`` found before, e.g. custom objects), not only the first."""
        runners, found = {}, list(problems)
        for spec in self._graph.layers:
            try:
                runners[spec.name] = _build(spec, dtype, self.semantics,
                                            self.source.get("keras_version"), self.bitwise)
            except BitwiseUnsupportedError:
                raise
            except ValueError as error:
                text = _problem(error)
                if not any(text.startswith(f"layer {spec.name!r}") and
                           p.startswith(f"layer {spec.name!r}") for p in found):
                    found.append(text)
        if found:
            raise refusal(None, found)
        return runners

    def _schedule(self):
        """Every call, ordered so that each runs after the calls it reads from
        (Kahn's algorithm; among the calls that are ready, configuration order)."""
        inputs = {graphs.Ref(r.layer, 0, 0) for r in self._graph.inputs}
        steps = [_Step(spec, k, call, self._runners[spec.name])
                 for spec in self._graph.layers for k, call in enumerate(spec.calls)]
        names = {spec.name for spec in self._graph.layers}
        waiting, missing, ready = {}, [], []
        for position, step in enumerate(steps):
            needs = set()
            for ref in step.reads():
                if ref.layer not in names:
                    raise ValueError(f"layer {step.spec.name!r} reads from {ref.layer!r}, "
                                     "which is not a layer of the model.")
                if ref not in inputs:
                    needs.add((ref.layer, ref.node))
            missing.append(len(needs))
            for key in needs:
                waiting.setdefault(key, []).append(position)
            if not needs:
                heapq.heappush(ready, position)
        order = []
        while ready:
            step = steps[heapq.heappop(ready)]
            order.append(step)
            for position in waiting.pop((step.spec.name, step.index), []):
                missing[position] -= 1
                if missing[position] == 0:
                    heapq.heappush(ready, position)
        if len(order) < len(steps):
            stuck = next(s for s, n in zip(steps, missing) if n)
            raise ValueError(f"the model's graph cannot be ordered: {stuck.spec.name!r} "
                             "reads tensors no layer makes (or the calls form a cycle).")
        return order

    def _propagate_shapes(self, weights):
        """Static shapes through the graph; checks and sets each layer's weights."""
        shapes = {}
        for ref, spec in zip(self._graph.inputs, self._graph.input_configs):
            shapes[graphs.Ref(ref.layer, 0, 0)] = spec["shape"]
        done = set()
        for step in self._order:
            runner, name = step.runner, step.spec.name
            for ref in step.reads():
                if ref not in shapes:
                    raise ValueError(f"layer {name!r} reads output {ref.index} of call "
                                     f"{ref.node} of {ref.layer!r}, which that layer does not "
                                     "make.")
            if isinstance(runner, MaskOperation):
                shapes[graphs.Ref(name, step.index, 0)] = None  # a mask: no static shape
                continue
            input_shape = _take(step.x, shapes)
            if input_shape is None or (isinstance(input_shape, list) and
                                       any(s is None for s in input_shape)):
                raise ValueError(f"layer {name!r} reads the output of a mask operation as "
                                 "its input; not supported.")
            if step.arguments is not None:  # by name: tensors as shapes, constants as such
                input_shape = {runner.call_signature[0]: input_shape, **{
                    key: _argument_shape(value, key in runner.tensor_arguments, shapes)
                    for key, value in step.arguments.items()}}
            if name not in done:
                arrays = weights.get(name, [])
                where = f"layer {name!r} ({step.spec.class_name})"
                try:
                    _check_weights(runner, arrays, input_shape, where)
                    runner.set_weights(arrays)
                    if isinstance(runner, blocks.Block):
                        runner._input_shape = input_shape  # pickling checks again
                except (TypeError, IndexError) as error:
                    raise ValueError(f"{where}: its input shape {input_shape} does not fit "
                                     f"({error}).") from None
                done.add(name)
            try:
                out = runner.output_shape(input_shape)
            except (TypeError, IndexError, ZeroDivisionError) as error:
                raise ValueError(f"layer {name!r}: cannot take an input of shape "
                                 f"{input_shape} ({error}).") from None
            outs = out if isinstance(out, list) else [out]
            for k, shape in enumerate(outs):
                shapes[graphs.Ref(name, step.index, k)] = tuple(shape)
        for ref in self._graph.outputs:
            if ref not in shapes:
                raise ValueError(f"the model output {tuple(ref)} is not made by any call.")
        for spec in self._graph.layers:
            if spec.name not in done and weights.get(spec.name) and \
                    self._runners[spec.name] is not None:
                raise ValueError(f"layer {spec.name!r} has weights but is never called.")
        return shapes

    def _shared_weights(self, weights):
        """The file's arrays, kept for pickling; where a recurrent layer holds the
        same bits in its own read-only arrays (no cuDNN conversion, no dtype
        change), those instead, so that the model holds its weights once."""
        shared = dict(weights)
        for name, runner in self._runners.items():
            if not isinstance(runner, recurrent.RecurrentNode) or name not in weights or \
                    any(cudnn for _, _, cudnn in runner.groups):
                continue
            held = [w for layer in runner._weight_layers()
                    for w in (layer.kernel, layer.recurrent_kernel, layer.bias) if w is not None]
            arrays = weights[name]
            if len(held) == len(arrays) and all(_same_bits(h, a) for h, a in zip(held, arrays)):
                shared[name] = held
        return shared

    def _mark_plain_steps(self):
        """``step.plain``: the Ref of the one output of a call that reads one tensor
        and nothing else (no explicit mask, initial state or named arguments), which
        _run runs on a short path; None for the others. Also what a single ready
        input must be for _inputs' short path (``_ready_input``)."""
        for step in self._order:
            runner = step.runner
            single = graphs.Ref(step.spec.name, step.index, 1) not in self._shapes
            step.plain = graphs.Ref(step.spec.name, step.index, 0) if (
                runner is not None and not isinstance(runner, MaskOperation) and single
                and isinstance(step.x, graphs.Ref) and step.mask is None
                and step.initial_state is None and step.arguments is None
                and not getattr(runner, "clears_masks", ())) else None
        self._ready_input = None
        dtype = self._input_dtype(self.input_specs[0]) if len(self.input_specs) == 1 else None
        if dtype is not None:
            shape = self.input_specs[0]["shape"]
            self._ready_input = (np.dtype(dtype), len(shape),
                                 tuple((axis, n) for axis, n in enumerate(shape)
                                       if axis and n is not None))
        # A chain: one input, each call reading the one before's output, one output
        # (every Sequential model): _run walks it without the store of values.
        chain, previous = [], None
        if len(self._graph.inputs) == 1 and len(self._graph.outputs) == 1:
            previous = graphs.Ref(self._graph.inputs[0].layer, 0, 0)
            for step in self._order:
                if step.runner is None:
                    continue
                if step.plain is None or step.x != previous:
                    chain = previous = None
                    break
                chain.append(step)
                previous = step.plain
        self._chain = chain if previous is not None and chain and \
            previous == self._graph.outputs[0] else None
        self._chain_calls = None  # the chain's functions, made by _run (see _link)

    @property
    def layers(self):
        result = []
        for spec in self._graph.layers:
            runner = self._runners[spec.name]
            if runner is None or isinstance(runner, MaskOperation):
                continue
            result.append(runner.layer if isinstance(runner, recurrent.RecurrentNode)
                          else runner)
        return result

    def get_layer(self, name):
        """The minirnn object of the layer called ``name``."""
        for spec in self._graph.layers:
            runner = self._runners[spec.name]
            if spec.name == name and runner is not None and \
                    not isinstance(runner, MaskOperation):
                return runner.layer if isinstance(runner, recurrent.RecurrentNode) else runner
        names = [s.name for s in self._graph.layers
                 if self._runners[s.name] is not None
                 and not isinstance(self._runners[s.name], MaskOperation)]
        raise ValueError(f"No layer named {name!r}: the model's layers are {names}.")

    def _consumers(self, input_name):
        for step in self._order:
            if isinstance(step.runner, MaskOperation):
                continue
            if any(r.layer == input_name for r in _refs_in(step.x)):
                yield step.runner

    def _input_specs(self):
        specs = []
        for ref, config in zip(self._graph.inputs, self._graph.input_configs):
            spec = {"name": ref.layer, "shape": tuple(config["shape"]),
                    "dtype": config["dtype"], "int_high": None, "mask_value": None,
                    "mask_zero": False}
            for runner in self._consumers(ref.layer):
                if isinstance(runner, blocks.Embedding):
                    spec["int_high"] = runner.input_dim
                    spec["mask_zero"] = spec["mask_zero"] or runner.mask_zero
                elif isinstance(runner, blocks.Masking):
                    spec["mask_value"] = runner.mask_value
            specs.append(spec)
        return specs

    # ---- running -----------------------------------------------------------------

    def _inputs(self, x):
        ready = self._ready_input  # the short path of one ready array (dtype, rank, sizes)
        if ready is not None and type(x) is np.ndarray and x.dtype == ready[0] and \
                x.ndim == ready[1] and x.shape[0] and \
                (not ready[2] or all(x.shape[axis] == n for axis, n in ready[2])):
            return [x]
        names = self.input_names
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"`x` is a dict without the input(s) {missing}; the model's "
                                 f"inputs are {names}.")
            x = [x[n] for n in names]
        elif isinstance(x, (list, tuple)) and len(names) > 1:
            if len(x) != len(names):
                raise ValueError(f"`x` must hold {len(names)} arrays, one per input "
                                 f"{names}; received {len(x)}.")
        elif isinstance(x, (list, tuple)) and len(x) == 1 and np.ndim(x[0]) >= 2 and \
                not np.isscalar(x[0]):
            x = [x[0]] if np.asarray(x[0]).ndim == len(self.input_specs[0]["shape"]) else [x]
        else:
            x = [x]
        arrays = []
        for value, spec in zip(x, self.input_specs):
            try:
                array = np.asarray(value)
            except (ValueError, TypeError) as error:
                raise TypeError(f"input {spec['name']!r} must be a numeric array "
                                f"({error}).") from None
            if array.dtype.kind not in "biuf":
                raise TypeError(f"input {spec['name']!r} must hold numbers; received dtype "
                                f"{array.dtype}.")
            shape = spec["shape"]
            if array.ndim != len(shape) or any(
                    e is not None and e != n for e, n in zip(shape[1:], array.shape[1:])):
                raise ValueError(f"input {spec['name']!r} must have shape {shape} (None = "
                                 f"any size); received {array.shape}.")
            if array.shape[0] == 0:
                raise ValueError(f"input {spec['name']!r} has no samples (batch size 0).")
            dtype = self._input_dtype(spec)
            if dtype is not None and np.dtype(dtype).kind in "iu" and array.dtype.kind == "f" \
                    and not np.all(np.isfinite(array)):
                raise ValueError(f"input {spec['name']!r} is an integer input ({dtype}); "
                                 "received NaN or infinity.")
            with np.errstate(invalid="ignore"):
                arrays.append(array if dtype is None else array.astype(dtype, copy=False))
        if len({a.shape[0] for a in arrays}) > 1:
            raise ValueError(f"all inputs must have the same batch size; received "
                             f"{[a.shape[0] for a in arrays]}.")
        return arrays

    def _input_dtype(self, spec):
        """Keras converts each input to its InputLayer's dtype; a float64 override
        keeps float inputs in float64."""
        dtype = spec["dtype"]
        if dtype not in ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                         "uint8", "bool"):
            return None
        if self._dtype_override == "float64" and dtype.startswith("float"):
            return "float64"
        return dtype

    def _run(self, arrays, capture=None):
        """Every call in order; returns the outputs (or, with ``capture``, the
        (x, mask, initial_state) that reach that layer's first call)."""
        if capture is None and self._chain is not None:
            if self._chain_calls is None:
                self._chain_calls = _link_chain(self._chain, self._stream)
            unmasked, calls = self._chain_calls
            value, mask, k = arrays[0], None, 0
            try:
                if unmasked:
                    for k, call in enumerate(calls):
                        value = call(value)
                else:
                    for k, call in enumerate(calls):
                        value, mask = call(value, mask)
            except (TypeError, IndexError, KeyError) as error:
                raise _cannot_run(self._chain[k], value, error) from None
            return value
        store = {}
        for ref, array in zip(self._graph.inputs, arrays):
            store[graphs.Ref(ref.layer, 0, 0)] = (array, None)
        stream = self._stream
        carries = {} if stream is None else stream.carries
        for step in self._order:
            runner, name = step.runner, step.spec.name
            if step.plain is not None and capture is None:  # one tensor in, one out
                x, masks = store[step.x]
                carry = carries.get(step)
                try:
                    store[step.plain] = _call_layer(runner, x, masks, None) \
                        if carry is None else carry(stream, step, x, masks)
                except (TypeError, IndexError, KeyError) as error:
                    raise _cannot_run(step, x, error) from None
                continue
            if isinstance(runner, MaskOperation):
                values = _take(step.x, store)
                x = [v[0] for v in values] if isinstance(values, list) else values[0]
                constants = [_value(c, store) for c in step.call.constants]
                try:
                    store[graphs.Ref(name, step.index, 0)] = (runner(x, constants), None)
                except (TypeError, IndexError, KeyError, ValueError) as error:
                    raise ValueError(f"{runner.where} cannot run on its inputs: "
                                     f"{error}") from None
                continue
            values = _take(step.x, store)
            if isinstance(values, list):
                x, masks = [v[0] for v in values], [v[1] for v in values]
            else:
                x, masks = values
            if step.mask is not None:
                masks = _value(step.mask, store)
            unmasked = step.runs_unmasked(self.semantics)
            state = None if step.initial_state is None else \
                [_value(s, store) for s in step.initial_state]
            if capture == name:
                return x, None if unmasked else masks, state
            arguments = None
            if step.arguments is not None:  # by name, each tensor with its mask
                first = runner.call_signature[0]
                arguments = ({first: x, **{k: _value(v, store)
                                           for k, v in step.arguments.items()}},
                             {first: masks, **{k: _mask(v, store)
                                               for k, v in step.arguments.items()}})
            try:
                carry = carries.get(step)
                if carry is not None:
                    output, out_masks = carry(stream, step, x, masks)
                else:
                    output, out_masks = _call_layer(runner, x, None if unmasked else masks,
                                                    state, arguments)
                if unmasked:
                    out_masks = runner.compute_mask(x, masks)
            except (TypeError, IndexError, KeyError) as error:
                raise _cannot_run(step, x, error) from None
            outputs = output if isinstance(output, list) else [output]
            if not isinstance(out_masks, list):
                out_masks = [out_masks] * len(outputs)
            for k, (value, mask) in enumerate(zip(outputs, out_masks)):
                store[graphs.Ref(name, step.index, k)] = (value, mask)
            # Keras 3's MultiHeadAttention removes the masks of the tensors it reads
            # (set_keras_mask(query, None), ...): later calls see them unmasked.
            for key in getattr(runner, "clears_masks", ()):
                ref = step.x if key == runner.call_signature[0] else step.arguments.get(key)
                if isinstance(ref, graphs.Ref):
                    store[ref] = (store[ref][0], None)
        results = [store[ref][0] for ref in self._graph.outputs]
        return results if len(results) > 1 else results[0]

    def __call__(self, x):
        """Run the model on ``x`` (one array, a list, or a dict by input name).

        A stateful model continues from the call before: ``x`` is the next slice of
        time steps (any number of them), and the first call fixes the batch size."""
        arrays = self._inputs(x)
        if self._stream is not None:
            return self._run_slice(arrays)
        return self._run(arrays)

    def _run_slice(self, arrays, capture=None):
        """A stateful model's call: the next slice of its sequences. A call that
        fails (bad token ids, say) leaves the stream as it was: the batch size it
        would have fixed, and every state and carried input."""
        stream = self._stream
        before = stream.snapshot()
        stream.check_batch(arrays)
        try:
            return self._run(arrays, capture=capture)
        except BaseException:
            stream.restore(before)
            raise

    def predict(self, x, batch_size=None):
        """As ``model(x)``, in slices of ``batch_size`` samples (None: all at once)."""
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size <= 0):
            raise ValueError(f"`batch_size` must be a positive integer or None; received "
                             f"{batch_size!r}.")
        arrays = self._inputs(x)
        n = arrays[0].shape[0]
        if self._stream is not None:
            if batch_size is not None and batch_size < n:
                raise ValueError(f"this model is stateful: its calls continue the same "
                                 f"{n} sequences, so `batch_size` cannot slice them; "
                                 "feed it slices of time steps instead.")
            return self._run_slice(arrays)
        if batch_size is None:
            return self._run(arrays)
        parts = [self._run([a[i:i + batch_size] for a in arrays]) for i in range(0, n,
                                                                                   batch_size)]
        if isinstance(parts[0], list):
            return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        return np.concatenate(parts)

    def trace(self, x, layer=None):
        """The trace of recurrent layer ``layer`` (default: the first recurrent one) on
        the input, mask and initial state that really reach it in the model."""
        recurrent_names = [s.name for s in self._graph.layers
                           if isinstance(self._runners[s.name], recurrent.RecurrentNode)]
        if not recurrent_names:
            raise ValueError("The model has no recurrent layer to trace.")
        if layer is None:
            layer = recurrent_names[0]
        if layer not in recurrent_names:
            raise ValueError(f"`layer` must name a recurrent layer of the model, one of "
                             f"{recurrent_names}; received {layer!r}.")
        arrays = self._inputs(x)
        if self._stream is None:
            x, mask, state = self._run(arrays, capture=layer)
            return self._runners[layer].trace(x, mask, state)
        # A stateful model traces the next slice without moving its stream: the layers
        # before the traced one run (and carry) as in a call, then go back.
        before = self._stream.snapshot()
        try:
            x, mask, state = self._run_slice(arrays, capture=layer)
            return self._runners[layer].trace(x, mask, state)
        finally:
            self._stream.restore(before)

    # ---- streaming ---------------------------------------------------------------

    @property
    def stateful(self):
        """True: each call continues the sequences of the call before (see
        :class:`Streaming`). Assigning True checks that every layer can run on slices
        of a sequence (ValueError naming the first that cannot, and why), makes
        every recurrent layer stateful and forgets all states and the batch size;
        False makes them stateless again."""
        return self._stateful

    @stateful.setter
    def stateful(self, value):
        _check_stateful(value, allow_none=False)
        stream = Streaming(self) if value else None
        for node in self._recurrent_nodes():
            node.set_stateful(bool(value))
        self._stream, self._stateful = stream, bool(value)
        self._chain_calls = None  # they call the stream's carries, or not

    def reset_states(self):
        """Start every sequence again: zero the recurrent layers' states and the
        causal convolutions' past inputs (the batch size stays, as in Keras)."""
        for node in self._recurrent_nodes():
            node.layer.reset_state()
        if self._stream is not None:
            self._stream.reset()

    reset_state = reset_states

    def _recurrent_nodes(self):
        return [runner for runner in self._runners.values()
                if isinstance(runner, recurrent.RecurrentNode)]

    # ---- description -------------------------------------------------------------

    def summary(self, print_fn=print):
        """A Keras-like table: layer, class, output shape, parameters, inputs read."""
        rows = [("Layer", "Class", "Output shape", "Params", "Reads")]
        total = 0
        for spec in self._graph.layers:
            runner = self._runners[spec.name]
            if isinstance(runner, MaskOperation):
                continue
            if runner is None:
                shape = self._shapes.get(graphs.Ref(spec.name, 0, 0))
                rows.append((spec.name, "InputLayer", _shape_text(shape), "0", ""))
                continue
            shapes = [self._shapes.get(graphs.Ref(spec.name, 0, k)) for k in range(8)]
            shapes = [s for s in shapes if s is not None]
            params = runner.count_params()
            total += params
            reads = sorted({r.layer for c in spec.calls for r in _refs_in(c.inputs)
                            + _refs_in(c.initial_state) + _refs_in(c.args)
                            + _refs_in(list(c.kwargs.values()))})
            label = spec.class_name + (f" x{len(spec.calls)} calls" if len(spec.calls) > 1
                                       else "")
            rows.append((spec.name, label, ", ".join(_shape_text(s) for s in shapes),
                         f"{params:,}", ", ".join(reads)))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        line = "  ".join("-" * w for w in widths)
        print_fn(f'Model "{self._graph.kind}" from {self.source.get("path")}')
        print_fn(line)
        for k, row in enumerate(rows):
            print_fn("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if k == 0:
                print_fn(line)
        print_fn(line)
        print_fn(f"Total params: {total:,}")
        print_fn(self._semantics_line())

    def _semantics_line(self):
        source = self.source
        writer = {"keras": "Keras 3 .keras file", "h5": "legacy HDF5 .h5 file",
                  "json": "JSON architecture with a weights file",
                  "savedmodel": "TensorFlow SavedModel folder",
                  "memory": "in-memory Keras model"}.get(source.get("format"), "file")
        version = source.get("keras_version") or "unknown version"
        if self.semantics == "keras2":
            rule = "Keras 2.x semantics: hard_sigmoid = clip(0.2x + 0.5, 0, 1)"
        else:
            rule = "Keras 3 semantics: hard_sigmoid = relu6(x + 3) / 6"
        return f"Format: {writer} written by Keras {version}; {rule}."

    def example_inputs(self, batch_size=4, timesteps=None, seed=0, padding="end"):
        """Random valid inputs: integers in [1, input_dim) for an Embedding's input,
        standard normal numbers otherwise; with ``padding`` ("start", "end", "middle")
        every other row gets a run of padding (0 for mask_zero, mask_value rows for
        Masking) at that place; None: no padding."""
        if padding not in (None, "start", "end", "middle"):
            raise ValueError(f"`padding` must be 'start', 'end', 'middle' or None; "
                             f"received {padding!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; received "
                             f"{batch_size!r}.")
        rng = np.random.default_rng(seed)
        arrays = []
        for spec in self.input_specs:
            shape = list(spec["shape"])
            shape[0] = batch_size
            for k in range(1, len(shape)):
                if shape[k] is None:
                    shape[k] = timesteps or _DEFAULT_TIMESTEPS if k == 1 else 3
            if math.prod(shape) > _EXAMPLE_ELEMENTS:
                raise ValueError(f"input {spec['name']!r} of shape {tuple(shape)} would hold "
                                 f"{math.prod(shape)} numbers, over the {_EXAMPLE_ELEMENTS} "
                                 "that example inputs may have.")
            if spec["int_high"] is not None:
                high = spec["int_high"]
                x = rng.integers(1 if high > 1 else 0, max(high, 1), size=shape)
                x = x.astype(spec["dtype"] if spec["dtype"] in ("int32", "int64", "float32",
                                                                "float64") else "int32")
            else:
                x = rng.standard_normal(shape).astype(
                    spec["dtype"] if spec["dtype"] in ("float32", "float64") else "float32")
            pad = 0 if spec["mask_zero"] else spec["mask_value"]
            if padding is not None and pad is not None and x.ndim >= 2 and shape[1] > 1:
                T = shape[1]
                n = max(1, T // 3)
                where = {"start": slice(0, n), "end": slice(T - n, T),
                         "middle": slice((T - n) // 2, (T - n) // 2 + n)}[padding]
                x[1::2, where] = pad
            arrays.append(x)
        return arrays

    # ---- pickling ----------------------------------------------------------------

    def __reduce__(self):
        """Pickle (and copy) as data: the file's configuration and arrays, the
        options it was loaded with and, for a stateful model, its states. The other
        side builds it again through load_model's checks (:func:`_rebuild_model`);
        no compiled code travels. Changes made to the layers' weights after loading
        do not travel: the model is sent as it was loaded, with its states."""
        saved = self._saved
        options = {**self._options, "stateful": self._stateful}
        return _rebuild_model, (saved.config, saved.weights, saved.source, options,
                                self._carried())

    def _carried(self):
        """A stateful model's states: the batch size, each recurrent layer's states
        (per layer of a Bidirectional or stack), the causal convolutions' past
        inputs; None for a model that is not stateful."""
        if self._stream is None:
            return None
        layers = {name: [None if layer.states is None else list(layer.states)
                         for layer in runner._weight_layers()]
                  for name, runner in self._runners.items()
                  if isinstance(runner, recurrent.RecurrentNode)}
        return {"batch": self._stream.batch, "layers": layers,
                "contexts": dict(self._stream.contexts)}

    def _restore(self, carried):
        """Give a rebuilt stateful model the states of :meth:`_carried`, each
        checked as an assignment (``layer.states = ...``) and against the batch
        size; ValueError for states that do not fit."""
        if carried is None:
            return
        if self._stream is None or not isinstance(carried, dict) or \
                set(carried) != {"batch", "layers", "contexts"}:
            raise ValueError("the pickled states do not belong to a stateful model.")
        batch = carried["batch"]
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                                  or batch < 1):
            raise ValueError(f"the pickled batch size must be a positive integer or None; "
                             f"received {batch!r}.")
        for name, states in dict(carried["layers"]).items():
            runner = self._runners.get(name)
            if not isinstance(runner, recurrent.RecurrentNode):
                raise ValueError(f"the pickled states name {name!r}, which is not a "
                                 "recurrent layer of the model.")
            layers = runner._weight_layers()
            if not isinstance(states, list) or len(states) != len(layers):
                raise ValueError(f"layer {name!r}: the pickled states must be a list of "
                                 f"{len(layers)} entries, one per layer.")
            for layer, value in zip(layers, states):
                layer.states = value  # checked: one (batch, units) array per state
                if value is not None and layer.states[0].shape[0] != batch:
                    raise ValueError(f"layer {name!r}: the pickled states have batch size "
                                     f"{layer.states[0].shape[0]}; the model's is {batch}.")
        spans = {(step.spec.name, step.index): step.runner for step in self._stream.carries
                 if isinstance(step.runner, blocks.Conv1D)}
        contexts = {}
        for key, value in dict(carried["contexts"]).items():
            runner = spans.get(key)
            value = np.asarray(value)
            if runner is None or value.dtype != np.dtype(runner.dtype) or value.ndim != 3 or \
                    value.shape[:2] != (batch, _span(runner) - 1):
                raise ValueError(f"the pickled past inputs {key!r} do not fit a causal "
                                 "convolution of the model.")
            contexts[key] = np.array(value)
        self._stream.batch, self._stream.contexts = batch, contexts

    def __repr__(self):
        return (f"<minirnn.Model {self._graph.kind} with {len(self.layers)} layers, inputs "
                f"{self.input_names}, outputs {self.output_names}>")


_ONE_LAYER = (recurrent.LSTM, recurrent.GRU, recurrent.SimpleRNN)


def _stateful_layer(step, stream):
    """The layer of a step that is one stateful LSTM, GRU or SimpleRNN without
    return_state: called without a mask, its call is the stream's whole carry (no
    step waits for a mask, and its output has none). None for the others."""
    runner = step.runner
    carry = None if stream is None else stream.carries.get(step)
    if carry is carry_recurrent and isinstance(runner.layer, _ONE_LAYER) and \
            not runner.return_state:
        return runner.layer
    return None


def _link_chain(chain, stream):
    """A chain's calls: (True, [x -> output]) where no step reads a mask or makes
    one (the model's input comes without one: so no mask ever comes), else
    (False, [(x, mask) -> (output, output mask)]) (see _link)."""
    unmasked = [_unmasked_link(step, stream) for step in chain]
    if None not in unmasked:
        return True, unmasked
    return False, [_link(step, stream) for step in chain]


def _unmasked_link(step, stream):
    """One call of a chain as a function x -> output, for a step that, given no
    mask, neither reads one nor makes one; None for the others."""
    runner = step.runner
    carry = None if stream is None else stream.carries.get(step)
    if isinstance(runner, recurrent.RecurrentNode):
        if runner.return_state:
            return None
        return _stateful_layer(step, stream) or (runner if carry is None else None)
    if carry is not None or runner.uses_mask or runner.merges:
        return None
    if type(runner).compute_mask is blocks.Block.compute_mask or \
            (isinstance(runner, blocks.Embedding) and not runner.mask_zero):
        return runner  # Dense and the like: no mask in, none out
    return None


def _link(step, stream):
    """One call of a chain as a function (value, mask) -> (output, output mask): the
    same as _call_layer (or the stream's carry) with the choices made once."""
    runner = step.runner
    carry = None if stream is None else stream.carries.get(step)
    layer = _stateful_layer(step, stream)
    if layer is not None:
        def call(x, mask):
            if mask is None:
                return layer(x), None
            return carry(stream, step, x, mask)
        return call
    if carry is not None:
        return lambda x, mask: carry(stream, step, x, mask)
    if isinstance(runner, recurrent.RecurrentNode):
        return lambda x, mask: (runner(x, mask, None), runner.compute_mask(x, mask))
    if runner.uses_mask or runner.merges:
        return lambda x, mask: (runner(x, mask), runner.compute_mask(x, mask))
    if type(runner).compute_mask is blocks.Block.compute_mask and runner.mask_rule == "passes":
        return lambda x, mask: (runner(x), mask)  # Dense and the like: the mask passes
    return lambda x, mask: (runner(x), runner.compute_mask(x, mask))


def _call_layer(runner, x, masks, state, arguments=None):
    """(output, output mask) of one call, as Keras: the call, then compute_mask. A
    block with a call signature takes ``arguments``: (values, masks), each a dict by
    argument name (the input under its own name)."""
    if arguments is not None:
        values, argument_masks = arguments
        return runner.run(values, argument_masks), \
            runner.compute_mask(values, argument_masks)
    if isinstance(runner, recurrent.RecurrentNode):
        output = runner(x, masks, state)
    elif runner.uses_mask or runner.merges:
        output = runner(x, masks)
    else:
        output = runner(x)
    return output, runner.compute_mask(x, masks)


def _cannot_run(step, x, error):
    shapes = [np.shape(v) for v in x] if isinstance(x, list) else np.shape(x)
    return ValueError(f"layer {step.spec.name!r} ({step.spec.class_name}) cannot run on "
                      f"inputs of shape {shapes}: {error}")


def _problem(error):
    """The text of a layer's refusal without the list of supported layers, which the
    combined refusal gives once."""
    text = str(error)
    cut = text.find(". Supported layers: ")
    return text[:cut] if cut >= 0 else text.rstrip(".")


def _argument_shape(value, is_tensor, shapes):
    """A call argument for static shapes: a tensor's shape (an array constant's
    too), any other argument as it is."""
    if _refs_in(value):
        return _take(value, shapes)
    if is_tensor and value is not None:
        return tuple(np.shape(value))
    return value


def _mask(ref_or_list, store):
    """The mask(s) carried beside the value(s) behind a Ref or a list of Refs."""
    if isinstance(ref_or_list, graphs.Ref):
        return store[ref_or_list][1]
    if isinstance(ref_or_list, list):
        return [_mask(v, store) for v in ref_or_list]
    return None


def _value(ref_or_list, store):
    """The value(s) behind a Ref or a list of Refs (masks and initial states)."""
    if isinstance(ref_or_list, graphs.Ref):
        return store[ref_or_list][0]
    if isinstance(ref_or_list, list):
        return [_value(v, store) for v in ref_or_list]
    return ref_or_list


def _shape_text(shape):
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if n is None else str(n) for n in shape) + ")"


def _same_bits(a, b):
    """Whether two arrays have the same dtype, shape and bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.kind != "f":
        return False
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(a).view(bits),
                               np.ascontiguousarray(b).view(bits)))


def _check_stateful(value, allow_none=True):
    """``stateful``: True or False; None too where it means "as the file says"."""
    if not ((allow_none and value is None) or isinstance(value, (bool, np.bool_))):
        raise TypeError(f"`stateful` must be True{', False or None' if allow_none else ' or False'}; "
                        f"received {value!r}.")


def _check_arguments(dtype, bitwise, semantics):
    if not (dtype is None or (isinstance(dtype, str) and dtype in ("float32", "float64"))):
        raise ValueError(f"`dtype` must be None (keep the file's), 'float32' or "
                         f"'float64'; received {dtype!r}.")
    if not isinstance(bitwise, (bool, np.bool_)):
        raise TypeError(f"`bitwise` must be True or False; received {bitwise!r}.")
    if not (semantics is None or (isinstance(semantics, str) and semantics in _SEMANTICS)):
        raise ValueError(f"`semantics` must be None (the Keras that wrote the file), "
                         f"'keras2' or 'keras3'; received {semantics!r}.")
    if bitwise and dtype == "float64":
        raise ValueError("bitwise=True reproduces Keras' float32 arithmetic: `dtype` must "
                         "be None or 'float32'; received 'float64'.")


def from_keras_model(keras_model, bitwise=False):
    """A :class:`Model` of an in-memory Keras 3 Sequential or Functional model: its
    configuration as Keras serializes it, and each layer's get_weights()."""
    import json

    import keras
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model),
                                   default=_json_default))
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()]
               for layer in keras_model.layers}
    source = {"path": None, "format": "memory", "keras_version": keras.__version__,
              "semantics": "keras3"}
    saved = files.SavedModel(config, weights, source)
    try:
        return Model(saved, bitwise=bitwise)
    except (FileFormatError, BitwiseUnsupportedError):
        raise
    except (TypeError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"malformed model configuration ({type(error).__name__}: "
                         f"{error})") from None


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def load_model(path, weights=None, *, dtype=None, bitwise=False, semantics=None,
               stateful=None):
    """A :class:`Model` from a saved Keras model file, without TensorFlow or Keras.

    Args:
        path: a Keras 3 ``.keras`` file (or the folder it unzips to), or a legacy
            ``.h5`` full-model file (Keras 2.x, tf.keras 2.x, Keras 3's legacy saver),
            or a tf.keras 2.x SavedModel folder; with ``weights``, the model's JSON
            architecture (``model.to_json()``, or a .keras file's config.json).
        weights: None, or the weights file that goes with a JSON architecture:
            Keras 2's ``save_weights("w.h5")`` or Keras 3's ``.weights.h5``.
        dtype: None keeps each layer's dtype from the file; "float64" (or "float32")
            runs every layer in that dtype.
        bitwise: reproduce Keras' float32 results bit for bit where every layer is
            modelled (BitwiseUnsupportedError names the first layer that is not).
        semantics: None: the numbers of the Keras that wrote the file ("keras2" for
            Keras 2 and tf.keras .h5 files, e.g. hard_sigmoid = clip(0.2x + 0.5, 0, 1));
            "keras3": Keras 3's numbers whatever wrote the file.
        stateful: None: as the file says (stateful if its recurrent layers are);
            True: stream, every recurrent layer stateful (see Model.stateful): the
            model is called on consecutive slices of long sequences, the first call
            fixes the batch size, Model.reset_states() starts again; a layer that
            needs the whole sequence (Bidirectional, pooling over time, ...) is
            refused, named; False: every call runs whole sequences.

    Raises:
        ValueError (minirnn.files.FileFormatError for the file itself): a broken,
            truncated or hostile file, or a layer or setting minirnn does not
            reproduce, named with its class and the reason.
    """
    _check_arguments(dtype, bitwise, semantics)
    _check_stateful(stateful)
    saved = files.read(path, weights)
    return _from_saved(saved, path, dtype=dtype, bitwise=bitwise, semantics=semantics,
                       stateful=stateful)


def _from_saved(saved, where, **options):
    """A :class:`Model` of a file's content, checked: custom objects refused, every
    error a FileFormatError (a ValueError) that starts with ``where``."""
    problems = [problem for _, problem in custom_objects(saved.config)]
    try:
        return Model(saved, problems=problems, **options)
    except (FileFormatError, BitwiseUnsupportedError):
        raise
    except ValueError as error:
        raise FileFormatError(f"{where}: {error}") from None
    except (TypeError, KeyError, IndexError, AttributeError, RecursionError) as error:
        raise FileFormatError(f"{where}: malformed model configuration ({type(error).__name__}: "
                              f"{error})") from None


def _rebuild_model(config, weights, source, options, carried):
    """A pickled :class:`Model` again (see ``Model.__reduce__``): its configuration and
    arrays go through load_model's checks, then a stateful model gets its states.
    A payload that does not fit (a weight of the wrong shape, a setting minirnn
    refuses) raises ValueError (FileFormatError) naming the layer."""
    if not isinstance(config, dict) or not isinstance(weights, dict) or \
            not isinstance(source, dict) or not isinstance(options, dict) or \
            set(options) != {"dtype", "bitwise", "semantics", "stateful"}:
        raise FileFormatError("pickled minirnn model: not a configuration, weights, "
                              "source and options.")
    if not all(isinstance(arrays, (list, tuple)) for arrays in weights.values()):
        raise FileFormatError("pickled minirnn model: each layer's weights must be a list "
                              "of arrays.")
    weights = {name: list(arrays) for name, arrays in weights.items()}
    where = f"pickled minirnn model of {source.get('path') or 'an in-memory model'}"
    _check_arguments(options["dtype"], options["bitwise"], options["semantics"])
    _check_stateful(options["stateful"])
    model = _from_saved(files.SavedModel(config, weights, source), where, **options)
    try:
        model._restore(carried)
    except (TypeError, KeyError, AttributeError) as error:
        raise FileFormatError(f"{where}: malformed states ({type(error).__name__}: "
                              f"{error})") from None
    except ValueError as error:
        raise FileFormatError(f"{where}: {error}") from None
    return model
