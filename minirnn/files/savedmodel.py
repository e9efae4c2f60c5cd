"""tf.keras 2.x SavedModel folders (``model.save("folder")`` in TensorFlow 2.x Keras
and tf-keras), read without TensorFlow.

The folder holds::

    saved_model.pb       the TensorFlow graph and object graph (not read, see below)
    keras_metadata.pb    Keras' configuration of the model and of each layer
    variables/variables.index, variables/variables.data-00000-of-00001 (or more shards)
    fingerprint.pb, assets/

``keras_metadata.pb`` is a ``SavedMetadata`` message: repeated ``SavedObject`` nodes
{node_id 2, node_path 3, identifier 4, metadata 5 (JSON text)}. The node with path
"root" and identifier "_tf_keras_network" (Functional), "_tf_keras_sequential" or
"_tf_keras_model" holds the model: its JSON has "model_config" ({"class_name",
"config"}, what an .h5 file stores as model_config) and "keras_version". The layers
of ``model.layers`` are the nodes "root.layer-K" (or "root.layer_with_weights-N" for
the N-th layer that has weights); their JSON has the layer's "name" and
"class_name". TensorFlow 2.0 to 2.4 wrote no keras_metadata.pb; there the same JSON
is the ``metadata`` of each object's ``user_object`` in saved_model.pb, which is then
read instead (only the object graph; the graph of operations is skipped).

The variables are a checkpoint bundle (:mod:`minirnn.files.bundle`) whose tensor
"_CHECKPOINTABLE_OBJECT_GRAPH" is a ``TrackableObjectGraph``: node 0 is the model, and
every node lists its children {node_id, local_name} and, for a variable, its
attributes {name "VARIABLE_VALUE", full_name, checkpoint_key}, the key of its
tensor in the bundle. The checkpoint's objects are named like the metadata's node
paths, so "root.layer-3" is child "layer-3" of node 0.

Which arrays, in which order: Keras saves each layer with a child named "variables",
a list (children "0", "1", ...) of ``layer.variables``, which is ``layer.weights``:
the order of ``layer.get_weights()`` (LSTM kernel, recurrent_kernel, bias;
Bidirectional forward then backward; BatchNormalization gamma, beta, moving_mean,
moving_variance; TimeDistributed its inner layer's). That list is read for every
layer. A folder saved with ``save_traces=False`` has no such lists; there the order
comes from the layer's structure (:func:`tracked_variables`). The variables of the
optimizer (its slots and step count) and of metrics are never reached from a layer
and are ignored.

May use: :mod:`minirnn.files` and its own modules.
"""

import os
import re

from . import bundle, protobuf, safety
from .protobuf import Field, Message
from .safety import fail

__all__ = ["is_savedmodel", "read_folder", "LIMITS"]

LIMITS = {
    "metadata_bytes": safety.LIMITS["json_bytes"],  # keras_metadata.pb
    "saved_model_bytes": 2**31,                      # saved_model.pb, read only if needed
    "folder_entries": 100_000,                       # files and folders walked
}

_SAVED_OBJECT = Message("SavedObject", {2: Field("node_id", "int32"),
                                        3: Field("node_path", "string"),
                                        4: Field("identifier", "string"),
                                        5: Field("metadata", "string")})
_SAVED_METADATA = Message("SavedMetadata", {1: Field("nodes", "message", True, _SAVED_OBJECT)})

_REFERENCE = Message("ObjectReference", {1: Field("node_id", "int32"),
                                         2: Field("local_name", "string")})
_SERIALIZED_TENSOR = Message("SerializedTensor", {1: Field("name", "string"),
                                                  2: Field("full_name", "string"),
                                                  3: Field("checkpoint_key", "string")})
_TRACKABLE = Message("TrackableObject", {
    1: Field("children", "message", True, _REFERENCE),
    2: Field("attributes", "message", True, _SERIALIZED_TENSOR)})
_OBJECT_GRAPH = Message("TrackableObjectGraph", {1: Field("nodes", "message", True, _TRACKABLE)})

# saved_model.pb, for folders written before keras_metadata.pb existed.
_USER_OBJECT = Message("SavedUserObject", {1: Field("identifier", "string"),
                                           3: Field("metadata", "string")})
_GRAPH_OBJECT = Message("SavedObject", {1: Field("children", "message", True, _REFERENCE),
                                        4: Field("user_object", "message", False,
                                                 _USER_OBJECT)})
_SAVED_OBJECT_GRAPH = Message("SavedObjectGraph", {
    1: Field("nodes", "message", True, _GRAPH_OBJECT)})
_META_GRAPH = Message("MetaGraphDef", {7: Field("object_graph_def", "message", False,
                                                _SAVED_OBJECT_GRAPH)})
_SAVED_MODEL = Message("SavedModel", {2: Field("meta_graphs", "message", True, _META_GRAPH)})

MODEL_IDENTIFIERS = ("_tf_keras_network", "_tf_keras_sequential", "_tf_keras_model")
_LAYER_CHILD = re.compile(r"layer(_with_weights)?-[0-9]+")
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def is_savedmodel(path):
    """Whether the folder ``path`` is a SavedModel (it holds saved_model.pb)."""
    return os.path.lexists(os.path.join(path, "saved_model.pb"))


def read_folder(path):
    """Read a tf.keras SavedModel folder: configuration, weights, writer."""
    from . import SavedModel
    _check_folder(path)
    _regular_file(path, "saved_model.pb")
    nodes = _metadata_nodes(path)
    root = [node for node in nodes if node["node_path"] == "root"]
    if len(root) != 1:
        raise fail(path, f"the Keras metadata has {len(root)} root nodes; expected one")
    root = root[0]
    if root["identifier"] not in MODEL_IDENTIFIERS:
        raise fail(path, "the SavedModel's root object is not a Keras model (its identifier "
                   f"is {root['identifier']!r}; expected one of "
                   f"{', '.join(MODEL_IDENTIFIERS)}): minirnn reads the SavedModel folders "
                   "that tf.keras model.save() writes")
    metadata = _json_object(root["metadata"], "the model's Keras metadata", path)
    config = _model_config(metadata, root["identifier"], path)
    layers = _layer_children(nodes, path)
    variables = bundle.Bundle(os.path.join(path, "variables", "variables"), path)
    graph = _object_graph(variables, path)
    model = _children(graph, 0, "the model", path)
    weights = {}
    for name, class_name in _config_layers(config, path):
        if name not in layers:
            if class_name == "InputLayer":  # a Sequential's input is not in model.layers
                weights[name] = []
                continue
            raise fail(path, f"the Keras metadata has no node for layer {name!r} of the "
                       "configuration")
        child, saved_class = layers[name]
        if saved_class is not None and saved_class != class_name:
            raise fail(path, f"layer {name!r} is a {class_name} in the configuration but a "
                       f"{saved_class} in the metadata")
        weights[name] = _layer_weights(graph, model, child, name, variables, path)
    version = metadata.get("keras_version")
    return SavedModel(config, weights, {
        "path": path, "format": "savedmodel",
        "keras_version": version if isinstance(version, str) else None,
        "semantics": "keras2"})


# ---- the folder ------------------------------------------------------------------

def _check_folder(path):
    """Refuse symbolic links anywhere inside the folder (they can point anywhere);
    at most LIMITS["folder_entries"] files and folders are walked."""
    stack, seen = [path], 0
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            raise fail(path, f"cannot list {os.path.relpath(folder, path)} ({error})") \
                from None
        for entry in entries:
            seen += 1
            if seen > LIMITS["folder_entries"]:
                raise fail(path, f"the folder holds more than {LIMITS['folder_entries']} "
                           "files and folders")
            shown = os.path.relpath(entry.path, path)
            if entry.is_symlink():
                raise fail(path, f"{shown} is a symbolic link; refused (a SavedModel "
                           "folder must hold its files itself)")
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def _regular_file(path, name):
    member = os.path.join(path, name)
    if not os.path.isfile(member):
        raise fail(path, f"the SavedModel folder has no {name}")
    return member


def _read(path, name, limit):
    return safety.read_file(_regular_file(path, name), limit, path, name)


# ---- Keras' metadata -------------------------------------------------------------

def _metadata_nodes(path):
    """[{"node_path", "identifier", "metadata"}] from keras_metadata.pb, or from the
    object graph in saved_model.pb where the folder is older than that file."""
    if os.path.lexists(os.path.join(path, "keras_metadata.pb")):
        data = _read(path, "keras_metadata.pb", LIMITS["metadata_bytes"])
        return protobuf.parse(data, _SAVED_METADATA, path, "keras_metadata.pb")["nodes"]
    data = _read(path, "saved_model.pb", LIMITS["saved_model_bytes"])
    saved = protobuf.parse(data, _SAVED_MODEL, path, "saved_model.pb")
    graphs = [m["object_graph_def"] for m in saved["meta_graphs"] if m["object_graph_def"]]
    if not graphs or not graphs[0]["nodes"]:
        raise fail(path, "the folder has no keras_metadata.pb, and saved_model.pb holds no "
                   "object graph: not a SavedModel that Keras wrote")
    objects = graphs[0]["nodes"]

    def node(index, node_path):
        user = objects[index]["user_object"] or {"identifier": "", "metadata": ""}
        return {"node_path": node_path, "identifier": user["identifier"],
                "metadata": user["metadata"]}

    nodes = [node(0, "root")]
    for child in objects[0]["children"]:
        if _LAYER_CHILD.fullmatch(child["local_name"]):
            if not 0 <= child["node_id"] < len(objects):
                raise fail(path, f"saved_model.pb: object {child['local_name']!r} of the "
                           f"model refers to object {child['node_id']}, which does not exist")
            nodes.append(node(child["node_id"], "root." + child["local_name"]))
    if not nodes[0]["metadata"]:
        raise fail(path, "the folder has no keras_metadata.pb, and saved_model.pb holds no "
                   "Keras metadata: not a SavedModel that Keras wrote")
    return nodes


def _json_object(text, what, path):
    value = safety.parse_json(text, what, path)
    if not isinstance(value, dict):
        raise fail(path, f"{what} must be a JSON object")
    return value


def _plain(value):
    """The JSON an .h5 file would hold: Keras' SavedModel metadata writes tuples as
    {"class_name": "__tuple__", "items": [...]}, shapes as {"class_name":
    "TensorShape", "items": [...] or null} and bytes as {"class_name": "__bytes__",
    "value": text}; they become lists and text. (Depth is bounded by parse_json.)"""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("class_name")
    if kind in ("__tuple__", "TensorShape") and set(value) == {"class_name", "items"} and \
            (isinstance(value["items"], list) or
             (kind == "TensorShape" and value["items"] is None)):
        return None if value["items"] is None else [_plain(v) for v in value["items"]]
    if kind == "__bytes__" and set(value) == {"class_name", "value"} and \
            isinstance(value["value"], str):
        return value["value"]
    return {k: _plain(v) for k, v in value.items()}


def _model_config(metadata, identifier, path):
    """The model's {"class_name", "config"}: "model_config" as Keras writes it, else
    the class name and the configuration beside it; in plain JSON (:func:`_plain`)."""
    if identifier == "_tf_keras_model" and metadata.get("is_graph_network") is False:
        raise fail(path, "the SavedModel holds a subclassed Keras model: its layers are "
                   "connected by Python code, which minirnn never has or runs; only "
                   "Sequential and Functional models can be read")
    config = metadata.get("model_config")
    if isinstance(config, dict) and isinstance(config.get("config"), dict):
        return _plain(config)
    if isinstance(metadata.get("class_name"), str) and isinstance(metadata.get("config"), dict):
        return _plain({"class_name": metadata["class_name"], "config": metadata["config"]})
    raise fail(path, "the model's Keras metadata has no model configuration")


def _layer_children(nodes, path):
    """{layer name: (the model's child in the checkpoint, class name or None)} from the
    metadata of the nodes "root.layer-K" and "root.layer_with_weights-N"."""
    layers = {}
    for node in nodes:
        parts = node["node_path"].split(".")
        if len(parts) != 2 or parts[0] != "root" or not _LAYER_CHILD.fullmatch(parts[1]):
            continue
        metadata = _json_object(node["metadata"], f"the Keras metadata of {node['node_path']}",
                                path)
        name = metadata.get("name")
        if not isinstance(name, str):
            raise fail(path, f"the Keras metadata of {node['node_path']} has no layer name")
        if name in layers and layers[name][0] != parts[1]:
            raise fail(path, f"the Keras metadata has two layers named {name!r}")
        class_name = metadata.get("class_name")
        layers[name] = (parts[1], class_name if isinstance(class_name, str) else None)
    return layers


def _config_layers(config, path):
    """[(name, class name)] of the configuration's layers, in order."""
    layers = config["config"].get("layers")
    if not isinstance(layers, list):
        raise fail(path, "the model configuration has no list of 'layers'")
    result = []
    for k, layer in enumerate(layers):
        inner = layer.get("config") if isinstance(layer, dict) else None
        if not isinstance(inner, dict):
            raise fail(path, f"layer {k} of the configuration is not a JSON object with a "
                       "'config' object")
        name = inner.get("name", layer.get("name"))
        if not isinstance(name, str):
            raise fail(path, f"layer {k} of the configuration has no name")
        result.append((name, layer.get("class_name")))
    return result


# ---- the checkpoint's object graph -----------------------------------------------

def _object_graph(variables, path):
    if GRAPH_KEY not in variables:
        raise fail(path, f"the checkpoint has no {GRAPH_KEY}: not an object-based "
                   "checkpoint")
    values = variables.strings(GRAPH_KEY)
    if len(values) != 1:
        raise fail(path, f"{GRAPH_KEY} must hold one string; it holds {len(values)}")
    nodes = protobuf.parse(values[0], _OBJECT_GRAPH, path, f"the checkpoint's {GRAPH_KEY}")
    nodes = nodes["nodes"]
    if not nodes:
        raise fail(path, f"the checkpoint's {GRAPH_KEY} has no objects")
    return nodes


def _children(graph, node, where, path):
    """{local name: node} of the children of ``graph[node]`` (the first of a name)."""
    children = {}
    for reference in graph[node]["children"]:
        target = reference["node_id"]
        if not 0 <= target < len(graph):
            raise fail(path, f"the checkpoint's object graph: {where} refers to object "
                       f"{target}, which does not exist")
        children.setdefault(reference["local_name"], target)
    return children


def _layer_weights(graph, model, child, name, variables, path):
    """The arrays of the layer that is the model's child ``child`` (``model`` holds the
    model's children) in get_weights() order: its "variables" list where the folder
    has one, else the variables found by :func:`tracked_variables`."""
    where = f"layer {name!r}"
    if child not in model:
        raise fail(path, f"the checkpoint has no object {child!r} for layer {name!r}")
    layer = model[child]
    nodes = listed_variables(graph, layer, where, path)
    if nodes is None:
        nodes = tracked_variables(graph, layer, where, path)
    arrays = []
    for k, node in enumerate(nodes):
        keys = [attribute["checkpoint_key"] for attribute in graph[node]["attributes"]
                if attribute["name"] == "VARIABLE_VALUE"]
        if len(keys) != 1:
            raise fail(path, f"variable {k} of {where} has no saved value in the checkpoint")
        array = variables.tensor(keys[0])
        if array.dtype.kind != "f":
            raise fail(path, f"variable {k} of {where} holds {array.dtype} values; weights "
                       "must be floating point")
        arrays.append(array)
    return arrays


def listed_variables(graph, layer, where, path):
    """The nodes of the variables of ``graph[layer]`` in the order of its child
    "variables" (items "0", "1", ...: ``layer.variables``, which is ``layer.weights``),
    or None where the layer has no such list."""
    listed = _children(graph, layer, where, path).get("variables")
    if listed is None:
        return None
    order = {}
    for reference in graph[listed]["children"]:
        number = reference["local_name"]
        if not re.fullmatch("[0-9]{1,9}", number) or int(number) in order:
            raise fail(path, f"the variables of {where} are not a list in the checkpoint's "
                       f"object graph (an item is named {number[:40]!r})")
        order[int(number)] = reference["node_id"]
    if sorted(order) != list(range(len(order))):
        raise fail(path, f"the list of variables of {where} has gaps: {sorted(order)[:10]}")
    nodes = [order[k] for k in range(len(order))]
    for k, node in enumerate(nodes):
        if not 0 <= node < len(graph):
            raise fail(path, f"the checkpoint's object graph: variable {k} of {where} refers "
                       f"to object {node}, which does not exist")
    return nodes


# Where the layers minirnn reads keep their nested layers: RNN cells, a
# StackedRNNCells' list, a wrapper's layers, MultiHeadAttention's projections.
NESTED = ("cell", "cells", "forward_layer", "backward_layer", "layer", "_query_dense",
          "_key_dense", "_value_dense", "_output_dense")
_NESTING = 8


def tracked_variables(graph, layer, where, path):
    """The variables of ``graph[layer]`` found from its structure, for folders saved
    without the "variables" lists (``model.save(..., save_traces=False)``).

    A layer's children come in the order they were tracked, which for variables is
    the order ``add_weight`` created them; ``layer.weights`` is the trainable ones,
    then the non-trainable ones, each the layer's own before its nested layers'. In
    the layers minirnn reads, either a layer has variables of its own and no nested
    layers, or the reverse, and the non-trainable ones (BatchNormalization's moving
    mean and variance) come after the trainable ones: so the order is the layer's own
    variables, then those of its nested layers (:data:`NESTED`, and the items of a
    list), depth first. Other children (a random generator, an RNN's states) do not
    belong to ``layer.weights`` and are not followed. The tests check this against
    the "variables" lists of folders that have them."""
    found, seen = [], set()
    _collect(graph, layer, where, path, 0, False, found, seen)
    return found


def _collect(graph, layer, where, path, depth, listed, found, seen):
    """Depth first: the own variables of ``graph[layer]``, then its nested layers'
    (each object visited once, so that a cyclic graph ends)."""
    if depth > _NESTING:
        raise fail(path, f"the layers inside {where} are nested deeper than {_NESTING} "
                   "levels")
    seen.add(layer)
    nested = []
    for name, node in _children(graph, layer, where, path).items():
        if any(a["name"] == "VARIABLE_VALUE" for a in graph[node]["attributes"]):
            if node not in seen:
                seen.add(node)
                found.append(node)
        elif name in NESTED or (listed and re.fullmatch("[0-9]{1,9}", name)):
            nested.append((name, node))
    for name, node in nested:
        if node not in seen:
            _collect(graph, node, f"{where}.{name}", path, depth + 1, name == "cells", found,
                     seen)
