"""TensorFlow's CPU float32 arithmetic, operation by operation: the bitwise mode's parts.

Keras' LSTM, GRU and SimpleRNN on TensorFlow's CPU are a handful of operations per
step: matrix products (oneDNN), element-wise tanh and sigmoid (Eigen), element-wise
products and sums (Eigen). minirnn's default kernels already perform the same
element-wise operations in the same order; three things make the results differ in
the last bits, and this module reproduces each of them:

1. Summation order of a matrix product. oneDNN (the x86-64 AVX-512 kernels that
   TensorFlow 2.21 picks) sums ``out[i, j] = sum_k a[i, k] b[k, j]`` as a sequential
   chain of fused multiply-adds over k, starting from zero, when the inner size K
   is at most 384 or when the product has a single row. Larger K is cut into
   blocks (see :func:`k_blocks`): each block is a chain of its own, and the block
   sums are added left to right.
2. The scalar tail of Eigen's activations. TensorFlow applies an activation to a
   whole tensor, 8 floats at a time, and the last ``n mod 8`` elements through a
   scalar formula. For tanh both formulas agree; Eigen's scalar sigmoid is
   ``e / (1 + e)`` with ``e = expf(min(x, 16.6355324))`` (the C library's expf),
   which differs in the last bit from the vector formula for about a third of inputs.
3. Denormals. TensorFlow's threads run with the x86 flags FTZ (results below
   2^-126 become zero) and DAZ (such inputs are read as zero). :func:`flush_denormals`
   sets the same flags around a kernel call.

Every claim here was measured against TensorFlow 2.21 on the project's machine;
:mod:`minirnn.bitwise` says which platforms the model covers.
"""

import contextlib
import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

__all__ = ["fma", "k_blocks", "product", "sigmoid_scalar_path", "flush_denormals",
           "denormals_as_zero", "restore_flags"]

# oneDNN's largest block of the inner dimension for float32 matrix products.
ONEDNN_K_BLOCK = 384
# x86 MXCSR bits: FTZ (flush to zero, bit 15) and DAZ (denormals are zero, bit 6).
_FTZ_DAZ = 0x8040
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (LLVM's llvm.fma: always fused)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@intrinsic
def _swap_mxcsr(typingctx, value):
    """Load the x86 MXCSR register with ``value``; return its previous content."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if not _X86:  # no MXCSR: nothing to load, and 0 for its content
            return ir.Constant(ir.IntType(64), 0)
        i32 = ir.IntType(32)
        slot = builder.alloca(i32)
        pointer = builder.bitcast(slot, ir.IntType(8).as_pointer())
        function = ir.FunctionType(ir.VoidType(), [pointer.type])
        store = builder.module.declare_intrinsic("llvm.x86.sse.stmxcsr", fnty=function)
        load = builder.module.declare_intrinsic("llvm.x86.sse.ldmxcsr", fnty=function)
        builder.call(store, [pointer])
        previous = builder.load(slot)
        builder.store(context.cast(builder, args[0], signature.args[0], types.uint32), slot)
        builder.call(load, [pointer])
        return context.cast(builder, previous, types.uint32, types.int64)

    return types.int64(value), codegen


@njit(cache=True)
def _set_mxcsr(value):
    return _swap_mxcsr(value)


@njit(cache=True)
def _get_mxcsr():
    current = _swap_mxcsr(0x1F80)
    _swap_mxcsr(current)
    return current


@njit(cache=True)
def denormals_as_zero():
    """Set FTZ and DAZ on this thread, as TensorFlow's threads run; returns the
    previous MXCSR for :func:`restore_flags` (elsewhere than on x86, nothing).

    The kernels' sequence steps run so in every mode: it is Keras' arithmetic for
    denormals, and it keeps saturated gates (a sigmoid of -90 has a denormal
    exponential) off the CPU's slow path for denormals, which made a
    (32, 1000, 4) -> 5 LSTM 4x slower (12.4 against 3.0 ms, Xeon family 6 model 167).
    """
    previous = _get_mxcsr()
    _set_mxcsr(previous | _FTZ_DAZ)
    return previous


@njit(cache=True)
def restore_flags(previous):
    """Put back the MXCSR that :func:`denormals_as_zero` returned."""
    _swap_mxcsr(previous)


@contextlib.contextmanager
def flush_denormals():
    """Run the block with FTZ and DAZ set on this thread, as TensorFlow's threads do.

    The previous flags come back afterwards, whatever happens inside.
    """
    previous = denormals_as_zero()
    try:
        yield
    finally:
        _set_mxcsr(previous)


def product(a, b, rows_per_product=None):
    """a @ b in float32, summed as TensorFlow's CPU matmul sums it (checked wrapper of
    :func:`matmul`; the caller sets the denormal flags if it wants them).

    Args:
        a: (R, K) array; b: (K, N) array; both converted to C-contiguous float32.
        rows_per_product: the rows of one TensorFlow product when ``a`` stacks
            several (R must be a multiple); default R.

    Returns:
        (R, N) float32 array.
    """
    a = np.ascontiguousarray(a, np.float32)
    b = np.ascontiguousarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(
            f"`a` and `b` must be (R, K) and (K, N) matrices; received shapes {a.shape} "
            f"and {b.shape}.")
    rows = max(1, a.shape[0]) if rows_per_product is None else rows_per_product
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1 or \
            a.shape[0] % rows:
        raise ValueError(
            f"`rows_per_product` must be a positive divisor of a's {a.shape[0]} rows; "
            f"received {rows_per_product!r}.")
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    if out.size:
        matmul(a, b, out, int(rows))
    return out


def k_blocks(K):
    """oneDNN's split of the inner dimension K of a multi-row float32 product.

    Returns the block bounds [(k0, k1), ...]. Up to 384: one block. Above, blocks
    of 384 are taken from the front while more than 768 remain; the rest, if over
    384, is halved (the first half takes the odd element). Measured on every K in
    1-40, 383-387, 500, 767-770, 1000, 1151-1153, 1200, 1536, 1537, 1900, 2048,
    2049 and 3000.
    """
    bounds = [int(k) for k in _k_bounds(K, False)]
    return list(zip(bounds[:-1], bounds[1:]))


@njit(cache=True, error_model="numpy")
def _k_bounds(K, single_row):
    """The block starts of k_blocks(K) followed by K; one block with single_row."""
    if single_row or K <= ONEDNN_K_BLOCK:
        bounds = np.empty(2, np.int64)
        bounds[0], bounds[1] = 0, K
        return bounds
    starts = []
    start, rest = 0, K
    while rest > 2 * ONEDNN_K_BLOCK:
        starts.append(start)
        start, rest = start + ONEDNN_K_BLOCK, rest - ONEDNN_K_BLOCK
    if rest > ONEDNN_K_BLOCK:
        starts.append(start)
        start += (rest + 1) // 2
    starts.append(start)
    bounds = np.empty(len(starts) + 1, np.int64)
    for n in range(len(starts)):
        bounds[n] = starts[n]
    bounds[len(starts)] = K
    return bounds


@njit(cache=True, error_model="numpy")
def _fma_chain(a_row, b, k0, k1, j0, out_row):
    """out_row = a_row[k0] b[k0] + ... + a_row[k1-1] b[k1-1] over the columns j0 ..
    j0 + len(out_row) of b: one fused multiply-add per term, summed in order of k
    from zero.

    Four terms per pass over the row (the chain order is unchanged: each element
    still goes through k0, k0+1, ... in turn), so the row is loaded and stored a
    quarter as often.
    """
    j1 = j0 + out_row.size
    for j in range(out_row.size):
        out_row[j] = 0
    k = k0
    while k + 4 <= k1:
        a0, a1, a2, a3 = a_row[k], a_row[k + 1], a_row[k + 2], a_row[k + 3]
        b0, b1, b2, b3 = b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1]
        for j in range(out_row.size):
            out_row[j] = fma(a3, b3[j], fma(a2, b2[j], fma(a1, b1[j],
                                                           fma(a0, b0[j], out_row[j]))))
        k += 4
    for k in range(k, k1):
        a_k, b_k = a_row[k], b[k, j0:j1]
        for j in range(out_row.size):
            out_row[j] = fma(a_k, b_k[j], out_row[j])


@njit(cache=True, error_model="numpy")
def _fma_chain_2(a_row, c_row, b, k0, k1, j0, out_row, out_row_c):
    """_fma_chain for two rows at once (a_row into out_row, c_row into out_row_c),
    sharing every load of b."""
    j1 = j0 + out_row.size
    for j in range(out_row.size):
        out_row[j] = 0
        out_row_c[j] = 0
    k = k0
    while k + 4 <= k1:
        a0, a1, a2, a3 = a_row[k], a_row[k + 1], a_row[k + 2], a_row[k + 3]
        c0, c1, c2, c3 = c_row[k], c_row[k + 1], c_row[k + 2], c_row[k + 3]
        b0, b1, b2, b3 = b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1]
        for j in range(out_row.size):
            x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
            out_row[j] = fma(a3, x3, fma(a2, x2, fma(a1, x1, fma(a0, x0, out_row[j]))))
            out_row_c[j] = fma(c3, x3, fma(c2, x2, fma(c1, x1, fma(c0, x0, out_row_c[j]))))
        k += 4
    for k in range(k, k1):
        a_k, c_k, b_k = a_row[k], c_row[k], b[k, j0:j1]
        for j in range(out_row.size):
            out_row[j] = fma(a_k, b_k[j], out_row[j])
            out_row_c[j] = fma(c_k, b_k[j], out_row_c[j])


# Columns of b per pass: a (K, 512) slice of b stays in the L2 cache while every
# pair of rows goes through it.
_COLUMNS = 512


@njit(cache=True, error_model="numpy")
def _rows_pair(a, b, out, bounds, i, j0, j1, partial):
    """Rows i and i+1 (or i alone, the last odd row) of out, columns j0:j1: each
    K block is a chain of its own; the blocks are added left to right."""
    R = a.shape[0]
    pair = i + 1 < R
    # For the last odd row, o_next is o again; it is then never written (pair False).
    o, o_next = out[i, j0:j1], out[min(i + 1, R - 1), j0:j1]
    p, q = partial[0, :j1 - j0], partial[1, :j1 - j0]
    for n in range(bounds.size - 1):
        first = n == 0
        target, target_next = (o, o_next) if first else (p, q)
        if pair:
            _fma_chain_2(a[i], a[i + 1], b, bounds[n], bounds[n + 1], j0, target,
                         target_next)
        else:
            _fma_chain(a[i], b, bounds[n], bounds[n + 1], j0, target)
        if not first:
            for j in range(o.size):
                o[j] = o[j] + p[j]
            if pair:
                for j in range(o.size):
                    o_next[j] = o_next[j] + q[j]


@njit(cache=True, error_model="numpy")
def matmul(a, b, out, rows_per_product):
    """out = a @ b summed as oneDNN sums a product of ``rows_per_product`` rows.

    a (R, K), b (K, N), out (R, N), all float32. ``a`` may stack several products
    of the same weights (the hoisted input projection stacks T of them): the
    summation order depends on the rows of one product, not on R. Runs on the
    calling thread (whose FTZ and DAZ flags apply).

    The shapes must agree (checked here too, raising ValueError: a caller's
    mistake must never read out of bounds) and the arrays be float32
    (:func:`product` checks everything with clearer messages).
    """
    R, K = a.shape
    N = b.shape[1]
    # A second line of defence: the loops below index by these sizes unchecked.
    if b.shape[0] != K or out.shape[0] != R or out.shape[1] != N or rows_per_product < 1:
        raise ValueError("exact.matmul: operand shapes disagree (a (R, K), b (K, N), "
                         "out (R, N) and rows_per_product >= 1 required)")
    bounds = _k_bounds(K, rows_per_product == 1)
    partial = np.empty((2, min(N, _COLUMNS) if bounds.size > 2 else 0), out.dtype)
    for j0 in range(0, N, _COLUMNS):
        for i in range(0, R, 2):
            _rows_pair(a, b, out, bounds, i, j0, min(N, j0 + _COLUMNS), partial)


@njit(cache=True, error_model="numpy")
def sigmoid_scalar_path(a):
    """Eigen's scalar float32 logistic: e / (1 + e), e = expf(min(a, 16.6355324)).

    Numba's float32 math.exp calls the C library's expf, as Eigen's scalar path does.
    """
    e = math.exp(min(a, np.float32(16.6355324)))
    return e / (np.float32(1.0) + e)
