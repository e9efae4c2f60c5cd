"""What the commands on saved models share: loading a model file, reading input
arrays from .npy / .npz files, and naming the recurrent layers.

Every problem with a file the user named (a model minirnn cannot load, inputs that
do not fit it) becomes a :class:`CommandError` (exit 2) naming the file and the
reason; nothing here imports TensorFlow or Keras.

May use: numpy, :mod:`minirnn.bidirectional`, :mod:`minirnn.bitwise`,
:mod:`minirnn.layers`, :mod:`minirnn.model`, :mod:`minirnn.recurrent` and its own
modules.
"""

import os
import zipfile

import numpy as np

from ..bitwise import BitwiseUnsupportedError
from ..bidirectional import Bidirectional
from ..layers import GRU, LSTM, SimpleRNN
from . import limits
from .common import CommandError

__all__ = ["load", "read_inputs", "check_inputs", "run_model", "recurrent_layers",
           "outputs_list", "describe_inputs"]


def load(path, **options):
    """minirnn.load_model(path, **options); CommandError when it is refused."""
    from ..model import load_model

    try:
        return load_model(path, **options)
    except BitwiseUnsupportedError as error:
        raise CommandError(f"--bitwise cannot run {path!r}: {error}")
    except (ValueError, TypeError) as error:  # FileFormatError is a ValueError
        text = str(error)
        raise CommandError(text if path in text else f"cannot load {path!r}: {text}")


def _load_arrays(path):
    """The arrays of a .npy (one) or .npz (several, by name) file, in file order."""
    size = os.path.getsize(path)
    budget, how = limits.memory_budget()
    if size > budget:
        raise CommandError(f"cannot read {path!r}: {limits.human_bytes(size)} is more than "
                           f"the {limits.human_bytes(budget)} allowed ({how})")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return None, [loaded]
        with loaded:
            names = list(loaded.files)
            return names, [loaded[name] for name in names]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise CommandError(f"cannot read {path!r} as NumPy arrays (.npy or .npz): "
                           f"{type(error).__name__}: {error}")


def read_inputs(path, model):
    """The model's inputs from ``path``: a .npy array for a model with one input, or
    a .npz holding one array per input, by input name or (names not matching) in
    the order of the inputs. Returns a list of arrays in the model's input order."""
    names, arrays = _load_arrays(path)
    wanted = list(model.input_names)
    if names is None:
        if len(wanted) != 1:
            raise CommandError(
                f"{path!r} holds one array, but the model has {len(wanted)} inputs "
                f"{wanted}: give a .npz with one array per input, by name")
        return arrays
    by_name = dict(zip(names, arrays))
    if all(name in by_name for name in wanted):
        return [by_name[name] for name in wanted]
    if len(arrays) == len(wanted):
        return arrays
    raise CommandError(
        f"{path!r} holds the arrays {names}; expected the model's inputs {wanted}, by name "
        f"or {len(wanted)} array(s) in order")


def check_inputs(model, arrays, where, any_length=False):
    """Raise CommandError unless ``arrays`` fit ``model.input_specs``: numbers, the
    rank and the fixed sizes of each input, one batch size for all. ``any_length``:
    the time axis (axis 1) may have any length, for a stream cut into slices."""
    for array, spec in zip(arrays, model.input_specs):
        name, shape = spec["name"], tuple(spec["shape"])
        if any_length and len(shape) > 1:
            shape = (shape[0], None) + shape[2:]
        expected = "(" + ", ".join("None" if n is None else str(n) for n in shape) + ")"
        if array.dtype.kind not in "biuf":
            raise CommandError(f"the input {name!r} from {where} must hold numbers; "
                               f"received dtype {array.dtype}")
        if array.ndim != len(shape) or any(
                n is not None and n != m for n, m in zip(shape[1:], array.shape[1:])):
            raise CommandError(f"the input {name!r} from {where} must have shape {expected} "
                               f"(None: any size); received {tuple(array.shape)}")
        if array.shape[0] == 0:
            raise CommandError(f"the input {name!r} from {where} has no samples (batch 0)")
    batches = sorted({a.shape[0] for a in arrays})
    if len(batches) > 1:
        raise CommandError(f"the inputs from {where} must have one batch size; received "
                           f"{[a.shape[0] for a in arrays]}")


def run_model(what, where):
    """Call ``what()`` (the model on inputs from ``where``); a ValueError or TypeError
    that the model raises about the inputs becomes a CommandError."""
    try:
        return what()
    except (ValueError, TypeError) as error:
        raise CommandError(f"the model cannot run on the inputs from {where}: {error}")


def outputs_list(result):
    """A model's result as a list of arrays (one per output)."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def recurrent_layers(model):
    """[(name, layer)] of the model's recurrent layers, in order: LSTM, GRU,
    SimpleRNN, Bidirectional, and RNN of stacked cells."""
    from ..recurrent import StackedRNN

    kinds = (LSTM, GRU, SimpleRNN, Bidirectional, StackedRNN)
    return [(getattr(layer, "name", None), layer) for layer in model.layers
            if isinstance(layer, kinds)]


def describe_inputs(model, arrays):
    """'input_1 (4, 6, 3) float32, tokens (4, 6) int32'."""
    return ", ".join(f"{name} {tuple(a.shape)} {a.dtype}"
                     for name, a in zip(model.input_names, arrays))
