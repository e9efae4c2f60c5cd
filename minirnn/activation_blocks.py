"""Activation layers (LeakyReLU, ReLU, PReLU, ELU, Softmax, ThresholdedReLU) and
UnitNormalization, written like :mod:`minirnn.blocks`.

Each computes what Keras 3's layer computes with the TensorFlow backend (Keras 2's
where ``semantics="keras2"`` gives other numbers, as written in the class), in the
block's dtype. Constants such as a slope are cast to that dtype first, as TensorFlow
does; TensorFlow's LeakyRelu kernel takes its slope as a float32 attribute, so a
float64 model uses the float32-rounded slope there.

Mask: every one of these layers passes the mask (Keras: supports_masking = True and
the default compute_mask); Softmax also reads it.

May use: numpy and :mod:`minirnn.blocks`.
"""

import math

import numpy as np

from .blocks import Block

__all__ = ["BLOCKS"]


def _float(config, key, where, default, low=None, allow_none=False):
    """A finite number from the configuration (>= low when low is given)."""
    value = config.get(key, default)
    if value is None and allow_none:
        return None
    expected = "a number" + ("" if low is None else f" >= {low}") + \
        (" or null" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or (low is not None and value < low):
        raise ValueError(f"{where}: `{key}` must be {expected}; received {value!r}.")
    return float(value)


def _axis_list(config, key, where, default):
    """An integer or a non-empty list of integers, as a list."""
    value = config.get(key, default)
    axes = [value] if isinstance(value, int) else value
    if not isinstance(axes, (list, tuple)) or not axes or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"{where}: `{key}` must be an integer or a non-empty list of "
                         f"integers; received {value!r}.")
    return list(axes)


def _resolved(axes, rank, where, key="axis"):
    """The axes of an input of ``rank`` dimensions, each in [0, rank)."""
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"{where}: `{key}` {axes} is out of range for inputs of rank "
                         f"{rank}.")
    resolved = tuple(sorted({a % rank for a in axes}))
    if len(resolved) != len(axes):
        raise ValueError(f"{where}: `{key}` {axes} names an axis twice.")
    return resolved


def _leaky(x, slope):
    """TensorFlow's LeakyRelu kernel: x where x > 0, else x * slope, with the slope
    rounded to float32 (a float attribute of the operation)."""
    return np.where(x > 0, x, x * x.dtype.type(np.float32(slope)))


class LeakyReLU(Block):
    """y = x if x > 0 else negative_slope * x   (negative_slope defaults to 0.3).

    Keras 2 names the slope ``alpha`` (Keras 3 reads ``alpha`` too, before
    ``negative_slope``). The slope is float32-rounded, as TensorFlow's kernel takes
    it. Keras 3 requires negative_slope >= 0; Keras 2 takes any number.
    Mask: passes."""

    keras_class = "LeakyReLU"

    def configure(self, config):
        key = "alpha" if "alpha" in config else "negative_slope"
        low = None if self.semantics == "keras2" else 0
        self.negative_slope = _float(config, key, self.where, 0.3, low=low)

    def call(self, x):
        return _leaky(x, self.negative_slope)


class ReLU(Block):
    """Keras 3's ``activations.relu(x, negative_slope, max_value, threshold)``::

        y = min(x, max_value)                         where x > threshold
        y = negative_slope * (x - threshold)          elsewhere

    computed in Keras' order: with only a slope, TensorFlow's LeakyRelu (its slope
    float32-rounded); otherwise ``z = x if x > threshold else 0`` (Keras 2:
    ``x * (x > threshold)``), ``z = clip(z, 0, max_value)``, and
    ``y = z - negative_slope * relu(threshold - x)``. Keras 3 casts threshold and
    max_value with ``ops.cast`` of a Python float, which passes through float32:
    float64 models compare and clip with the float32-rounded values (the slope and
    the threshold inside relu(threshold - x) stay exact; Keras 2 keeps all exact).
    Every setting must be >= 0 (max_value may be null: no cap). Mask: passes."""

    keras_class = "ReLU"

    def configure(self, config):
        self.max_value = _float(config, "max_value", self.where, None, low=0,
                                allow_none=True)
        self.negative_slope = _float(config, "negative_slope", self.where, 0.0, low=0)
        self.threshold = _float(config, "threshold", self.where, 0.0, low=0)

    def call(self, x):
        c = x.dtype.type
        if self.negative_slope != 0 and self.max_value is None and self.threshold == 0:
            return _leaky(x, self.negative_slope)
        keras2 = self.semantics == "keras2"
        cast = c if keras2 else (lambda v: c(np.float32(v)))  # Keras 3's ops.cast
        if self.threshold != 0:
            above = x > cast(self.threshold)
            y = x * above.astype(x.dtype) if keras2 else np.where(above, x, c(0))
        else:
            y = np.maximum(x, c(0))
        if self.max_value is not None:
            y = np.clip(y, c(0), cast(self.max_value))
        if self.negative_slope != 0:
            y = y - c(self.negative_slope) * np.maximum(-x + c(self.threshold), c(0))
        return y.astype(self.dtype, copy=False)


class PReLU(Block):
    """y = relu(x) - alpha * relu(-x), alpha a weight of shape input_shape[1:] with
    size 1 along the ``shared_axes`` (1-based, the batch axis is 0), broadcast over
    the batch. Mask: passes."""

    keras_class = "PReLU"

    def configure(self, config):
        shared = config.get("shared_axes")
        if shared is None:
            shared = []
        elif isinstance(shared, int) and not isinstance(shared, bool):
            shared = [shared]
        if not isinstance(shared, (list, tuple)) or not all(
                isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shared):
            raise ValueError(f"{self.where}: `shared_axes` must be null or a list of "
                             f"positive integers (axes after the batch axis); received "
                             f"{config.get('shared_axes')!r}.")
        self.shared_axes = list(shared)

    def weight_shapes(self, input_shape):
        rank = len(input_shape)
        if any(a >= rank for a in self.shared_axes):
            raise ValueError(f"{self.where}: `shared_axes` {self.shared_axes} is out of "
                             f"range for inputs of rank {rank}.")
        shape = list(input_shape[1:])
        for a in self.shared_axes:
            shape[a - 1] = 1
        return [tuple(shape)]

    def call(self, x):
        alpha = self.weights[0]
        if x.ndim != alpha.ndim + 1:
            raise ValueError(f"{self.where}: expected an input of rank {alpha.ndim + 1}; "
                             f"received shape {x.shape}.")
        zero = x.dtype.type(0)
        return np.maximum(x, zero) + (-alpha) * np.maximum(-x, zero)


class ELU(Block):
    """y = x if x > 0 else alpha * (exp(x) - 1)   (alpha defaults to 1).

    TensorFlow's Elu kernel computes exp(x) - 1 (not expm1). Mask: passes."""

    keras_class = "ELU"

    def configure(self, config):
        self.alpha = _float(config, "alpha", self.where, 1.0)

    def call(self, x):
        with np.errstate(over="ignore"):
            y = np.where(x < 0, np.exp(np.minimum(x, 0)) - x.dtype.type(1), x)
        if self.alpha != 1:
            y = np.where(x > 0, y, x.dtype.type(self.alpha) * y)
        return y


def _softmax(x, axes):
    """exp(x - max) / sum(exp(x - max)) over one axis; over several, as Keras 3:
    exp(x - logsumexp(x))."""
    top = np.max(x, axis=axes, keepdims=True)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if len(axes) == 1:
            e = np.exp(x - top)
            return e / np.sum(e, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, x.dtype.type(0))
        total = np.sum(np.exp(x - top), axis=axes, keepdims=True)
        return np.exp(x - (np.log(total) + top))


class Softmax(Block):
    """y = exp(x - max) / sum(exp(x - max)) over ``axis`` (an integer or a list:
    several axes at once, exp(x - logsumexp(x)))).

    The mask (the one the input carries, or the one a Keras 3 call passes
    explicitly) must be broadcastable to x with dimensions aligned from the last
    (a (batch, steps) mask fits inputs (batch, steps) only; Keras 3 raises
    otherwise); a float mask means m > 0.5. Keras 3::

        y = where(m, softmax(where(m, x, -1e9)), 0)

    Keras 2: y = softmax(x + (1 - m) * -1e9), or with ``robust_masking``
    softmax(where(m, x, -1e9)); its outputs are not zeroed.

    Mask: passes (the mask the call received)."""

    keras_class = "Softmax"
    uses_mask = True

    def configure(self, config):
        self.axis = _axis_list(config, "axis", self.where, -1)
        robust = config.get("robust_masking", False)
        if not isinstance(robust, bool):
            raise ValueError(f"{self.where}: `robust_masking` must be true or false; "
                             f"received {robust!r}.")
        self.robust_masking = robust

    def _check_mask(self, x, mask):
        if mask.ndim > x.ndim or any(m != 1 and m != n for m, n in
                                     zip(mask.shape[::-1], x.shape[::-1])):
            raise ValueError(f"{self.where}: the mask must be broadcastable to the inputs "
                             f"(each mask dimension 1 or equal to the input's, aligned from "
                             f"the last); received inputs of shape {x.shape} and a mask "
                             f"of shape {mask.shape}.")

    def call(self, x, mask=None):
        axes = _resolved(self.axis, x.ndim, self.where)
        if mask is None:
            return _softmax(x, axes).astype(self.dtype, copy=False)
        mask = np.asarray(mask)
        self._check_mask(x, mask)
        keep = mask if mask.dtype == bool else mask > mask.dtype.type(0.5)
        if self.semantics == "keras2" and not self.robust_masking:
            adder = (x.dtype.type(1) - mask.astype(x.dtype)) * x.dtype.type(-1e9)
            return _softmax(x + adder, axes).astype(self.dtype, copy=False)
        y = _softmax(np.where(keep, x, x.dtype.type(-1e9)), axes)
        if self.semantics == "keras2":
            return y.astype(self.dtype, copy=False)
        return np.where(keep, y, x.dtype.type(0)).astype(self.dtype, copy=False)


class ThresholdedReLU(Block):
    """y = x * (x > theta)   (theta >= 0, defaults to 1; a Keras 2 layer, kept in
    Keras 3 as keras._legacy.layers.ThresholdedReLU). Mask: passes."""

    keras_class = "ThresholdedReLU"

    def configure(self, config):
        self.theta = _float(config, "theta", self.where, 1.0, low=0)

    def call(self, x):
        return x * (x > x.dtype.type(self.theta)).astype(x.dtype)


class UnitNormalization(Block):
    """y = x / ||x||_2 over ``axis`` (an integer or a list), as Keras 3::

        y = x * min(1 / sqrt(sum(x^2)), 1e12)

    Keras 2 (tf.math.l2_normalize): y = x / sqrt(max(sum(x^2), 1e-12)), so tiny
    vectors differ. A vector of zeros stays zero. Mask: passes."""

    keras_class = "UnitNormalization"

    def configure(self, config):
        self.axis = _axis_list(config, "axis", self.where, -1)

    def call(self, x):
        axes = _resolved(self.axis, x.ndim, self.where)
        c = x.dtype.type
        square_sum = np.sum(np.square(x), axis=axes, keepdims=True)
        if self.semantics == "keras2":
            return x * (c(1) / np.sqrt(np.maximum(square_sum, c(1e-12))))
        with np.errstate(divide="ignore"):
            inverse = c(1) / np.sqrt(square_sum)
        return x * np.minimum(inverse, c(1e12))


BLOCKS = {cls.keras_class: cls for cls in (
    LeakyReLU, ReLU, PReLU, ELU, Softmax, ThresholdedReLU, UnitNormalization)}
