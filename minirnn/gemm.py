"""A matrix product with packed weights, for the kernels' products (float32 and
float64).

Every step of a recurrent layer multiplies the state h (B, M) by the same
recurrent kernel U (M, G*M), and the input projection multiplies stacked inputs
by the same kernel W. A BLAS call re-reads (and re-packs) the weights each time;
here they are packed once, when the layer's weights are assigned, into panels of
``P`` columns, two 512-bit vectors (P = ``PANEL`` = 32 in float32, 16 in float64)::

    panels[p, k, :] = W[k, p*P : (p+1)*P]      (zero past the last column)

so that one k step of a panel is one contiguous run of two vectors. The product is
then tiled: a tile of R rows (R = 8 or 4) times one panel keeps its R x P sums in
vector registers for the whole sum over k, and does per k one load of the panel
row (two vectors), R broadcasts of a[i, k] and 2R fused multiply-adds
(the last 1-7 rows of a product take tiles of 4 rows x 2 panels, 2 x 2 and 1 x 4
where the panels allow, so that a tile has 8 or 16 sums in flight)::

    for k in range(K):                       # acc[r] starts at zero
        for r in range(R):
            acc[r] = fma(broadcast(a[i0 + r, k]), panels[p, k, :], acc[r])
    out[i0 : i0 + R, p*P : (p+1)*P] = acc

Each out[i, j] is the chain ((a[i,0] b[0,j] + a[i,1] b[1,j]) + ...) over k in
order, whatever the tile and the batch: rows never mix, so a result does not
depend on how the batch is split. (BLAS libraries sum in other orders; either
way the error is rounding in the weights' precision.)

Weights larger than the second-level cache (an LSTM's 512 x 2048 recurrent
kernel is 4 MiB) come from the third level at every step, and a tile waiting on
them runs at about half speed. So for weights over ``_AHEAD_BYTES`` the 8-row tiles
of panel p also prefetch panel p + 1 into the second level, each tile a share of
it, one line per k (prefetches change no result and never fault). Measured on a
Xeon (family 6, model 167): (32 x 512) @ (512 x 2048) 140 -> 162 GFLOP/s,
(64 x 512) @ (512 x 2048) 155 -> 167, (1280 x 256) @ (256 x 2048) 150 -> 160, one
core; weights that fit the second level gain nothing from it.

Numba cannot keep small arrays in registers, so the tile is written as LLVM
vector IR through ``numba.extending.intrinsic``: the accumulators are
``<16 x float>`` (or ``<8 x double>``) values and LLVM allocates them to
registers (32 zmm registers hold an 8 x 32 float32 or 8 x 16 float64 tile with
AVX-512; on a CPU with 256-bit vectors LLVM splits each
vector in two, and the code stays correct everywhere). Numba compiles for the CPU
it runs on, and its cache is keyed by that CPU, so a cache written elsewhere is
never used here.

May use: numpy, llvmlite and numba.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["PANEL", "aligned_empty", "aligned_rows", "pack", "matmul", "matmul_over",
           "padded", "panel_width"]

VECTOR_BYTES = 64       # 512 bits
LANES = 16              # float32 values per vector
PANEL = 2 * LANES       # columns per packed float32 panel
_TILE_ROWS = (8, 4, 2, 1)
_ROW_BLOCK = 64         # rows of a per pass over the panels
_AHEAD_BYTES = 1 << 19  # weights larger than this: prefetch the next panel


def panel_width(dtype=np.float32):
    """Columns per panel for weights of ``dtype`` (float32 or float64): two vectors."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


def padded(columns, dtype=np.float32):
    """``columns`` rounded up to whole panels: the row length of a product's output."""
    width = panel_width(dtype)
    return -(-columns // width) * width


def aligned_empty(shape, dtype):
    """An uninitialised array whose first element starts a cache line (64 bytes).

    NumPy aligns its allocations to 16 bytes, Numba's to 32, so a packed panel or a
    product's output would often start mid-line, and then every 512-bit load or
    store of the tiles touches two cache lines. Measured on a Xeon (Emerald Rapids),
    one row times 32 x 256 weights: 53 GFLOP/s with aligned panels, 36 with panels
    32 bytes off; larger products 4-10% faster."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    buffer = np.empty(n * dtype.itemsize + VECTOR_BYTES, np.uint8)
    start = -buffer.ctypes.data % VECTOR_BYTES
    return buffer[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


@njit(cache=True, error_model="numpy", nogil=True)
def aligned_rows(like, rows, columns):
    """A (rows, columns) array of ``like``'s dtype starting a cache line, for the
    kernels' scratch (see :func:`aligned_empty`)."""
    n = rows * columns
    buffer = np.empty(n + VECTOR_BYTES // like.itemsize, like.dtype)
    start = -buffer.ctypes.data % VECTOR_BYTES // like.itemsize
    return buffer[start:start + n].reshape((rows, columns))


def pack(w):
    """(K, N) float32 or float64 weights as (ceil(N / P), K, P) panels of P =
    panel_width(dtype) columns, zero-padded (a layer's private copy: the kernels
    never write it). Other dtypes are packed as float32."""
    w = np.asarray(w)
    if w.dtype != np.float64:
        w = w.astype(np.float32)
    K, N = w.shape
    width = panel_width(w.dtype)
    panels = aligned_empty((padded(N, w.dtype) // width, K, width), w.dtype)
    panels[...] = 0
    for p in range(panels.shape[0]):
        block = w[:, p * width:(p + 1) * width]
        panels[p, :, :block.shape[1]] = block
    return panels


def _tile(rows, width=1, ahead=False):
    """The intrinsic ``tile(a, i0, panels, p, out, k0, k1)``: out[i0:i0+rows, the
    columns of panels p .. p+width-1] = a[i0:i0+rows, k0:k1] @ those panels' rows
    k0:k1, with the sums in vector registers. Few rows need several panels at once:
    each sum is a chain of fused multiply-adds that waits for the last one (about 4
    cycles), so a tile keeps at least 8 independent sums in flight.

    With ``ahead`` the intrinsic takes two more arguments, ``first`` and ``step``,
    and at each k also prefetches the line ``first + (k - k0) * step`` bytes from
    the panels' start into the second-level cache (see matmul_over)."""

    def typer(a, i0, panels, p, out, k0, k1, *prefetch):
        if not all(isinstance(t, types.Array) and t.dtype in (types.float32, types.float64)
                   and t.dtype == a.dtype and t.ndim == n
                   for t, n in ((a, 2), (panels, 3), (out, 2))):
            return None
        signature = types.void(a, i0, panels, p, out, k0, k1, *prefetch)
        double = a.dtype == types.float64
        item = 8 if double else 4                      # bytes per value
        lanes = VECTOR_BYTES // item
        row_bytes = 2 * VECTOR_BYTES                   # one k step of a panel

        def codegen(context, builder, sig, args):
            a_arr, i0_v, panels_arr, p_v, out_arr, k0_v, k1_v = args[:7]
            k0_v, k1_v = (context.cast(builder, v, t, types.int64)
                          for v, t in ((k0_v, sig.args[5]), (k1_v, sig.args[6])))
            A = context.make_array(sig.args[0])(context, builder, a_arr)
            P = context.make_array(sig.args[2])(context, builder, panels_arr)
            O = context.make_array(sig.args[4])(context, builder, out_arr)
            i64 = ir.IntType(64)
            element = ir.DoubleType() if double else ir.FloatType()
            vector = ir.VectorType(element, lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3),
                f"llvm.fma.v{lanes}{'f64' if double else 'f32'}")
            const = lambda n: ir.Constant(i64, n)  # noqa: E731
            K = cgutils.unpack_tuple(builder, P.shape, 3)[1]
            a_row_bytes = cgutils.unpack_tuple(builder, A.strides, 2)[0]
            out_row_bytes = cgutils.unpack_tuple(builder, O.strides, 2)[0]

            def address(base, offset_bytes, kind):
                return builder.inttoptr(builder.add(builder.ptrtoint(base, i64), offset_bytes),
                                        kind.as_pointer())

            panel_bytes = builder.mul(K, const(row_bytes))
            panel_start = builder.mul(p_v, panel_bytes)
            a_rows = [builder.mul(builder.add(i0_v, const(r)), a_row_bytes) for r in range(rows)]
            zero = ir.Constant(vector, [0.0] * lanes)
            parts = 2 * width  # vectors across the tile's columns
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(parts)]
                   for _ in range(rows)]
            column_bytes = builder.mul(p_v, const(row_bytes))
            out_rows = [builder.add(builder.mul(builder.add(i0_v, const(r)), out_row_bytes),
                                    column_bytes) for r in range(rows)]

            def out_vector(r, part):
                return address(O.data, builder.add(out_rows[r], const(part * VECTOR_BYTES)),
                               vector)

            # Pointers to the first k of each row of a and of each panel vector; the
            # loop below only adds k to them (one addressing mode per load, no
            # address arithmetic beside the multiply-adds).
            a_start = [address(A.data, builder.add(a_rows[r], builder.mul(k0_v, const(item))),
                               element) for r in range(rows)]
            first_row = builder.add(panel_start, builder.mul(k0_v, const(row_bytes)))
            b_start = []
            for part in range(parts):  # vector part % 2 of panel p + part // 2
                offset = builder.add(builder.mul(panel_bytes, const(part // 2)),
                                     const(part % 2 * VECTOR_BYTES))
                b_start.append(address(P.data, builder.add(first_row, offset), element))
            if ahead:  # prefetch(first, step): a line at panels + first + k step
                first, step = (context.cast(builder, v, t, types.int64)
                               for v, t in zip(args[7:], sig.args[7:]))
                prefetch_start = address(P.data, first, ir.IntType(8))
                prefetch = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), [
                        ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(32),
                        ir.IntType(32)]), "llvm.prefetch.p0i8")
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            with cgutils.for_range(builder, builder.sub(k1_v, k0_v)) as loop:
                k = loop.index
                if ahead:
                    # read (0), keep in the second-level cache (locality 2), data (1)
                    i32 = ir.IntType(32)
                    builder.call(prefetch, [builder.gep(prefetch_start, [builder.mul(k, step)]),
                                            ir.Constant(i32, 0), ir.Constant(i32, 2),
                                            ir.Constant(i32, 1)])
                b_offset = builder.mul(k, const(2 * lanes))
                b = []
                for part in range(parts):
                    pointer = builder.bitcast(builder.gep(b_start[part], [b_offset]),
                                              vector.as_pointer())
                    load = builder.load(pointer)
                    load.align = item
                    b.append(load)
                for r in range(rows):
                    a_rk = builder.load(builder.gep(a_start[r], [k]))
                    a_splat = builder.shuffle_vector(
                        builder.insert_element(ir.Constant(vector, ir.Undefined), a_rk,
                                               ir.Constant(ir.IntType(32), 0)),
                        ir.Constant(vector, ir.Undefined), splat_mask)
                    for part in range(parts):
                        builder.store(builder.call(fma, [a_splat, b[part],
                                                         builder.load(acc[r][part])]),
                                      acc[r][part])
            for r in range(rows):
                for part in range(parts):
                    store = builder.store(builder.load(acc[r][part]), out_vector(r, part))
                    store.align = item
            return context.get_dummy_value()

        return signature, codegen

    if ahead:
        @intrinsic
        def tile_ahead(typingctx, a, i0, panels, p, out, k0, k1, first, step):
            return typer(a, i0, panels, p, out, k0, k1, first, step)
        return tile_ahead

    @intrinsic
    def tile(typingctx, a, i0, panels, p, out, k0, k1):
        return typer(a, i0, panels, p, out, k0, k1)
    return tile


_tile8, _tile4, _tile2, _tile1 = (_tile(rows) for rows in _TILE_ROWS)
# The last rows: more panels per tile.
_tile4x2, _tile2x2, _tile1x4 = _tile(4, 2), _tile(2, 2), _tile(1, 4)
_tile8_ahead = _tile(8, ahead=True)


@njit(cache=True, error_model="numpy", nogil=True)
def _last_rows(a, panels, out, i, r1, k0, k1):
    """Rows i .. r1-1 (at most 7) of the product, several panels per tile."""
    n_panels = panels.shape[0]
    if i + 4 <= r1:
        p = 0
        while p + 2 <= n_panels:
            _tile4x2(a, i, panels, p, out, k0, k1)
            p += 2
        if p < n_panels:
            _tile4(a, i, panels, p, out, k0, k1)
        i += 4
    if i + 2 <= r1:
        p = 0
        while p + 2 <= n_panels:
            _tile2x2(a, i, panels, p, out, k0, k1)
            p += 2
        if p < n_panels:
            _tile2(a, i, panels, p, out, k0, k1)
        i += 2
    if i < r1:
        p = 0
        while p + 4 <= n_panels:
            _tile1x4(a, i, panels, p, out, k0, k1)
            p += 4
        while p < n_panels:
            _tile1(a, i, panels, p, out, k0, k1)
            p += 1


@njit(cache=True, error_model="numpy", nogil=True)
def matmul(a, panels, out):
    """out[:, :padded(N)] = a @ W for a (R, K) and W packed by :func:`pack`.

    a, panels and out share one dtype, float32 or float64 (else Numba refuses the
    call). ``out`` has at least ``panels.shape[0] * panels.shape[2]`` columns (the
    padded columns receive zeros' products). Shapes are checked here: the tiles
    index unchecked.
    """
    matmul_over(a, panels, out, 0, a.shape[1])


@njit(cache=True, error_model="numpy", nogil=True)
def matmul_over(a, panels, out, k0, k1):
    """out[:, :padded(N)] = a[:, k0:k1] @ W[k0:k1], each output one chain over k
    from k0, starting from zero (as :func:`matmul`, which is the case k0 = 0, k1 = K).
    The bitwise mode sums a product in blocks of k this way (minirnn.exact)."""
    R, K = a.shape
    n_panels, item = panels.shape[0], a.itemsize
    width = 2 * VECTOR_BYTES // item
    if (panels.shape[1] != K or panels.shape[2] != width or out.shape[0] != R
            or out.shape[1] < n_panels * width or not 0 <= k0 <= k1 <= K):
        raise ValueError("gemm.matmul: operand shapes disagree")
    # The tiles step through rows by their strides and along a row by one value.
    if (a.strides[1] != item or out.strides[1] != item or panels.strides[2] != item
            or panels.strides[1] != width * item or panels.strides[0] != K * width * item):
        raise ValueError("gemm.matmul: rows must be contiguous and panels packed")
    # Tall products (the input projection) go a block of rows at a time, so that the
    # block stays in the first-level cache while every panel passes over it. With
    # large weights, tile t of panel p prefetches its share of panel p + 1 (half of
    # it each for the first two tiles; a lone tile all of it): a line at
    # ``first + k * step`` bytes from the panels' start, k from 0.
    row_bytes = width * item            # one k step of a panel: two lines
    panel_bytes = K * row_bytes
    ahead = n_panels * panel_bytes > _AHEAD_BYTES
    for r0 in range(0, R, _ROW_BLOCK):
        r1 = min(R, r0 + _ROW_BLOCK)
        eights = r0 + (r1 - r0) // 8 * 8
        tiles = (eights - r0) // 8
        step = VECTOR_BYTES if tiles > 1 else row_bytes   # a line, or a whole k step
        for p in range(n_panels):
            if ahead:
                for t in range(tiles):
                    first = (p + 1) * panel_bytes + k0 * row_bytes + t * (k1 - k0) * VECTOR_BYTES
                    _tile8_ahead(a, r0 + 8 * t, panels, p, out, k0, k1, first, step)
            else:
                for i in range(r0, eights, 8):
                    _tile8(a, i, panels, p, out, k0, k1)
        if eights < r1:
            _last_rows(a, panels, out, eights, r1, k0, k1)
