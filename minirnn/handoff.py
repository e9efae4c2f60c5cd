"""Handing part of a call to a worker thread that is still awake.

A layer that splits its batch runs one slice on the calling thread and the
others on worker threads (:mod:`minirnn.layers`). A worker that sleeps between
calls takes 50-75 µs to wake on the project's 2-core Xeon (a virtual machine),
longer than a whole streaming step of a (32, 1, 128, 128) LSTM. So after each
part a worker stays awake a little while (``REST_SECONDS``), spinning on a
counter without holding the GIL, and a call that comes meanwhile is taken up at
once. After that the worker sleeps in its inbox as before: nothing spins between
calls that are further apart.

Python's GIL is the other half. A thread that wants the GIL while another holds
it sleeps too (and wakes as slowly), so the two threads hand over only where
the other one runs compiled code without it:

- the caller's own slice posts the work from inside its compiled kernel
  (:func:`begin`), after Numba released the GIL, so the worker that sees the
  post finds the GIL free;
- the worker signals "done" from inside its compiled rest (:func:`rest`), after
  it let go of the GIL, and the caller's kernel waits for that signal
  (:func:`end`) before it returns and takes the GIL back.

Each worker has a row of ``TABLE`` (one cache line): how many parts were posted
to it, how many it has finished, and whether it is spinning now. The counters
only say *when* to look; the part itself always goes through the worker's inbox,
so a missed or early signal costs time, never a result. A caller's ``plan``
holds the budget of its wait, then per worker its row and the number of
finished parts to wait for.

Spinning needs the CPU's pause instruction and time stamp counter: on other
CPUs than x86-64 workers never spin and the plans are empty.
"""

import platform
import threading
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

SPINS = platform.machine().lower() in ("x86_64", "amd64")
POSTED, DONE, SPINNING = 0, 1, 2           # the columns of a worker's row
REST_SECONDS = 2e-4   # a worker spins this long after a part before it sleeps
WAIT_SECONDS = 5e-4   # a caller's kernel waits this long for its workers' signals

TABLE = np.zeros((256, 8), np.int64)       # a row (64 bytes) per worker
NO_PLAN = np.zeros(0, np.int64)
_free_rows = list(range(TABLE.shape[0] - 1, -1, -1))
_rows_lock = threading.Lock()
_pending = threading.local()               # a plan offered to this thread's next kernel
_cycles_per_second = None


def _pointer(context, builder, signature, args):
    """The address of table[row, column] for the intrinsics below (the callers keep
    row and column in bounds: see _valid_row)."""
    array = context.make_array(signature.args[0])(context, builder, args[0])
    indices = [context.cast(builder, value, kind, types.intp)
               for value, kind in zip(args[1:3], signature.args[1:3])]
    return cgutils.get_item_pointer(context, builder, signature.args[0], array, indices,
                                    wraparound=False)


@intrinsic
def _load(typingctx, table, row, column):
    """table[row, column], read with acquire ordering (never hoisted out of a loop)."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_pointer(context, builder, signature, args), "acquire", 8)
    return types.int64(table, row, column), codegen


@intrinsic
def _store(typingctx, table, row, column, value):
    """table[row, column] = value, written with release ordering."""
    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[3], signature.args[3], types.int64)
        builder.store_atomic(value, _pointer(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()
    return types.void(table, row, column, value), codegen


def _call(builder, name, result=ir.VoidType()):
    """Emit a call of the no-argument function ``name`` (on x86-64 only; elsewhere
    nothing, and a zero for a result)."""
    if not SPINS:
        return None if isinstance(result, ir.VoidType) else ir.Constant(result, 0)
    function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, []),
                                              name)
    return builder.call(function, [])


@intrinsic
def _pause(typingctx):
    """x86's ``pause``: a spin loop's hint to the core."""
    def codegen(context, builder, signature, args):
        _call(builder, "llvm.x86.sse2.pause")
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _sched_yield(typingctx):
    """The C library's ``sched_yield()``: let a thread queued on this core run."""
    def codegen(context, builder, signature, args):
        _call(builder, "sched_yield", ir.IntType(32))
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _cycles(typingctx):
    """The time stamp counter (x86's ``rdtsc``)."""
    def codegen(context, builder, signature, args):
        return _call(builder, "llvm.readcyclecounter", ir.IntType(64))
    return types.int64(), codegen


_YIELD_CYCLES = 1 << 15  # about 10 µs at a counter rate of 3 GHz


@njit(cache=True, nogil=True)
def _spin_while(table, row, column, value, budget):
    """Spin while table[row, column] == value, at most ``budget`` counter cycles;
    whether it changed.

    Every _YIELD_CYCLES the spinning thread offers its core to any thread queued
    there (``sched_yield``): Linux may wake the thread this one waits for on this
    very core, and without the yield it would wait for the spin to end."""
    start = last = _cycles()
    while _load(table, row, column) == value:
        now = _cycles()
        if now - start > budget:
            return False
        if now - last > _YIELD_CYCLES:
            _sched_yield()
            last = now
        _pause()
    return True


@njit(cache=True, nogil=True)
def _valid_row(table, row):
    return 0 <= row < table.shape[0] and table.shape[1] > SPINNING


@njit(cache=True, nogil=True)
def begin(table, plan):
    """Post one part to each worker of ``plan`` (a caller's kernel, first thing)."""
    for k in range((plan.size - 1) // 2):
        row = plan[1 + 2 * k]
        if _valid_row(table, row):
            _store(table, row, POSTED, _load(table, row, POSTED) + 1)


@njit(cache=True, nogil=True)
def end(table, plan):
    """Wait, spinning at most plan[0] counter cycles in all, until each worker of
    ``plan`` has finished its part (a caller's kernel, last thing)."""
    start = _cycles()
    for k in range((plan.size - 1) // 2):
        row, finished = plan[1 + 2 * k], plan[2 + 2 * k]
        if not _valid_row(table, row):
            continue
        left = plan[0] - (_cycles() - start)
        if left <= 0 or not _spin_while(table, row, DONE, finished - 1, left):
            return


@njit(cache=True, nogil=True)
def _finish(table, row):
    """Count the worker's part done (the signal a caller's ``end`` waits for)."""
    if _valid_row(table, row):
        _store(table, row, DONE, _load(table, row, DONE) + 1)


@njit(cache=True, nogil=True)
def _rest(table, row, seen, budget, finished):
    """A worker after a part: count it done (if ``finished``), then spin at most
    ``budget`` cycles while no new part is posted (the count is still ``seen``)."""
    if not _valid_row(table, row):
        return False
    if finished:
        _finish(table, row)
    _store(table, row, SPINNING, 1)
    posted = _spin_while(table, row, POSTED, seen, budget)
    _store(table, row, SPINNING, 0)
    return posted


def _cycles_for(seconds):
    """Counter cycles in ``seconds`` (the counter's rate measured once, over 1 ms)."""
    global _cycles_per_second
    if _cycles_per_second is None:
        c0, t0 = _counter(), time.perf_counter()
        while time.perf_counter() - t0 < 1e-3:
            pass
        _cycles_per_second = (_counter() - c0) / (time.perf_counter() - t0)
    return int(seconds * _cycles_per_second)


@njit(cache=True, nogil=True)
def _counter():
    return _cycles()


# ---- the Python side: rows, plans, rests -------------------------------------------

def take_row():
    """A free row of TABLE for a new worker; -1 (never spins) when none is left or
    this CPU cannot spin."""
    if not SPINS:
        return -1
    with _rows_lock:
        return _free_rows.pop() if _free_rows else -1


def give_back_row(row):
    """Return a row when its worker ends."""
    if row >= 0:
        with _rows_lock:
            _free_rows.append(row)


def posted(row):
    """The number of parts posted to the worker of ``row`` so far."""
    return int(TABLE[row, POSTED]) if row >= 0 else 0


def spinning(row):
    """Whether the worker of ``row`` is spinning (awake) now."""
    return row >= 0 and bool(TABLE[row, SPINNING])


def rest(row, seen, finished=True):
    """A worker's rest after a part (see _rest); whether a new part was posted."""
    if row < 0:
        return False
    return _rest(TABLE, row, seen, _cycles_for(REST_SECONDS), finished)


def finish(row):
    """A worker's last part: count it done, without a rest."""
    if row >= 0:
        _finish(TABLE, row)


def plan(rows):
    """A caller's plan for workers of ``rows`` (read before their parts are put in
    their inboxes): the wait's budget, then (row, finished parts to wait for) each.

    The caller's kernel waits by spinning only when every worker is awake now. A
    worker that sleeps is woken by the inbox, and Linux may queue it on the
    waker's core, behind a caller that spins: measured there, 0.6-4 ms late. Then
    the caller's kernel returns at once and the caller sleeps on the parts' locks."""
    rows = [row for row in rows if row >= 0]
    if not rows:
        return NO_PLAN
    awake = all(spinning(row) for row in rows)
    entries = [_cycles_for(WAIT_SECONDS) if awake else 0]
    for row in rows:
        entries += [row, int(TABLE[row, DONE]) + 1]
    return np.array(entries, np.int64)


def offer(plan):
    """Offer ``plan`` to the next kernel this thread runs (see claim)."""
    _pending.plan = plan


def claim():
    """(TABLE, plan) for a kernel about to run: the plan offered to this thread,
    once, or NO_PLAN."""
    plan = getattr(_pending, "plan", NO_PLAN)
    _pending.plan = NO_PLAN
    return TABLE, plan


def withdraw(plan):
    """After the caller's own part: if no kernel claimed ``plan``, post its parts
    from here (the workers may be spinning for them)."""
    if getattr(_pending, "plan", NO_PLAN) is plan:
        _pending.plan = NO_PLAN
        if plan.size:
            begin(TABLE, plan)
