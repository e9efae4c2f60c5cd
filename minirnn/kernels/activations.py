"""The activations, compiled: one scalar form per function, and the gate passes.

``activate(code, x)`` is the scalar activation named by its integer code (see
``minirnn.activations.ELEMENTWISE``). tanh and sigmoid have two forms each: Eigen's
rational approximations in float32, with or without fused multiply-adds (TensorFlow
uses FMA in its fused LSTM and GRU, plain operations elsewhere), and libm's in
float64. ``activate_gate`` applies an activation to one gate block of every batch
row, through vectorised loops where the activation has one.

May use: numpy, numba, :mod:`minirnn.exact` and its own modules (the compiler hints).
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .. import exact as _exact
from .compiler import _wide_vectors, typed


_SELU_ALPHA = 1.6732632423543772848170429916717


_SELU_SCALE = 1.0507009873554804934193349852946


_LEAKY_RELU_ALPHA = float(np.float32(0.2))  # as TensorFlow: see minirnn.activations


_GELU_SQRT_HALF = float(np.float32(0.7071067811865476))


_FLT_MIN = float(np.finfo(np.float32).tiny)  # smallest normal float32


# Keras 2's hard_sigmoid (minirnn.keras2): a kernel code of its own, outside the
# Keras 3 names of minirnn.activations.
KERAS2_HARD_SIGMOID = 100


TANH, SIGMOID = 1, 2  # the codes of Keras' default activation and recurrent activation


@njit(cache=True, error_model="numpy")
def _softplus(x):
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


def tanh(x):
    """tanh of a scalar: Eigen's float32 rational approximation, or _tanh64."""
    return math.tanh(x)


def sigmoid(x):
    """1 / (1 + exp(-x)) of a scalar: Eigen's float32 formula, or _sigmoid64."""
    return 1.0 / (1.0 + math.exp(-x))


def tanh_fma(x):
    """tanh of a scalar: float32 as ``tanh`` but each multiply-add of Eigen's
    formula one fused multiply-add, with its own clamp bound and no NaN select
    (see _tanh32; the default kernels' one-pass gate loops); float64 as ``tanh``."""
    return math.tanh(x)


def sigmoid_fma(x):
    """sigmoid of a scalar: float32 as ``sigmoid`` with fused multiply-adds (see
    tanh_fma); float64 as ``sigmoid``."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy")
def _mad(a, b, c, fma):
    """a * b + c: rounded once (a fused multiply-add) with ``fma``, else twice, as
    TensorFlow's wheel, built without FMA, rounds its activations. Callers pass a
    constant, so the branch folds away and loops over them still vectorise."""
    return _exact.fma(a, b, c) if fma else a * b + c


@njit(cache=True, error_model="numpy")
def _tanh32(a, fma):
    """Eigen's float32 tanh (what TensorFlow's CPU Tanh computes), branch-free so
    that loops over it vectorise:

        x = clamp(a, -7.9073896, 7.9073896)
        tanh(x) ~= (x + x^3 p(x^2)) / q(x^2)

    with p of degree 3 and q of degree 4 in x^2, evaluated by Horner's rule. Without
    ``fma`` each multiply and add is rounded separately, as in TensorFlow's wheel
    (built without FMA): Eigen's bits. With ``fma`` each step of Horner's rule is
    one fused multiply-add (_mad): 8 instructions fewer, for the default kernels'
    gates. Eigen's bound is where its rounding of the formula reaches 1; the fused
    form reaches 1 only at 8.0177336 (below that it gives 0.9999996 to 0.99999994,
    within 3.5 ulp of the true tanh), so it clamps there and saturates at exactly
    +-1 too.
    """
    bound = np.float32(8.0177335739135742) if fma else np.float32(7.90738964080810547)
    x = min(max(a, -bound), bound)
    x2 = x * x
    p = np.float32(1.394553628e-8)
    p = _mad(p, x2, np.float32(2.102733560e-5), fma)
    p = _mad(p, x2, np.float32(3.520756727e-3), fma)
    p = _mad(p, x2, np.float32(1.340216100e-1), fma)
    q = np.float32(8.015776984e-7)
    q = _mad(q, x2, np.float32(3.326951409e-4), fma)
    q = _mad(q, x2, np.float32(2.597254514e-2), fma)
    q = _mad(q, x2, np.float32(4.673548340e-1), fma)
    q = _mad(q, x2, np.float32(1.0), fma)
    result = _mad(x2 * x, p, x, fma) / q
    if fma:  # a NaN passes the clamp (min and max keep their first argument) and p / q
        return result
    return result if a == a else a


@njit(cache=True, error_model="numpy")
def _sigmoid32(a, fma):
    """Eigen's float32 logistic (what TensorFlow's CPU Sigmoid computes in its
    vector path), branch-free: e = exp(x / 2)^2 with a Cephes-style exp, then
    e / (1 + e); inputs below -104 give 0.

        exp(x) = 2^m * P(r),  m = floor(x log2(e) + 1/2),  r = x - m ln 2

    ``fma``: as _tanh32's (Eigen's bits without it).
    """
    one = np.float32(1.0)
    x = min(a, np.float32(16.6355324)) * np.float32(0.5)
    x = max(x, np.float32(-52.0))
    m = np.floor(_mad(x, np.float32(1.44269504088896341), np.float32(0.5), fma))
    r = _mad(m, np.float32(-0.693359375), x, fma)
    r = _mad(m, np.float32(2.12194440e-4), r, fma)
    r2 = r * r
    p_even = _mad(r2, np.float32(4.1898667812347412109375e-2),
                  np.float32(0.49999141693115234375), fma)
    p_odd = _mad(r2, np.float32(8.33471305668354034423828125e-3),
                 np.float32(0.16666877269744873046875), fma)
    p = _mad(r, p_odd, p_even, fma)
    p = _mad(r2, p, r + one, fma)
    two_m = np.int32((np.int32(m) + 127) << 23).view(np.float32)
    e = p * two_m
    e = e * e
    result = e / (one + e)
    # Fused, e * e already underflows to 0 at the clamp x = -52 (a < -104): 6.8e-46,
    # under half the smallest denormal (7.0e-46) in round-to-nearest.
    if not fma:
        result = np.float32(0.0) if a < np.float32(-104.0) else result
    return result if a == a else a


@njit(cache=True, error_model="numpy")
def _exp64(a):
    """exp of a float64, branch-free (so loops over it vectorise), to about 1 ulp.

    Cephes' method: a = m ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts so
    m ln2 is exact), exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)) with a Pade
    approximant, then the exponent m is added to the bits of the result.
    """
    x = min(max(a, -708.0), 709.0)
    m = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - m * 6.93145751953125e-1
    r = r - m * 1.42860682030941723212e-6
    r2 = r * r
    p = r * ((1.26177193074810590878e-4 * r2 + 3.02994407707441961300e-2) * r2
             + 9.99999999999999999910e-1)
    q = ((3.00198505138664455042e-6 * r2 + 2.52448340349684104192e-3) * r2
         + 2.27265548208155028766e-1) * r2 + 2.00000000000000000009e0
    e = 1.0 + 2.0 * (p / (q - p))
    result = e * np.int64((np.int64(m) + 1023) << 52).view(np.float64)
    result = math.inf if a > 709.0 else result
    result = 0.0 if a < -708.0 else result
    return result if a == a else a


@njit(cache=True, error_model="numpy")
def _tanh64(a):
    """tanh of a float64, branch-free, to a few ulp.

    |a| < 0.625: Cephes' rational approximation a + a z P(z) / Q(z), z = a^2;
    otherwise 1 - 2 / (exp(2|a|) + 1), with the sign of a.
    """
    z = a * a
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z \
        - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z \
        + 4.84406305325125486048e3
    small = a + a * z * p / q
    big = 1.0 - 2.0 / (_exp64(2.0 * abs(a)) + 1.0)
    big = big if a >= 0 else -big
    return small if abs(a) < 0.625 else big


@njit(cache=True, error_model="numpy")
def _sigmoid64(x):
    """1 / (1 + exp(-x)) in float64, branch-free."""
    e = _exp64(-abs(x))
    positive = 1.0 / (1.0 + e)
    return positive if x >= 0 else e / (1.0 + e)


def _by_precision(form32, form64, fma):
    """The overload of tanh, sigmoid, tanh_fma or sigmoid_fma: ``form32(x, fma)``
    for a float32 x, ``form64(x)`` otherwise."""
    def choose(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: form32(x, fma)
        return lambda x: form64(x)
    return choose


for _scalar, _form32, _form64, _fma in ((tanh, _tanh32, _tanh64, False),
                                        (sigmoid, _sigmoid32, _sigmoid64, False),
                                        (tanh_fma, _tanh32, _tanh64, True),
                                        (sigmoid_fma, _sigmoid32, _sigmoid64, True)):
    overload(_scalar)(_by_precision(_form32, _form64, _fma))


del _scalar, _form32, _form64, _fma


@njit(cache=True, error_model="numpy")
def _hard_sigmoid(x):
    zero, three, six = typed(x, 0.0), typed(x, 3.0), typed(x, 6.0)
    return min(max(x + three, zero), six) / six


@njit(cache=True, error_model="numpy")
def activate(code, x):
    """Element-wise Keras 3 activation number ``code`` (see minirnn.activations).

    Computed in the type of x (float32 or float64). NaN propagates, except through
    soft_shrink and hard_shrink, which map it to 0 as Keras does.
    """
    zero, half, one = typed(x, 0.0), typed(x, 0.5), typed(x, 1.0)
    if code == 1:
        return tanh(x)
    if code == 2:
        return sigmoid(x)
    if code == 0:
        return x
    if code == 3:
        return _hard_sigmoid(x)
    if code == 4:
        return zero if x < zero else x
    if code == 5:
        six = typed(x, 6.0)
        return zero if x < zero else (six if x > six else x)
    if code == 6:
        return x if x > zero else typed(x, _LEAKY_RELU_ALPHA) * x
    if code == 7:
        return x if x > zero else math.expm1(x)
    if code == 8:
        scale, alpha = typed(x, _SELU_SCALE), typed(x, _SELU_ALPHA)
        return scale * (x if x > zero else alpha * math.expm1(x))
    if code == 9:
        return _softplus(x)
    if code == 10:
        return x / (one + abs(x))
    if code == 11:
        if x > half:
            return x - half
        if x < -half:
            return x + half
        return zero  # NaN too, as Keras' tf.where chain gives
    if code == 12:
        if x <= -one:
            return zero
        if x < one:
            return typed(x, 0.25) * ((x + one) * (x + one))
        return x
    if code == 13:
        return x * sigmoid(x)
    if code == 14:
        return (x + math.sqrt(x * x + typed(x, 4.0))) / typed(x, 2.0)
    if code == 15:
        return half * x * math.erfc(-x * typed(x, _GELU_SQRT_HALF))
    if code == 16:
        return max(x, zero) + math.expm1(min(x, zero))
    if code == 17:
        return x - tanh(x)
    if code == 18:
        return -one if x < -one else (one if x > one else x)
    if code == 19:
        return x if abs(x) > half else zero  # NaN too, as in Keras
    if code == 20:
        return math.exp(x)
    if code == 21:
        return x * _hard_sigmoid(x)
    if code == 22:
        return x * math.tanh(_softplus(x))
    if code == 23:
        return -_softplus(-x)
    if code == 24:
        if x <= -one:
            return zero
        if x >= one:
            return one
        return half * (x + one)
    if code == KERAS2_HARD_SIGMOID:
        return _keras2_hard_sigmoid(x)
    return x * typed(x, math.nan)


@njit(cache=True, error_model="numpy")
def _keras2_hard_sigmoid(x):
    """Keras 2's hard sigmoid: clip(x * 0.2 + 0.5, 0, 1); NaN stays NaN."""
    zero, one = typed(x, 0.0), typed(x, 1.0)
    y = x * typed(x, 0.2) + typed(x, 0.5)
    return zero if y < zero else (one if y > one else y)


@njit(cache=True, error_model="numpy")
def activate_array(code, values):
    """Apply activation ``code`` to a copy of a 1-D or N-D array (for tests)."""
    out = np.empty_like(values)
    flat_in = values.ravel()
    flat_out = out.ravel()
    for k in range(flat_in.size):
        flat_out[k] = activate(code, flat_in[k])
    return out


@njit(cache=True, error_model="numpy")
def activate_block(code, values, fma=False):
    """values = activation(values), in place, for a 1-D array (or slice).

    tanh and sigmoid get their own loops with branch-free bodies, which the
    compiler vectorises (Eigen's formulas; with ``fma`` their fused multiply-add
    form, tanh_fma and sigmoid_fma), and so do the hard sigmoids of Keras 3 and
    Keras 2 (the recurrent activation of every Keras <= 2.2 model: the gate-by-gate
    pass of ethnicolr's LSTM(100) at (32, 12, 32) went from 1.3 to about 0.4 ms);
    other activations go element by element through ``activate``, whose branch on
    the code keeps the loop scalar. The values are the same either way. Loops run
    over ``range(values.size)``: indices known to be non-negative keep Numba's
    wrap-around checks (and their branches) out.
    """
    _wide_vectors()
    if code == 1 and fma:
        for k in range(values.size):
            values[k] = tanh_fma(values[k])
    elif code == 1:
        for k in range(values.size):
            values[k] = tanh(values[k])
    elif code == 2 and fma:
        for k in range(values.size):
            values[k] = sigmoid_fma(values[k])
    elif code == 2:
        for k in range(values.size):
            values[k] = sigmoid(values[k])
    elif code == KERAS2_HARD_SIGMOID:
        for k in range(values.size):
            values[k] = _keras2_hard_sigmoid(values[k])
    elif code == 3:
        for k in range(values.size):
            values[k] = _hard_sigmoid(values[k])
    else:
        for k in range(values.size):
            values[k] = activate(code, values[k])


@njit(cache=True, error_model="numpy")
def _flush_denormal(x):
    """x, or a zero of x's sign where x is denormal: how an operation running with
    DAZ (see minirnn.exact) reads it."""
    return typed(x, 0.0) * x if abs(x) < typed(x, _FLT_MIN) else x


@njit(cache=True, error_model="numpy")
def activate_vector_path(code, x):
    """Activation ``code`` as TensorFlow's 8-wide path computes it (float32, exact
    mode), where that differs from ``activate`` in signed zeros and denormals:
    relu and relu6 give +0 for -0 and for denormals (a vector max against +0),
    hard_tanh reads denormals as zeros. NaN stays NaN.
    """
    zero = typed(x, 0.0)
    if code == 4:  # relu
        return x if x > zero or x != x else zero
    if code == 5:  # relu6
        six = typed(x, 6.0)
        if x > six:
            return six
        return x if x > zero or x != x else zero
    if code == 18:  # hard_tanh
        return activate(code, _flush_denormal(x))
    return activate(code, x)


@njit(cache=True, error_model="numpy")
def activate_scalar_path(code, x, lone):
    """Activation ``code`` as TensorFlow's scalar path computes it for the last
    n mod 8 elements of a tensor (float32, exact mode); ``lone``: n mod 8 is 1.

    The sigmoid has its own formula there (see minirnn.exact), which silu contains.
    relu and relu6 keep -0; relu keeps a denormal when it is the only element of
    the tail and reads it as a zero otherwise, relu6 always keeps it (as measured).
    hard_tanh reads denormals as zeros, as in the vector path.
    """
    if code == 2:  # sigmoid
        return _exact.sigmoid_scalar_path(x)
    if code == 13:  # silu
        return x * _exact.sigmoid_scalar_path(x)
    if code == 4:  # relu
        if lone:
            return typed(x, 0.0) if x <= -typed(x, _FLT_MIN) else x
        return typed(x, 0.0) if x < typed(x, 0.0) else _flush_denormal(x)
    if code == 18:  # hard_tanh
        return activate(code, _flush_denormal(x))
    return activate(code, x)


@njit(cache=True, error_model="numpy")
def activate_gate(code, values, first, size, exact):
    """activate_block for a row of a gate tensor of ``size`` (B * M) elements, the
    row starting at flat index ``first``. With exact, the elements of the last
    size mod 8 take TensorFlow's scalar path, as its whole-tensor activation does.
    """
    if not exact:
        activate_block(code, values)
        return
    tail = size - size % 8
    split = min(values.size, max(0, tail - first))
    if code in (4, 5, 18):  # relu, relu6, hard_tanh: their own vector-path rules
        for k in range(split):
            values[k] = activate_vector_path(code, values[k])
    elif split == values.size:  # the common case: the whole row on the vector path
        activate_block(code, values)
    else:
        activate_block(code, values[:split])
    lone = size % 8 == 1
    for k in range(split, values.size):
        values[k] = activate_scalar_path(code, values[k], lone)
