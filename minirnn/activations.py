"""Keras 3 activation functions, by name, in readable NumPy.

Every name that ``keras.activations.get`` accepts and that can act on a recurrent
gate is here, with the formula and default arguments of Keras 3's TensorFlow
backend (``keras/src/backend/tensorflow/nn.py``):

==================  ==============================================================
name                formula
==================  ==============================================================
linear (None)       x
tanh                tanh(x)
sigmoid             1 / (1 + exp(-x))
hard_sigmoid        relu6(x + 3) / 6            (Keras 3; Keras 2 used 0.2x + 0.5)
relu                max(x, 0)
relu6               min(max(x, 0), 6)
leaky_relu          x if x > 0 else 0.2 x
elu                 x if x > 0 else exp(x) - 1
selu                1.0507... * (x if x > 0 else 1.6732... (exp(x) - 1))
softplus            log(1 + exp(x))
softsign            x / (1 + |x|)
soft_shrink         x - 0.5 if x > 0.5, x + 0.5 if x < -0.5, else 0
sparse_plus         0 if x <= -1, (x + 1)^2 / 4 if x < 1, else x
silu, swish         x * sigmoid(x)
squareplus          (x + sqrt(x^2 + 4)) / 2
gelu                x / 2 * erfc(-x / sqrt(2))  (exact, Keras' default)
celu                max(x, 0) + expm1(min(x, 0))
tanh_shrink         x - tanh(x)
hard_tanh           clip(x, -1, 1)
hard_shrink         x if |x| > 0.5 else 0
exponential         exp(x)
hard_silu,          x * hard_sigmoid(x)
  hard_swish
mish                x * tanh(softplus(x))
log_sigmoid         -softplus(-x)
sparse_sigmoid      0 if x <= -1, 1 if x >= 1, else (x + 1) / 2
softmax             exp(x - max) / sum(exp(x - max))      over the units axis
log_softmax         x - max - log(sum(exp(x - max)))      over the units axis
sparsemax           max(x - tau, 0), Martins & Astudillo   over the units axis
==================  ==============================================================

The last three mix the units of a gate, so the fused kernels do not run them;
layers using them take the readable NumPy path (see ``minirnn.layers``).

Two names Keras accepts cannot be a recurrent activation and are refused:
``glu`` halves the units axis, and ``threshold`` needs two more arguments.

Each element-wise function has an integer code, shared with the scalar
implementations in :mod:`minirnn.kernels`; tests hold the two against each other.

May use: numpy and scipy.
"""

import numpy as np

__all__ = ["get", "code_of", "names", "ELEMENTWISE", "ROWWISE"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# TensorFlow passes these two constants through float32 even in float64
# computations (leaky_relu's `alpha` is a float attribute; gelu casts a Python
# float constant), so float64 results use the float32-rounded values.
LEAKY_RELU_ALPHA = float(np.float32(0.2))
GELU_SQRT_HALF = float(np.float32(0.7071067811865476))


def linear(x):
    return x


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def relu6(x):
    return np.minimum(np.maximum(x, 0), 6)


def hard_sigmoid(x):
    return relu6(x + 3) / 6


# relu and leaky_relu by np.maximum rather than np.where, which took ten times as long
# on (32, 82, 128) float32 arrays (1.2 ms against 0.11; NumPy 2.4, Xeon family 6 model
# 167). A NaN stays NaN; -0 becomes +0, as on TensorFlow's vector path.

def relu(x):
    return np.maximum(x, x.dtype.type(0))


def leaky_relu(x):
    return np.maximum(x, x * x.dtype.type(LEAKY_RELU_ALPHA))  # the slope is below 1


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def selu(x):
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def softplus(x):
    return np.logaddexp(np.zeros_like(x), x)


def softsign(x):
    return x / (1 + np.abs(x))


def soft_shrink(x):
    return np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)).astype(x.dtype)


def sparse_plus(x):
    return np.where(x <= -1, 0, np.where(x < 1, 0.25 * (x + 1) ** 2, x)).astype(x.dtype)


def silu(x):
    return x * sigmoid(x)


def squareplus(x):
    return (x + np.sqrt(x * x + 4)) / 2


def gelu(x):
    from scipy.special import erfc  # imported here: scipy.special takes 0.2 s to import
    return 0.5 * x * erfc(-x * GELU_SQRT_HALF).astype(x.dtype)


def celu(x):
    return np.maximum(x, 0) + np.expm1(np.minimum(x, 0))


def tanh_shrink(x):
    return x - np.tanh(x)


def hard_tanh(x):
    return np.clip(x, -1, 1)


def hard_shrink(x):
    return np.where(np.abs(x) > 0.5, x, 0).astype(x.dtype)


def exponential(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def hard_silu(x):
    return x * hard_sigmoid(x)


def mish(x):
    return x * np.tanh(softplus(x))


def log_sigmoid(x):
    return -softplus(-x)


def sparse_sigmoid(x):
    return np.where(x <= -1, 0, np.where(x >= 1, 1, 0.5 * (x + 1))).astype(x.dtype)


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def sparsemax(x):
    """Euclidean projection onto the simplex (Martins & Astudillo, 2016), as Keras."""
    z = -np.sort(-x, axis=-1)
    cumsum = np.cumsum(z, axis=-1)
    k = np.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    support = z - (cumsum - 1) / k > 0
    count = np.sum(support, axis=-1, keepdims=True).astype(x.dtype)
    tau = (np.sum(np.where(support, cumsum, 0), axis=-1, keepdims=True) - 1) / count
    return np.maximum(x - tau, 0).astype(x.dtype)


# name -> (function, kernel code). Codes are the indices understood by
# minirnn.kernels.activate; keep the two tables in step.
ELEMENTWISE = {
    "linear": (linear, 0),
    "tanh": (tanh, 1),
    "sigmoid": (sigmoid, 2),
    "hard_sigmoid": (hard_sigmoid, 3),
    "relu": (relu, 4),
    "relu6": (relu6, 5),
    "leaky_relu": (leaky_relu, 6),
    "elu": (elu, 7),
    "selu": (selu, 8),
    "softplus": (softplus, 9),
    "softsign": (softsign, 10),
    "soft_shrink": (soft_shrink, 11),
    "sparse_plus": (sparse_plus, 12),
    "silu": (silu, 13),
    "swish": (silu, 13),
    "squareplus": (squareplus, 14),
    "gelu": (gelu, 15),
    "celu": (celu, 16),
    "tanh_shrink": (tanh_shrink, 17),
    "hard_tanh": (hard_tanh, 18),
    "hard_shrink": (hard_shrink, 19),
    "exponential": (exponential, 20),
    "hard_silu": (hard_silu, 21),
    "hard_swish": (hard_silu, 21),
    "mish": (mish, 22),
    "log_sigmoid": (log_sigmoid, 23),
    "sparse_sigmoid": (sparse_sigmoid, 24),
}

ROWWISE = {
    "softmax": softmax,
    "log_softmax": log_softmax,
    "sparsemax": sparsemax,
}

_REFUSED = {
    "glu": "it halves the units axis, so the gate shapes no longer match",
    "threshold": "it needs the arguments `threshold` and `default_value`, which a "
    "recurrent layer cannot pass",
}


def names():
    """All activation names a minirnn layer accepts."""
    return sorted(list(ELEMENTWISE) + list(ROWWISE))


def canonical(identifier, argument="activation"):
    """Validate an activation identifier and return its canonical name.

    None means linear, as in Keras. Raises TypeError for anything but a string
    or None, ValueError for an unknown or refused name.
    """
    if identifier is None:
        return "linear"
    if not isinstance(identifier, str):
        raise TypeError(
            f"`{argument}` must be the name of a Keras 3 activation (a string) or None; "
            f"received {identifier!r} of type {type(identifier).__name__}. Custom "
            "activation functions are not supported."
        )
    if identifier in _REFUSED:
        raise ValueError(
            f"`{argument}`={identifier!r} cannot be used in a recurrent layer: "
            f"{_REFUSED[identifier]}."
        )
    if identifier not in ELEMENTWISE and identifier not in ROWWISE:
        raise ValueError(
            f"Unknown `{argument}`: expected one of {names()}; received {identifier!r}."
        )
    if identifier == "swish":
        return "silu"
    if identifier == "hard_swish":
        return "hard_silu"
    return identifier


def get(identifier, argument="activation"):
    """The NumPy function for a Keras 3 activation name (None means linear)."""
    name = canonical(identifier, argument)
    if name in ROWWISE:
        return ROWWISE[name]
    return ELEMENTWISE[name][0]


def code_of(identifier):
    """The kernel code of an element-wise activation, or None for a row-wise one.

    Canonical names (what layers store) are looked up directly: layers ask at
    every call.
    """
    if isinstance(identifier, str) and identifier in ELEMENTWISE:
        return ELEMENTWISE[identifier][1]
    name = canonical(identifier)
    if name in ROWWISE:
        return None
    return ELEMENTWISE[name][1]
