"""A float32 matrix product with packed weights, for the kernels' products.

Every step of a recurrent layer multiplies the state h (B, M) by the same
recurrent kernel U (M, G*M), and the input projection multiplies stacked inputs
by the same kernel W. A BLAS call re-reads (and re-packs) the weights each time;
here they are packed once, when the layer's weights are assigned, into panels of
``PANEL`` columns::

    panels[p, k, :] = W[k, p*PANEL : (p+1)*PANEL]      (zero past the last column)

so that one k step of a panel is one contiguous run of 32 floats. The product is
then tiled: a tile of R rows (R = 8 or 4) times one panel keeps its R x 32 sums in
vector registers for the whole sum over k, and does per k one load of the panel
row (two 16-float vectors), R broadcasts of a[i, k] and 2R fused multiply-adds
(the last 1-3 rows of a product take 2 or 4 panels per tile instead, so that a
tile always has 8 sums in flight)::

    for k in range(K):                       # acc[r] starts at zero
        for r in range(R):
            acc[r] = fma(broadcast(a[i0 + r, k]), panels[p, k, :], acc[r])
    out[i0 : i0 + R, p*PANEL : (p+1)*PANEL] = acc

Each out[i, j] is the chain ((a[i,0] b[0,j] + a[i,1] b[1,j]) + ...) over k in
order, whatever the tile and the batch: rows never mix, so a result does not
depend on how the batch is split. (BLAS libraries sum in other orders; either
way the error is float32 rounding.)

Numba cannot keep small arrays in registers, so the tile is written as LLVM
vector IR through ``numba.extending.intrinsic``: the accumulators are
``<16 x float>`` values and LLVM allocates them to registers (32 zmm registers
hold an 8 x 32 tile with AVX-512; on a CPU with 256-bit vectors LLVM splits each
vector in two, and the code stays correct everywhere). Numba compiles for the CPU
it runs on, and its cache is keyed by that CPU, so a cache written elsewhere is
never used here.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["PANEL", "pack", "matmul", "padded"]

LANES = 16              # floats per vector: 512 bits
PANEL = 2 * LANES       # columns per packed panel
_TILE_ROWS = (8, 4, 2, 1)
_ROW_BLOCK = 64         # rows of a per pass over the panels


def padded(columns):
    """``columns`` rounded up to whole panels: the row length of a product's output."""
    return -(-columns // PANEL) * PANEL


def pack(w):
    """(K, N) float32 weights as (ceil(N / PANEL), K, PANEL) panels, zero-padded (a
    layer's private copy: the kernels never write it)."""
    w = np.asarray(w, np.float32)
    K, N = w.shape
    panels = np.zeros((padded(N) // PANEL, K, PANEL), np.float32)
    for p in range(panels.shape[0]):
        block = w[:, p * PANEL:(p + 1) * PANEL]
        panels[p, :, :block.shape[1]] = block
    return panels


def _tile(rows, width=1):
    """The intrinsic ``tile(a, i0, panels, p, out)``: out[i0:i0+rows, the columns of
    panels p .. p+width-1] = a[i0:i0+rows] @ those panels, with the sums in vector
    registers. Few rows need several panels at once: each sum is a chain of fused
    multiply-adds that waits for the last one (about 4 cycles), so a tile keeps at
    least 8 independent sums in flight."""

    @intrinsic
    def tile(typingctx, a, i0, panels, p, out):
        if not all(isinstance(t, types.Array) and t.dtype == types.float32 and t.ndim == n
                   for t, n in ((a, 2), (panels, 3), (out, 2))):
            return None
        signature = types.void(a, i0, panels, p, out)

        def codegen(context, builder, sig, args):
            a_arr, i0_v, panels_arr, p_v, out_arr = args
            A = context.make_array(sig.args[0])(context, builder, a_arr)
            P = context.make_array(sig.args[2])(context, builder, panels_arr)
            O = context.make_array(sig.args[4])(context, builder, out_arr)
            i64, f32 = ir.IntType(64), ir.FloatType()
            vector = ir.VectorType(f32, LANES)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3), "llvm.fma.v16f32")
            const = lambda n: ir.Constant(i64, n)  # noqa: E731
            K = cgutils.unpack_tuple(builder, P.shape, 3)[1]
            a_row_bytes = cgutils.unpack_tuple(builder, A.strides, 2)[0]
            out_row_bytes = cgutils.unpack_tuple(builder, O.strides, 2)[0]

            def address(base, offset_bytes, kind):
                return builder.inttoptr(builder.add(builder.ptrtoint(base, i64), offset_bytes),
                                        kind.as_pointer())

            panel_bytes = builder.mul(K, const(PANEL * 4))
            panel_start = builder.mul(p_v, panel_bytes)
            a_rows = [builder.mul(builder.add(i0_v, const(r)), a_row_bytes) for r in range(rows)]
            zero = ir.Constant(vector, [0.0] * LANES)
            parts = 2 * width  # 16-float vectors across the tile's columns
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(parts)]
                   for _ in range(rows)]
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                b_row = builder.add(panel_start, builder.mul(k, const(PANEL * 4)))
                b = []
                for part in range(parts):
                    offset = builder.add(builder.mul(panel_bytes, const(part // 2)),
                                         const(part % 2 * 64))
                    load = builder.load(address(P.data, builder.add(b_row, offset), vector))
                    load.align = 4
                    b.append(load)
                for r in range(rows):
                    a_rk = builder.load(address(A.data, builder.add(a_rows[r],
                                                                    builder.mul(k, const(4))), f32))
                    a_splat = builder.shuffle_vector(
                        builder.insert_element(ir.Constant(vector, ir.Undefined), a_rk,
                                               ir.Constant(ir.IntType(32), 0)),
                        ir.Constant(vector, ir.Undefined), splat_mask)
                    for part in range(parts):
                        builder.store(builder.call(fma, [a_splat, b[part],
                                                         builder.load(acc[r][part])]),
                                      acc[r][part])
            column_bytes = builder.mul(p_v, const(PANEL * 4))
            for r in range(rows):
                row = builder.add(builder.mul(builder.add(i0_v, const(r)), out_row_bytes),
                                  column_bytes)
                for part in range(parts):
                    store = builder.store(builder.load(acc[r][part]),
                                          address(O.data, builder.add(row, const(part * 64)),
                                                  vector))
                    store.align = 4
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile8, _tile4, _tile2, _tile1 = (_tile(rows) for rows in _TILE_ROWS)
_tile2x2, _tile1x4 = _tile(2, 2), _tile(1, 4)  # the last rows: more panels per tile


@njit(cache=True, error_model="numpy", nogil=True)
def _last_rows(a, panels, out, i, r1):
    """Rows i .. r1-1 (at most 3) of the product, several panels per tile."""
    n_panels = panels.shape[0]
    if i + 2 <= r1:
        p = 0
        while p + 2 <= n_panels:
            _tile2x2(a, i, panels, p, out)
            p += 2
        if p < n_panels:
            _tile2(a, i, panels, p, out)
        i += 2
    if i < r1:
        p = 0
        while p + 4 <= n_panels:
            _tile1x4(a, i, panels, p, out)
            p += 4
        while p < n_panels:
            _tile1(a, i, panels, p, out)
            p += 1


@njit(cache=True, error_model="numpy", nogil=True)
def matmul(a, panels, out):
    """out[:, :padded(N)] = a @ W for a (R, K) and W packed by :func:`pack`.

    ``out`` has at least ``panels.shape[0] * PANEL`` columns (the padded columns
    receive zeros' products). Shapes are checked here: the tiles index unchecked.
    """
    R, K = a.shape
    n_panels = panels.shape[0]
    if (panels.shape[1] != K or panels.shape[2] != PANEL or out.shape[0] != R
            or out.shape[1] < n_panels * PANEL):
        raise ValueError("gemm.matmul: operand shapes disagree")
    # The tiles step through rows by their strides and along a row by 4 bytes.
    if (a.strides[1] != 4 or out.strides[1] != 4 or panels.strides[2] != 4
            or panels.strides[1] != PANEL * 4 or panels.strides[0] != K * PANEL * 4):
        raise ValueError("gemm.matmul: rows must be contiguous and panels packed")
    # Tall products (the input projection) go a block of rows at a time, so that the
    # block stays in the first-level cache while every panel passes over it.
    for r0 in range(0, R, _ROW_BLOCK):
        r1 = min(R, r0 + _ROW_BLOCK)
        fours = r0 + (r1 - r0) // 4 * 4
        for p in range(n_panels):
            i = r0
            while i + 8 <= fours:
                _tile8(a, i, panels, p, out)
                i += 8
            if i < fours:
                _tile4(a, i, panels, p, out)
        if fours < r1:
            _last_rows(a, panels, out, fours, r1)
