"""The SimpleRNN's sequence kernel (:func:`minirnn.equations.simple_rnn_step`).

Per step, for every batch row: ``h = act(x W + h U + b)``.

May use: numpy, numba, llvmlite, :mod:`minirnn.exact`, :mod:`minirnn.gemm`,
:mod:`minirnn.parallel.handoff` and its own modules.
"""

import numpy as np
import numba
from numba import njit

from .. import exact as _exact
from .. import gemm as _gemm
from ..parallel import handoff as _handoff
from .activations import activate_gate
from .products import _check_panels, _chunk_steps, _product, _project_chunk, _width
from .operands import _check_operands, _copy
from .sharing import _SIMPLE_RNN_JOB, _a1, _a2, _a3, _in_c_order, _job_kind, _put_arrays, _put_values, _share_point, _v


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
    else:  # rows first .. B-1 to the worker (minirnn.parallel.handoff), the rest here
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


def _simple_rnn_job_float32(row):
    return _simple_rnn_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _simple_rnn_job_float64(row):
    return _simple_rnn_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))
