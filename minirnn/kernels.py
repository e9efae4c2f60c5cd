"""Numba-compiled sequence kernels: the fast path.

Each kernel runs a whole sequence compiled, and computes what the matching step in
:mod:`minirnn.equations` computes, in the same order of floating-point operations
(so float64 results agree with Keras to machine precision):

1. The input projection ``x @ W`` is hoisted out of the time loop: the inputs of a
   chunk of timesteps are gathered time-major into one (steps * B, D) block and
   projected with one matrix product. Chunks keep the scratch memory bounded by
   ``_CHUNK_ELEMENTS`` whatever T is.
2. One recurrent matrix product ``h @ U`` per step for all gates together (the
   GRU without reset_after needs a second, ``(r * h) @ U_h``).
3. One pass per step over the gate pre-activations of every batch row: bias,
   activations, state update, mask, output write. With Keras' default activations
   (tanh and sigmoid) each unit's gates and states are computed together in one
   loop, one call per step (``_lstm_rows``, ``_gru_rows``), with the activations'
   fused multiply-add form; other activations go row by row and gate block by gate
   block, with Eigen's. The element-wise loops are compiled with the CPU's widest
   vectors (``_wide_vectors``).

Masks and go_backwards are handled inside. The matrix products use the weights
packed once by the layer (:mod:`minirnn.gemm`), or in the bitwise mode
:mod:`minirnn.exact`; a caller that passes no panels gets Numba's ``np.dot``
(SciPy's BLAS). The callers (:mod:`minirnn.layers`) check every shape and
dtype before calling, with messages naming the argument; the kernels check the
shapes again and raise ValueError rather than index out of bounds. They release
the GIL, so a layer can run slices of its batch on several threads (every row of
a batch is independent).

Activations are passed as integer codes (see ``minirnn.activations.ELEMENTWISE``).
"""

import math
import os
import sys
import tempfile

import numpy as np


def _ensure_cache_dir(package_dir=None):
    """Use a writable Numba cache even when the package directory is read-only.

    Numba caches compiled kernels in ``__pycache__`` beside this file. Where that is
    not writable (a read-only install) and NUMBA_CACHE_DIR is not set, point Numba
    at ``$XDG_CACHE_HOME/minirnn-numba`` (default ``~/.cache``), or at the system's
    temporary directory as a last resort. Returns the directory chosen, or None.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = package_dir or os.path.dirname(os.path.abspath(__file__))
    try:
        probe = os.path.join(here, "__pycache__")
        os.makedirs(probe, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=probe):
            pass
        return None
    except OSError:
        pass
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    for fallback in (os.path.join(home_cache, "minirnn-numba"),
                     os.path.join(tempfile.gettempdir(), "minirnn-numba")):
        try:
            os.makedirs(fallback, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=fallback):
                pass
        except OSError:
            continue
        os.environ["NUMBA_CACHE_DIR"] = fallback
        if "numba" in sys.modules:  # imported earlier: make it read the variable again
            sys.modules["numba"].core.config.reload_config()
        return fallback
    return None


_ensure_cache_dir()

# The imports below come after the cache directory is settled.
import numba  # noqa: E402
from numba import literal_unroll, njit, types  # noqa: E402
from numba.core.registry import cpu_target  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402
from llvmlite import ir  # noqa: E402

from . import exact as _exact  # noqa: E402
from . import gemm as _gemm  # noqa: E402
from . import handoff as _handoff  # noqa: E402

# Numba loads its NumPy typing and lowering registries on the first compiled call
# (about 0.2-0.5 s), even when every kernel comes from the cache. Loading them here,
# at import, keeps that one-off cost out of the first call of a layer.
cpu_target.target_context.refresh()

# Weights of at most this many elements are multiplied by plain loops (a call into
# BLAS or minirnn.gemm costs more than the arithmetic there).
_SMALL_WEIGHTS = 256

# Scratch for the hoisted input projection, in elements: 1 MiB in float32 (2 in
# float64) whatever T is. The projection is read back one step at a time, so it
# pays to keep a chunk in the second-level cache: on a Xeon (Emerald Rapids, 2 MiB
# per core) 1 MiB chunks gave 5-10% shorter calls from (32, 100, 128, 128) up than
# the 16 MiB chunks used before.
_CHUNK_ELEMENTS = 1 << 18

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_LEAKY_RELU_ALPHA = float(np.float32(0.2))  # as TensorFlow: see minirnn.activations
_GELU_SQRT_HALF = float(np.float32(0.7071067811865476))
_FLT_MIN = float(np.finfo(np.float32).tiny)  # smallest normal float32
# Keras 2's hard_sigmoid (minirnn.keras2): a kernel code of its own, outside the
# Keras 3 names of minirnn.activations.
KERAS2_HARD_SIGMOID = 100

TANH, SIGMOID = 1, 2  # the codes of Keras' default activation and recurrent activation


@intrinsic
def _wide_vectors(typingctx):
    """Let the compiler vectorise the calling function's loops with the CPU's widest
    vectors.

    LLVM's tuning for recent Intel CPUs (Skylake-X to Emerald Rapids) keeps loops it
    vectorises to 256 bits, even with AVX-512, to avoid the clock drop that wide
    vectors once cost. For the gate passes here 512-bit vectors are about 1.5x
    faster (measured on a Xeon Emerald Rapids), so each function with a hot
    element-wise loop calls this first: it marks the function with LLVM's
    ``"prefer-vector-width"="512"``. On a CPU without AVX-512 the attribute changes
    nothing; each element's arithmetic is the same at any width.
    """
    def codegen(context, builder, signature, args):
        # llvmlite's attribute set names the attributes it knows; this one is a
        # string attribute, which LLVM reads from the function's definition.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen



@intrinsic
def _disjoint_arrays(typingctx):
    """Tell the compiler that the calling function's array arguments share no memory,
    so that it needs no run-time overlap checks before a vectorised loop (LLVM's
    ``noalias`` on each pointer to array data).

    Only for the one-pass steps, whose caller passes whole (B, .) arrays and checks
    that the states, output, outputs (return_sequences) and biases do not overlap
    (``_overlap``; the two GRU biases may be one array: both are only read): with
    overlapping arrays this promise would make the results silently wrong. Measured
    on a Xeon (Emerald Rapids): an LSTM row 14% faster at M = 128, 19% at M = 64.
    """
    def codegen(context, builder, signature, args):
        for argument in builder.function.args:
            pointer = argument.type
            if isinstance(pointer, ir.PointerType) and not pointer.is_opaque \
                    and isinstance(pointer.pointee, (ir.FloatType, ir.DoubleType)):
                argument.add_attribute("noalias")
        return context.get_dummy_value()
    return types.none(), codegen


def typed(x, value):
    """``value`` as a scalar of x's floating type.

    Python float literals are float64 in Numba and would silently promote float32
    arithmetic to float64; every constant in a kernel goes through this, so float32
    activations are computed in float32 (overflowing where TensorFlow's do).
    """
    return value


@overload(typed)
def _typed_overload(x, value):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)


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
def _chunk_steps(B, T, width):
    return max(1, min(T, _CHUNK_ELEMENTS // max(1, B * width)))


def _packed_product(a, panels, out, k0, k1):
    """out = a[:, k0:k1] @ W[k0:k1] from W's packed panels (minirnn.gemm), panels
    of a's dtype."""


@overload(_packed_product)
def _packed_product_overload(a, panels, out, k0, k1):
    if a.dtype == panels.dtype:
        return lambda a, panels, out, k0, k1: _gemm.matmul_over(a, panels, out, k0, k1)

    def refuse(a, panels, out, k0, k1):  # compiled for "no panels" of another dtype, never run
        raise ValueError("packed panels of another dtype than the operand")
    return refuse


@njit(cache=True, error_model="numpy")
def _small_product(a, b, out):
    """out[:, :N] = a @ b by plain loops, for weights too small to be worth a call
    into BLAS or the tiles (the seed layer's (1 x 3) @ (3 x 12)): each output one
    chain of fused multiply-adds over k in order, as minirnn.gemm's tiles (and
    oneDNN, for K up to 384) sum."""
    _wide_vectors()
    R, K = a.shape
    N = b.shape[1]
    for i in range(R):
        o = out[i]
        for j in range(N):
            o[j] = 0
        for k in range(K):
            a_ik = a[i, k]
            b_k = b[k]
            for j in range(N):
                o[j] = _exact.fma(a_ik, b_k[j], o[j])


@njit(cache=True, error_model="numpy")
def _exact_product(a, b, panels, out, rows_per_product):
    """out = a @ b summed as oneDNN sums a product of ``rows_per_product`` rows
    (minirnn.exact): one chain of fused multiply-adds over each block of k from
    zero, the blocks' sums added left to right.

    Each block is a chain in the order the packed tiles sum, so the tiles compute
    it (gemm.matmul_over); without panels (then out is as wide as b, see _width),
    minirnn.exact does."""
    if panels.shape[0] == 0:
        _exact.matmul(a, b, out, rows_per_product)
        return
    bounds = _exact._k_bounds(b.shape[0], rows_per_product == 1)
    _packed_product(a, panels, out, bounds[0], bounds[1])
    if bounds.size > 2:
        part = np.empty_like(out)
        for n in range(1, bounds.size - 1):
            _packed_product(a, panels, part, bounds[n], bounds[n + 1])
            out += part


@njit(cache=True, error_model="numpy")
def _product(a, b, panels, out, exact, rows_per_product):
    """out = a @ b: with exact, summed in oneDNN's order (_exact_product); small
    weights by plain loops; else from b's packed panels where the layer packed
    them (minirnn.gemm); else BLAS."""
    if exact:
        _exact_product(a, b, panels, out, rows_per_product)
    elif b.size <= _SMALL_WEIGHTS:
        _small_product(a, b, out)
    elif panels.shape[0] > 0:
        _packed_product(a, panels, out, 0, a.shape[1])
    else:
        np.dot(a, b, out)


@njit(cache=True, error_model="numpy")
def _width(b, panels):
    """Row length of a product's output: b's columns, or whole panels when packed."""
    return panels.shape[0] * panels.shape[2] if panels.shape[0] > 0 else b.shape[1]


@njit(cache=True, error_model="numpy")
def _check_panels(b, panels):
    """Packed panels (if any) must hold b: its dtype, K rows, at least its columns."""
    if panels.shape[0] > 0 and (panels.itemsize != b.itemsize
                                or panels.shape[1] != b.shape[0]
                                or panels.shape[0] * panels.shape[2] < b.shape[1]):
        raise ValueError("sequence kernel: the packed panels do not fit their weights")


@njit(cache=True, error_model="numpy")
def _project_chunk(x, kernel, panels, s0, n, go_backwards, scratch, xw, exact):
    """xw[:n*B] = x @ W for processing steps s0 .. s0+n-1, time-major: row s*B + b.

    Both buffers are allocated once per call of a sequence kernel (starting a
    cache line, gemm.aligned_rows) and reused by every chunk (fresh multi-megabyte
    allocations cost page faults each time).
    With exact, each step's B rows are summed as Keras' per-step product would be.
    """
    B, T, D = x.shape
    for s in range(n):
        t = T - 1 - (s0 + s) if go_backwards else s0 + s
        for b in range(B):
            row = s * B + b
            for k in range(D):  # a plain loop: cheaper than Numba's slice assignment
                scratch[row, k] = x[b, t, k]
    _product(scratch[: n * B], kernel, panels, xw[: n * B], exact, B)


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


@njit(cache=True, error_model="numpy")
def _preactivation(xw, hu, b, bias_first):
    """One element of an LSTM's z: (xW + hU) + b, or Keras' implementation=1 order
    (xW + b) + hU when bias_first.

    Scalars in, scalar out: passing arrays to a function inside a hot loop makes
    Numba count references on every call, which stops the loop vectorising (a
    10x slower LSTM step)."""
    return (xw + b) + hu if bias_first else (xw + hu) + b


@njit(cache=True, error_model="numpy")
def _lstm_rows(z, xw, first, bias, c, h, output, outputs, step, mask, use_mask, t,
               zero_output_for_mask, return_sequences, bias_first):
    """One LSTM step with Keras' default activations for every batch row b, each
    unit's four gates and its states in one pass (the compiler vectorises it over j)::

        i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
        c' = f * c + i * g
        h' = o * tanh(c')

    with z = (xW + hU) + b, or (xW + b) + hU when bias_first; z[b]: the row of
    h U, xw[first + b]: the row of x W. Writes c[b] and h[b] in place and h' into
    output[b]; then output[b] into outputs[b, step] when return_sequences. Keras'
    mask rule: where mask[b, t] is False (use_mask) the states stay as they are,
    and the output too, or it is zeroed with zero_output_for_mask.

    Each element is computed as the gate-by-gate pass in lstm_sequence computes
    it, but for the form of sigmoid and tanh: here their fused multiply-add form
    (sigmoid_fma, tanh_fma; a fifth less time for the whole pass), there Eigen's,
    as TensorFlow rounds. Gates within [0, 1] and [-1, 1] damp a changed last bit;
    the gate-by-gate pass serves every other activation, some of which (selu,
    elu, exponential) amplify it over the steps, so it keeps TensorFlow's bits.
    One call per step, not per row: a call costs about 50 ns (its array
    arguments), a fifth of a row of 128 units. The arrays must not overlap
    (lstm_sequence checks).
    """
    _wide_vectors()
    _disjoint_arrays()
    B, M = c.shape
    for b in range(B):
        if use_mask and not mask[b, t]:
            if zero_output_for_mask:
                for j in range(M):
                    output[b, j] = 0
        else:
            row = first + b
            for j in range(M):
                zi = _preactivation(xw[row, j], z[b, j], bias[j], bias_first)
                zf = _preactivation(xw[row, M + j], z[b, M + j], bias[M + j], bias_first)
                zg = _preactivation(xw[row, 2 * M + j], z[b, 2 * M + j], bias[2 * M + j],
                                    bias_first)
                zo = _preactivation(xw[row, 3 * M + j], z[b, 3 * M + j], bias[3 * M + j],
                                    bias_first)
                c_j = sigmoid_fma(zf) * c[b, j] + sigmoid_fma(zi) * tanh_fma(zg)
                c[b, j] = c_j
                h_j = sigmoid_fma(zo) * tanh_fma(c_j)
                h[b, j] = h_j
                output[b, j] = h_j
        if return_sequences:
            for j in range(M):
                outputs[b, step, j] = output[b, j]


@njit(cache=True, error_model="numpy")
def _gru_rows(u, xw, first, input_bias, recurrent_bias, h, output, outputs, step, mask,
              use_mask, t, zero_output_for_mask, return_sequences):
    """One GRU step (reset_after=True) with Keras' default activations for every
    batch row b, each unit in one pass::

        z  = sigmoid((x W_z + b_z) + (h U_z + b'_z))
        r  = sigmoid((x W_r + b_r) + (h U_r + b'_r))
        hh = tanh((x W_h + b_h) + r * (h U_h + b'_h))
        h' = z * h + (1 - z) * hh

    u[b]: the row of h U, xw[first + b]: the row of x W; b = input_bias,
    b' = recurrent_bias. Writes h[b] in place and into output[b], then into
    outputs[b, step] when return_sequences; the mask rule as in _lstm_rows. Each
    element as gru_sequence's gate-by-gate pass computes it, but for sigmoid and
    tanh in their fused multiply-add form (as in _lstm_rows). The arrays must not
    overlap (gru_sequence checks).
    """
    _wide_vectors()
    _disjoint_arrays()
    B, M = h.shape
    one = typed(h[0, 0], 1.0)
    for b in range(B):
        if use_mask and not mask[b, t]:
            if zero_output_for_mask:
                for j in range(M):
                    output[b, j] = 0
        else:
            row = first + b
            for j in range(M):
                z = sigmoid_fma((xw[row, j] + input_bias[j]) + (u[b, j] + recurrent_bias[j]))
                r = sigmoid_fma((xw[row, M + j] + input_bias[M + j])
                                + (u[b, M + j] + recurrent_bias[M + j]))
                hh = tanh_fma((xw[row, 2 * M + j] + input_bias[2 * M + j])
                              + r * (u[b, 2 * M + j] + recurrent_bias[2 * M + j]))
                h_j = z * h[b, j] + (one - z) * hh
                h[b, j] = h_j
                output[b, j] = h_j
        if return_sequences:
            for j in range(M):
                outputs[b, step, j] = output[b, j]


@njit(cache=True, error_model="numpy")
def _copy(source, target):
    """target[:] = source for 1-D arrays of one size: a plain loop, cheaper than
    Numba's general slice assignment at the few units of small layers."""
    for j in range(target.size):
        target[j] = source[j]


@njit(cache=True, error_model="numpy")
def _span(a):
    """(first, last + 1) byte address that array ``a`` touches; (0, 0) when empty."""
    first = last = np.intp(a.ctypes.data)  # signed, as the strides (not float64)
    for d in range(a.ndim):
        if a.shape[d] == 0:
            return 0, 0
        reach = (a.shape[d] - 1) * a.strides[d]
        if reach < 0:
            first += reach
        else:
            last += reach
    return first, last + a.itemsize


@njit(cache=True, error_model="numpy")
def _overlap(a, b):
    """Whether the memory spans of a and b intersect (conservative: two interleaved
    views count as overlapping)."""
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    return a0 < b1 and b0 < a1


@njit(cache=True, error_model="numpy")
def _check_operands(x, kernel, width, recurrent_kernel, recurrent_width, h, mask, use_mask,
                    outputs, output, return_sequences):
    """Raise ValueError unless the operands of a sequence kernel agree with x (B, T, D)
    and h (B, M): kernel (D, width), recurrent_kernel (M, recurrent_width), output (B, M),
    outputs (B, T, M) when return_sequences, mask (B, T) when use_mask.

    The layers check all of this in Python first, with messages naming the
    argument; this is the second line of defence, so that a wrong caller gets an
    error instead of reads and writes out of bounds.
    """
    B, T, D = x.shape
    M = h.shape[1]
    if (h.shape[0] != B or kernel.shape[0] != D or kernel.shape[1] != width
            or recurrent_kernel.shape[0] != M or recurrent_kernel.shape[1] != recurrent_width
            or output.shape[0] != B or output.shape[1] != M):
        raise ValueError("sequence kernel: the weights, states or output do not fit x")
    if use_mask and (mask.shape[0] != B or mask.shape[1] != T):
        raise ValueError("sequence kernel: the mask does not fit x")
    if return_sequences and (outputs.shape[0] != B or outputs.shape[1] != T
                             or outputs.shape[2] != M):
        raise ValueError("sequence kernel: the outputs do not fit x")


@njit(cache=True, error_model="numpy", nogil=True)
def lstm_sequence(x, kernel, recurrent_kernel, bias, h, c, mask, use_mask, go_backwards,
                  zero_output_for_mask, return_sequences, act, rec_act, outputs, output,
                  bias_first, exact, kernel_panels, recurrent_panels, handoff_table, handoff_plan):
    """Run an LSTM over x (B, T, D); see equations.lstm_step for the maths.

    h, c (B, M): initial states, overwritten with the final states.
    output (B, M): the last output, starts as zeros (Keras' "previous output").
    outputs (B, T, M): every output when return_sequences, else unused.
    mask (B, T) bool, read when use_mask. bias (4M,): zeros when the layer has none.
    bias_first: Keras' implementation=1 order, z = (x W + b) + h U.
    exact: float32 only, products and activations as TensorFlow's CPU computes them
    (minirnn.exact); the caller sets the denormal flags.
    kernel_panels, recurrent_panels: W and U packed by minirnn.gemm.pack (in the
    layer's dtype), or arrays with no panels: then the products go through BLAS.
    handoff_table, handoff_plan: the slice of a call that runs on the calling
    thread posts its workers' parts first and waits for them last
    (minirnn.handoff); with a helper plan the kernel hands the second half of
    its batch rows to an awake worker as a job (the end of this module) and runs
    the first; handoff.NO_PLAN elsewhere. The other kernels take the same.

    Per step and batch row, the pre-activations z = (x W + h U) + b are activated
    and the states updated, c' = f * c + i * g and h' = o * phi(c'): with Keras'
    default activations in one pass over the units (_lstm_rows), otherwise in place
    of h U, the gate blocks i, f, g, o one by one.
    """
    _handoff.begin(handoff_table, handoff_plan)
    B, T, D = x.shape
    M = h.shape[1]
    _check_operands(x, kernel, 4 * M, recurrent_kernel, 4 * M, h, mask, use_mask, outputs,
                    output, return_sequences)
    if bias.shape[0] != 4 * M or c.shape[0] != B or c.shape[1] != M:
        raise ValueError("lstm_sequence: the bias or c does not fit")
    if (_overlap(h, c) or _overlap(h, output) or _overlap(c, output) or _overlap(bias, h)
            or _overlap(bias, c) or _overlap(bias, output)
            or (return_sequences and (_overlap(outputs, h) or _overlap(outputs, c)
                                      or _overlap(outputs, output)
                                      or _overlap(outputs, bias)))):  # _lstm_rows relies on it
        raise ValueError("lstm_sequence: h, c, output, outputs and bias must not share memory")
    _check_panels(kernel, kernel_panels)
    _check_panels(recurrent_kernel, recurrent_panels)
    row = -1 if exact or B < 2 else _handoff.helper_row(handoff_table, handoff_plan,
                                                        _job_kind(_LSTM_JOB, x))
    shared = (row >= 0 and _in_c_order(x, kernel, recurrent_kernel, bias, h, c, mask, outputs,
                                       output, kernel_panels, recurrent_panels)
              and _handoff.claim_job(handoff_table, row))
    if not shared:
        _lstm_steps(0, B, x, kernel, recurrent_kernel, bias, h, c, mask, use_mask,
                    go_backwards, zero_output_for_mask, return_sequences, act, rec_act, outputs,
                    output, bias_first, exact, kernel_panels, recurrent_panels)
    else:  # rows first .. B-1 to the worker (minirnn.handoff), the rest here
        first = _share_point(B)
        ticket = _ask_lstm(handoff_table, row, handoff_plan, first, B, x, kernel,
                           recurrent_kernel, bias, h, c, mask, use_mask, go_backwards,
                           zero_output_for_mask, return_sequences, act, rec_act, outputs,
                           output, bias_first, kernel_panels, recurrent_panels)
        failed = False
        try:
            _lstm_steps(0, first, x, kernel, recurrent_kernel, bias, h, c, mask, use_mask,
                        go_backwards, zero_output_for_mask, return_sequences, act, rec_act,
                        outputs, output, bias_first, exact, kernel_panels, recurrent_panels)
        except Exception:  # (its scratch) the worker's job must still be waited for
            failed = True
        if not _handoff.wait(handoff_table, handoff_plan, row, ticket):
            _lstm_steps(first, B, x, kernel, recurrent_kernel, bias, h, c, mask, use_mask,
                        go_backwards, zero_output_for_mask, return_sequences, act, rec_act,
                        outputs, output, bias_first, exact, kernel_panels, recurrent_panels)
        if failed:
            raise MemoryError("lstm_sequence: out of memory for the scratch of its rows")
    _handoff.end(handoff_table, handoff_plan)


@njit(cache=True, error_model="numpy", nogil=True)
def _lstm_steps(r0, r1, x, kernel, recurrent_kernel, bias, h, c, mask, use_mask,
                go_backwards, zero_output_for_mask, return_sequences, act, rec_act, outputs,
                output, bias_first, exact, kernel_panels, recurrent_panels):
    """lstm_sequence's steps on the batch rows r0 .. r1-1, for operands it checked."""
    x, h, c, output = x[r0:r1], h[r0:r1], c[r0:r1], output[r0:r1]
    mask = mask[r0:r1] if use_mask else mask
    outputs = outputs[r0:r1] if return_sequences else outputs
    B, T, D = x.shape
    M = h.shape[1]
    steps = _chunk_steps(B, T, max(D, 4 * M))
    scratch = _gemm.aligned_rows(x, steps * B, D)
    xw = _gemm.aligned_rows(x, steps * B, _width(kernel, kernel_panels))
    z = _gemm.aligned_rows(x, B, _width(recurrent_kernel, recurrent_panels))
    phi_c = _gemm.aligned_rows(x, 1, M)[0]
    size = B * M  # elements of one gate tensor, for the exact activations
    fused = act == TANH and rec_act == SIGMOID and not exact  # Keras' defaults
    flags = _exact.denormals_as_zero()  # as TensorFlow's threads; no exception below
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        _project_chunk(x, kernel, kernel_panels, s0, n, go_backwards, scratch, xw, exact)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            _product(h, recurrent_kernel, recurrent_panels, z, exact, B)
            if fused:
                _lstm_rows(z, xw, s * B, bias, c, h, output, outputs, step, mask, use_mask, t,
                           zero_output_for_mask, return_sequences, bias_first)
                continue
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    zb, xwb, hb, cb = z[b], xw[s * B + b], h[b], c[b]
                    for k in range(4 * M):
                        zb[k] = _preactivation(xwb[k], zb[k], bias[k], bias_first)
                    i, f, g, o = zb[:M], zb[M:2 * M], zb[2 * M:3 * M], zb[3 * M:]
                    activate_gate(rec_act, i, b * M, size, exact)
                    activate_gate(rec_act, f, b * M, size, exact)
                    activate_gate(act, g, b * M, size, exact)
                    activate_gate(rec_act, o, b * M, size, exact)
                    for j in range(M):
                        cb[j] = f[j] * cb[j] + i[j] * g[j]
                        phi_c[j] = cb[j]
                    activate_gate(act, phi_c, b * M, size, exact)
                    for j in range(M):
                        hb[j] = o[j] * phi_c[j]
                    _copy(hb, output[b])
                if return_sequences:
                    _copy(output[b], outputs[b, step])
    _exact.restore_flags(flags)


@njit(cache=True, error_model="numpy", nogil=True)
def gru_sequence(x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias, recurrent_bias,
                 reset_after, h, mask, use_mask, go_backwards, zero_output_for_mask,
                 return_sequences, act, rec_act, outputs, output, exact, kernel_panels,
                 recurrent_panels, recurrent_h_panels, handoff_table, handoff_plan):
    """Run a GRU over x (B, T, D); see equations.gru_step for the maths.

    reset_after=True: recurrent_kernel is U (M, 3M), recurrent_kernel_h unused,
    input_bias = b[0], recurrent_bias = b[1].
    reset_after=False: recurrent_kernel is U[:, :2M], recurrent_kernel_h is U[:, 2M:],
    input_bias = b, recurrent_bias unused.
    Biases are zeros when the layer has none. recurrent_h_panels: U_h packed, or no
    panels. Other arguments as lstm_sequence.
    """
    _handoff.begin(handoff_table, handoff_plan)
    B, T, D = x.shape
    M = h.shape[1]
    _check_operands(x, kernel, 3 * M, recurrent_kernel, 3 * M if reset_after else 2 * M, h,
                    mask, use_mask, outputs, output, return_sequences)
    if (input_bias.shape[0] != 3 * M
            or (reset_after and recurrent_bias.shape[0] != 3 * M)
            or (not reset_after and (recurrent_kernel_h.shape[0] != M
                                     or recurrent_kernel_h.shape[1] != M))):
        raise ValueError("gru_sequence: the kernel, biases or recurrent_kernel_h do not fit")
    if (_overlap(h, output) or _overlap(input_bias, h) or _overlap(input_bias, output)
            or _overlap(recurrent_bias, h) or _overlap(recurrent_bias, output)
            or (return_sequences and (_overlap(outputs, h) or _overlap(outputs, output)
                                      or _overlap(outputs, input_bias)
                                      or _overlap(outputs, recurrent_bias)))):
        raise ValueError("gru_sequence: h, output, outputs and the biases must not share "
                         "memory")
    _check_panels(kernel, kernel_panels)
    _check_panels(recurrent_kernel, recurrent_panels)
    _check_panels(recurrent_kernel_h, recurrent_h_panels)
    row = -1 if exact or B < 2 else _handoff.helper_row(handoff_table, handoff_plan,
                                                        _job_kind(_GRU_JOB, x))
    shared = (row >= 0 and _in_c_order(x, kernel, recurrent_kernel, recurrent_kernel_h,
                                       input_bias, recurrent_bias, h, mask, outputs, output,
                                       kernel_panels, recurrent_panels, recurrent_h_panels)
              and _handoff.claim_job(handoff_table, row))
    if not shared:
        _gru_steps(0, B, x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias,
                   recurrent_bias, reset_after, h, mask, use_mask, go_backwards,
                   zero_output_for_mask, return_sequences, act, rec_act, outputs, output, exact,
                   kernel_panels, recurrent_panels, recurrent_h_panels)
    else:  # rows first .. B-1 to the worker (minirnn.handoff), the rest here
        first = _share_point(B)
        ticket = _ask_gru(handoff_table, row, handoff_plan, first, B, x, kernel,
                          recurrent_kernel, recurrent_kernel_h, input_bias, recurrent_bias,
                          reset_after, h, mask, use_mask, go_backwards, zero_output_for_mask,
                          return_sequences, act, rec_act, outputs, output, kernel_panels,
                          recurrent_panels, recurrent_h_panels)
        failed = False
        try:
            _gru_steps(0, first, x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias,
                       recurrent_bias, reset_after, h, mask, use_mask, go_backwards,
                       zero_output_for_mask, return_sequences, act, rec_act, outputs, output,
                       exact, kernel_panels, recurrent_panels, recurrent_h_panels)
        except Exception:  # (its scratch) the worker's job must still be waited for
            failed = True
        if not _handoff.wait(handoff_table, handoff_plan, row, ticket):
            _gru_steps(first, B, x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias,
                       recurrent_bias, reset_after, h, mask, use_mask, go_backwards,
                       zero_output_for_mask, return_sequences, act, rec_act, outputs, output,
                       exact, kernel_panels, recurrent_panels, recurrent_h_panels)
        if failed:
            raise MemoryError("gru_sequence: out of memory for the scratch of its rows")
    _handoff.end(handoff_table, handoff_plan)


@njit(cache=True, error_model="numpy", nogil=True)
def _gru_steps(r0, r1, x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias,
               recurrent_bias, reset_after, h, mask, use_mask, go_backwards,
               zero_output_for_mask, return_sequences, act, rec_act, outputs, output, exact,
               kernel_panels, recurrent_panels, recurrent_h_panels):
    """gru_sequence's steps on the batch rows r0 .. r1-1, for operands it checked."""
    x, h, output = x[r0:r1], h[r0:r1], output[r0:r1]
    mask = mask[r0:r1] if use_mask else mask
    outputs = outputs[r0:r1] if return_sequences else outputs
    B, T, D = x.shape
    M = h.shape[1]
    one = typed(h[0, 0], 1.0)
    steps = _chunk_steps(B, T, max(D, 3 * M))
    scratch = _gemm.aligned_rows(x, steps * B, D)
    xw = _gemm.aligned_rows(x, steps * B, _width(kernel, kernel_panels))
    u = _gemm.aligned_rows(x, B, _width(recurrent_kernel, recurrent_panels))  # h U (+ b[1])
    zr = _gemm.aligned_rows(x, B, 2 * M)      # z and r gates
    hh = _gemm.aligned_rows(x, 1, M)[0]       # candidate
    rh = _gemm.aligned_rows(x, B, M)          # r * h (reset_after=False)
    rhu = _gemm.aligned_rows(x, B, _width(recurrent_kernel_h, recurrent_h_panels))  # (r*h) U_h
    b_in_h = input_bias[2 * M:]
    size = B * M  # elements of one gate tensor, for the exact activations
    # Keras' defaults: one pass per step (_gru_rows; reset_after=False needs r before
    # (r*h) U_h)
    fused = reset_after and act == TANH and rec_act == SIGMOID and not exact
    flags = _exact.denormals_as_zero()  # as TensorFlow's threads; no exception below
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        _project_chunk(x, kernel, kernel_panels, s0, n, go_backwards, scratch, xw, exact)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            _product(h, recurrent_kernel, recurrent_panels, u, exact, B)
            for b in range(B if not fused else 0):  # z and r first, unless one pass
                ub, zrb, xwb = u[b], zr[b], xw[s * B + b]
                if reset_after:
                    for k in range(3 * M):
                        ub[k] = ub[k] + recurrent_bias[k]
                for k in range(2 * M):
                    zrb[k] = (xwb[k] + input_bias[k]) + ub[k]
                activate_gate(rec_act, zrb[:M], b * M, size, exact)
                activate_gate(rec_act, zrb[M:], b * M, size, exact)
                if not reset_after:
                    r, hb, rhb = zrb[M:], h[b], rh[b]
                    for j in range(M):
                        rhb[j] = r[j] * hb[j]
            if not reset_after:
                _product(rh, recurrent_kernel_h, recurrent_h_panels, rhu, exact, B)
            if fused:
                _gru_rows(u, xw, s * B, input_bias, recurrent_bias, h, output, outputs, step,
                          mask, use_mask, t, zero_output_for_mask, return_sequences)
                continue
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    xwh, zrb, hb = xw[s * B + b, 2 * M:], zr[b], h[b]
                    zg, r = zrb[:M], zrb[M:]
                    if reset_after:
                        uh = u[b, 2 * M:]
                        for j in range(M):
                            hh[j] = (xwh[j] + b_in_h[j]) + r[j] * uh[j]
                    else:
                        rhub = rhu[b]
                        for j in range(M):
                            hh[j] = (xwh[j] + b_in_h[j]) + rhub[j]
                    activate_gate(act, hh, b * M, size, exact)
                    for j in range(M):
                        hb[j] = zg[j] * hb[j] + (one - zg[j]) * hh[j]
                    _copy(hb, output[b])
                if return_sequences:
                    _copy(output[b], outputs[b, step])
    _exact.restore_flags(flags)


@njit(cache=True, error_model="numpy", nogil=True)
def simple_rnn_sequence(x, kernel, recurrent_kernel, bias, h, mask, use_mask, go_backwards,
                        zero_output_for_mask, return_sequences, act, outputs, output, exact,
                        kernel_panels, recurrent_panels, handoff_table, handoff_plan):
    """Run a SimpleRNN over x (B, T, D); see equations.simple_rnn_step for the maths.

    Arguments as lstm_sequence; bias (M,) is zeros when the layer has none.
    """
    _handoff.begin(handoff_table, handoff_plan)
    B, T, D = x.shape
    M = h.shape[1]
    _check_operands(x, kernel, M, recurrent_kernel, M, h, mask, use_mask, outputs, output,
                    return_sequences)
    if bias.shape[0] != M:
        raise ValueError("simple_rnn_sequence: the bias does not fit")
    _check_panels(kernel, kernel_panels)
    _check_panels(recurrent_kernel, recurrent_panels)
    row = -1 if exact or B < 2 else _handoff.helper_row(handoff_table, handoff_plan,
                                                        _job_kind(_SIMPLE_RNN_JOB, x))
    shared = (row >= 0 and _in_c_order(x, kernel, recurrent_kernel, bias, h, mask, outputs,
                                       output, kernel_panels, recurrent_panels)
              and _handoff.claim_job(handoff_table, row))
    if not shared:
        _simple_rnn_steps(0, B, x, kernel, recurrent_kernel, bias, h, mask, use_mask,
                          go_backwards, zero_output_for_mask, return_sequences, act, outputs,
                          output, exact, kernel_panels, recurrent_panels)
    else:  # rows first .. B-1 to the worker (minirnn.handoff), the rest here
        first = _share_point(B)
        ticket = _ask_simple_rnn(handoff_table, row, handoff_plan, first, B, x, kernel,
                                 recurrent_kernel, bias, h, mask, use_mask, go_backwards,
                                 zero_output_for_mask, return_sequences, act, outputs, output,
                                 kernel_panels, recurrent_panels)
        failed = False
        try:
            _simple_rnn_steps(0, first, x, kernel, recurrent_kernel, bias, h, mask, use_mask,
                              go_backwards, zero_output_for_mask, return_sequences, act, outputs,
                              output, exact, kernel_panels, recurrent_panels)
        except Exception:  # (its scratch) the worker's job must still be waited for
            failed = True
        if not _handoff.wait(handoff_table, handoff_plan, row, ticket):
            _simple_rnn_steps(first, B, x, kernel, recurrent_kernel, bias, h, mask, use_mask,
                              go_backwards, zero_output_for_mask, return_sequences, act, outputs,
                              output, exact, kernel_panels, recurrent_panels)
        if failed:
            raise MemoryError("simple_rnn_sequence: out of memory for the scratch of its rows")
    _handoff.end(handoff_table, handoff_plan)


@njit(cache=True, error_model="numpy", nogil=True)
def _simple_rnn_steps(r0, r1, x, kernel, recurrent_kernel, bias, h, mask, use_mask,
                      go_backwards, zero_output_for_mask, return_sequences, act, outputs,
                      output, exact, kernel_panels, recurrent_panels):
    """simple_rnn_sequence's steps on the batch rows r0 .. r1-1, for operands it
    checked."""
    x, h, output = x[r0:r1], h[r0:r1], output[r0:r1]
    mask = mask[r0:r1] if use_mask else mask
    outputs = outputs[r0:r1] if return_sequences else outputs
    B, T, D = x.shape
    M = h.shape[1]
    steps = _chunk_steps(B, T, max(D, M))
    scratch = _gemm.aligned_rows(x, steps * B, D)
    xw = _gemm.aligned_rows(x, steps * B, _width(kernel, kernel_panels))
    z = _gemm.aligned_rows(x, B, _width(recurrent_kernel, recurrent_panels))
    size = B * M  # elements of one gate tensor, for the exact activations
    flags = _exact.denormals_as_zero()  # as TensorFlow's threads; no exception below
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        _project_chunk(x, kernel, kernel_panels, s0, n, go_backwards, scratch, xw, exact)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            _product(h, recurrent_kernel, recurrent_panels, z, exact, B)
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    zb, xwb = z[b], xw[s * B + b]
                    for j in range(M):
                        zb[j] = (xwb[j] + bias[j]) + zb[j]
                    activate_gate(act, zb[:M], b * M, size, exact)
                    _copy(zb, h[b])
                    _copy(zb, output[b])
                if return_sequences:
                    _copy(output[b], outputs[b, step])
    _exact.restore_flags(flags)


# ---- a shared call: the worker's rows of the batch as a job (minirnn.handoff) -------
#
# A kernel with a helper plan writes the job of rows first .. B-1 into the worker's
# row of the hand-off table: each array the kernel's steps take (an address and its
# lengths: whole arrays, in C order, which the steps slice themselves), then the
# rows and the other arguments, all in the order of the steps' arguments. The
# worker's rest (minirnn.worker) calls the job's entry point, a C function compiled
# from one of the _xxx_job_float32/64 below when a layer first shares a call of
# that kind (job_address): it reads the job back and runs the steps. Compiled
# apart, each kind costs its compile only where it is used.

_LSTM_JOB, _GRU_JOB, _SIMPLE_RNN_JOB = 0, 2, 4   # the job's kind; + 1 for float64
# A job's arrays (1-D, 2-D, 3-D) and scalar values, as the _xxx_job below read them.
_a1, _a2, _a3, _v = _handoff.get_array1, _handoff.get_array2, _handoff.get_array3, _handoff.value


@njit(cache=True, error_model="numpy", nogil=True)
def _job_kind(first, x):
    return first + (x.itemsize == 8)


@njit(cache=True, error_model="numpy", nogil=True)
def _share_point(B):
    """The first of the worker's rows in a shared call of B >= 2 rows: the caller
    takes the larger half (the worker's rows run slower, their states last written
    on the other core), in whole 8-row tiles from 16 rows up (the unit of
    layers._batch_slices on two threads)."""
    unit = 8 if B >= 16 else 1
    tiles = -(-B // unit)
    return min(B - 1, unit * ((tiles + 1) // 2))


@njit(cache=True, error_model="numpy", nogil=True)
def _in_c_order(*arrays):
    """Whether every array lies in C order without gaps (a job's arrays must)."""
    ok = True
    for a in literal_unroll(arrays):
        ok = ok and _handoff.c_order(a)
    return ok


@njit(cache=True, error_model="numpy", nogil=True)
def _put_values(table, row, *values):
    index = 0
    for value in literal_unroll(values):
        _handoff.put_value(table, row, index, value)
        index += 1


@njit(cache=True, error_model="numpy", nogil=True)
def _put_arrays(table, row, *arrays):
    slot = 0
    for a in literal_unroll(arrays):
        _handoff.put_array(table, row, slot, a)
        slot += 1


@njit(cache=True, error_model="numpy", nogil=True)
def _ask_lstm(table, row, plan, r0, r1, x, kernel, recurrent_kernel, bias, h, c, mask,
              use_mask, go_backwards, zero_output_for_mask, return_sequences, act, rec_act,
              outputs, output, bias_first, kernel_panels, recurrent_panels):
    """Ask the worker of ``row`` to run _lstm_steps on the rows r0 .. r1-1."""
    _put_arrays(table, row, x, kernel, recurrent_kernel, bias, h, c, mask, outputs, output,
                kernel_panels, recurrent_panels)
    _put_values(table, row, r0, r1, use_mask, go_backwards, zero_output_for_mask,
                return_sequences, act, rec_act, bias_first)
    return _handoff.ask(table, row, plan, _job_kind(_LSTM_JOB, x))


@njit(cache=True, error_model="numpy", nogil=True)
def _lstm_job(job, like):
    """Run an LSTM job (see _ask_lstm) on values of ``like``'s type; 1 when done,
    0 when it failed."""
    done = 1
    try:
        _lstm_steps(_v(job, 0), _v(job, 1), _a3(job, 0, like), _a2(job, 1, like),
                    _a2(job, 2, like), _a1(job, 3, like), _a2(job, 4, like), _a2(job, 5, like),
                    _a2(job, 6, np.bool_(True)), _v(job, 2) != 0, _v(job, 3) != 0,
                    _v(job, 4) != 0, _v(job, 5) != 0, _v(job, 6), _v(job, 7),
                    _a3(job, 7, like), _a2(job, 8, like), _v(job, 8) != 0, False,
                    _a3(job, 9, like), _a3(job, 10, like))
    except Exception:  # the caller runs these rows itself, and meets the error there
        done = 0
    return done


@njit(cache=True, error_model="numpy", nogil=True)
def _ask_gru(table, row, plan, r0, r1, x, kernel, recurrent_kernel, recurrent_kernel_h,
             input_bias, recurrent_bias, reset_after, h, mask, use_mask, go_backwards,
             zero_output_for_mask, return_sequences, act, rec_act, outputs, output,
             kernel_panels, recurrent_panels, recurrent_h_panels):
    """Ask the worker of ``row`` to run _gru_steps on the rows r0 .. r1-1."""
    _put_arrays(table, row, x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias,
                recurrent_bias, h, mask, outputs, output, kernel_panels, recurrent_panels,
                recurrent_h_panels)
    _put_values(table, row, r0, r1, reset_after, use_mask, go_backwards,
                zero_output_for_mask, return_sequences, act, rec_act)
    return _handoff.ask(table, row, plan, _job_kind(_GRU_JOB, x))


@njit(cache=True, error_model="numpy", nogil=True)
def _gru_job(job, like):
    """Run a GRU job (see _ask_gru); 1 when done, 0 when it failed."""
    done = 1
    try:
        _gru_steps(_v(job, 0), _v(job, 1), _a3(job, 0, like), _a2(job, 1, like), _a2(job, 2, like),
                   _a2(job, 3, like), _a1(job, 4, like), _a1(job, 5, like), _v(job, 2) != 0,
                   _a2(job, 6, like), _a2(job, 7, np.bool_(True)), _v(job, 3) != 0,
                   _v(job, 4) != 0, _v(job, 5) != 0, _v(job, 6) != 0, _v(job, 7), _v(job, 8),
                   _a3(job, 8, like), _a2(job, 9, like), False, _a3(job, 10, like),
                   _a3(job, 11, like), _a3(job, 12, like))
    except Exception:
        done = 0
    return done


@njit(cache=True, error_model="numpy", nogil=True)
def _ask_simple_rnn(table, row, plan, r0, r1, x, kernel, recurrent_kernel, bias, h, mask,
                    use_mask, go_backwards, zero_output_for_mask, return_sequences, act,
                    outputs, output, kernel_panels, recurrent_panels):
    """Ask the worker of ``row`` to run _simple_rnn_steps on the rows r0 .. r1-1."""
    _put_arrays(table, row, x, kernel, recurrent_kernel, bias, h, mask, outputs, output,
                kernel_panels, recurrent_panels)
    _put_values(table, row, r0, r1, use_mask, go_backwards, zero_output_for_mask,
                return_sequences, act)
    return _handoff.ask(table, row, plan, _job_kind(_SIMPLE_RNN_JOB, x))


@njit(cache=True, error_model="numpy", nogil=True)
def _simple_rnn_job(job, like):
    """Run a SimpleRNN job (see _ask_simple_rnn); 1 when done, 0 when it failed."""
    done = 1
    try:
        _simple_rnn_steps(_v(job, 0), _v(job, 1), _a3(job, 0, like), _a2(job, 1, like),
                          _a2(job, 2, like), _a1(job, 3, like), _a2(job, 4, like),
                          _a2(job, 5, np.bool_(True)), _v(job, 2) != 0, _v(job, 3) != 0,
                          _v(job, 4) != 0, _v(job, 5) != 0, _v(job, 6), _a3(job, 6, like),
                          _a2(job, 7, like), False, _a3(job, 8, like), _a3(job, 9, like))
    except Exception:
        done = 0
    return done


# The entry points, as the C functions job_address compiles: each gets a pointer to
# its worker's row of the table.
def _lstm_job_float32(row):
    return _lstm_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _lstm_job_float64(row):
    return _lstm_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))


def _gru_job_float32(row):
    return _gru_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _gru_job_float64(row):
    return _gru_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))


def _simple_rnn_job_float32(row):
    return _simple_rnn_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _simple_rnn_job_float64(row):
    return _simple_rnn_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))


_ENTRIES = (_lstm_job_float32, _lstm_job_float64, _gru_job_float32, _gru_job_float64,
            _simple_rnn_job_float32, _simple_rnn_job_float64)
_entry_points = {}  # kind -> the compiled C function (kept alive here)


# The kind of job of a layer's kernel ("lstm", "gru" or "simple_rnn") and dtype.
JOB_KINDS = {(layer, dtype): first + (dtype == "float64")
             for layer, first in (("lstm", _LSTM_JOB), ("gru", _GRU_JOB),
                                  ("simple_rnn", _SIMPLE_RNN_JOB))
             for dtype in ("float32", "float64")}


def job_address(kind):
    """The address of the entry point of jobs of ``kind``, compiled (or read from
    Numba's cache) the first time on the calling thread."""
    entry = _entry_points.get(kind)
    if entry is None:
        signature = types.int64(types.CPointer(types.int64))
        entry = _entry_points[kind] = numba.cfunc(signature, cache=True)(_ENTRIES[kind])
    return entry.address
