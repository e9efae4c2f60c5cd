"""A model's architecture as JSON with its weights in a file of their own.

Keras 2 code and packages often ship ``model.to_json()`` next to
``model.save_weights("w.h5")``; Keras 3 writes the same pair as ``model.to_json()``
(or the ``config.json`` of an unzipped .keras file) and ``model.weights.h5``:

- the JSON is the model object itself: {"class_name", "config", ...}, with
  "keras_version" in Keras 2's, and Keras 3's "module" / "registered_name";
- Keras 2's weights file is laid out as the ``model_weights`` group of a full .h5
  model (root attribute ``layer_names``; per layer, ``weight_names`` in order);
- Keras 3's is ``model.weights.h5`` of a .keras file (``layers/<name>/vars/<i>``).

The layout of the weights file decides how it is read, whatever its name.

May use: h5py, :mod:`minirnn.files` and its own modules.
"""

import io

from . import keras3, legacy_h5, safety
from .safety import fail

__all__ = ["read"]


def read(config_path, weights_path):
    """SavedModel from a JSON architecture file and its weights file."""
    from . import SavedModel
    data = safety.read_file(config_path, safety.LIMITS["json_bytes"], config_path)
    config = safety.parse_json(data, "the model JSON", config_path)
    if not isinstance(config, dict) or "class_name" not in config:
        raise fail(config_path, "the JSON is not a Keras model architecture (an object with "
                   "'class_name' and 'config', as model.to_json() writes it)")
    weights_data = safety.read_file(weights_path, safety.LIMITS["weights_bytes"], weights_path)
    if not weights_data.startswith(b"\x89HDF\r\n\x1a\n"):
        raise fail(weights_path, "the weights file is not an HDF5 file (Keras' save_weights "
                   f"writes .h5 / .weights.h5); it starts with {weights_data[:8]!r}")
    weights, version = _weights(weights_data, config, weights_path)
    version = config.get("keras_version") if isinstance(config.get("keras_version"), str) \
        else version
    keras3_json = "module" in config
    semantics = "keras3" if keras3_json or (version or "").startswith("3") else "keras2"
    model = {key: config[key] for key in ("class_name", "config", "module",
                                          "registered_name") if key in config}
    return SavedModel(model, weights, {"path": config_path, "format": "json",
                                       "weights": weights_path, "keras_version": version,
                                       "semantics": semantics})


def _weights(data, config, path):
    """({layer name: [arrays]}, the writer's keras_version or None)."""
    import h5py
    try:
        file = h5py.File(io.BytesIO(data), "r")
    except Exception as error:  # OSError for a corrupt or truncated file
        raise fail(path, f"not a readable HDF5 file ({error})") from None
    try:
        with file:
            safety.check_tree(file, path)
            version = legacy_h5._text(file.attrs.get("keras_version"), path)
            if "layer_names" in file.attrs or "layer_names0" in file.attrs:
                return legacy_h5._weights(file, path), version
            if "layers" in file:
                return keras3._layer_weights(file, config, path), version
            if "model_weights" in file:
                return legacy_h5._weights(file["model_weights"], path), version
            raise fail(path, "the HDF5 file holds no Keras weights: neither Keras 2's "
                       "'layer_names' attribute nor Keras 3's 'layers' group")
    except safety.FileFormatError:
        raise
    except Exception as error:  # h5py reports damage as KeyError, OSError, RuntimeError...
        raise fail(path, f"the HDF5 file is damaged ({type(error).__name__}: {error})") \
            from None
