"""Legacy HDF5 full-model files (``model.save("m.h5")``): Keras 2.x, tf.keras 2.x and
Keras 3's legacy saver.

The root attribute ``model_config`` holds the configuration as JSON; the group
``model_weights`` holds one group per layer name whose attribute ``weight_names``
lists its datasets in get_weights() order (that order is trusted, not the dataset
names). Attributes over 64 KB are split into ``name0``, ``name1``, ...

May use: numpy, h5py, :mod:`minirnn.files` and its own modules.
"""

import numpy as np

from . import safety
from .safety import fail

__all__ = ["read"]


def read(path):
    """Read a legacy .h5 full-model file: configuration, weights, writer."""
    import h5py

    from . import SavedModel
    try:
        file = h5py.File(path, "r")
    except Exception as error:  # OSError for a corrupt or truncated file
        raise fail(path, f"not a readable HDF5 file ({error})") from None
    try:
        with file:
            safety.check_tree(file, path)
            if "model_config" not in file.attrs:
                raise fail(path, "the HDF5 file has no 'model_config' attribute: it holds "
                           "weights only (save the whole model, or use a .keras file)")
            config = safety.parse_json(file.attrs["model_config"], "model_config", path)
            version = _text(file.attrs.get("keras_version"), path)
            if "model_weights" not in file:
                raise fail(path, "the HDF5 file has no 'model_weights' group")
            weights = _weights(file["model_weights"], path)
    except safety.FileFormatError:
        raise
    except Exception as error:  # h5py reports damage as KeyError, OSError, RuntimeError...
        raise fail(path, f"the HDF5 file is damaged ({type(error).__name__}: {error})") \
            from None
    semantics = "keras3" if version is not None and version.startswith("3") else "keras2"
    return SavedModel(config, weights, {"path": path, "format": "h5",
                                        "keras_version": version, "semantics": semantics})


def _text(value, path):
    """An attribute that holds text, as any h5py wrote it: a variable-length string
    (str, h5py 3), a fixed-length one (``numpy.bytes_``, h5py 2.x, every Keras 2
    file before about 2021), plain bytes, or a 0-d array of one of those."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.shape != ():
            raise fail(path, f"an attribute that should be text is an array of shape "
                       f"{value.shape}")
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise fail(path, "an attribute that should be text is not UTF-8") from None
    if isinstance(value, str):
        return str(value)
    raise fail(path, f"an attribute that should be text holds {type(value).__name__}")


def _names(group, attribute, path):
    """A list-of-names attribute, joined from its 64 KB chunks if it was split."""
    if attribute in group.attrs:
        values = _list(group.attrs[attribute], attribute, path)
    else:
        values, k = [], 0
        while f"{attribute}{k}" in group.attrs:
            values += _list(group.attrs[f"{attribute}{k}"], attribute, path)
            k += 1
        if k == 0:
            raise fail(path, f"HDF5 group {group.name} has no attribute {attribute!r}")
    return [_text(v, path) for v in values]


def _list(value, attribute, path):
    """A list-of-names attribute: a 1-D array of strings (h5py 3: object strings;
    h5py 2.x: fixed-length ``S`` strings); an empty list may come as an empty
    float array (h5py writes [] so)."""
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise fail(path, f"attribute {attribute!r} must be a list of names; found "
                   f"{type(value).__name__} {getattr(value, 'shape', '')}")
    if value.size == 0:
        return []
    if value.dtype.kind not in "OSU":
        raise fail(path, f"attribute {attribute!r} must hold names; found dtype {value.dtype}")
    return list(value)


def _weights(group, path):
    weights = {}
    for name in _names(group, "layer_names", path):
        if name not in group:
            raise fail(path, f"no weights group for layer {name!r} in model_weights")
        layer = group[name]
        arrays = []
        for weight_name in _names(layer, "weight_names", path):
            if weight_name not in layer:
                raise fail(path, f"layer {name!r} lists weight {weight_name!r}, which is "
                           "not in the file")
            arrays.append(safety.read_dataset(layer[weight_name], path))
        weights[name] = arrays
    return weights
