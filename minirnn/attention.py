"""Attention layers of saved models (Attention, AdditiveAttention,
MultiHeadAttention), written like :mod:`minirnn.blocks`.

Each block computes what Keras 3's layer computes at inference (TensorFlow backend)
or, with ``semantics="keras2"``, what tf.keras' (Keras 2) layer computes. Notation:
q (B, Tq, D) the query, v (B, Tv, Dv) the value, k (B, Tv, D) the key (k = v when
none is given), m_q and m_v their masks (B, T), True = a real step; ``@`` the
matrix product over the last two axes; softmax over the last axis as TensorFlow
computes it, e = exp(s - max(s)), p = e * (1 / sum(e)).

Masked scores. Keras hides a score from the softmax in three ways, and they differ
where a row is masked entirely (a padded query step, or a causal mask that meets
padding at the start of a row):

- Attention, AdditiveAttention (Keras 3 and 2): s - 1e9 where masked. In float32
  that rounds to a multiple of 64 near -1e9, so a fully masked row usually becomes
  uniform weights (the mean of v); its output row is then zeroed by m_q, if any.
- MultiHeadAttention, Keras 3, its fused path (3-D inputs, dropout 0, without
  return_attention_scores; ``ops.dot_product_attention``): s where kept, else
  -0.7 * 3.38953e38; a fully masked row gets uniform weights, the mean of the
  projected values.
- MultiHeadAttention, Keras 3, otherwise (the Softmax layer): s where kept, else
  -1e9, and the weights are set to 0 where masked after the softmax; a fully masked
  row gets weights 0, so its output is the output projection's bias. Keras 2 (its
  Softmax layer): s + (1 - m) * -1e9 (softmax_robust_masking: s where kept, else
  -1e9), never zeroed.

Call arguments. These blocks take arguments besides their input, as the Keras
calls do: ``call_signature`` names the Keras call's parameters in order (the input
first), ``tensor_arguments`` those that take tensors; a model binds each call's
arguments to those names (:mod:`minirnn.model`), checks the constant ones with
:meth:`check_call_arguments`, and runs the block with ``run(values, masks)``, two
dicts by argument name (the masks carried beside the tensors). Static shapes come
the same way: ``weight_shapes`` and ``output_shape`` take a dict by argument name,
tensors as their shapes, constants as they are. Called directly, each block takes
the arguments of the Keras call, masks given explicitly.

Masks in a model. The outputs carry the query's mask, the scores none. Keras 3's
MultiHeadAttention removes the masks of the query, value and key tensors it reads
(``clears_masks``), so calls after it that read those tensors see no mask.

May use: numpy, :mod:`minirnn.activations` and :mod:`minirnn.blocks`.
"""

import math

import numpy as np

from . import activations
from .blocks import Block, _choice, _flag, _int, _number

__all__ = ["Attention", "AdditiveAttention", "MultiHeadAttention", "BLOCKS"]

# keras/src/layers/attention/attention.py, _apply_scores: scores - 1e9 where masked.
_SCORE_PENALTY = 1e9
# keras/src/layers/activations/softmax.py (_large_negative_number) and tf_keras'
# Softmax (_large_compatible_negative): the value of a masked score.
_SOFTMAX_FILL = -1e9
# keras/src/backend/tensorflow/nn.py, _get_large_negative: dot_product_attention's.
_FUSED_FILL = -0.7 * 3.38953e38


def _softmax(x):
    """tf.nn.softmax over the last axis: e = exp(x - max(x)); e * (1 / sum(e))."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e * (1 / e.sum(axis=-1, keepdims=True))


def _softmax_logsumexp(x):
    """Keras' Softmax over several axes, here flattened into the last:
    exp(x - logsumexp(x)), logsumexp(x) = log(sum(exp(x - m))) + m, m = max(x) (0
    where that is not finite), as tf.math.reduce_logsumexp."""
    m = x.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    return np.exp(x - (np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m))


def _rate(config, key, where):
    value = _number(config, key, where, 0.0)
    if not 0 <= value <= 1:
        raise ValueError(f"{where}: `{key}` must be a number in [0, 1]; received {value!r}.")
    return value


def _call_flag(arguments, key, where):
    """A true/false argument of a call (None: false, as Keras reads it)."""
    value = arguments.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{where}: the call argument `{key}` must be true or false; "
                         f"received {str(value)[:80]}.")
    return bool(value)


def _check_training(arguments, where):
    value = arguments.get("training")
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{where}: the call argument `training` must be true, false or "
                         f"null; received {str(value)[:80]}.")


def _causal(Tq, Tv):
    """(1, Tq, Tv): True where step j <= step i (Keras' row index >= column index)."""
    return (np.arange(Tq)[:, None] >= np.arange(Tv)[None, :])[None]


def _bool(mask):
    return None if mask is None else np.asarray(mask).astype(bool)


class Attention(Block):
    """Dot-product (Luong) attention over inputs [q, v] or [q, v, k]::

        s = q @ k^T                              score_mode "dot" (* scale if use_scale)
        s[i, j] = c * sum_d tanh(a * (q_i + k_j))  score_mode "concat" (c the
                                                 concat_score_weight, a the scale or 1)
        s = s - 1e9 where the score mask is False (m_v[j]; and j <= i if causal)
        y = softmax(s) @ v;   y[i] = 0 where m_q[i] is False

    Keras 2's ``causal`` setting and Keras 3's use_causal_mask call argument add the
    causal mask. Weights: scale () if use_scale, then concat_score_weight () for
    "concat". With return_attention_scores the outputs are [y, softmax(s)].

    Mask: the output carries the query's mask m_q (Keras' compute_mask returns
    mask[0]); the scores carry none."""

    keras_class = "Attention"
    call_signature = ("inputs", "mask", "training", "return_attention_scores",
                      "use_causal_mask")
    tensor_arguments = ("inputs", "mask")

    def configure(self, config):
        self.use_scale = _flag(config, "use_scale", self.where, False)
        self.score_mode = _choice(config, "score_mode", self.where, "dot", ("dot", "concat"))
        self.dropout = _rate(config, "dropout", self.where)  # training only
        # Keras 2 up to 2.9 wrote `causal` into the configuration (later a call argument).
        self.causal = _flag(config, "causal", self.where, False)

    def check_call_arguments(self, arguments):
        _check_training(arguments, self.where)
        for key in ("return_attention_scores", "use_causal_mask"):
            _call_flag(arguments, key, self.where)

    @staticmethod
    def _inputs(shapes):
        return shapes["inputs"] if isinstance(shapes, dict) else shapes

    def weight_shapes(self, shapes):
        return [()] * (int(self.use_scale) + int(self.score_mode == "concat"))

    def set_weights(self, arrays):
        # np.array keeps a scalar weight 0-d (ascontiguousarray would make it 1-d)
        self.weights = [np.array(a, self.dtype) for a in arrays]

    def output_shape(self, shapes):
        inputs = self._inputs(shapes)
        if not isinstance(inputs, list) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"{self.where}: the input must be a list [query, value] or "
                             f"[query, value, key]; received {inputs!r}.")
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        y = (*q[:-1], v[-1])
        if isinstance(shapes, dict) and shapes.get("return_attention_scores"):
            return [y, (*q[:-1], k[-2])]
        return y

    def run(self, values, masks):
        return self(values["inputs"], masks.get("inputs"),
                    return_attention_scores=bool(values.get("return_attention_scores")),
                    use_causal_mask=bool(values.get("use_causal_mask")))

    def compute_mask(self, values, masks):
        mask = masks.get("inputs")
        query_mask = mask[0] if mask else None
        if values.get("return_attention_scores"):
            return [query_mask, None]
        return query_mask

    def _scores(self, q, k):
        """(B, Tq, Tv) scores of every query step against every key step."""
        if self.score_mode == "dot":
            scores = q @ np.swapaxes(k, -1, -2)
            return scores * self.weights[0] if self.use_scale else scores
        total = q[..., :, None, :] + k[..., None, :, :]
        if self.use_scale:
            total = self.weights[0] * total
        return self.weights[-1] * np.tanh(total).sum(axis=-1)

    def __call__(self, inputs, mask=None, return_attention_scores=False,
                 use_causal_mask=False):
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"{self.where}: the input must be a list [query, value] or "
                             f"[query, value, key]; received {type(inputs).__name__}.")
        q, v = (np.asarray(x, self.dtype) for x in inputs[:2])
        k = np.asarray(inputs[2], self.dtype) if len(inputs) > 2 else v
        most = 3 if self.semantics == "keras3" else len(inputs)
        if mask is not None and (not isinstance(mask, (list, tuple)) or
                                 not 2 <= len(mask) <= most):
            raise ValueError(f"{self.where}: the mask must be a list [query_mask, "
                             f"value_mask] (2 to {most} entries); received {mask!r}.")
        query_mask = _bool(mask[0]) if mask else None
        value_mask = _bool(mask[1]) if mask else None
        scores = self._scores(q, k)
        keep = None if value_mask is None else value_mask[..., None, :]
        if self.causal or use_causal_mask:
            causal = _causal(scores.shape[-2], scores.shape[-1])
            keep = causal if keep is None else keep & causal
        if keep is not None:
            penalty = np.dtype(self.dtype).type(_SCORE_PENALTY)
            scores = np.where(keep, scores, scores - penalty)
        weights = _softmax(scores)
        y = weights @ v
        if query_mask is not None:
            if self.semantics == "keras2":  # result *= cast(q_mask)
                y = y * np.asarray(mask[0])[..., None].astype(self.dtype)
            else:  # where(q_mask, result, 0)
                y = np.where(query_mask[..., None], y, np.dtype(self.dtype).type(0))
        y = y.astype(self.dtype, copy=False)
        if return_attention_scores:
            return [y, weights.astype(self.dtype, copy=False)]
        return y


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention over inputs [q, v] or [q, v, k]::

        s[i, j] = sum_d a_d * tanh(q_i + k_j)_d   (a the scale (D,) if use_scale, else 1)

    then masks, softmax and the query mask as :class:`Attention`. Weights: scale, of
    the query's size (Keras 3) or the value's (Keras 2), if use_scale (the default).

    Mask: the output carries the query's mask; the scores carry none."""

    keras_class = "AdditiveAttention"

    def configure(self, config):
        self.use_scale = _flag(config, "use_scale", self.where, True)
        self.dropout = _rate(config, "dropout", self.where)
        self.causal = _flag(config, "causal", self.where, False)

    def weight_shapes(self, shapes):
        if not self.use_scale:
            return []
        inputs = self._inputs(shapes)
        return [(inputs[1 if self.semantics == "keras2" else 0][-1],)]

    def _scores(self, q, k):
        total = np.tanh(q[..., :, None, :] + k[..., None, :, :])
        if self.use_scale:
            total = self.weights[0] * total
        return total.sum(axis=-1)


class MultiHeadAttention(Block):
    """Multi-head attention (Vaswani et al.), N heads of size H (key_dim) and Hv
    (value_dim, default H)::

        Q = q @ Wq + bq,  K = k @ Wk + bk,  V = v @ Wv + bv     W (D, N, H): per head
        s[n, i, j] = (Q[i, n] / sqrt(H)) . K[j, n]            (Keras 2, Keras 3's
                                                               Softmax path)
        s[n, i, j] = (Q[i, n] . K[j, n]) / sqrt(H)            (Keras 3's fused path)
        p = softmax over j of s, masked as the module docstring says
        O[i, n] = sum_j p[n, i, j] V[j, n]
        O = O * sigmoid(q @ Wg + bg)                          (Keras 3's use_gate)
        y[i] = sum_{n, h} O[i, n, h] Wo[n, h] + bo             Wo (N, Hv, *output_shape)

    The score mask is the AND of the query's mask (B, Tq, 1), the value's and the
    key's (B, 1, Tv), the causal mask (use_causal_mask), Keras 3's sliding window
    (|i - j| < sliding_window) and the attention_mask argument (B, Tq, Tv); Keras 3
    reads the query's mask off the query tensor, and value_mask / key_mask from the
    call if given, else off those tensors. With inputs of more dimensions,
    attention_axes picks those attended over (default: all but the batch and the
    features), as Keras' einsum equations do.

    Keras 3 rounds 1/sqrt(H) to float32 first (tf.cast of a Python float), in
    float64 models too. Weights, each projection's kernel then its bias (use_bias):
    query, key, gate (use_gate), value, output. With return_attention_scores the outputs are
    [y, p] with p (B, N, Tq, Tv).

    Mask: the output carries the query's mask; the scores carry none."""

    keras_class = "MultiHeadAttention"
    tensor_arguments = ("query", "value", "key", "query_mask", "value_mask", "key_mask",
                        "attention_mask")

    def configure(self, config):
        where = self.where
        self.num_heads = _int(config, "num_heads", where)
        self.key_dim = _int(config, "key_dim", where)
        self.value_dim = self.key_dim if config.get("value_dim") is None else \
            _int(config, "value_dim", where)
        self.dropout = _rate(config, "dropout", where)
        self.use_bias = _flag(config, "use_bias", where, True)
        self.use_gate = _flag(config, "use_gate", where, False)
        self.robust_masking = _flag(config, "softmax_robust_masking", where, False)
        if config.get("flash_attention") not in (None, False):
            raise ValueError(f"{where}: `flash_attention` is not supported by Keras' "
                             "TensorFlow backend either; it must be null or false.")
        window = config.get("sliding_window")
        self.sliding_window = None if window is None else _int(config, "sliding_window",
                                                                where)
        self.output_dims = self._output_dims(config.get("output_shape"))
        axes = config.get("attention_axes")
        if isinstance(axes, int) and not isinstance(axes, bool):
            axes = [axes]
        if axes is not None and (not isinstance(axes, (list, tuple)) or not axes or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in axes)):
            raise ValueError(f"{where}: `attention_axes` must be null, an integer or a list "
                             f"of integers; received {axes!r}.")
        self.attention_axes = None if axes is None else tuple(axes)
        if self.semantics == "keras2":
            self.call_signature = ("query", "value", "key", "attention_mask",
                                   "return_attention_scores", "training", "use_causal_mask")
            self.clears_masks = ()
        else:
            # Keras 3's call removes its inputs' masks (set_keras_mask(query, None),
            # the same for value and key): a model's later calls see them unmasked.
            self.clears_masks = ("query", "value", "key")
            self.call_signature = ("query", "value", "key", "query_mask", "value_mask",
                                   "key_mask", "attention_mask", "return_attention_scores",
                                   "training", "use_causal_mask")

    def _output_dims(self, value):
        """output_shape: null (the query's features), an integer or a list of them."""
        if value is None or value == [] or value == 0:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 2**40
                for n in value):
            raise ValueError(f"{self.where}: `output_shape` must be null, a positive integer "
                             f"or a list of them; received {value!r}.")
        return tuple(value)

    def check_call_arguments(self, arguments):
        _check_training(arguments, self.where)
        for key in ("return_attention_scores", "use_causal_mask"):
            _call_flag(arguments, key, self.where)

    # ---- shapes -------------------------------------------------------------------

    def _axes(self, rank):
        """The attended axes of the projected tensors (rank = input rank + 1), as
        Keras normalises them; each must be one of the input's inner axes."""
        axes = self.attention_axes
        if axes is None:
            return tuple(range(1, rank - 2))
        if self.semantics == "keras3":
            axes = tuple(a if a >= 0 else (rank - 1) + a for a in axes)
        if len(set(axes)) != len(axes) or not all(1 <= a <= rank - 3 for a in axes):
            raise ValueError(f"{self.where}: `attention_axes` {self.attention_axes} must name "
                             f"distinct axes among 1..{rank - 3} of inputs of rank {rank - 1}.")
        return tuple(axes)

    def _shapes(self, shapes):
        if shapes.get("value") is None:
            raise ValueError(f"{self.where}: the call passes no `value`.")
        q, v = tuple(shapes["query"]), tuple(shapes["value"])
        k = v if shapes.get("key") is None else tuple(shapes["key"])
        if len(q) < 3 or len(v) != len(q) or len(k) != len(q):
            raise ValueError(f"{self.where}: query, value and key must have the same rank, "
                             f"3 or more; received shapes {q}, {v}, {k}.")
        if any(a is not None and b is not None and a != b for a, b in zip(v[1:-1], k[1:-1])):
            raise ValueError(f"{self.where}: value and key must have equal dimensions but "
                             f"the last; received shapes {v} and {k}.")
        return q, v, k

    def weight_shapes(self, shapes):
        q, v, k = self._shapes(shapes)
        N, H, Hv = self.num_heads, self.key_dim, self.value_dim
        out = self.output_dims or (q[-1],)

        def projection(features, size):
            return [(features, N, size)] + ([(N, size)] if self.use_bias else [])

        gate = projection(q[-1], Hv) if self.use_gate else []
        return (projection(q[-1], H) + projection(k[-1], H) + gate + projection(v[-1], Hv)
                + [(N, Hv, *out)] + ([out] if self.use_bias else []))

    def output_shape(self, shapes):
        q, v, _ = self._shapes(shapes)
        y = (*q[:-1], *(self.output_dims or (q[-1],)))
        axes = self._axes(len(q) + 1)
        if not shapes.get("return_attention_scores"):
            return y
        batch = [q[a] for a in range(len(q) - 1) if a not in axes]
        return [y, (*batch, self.num_heads, *(q[a] for a in axes), *(v[a] for a in axes))]

    # ---- running ------------------------------------------------------------------

    def run(self, values, masks):
        key = values.get("key")
        if self.semantics == "keras3":
            value_mask = values.get("value_mask")
            value_mask = masks.get("value") if value_mask is None else value_mask
            key_mask = values.get("key_mask")
            key_mask = masks.get("key") if key_mask is None else key_mask
        else:  # tf.keras reads all three off the tensors, the key being the value's
            value_mask = masks.get("value")
            key_mask = value_mask if key is None else masks.get("key")
        return self(values["query"], values["value"], key=key,
                    query_mask=masks.get("query"), value_mask=value_mask, key_mask=key_mask,
                    attention_mask=values.get("attention_mask"),
                    return_attention_scores=bool(values.get("return_attention_scores")),
                    use_causal_mask=bool(values.get("use_causal_mask")))

    def compute_mask(self, values, masks):
        if values.get("return_attention_scores"):
            return [masks.get("query"), None]
        return masks.get("query")

    def _project(self, x, index):
        """EinsumDense "...c,cnh->...nh" (the kernel at ``index``, (C, N, H)) plus its
        bias."""
        kernel = self.weights[index]
        if x.shape[-1] != kernel.shape[0]:
            raise ValueError(f"{self.where}: an input has {x.shape[-1]} features; the "
                             f"weights take {kernel.shape[0]}.")
        y = np.tensordot(x, kernel, axes=1)
        return y + self.weights[index + 1] if self.use_bias else y

    def _attention_mask(self, q, v, query_mask, value_mask, key_mask, attention_mask,
                        causal):
        """The (B, Tq, Tv) score mask of _compute_attention_mask (None: none)."""
        auto = None
        for mask, axis in ((query_mask, -1), (value_mask, -2), (key_mask, -2)):
            if mask is not None:
                mask = np.expand_dims(_bool(mask), axis)
                auto = mask if auto is None else auto & mask
        if causal:
            mask = _causal(q.shape[1], v.shape[1])
            auto = mask if auto is None else auto & mask
        if self.sliding_window is not None:
            distance = np.abs(np.arange(q.shape[1])[:, None] - np.arange(v.shape[1])[None])
            mask = (distance < self.sliding_window)[None]
            auto = mask if auto is None else auto & mask
        if attention_mask is None:
            return auto
        attention_mask = np.asarray(attention_mask)
        if self.semantics == "keras3" or auto is not None:
            attention_mask = attention_mask.astype(bool)
        return attention_mask if auto is None else attention_mask & auto

    @staticmethod
    def _heads_last(x, axes):
        """Projected (B, ..., N, H) -> (B, <other axes>, N, <attended axes>, H): the
        order of Keras' product notation; also the permutation used."""
        rank = x.ndim
        order = [a for a in range(rank - 1) if a not in axes] + list(axes) + [rank - 1]
        return np.transpose(x, order), order

    def __call__(self, query, value, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 use_causal_mask=False):
        dtype = np.dtype(self.dtype)
        q_in, v_in = np.asarray(query, dtype), np.asarray(value, dtype)
        k_in = v_in if key is None else np.asarray(key, dtype)
        self._shapes({"query": q_in.shape, "value": v_in.shape, "key": k_in.shape})
        rank = q_in.ndim + 1
        axes = self._axes(rank)
        mask = self._attention_mask(q_in, v_in, query_mask, value_mask, key_mask,
                                    attention_mask, use_causal_mask)
        step = 2 if self.use_bias else 1  # weights per projection
        Q = self._project(q_in, 0)
        K = self._project(k_in, step)
        gate = activations.sigmoid(self._project(q_in, 2 * step)) if self.use_gate else None
        V = self._project(v_in, (3 if self.use_gate else 2) * step)
        scale = 1.0 / math.sqrt(float(self.key_dim))
        if self.semantics == "keras3":  # tf.cast of a Python float goes through float32
            scale = np.float32(scale)
        scale = dtype.type(scale)
        fused = self.semantics == "keras3" and self.dropout == 0 and \
            not return_attention_scores and rank == 4
        if not fused:
            Q = Q * scale
        Qt, order = self._heads_last(Q, axes)
        Kt, _ = self._heads_last(K, axes)
        Vt, _ = self._heads_last(V, axes)
        batch = Qt.shape[:Qt.ndim - len(axes) - 1]
        target, source = Qt.shape[len(batch):-1], Kt.shape[len(batch):-1]
        if Kt.shape[:len(batch)] != batch:
            raise ValueError(f"{self.where}: query and key differ in the axes not attended "
                             f"over: {q_in.shape} and {k_in.shape}.")

        def flat(x):  # the attended axes as one
            return x.reshape(*batch, math.prod(x.shape[len(batch):-1]), x.shape[-1])

        # scores in Keras' layout (<batch axes>, N, <query axes>, <key axes>)
        scores = (flat(Qt) @ np.swapaxes(flat(Kt), -1, -2)).reshape(*batch, *target, *source)
        if fused:
            scores = scores * scale
        keep = self._expanded(mask, scores, axes)
        scores = self._masked(scores, keep, fused)
        by_row = scores.reshape(*batch, *target, math.prod(source))
        if len(axes) > 1:
            weights = _softmax_logsumexp(by_row)
        else:
            weights = _softmax(by_row)
        weights = weights.reshape(scores.shape).astype(dtype, copy=False)
        if keep is not None and self.semantics == "keras3" and not fused:
            weights = np.where(keep, weights, dtype.type(0))
        combined = weights.reshape(*batch, math.prod(target), math.prod(source)) @ flat(Vt)
        O = np.transpose(combined.reshape(*batch, *target, self.value_dim), np.argsort(order))
        if gate is not None:
            O = O * gate
        y = np.tensordot(O, self.weights[-2 if self.use_bias else -1], axes=2)
        if self.use_bias:
            y = y + self.weights[-1]
        y = y.astype(dtype, copy=False)
        return [y, weights] if return_attention_scores else y

    def _expanded(self, mask, scores, axes):
        """The mask broadcast to the scores, as Keras' _masked_softmax expands it."""
        if mask is None:
            return None
        if mask.ndim > scores.ndim:
            raise ValueError(f"{self.where}: the attention mask has shape {mask.shape}, "
                             f"more dimensions than the scores {scores.shape}.")
        for _ in range(scores.ndim - mask.ndim):
            mask = np.expand_dims(mask, -len(axes) * 2 - 1)
        try:
            return np.broadcast_to(mask, scores.shape)
        except ValueError:
            raise ValueError(f"{self.where}: the attention mask (shape {mask.shape} after "
                             f"expansion) does not fit the scores {scores.shape}.") from None

    def _masked(self, scores, keep, fused):
        """The scores with the masked ones replaced as each Keras path does."""
        if keep is None:
            return scores
        dtype = scores.dtype.type
        if fused:
            return np.where(keep, scores, dtype(_FUSED_FILL))
        if self.semantics == "keras3":
            return np.where(keep, scores, dtype(_SOFTMAX_FILL))
        if self.robust_masking:
            keep = keep if keep.dtype == bool else keep > 0.5
            return np.where(keep, scores, dtype(_SOFTMAX_FILL))
        return scores + (1 - keep.astype(scores.dtype)) * dtype(_SOFTMAX_FILL)


BLOCKS = {cls.keras_class: cls for cls in (Attention, AdditiveAttention, MultiHeadAttention)}
