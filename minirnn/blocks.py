"""The non-recurrent layers of saved models, one small readable class each.

Each block computes what Keras 3's layer computes at inference (TensorFlow backend),
in the block's dtype, and says what happens to the mask, as Keras' ``compute_mask``
does. Notation: x is the input (B, T, C) or (B, C); ``@`` the matrix product; ``*``
element-wise; m the mask (B, T), True = a real step. Mask rules:

- *passes*: the output carries the input's mask unchanged (Keras: supports_masking
  and the default compute_mask);
- *drops*: the output has no mask (Keras: the layer does not support masking);
- *makes* / *consumes* / *merges*: as written in the class.

A block holds its weights in Keras' get_weights() order; ``weight_shapes(shape)``
says what they must be for an input of that shape (None = any size), so a file's
arrays are checked before anything runs. A block of a model pickles as its Keras
configuration, its input shape and its weights, and is built again through the
same checks (``minirnn.model.rebuild_block``).

May use: numpy, :mod:`minirnn.activations`, :mod:`minirnn.keras2` and
:mod:`minirnn.model`.
"""

import math

import numpy as np

from . import activations
from . import keras2

__all__ = ["Block", "BLOCKS"]


def _activation(name, semantics, where):
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        raise ValueError(f"{where}: `activation` must be the name of a built-in Keras "
                         f"activation; received {name!r} (custom activations are refused).")
    if name == "linear":
        return activations.linear
    try:
        return keras2.activation(name) if semantics == "keras2" else activations.get(name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


# Sizes a configuration sets without weights to check them against (window and
# repeat lengths) are bounded, so that a hostile file cannot ask for a huge array.
MAX_SIZE = 2**20


def _int(config, key, where, default=None, low=1, high=2**40):
    value = config.get(key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: `{key}` must be an integer in [{low}, {high}]; received "
                         f"{value!r}.")
    return value


def _flag(config, key, where, default):
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: `{key}` must be true or false; received {value!r}.")
    return value


def _number(config, key, where, default):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: `{key}` must be a number; received {value!r}.")
    return float(value)


def _choice(config, key, where, default, choices):
    value = config.get(key, default)
    if value not in choices:
        raise ValueError(f"{where}: `{key}` must be one of {choices}; received {value!r} "
                         "(minirnn reproduces only these).")
    return value


class Block:
    """What every block shares: name, dtype, weights, and Keras' mask rule.

    Subclasses set ``mask_rule`` ("passes" or "drops") or override
    :meth:`compute_mask`, and implement :meth:`call` and :meth:`output_shape`.
    """

    keras_class = None
    mask_rule = "passes"
    merges = False          # takes a list of inputs
    uses_mask = False       # its call reads the mask
    # Set by minirnn.model when it builds the block from a file: (Keras class name,
    # configuration) and the input shape its weights were checked against, which
    # pickling sends instead of the block's attributes.
    _keras_config = None
    _input_shape = None

    def __init__(self, name, config, dtype, semantics="keras3"):
        self.name = name
        self.dtype = dtype
        self.semantics = semantics
        self.where = f"layer {name!r} ({self.keras_class})"
        self.weights = []
        self.configure(config)

    def configure(self, config):
        """Read the layer's Keras configuration (override)."""

    def weight_shapes(self, input_shape):
        """The shapes Keras' weights have for this input shape (override)."""
        return []

    def set_weights(self, arrays):
        self.weights = [np.ascontiguousarray(a, self.dtype) for a in arrays]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, x, mask):
        return mask if self.mask_rule == "passes" else None

    def __call__(self, x, mask=None):
        if self.merges:
            x = [np.asarray(v, self.dtype) for v in x]
        else:
            x = np.asarray(x, self.dtype)
        return self.call(x, mask) if self.uses_mask else self.call(x)

    def __repr__(self):
        return f"{self.keras_class}(name={self.name!r})"

    def __reduce_ex__(self, protocol):
        """A block of a model pickles as its Keras configuration, input shape and
        weights (in the file's dtype), rebuilt through the checks of load_model;
        one made otherwise pickles as a plain object."""
        if self._keras_config is None:
            return object.__reduce_ex__(self, protocol)
        from .model import rebuild_block  # model.py imports this module

        dtype = getattr(self, "weight_dtype", None)
        weights = [w if dtype is None else np.asarray(w, dtype) for w in self.get_weights()]
        class_name, config = self._keras_config
        return rebuild_block, (class_name, self.name, config, self.dtype, self.semantics,
                               self._input_shape, weights)


class Identity(Block):
    """Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout, AlphaDropout,
    ActivityRegularization: training-time noise or penalties, so at inference

        y = x

    Mask: passes."""

    keras_class = "Dropout"

    def call(self, x):
        return x


class Activation(Block):
    """y = activation(x). Mask: passes."""

    keras_class = "Activation"

    def configure(self, config):
        self.activation = config.get("activation")
        self.function = _activation(self.activation, self.semantics, self.where)

    def call(self, x):
        return self.function(x).astype(self.dtype, copy=False)


class Dense(Block):
    """y = activation(x @ W + b), W (C, units), b (units,), on the last axis.

    Mask: passes (a Dense after an LSTM with return_sequences keeps the steps' mask)."""

    keras_class = "Dense"

    def configure(self, config):
        self.units = _int(config, "units", self.where)
        self.use_bias = _flag(config, "use_bias", self.where, True)
        self.activation = config.get("activation")
        self.function = _activation(self.activation, self.semantics, self.where)
        if config.get("lora_rank") or config.get("quantization_config"):
            raise ValueError(f"{self.where}: LoRA and quantized Dense layers are not "
                             "reproduced.")

    def weight_shapes(self, input_shape):
        return [(input_shape[-1], self.units)] + ([(self.units,)] if self.use_bias else [])

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, x):
        kernel = self.weights[0]
        if x.ndim == 2 or (x.ndim == 3 and x.shape[0] == 1):
            y = x @ kernel  # one BLAS call on the (rows, C) matrix, as below
        else:  # (B, T, C) as one (B T, C) product: a 3-D matmul is one BLAS call per row
            y = (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], self.units)
        if self.use_bias:
            y += self.weights[1]  # into the product's fresh array: the same sums
        return y if self.function is activations.linear else \
            self.function(y).astype(self.dtype, copy=False)


class Embedding(Block):
    """y[b, t] = E[x[b, t]], E (input_dim, output_dim); x holds integers in
    [0, input_dim) (floats are truncated to integers, as Keras casts them).

    Mask: makes m = (x != 0) with mask_zero=True, else none."""

    keras_class = "Embedding"

    def configure(self, config):
        self.input_dim = _int(config, "input_dim", self.where)
        self.output_dim = _int(config, "output_dim", self.where)
        self.mask_zero = _flag(config, "mask_zero", self.where, False)
        if config.get("lora_rank") or config.get("quantization_config"):
            raise ValueError(f"{self.where}: LoRA and quantized embeddings are not "
                             "reproduced.")

    def weight_shapes(self, input_shape):
        return [(self.input_dim, self.output_dim)]

    def output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def compute_mask(self, x, mask):
        return np.asarray(x) != 0 if self.mask_zero else None

    def __call__(self, x, mask=None):
        index = x if type(x) is np.ndarray and x.dtype == np.int32 else self._index(x)
        try:  # take refuses indices >= input_dim; negative ones would wrap, so:
            if index.dtype == np.int32:  # seen as uint32, a negative one is >= 2**31
                return self.weights[0].take(index.view(np.uint32), axis=0)
            if not index.size or index.min() >= 0:
                return self.weights[0].take(index, axis=0)
        except IndexError:
            pass
        raise ValueError(
            f"{self.where}: every input must be an integer in [0, {self.input_dim}) "
            f"(input_dim); received values from {index.min()} to {index.max()}.")

    def _index(self, x):
        """``x`` as an integer array: floats truncated, as Keras casts them."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self.where}: the input must hold integers; received dtype "
                            f"{x.dtype}.")
        if x.dtype.kind != "f":
            return x
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.where}: the input holds NaN or infinity; expected "
                             f"integers in [0, {self.input_dim}).")
        with np.errstate(invalid="ignore"):
            return x.astype(np.int64)


class Masking(Block):
    """m = any(x != mask_value, axis=-1);  y = x * m (the masked steps become 0).

    Mask: makes m."""

    keras_class = "Masking"

    def configure(self, config):
        self.mask_value = _number(config, "mask_value", self.where, 0.0)

    def compute_mask(self, x, mask):
        return np.any(np.asarray(x, self.dtype) != self.dtype_value(), axis=-1)

    def dtype_value(self):
        return np.dtype(self.dtype).type(self.mask_value)

    def call(self, x):
        keep = np.any(x != self.dtype_value(), axis=-1, keepdims=True)
        return x * keep.astype(self.dtype)


class RepeatVector(Block):
    """y[b, t] = x[b] for t < n: (B, C) -> (B, n, C). Mask: drops."""

    keras_class = "RepeatVector"
    mask_rule = "drops"

    def configure(self, config):
        self.n = _int(config, "n", self.where, high=MAX_SIZE)

    def output_shape(self, input_shape):
        return (input_shape[0], self.n, *input_shape[1:])

    def call(self, x):
        if x.ndim != 2:
            raise ValueError(f"{self.where}: the input must be 2-D (batch, features); "
                             f"received shape {x.shape}.")
        return np.repeat(x[:, None], self.n, axis=1)


class Flatten(Block):
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...), row-major. Mask: drops."""

    keras_class = "Flatten"
    mask_rule = "drops"

    def configure(self, config):
        _choice(config, "data_format", self.where, "channels_last", ("channels_last", None))

    def output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if None in rest else math.prod(rest)
        return (input_shape[0], size)

    def call(self, x):
        return x.reshape(x.shape[0], -1)


class Reshape(Block):
    """(B, ...) -> (B, *target_shape), one entry may be -1. Mask: drops."""

    keras_class = "Reshape"
    mask_rule = "drops"

    def configure(self, config):
        shape = config.get("target_shape")
        if not isinstance(shape, (list, tuple)) or not shape or not all(
                isinstance(n, int) and not isinstance(n, bool) and (n > 0 or n == -1)
                for n in shape) or list(shape).count(-1) > 1:
            raise ValueError(f"{self.where}: `target_shape` must be a list of positive "
                             f"integers with at most one -1; received {shape!r}.")
        self.target_shape = tuple(shape)

    def output_shape(self, input_shape):
        if -1 not in self.target_shape:
            return (input_shape[0], *self.target_shape)
        size = None if None in input_shape[1:] else math.prod(input_shape[1:])
        known = -math.prod(self.target_shape)
        missing = None if size is None else size // known
        return (input_shape[0], *(missing if n == -1 else n for n in self.target_shape))

    def call(self, x):
        try:
            return x.reshape(x.shape[0], *self.target_shape)
        except ValueError:
            raise ValueError(f"{self.where}: cannot reshape an input of shape {x.shape} to "
                             f"(batch, *{self.target_shape}).") from None


class Permute(Block):
    """y = x transposed by ``dims`` (1-based, the batch axis stays first). Mask: drops."""

    keras_class = "Permute"
    mask_rule = "drops"

    def configure(self, config):
        dims = config.get("dims")
        if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"{self.where}: `dims` must be a permutation of 1..n; received "
                             f"{dims!r}.")
        self.dims = tuple(dims)

    def output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def call(self, x):
        if x.ndim != len(self.dims) + 1:
            raise ValueError(f"{self.where}: expected an input of rank {len(self.dims) + 1}; "
                             f"received shape {x.shape}.")
        return np.transpose(x, (0, *self.dims))


class Conv1D(Block):
    """1-D convolution (cross-correlation) over time, kernel W (K, C, F), bias (F,)::

        y[b, t, f] = activation( sum_k sum_c xp[b, t*s + k*d, c] W[k, c, f] + b[f] )

    s = strides, d = dilation_rate; xp is x padded with zeros: "valid" none, "causal"
    (K-1)*d steps at the start, "same" as TensorFlow (out = ceil(T/s), the extra
    step at the end). Mask: drops.

    Streaming (a stateful model, minirnn.model): "causal" with strides 1 runs a
    slice after the (K-1)*d input steps before it (:meth:`stream`)."""

    keras_class = "Conv1D"
    mask_rule = "drops"

    def configure(self, config):
        self.filters = _int(config, "filters", self.where)
        self.kernel_size = _int(config, "kernel_size", self.where, high=MAX_SIZE)
        self.strides = _int(config, "strides", self.where, 1, high=MAX_SIZE)
        self.dilation_rate = _int(config, "dilation_rate", self.where, 1, high=MAX_SIZE)
        self.padding = _choice(config, "padding", self.where, "valid",
                               ("valid", "same", "causal"))
        _choice(config, "data_format", self.where, "channels_last", ("channels_last", None))
        if config.get("groups", 1) != 1:
            raise ValueError(f"{self.where}: grouped convolutions (groups="
                             f"{config.get('groups')!r}) are not reproduced; groups must be 1.")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(f"{self.where}: strides > 1 with dilation_rate > 1 is refused "
                             "by Keras as well.")
        self.use_bias = _flag(config, "use_bias", self.where, True)
        self.activation = config.get("activation")
        self.function = _activation(self.activation, self.semantics, self.where)

    def weight_shapes(self, input_shape):
        shapes = [(self.kernel_size, input_shape[-1], self.filters)]
        return shapes + ([(self.filters,)] if self.use_bias else [])

    def _padding(self, T):
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        if self.padding == "causal":
            return span - 1, 0
        if self.padding == "valid":
            return 0, 0
        out = -(-T // self.strides)
        total = max((out - 1) * self.strides + span - T, 0)
        return total // 2, total - total // 2

    def _length(self, T):
        if T is None:
            return None
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        left, right = self._padding(T)
        return max((T + left + right - span) // self.strides + 1, 0)

    def output_shape(self, input_shape):
        return (input_shape[0], self._length(input_shape[1]), self.filters)

    def call(self, x):
        B, T, C = x.shape
        left, right = self._padding(T)
        T_out = self._length(T)
        if T_out <= 0:
            raise ValueError(f"{self.where}: {T} timesteps are too few for kernel_size="
                             f"{self.kernel_size}, dilation_rate={self.dilation_rate} with "
                             f"padding={self.padding!r}.")
        xp = np.zeros((B, left + T + right, C), x.dtype)  # np.pad, at a tenth of its cost
        xp[:, left:left + T] = x
        # windows[b, t, k] = xp[b, t s + k d], then one product over all rows (a 3-D
        # matmul is one BLAS call per batch row): (B T_out, K C) @ (K C, F). Without
        # dilation a window is K C consecutive numbers of xp, so the windows are a
        # read-only view of it, copied once by the reshape; with dilation, one copy
        # per tap (a gather by an index array cost twice as much).
        K, s, d = self.kernel_size, self.strides, self.dilation_rate
        if d == 1:
            item = xp.itemsize
            windows = np.lib.stride_tricks.as_strided(
                xp, (B, T_out, K * C), (xp.strides[0], s * C * item, item), writeable=False)
        else:
            windows = np.empty((B, T_out, K, C), x.dtype)
            for k in range(K):
                windows[:, :, k] = xp[:, k * d:k * d + (T_out - 1) * s + 1:s]
        y = windows.reshape(B * T_out, K * C) @ self.weights[0].reshape(K * C, self.filters)
        y = y.reshape(B, T_out, self.filters)
        if self.use_bias:
            y = y + self.weights[1]
        return self.function(y).astype(self.dtype, copy=False)


    def stream(self, x, context):
        """One slice of a long sequence (padding="causal", strides 1): the outputs
        at the slice's steps and the context for the next slice. ``context`` holds
        the (K-1)*d input steps before the slice, which stand where the whole
        sequence has its padding zeros (None: zeros, before the first slice)."""
        x = np.asarray(x, self.dtype)
        keep = (self.kernel_size - 1) * self.dilation_rate
        if context is None:
            context = np.zeros((x.shape[0], keep, x.shape[2]), self.dtype)
        joined = np.concatenate([context, x], axis=1)
        y = self.call(joined)[:, keep:]
        return y, joined[:, joined.shape[1] - keep:]


class _Pooling1D(Block):
    """Windows of pool_size steps every ``strides`` steps; "same" pads as TensorFlow."""

    mask_rule = "drops"

    def configure(self, config):
        self.pool_size = _int(config, "pool_size", self.where, 2, high=MAX_SIZE)
        strides = config.get("strides")
        self.strides = self.pool_size if strides is None else _int(config, "strides",
                                                                    self.where, high=MAX_SIZE)
        self.padding = _choice(config, "padding", self.where, "valid", ("valid", "same"))
        _choice(config, "data_format", self.where, "channels_last", ("channels_last", None))

    def _layout(self, T):
        if self.padding == "valid":
            out = (T - self.pool_size) // self.strides + 1
            return out, 0
        out = -(-T // self.strides)
        total = max((out - 1) * self.strides + self.pool_size - T, 0)
        return out, total // 2

    def output_shape(self, input_shape):
        T = input_shape[1]
        return (input_shape[0], None if T is None else max(self._layout(T)[0], 0),
                *input_shape[2:])

    def _windows(self, x, fill):
        """The windows' entries, one (B, T_out, C) view per position k in the window,
        and which entries (T_out, pool_size) are real steps."""
        B, T, C = x.shape
        out, left = self._layout(T)
        if out <= 0:
            raise ValueError(f"{self.where}: {T} timesteps are too few for pool_size="
                             f"{self.pool_size}.")
        index = np.arange(out)[:, None] * self.strides + np.arange(self.pool_size) - left
        inside = (index >= 0) & (index < T)
        # x padded with ``fill`` on both sides; the k-th entries of all windows are
        # xp[:, k : k + (out - 1) s + 1 : s], one strided view per k (no gather)
        right = max((out - 1) * self.strides + self.pool_size - left - T, 0)
        xp = x
        if left or right:
            xp = np.full((B, left + T + right, C), fill, x.dtype)
            xp[:, left:left + T] = x
        span = (out - 1) * self.strides + 1
        return [xp[:, k:k + span:self.strides] for k in range(self.pool_size)], inside


class MaxPooling1D(_Pooling1D):
    """y[b, t, c] = max over the window of x (padding never wins). Mask: drops."""

    keras_class = "MaxPooling1D"

    def call(self, x):
        windows, _ = self._windows(x, -np.inf)
        y = windows[0].copy()
        for entries in windows[1:]:
            np.maximum(y, entries, out=y)
        return y.astype(self.dtype, copy=False)


class AveragePooling1D(_Pooling1D):
    """y[b, t, c] = mean of x over the window's real steps (padding not counted).

    Mask: drops."""

    keras_class = "AveragePooling1D"

    def call(self, x):
        windows, inside = self._windows(x, 0)
        count = inside.sum(axis=1).astype(self.dtype)
        y = windows[0].copy()  # summed over the window in order, as before
        for entries in windows[1:]:
            y += entries
        return (y / count[None, :, None]).astype(self.dtype, copy=False)


class GlobalMaxPooling1D(Block):
    """y[b, c] = max over t of x[b, t, c] (the mask is not used). Mask: drops."""

    keras_class = "GlobalMaxPooling1D"
    mask_rule = "drops"

    def configure(self, config):
        self.keepdims = _flag(config, "keepdims", self.where, False)
        _choice(config, "data_format", self.where, "channels_last", ("channels_last", None))

    def output_shape(self, input_shape):
        return (input_shape[0], 1, *input_shape[2:]) if self.keepdims else \
            (input_shape[0], *input_shape[2:])

    def call(self, x):
        return x.max(axis=1, keepdims=self.keepdims)


class GlobalAveragePooling1D(GlobalMaxPooling1D):
    """y[b, c] = sum_t m[b, t] x[b, t, c] / sum_t m[b, t]  (without a mask: the mean).

    Mask: consumes it (the output has none)."""

    keras_class = "GlobalAveragePooling1D"
    uses_mask = True

    def call(self, x, mask=None):
        if mask is None:
            return x.mean(axis=1, keepdims=self.keepdims)
        keep = mask[:, :, None]
        total = np.where(keep, x, 0).sum(axis=1, keepdims=self.keepdims)
        return total / keep.astype(self.dtype).sum(axis=1, keepdims=self.keepdims)


def _axes(config, where, default):
    axis = config.get("axis", default)
    axes = [axis] if isinstance(axis, int) else axis
    if not isinstance(axes, (list, tuple)) or not axes or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"{where}: `axis` must be an integer or a list of integers; "
                         f"received {axis!r}.")
    return list(axes)


def _normalised_axes(axes, rank, where):
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"{where}: `axis` {axes} is out of range for inputs of rank {rank}.")
    return sorted(a % rank for a in axes)


class BatchNormalization(Block):
    """At inference, with the moving statistics (TensorFlow's order of operations)::

        inv = gamma / sqrt(moving_variance + epsilon)
        y = x * inv + (beta - moving_mean * inv)

    Weights: gamma (if scale), beta (if center), moving_mean, moving_variance, each
    of the size of the ``axis`` dimension. Mask: passes."""

    keras_class = "BatchNormalization"

    def configure(self, config):
        self._configure_normalisation(config)
        if config.get("renorm"):
            raise ValueError(f"{self.where}: batch renormalization is not reproduced.")

    def _configure_normalisation(self, config):
        """axis, epsilon, center and scale: the settings both normalisations share."""
        self.axes = _axes(config, self.where, -1)
        self.epsilon = _number(config, "epsilon", self.where, 1e-3)
        self.center = _flag(config, "center", self.where, True)
        self.scale = _flag(config, "scale", self.where, True)

    def _shape(self, input_shape):
        axes = _normalised_axes(self.axes, len(input_shape), self.where)
        return tuple(input_shape[a] for a in axes)

    def weight_shapes(self, input_shape):
        shape = self._shape(input_shape)
        return [shape] * (int(self.scale) + int(self.center) + 2)

    def call(self, x):
        axes = _normalised_axes(self.axes, x.ndim, self.where)
        inv, shift = self.scale_and_shift([x.shape[a] if a in axes else 1
                                           for a in range(x.ndim)])
        return (x * inv + shift).astype(self.dtype, copy=False)

    def scale_and_shift(self, shape=None):
        """(inv, shift) of y = x inv + shift from the moving statistics: inv = gamma /
        sqrt(variance + epsilon), shift = beta - mean inv; each weight reshaped to
        ``shape`` (None: as stored)."""
        w = [v if shape is None else v.reshape(shape) for v in self.weights]
        gamma = w.pop(0) if self.scale else None
        beta = w.pop(0) if self.center else None
        mean, variance = w
        inv = 1 / np.sqrt(variance + self.dtype_epsilon())
        if gamma is not None:
            inv = inv * gamma
        shift = beta - mean * inv if beta is not None else -mean * inv
        return inv, shift

    def dtype_epsilon(self):
        return np.dtype(self.dtype).type(self.epsilon)


class LayerNormalization(BatchNormalization):
    """Over the ``axis`` dimensions of each sample (TensorFlow's order)::

        mu, var = mean and variance of x over axis
        inv = gamma / sqrt(var + epsilon)
        y = x * inv + (beta - mu * inv)

    With rms_scaling (Keras 3): y = x / sqrt(var + epsilon) * gamma (Keras uses the
    variance here, as written). Weights: gamma (if scale), beta (if center).
    Mask: passes."""

    keras_class = "LayerNormalization"

    def configure(self, config):
        self._configure_normalisation(config)
        self.rms_scaling = _flag(config, "rms_scaling", self.where, False)
        if self.rms_scaling:
            self.center = False

    def weight_shapes(self, input_shape):
        shape = self._shape(input_shape)
        return [shape] * (int(self.scale) + int(self.center))

    def call(self, x):
        axes = _normalised_axes(self.axes, x.ndim, self.where)
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        w = [v.reshape(shape) for v in self.weights]
        gamma = w.pop(0) if self.scale else None
        beta = w.pop(0) if self.center else None
        mean = x.mean(axis=tuple(axes), keepdims=True)
        variance = np.square(x - mean).mean(axis=tuple(axes), keepdims=True)
        inv = 1 / np.sqrt(variance + self.dtype_epsilon())
        if self.rms_scaling:
            y = x * inv
            return (y * gamma if gamma is not None else y).astype(self.dtype, copy=False)
        if gamma is not None:
            inv = inv * gamma
        shift = -mean * inv
        if beta is not None:
            shift = shift + beta
        return (x * inv + shift).astype(self.dtype, copy=False)


class Concatenate(Block):
    """y = the inputs joined along ``axis``.

    Mask: merges: none if no input has one; else each input's mask (all True for an
    unmasked input) is broadcast to the input's shape, joined along ``axis``, and
    reduced over the last axis with any() (Keras 3; so joining a masked and an
    unmasked input on the feature axis gives an all-True mask) or all() (Keras 2)."""

    keras_class = "Concatenate"
    merges = True

    def configure(self, config):
        axis = config.get("axis", -1)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"{self.where}: `axis` must be an integer; received {axis!r}.")
        self.axis = axis

    def output_shape(self, input_shapes):
        axis = self.axis % len(input_shapes[0])
        sizes = [s[axis] for s in input_shapes]
        shape = list(input_shapes[0])
        shape[axis] = None if None in sizes else sum(sizes)
        return tuple(shape)

    def compute_mask(self, xs, masks):
        if masks is None or all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(xs, masks):
            x = np.asarray(x)
            if m is None:
                full.append(np.ones(x.shape, bool))
            elif m.ndim < x.ndim:
                full.append(np.broadcast_to(m[..., None], x.shape))
            else:
                full.append(m)
        reduce = np.all if self.semantics == "keras2" else np.any
        return reduce(np.concatenate(full, axis=self.axis), axis=-1)

    def call(self, xs):
        return np.concatenate(xs, axis=self.axis)


class _Merge(Block):
    """Element-wise merges. Mask: merges: Keras 3, the OR of the inputs' masks if
    every input has one, else none; Keras 2, the AND of the masks there are."""

    merges = True
    uses_mask = True

    def output_shape(self, input_shapes):
        return input_shapes[0]

    def compute_mask(self, xs, masks):
        if masks is None or all(m is None for m in masks):
            return None
        if self.semantics == "keras2":
            return np.all([m for m in masks if m is not None], axis=0)
        if any(m is None for m in masks):
            return None
        result = masks[0]
        for m in masks[1:]:
            result = np.logical_or(result, m)
        return result

    def masks_for_values(self, masks):
        """Keras 2's merges compute their values without looking at masks."""
        return None if self.semantics == "keras2" else masks

    def __call__(self, xs, mask=None):
        xs = [np.asarray(v, self.dtype) for v in xs]
        return self.call(xs, self.masks_for_values(mask))


class Add(_Merge):
    """y = x1 + x2 + ... (left to right)."""

    keras_class = "Add"

    def call(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Average(Add):
    """y = (x1 + x2 + ...) / n."""

    keras_class = "Average"

    def call(self, xs, masks):
        return (super().call(xs, masks) / np.dtype(self.dtype).type(len(xs))).astype(
            self.dtype, copy=False)


class Subtract(_Merge):
    """y = x1 - x2 (exactly two inputs)."""

    keras_class = "Subtract"

    def call(self, xs, masks):
        if len(xs) != 2:
            raise ValueError(f"{self.where}: Subtract takes exactly 2 inputs; received "
                             f"{len(xs)}.")
        return xs[0] - xs[1]


def _expanded(mask, x):
    return None if mask is None else np.broadcast_to(mask[..., None], x.shape)


class Multiply(_Merge):
    """y = x1 * x2 * ... Where every input has a mask (Keras 3): masked entries count
    as 1 in the product, and y = 0 where no input is real."""

    keras_class = "Multiply"

    def call(self, xs, masks):
        masks = [None] * len(xs) if masks is None else masks
        everywhere = all(m is not None for m in masks)
        y, any_real = None, None
        for x, m in zip(xs, masks):
            m = _expanded(m, x)
            if m is not None:
                x = np.where(m, x, np.dtype(self.dtype).type(1))
                if everywhere:
                    any_real = m if any_real is None else np.logical_or(any_real, m)
            y = x if y is None else y * x
        if everywhere:
            y = np.where(any_real, y, np.dtype(self.dtype).type(0))
        return y


class Maximum(_Merge):
    """y = max(x1, x2, ...). With masks (Keras 3): a masked entry takes the other
    operand's value, so it never wins over a real one."""

    keras_class = "Maximum"
    operation = staticmethod(np.maximum)

    def call(self, xs, masks):
        masks = [None] * len(xs) if masks is None else masks
        y, y_mask = None, None
        for x, m in zip(xs, masks):
            m = _expanded(m, x)
            if y is None:
                y, y_mask = x, m
                continue
            if m is not None:
                x = np.where(m, x, y)
            if y_mask is not None:
                y = np.where(y_mask, y, x)
            y_mask = np.logical_or(y_mask, m) if m is not None and y_mask is not None \
                else None
            y = self.operation(y, x)
        return y


class Minimum(Maximum):
    """y = min(x1, x2, ...), masks as :class:`Maximum`."""

    keras_class = "Minimum"
    operation = staticmethod(np.minimum)


class Merge(Block):
    """Keras 2.0's legacy Merge layer (Keras 1's ``merge([a, b], mode=...)``): the
    inputs combined by ``mode``, with Keras 2's rules::

        sum: y = x1 + x2 + ...        mul: y = x1 * x2 * ...
        ave: y = (x1 + ... + xn) / n  max: y = max(x1, ..., xn)
        concat: y = the inputs joined along concat_axis

    which are :class:`Add`, :class:`Multiply`, :class:`Average`, :class:`Maximum` and
    :class:`Concatenate` under Keras 2 semantics. A mode given as a Python function
    (mode_type "function") is code stored in the file and is refused, as are the
    dot and cos modes and a custom output_mask.

    Mask: merges: the AND of the masks there are (concat: the joined masks, all()
    over the last axis), as those layers in Keras 2."""

    keras_class = "Merge"
    merges = True
    uses_mask = True
    _MODES = {"sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum",
              "concat": "Concatenate"}

    def configure(self, config):
        mode, mode_type = config.get("mode", "sum"), config.get("mode_type", "raw")
        if mode_type != "raw" or not isinstance(mode, str):
            raise ValueError(f"{self.where}: its mode is a Python function stored in the "
                             "file (mode_type 'function'), which minirnn never executes.")
        if mode not in self._MODES:
            raise ValueError(f"{self.where}: `mode` must be one of {sorted(self._MODES)} "
                             f"(minirnn reproduces only these); received {mode!r}.")
        if config.get("output_mask") is not None or \
                config.get("output_mask_type", "raw") != "raw":
            raise ValueError(f"{self.where}: a custom `output_mask` is not reproduced.")
        inner = {"axis": config.get("concat_axis", -1)} if mode == "concat" else {}
        self.mode = mode
        self.inner = BLOCKS[self._MODES[mode]](self.name, inner, self.dtype, "keras2")
        self.inner.where = self.where

    def output_shape(self, input_shapes):
        return self.inner.output_shape(input_shapes)

    def compute_mask(self, xs, masks):
        return self.inner.compute_mask(xs, masks)

    def __call__(self, xs, mask=None):
        return self.inner(xs, mask) if self.inner.uses_mask else self.inner(xs)


class TimeDistributed(Block):
    """y[:, t] = layer(x[:, t]) for every step t, with the same weights.

    Mask: passes (Keras 3). The inner layer's own mask rule is not applied."""

    keras_class = "TimeDistributed"
    uses_mask = True

    def __init__(self, name, inner, dtype, semantics="keras3"):
        self.inner = inner
        super().__init__(name, {}, dtype, semantics)

    def weight_shapes(self, input_shape):
        return self.inner.weight_shapes((input_shape[0], *input_shape[2:]))

    def set_weights(self, arrays):
        self.inner.set_weights(arrays)

    def get_weights(self):
        return self.inner.get_weights()

    def count_params(self):
        return self.inner.count_params()

    def output_shape(self, input_shape):
        inner = self.inner.output_shape((input_shape[0], *input_shape[2:]))
        return (inner[0], input_shape[1], *inner[1:])

    def __call__(self, x, mask=None):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"{self.where}: the input must have at least 3 dimensions "
                             f"(batch, timesteps, ...); received shape {x.shape}.")
        B, T = x.shape[:2]
        flat = x.reshape(B * T, *x.shape[2:])
        inner_mask = None
        if mask is not None and getattr(self.inner, "uses_mask", False) and mask.ndim > 2:
            inner_mask = mask.reshape(B * T, *mask.shape[2:])
        y = self.inner(flat, inner_mask) if inner_mask is not None else self.inner(flat)
        return y.reshape(B, T, *y.shape[1:])


BLOCKS = {
    cls.keras_class: cls for cls in (
        Activation, Dense, Embedding, Masking, RepeatVector, Flatten, Reshape, Permute,
        Conv1D, MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D,
        BatchNormalization, LayerNormalization, Concatenate, Add, Subtract, Multiply,
        Average, Maximum, Minimum, Merge)
}
for _name in ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
              "AlphaDropout", "ActivityRegularization"):
    BLOCKS[_name] = type(_name, (Identity,), {"keras_class": _name, "__doc__": Identity.__doc__})
