"""The jobs' entry points: one C function per kind of job (cell and dtype).

``job_address(kind)`` compiles (or reads from Numba's cache) the entry point of a
kind the first time a layer shares a call of that kind, on the calling thread,
and returns its address, which the caller writes with the job.

May use: numba and its own modules (the cells' kernels and their jobs).
"""

import numba
from numba import types

from .sharing import _GRU_JOB, _LSTM_JOB, _SIMPLE_RNN_JOB
from .lstm import _lstm_job_float32, _lstm_job_float64
from .gru import _gru_job_float32, _gru_job_float64
from .simple_rnn import _simple_rnn_job_float32, _simple_rnn_job_float64


_ENTRIES = (_lstm_job_float32, _lstm_job_float64, _gru_job_float32, _gru_job_float64,
            _simple_rnn_job_float32, _simple_rnn_job_float64)


_entry_points = {}  # kind -> the compiled C function (kept alive here)


# The kind of job of a layer's kernel ("lstm", "gru" or "simple_rnn") and dtype.
JOB_KINDS = {(layer, dtype): first + (dtype == "float64")
             for layer, first in (("lstm", _LSTM_JOB), ("gru", _GRU_JOB),
                                  ("simple_rnn", _SIMPLE_RNN_JOB))
             for dtype in ("float32", "float64")}


def job_address(kind):
    """The address of the entry point of jobs of ``kind``, compiled (or read from
    Numba's cache) the first time on the calling thread."""
    entry = _entry_points.get(kind)
    if entry is None:
        signature = types.int64(types.CPointer(types.int64))
        entry = _entry_points[kind] = numba.cfunc(signature, cache=True)(_ENTRIES[kind])
    return entry.address
