"""A worker thread's rest: awake a little while after a part, in compiled code.

After each part of a parallel call (minirnn.parallel.workers) a worker spins here, without
the GIL, for ``handoff.REST_SECONDS`` (``JOB_REST_SECONDS`` after a job, so that a
stream of calls keeps it awake). Two things end or fill that rest:

- a new part posted to it (the count ``POSTED`` of its row of handoff.TABLE
  moves): the rest ends, and the worker takes the part from its inbox;
- a job (handoff's ``HELP`` word goes ASKED): a caller's kernel asks it to run
  some of its batch rows. The worker runs them here, answers, and rests on.

A worker's rest only ends after its row's HELP word is OFF, so that no caller
can ask it for a job it would never answer (see minirnn.parallel.handoff for the states).
A job runs through its entry point, a C function the kernels compile for each
kind of job (minirnn.kernels.job_address), whose address the caller writes with
the job: the rest itself knows no kernel, and compiles in a moment.

May use: numba and llvmlite, and :mod:`minirnn.parallel.handoff`.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import handoff
from .handoff import (ANSWER, ANSWERED, ASKED, BUSY, CALLER_CPU, ENTRY, HELP, OFF, POSTED,
                      READY, SPINNING, TABLE, TICKET, _YIELD_CYCLES, _cpu, _cycles, _finish,
                      _load, _nap, _pause, _sched_yield, _store, _swap, _valid_row)


@intrinsic
def _call_entry(typingctx, table, row):
    """Call the job's entry point (the C function at table[row, ENTRY], see
    minirnn.kernels.job_address) with a pointer to table[row, 0]; its result."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        first = cgutils.get_item_pointer(context, builder, signature.args[0], array,
                                         [row, context.get_constant(types.intp, 0)],
                                         wraparound=False)
        entry_pointer = cgutils.get_item_pointer(
            context, builder, signature.args[0], array,
            [row, context.get_constant(types.intp, ENTRY)], wraparound=False)
        int64 = ir.IntType(64)
        function = ir.FunctionType(int64, [int64.as_pointer()])
        entry = builder.inttoptr(builder.load(entry_pointer), function.as_pointer())
        return builder.call(entry, [first])
    return types.int64(table, row), codegen


@njit(cache=True, nogil=True)
def _answer(table, row):
    """Run the job the worker of ``row`` just took (ASKED -> BUSY), then answer it
    with its ticket, negated if it failed (BUSY -> ANSWERED)."""
    ticket = _load(table, row, TICKET)
    done = _call_entry(table, row) if table[row, ENTRY] != 0 else 0
    _store(table, row, ANSWER, ticket if done == 1 else -ticket)
    _store(table, row, HELP, ANSWERED)


@njit(cache=True, nogil=True)
def _took_a_job(table, row):
    """Whether a caller asked for a job and this worker took it."""
    return _load(table, row, HELP) == ASKED and _swap(table, row, HELP, ASKED, BUSY)


@njit(cache=True, nogil=True)
def _rest(table, row, seen, budget, job_budget, finished):
    """A worker after a part: count it done (if ``finished``), then spin while no
    new part is posted (the count is still ``seen``), running the jobs callers ask
    for, until ``budget`` counter cycles pass without either, or ``job_budget``
    after a job. Whether a new part was posted."""
    if not _valid_row(table, row):
        return False
    if finished:
        _finish(table, row)
    _store(table, row, SPINNING, 1)
    _store(table, row, HELP, READY)  # OFF until now: no caller could claim it
    posted = False
    start = last = _cycles()
    while True:
        if _load(table, row, POSTED) != seen:
            posted = True
            break
        if _took_a_job(table, row):
            _answer(table, row)
            start = last = _cycles()  # a stream of jobs keeps the worker awake
            budget = job_budget
            continue
        now = _cycles()
        if now - start > budget:
            break
        if now - last > _YIELD_CYCLES:
            if _cpu() >= 0 and _cpu() == table[row, CALLER_CPU]:
                # On the core of the last job's caller (where Linux puts a thread that
                # the caller woke), while another core may be idle: the two would take
                # turns, and the caller take its jobs back. Sleeping a moment lets the
                # scheduler wake this thread on an idle core.
                _nap()
            else:
                _sched_yield()  # a thread queued on this core may run
            last = _cycles()
        _pause()
    # Close the row to new jobs; a job asked for meanwhile is run first, and a
    # caller still writing one (WRITING) asks for it in a moment.
    while not (_swap(table, row, HELP, READY, OFF) or _swap(table, row, HELP, ANSWERED, OFF)):
        if _took_a_job(table, row):
            _answer(table, row)
        else:
            _pause()
    _store(table, row, SPINNING, 0)
    return posted


def compile_rest():
    """Compile the rest on this thread, before a worker needs it: a worker thread
    still compiling when the interpreter exits would take the process down."""
    _rest(TABLE, -1, 0, 0, 0, False)


def rest(row, seen, finished=True):
    """A worker's rest after a part (see _rest); whether a new part was posted. A
    worker without a row (-1: this CPU cannot spin) does not rest."""
    if row < 0:
        return False
    return _rest(TABLE, row, seen, handoff._cycles_for(handoff.REST_SECONDS),
                 handoff._cycles_for(handoff.JOB_REST_SECONDS), finished)

