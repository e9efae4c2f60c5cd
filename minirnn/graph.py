"""A saved model's configuration as a plain graph: layers, their calls, the tensors.

Keras writes three shapes of configuration, and this module reads them all into one:

- Sequential (Keras 2 and 3): each layer reads the previous layer's output;
- Keras 3 Functional: each call ("node") is {"args": [...], "kwargs": {...}} with
  tensors written as {"class_name": "__keras_tensor__", "config": {"keras_history":
  [layer, node, index]}}; masks and initial states are explicit kwargs, and the
  operations that make masks are nodes of their own (module keras.src.ops.numpy);
- Keras 2 Functional: each call is a list [[layer, node, index, kwargs], ...]; a
  recurrent layer called with several tensors reads the first as its input and the
  others as its initial state; masks are implicit.

A tensor is a :class:`Ref` (layer name, node index, output index).

May use: numpy and :mod:`minirnn.files.safety`.
"""

from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from .files.safety import MASK_OPS

__all__ = ["Ref", "Call", "LayerSpec", "Graph", "parse"]

Ref = namedtuple("Ref", "layer node index")


@dataclass
class Call:
    """One call of a layer: ``inputs`` (a Ref, a list of Refs, or constants for mask
    operations; None when a Keras 3 call passes every tensor by keyword), ``mask`` and
    ``initial_state`` given explicitly (or None). ``args`` are the positional
    arguments after the first and ``kwargs`` the other keyword arguments ("training"
    is left out), tensors as Refs and constants kept (arrays as NumPy arrays); only a
    layer that declares a call signature takes them (minirnn.model binds them)."""

    inputs: object
    mask: object = None
    initial_state: list = None
    constants: list = field(default_factory=list)
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)


@dataclass
class LayerSpec:
    name: str
    class_name: str
    config: dict
    is_operation: bool = False
    calls: list = field(default_factory=list)


@dataclass
class Graph:
    kind: str                      # "Sequential" or "Functional"
    layers: list                   # LayerSpec, in configuration order
    inputs: list                   # Refs of the model inputs (InputLayer outputs)
    outputs: list                  # Refs of the model outputs
    input_configs: list            # the InputLayer configurations, in input order


class ConfigError(ValueError):
    pass


def _object(value, where):
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a JSON object; received {type(value).__name__}")
    class_name = value.get("class_name")
    config = value.get("config", {})
    if not isinstance(class_name, str) or not isinstance(config, dict):
        raise ConfigError(f"{where} must have a string 'class_name' and an object 'config'")
    return class_name, config


def _name(layer, config, where):
    name = config.get("name", layer.get("name"))
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} has no name")
    return name


def parse(model):
    """A :class:`Graph` out of the model object of a configuration.

    Keras 2.0 to 2.2.2 wrote a Sequential's configuration as the bare list of its
    layers; later versions as {"name", "layers", ...}."""
    if isinstance(model, dict) and model.get("class_name") == "Sequential" and \
            isinstance(model.get("config"), list):
        model = {**model, "config": {"layers": model["config"]}}
    class_name, config = _object(model, "the model configuration")
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ConfigError("the model configuration has no list of 'layers'")
    if class_name == "Sequential":
        return _sequential(layers, config.get("build_input_shape"))
    if class_name in ("Functional", "Model"):
        return _functional(config, layers)
    raise ConfigError(f"the model is of class {class_name!r}; minirnn reads Sequential and "
                      "Functional models (subclassed models are Python code)")


def _input_config(config, where):
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, (list, tuple)) or len(shape) < 2 or not all(
            n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0)
            for n in shape):
        raise ConfigError(f"{where} has no valid input shape (batch_shape or "
                          f"batch_input_shape); received {shape!r}")
    dtype = config.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    return {"shape": tuple(shape), "dtype": dtype if isinstance(dtype, str) else "float32"}


def _sequential(layers, build_shape=None):
    specs, previous = [], None
    input_configs = []
    for k, layer in enumerate(layers):
        class_name, config = _object(layer, f"layer {k}")
        name = _name(layer, config, f"layer {k}")
        if class_name == "InputLayer":
            if specs or input_configs:
                raise ConfigError(f"layer {name!r}: an InputLayer may only come first")
            input_configs.append({"name": name, **_input_config(config, f"layer {name!r}")})
            previous = Ref(name, 0, 0)
            specs.append(LayerSpec(name, class_name, config))
            continue
        if previous is None:
            shaped = dict(config)
            if "batch_shape" not in shaped and "batch_input_shape" not in shaped:
                shaped["batch_shape"] = build_shape
            input_configs.append({"name": f"{name}_input",
                                  **_input_config(shaped, f"the first layer {name!r}")})
            previous = Ref(f"{name}_input", 0, 0)
            specs.append(LayerSpec(previous.layer, "InputLayer", {}))
        specs.append(LayerSpec(name, class_name, config, calls=[Call(previous)]))
        previous = Ref(name, 0, 0)
    if len(specs) < 2:
        raise ConfigError("the Sequential model has no layers")
    _unique(specs)
    return Graph("Sequential", specs, [Ref(specs[0].name, 0, 0)], [previous], input_configs)


def _unique(specs):
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"two layers are named {spec.name!r}")
        seen.add(spec.name)


def _refs(value, where):
    """Keras' input_layers / output_layers as a flat list of Refs: [layer, node,
    index] triples, possibly nested (a layer's states) or keyed by name."""
    if isinstance(value, dict):
        value = list(value.values())
    if _is_triple(value):
        return [_triple(value, where)]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a list of [layer, node, index]")
    return [ref for item in value for ref in _refs(item, where)]


def _is_triple(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _triple(item, where):
    if not isinstance(item, (list, tuple)) or len(item) < 3 or not isinstance(item[0], str) \
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in item[1:3]):
        raise ConfigError(f"{where}: expected [layer name, node index, tensor index]; "
                          f"received {item!r}")
    return Ref(item[0], item[1], item[2])


def _functional(config, layers):
    specs = []
    for k, layer in enumerate(layers):
        class_name, layer_config = _object(layer, f"layer {k}")
        name = _name(layer, layer_config, f"layer {k}")
        is_operation = _is_operation(layer, class_name, layer_config)
        nodes = layer.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ConfigError(f"layer {name!r}: 'inbound_nodes' must be a list")
        spec = LayerSpec(name, class_name, layer_config, is_operation)
        for node in nodes:
            spec.calls.append(_call(node, spec))
        specs.append(spec)
    _unique(specs)
    inputs = _refs(config.get("input_layers"), "input_layers")
    outputs = _refs(config.get("output_layers"), "output_layers")
    by_name = {s.name: s for s in specs}
    input_configs = []
    for ref in inputs:
        spec = by_name.get(ref.layer)
        if spec is None or spec.class_name != "InputLayer":
            raise ConfigError(f"input {ref.layer!r} is not an InputLayer of the model")
        input_configs.append({"name": spec.name, **_input_config(spec.config,
                                                                 f"input {spec.name!r}")})
    return Graph("Functional", specs, inputs, outputs, input_configs)


def _is_operation(layer, class_name, config):
    """Keras 3 mask operations: module keras.src.ops.numpy (keras.src.ops.core for
    Cast and ConvertToTensor, which Attention's compute_mask records) in .keras
    files; the legacy .h5 saver drops the module, and an operation has no
    'trainable'."""
    module = layer.get("module")
    if module is not None:
        return module in ("keras.src.ops.numpy", "keras.src.ops.core")
    return class_name in MASK_OPS and "trainable" not in config


def _tensor(value):
    """The Ref of a Keras 3 serialized tensor, or None for anything else."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        return _triple(history, "a tensor's keras_history")
    return None


def _structure(value, where):
    """Keras 3 args with tensors replaced by Refs (lists kept, constants kept; an
    array constant, {"class_name": "__tensor__" or "__numpy__", "config": {"value",
    "dtype"}}, as a NumPy array)."""
    ref = _tensor(value)
    if ref is not None:
        return ref
    if isinstance(value, dict) and value.get("class_name") in ("__tensor__", "__numpy__"):
        config = value.get("config")
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: an array constant has no 'config'")
        return _array(config.get("value"), config.get("dtype"), where)
    if isinstance(value, list):
        return [_structure(v, where) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise ConfigError(f"{where}: unsupported call argument {str(value)[:80]}")


_ARRAY_DTYPES = ("bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8")


def _array(value, dtype, where):
    """An array constant of a call: nested lists of numbers, of a plain dtype."""
    if dtype not in _ARRAY_DTYPES:
        raise ConfigError(f"{where}: an array constant has dtype {str(dtype)[:40]!r}; "
                          f"expected one of {_ARRAY_DTYPES}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: an array constant must hold numbers in nested lists "
                          f"of equal lengths; received {str(value)[:80]}")
    return array.astype(dtype)


def _keras2_structure(value, where):
    """Keras 2 call arguments with tensors, written [layer, node, index] (Keras 2
    itself reads any list of 3 or 4 items that starts with a string so), replaced by
    Refs; lists and constants kept."""
    if isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str):
        return _triple(value, where)
    if isinstance(value, list):
        return [_keras2_structure(v, where) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise ConfigError(f"{where}: unsupported call argument {str(value)[:80]}")


def _check_input(value, where):
    """A layer's input is one tensor or a flat, non-empty list of tensors."""
    if isinstance(value, Ref):
        return
    if isinstance(value, list) and value and all(isinstance(v, Ref) for v in value):
        return
    raise ConfigError(f"{where}: a layer's input must be a tensor or a list of tensors; "
                      f"received {str(value)[:80]}")


def _call(node, spec):
    """One inbound node as a :class:`Call`. Arguments other than the input, the mask
    and the initial state go into ``args`` and ``kwargs``; minirnn.model refuses
    them for every layer that does not declare a call signature."""
    where = f"layer {spec.name!r}"
    if isinstance(node, dict):  # Keras 3
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict) or \
                not (args or kwargs) or (spec.is_operation and not args):
            raise ConfigError(f"{where}: a call must have a list 'args' and an object "
                              "'kwargs'")
        args = [_structure(a, where) for a in args]
        if spec.is_operation:
            _check_input(args[0], where)
            return Call(args[0], constants=args[1:])
        if args:
            _check_input(args[0], where)
        mask = _structure(kwargs.get("mask"), where)
        state = kwargs.get("initial_state")
        if state is not None:
            state = _structure(state if isinstance(state, list) else [state], where)
        others = {key: _structure(value, f"{where}: argument {key!r}")
                  for key, value in kwargs.items()
                  if key not in ("mask", "initial_state", "training")}
        return Call(args[0] if args else None, mask=mask, initial_state=state,
                    args=args[1:], kwargs=others)
    if isinstance(node, list) and node:  # Keras 2: [[layer, node, index, kwargs], ...]
        refs = [_triple(entry, where) for entry in node]
        # Keras 2 writes the call's keyword arguments on every entry of its input.
        arguments = [entry[3] if len(entry) > 3 else {} for entry in node]
        if not all(isinstance(kwargs, dict) for kwargs in arguments):
            raise ConfigError(f"{where}: call arguments must be an object")
        if any(kwargs != arguments[0] for kwargs in arguments):
            raise ConfigError(f"{where}: the entries of one call pass different arguments")
        kwargs = {key: _keras2_structure(value, f"{where}: argument {key!r}")
                  for key, value in arguments[0].items()
                  if key != "training" and value is not None}
        mask = kwargs.pop("mask", None)
        return Call(refs[0] if len(refs) == 1 else refs, mask=mask, kwargs=kwargs)
    raise ConfigError(f"{where}: a call must be an object (Keras 3) or a list (Keras 2)")


def refs_in(value):
    """The Refs in a call's argument (a Ref, or nested lists of them)."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    return []


def take(value, store):
    """The values of a call's argument: each Ref looked up in ``store``, lists kept."""
    if isinstance(value, Ref):
        return store[value]
    if isinstance(value, list):
        return [take(v, store) for v in value]
    return value
