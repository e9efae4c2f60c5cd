"""Checks of a kernel's operands, compiled: shapes, and arrays that must not overlap.

The layers check everything in Python first, with messages naming the argument;
these checks run again inside the kernels, so that a wrong call raises ValueError
instead of reading or writing out of bounds.

May use: numpy and numba.
"""

import numpy as np
from numba import njit


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
