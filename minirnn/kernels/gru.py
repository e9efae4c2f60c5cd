"""The GRU's sequence kernel (Keras' GRU, :func:`minirnn.equations.gru_step`).

Per step, for every batch row, with x W + b_x split into gate blocks::

    z = sigma(x W_z + h U_z + b_z)     r = sigma(x W_r + h U_r + b_r)
    reset_after=True:  hh = act(x W_h + b_xh + r * (h U_h + b_hh))
    reset_after=False: hh = act(x W_h + (r * h) U_h + b_h)
    h = z * h + (1 - z) * hh

``gru_sequence`` checks its operands and runs the steps (``_gru_steps``), or
shares its batch with a worker (``_ask_gru`` / ``_gru_job``). ``_gru_rows`` is the
one-pass step (reset_after=True, Keras' default activations).

May use: numpy, numba, llvmlite, :mod:`minirnn.exact`, :mod:`minirnn.gemm`,
:mod:`minirnn.parallel.handoff` and its own modules.
"""

import numpy as np
import numba
from numba import njit

from .. import exact as _exact
from .. import gemm as _gemm
from ..parallel import handoff as _handoff
from .compiler import _disjoint_arrays, _wide_vectors, typed
from .activations import SIGMOID, TANH, activate_gate, sigmoid_fma, tanh_fma
from .products import _check_panels, _chunk_steps, _product, _project_chunk, _width
from .operands import _check_operands, _copy, _overlap
from .sharing import _GRU_JOB, _a1, _a2, _a3, _in_c_order, _job_kind, _put_arrays, _put_values, _share_point, _v


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
    else:  # rows first .. B-1 to the worker (minirnn.parallel.handoff), the rest here
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


def _gru_job_float32(row):
    return _gru_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _gru_job_float64(row):
    return _gru_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))
