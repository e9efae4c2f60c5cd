"""Threads: how a layer call uses more than one core.

Every row of a batch runs its own recurrence, so a layer with a large enough
batch runs the whole sequence on slices of the batch, one per thread, with no
synchronisation per step (ONNX Runtime's LSTM does the same). The kernels release
the GIL. The calling thread runs the first slice; the others go to minirnn's
worker threads. After a part a worker stays awake for ``handoff.REST_SECONDS``
(0.2 ms), spinning without the GIL, so that the next call of a stream of calls is
taken up at once; then it sleeps in its inbox, so nothing keeps a core busy
between calls further apart.

A call too small for that round trip through Python shares its batch with an
awake worker from inside its kernel instead (a *job*): the caller's kernel runs
the first half of the rows and the worker's rest the other, without either
taking the GIL. Results never depend on the split: each row is computed by the
same code whichever thread runs it.

The parts, each with one job:

- :mod:`~minirnn.parallel.policy`   when a call splits, shares or runs alone; how
  its batch is cut (the measured thresholds are there)
- :mod:`~minirnn.parallel.workers`  the worker threads, ``run_parts``, the threads'
  setting (``set_num_threads`` / ``get_num_threads``)
- :mod:`~minirnn.parallel.handoff`  the table through which a caller's kernel and a
  worker meet without Python: counters, spin waits, the job protocol
- :mod:`~minirnn.parallel.rest`     a worker's compiled rest after a part, where
  it takes jobs

The layers (:mod:`minirnn.layers`, :mod:`minirnn.bidirectional`) ask the policy,
then hand parts to the workers; the kernels (:mod:`minirnn.kernels`) post and
take jobs through the hand-off table. Nothing here imports the layers or the
kernels: a job's compiled entry point comes in from the caller.

May use: numpy, numba and llvmlite, and its own modules.
"""
