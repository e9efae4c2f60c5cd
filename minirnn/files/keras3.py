"""Keras 3 ``.keras`` files: a zip (or its unzipped folder) of ``metadata.json``,
``config.json`` and ``model.weights.h5``.

Weights are found by Keras 3's paths, which come from attribute names, not layer
names: the model's layers are ``layers/<snake_case class name>`` with ``_1``, ``_2``,
... for repeats, in the order of the configuration (a Sequential's InputLayer has
none); each object's variables are ``vars/0``, ``vars/1``, ... in creation order,
and nested objects sit under ``cell``, ``cell/cells/<name>``, ``forward_layer``,
``backward_layer`` and ``layer``; a MultiHeadAttention's projections under
``query_dense``, ``key_dense``, ``_gate_dense``, ``value_dense`` and ``output_dense``
(tf-keras' weight files: ``_query_dense``, ``_key_dense``, ...).

May use: h5py, :mod:`minirnn.files` and its own modules.
"""

import io
import os
import re
import zipfile

from . import safety
from .safety import fail

__all__ = ["read_zip", "read_folder", "snake_case", "member_names"]

_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def read_zip(path):
    """Read a .keras zip entirely in memory (nothing is extracted)."""
    from . import SavedModel
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise fail(path, f"not a readable zip archive ({error})") from None
    with archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise fail(path, "the archive has no config.json: not a Keras 3 .keras file "
                       f"(it holds {sorted(names)[:10]})")
        metadata = _metadata(safety.read_member(archive, "metadata.json", safety.LIMITS[
            "metadata_bytes"], path) if "metadata.json" in names else None, path)
        config = safety.parse_json(
            safety.read_member(archive, "config.json", safety.LIMITS["json_bytes"], path),
            "config.json", path)
        if "model.weights.h5" not in names:
            raise fail(path, "the archive has no model.weights.h5")
        data = safety.read_member(archive, "model.weights.h5", safety.LIMITS["weights_bytes"],
                                  path)
    weights = _read_weights(io.BytesIO(data), config, path)
    return SavedModel(config, weights, _source(path, metadata))


def read_folder(path):
    """Read the unzipped form of a .keras file: the same three files in a folder."""
    from . import SavedModel
    files = {}
    for name in _MEMBERS:
        member = os.path.join(path, name)
        if not os.path.isfile(member):
            if name == "metadata.json":
                continue
            raise fail(path, f"the folder has no {name}: not an unzipped .keras file")
        if os.path.islink(member):
            raise fail(path, f"{name} is a symbolic link; refused")
        files[name] = member
    metadata = None
    if "metadata.json" in files:
        metadata = _metadata(safety.read_file(files["metadata.json"],
                                              safety.LIMITS["metadata_bytes"], path), path)
    config = safety.parse_json(
        safety.read_file(files["config.json"], safety.LIMITS["json_bytes"], path),
        "config.json", path)
    data = safety.read_file(files["model.weights.h5"], safety.LIMITS["weights_bytes"], path)
    weights = _read_weights(io.BytesIO(data), config, path)
    return SavedModel(config, weights, _source(path, metadata))


def _metadata(data, path):
    if data is None:
        return {}
    value = safety.parse_json(data, "metadata.json", path, safety.LIMITS["metadata_bytes"])
    if not isinstance(value, dict):
        raise fail(path, "metadata.json must hold a JSON object")
    return value


def _source(path, metadata):
    version = metadata.get("keras_version")
    return {"path": path, "format": "keras",
            "keras_version": version if isinstance(version, str) else None,
            "semantics": "keras3"}


def snake_case(name):
    """Keras' snake_case of a class name: "GRUCell" -> "gru_cell", "Conv1D" -> "conv1d"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def member_names(class_names):
    """Keras' names for the members of a list: snake_case, then _1, _2 for repeats."""
    used, names = {}, []
    for class_name in class_names:
        name = snake_case(class_name)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        names.append(name)
    return names


def _read_weights(handle, config, path):
    """{layer name: [arrays]} out of model.weights.h5, following the configuration."""
    import h5py
    try:
        file = h5py.File(handle, "r")
    except Exception as error:  # OSError for a corrupt or truncated file
        raise fail(path, f"model.weights.h5 is not a readable HDF5 file ({error})") from None
    try:
        with file:
            safety.check_tree(file, path)
            return _layer_weights(file, config, path)
    except safety.FileFormatError:
        raise
    except Exception as error:  # h5py reports damage as KeyError, OSError, RuntimeError...
        raise fail(path, f"model.weights.h5 is damaged ({type(error).__name__}: {error})") \
            from None


def _object(value, where, path):
    if not isinstance(value, dict) or not isinstance(value.get("config", {}), dict):
        raise fail(path, f"{where} must be a JSON object with a 'config' object")
    return value.get("class_name"), value.get("config", {})


def _layer_weights(file, config, path):
    model_class, model_config = _object(config, "the model configuration", path)
    layers = model_config.get("layers")
    if not isinstance(layers, list):
        raise fail(path, "the model configuration has no list of 'layers'")
    entries = []
    for k, layer in enumerate(layers):
        class_name, layer_config = _object(layer, f"layer {k}", path)
        if layer.get("module", "keras.layers") in ("keras.src.ops.numpy",
                                                   "keras.src.ops.core"):
            continue  # a mask operation: not a layer, no weights
        if model_class == "Sequential" and class_name == "InputLayer":
            continue
        name = layer_config.get("name", layer.get("name"))
        entries.append((name, class_name, layer_config))
    if "layers" not in file:
        raise fail(path, "model.weights.h5 has no 'layers' group")
    group = file["layers"]
    weights = {}
    for (name, class_name, layer_config), key in zip(
            entries, member_names([str(e[1]) for e in entries])):
        if key not in group:
            weights[name] = []
            continue
        weights[name] = _walk(group[key], class_name, layer_config, f"layer {name!r}", path)
    return weights


def _vars(group, path):
    if "vars" not in group:
        return []
    variables = group["vars"]
    keys = list(variables.keys())
    if not all(k.isdigit() for k in keys):
        raise fail(path, f"{variables.name} holds non-numeric names {keys[:5]}")
    return [safety.read_dataset(variables[k], path) for k in sorted(keys, key=int)]


def _child(group, name, where, path):
    if name not in group:
        raise fail(path, f"model.weights.h5 has no weights for {where} (missing "
                   f"{group.name}/{name})")
    return group[name]


def _walk(group, class_name, config, where, path):
    """The arrays of one layer in get_weights() order."""
    if class_name in ("LSTM", "GRU", "SimpleRNN"):
        return _vars(group, path) + _vars(_child(group, "cell", where, path), path)
    if class_name == "RNN":
        cell_class, cell_config = _object(config.get("cell"), f"the cell of {where}", path)
        cell = _child(group, "cell", where, path)
        if cell_class != "StackedRNNCells":
            return _vars(cell, path)
        cells = cell_config.get("cells")
        if not isinstance(cells, list):
            raise fail(path, f"the StackedRNNCells of {where} has no list of 'cells'")
        classes = [str(_object(c, f"a cell of {where}", path)[0]) for c in cells]
        members = _child(cell, "cells", where, path)
        arrays = []
        for key in member_names(classes):
            arrays += _vars(_child(members, key, where, path), path)
        return arrays
    if class_name == "Bidirectional":
        forward = _object(config.get("layer"), f"the layer of {where}", path)
        backward = config.get("backward_layer")
        backward = forward if backward is None else _object(backward, f"the backward layer "
                                                                       f"of {where}", path)
        return (_walk(_child(group, "forward_layer", where, path), *forward, where, path)
                + _walk(_child(group, "backward_layer", where, path), *backward, where, path))
    if class_name == "MultiHeadAttention":
        # its projections, in the order the layer builds them (get_weights()' order);
        # Keras 3 names them by its properties, tf-keras by its attributes (_query_dense)
        names = ["query_dense", "key_dense"] + (["gate_dense"] if config.get("use_gate")
                                                is True else []) + ["value_dense",
                                                                    "output_dense"]
        return [array for name in names for array in _vars(_child(
            group, name if name in group else f"_{name}", where, path), path)]
    if class_name == "TimeDistributed":
        inner = _object(config.get("layer"), f"the layer of {where}", path)
        return _vars(group, path) + _walk(_child(group, "layer", where, path), *inner, where,
                                          path)
    return _vars(group, path)
