"""The LSTM's sequence kernel (Keras' LSTM, :func:`minirnn.equations.lstm_step`).

Per step, for every batch row, with z = x W + h U + b split into four gate blocks::

    i = sigma(z_i)   f = sigma(z_f)   g = act(z_g)   o = sigma(z_o)
    c = f * c + i * g
    h = o * act(c)

``lstm_sequence`` checks its operands and runs the steps (``_lstm_steps``), or
shares its batch with a worker (a job, ``_ask_lstm`` / ``_lstm_job``).
``_lstm_rows`` is the one-pass step for Keras' default activations: each unit's
four gates and two states in one vectorised loop.

May use: numpy, numba, llvmlite, :mod:`minirnn.exact`, :mod:`minirnn.gemm`,
:mod:`minirnn.parallel.handoff` and its own modules.
"""

import numpy as np
import numba
from numba import njit

from .. import exact as _exact
from .. import gemm as _gemm
from ..parallel import handoff as _handoff
from .compiler import _disjoint_arrays, _wide_vectors
from .activations import SIGMOID, TANH, activate_gate, sigmoid_fma, tanh_fma
from .products import _check_panels, _chunk_steps, _preactivation, _product, _project_chunk, _width
from .operands import _check_operands, _copy, _overlap
from .sharing import _LSTM_JOB, _a1, _a2, _a3, _in_c_order, _job_kind, _put_arrays, _put_values, _share_point, _v


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
    (minirnn.parallel.handoff); with a helper plan the kernel hands the second half of
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
    else:  # rows first .. B-1 to the worker (minirnn.parallel.handoff), the rest here
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


# The entry points, as the C functions job_address compiles: each gets a pointer to
# its worker's row of the table.
def _lstm_job_float32(row):
    return _lstm_job(numba.carray(row, (_handoff.COLUMNS,)), np.float32(0))


def _lstm_job_float64(row):
    return _lstm_job(numba.carray(row, (_handoff.COLUMNS,)), np.float64(0))
