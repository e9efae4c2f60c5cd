"""When a layer call runs on several threads, and how its batch is cut.

A call runs in one of three ways (:func:`threads_for`):

- ``ALONE``: on the calling thread only;
- ``SLICES``: slices of its batch on worker threads, the caller running the first
  (:func:`minirnn.parallel.workers.run_parts`), with at least ``SPLIT_FLOPS`` of
  work, or ``SPLIT_FLOPS_AWAKE`` when a worker is awake to take its part at once;
- ``SHARED``: its batch shared, from inside its kernel, with a worker that is
  awake (a job, :mod:`minirnn.parallel.handoff`), from ``HELP_FLOPS`` of work.

The work of a call is the flops of its matrix products, float64's counted twice
(see ``Recurrent._flops`` in :mod:`minirnn.layers`). The thresholds were measured
on the 2-core Xeon (family 6, model 167, a virtual machine), LSTM, median of calls
3 ms apart against the same on one thread, and of calls back to back:
- with the worker asleep, the split loses below about 1e8 flops: (32, 1, 128, 128)
  8.4e6 flops 147 against 78 µs, (32, 5, 128, 128) 4.2e7 355 against 283,
  (32, 10, 128, 128) 8.4e7 611 against 594. Woken by the caller, the worker
  often gets the caller's core, and runs when the caller waits;
- with the worker awake (back to back), it wins from about 1e7 flops:
  (64, 1, 128, 128) 1.7e7 87 against 110 µs, (32, 5, 128, 128) 164 against 258,
  (16, 10, 64, 64) 1.0e7 77 against 93; (32, 1, 128, 128) 8.4e6 61.5 against 58.
  float64's (32, 1, 128, 128) steps back to back, 2 x 8.4e6 flops: (32, 1, 128, 128) steps back to back
took 134 µs on one thread and 105 split (LSTM), 98 and 83 (GRU).
- a call shared with an awake worker (same machine, back to back, OpenBLAS's
  threads quiet) wins from about 4e6 flops, and beats the split wherever both run:
  (16, 1, 128, 128) 4.2e6 28.3 against 30.1 µs alone, (32, 1, 128, 128) 8.4e6 41.5
  against 52.2, (64, 1, 128, 128) 64.6 against 98.4 (split 85), (32, 5, 128, 128)
  134 against 233 (split 156), GRU (32, 1, 128, 128) 33.2 against 41.1; it loses
  below: (8, 1, 128, 128) 2.1e6 21.3 against 19.3, (32, 1, 64, 64) 23.3 against 21.5.

May use: :mod:`minirnn.parallel.workers` and :mod:`minirnn.parallel.handoff`.
"""

import functools

from . import handoff, workers

SPLIT_FLOPS = 1e8
SPLIT_FLOPS_AWAKE = 1e7
HELP_FLOPS = 4e6
ALONE, SLICES, SHARED = "alone", "slices", "shared"


def threads_for(flops):
    """ALONE, SLICES or SHARED for a call of ``flops`` on a batch of two rows or more:
    on two threads every call from HELP_FLOPS to SPLIT_FLOPS shares its batch; on
    more, the calls from SPLIT_FLOPS_AWAKE up split over all the threads. A thread
    that already runs part of a parallel call never splits again."""
    threads = workers.get_num_threads()
    if threads < 2 or workers.in_part():
        return ALONE
    if flops >= SPLIT_FLOPS or (threads > 2 and flops >= SPLIT_FLOPS_AWAKE):
        return SLICES if worth_a_split(flops) else ALONE
    return SHARED if flops >= HELP_FLOPS else ALONE


def side_by_side(flops):
    """Whether two calls of ``flops`` in all (a Bidirectional's two directions)
    run at once on two threads."""
    if workers.get_num_threads() < 2 or workers.in_part():
        return False
    return worth_a_split(flops)


def worth_a_split(flops):
    """Whether a call with ``flops`` of products runs on several threads: with at
    least SPLIT_FLOPS, or with SPLIT_FLOPS_AWAKE when an idle worker is awake.
    A call in between that finds none awake runs alone and wakes one, so that a
    stream of such calls (one step each) splits from its second or third call on."""
    if flops >= SPLIT_FLOPS:
        return True
    if flops < SPLIT_FLOPS_AWAKE or not handoff.SPINS:
        return False
    if workers.any_awake():
        return True
    workers.wake_a_worker()
    return False


@functools.lru_cache(maxsize=256)
def batch_slices(batch, threads):
    """Near-equal slices of the batch, one per thread, in whole tiles of 8 rows
    where the batch allows (minirnn.gemm's widest tile); a tuple, kept for the
    next call."""
    parts = min(threads, batch)
    unit = 8 if batch >= 8 * parts else 1
    blocks = -(-batch // unit)
    bounds = [min(batch, unit * (blocks * k // parts)) for k in range(parts + 1)]
    return tuple(slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a)
