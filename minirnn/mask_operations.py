"""The NumPy operations Keras 3 records in a model's configuration to compute masks.

Keras 3 writes an explicit mask as the operations that make it, e.g.
``not_equal(x, 0)`` for an Embedding with mask_zero and ``any(not_equal(x, v), -1)``
for Masking; a model runs them as :class:`MaskOperation` calls (the allowed ones:
``minirnn.files.safety.MASK_OPS``). Their outputs carry no mask.

May use: numpy and :mod:`minirnn.files.safety` (the allowed operations).
"""

import numpy as np

from .files.safety import MASK_OPS

__all__ = ["MaskOperation"]


def _axis(config, default=None):
    axis = config.get("axis", default)
    if axis is not None and not (isinstance(axis, int) and not isinstance(axis, bool)) and \
            not (isinstance(axis, list) and all(isinstance(a, int) for a in axis)):
        raise ValueError(f"a mask operation has an invalid axis {axis!r}")
    return tuple(axis) if isinstance(axis, list) else axis


class MaskOperation:
    """One of the NumPy operations Keras 3 records to compute masks, e.g.
    ``not_equal(x, 0)`` for Embedding(mask_zero=True) and ``any(not_equal(x, v), -1)``
    for Masking. Its output carries no mask."""

    uses_mask = False
    merges = False

    def __init__(self, name, class_name, config):
        self.name, self.keras_class, self.config = name, class_name, config
        self.where = f"operation {name!r} ({class_name})"
        if class_name not in MASK_OPS:
            raise ValueError(f"{self.where}: this operation is not supported in a model "
                             f"graph; supported operations: {', '.join(MASK_OPS)}.")

    def count_params(self):
        return 0

    def __call__(self, x, constants):
        op, c = self.keras_class, self.config
        arguments = [np.asarray(v) if not isinstance(v, list) else v for v in [x, *constants]]
        if op == "NotEqual":
            return np.not_equal(arguments[0], arguments[1])
        if op == "Equal":
            return np.equal(arguments[0], arguments[1])
        if op in ("Any", "All"):
            reduce = np.any if op == "Any" else np.all
            return reduce(arguments[0], axis=_axis(c), keepdims=bool(c.get("keepdims", False)))
        if op == "ExpandDims":
            return np.expand_dims(arguments[0], _axis(c, -1))
        if op == "Squeeze":
            return np.squeeze(arguments[0], _axis(c))
        if op in ("ZerosLike", "OnesLike"):
            make = np.zeros_like if op == "ZerosLike" else np.ones_like
            return make(arguments[0], dtype=_dtype_name(c.get("dtype") or "bool"))
        if op == "LogicalOr":
            return np.logical_or(arguments[0], arguments[1])
        if op == "LogicalAnd":
            return np.logical_and(arguments[0], arguments[1])
        if op == "LogicalNot":
            return np.logical_not(arguments[0])
        if op == "Concatenate":
            return np.concatenate([np.asarray(v) for v in x], axis=_axis(c, 0))
        if op == "Cast":
            return arguments[0].astype(_dtype_name(c.get("dtype")))
        if op == "ConvertToTensor":
            dtype = c.get("dtype")
            return arguments[0] if dtype is None else arguments[0].astype(_dtype_name(dtype))
        if op == "BroadcastTo":
            return np.broadcast_to(arguments[0], tuple(c.get("shape")))
        raise ValueError(f"{self.where}: not supported")


def _dtype_name(value):
    if value in ("bool", "float32", "float64", "int32", "int64", "float16", "uint8", "int8"):
        return value
    raise ValueError(f"unsupported dtype {value!r} in a mask operation")
