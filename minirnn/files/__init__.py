"""Reading saved Keras models: data in, configuration and arrays out.

:func:`read` opens a Keras 3 ``.keras`` file (a zip, or the folder it unzips to) or
a legacy ``.h5`` full-model file and returns a :class:`SavedModel`: the model's
configuration (plain JSON data), every layer's weights as NumPy arrays in Keras'
``get_weights()`` order, keyed by layer name, and where the file came from. Nothing
in a file is imported, unpickled or executed (see :mod:`minirnn.files.safety`), and
the reading runs in a child process where the platform can fork
(:mod:`minirnn.files.isolation`), so that a file which crashes the HDF5 library
gives an error instead.

May use: its own modules.
"""

import os
import zipfile
from dataclasses import dataclass, field

from .safety import FileFormatError

__all__ = ["read", "SavedModel", "FileFormatError"]


@dataclass
class SavedModel:
    """A model file's content: ``config`` is the model object ({"class_name",
    "config", ...}); ``weights`` maps a layer name to its arrays; ``source`` is
    {"path", "format", "keras_version", "semantics"}."""

    config: dict
    weights: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)


def read(path, weights=None):
    """Read ``path`` (a .keras zip, its unzipped folder, or an .h5 full-model file);
    with ``weights``, ``path`` is the model's JSON architecture and ``weights`` its
    weights file (Keras 2 ``save_weights`` .h5 or Keras 3 ``.weights.h5``)."""
    path = _path(path, "path")
    if weights is not None:
        weights = _path(weights, "weights")
        if not os.path.isfile(path):
            raise FileFormatError(f"{path}: with `weights`, `path` must be the model's JSON "
                                  "file (model.to_json())")
        from . import json_weights
        from .isolation import run_isolated
        return run_isolated(lambda config: json_weights.read(config, weights), path)
    if path.lower().endswith(".json") and os.path.isfile(path):
        raise FileFormatError(f"{path}: a model JSON holds the architecture only: pass its "
                              "weights file too, load_model(path, weights='...h5')")
    from .isolation import run_isolated
    return run_isolated(_read, path)


def _path(value, name):
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a file path (str or os.PathLike); received "
                        f"{type(value).__name__}.")
    value = os.fspath(value)
    if not os.path.exists(value):
        raise FileFormatError(f"{value}: no such file or folder")
    return value


def _read(path):
    if os.path.isdir(path):
        from . import savedmodel
        if savedmodel.is_savedmodel(path):  # tf.keras 2.x model.save("folder")
            return savedmodel.read_folder(path)
        from . import keras3
        return keras3.read_folder(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: no such file or folder")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        from . import legacy_h5
        return legacy_h5.read(path)
    if head.startswith(b"PK") or zipfile.is_zipfile(path):
        from . import keras3
        return keras3.read_zip(path)
    raise FileFormatError(
        f"{path}: not a Keras model file: expected a .keras zip (starts with 'PK'), its "
        f"unzipped folder, or an HDF5 .h5 file; the file starts with {head!r}")
