"""Convolution, pooling, padding, cropping and up-sampling blocks of saved models
(1-D and the 2-D layers of CRNN models), written like :mod:`minirnn.blocks`.

Shapes are channels_last, (B, T, C) and (B, H, W, C), unless a layer's data_format
is "channels_first", (B, C, T) and (B, C, H, W): those inputs are transposed to
channels_last, computed, and transposed back (Keras' TensorFlow backend does the
same for pooling and separable convolutions on a CPU). "same" padding is
TensorFlow's: for a size n, stride s and window span k (a dilated kernel spans
(k - 1) d + 1), out = ceil(n / s) and max((out - 1) s + k - n, 0) zeros are added,
the extra one at the end.

Mask: none of these layers supports masking in Keras 3 (no supports_masking, no
compute_mask), so every one drops the mask: a ZeroPadding1D, Cropping1D or
UpSampling1D after an Embedding(mask_zero=True) hands the next layer no mask.

May use: numpy and :mod:`minirnn.blocks`.
"""

import numpy as np

from .blocks import MAX_SIZE, Block, Conv1D, _activation, _choice, _flag, _int

__all__ = ["BLOCKS"]


def _ints(config, key, where, rank, default, low=1, high=MAX_SIZE):
    """An integer (the same for every dimension) or a list of ``rank`` integers."""
    value = config.get(key, default)
    values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) \
        else value
    if not isinstance(values, (list, tuple)) or len(values) != rank or not all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
            for v in values):
        raise ValueError(f"{where}: `{key}` must be an integer or a list of {rank} integers "
                         f"in [{low}, {high}]; received {value!r}.")
    return tuple(values)


def _data_format(config, where):
    value = _choice(config, "data_format", where, "channels_last",
                    ("channels_last", "channels_first", None))
    return value or "channels_last"


def _layout(size, span, stride, padding):
    """(out, before, after) along one spatial dimension: the output size and the
    zeros added before and after ("valid" or TensorFlow's "same")."""
    if padding == "valid":
        before, after = 0, 0
    else:
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        before, after = total // 2, total - total // 2
    return (size + before + after - span) // stride + 1, before, after


def _out_size(size, span, stride, padding):
    return None if size is None else max(_layout(size, span, stride, padding)[0], 0)


def _to_last(x, data_format):
    """channels_first (B, C, ...) -> channels_last (B, ..., C)."""
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def _from_last(y, data_format):
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if data_format == "channels_first" \
        else y


def _check_rank(x, rank, where):
    if x.ndim != rank:
        raise ValueError(f"{where}: expected an input of rank {rank}; received shape "
                         f"{x.shape}.")


def _padded(x, pads, fill=0):
    """x (B, d1, ..., C) with ``pads`` [(before, after), ...] of ``fill`` around each
    spatial dimension."""
    shape = (x.shape[0], *(n + a + b for n, (a, b) in zip(x.shape[1:-1], pads)),
             x.shape[-1])
    xp = np.full(shape, fill, x.dtype)
    xp[(slice(None), *(slice(a, a + n) for n, (a, _) in zip(x.shape[1:-1], pads)))] = x
    return xp


def _too_small(where, shape, what):
    return ValueError(f"{where}: an input of shape {shape} is too small for {what}: the "
                      "output would be empty.")


# ---- padding, cropping, up-sampling ----------------------------------------------

class ZeroPadding1D(Block):
    """y = x with padding[0] zero steps before and padding[1] after, along time
    (B, T, C) -> (B, T + p0 + p1, C). Mask: drops."""

    keras_class = "ZeroPadding1D"
    mask_rule = "drops"

    def configure(self, config):
        self.padding = _ints(config, "padding", self.where, 2, 1, low=0)
        self.data_format = _data_format(config, self.where)

    def output_shape(self, input_shape):
        axis = 2 if self.data_format == "channels_first" else 1
        shape = list(input_shape)
        if shape[axis] is not None:
            shape[axis] += sum(self.padding)
        return tuple(shape)

    def call(self, x):
        _check_rank(x, 3, self.where)
        x = _to_last(x, self.data_format)
        return _from_last(_padded(x, [self.padding]), self.data_format)


class Cropping1D(Block):
    """y = x[:, cropping[0] : T - cropping[1], :]; the cropping must leave at least
    one step. Mask: drops."""

    keras_class = "Cropping1D"
    mask_rule = "drops"

    def configure(self, config):
        self.cropping = _ints(config, "cropping", self.where, 2, 1, low=0)

    def _length(self, T):
        if T is None:
            return None
        if T - sum(self.cropping) <= 0:
            raise ValueError(f"{self.where}: `cropping` {list(self.cropping)} must leave at "
                             f"least one of the input's {T} steps.")
        return T - sum(self.cropping)

    def output_shape(self, input_shape):
        return (input_shape[0], self._length(input_shape[1]), *input_shape[2:])

    def call(self, x):
        _check_rank(x, 3, self.where)
        start = self.cropping[0]
        return x[:, start:start + self._length(x.shape[1])]


class UpSampling1D(Block):
    """y[b, t] = x[b, t // size]: every step repeated ``size`` times,
    (B, T, C) -> (B, T * size, C). Mask: drops."""

    keras_class = "UpSampling1D"
    mask_rule = "drops"

    def configure(self, config):
        self.size = _int(config, "size", self.where, 2, high=MAX_SIZE)

    def output_shape(self, input_shape):
        T = input_shape[1]
        return (input_shape[0], None if T is None else T * self.size, *input_shape[2:])

    def call(self, x):
        _check_rank(x, 3, self.where)
        return np.repeat(x, self.size, axis=1)


class ZeroPadding2D(Block):
    """y = x with zero rows and columns around it: ``padding`` is an integer, a pair
    (rows, columns) added on both sides, or ((top, bottom), (left, right)).
    (B, H, W, C) -> (B, H + top + bottom, W + left + right, C). Mask: drops."""

    keras_class = "ZeroPadding2D"
    mask_rule = "drops"

    def configure(self, config):
        value = config.get("padding", 1)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            pads = tuple(_ints({"padding": v}, "padding", self.where, 2, 1, low=0)
                         for v in value)
        else:
            pads = (_ints(config, "padding", self.where, 2, 1, low=0),) * 2
        self.padding = pads
        self.data_format = _data_format(config, self.where)

    def output_shape(self, input_shape):
        first = 2 if self.data_format == "channels_first" else 1
        shape = list(input_shape)
        for k, (a, b) in enumerate(self.padding):
            if shape[first + k] is not None:
                shape[first + k] += a + b
        return tuple(shape)

    def call(self, x):
        _check_rank(x, 4, self.where)
        x = _to_last(x, self.data_format)
        return _from_last(_padded(x, self.padding), self.data_format)


# ---- convolutions ------------------------------------------------------------------

def _finish(block, y):
    """activation(y + bias) for y in the layer's data_format.

    channels_first: the bias goes along axis 1, except in Keras 3 where the last
    axis has as many entries as there are filters: Keras 3's TensorFlow ``add``
    (keras/src/backend/tensorflow/numpy.py, ``if x1.shape[-1] ==
    x2_squeeze_shape[0]: data_format = "NHWC"``) turns the layer's bias of shape
    (1, F, 1, ...) into a ``bias_add`` along the last axis then, so that is what
    Keras 3 computes (Keras 2 adds along axis 1)."""
    if block.use_bias:
        bias = block.weights[-1]
        along_last = block.data_format == "channels_last" or (
            block.semantics != "keras2" and y.shape[-1] == bias.shape[0])
        y = y + (bias if along_last else bias.reshape(-1, *(1,) * (y.ndim - 2)))
    return block.function(y).astype(block.dtype, copy=False)


class SeparableConv1D(Conv1D):
    """A depthwise convolution, each input channel c with its own M filters
    (M = depth_multiplier), then a pointwise (1 x 1) convolution::

        d[b, t, c*M + m] = sum_k xp[b, t*s + k*r, c] D[k, c, m]
        y[b, t, f] = activation( sum_j d[b, t, j] P[0, j, f] + bias[f] )

    D (K, C, M), P (1, C*M, F), bias (F,); s = strides, r = dilation_rate; xp is x
    padded as :class:`minirnn.blocks.Conv1D` pads ("valid", "same"; "causal" in
    Keras 2 files, which Keras 3 refuses). Keras 3 also takes strides > 1 with
    dilation_rate > 1 (it subsamples the stride-1 result: the same numbers).
    channels_first: see :func:`_finish` for where Keras 3 adds the bias.
    Mask: drops."""

    keras_class = "SeparableConv1D"

    def configure(self, config):
        self.filters = _int(config, "filters", self.where)
        self.depth_multiplier = _int(config, "depth_multiplier", self.where, 1,
                                     high=MAX_SIZE)
        self.kernel_size = _int(config, "kernel_size", self.where, high=MAX_SIZE)
        self.strides = _int(config, "strides", self.where, 1, high=MAX_SIZE)
        self.dilation_rate = _int(config, "dilation_rate", self.where, 1, high=MAX_SIZE)
        self.padding = _choice(config, "padding", self.where, "valid",
                               ("valid", "same", "causal"))
        self.data_format = _data_format(config, self.where)
        self.use_bias = _flag(config, "use_bias", self.where, True)
        self.activation = config.get("activation")
        self.function = _activation(self.activation, self.semantics, self.where)

    def weight_shapes(self, input_shape):
        C = input_shape[1 if self.data_format == "channels_first" else -1]
        M = self.depth_multiplier
        shapes = [(self.kernel_size, C, M), (1, None if C is None else C * M, self.filters)]
        return shapes + ([(self.filters,)] if self.use_bias else [])

    def output_shape(self, input_shape):
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, self._length(input_shape[2]))
        return (input_shape[0], self._length(input_shape[1]), self.filters)

    def call(self, x):
        _check_rank(x, 3, self.where)
        x = _to_last(x, self.data_format)
        B, T, C = x.shape
        left, right = self._padding(T)
        T_out = self._length(T)
        if T_out <= 0:
            raise _too_small(self.where, x.shape, f"kernel_size={self.kernel_size}, "
                             f"dilation_rate={self.dilation_rate}, padding={self.padding!r}")
        xp = _padded(x, [(left, right)])
        depthwise, pointwise = self.weights[0], self.weights[1]
        d = np.zeros((B, T_out, C, self.depth_multiplier), x.dtype)
        for k in range(self.kernel_size):
            start = k * self.dilation_rate
            taps = xp[:, start:start + (T_out - 1) * self.strides + 1:self.strides]
            d += taps[..., None] * depthwise[k]
        y = d.reshape(B, T_out, C * self.depth_multiplier) @ pointwise[0]
        return _finish(self, _from_last(y, self.data_format))


class Conv2D(Block):
    """2-D convolution (cross-correlation), kernel W (KH, KW, C, F), bias (F,)::

        y[b, i, j, f] = activation( sum_{p, q, c} xp[b, i*sh + p*dh, j*sw + q*dw, c]
                                    W[p, q, c, f] + bias[f] )

    (sh, sw) = strides, (dh, dw) = dilation_rate; xp is x padded with zeros: "valid"
    none, "same" as TensorFlow. Strides > 1 with dilation > 1 and groups != 1 are
    refused (Keras refuses the first). channels_first: see :func:`_finish` for
    where Keras 3 adds the bias. Mask: drops."""

    keras_class = "Conv2D"
    mask_rule = "drops"

    def configure(self, config):
        self.filters = _int(config, "filters", self.where)
        self.kernel_size = _ints(config, "kernel_size", self.where, 2, None)
        self.strides = _ints(config, "strides", self.where, 2, 1)
        self.dilation_rate = _ints(config, "dilation_rate", self.where, 2, 1)
        self.padding = _choice(config, "padding", self.where, "valid", ("valid", "same"))
        self.data_format = _data_format(config, self.where)
        if config.get("groups", 1) != 1:
            raise ValueError(f"{self.where}: `groups` must be 1 (grouped convolutions are "
                             f"not reproduced); received {config.get('groups')!r}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{self.where}: `strides` {list(self.strides)} > 1 with "
                             f"`dilation_rate` {list(self.dilation_rate)} > 1 is refused by "
                             "Keras as well.")
        if config.get("lora_rank") or config.get("quantization_config"):
            raise ValueError(f"{self.where}: LoRA and quantized convolutions are not "
                             "reproduced.")
        self.use_bias = _flag(config, "use_bias", self.where, True)
        self.activation = config.get("activation")
        self.function = _activation(self.activation, self.semantics, self.where)

    def _spans(self):
        return [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]

    def weight_shapes(self, input_shape):
        C = input_shape[1 if self.data_format == "channels_first" else -1]
        shapes = [(*self.kernel_size, C, self.filters)]
        return shapes + ([(self.filters,)] if self.use_bias else [])

    def output_shape(self, input_shape):
        first = 2 if self.data_format == "channels_first" else 1
        sizes = [_out_size(input_shape[first + k], span, s, self.padding)
                 for k, (span, s) in enumerate(zip(self._spans(), self.strides))]
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, *sizes)
        return (input_shape[0], *sizes, self.filters)

    def call(self, x):
        _check_rank(x, 4, self.where)
        x = _to_last(x, self.data_format)
        layouts = [_layout(n, span, s, self.padding)
                   for n, span, s in zip(x.shape[1:3], self._spans(), self.strides)]
        (H_out, *pad_h), (W_out, *pad_w) = layouts
        if H_out <= 0 or W_out <= 0:
            raise _too_small(self.where, x.shape, f"kernel_size={list(self.kernel_size)}, "
                             f"dilation_rate={list(self.dilation_rate)}, "
                             f"padding={self.padding!r}")
        xp = _padded(x, [pad_h, pad_w])
        (sh, sw), (dh, dw) = self.strides, self.dilation_rate
        kernel = self.weights[0]
        y = np.zeros((x.shape[0], H_out, W_out, self.filters), x.dtype)
        for p in range(self.kernel_size[0]):
            rows = slice(p * dh, p * dh + (H_out - 1) * sh + 1, sh)
            for q in range(self.kernel_size[1]):
                columns = slice(q * dw, q * dw + (W_out - 1) * sw + 1, sw)
                y += xp[:, rows, columns] @ kernel[p, q]
        return _finish(self, _from_last(y, self.data_format))


# ---- pooling -----------------------------------------------------------------------

class _Pooling2D(Block):
    """Windows of pool_size (rows, columns) every ``strides`` (default: pool_size);
    "same" pads as TensorFlow, and padding never counts."""

    mask_rule = "drops"

    def configure(self, config):
        self.pool_size = _ints(config, "pool_size", self.where, 2, 2)
        strides = config.get("strides")
        self.strides = self.pool_size if strides is None else \
            _ints(config, "strides", self.where, 2, None)
        self.padding = _choice(config, "padding", self.where, "valid", ("valid", "same"))
        self.data_format = _data_format(config, self.where)

    def output_shape(self, input_shape):
        first = 2 if self.data_format == "channels_first" else 1
        sizes = [_out_size(input_shape[first + k], p, s, self.padding)
                 for k, (p, s) in enumerate(zip(self.pool_size, self.strides))]
        if self.data_format == "channels_first":
            return (input_shape[0], input_shape[1], *sizes)
        return (input_shape[0], *sizes, input_shape[3])

    def _windows(self, x, fill):
        """The windows' taps, one (B, H_out, W_out, C) strided slice of x padded with
        ``fill`` per position in the window, and the layouts (out, before, after) of
        the two axes."""
        layouts = [_layout(n, p, s, self.padding)
                   for n, p, s in zip(x.shape[1:3], self.pool_size, self.strides)]
        (H_out, *pad_h), (W_out, *pad_w) = layouts
        if H_out <= 0 or W_out <= 0:
            raise _too_small(self.where, x.shape, f"pool_size={list(self.pool_size)}")
        xp = _padded(x, [pad_h, pad_w], fill)
        sh, sw = self.strides
        taps = [xp[:, p:p + (H_out - 1) * sh + 1:sh, q:q + (W_out - 1) * sw + 1:sw]
                for p in range(self.pool_size[0]) for q in range(self.pool_size[1])]
        return taps, layouts

    def call(self, x):
        _check_rank(x, 4, self.where)
        x = _to_last(x, self.data_format)
        y = self.pool(x)
        return _from_last(y.astype(self.dtype, copy=False), self.data_format)


class MaxPooling2D(_Pooling2D):
    """y[b, i, j, c] = max of x[b, :, :, c] over the window. Mask: drops."""

    keras_class = "MaxPooling2D"

    def pool(self, x):
        taps, _ = self._windows(x, -np.inf)
        y = taps[0]
        for tap in taps[1:]:
            y = np.maximum(y, tap)
        return y


def _counts(n, out, before, pool, stride):
    """How many of the window's positions lie inside the input, per output index."""
    start = np.arange(out) * stride - before
    return np.minimum(start + pool, n) - np.maximum(start, 0)


class AveragePooling2D(_Pooling2D):
    """y[b, i, j, c] = mean of x[b, :, :, c] over the window's real positions (the
    padding of "same" is not counted). Mask: drops."""

    keras_class = "AveragePooling2D"

    def pool(self, x):
        taps, layouts = self._windows(x, 0)
        total = taps[0]
        for tap in taps[1:]:
            total = total + tap
        (H_out, top, _), (W_out, left, _) = layouts
        rows = _counts(x.shape[1], H_out, top, self.pool_size[0], self.strides[0])
        columns = _counts(x.shape[2], W_out, left, self.pool_size[1], self.strides[1])
        count = (rows[:, None] * columns[None, :]).astype(x.dtype)
        return total / count[None, :, :, None]


class GlobalMaxPooling2D(Block):
    """y[b, c] = max over (h, w) of x[b, h, w, c]; keepdims keeps (B, 1, 1, C).
    Mask: drops."""

    keras_class = "GlobalMaxPooling2D"
    mask_rule = "drops"

    def configure(self, config):
        self.data_format = _data_format(config, self.where)
        self.keepdims = _flag(config, "keepdims", self.where, False)

    def _axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def output_shape(self, input_shape):
        channels = input_shape[1 if self.data_format == "channels_first" else 3]
        if not self.keepdims:
            return (input_shape[0], channels)
        if self.data_format == "channels_first":
            return (input_shape[0], channels, 1, 1)
        return (input_shape[0], 1, 1, channels)

    def call(self, x):
        _check_rank(x, 4, self.where)
        return x.max(axis=self._axes(), keepdims=self.keepdims)


class GlobalAveragePooling2D(GlobalMaxPooling2D):
    """y[b, c] = mean over (h, w) of x[b, h, w, c]; keepdims keeps (B, 1, 1, C).
    Mask: drops (Keras 3's 2-D global pooling does not read it)."""

    keras_class = "GlobalAveragePooling2D"

    def call(self, x):
        _check_rank(x, 4, self.where)
        return x.mean(axis=self._axes(), keepdims=self.keepdims).astype(self.dtype,
                                                                          copy=False)


BLOCKS = {cls.keras_class: cls for cls in (
    ZeroPadding1D, Cropping1D, UpSampling1D, ZeroPadding2D, SeparableConv1D, Conv2D,
    MaxPooling2D, AveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling2D)}
