"""Handing part of a call to a worker thread that is still awake.

A layer that splits its batch runs one slice on the calling thread and the
others on worker threads (:mod:`minirnn.parallel.workers`). A worker that sleeps between
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

A call too small to be worth that round trip through Python (a streaming step
of 32 rows takes 50 µs; splitting it so cost 24 µs) shares its batch without
Python instead, with a worker that is awake and that the caller holds
(:func:`helper_plan`). The caller's kernel checks its operands, then writes a
*job* into the worker's row: the addresses and shapes of the arrays of the
worker's rows of the batch, the kernel's other arguments, and the address of the
job's entry point (a C function compiled for each kind of job, see
minirnn.kernels.job_address, which the plan carries). The worker finds it from
its spin loop (minirnn.parallel.rest) and runs the kernel on those rows in compiled code
while the caller's kernel runs the others. A job moves through the states of
the row's ``HELP`` word, each move that two sides could make at once an atomic
compare-and-swap, so that exactly one of them makes it::

    OFF --the worker rests--> READY
    READY or ANSWERED --a caller claims--> WRITING --it wrote the job--> ASKED
    ASKED --the worker takes it--> BUSY --done--> ANSWERED
    ASKED --the caller gives up (the worker was late)--> READY
    READY or ANSWERED --the worker's rest ends--> OFF: no caller claims

Only the caller that claimed the word writes the job, and only while the worker
does not read it; the worker answers with the job's ticket (negated if the job
failed), so that a caller waits for its own answer. A caller that finds the
worker OFF (or the word claimed by another call) runs every row itself, and so
does one that gave the job up (not taken ``TAKE_SECONDS`` into its wait), or
whose job failed in the worker: a worker off its core costs a short wait, never
a result. Every batch row runs its own recurrence, so a shared call
has the same bits as one run whole.

Spinning needs the CPU's pause instruction and time stamp counter: on other
CPUs than x86-64 workers never spin and the plans are empty.

May use: numpy, numba and llvmlite (its intrinsics), nothing else of minirnn.
"""

import ctypes
import platform
import sys
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

SPINS = platform.machine().lower() in ("x86_64", "amd64")
# The columns of a worker's row. Its first cache line: the counts of its parts,
# whether it spins, a job's state (HELP), the ticket of the last job asked for, the
# answer to the last one run (its ticket, negated if it failed), the address of
# the job's compiled entry point (see minirnn.kernels.job_address), the CPU its
# caller ran on when it asked (see minirnn.parallel.rest). Then the job:
# the kernel's scalar arguments from column VALUES on, and its arrays from ARRAYS
# on, each an address and up to 3 lengths (see put_array).
POSTED, DONE, SPINNING, HELP, TICKET, ANSWER, ENTRY, CALLER_CPU = range(8)
VALUES, ARRAYS = 8, 24
OFF, READY, WRITING, ASKED, BUSY, ANSWERED = range(6)   # the states of HELP
HELPED = -1           # plan[0] of a helper plan (see helper_plan)
JOB_KINDS = 6         # the kinds of jobs: LSTM, GRU, SimpleRNN, each float32 and float64
REST_SECONDS = 2e-4   # a worker spins this long after a part before it sleeps
JOB_REST_SECONDS = 1e-3  # and this long after a job (see minirnn.parallel.rest)
WAIT_SECONDS = 5e-4   # a caller's kernel waits this long for its workers' signals
# A job the worker has not taken this long into the caller's wait (the caller ran its
# own rows meanwhile) is taken back: a worker that spins takes a job within about
# 0.1 us, so one that has not is off its core (as when another library's spinning
# threads share it: OpenBLAS's spin about 0.1 s after each of its calls).
TAKE_SECONDS = 5e-6

COLUMNS = ARRAYS + 4 * 16                  # room for 16 arrays
TABLE = np.zeros((64, COLUMNS), np.int64)   # a row per worker
# Workers spin on TABLE without the GIL, and one may still spin (and read a job's
# entry point there) while the interpreter frees its modules at exit: a reference
# never given back keeps the table's memory, and what it holds, to the end.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(TABLE))
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
def _swap(typingctx, table, row, column, expected, value):
    """table[row, column] = value if it was ``expected`` (one atomic compare-and-swap,
    sequentially consistent); whether it was."""
    def codegen(context, builder, signature, args):
        expected, value = (context.cast(builder, v, t, types.int64)
                           for v, t in zip(args[3:], signature.args[3:]))
        pair = builder.cmpxchg(_pointer(context, builder, signature, args), expected, value,
                               "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)
    return types.boolean(table, row, column, expected, value), codegen


@intrinsic
def _pointer_to(typingctx, address, like):
    """The int ``address`` as a pointer to values of ``like``'s type (a float or a
    bool), for numba.carray (see get_array)."""
    if not isinstance(like, (types.Float, types.Boolean)):
        return None
    pointer = types.CPointer(like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))
    return pointer(types.int64, like), codegen


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
def _cpu(typingctx):
    """The CPU this thread runs on (Linux's ``sched_getcpu()``); -1 elsewhere."""
    def codegen(context, builder, signature, args):
        if not (SPINS and sys.platform.startswith("linux")):
            return ir.Constant(ir.IntType(64), -1)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_getcpu")
        return builder.sext(builder.call(function, []), ir.IntType(64))
    return types.int64(), codegen


@intrinsic
def _nap(typingctx):
    """The C library's ``usleep(1)``: sleep a moment (about 50-60 µs on Linux, its
    timer slack), so that the scheduler wakes the thread on an idle core if there
    is one."""
    def codegen(context, builder, signature, args):
        if SPINS:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]), "usleep")
            builder.call(function, [ir.Constant(ir.IntType(32), 1)])
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
    return 0 <= row < table.shape[0] and table.shape[1] >= COLUMNS


@njit(cache=True, nogil=True)
def begin(table, plan):
    """Post one part to each worker of ``plan`` (a caller's kernel, first thing;
    nothing for a helper plan)."""
    if plan.size and plan[0] == HELPED:
        return
    for k in range((plan.size - 1) // 2):
        row = plan[1 + 2 * k]
        if _valid_row(table, row):
            _store(table, row, POSTED, _load(table, row, POSTED) + 1)


@njit(cache=True, nogil=True)
def end(table, plan):
    """Wait, spinning at most plan[0] counter cycles in all, until each worker of
    ``plan`` has finished its part (a caller's kernel, last thing; nothing for a
    helper plan)."""
    if plan.size and plan[0] == HELPED:
        return
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


# ---- a shared call: the caller's side, then the worker's ----------------------------

@njit(cache=True, nogil=True)
def helper_row(table, plan, kind):
    """The row of a helper plan's worker, for a job of ``kind``; -1 for other
    plans, and where the plan has no entry point for that kind."""
    if (plan.size == 3 + JOB_KINDS and plan[0] == HELPED and _valid_row(table, plan[1])
            and 0 <= kind < JOB_KINDS and plan[3 + kind] != 0):
        return plan[1]
    return -1


@njit(cache=True, nogil=True)
def claim_job(table, row):
    """Claim the worker's row for a job (READY or ANSWERED -> WRITING); False when
    the worker does not spin or another call has claimed it."""
    return _swap(table, row, HELP, READY, WRITING) or _swap(table, row, HELP, ANSWERED, WRITING)


@njit(cache=True, nogil=True)
def c_order(a):
    """Whether ``a`` lies in C order with no gaps, as numba.carray rebuilds it
    (an empty array always does: no byte of it is read)."""
    if a.size == 0:
        return True
    expected = a.itemsize
    for d in range(a.ndim - 1, -1, -1):
        if a.shape[d] > 1 and a.strides[d] != expected:
            return False
        expected *= a.shape[d]
    return True


@njit(cache=True, nogil=True)
def put_array(table, row, slot, a):
    """Write array ``slot`` of the job: a's address and lengths (a in C order, see
    c_order; 1 to 3 dimensions)."""
    column = ARRAYS + 4 * slot
    table[row, column] = a.ctypes.data
    for d in range(a.ndim):
        table[row, column + 1 + d] = a.shape[d]


@njit(cache=True, nogil=True)
def put_value(table, row, index, value):
    """Write the job's scalar argument ``index`` (an int or a bool)."""
    table[row, VALUES + index] = value


@njit(cache=True, nogil=True)
def ask(table, row, plan, kind):
    """Ask the claimed worker to run the job of ``kind`` just written (WRITING ->
    ASKED), with the plan's entry point for it; the job's ticket, for wait."""
    ticket = table[row, TICKET] + 1
    table[row, ENTRY] = plan[3 + kind]
    table[row, CALLER_CPU] = _cpu()
    _store(table, row, TICKET, ticket)
    _store(table, row, HELP, ASKED)
    return ticket


@njit(cache=True, nogil=True)
def wait(table, plan, row, ticket):
    """After the caller's own rows: wait for the answer to job ``ticket``. True
    when the worker ran the job; False when the caller must run those rows itself:
    the worker had not taken the job plan[2] counter cycles into this wait (then
    the caller takes it back), or the job failed there. Once the worker has taken
    the job, the caller waits for it, however long, so that the job's arrays
    outlive the worker's use of them."""
    start = last = _cycles()
    while True:
        answer = _load(table, row, ANSWER)
        if answer == ticket or answer == -ticket:
            return answer == ticket
        now = _cycles()
        if (now - start > plan[2] and _load(table, row, HELP) == ASKED
                and _swap(table, row, HELP, ASKED, READY)):
            return False
        if now - last > _YIELD_CYCLES:  # the worker may be queued on this core
            _sched_yield()
            last = now
        _pause()


@njit(cache=True, nogil=True)
def value(job, index):
    """The scalar argument ``index`` of ``job`` (a worker's row; see put_value)."""
    return job[VALUES + index]


@njit(cache=True, nogil=True)
def get_array1(job, slot, like):
    """Array ``slot`` of ``job`` (see put_array), 1-D, of ``like``'s type."""
    column = ARRAYS + 4 * slot
    return numba.carray(_pointer_to(job[column], like), (job[column + 1],))


@njit(cache=True, nogil=True)
def get_array2(job, slot, like):
    """Array ``slot`` of ``job``, 2-D."""
    column = ARRAYS + 4 * slot
    return numba.carray(_pointer_to(job[column], like), (job[column + 1], job[column + 2]))


@njit(cache=True, nogil=True)
def get_array3(job, slot, like):
    """Array ``slot`` of ``job``, 3-D."""
    column = ARRAYS + 4 * slot
    return numba.carray(_pointer_to(job[column], like),
                        (job[column + 1], job[column + 2], job[column + 3]))


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
        row = _free_rows.pop() if _free_rows else -1
    if row >= 0:
        TABLE[row, SPINNING] = TABLE[row, HELP] = 0  # as an ended worker leaves it: OFF
    return row


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


_helper_plans = {}


def helper_plan(row, kind, entry):
    """A plan that lets a caller's kernel share its batch with the worker of
    ``row``: HELPED, the row, how long a job waits to be taken (counter cycles),
    then per kind of job the address of its entry point (0: none yet), here
    ``entry`` for ``kind``. The caller holds the worker meanwhile, so that no other
    call hands it parts or jobs (the states of HELP keep the job's memory safe
    either way)."""
    plan = _helper_plans.get(row)
    if plan is None:
        plan = np.zeros(3 + JOB_KINDS, np.int64)
        plan[:3] = HELPED, row, _cycles_for(TAKE_SECONDS)
        _helper_plans[row] = plan
    plan[3 + kind] = entry
    return plan


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
