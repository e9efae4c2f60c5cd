"""TensorFlow's CPU float32 arithmetic, operation by operation: the bitwise mode's parts.

Keras' LSTM, GRU and SimpleRNN on TensorFlow's CPU are a handful of operations per
step: matrix products (oneDNN), element-wise tanh and sigmoid (Eigen), element-wise
products and sums (Eigen). minirnn's default kernels already perform the same
element-wise operations in the same order; three things make the results differ in
the last bits, and this module reproduces each of them:

1. Summation order of a matrix product. TensorFlow sends a float32 MatMul to
   oneDNN's sgemm, whose kernels depend on the CPU's instruction set (the model is
   chosen at run time, :func:`set_platform`):

   - AVX-512 (oneDNN's avx512_core kernels): ``out[i, j] = sum_k a[i, k] b[k, j]``
     is a sequential chain of fused multiply-adds over k, starting from zero, when
     the inner size K is at most 384 or when the product has a single row. Larger K
     is cut into blocks (see :func:`k_blocks`): each block is a chain of its own,
     and the block sums are added left to right.
   - AVX2 with FMA (oneDNN's "nocopy" AVX kernel, jit_avx_gemm_f32, with 16 x 6
     tiles of 16 output columns by 6 rows): K is cut into blocks the same way with
     256 in place of 384, and a single row is one chain as above. Within a block
     each output element is summed by its tile's code (:func:`avx2_tiles`): tiles
     of 16 columns and 4 to 6 rows use one chain of fused multiply-adds; the other
     tiles keep two accumulators, one for the even and one for the odd k of the
     block, add them, and then add the block's last term if it is odd. Tiles of 3
     rows, or of 8 columns (the last 1 to 8 columns) and 3 or more rows, use fused
     multiply-adds; tiles of 1 or 2 rows round each product and add it. Which rows
     form which tile depends on how oneDNN shares the product between threads
     (:func:`avx2_tiles`).
2. The scalar tail of Eigen's activations. TensorFlow applies an activation to a
   whole tensor, 8 floats at a time, and the last ``n mod 8`` elements through a
   scalar formula. For tanh both formulas agree; Eigen's scalar sigmoid is
   ``e / (1 + e)`` with ``e = expf(min(x, 16.6355324))`` (the C library's expf),
   which differs in the last bit from the vector formula for about a third of inputs.
3. Denormals. TensorFlow's threads run with the x86 flags FTZ (results below
   2^-126 become zero) and DAZ (such inputs are read as zero). :func:`flush_denormals`
   sets the same flags around a kernel call.

Every claim here was measured against TensorFlow 2.21 (oneDNN 3.7) on the project's
machine, the AVX2 order with ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN then generates the
kernels an AVX2 CPU gets); :mod:`minirnn.bitwise` says which platforms the model
covers.

May use: numpy, llvmlite and numba.
"""

import contextlib
import ctypes
import math
import platform

import numpy as np
import llvmlite.binding as _llvm
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

__all__ = ["fma", "k_blocks", "product", "sigmoid_scalar_path", "flush_denormals",
           "denormals_as_zero", "restore_flags", "set_platform", "platform_model",
           "avx2_tiles", "AVX512", "AVX2"]

# oneDNN's largest block of the inner dimension for float32 matrix products: its
# AVX-512 kernels, its AVX2 ("nocopy" AVX) kernel.
ONEDNN_K_BLOCK = 384
ONEDNN_AVX2_K_BLOCK = 256
# The summation orders modelled (set_platform).
AVX512, AVX2 = 1, 2
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


# The platform the products model, read by the compiled code at run time: a
# process-wide array of int64 cells registered with LLVM under a fixed symbol name,
# so that functions compiled (and cached) once read this process's values.
# Cell 0: AVX512 or AVX2; cell 1: TensorFlow's threads for one operation; cell 2: the
# L2 cache per core in bytes (both decide how oneDNN shares an AVX2 product); cell 3:
# the columns of one of Keras' products where a kernel computes several side by side
# (implementation=1: one product per gate), 0 for all of b's columns.
_PLATFORM_SYMBOL = "minirnn_exact_platform_cells"
_PLATFORM_CELLS = (ctypes.c_int64 * 4)(AVX512, 1, 1 << 20, 0)
_llvm.add_symbol(_PLATFORM_SYMBOL, ctypes.addressof(_PLATFORM_CELLS))


@intrinsic
def _platform_cell(typingctx, index):
    """Cell ``index`` of the platform cells (a load at run time, never a constant)."""
    if not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        module = builder.module
        array_type = ir.ArrayType(ir.IntType(64), len(_PLATFORM_CELLS))
        try:
            cells = module.get_global(_PLATFORM_SYMBOL)
        except KeyError:
            cells = ir.GlobalVariable(module, array_type, _PLATFORM_SYMBOL)
            cells.linkage = "external"
        position = context.cast(builder, args[0], signature.args[0], types.int64)
        pointer = builder.gep(cells, [ir.Constant(ir.IntType(64), 0), position])
        return builder.load(pointer)

    return types.int64(index), codegen


@njit(cache=True)
def _read_platform(index):
    return _platform_cell(index)


def set_platform(model=None, threads=None, l2_bytes=None, columns=None):
    """Choose the summation order that the products model (for this process).

    Args:
        model: AVX512 or AVX2 (oneDNN's kernels for that instruction set).
        threads: TensorFlow's threads for one operation (AVX2: oneDNN may share a
            product between them, which moves the tiles).
        l2_bytes: the L2 cache per core (AVX2: TensorFlow runs products whose
            operands fit 1.01 times it on one thread).
        columns: the columns of one of Keras' products when the kernels compute
            several side by side (AVX2: each has tiles of its own), 0 for whole
            products. :func:`minirnn.bitwise.check_products` sets it before a
            layer's kernels run.

    Arguments left None keep their value. :func:`minirnn.bitwise.bitwise_support`
    sets them from the platform; call this directly only to model another one.
    """
    if model is not None:
        if model not in (AVX512, AVX2):
            raise ValueError(f"`model` must be exact.AVX512 or exact.AVX2; received {model!r}.")
        _PLATFORM_CELLS[0] = model
    if threads is not None:
        _PLATFORM_CELLS[1] = max(1, int(threads))
    if l2_bytes is not None:
        _PLATFORM_CELLS[2] = max(1, int(l2_bytes))
    if columns is not None:
        _PLATFORM_CELLS[3] = max(0, int(columns))


def platform_model():
    """(model, threads, l2_bytes, columns) as the compiled products read them."""
    return tuple(int(_read_platform(i)) for i in range(4))



def product(a, b, rows_per_product=None, columns_per_product=None):
    """a @ b in float32, summed as TensorFlow's CPU matmul sums it on the platform
    modelled (:func:`set_platform`; checked wrapper of :func:`matmul`; the caller
    sets the denormal flags if it wants them).

    Args:
        a: (R, K) array; b: (K, N) array; both converted to C-contiguous float32.
        rows_per_product: the rows of one TensorFlow product when ``a`` stacks
            several (R must be a multiple); default R.
        columns_per_product: the columns of one TensorFlow product when ``b``
            holds several side by side (N must be a multiple); default N.

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
    columns = b.shape[1] if columns_per_product is None else columns_per_product
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or \
            columns < 1 or b.shape[1] % columns:
        raise ValueError(f"`columns_per_product` must be a positive divisor of b's "
                         f"{b.shape[1]} columns; received {columns_per_product!r}.")
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    if out.size:
        _matmul_with(a, b, out, int(rows), int(columns))
    return out


def k_blocks(K, block=ONEDNN_K_BLOCK):
    """oneDNN's split of the inner dimension K of a multi-row float32 product.

    Returns the block bounds [(k0, k1), ...]. Up to ``block`` (384 on AVX-512, 256
    on AVX2): one block. Above, blocks of ``block`` are taken from the front while
    more than twice ``block`` remain; the rest, if over ``block``, is halved (the
    first half takes the odd element). Measured (AVX-512) on every K in 1-40,
    383-387, 500, 767-770, 1000, 1151-1153, 1200, 1536, 1537, 1900, 2048, 2049 and
    3000; (AVX2) on every K in 1-69 and 84 values from 70 to 2049.
    """
    bounds = [int(k) for k in _k_bounds_of(K, block, False)]
    return list(zip(bounds[:-1], bounds[1:]))


@njit(cache=True, error_model="numpy")
def _k_bounds(K, single_row):
    """The block starts of k_blocks(K) followed by K; one block with single_row."""
    return _k_bounds_of(K, ONEDNN_K_BLOCK, single_row)


@njit(cache=True, error_model="numpy")
def _k_bounds_of(K, block, single_row):
    """_k_bounds for blocks of ``block``."""
    if single_row or K <= block:
        bounds = np.empty(2, np.int64)
        bounds[0], bounds[1] = 0, K
        return bounds
    starts = []
    start, rest = 0, K
    while rest > 2 * block:
        starts.append(start)
        start, rest = start + block, rest - block
    if rest > block:
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
    _matmul_with(a, b, out, rows_per_product, _platform_cell(3))


@njit(cache=True, error_model="numpy")
def _matmul_with(a, b, out, rows_per_product, columns_per_product):
    """matmul, ``b`` holding products of ``columns_per_product`` columns side by side
    (0, or one that does not divide b's columns: one product)."""
    R, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape[0] != R or out.shape[1] != N or rows_per_product < 1:
        raise ValueError("exact.matmul: operand shapes disagree (a (R, K), b (K, N), "
                         "out (R, N) and rows_per_product >= 1 required)")
    if _platform_cell(0) == AVX2:
        width = columns_per_product
        if width < 1 or N % width:
            width = N
        for c0 in range(0, N, width):
            _matmul_avx2(a, b[:, c0:c0 + width], out[:, c0:c0 + width], rows_per_product,
                         _platform_cell(1), _platform_cell(2))
        return
    bounds = _k_bounds(K, rows_per_product == 1)
    partial = np.empty((2, min(N, _COLUMNS) if bounds.size > 2 else 0), out.dtype)
    for j0 in range(0, N, _COLUMNS):
        for i in range(0, R, 2):
            _rows_pair(a, b, out, bounds, i, j0, min(N, j0 + _COLUMNS), partial)


# ---- oneDNN's AVX2 order ------------------------------------------------------------
# oneDNN 3.7's sgemm on AVX2 (src/cpu/x64/gemm): a product small enough in one
# dimension (1/m + 1/n >= 0.0038, m and n its column-major sizes: our N and rows)
# goes to the "nocopy" kernel jit_avx_gemm_f32: threads share it by blocks of
# columns (multiples of 16) and of rows; each thread's part is cut into blocks of
# 256 k, of 4032 columns and of 48 rows (with halving rules), and tiled by 16
# columns (the last 9-15 in a masked 16 tile, the last 1-8 in an 8 tile) and 6
# rows (the last 1-5 rows in a tile of their own).


@njit(cache=True, error_model="numpy")
def _avx2_gemm_threads(B, K, N, threads, l2_bytes):
    """Threads oneDNN shares a (B x K) @ (K x N) product between (B >= 2).

    TensorFlow runs it on one thread when its operands and result, 4 (B N + K (B + N))
    bytes, are below 1.01 times the L2 cache; oneDNN's AVX2 driver then uses at most
    as many threads as the L2 caches they fill (and all of them for N <= 3 and B > 50).
    """
    footprint = 4 * (B * N + K * (B + N))
    if threads <= 1 or np.float32(footprint) < np.float32(l2_bytes * 1.01):
        return 1
    if B > 50 and N <= 3:
        return threads
    nthr = threads
    if N > 10 * B and B < nthr and N // nthr < 24:
        nthr = max(N // 8 // 3, 1)
    return min(nthr, (footprint + l2_bytes - 1) // l2_bytes)


@njit(cache=True, error_model="numpy")
def _avx2_partition(N, B, nthr):
    """oneDNN's split of N columns and B rows between nthr threads (no split of K
    with TensorFlow's thread pool): (column block, threads on columns, row block,
    threads on rows)."""
    if nthr <= 1:
        return N, 1, B, 1
    nthr_m = (N + 63) // 64
    nthr_n = (B + 47) // 48
    if nthr_m == 1:
        nthr_n = nthr
    if nthr_n == 1:
        nthr_m = nthr
    while nthr_m * nthr_n > nthr:
        if nthr_m > nthr_n:
            nthr_m -= 1
        else:
            nthr_n -= 1
    while nthr_m * nthr_n < nthr:
        if nthr_m < nthr_n:
            nthr_m += 1
        else:
            nthr_n += 1
    if nthr_m * nthr_n > nthr and nthr_m > 1 and nthr_n > 1:
        if nthr_m <= nthr_n:
            nthr_m = min(int(math.sqrt(nthr)), (N + 15) // 16)
            nthr_n = nthr // nthr_m
            while nthr_m > 1 and nthr_m * nthr_n != nthr:
                nthr_m -= 1
                nthr_n = nthr // nthr_m
        else:
            nthr_n = min(int(math.sqrt(nthr)), B)
            nthr_m = nthr // nthr_n
            while nthr_n > 1 and nthr_m * nthr_n != nthr:
                nthr_n -= 1
                nthr_m = nthr // nthr_n
    column_block = (N + nthr_m - 1) // nthr_m + 15
    column_block -= column_block % 16
    row_block = (B + nthr_n - 1) // nthr_n
    if column_block * nthr_m > N:
        nthr_m = (N + column_block - 1) // column_block
    if row_block * nthr_n > B:
        nthr_n = (B + row_block - 1) // row_block
    return column_block, nthr_m, row_block, nthr_n


@njit(cache=True, error_model="numpy")
def _avx2_next_chunk(rest, block):
    """oneDNN's next block of ``rest`` elements: ``block`` while 2 blocks remain,
    else the rest, halved when over 1.5 blocks."""
    if rest >= 2 * block:
        return block
    if rest > block + block // 2:
        return (rest + 1) // 2
    return rest


@njit(cache=True, error_model="numpy")
def _avx2_fill_tiles(B, N, threads_used, column_tiles, row_tiles):
    """column_tiles[j]: 16 or 8, the width of column j's tile; row_tiles[i]: 1-6, the
    height of row i's tile."""
    column_block, nthr_m, row_block, nthr_n = _avx2_partition(N, B, threads_used)
    for t in range(nthr_m):
        c0, c1 = t * column_block, min(N, (t + 1) * column_block)
        while c0 < c1:
            m1 = c0 + _avx2_next_chunk(c1 - c0, 4032)
            full = c0 + (m1 - c0) // 16 * 16
            for j in range(c0, full):
                column_tiles[j] = 16
            for j in range(full, m1):
                column_tiles[j] = 16 if m1 - full > 8 else 8
            c0 = m1
    for t in range(nthr_n):
        r0, r1 = t * row_block, min(B, (t + 1) * row_block)
        while r0 < r1:
            n1 = r0 + _avx2_next_chunk(r1 - r0, 48)
            full = r0 + (n1 - r0) // 6 * 6
            for i in range(r0, full):
                row_tiles[i] = 6
            for i in range(full, n1):
                row_tiles[i] = n1 - full
            r0 = n1


def avx2_tiles(B, K, N, threads=1, l2_bytes=1 << 20):
    """The tiles of oneDNN's AVX2 kernel for a (B x K) @ (K x N) float32 product.

    Returns (row_tiles, column_tiles, threads_used): row i lies in a tile of
    row_tiles[i] rows (1-6), column j in one of column_tiles[j] columns (16 or 8).
    Measured against TensorFlow 2.21 with ONEDNN_MAX_CPU_ISA=AVX2 on 2,310 random
    products with 1, 2, 4 and 7 threads (B up to 299, K up to 1,299, N up to 8,200).
    """
    threads_used = int(_avx2_gemm_threads(B, K, N, threads, l2_bytes)) if B > 1 else 1
    row_tiles = np.full(max(B, 0), 6, np.int64)
    column_tiles = np.full(max(N, 0), 16, np.int64)
    if B > 1 and N > 0:
        _avx2_fill_tiles(B, N, threads_used, column_tiles, row_tiles)
    return row_tiles, column_tiles, threads_used


@njit(cache=True, error_model="numpy")
def _pair_chain(a_row, b, k0, k1, j0, out_row, odd_row, fused):
    """out_row = the AVX2 kernel's two-accumulator sum of a_row[k] b[k] over k0..k1-1
    (columns j0.. of b): the even k (from k0) in out_row, the odd k in odd_row,
    each in order from zero; then out_row + odd_row; then the last term if the
    count is odd. ``fused``: fused multiply-adds, else each product rounded and added.
    """
    n = out_row.size
    for j in range(n):
        out_row[j] = 0
        odd_row[j] = 0
    k = k0
    while k + 2 <= k1:
        a0, a1 = a_row[k], a_row[k + 1]
        b0, b1 = b[k, j0:j0 + n], b[k + 1, j0:j0 + n]
        if fused:
            for j in range(n):
                out_row[j] = fma(a0, b0[j], out_row[j])
                odd_row[j] = fma(a1, b1[j], odd_row[j])
        else:
            for j in range(n):
                out_row[j] = out_row[j] + a0 * b0[j]
                odd_row[j] = odd_row[j] + a1 * b1[j]
        k += 2
    for j in range(n):
        out_row[j] = out_row[j] + odd_row[j]
    if k < k1:
        a_k, b_k = a_row[k], b[k, j0:j0 + n]
        if fused:
            for j in range(n):
                out_row[j] = fma(a_k, b_k[j], out_row[j])
        else:
            for j in range(n):
                out_row[j] = out_row[j] + a_k * b_k[j]


@njit(cache=True, error_model="numpy")
def _avx2_block(a_row, b, k0, k1, rows, column_tiles, target, odd):
    """target = one K block of a row in a tile of ``rows`` rows, each column summed
    by its tile's code."""
    N = target.size
    j0 = 0
    while j0 < N:
        width = column_tiles[j0]
        j1 = j0 + 1
        while j1 < N and column_tiles[j1] == width:
            j1 += 1
        if width == 16 and rows >= 4:
            _fma_chain(a_row, b, k0, k1, j0, target[j0:j1])
        else:
            _pair_chain(a_row, b, k0, k1, j0, target[j0:j1], odd[j0:j1], rows >= 3)
        j0 = j1


@njit(cache=True, error_model="numpy")
def _matmul_avx2(a, b, out, rows_per_product, threads, l2_bytes):
    """matmul in oneDNN's AVX2 order (see the notes above _avx2_gemm_threads)."""
    R, K = a.shape
    N = b.shape[1]
    if rows_per_product == 1:  # TensorFlow's single rows: one chain (oneDNN's gemv)
        for i in range(R):
            _fma_chain(a[i], b, 0, K, 0, out[i])
        return
    B = rows_per_product
    row_tiles = np.full(B, 6, np.int64)
    column_tiles = np.full(N, 16, np.int64)
    _avx2_fill_tiles(B, N, _avx2_gemm_threads(B, K, N, threads, l2_bytes), column_tiles,
                     row_tiles)
    bounds = _k_bounds_of(K, ONEDNN_AVX2_K_BLOCK, False)
    partial = np.empty(N if bounds.size > 2 else 0, out.dtype)
    odd = np.empty(N, out.dtype)
    for i in range(R):
        rows = row_tiles[i % B]
        o = out[i]
        for n in range(bounds.size - 1):
            if n == 0:
                _avx2_block(a[i], b, bounds[0], bounds[1], rows, column_tiles, o, odd)
            else:
                _avx2_block(a[i], b, bounds[n], bounds[n + 1], rows, column_tiles, partial,
                            odd)
                for j in range(N):
                    o[j] = o[j] + partial[j]


@njit(cache=True, error_model="numpy")
def sigmoid_scalar_path(a):
    """Eigen's scalar float32 logistic: e / (1 + e), e = expf(min(a, 16.6355324)).

    Numba's float32 math.exp calls the C library's expf, as Eigen's scalar path does.
    """
    e = math.exp(min(a, np.float32(16.6355324)))
    return e / (np.float32(1.0) + e)
