"""What makes reading a model file safe: a file is data, never code.

- Class names are looked up in an allow-list (:data:`SUPPORTED`); no module named in
  a file is imported, and nothing is unpickled or unmarshalled (a Lambda's code is
  never even decoded).
- Sizes are checked before anything is read: zip members by their declared and real
  sizes (read in memory, never extracted), JSON by its length and nesting, HDF5
  datasets by their shape and dtype.
- HDF5 objects must be plain: soft and external links, external-storage and virtual
  datasets can point outside the file and are refused.

Every problem is a :class:`FileFormatError` (a ValueError) that names the file.

May use: numpy and h5py.
"""

import json
import math
import os

import numpy as np

__all__ = ["FileFormatError", "SUPPORTED", "LIMITS", "read_member", "read_file", "parse_json",
           "check_class", "check_objects", "custom_objects", "refusal", "read_dataset",
           "check_tree"]


class FileFormatError(ValueError):
    """A model file that is broken, truncated, hostile or not supported."""


# Layer classes minirnn reproduces (Keras 3 names; Keras 2 aliases in keras2 semantics).
SUPPORTED = (
    "InputLayer", "Embedding", "Masking", "LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional",
    "Dense", "TimeDistributed", "Dropout", "SpatialDropout1D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Activation",
    "RepeatVector", "Flatten", "Reshape", "Permute", "Concatenate", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Merge", "Conv1D", "MaxPooling1D",
    "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
    "BatchNormalization", "LayerNormalization", "CuDNNLSTM", "CuDNNGRU",
    # activation layers (minirnn.activation_blocks)
    "LeakyReLU", "ReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU", "UnitNormalization",
    # convolution, pooling, padding (minirnn.convolution)
    "SeparableConv1D", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "Conv2D",
    "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D", "GlobalMaxPooling2D",
    "GlobalAveragePooling2D",
    # attention (minirnn.attention)
    "Attention", "AdditiveAttention", "MultiHeadAttention",
)
# Older names Keras 2 files use for the same layers.
ALIASES = {
    "Convolution1D": "Conv1D", "MaxPool1D": "MaxPooling1D", "AvgPool1D": "AveragePooling1D",
    "AveragePooling1D": "AveragePooling1D", "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D", "LSTMV1": "LSTM", "GRUV1": "GRU",
    "CuDNNLSTM": "CuDNNLSTM", "CuDNNGRU": "CuDNNGRU", "Convolution2D": "Conv2D",
    "SeparableConvolution1D": "SeparableConv1D", "MaxPool2D": "MaxPooling2D",
    "AvgPool2D": "AveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
}
CELLS = ("LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells")
# Operations Keras 3 writes into Functional configs to compute masks.
MASK_OPS = ("NotEqual", "Equal", "Any", "All", "ExpandDims", "Squeeze", "ZerosLike",
            "OnesLike", "LogicalOr", "LogicalAnd", "LogicalNot", "Concatenate", "Cast",
            "BroadcastTo", "ConvertToTensor")

LIMITS = {
    "json_bytes": 64 * 2**20,     # config.json, model_config
    "json_depth": 200,            # nesting of JSON objects
    "metadata_bytes": 2**20,      # metadata.json
    "weights_bytes": 8 * 2**30,   # model.weights.h5 read into memory
    "dataset_elements": 2**31,    # one weight array
    "datasets": 100_000,          # objects walked in one HDF5 file
}


def fail(path, problem):
    """The error for ``path``: FileFormatError("<path>: <problem>"); without a path, a
    plain ValueError (the caller adds the path)."""
    if path is None:
        return ValueError(problem)
    return FileFormatError(f"{path}: {problem}")


def read_member(archive, name, limit, path):
    """The bytes of zip member ``name``, in memory, at most ``limit`` bytes.

    The declared size is checked first, then the real size while reading (a member
    whose header lies is cut off at limit + 1 bytes).
    """
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise fail(path, f"the archive has no {name!r}; it holds "
                   f"{sorted(archive.namelist())[:20]}") from None
    if info.file_size > limit:
        raise fail(path, f"{name!r} declares {info.file_size} bytes, over the limit of "
                   f"{limit}")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except Exception as error:  # zlib.error, BadZipFile, EOFError, NotImplementedError
        raise fail(path, f"cannot read {name!r} from the archive ({type(error).__name__}: "
                   f"{error})") from None
    if len(data) > limit:
        raise fail(path, f"{name!r} holds more than the limit of {limit} bytes")
    return data


def read_file(name, limit, path, shown=None):
    """The bytes of the file ``name``, at most ``limit`` of them (``shown`` names it in
    errors, default its base name). The size is checked before reading and the real
    length while reading (a file that grows is cut off at limit + 1 bytes)."""
    shown = shown or os.path.basename(name)
    size = os.path.getsize(name)
    if size > limit:
        raise fail(path, f"{shown} is {size} bytes, over the limit of {limit}")
    try:
        with open(name, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise fail(path, f"cannot read {shown} ({error})") from None
    if len(data) > limit:
        raise fail(path, f"{shown} holds more than the limit of {limit} bytes")
    return data


def _depth(value, limit):
    """Nesting depth of a parsed JSON value, checked iteratively against ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(data, what, path, limit=None):
    """Parse JSON bytes or text (``what`` names it in errors) with size and depth limits."""
    limit = LIMITS["json_bytes"] if limit is None else limit
    if isinstance(data, np.ndarray) and data.shape == ():
        data = data[()]
    if isinstance(data, np.bytes_):
        data = bytes(data)
    if not isinstance(data, (bytes, str)):
        raise fail(path, f"{what} must be JSON text; found {type(data).__name__}")
    if len(data) > limit:
        raise fail(path, f"{what} is {len(data)} bytes, over the limit of {limit}")
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise fail(path, f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise fail(path, f"{what} is not valid JSON ({error})") from None
    if _depth(value, LIMITS["json_depth"]) > LIMITS["json_depth"]:
        raise fail(path, f"{what} is nested deeper than {LIMITS['json_depth']} levels")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def check_class(class_name, where, path, allowed=SUPPORTED):
    """Refuse any class that is not on the allow-list, naming the layer."""
    if not isinstance(class_name, str):
        raise fail(path, f"{where} has a class_name that is not a string: {class_name!r}")
    if class_name in allowed or class_name in ALIASES:
        return ALIASES.get(class_name, class_name)
    reason = "it runs Python code stored in the file, which minirnn never executes" \
        if class_name == "Lambda" else "minirnn does not reproduce it"
    raise fail(path, f"{where} is of class {class_name!r}, which is not supported: {reason}. "
               f"Supported layers: {', '.join(SUPPORTED)}")


# Parts of a configuration that only training reads (the loss, metrics and optimizer,
# as Keras' load_model(compile=False) skips them): never inspected or deserialized,
# so a custom loss does not refuse a model that inference can run.
TRAINING_ONLY = ("compile_config", "training_config")


def custom_objects(config):
    """Every custom object anywhere in a configuration, as (layer, problem) pairs.

    Keras writes every object as {"module", "class_name", "registered_name", ...};
    built-in ones come from keras' own modules, with registered_name null (or the
    class name). Anything else was registered by user code, which minirnn does not
    have and will not import; a Lambda carries its code in the file. Walked
    iteratively, so depth cannot exhaust the stack; the training-only parts
    (:data:`TRAINING_ONLY`) are not walked.
    """
    found, seen = [], set()
    stack = [(config, "the model")]
    while stack:
        value, layer = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("name"), str) and "inbound_nodes" in value:
                layer = f"layer {value['name']!r}"
            elif isinstance(value.get("config"), dict) and \
                    isinstance(value["config"].get("name"), str):
                layer = f"layer {value['config']['name']!r}"
            module = value.get("module")
            registered = value.get("registered_name")
            class_name = value.get("class_name")
            problem = None
            if class_name == "Lambda":
                problem = (f"{layer} is of class 'Lambda', which is not supported: it runs "
                           "Python code stored in the file, which minirnn never executes")
            elif "class_name" in value and (
                    (module is not None and not (isinstance(module, str) and (
                        module == "keras" or module.startswith(("keras.", "tf_keras"))))) or
                    (registered is not None and registered != class_name)):
                problem = (f"{layer} uses the custom object {class_name!r} (module "
                           f"{module!r}, registered as {registered!r}): custom objects are "
                           "Python code, which minirnn never imports or runs")
            if problem is not None and problem not in seen:
                seen.add(problem)
                found.append((layer, problem))
            stack.extend((v, layer) for k, v in value.items() if k not in TRAINING_ONLY)
        elif isinstance(value, list):
            stack.extend((v, layer) for v in value)
    found.reverse()  # the walk pops the last item first: report in file order
    return found


def refusal(path, problems):
    """One error that lists every problem (strings), so that a user sees at once all
    that a model needs and minirnn does not reproduce."""
    if len(problems) == 1:
        return fail(path, f"{problems[0]}. Supported layers: {', '.join(SUPPORTED)}")
    lines = "\n".join(f"  - {p}" for p in problems)
    return fail(path, f"the model uses {len(problems)} things minirnn does not reproduce:\n"
                f"{lines}\nSupported layers: {', '.join(SUPPORTED)}")


def check_objects(config, path):
    """Refuse custom objects anywhere in a configuration, naming every layer that
    uses one (see :func:`custom_objects`)."""
    found = custom_objects(config)
    if found:
        raise refusal(path, [problem for _, problem in found])


def _link_kind(group, name):
    import h5py
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.HardLink):
        return "hard"
    if isinstance(link, h5py.SoftLink):
        return "soft"
    if isinstance(link, h5py.ExternalLink):
        return "external"
    return "unknown"


def check_tree(root, path):
    """Walk an HDF5 group: only hard links, plain datasets and plain attributes.

    Refuses soft and external links (they can point anywhere), datasets stored
    outside the file or assembled from others (external storage, virtual datasets),
    and more than LIMITS["datasets"] objects.
    """
    import h5py
    stack = [root]
    seen = 0
    while stack:
        group = stack.pop()
        for name in group.keys():
            seen += 1
            if seen > LIMITS["datasets"]:
                raise fail(path, f"the HDF5 file holds more than {LIMITS['datasets']} objects")
            kind = _link_kind(group, name)
            if kind != "hard":
                raise fail(path, f"HDF5 object {group.name}/{name} is a {kind} link; only "
                           "plain objects inside the file are read")
            item = group[name]
            if isinstance(item, h5py.Group):
                stack.append(item)
            elif isinstance(item, h5py.Dataset):
                _check_dataset_storage(item, path)


def _check_dataset_storage(dataset, path):
    if dataset.is_virtual:
        raise fail(path, f"HDF5 dataset {dataset.name} is a virtual dataset (assembled from "
                   "other files); refused")
    if dataset.id.get_create_plist().get_external_count() > 0:
        raise fail(path, f"HDF5 dataset {dataset.name} is stored in an external file; refused")


def read_dataset(dataset, path):
    """A weight array out of an HDF5 dataset: numeric, of a sane size, in the file."""
    _check_dataset_storage(dataset, path)
    dtype = dataset.dtype
    if dtype.kind not in "fiub" or dtype.itemsize > 8:
        raise fail(path, f"HDF5 dataset {dataset.name} has dtype {dtype}; weights must be "
                   "real numbers")
    shape = dataset.shape
    if shape is None or any(n < 0 for n in shape):
        raise fail(path, f"HDF5 dataset {dataset.name} has no valid shape")
    size = math.prod(shape)
    if size > LIMITS["dataset_elements"]:
        raise fail(path, f"HDF5 dataset {dataset.name} has {size} elements, over the limit of "
                   f"{LIMITS['dataset_elements']}")
    try:
        array = dataset[()]
    except Exception as error:  # truncated or corrupt storage
        raise fail(path, f"cannot read HDF5 dataset {dataset.name} ({type(error).__name__}: "
                   f"{error})") from None
    array = np.asarray(array)
    if array.shape != tuple(shape):
        raise fail(path, f"HDF5 dataset {dataset.name} read with shape {array.shape}, "
                   f"declared {shape}")
    return array
