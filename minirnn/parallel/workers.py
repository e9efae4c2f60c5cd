"""The worker threads: parts of parallel calls, and the threads' setting.

A worker (:class:`_Worker`) is a daemon thread that runs parts of calls from its
inbox. The caller of :func:`run_parts` runs the first part itself and waits for
the others; a part runs under :class:`_ParallelPart`, so that nothing inside it
splits again (a worker must never wait for other workers, or they could all wait
for each other). After a part a worker rests awake a little while in compiled
code (:mod:`minirnn.parallel.rest`), where the next call can reach it without
Python (:mod:`minirnn.parallel.handoff`); :func:`helping_worker` and
:func:`run_helped` hand such a worker a share of one kernel call.

At most ``get_num_threads() - 1`` workers exist; they are made when first needed
and end when the setting drops. After fork the child has none.

May use: numpy, numba's configuration, :mod:`minirnn.parallel.handoff` and
:mod:`minirnn.parallel.rest`.
"""

import numbers
import os
import queue
import threading

import numpy as np
from numba.core import config as numba_config

from . import handoff, rest

_WAKE = object()    # in a worker's inbox: no part, only a rest (see policy.worth_a_split)
_threads = None     # set_num_threads; None: NUMBA_NUM_THREADS, as Numba's own default
# A thread that already runs part of a call in parallel (a worker, or a
# Bidirectional running its directions side by side) does not split again: a
# worker must never wait for other workers, or they could all wait for each other.
_local = threading.local()


def in_part():
    """Whether this thread runs a part of a parallel call now."""
    return getattr(_local, "in_part", False)


def any_awake():
    """Whether an idle worker is awake (resting, spinning) now."""
    return any(handoff.spinning(worker.row) for worker in tuple(_idle))  # a snapshot


class _ParallelPart:
    """Marks the current thread as running one part of a parallel call."""

    def __enter__(self):
        self.before = getattr(_local, "in_part", False)
        _local.in_part = True

    def __exit__(self, *error):
        _local.in_part = self.before


class _Task:
    """One part of a parallel call: the callable, then its result or error; ``done``
    is released when it has run."""

    def __init__(self, part):
        self.part, self.result, self.error = part, None, None
        self.done = threading.Lock()
        self.done.acquire()


class _Worker(threading.Thread):
    """A thread that runs parts of parallel calls, one at a time.

    A part comes through its inbox (a ``queue.SimpleQueue``) and the caller waits
    for it on a lock. After each part the worker spins for a short while (see
    minirnn.parallel.handoff, where the caller's kernel posts the next part and waits for
    its end without either thread waiting for the GIL): a round trip of about 3 µs
    on the project's 2-core Xeon while it is awake, against 50-75 µs to wake a
    worker that sleeps in its inbox (and about 90 µs through
    ``concurrent.futures``). ``_WAKE`` in the inbox only starts such a spin.

    After each part the worker puts itself back among the idle ones, whatever its
    caller does meanwhile (an interrupted caller never leaves a worker lost or
    busy), or ends when there are more workers than the thread setting allows.
    """

    def __init__(self):
        super().__init__(name="minirnn", daemon=True)
        self.inbox = queue.SimpleQueue()
        self.row = handoff.take_row()  # its row of handoff.TABLE, -1: it never spins

    def run(self):
        _local.in_part = True
        try:
            self._serve()
        finally:
            handoff.give_back_row(self.row)

    def _serve(self):
        while True:
            task = self.inbox.get()
            if task is None:
                return
            if task is _WAKE:
                seen = handoff.posted(self.row)
                if _idle_again(self):
                    rest.rest(self.row, seen, finished=False)
                    continue
                return
            try:
                task.result = task.part()
            except BaseException as error:  # handed to the caller, raised there
                task.error = error
            task.part = None
            seen = handoff.posted(self.row)  # parts posted from here on are new
            stay = _idle_again(self)
            task.done.release()
            if not stay:
                handoff.finish(self.row)  # the caller's kernel waits for this signal
                return
            rest.rest(self.row, seen)


# Workers waiting for a part, and how many exist (at most get_num_threads() - 1 are
# made; a call that finds none idle, because another Python thread's call has them,
# runs its parts on the calling thread).
_idle = set()
_made = 0
_idle_lock = threading.Lock()


def _idle_again(worker):
    """Put ``worker`` back among the idle ones; False (and counted out) when there
    are more workers than the thread setting allows, and it should end."""
    global _made
    with _idle_lock:
        if _made > get_num_threads() - 1:
            _made -= 1
            return False
        _idle.add(worker)
        return True


def take_workers(wanted):
    """Up to ``wanted`` idle workers, made as needed within the thread setting."""
    global _made
    if handoff.SPINS and _made < get_num_threads() - 1:  # a worker may be made below
        rest.compile_rest()  # here, not in the new worker (see minirnn.parallel.rest)
    with _idle_lock:
        taken = [_idle.pop() for _ in range(min(wanted, len(_idle)))]
        new = min(wanted - len(taken), max(0, get_num_threads() - 1 - _made))
        _made += new
    for k in range(new):
        worker = _Worker()
        try:
            worker.start()
        except RuntimeError:  # no more threads: the caller runs the rest itself
            handoff.give_back_row(worker.row)
            with _idle_lock:
                _made -= new - k
            break
        taken.append(worker)
    return taken


def wake_a_worker():
    """Start the rest of an idle worker (made if the thread setting allows), so that
    the next call of a stream finds it awake."""
    for worker in take_workers(1):
        worker.inbox.put(_WAKE)


def helping_worker(job):
    """(worker, kind, entry point) for an idle worker that is awake now, taken to
    run some of the batch rows of a call (a job, see minirnn.parallel.handoff), or
    None: no worker is awake (then one is woken, so that the next call of a stream
    finds it awake). ``job`` is (kind, entry), ``entry()`` the address of the job's
    compiled entry point: called here, so that it compiles (or is read from the
    cache) on the calling thread."""
    if not handoff.SPINS:
        return None
    kind, entry_of = job
    entry = entry_of()
    with _idle_lock:
        for worker in _idle:
            if handoff.spinning(worker.row):
                _idle.remove(worker)
                return worker, kind, entry
    wake_a_worker()
    return None


def run_helped(helper, run):
    """Run ``run`` (a kernel call) here with a helper plan for ``helper``, the
    (worker, kind, entry point) of :func:`helping_worker`; this call holds the worker
    until the kernel returns."""
    worker, kind, entry = helper
    plan = handoff.helper_plan(worker.row, kind, entry)
    try:
        handoff.offer(plan)
        try:
            run()
        finally:
            handoff.withdraw(plan)  # never left for another kernel of this thread
    finally:
        if not _idle_again(worker):
            worker.inbox.put(None)  # more workers than the thread setting: it ends


def run_parts(first, others):
    """Run ``others`` (callables) on worker threads and ``first`` here, wait for
    all, and raise: the caller's error if a part here failed, else the first
    worker's. Return first's result and the others' results. Parts that find no
    idle worker run here, after ``first``."""
    workers = take_workers(len(others))
    tasks = [_Task(part) for part in others[:len(workers)]]
    # Each worker's count of finished parts, read before it gets this one: the
    # first kernel that ``first`` runs posts the parts and waits for that count + 1.
    plan = handoff.plan([worker.row for worker in workers])
    begun = 0
    try:
        for worker, task in zip(workers, tasks):
            worker.inbox.put(task)
            begun += 1
        with _ParallelPart():
            handoff.offer(plan)
            try:
                result = first()
            finally:
                handoff.withdraw(plan)  # posts the parts here if no kernel ran
            results = [part() for part in others[len(workers):]]
    finally:
        # A worker not handed its part (an interrupt just above) is idle as it was;
        # one that was puts itself back when done. (An interrupt inside the loop
        # above, around one put, can lose that one worker from the idle set.)
        with _idle_lock:
            _idle.update(workers[begun + 1:])
        for task in tasks[:begun]:
            task.done.acquire()
    for task in tasks:
        if task.error is not None:
            raise task.error
    return result, [task.result for task in tasks] + results


def set_num_threads(n):
    """Use at most ``n`` threads per layer call (1: the calling thread only).

    The default is Numba's NUMBA_NUM_THREADS (the number of CPUs unless that
    variable says otherwise). Only layers with at least two batch rows and
    enough work split their batch; results do not depend on the split.
    """
    global _threads, _made
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"`n` must be a positive integer; received {n!r}.")
    _threads = int(n)
    with _idle_lock:  # idle workers beyond the new setting end now, busy ones when done
        while _made > _threads - 1 and _idle:
            _idle.pop().inbox.put(None)
            _made -= 1


def get_num_threads():
    """The most threads a layer call uses (see :func:`set_num_threads`)."""
    if _threads is not None:
        return _threads
    return max(1, int(numba_config.NUMBA_NUM_THREADS))  # reading it starts no thread pool


def _forget_workers():
    """After fork: the child has none of the parent's threads."""
    global _idle, _made, _idle_lock
    _idle, _made, _idle_lock = set(), 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)
