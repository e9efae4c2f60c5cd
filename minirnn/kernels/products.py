"""The matrix products of the kernels, and the hoisted input projection.

A product goes to plain loops for small weights, to :mod:`minirnn.gemm`'s packed
panels, or in the bitwise mode to :mod:`minirnn.exact` (oneDNN's summation
order). ``_project_chunk`` projects a chunk of timesteps of the inputs with one
product, time-major, so that each step reads its row block back in order.

May use: numpy, numba, :mod:`minirnn.gemm`, :mod:`minirnn.exact` and
:mod:`minirnn.kernels.compiler`.
"""

import numpy as np
from numba import njit
from numba.extending import overload

from .. import exact as _exact
from .. import gemm as _gemm
from .compiler import _wide_vectors


# Weights of at most this many elements are multiplied by plain loops (a call into
# BLAS or minirnn.gemm costs more than the arithmetic there).
_SMALL_WEIGHTS = 256


# Scratch for the hoisted input projection, in elements: 1 MiB in float32 (2 in
# float64) whatever T is. The projection is read back one step at a time, so it
# pays to keep a chunk in the second-level cache: on a Xeon (Emerald Rapids, 2 MiB
# per core) 1 MiB chunks gave 5-10% shorter calls from (32, 100, 128, 128) up than
# the 16 MiB chunks used before.
_CHUNK_ELEMENTS = 1 << 18


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
    minirnn.exact does. On the AVX2 platform (minirnn.exact.set_platform) the tiles'
    single chains are not oneDNN's order: minirnn.exact computes every product,
    into the first columns of ``out`` (which may be as wide as the panels)."""
    if panels.shape[0] == 0:
        _exact.matmul(a, b, out, rows_per_product)
        return
    if _exact._platform_cell(0) == _exact.AVX2:
        _exact.matmul(a, b, out[:, :b.shape[1]], rows_per_product)
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
def _preactivation(xw, hu, b, bias_first):
    """One element of an LSTM's z: (xW + hU) + b, or Keras' implementation=1 order
    (xW + b) + hU when bias_first.

    Scalars in, scalar out: passing arrays to a function inside a hot loop makes
    Numba count references on every call, which stops the loop vectorising (a
    10x slower LSTM step)."""
    return (xw + b) + hu if bias_first else (xw + hu) + b
