"""A shared call: the worker's rows of the batch as a job (minirnn.parallel.handoff).

A kernel with a helper plan writes the job of rows first .. B-1 into the worker's
row of the hand-off table: each array the kernel's steps take (an address and its
lengths: whole arrays, in C order, which the steps slice themselves), then the
rows and the other arguments, all in the order of the steps' arguments. The
worker's rest (minirnn.parallel.rest) calls the job's entry point, a C function
compiled from one of the cells' ``_xxx_job_float32/64`` when a layer first shares a
call of that kind (:mod:`minirnn.kernels.jobs`): it reads the job back and runs
the steps. Compiled apart, each kind costs its compile only where it is used.

Here: the kinds of jobs, where a batch is cut, and writing and reading a job's
arrays and values.

May use: numpy, numba and :mod:`minirnn.parallel.handoff`.
"""

from numba import literal_unroll, njit

from ..parallel import handoff as _handoff


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
    minirnn.parallel.policy.batch_slices on two threads)."""
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
