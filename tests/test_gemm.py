"""The packed products (minirnn.gemm, float32 and float64) and the batch split over threads."""

import glob
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import minirnn
from minirnn import gemm
from minirnn.parallel import handoff, policy, rest, workers
from background import Job, sources_cache
from conftest import random_weights

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("R, K, N", [
    (1, 1, 1), (1, 3, 12), (2, 5, 7), (3, 64, 256), (5, 33, 65), (8, 128, 512),
    (9, 17, 31), (13, 77, 100), (15, 2, 96), (70, 40, 33),  # 70 rows: two row blocks
    (1, 513, 130), (2, 257, 64), (11, 600, 70),  # long sums
])
def test_matmul_against_exact(R, K, N, dtype):
    a = RNG.standard_normal((R, K)).astype(dtype)
    w = RNG.standard_normal((K, N)).astype(dtype)
    width = gemm.padded(N, dtype)
    guarded = np.full((R + 1, width + gemm.panel_width(dtype)), np.nan, dtype)
    out = guarded[:R, :width]
    gemm.matmul(a, gemm.pack(w), out)
    assert np.all(np.isnan(guarded[R])) and np.all(np.isnan(guarded[:, width:]))
    exact = a.astype(np.longdouble) @ w.astype(np.longdouble)
    # sums of K terms: error below K * eps * sum |a_k w_k|
    bound = K * np.finfo(dtype).eps * (np.abs(a).astype(np.longdouble) @ np.abs(w))
    assert np.all(np.abs(out[:, :N] - exact) <= bound + 1e-300)
    assert np.all(out[:, N:] == 0)  # the padding columns are zero products


def test_matmul_sums_each_row_in_k_order():
    """out[i, j] is the fused chain over k in order, whatever the tile: rows never
    mix, so the result of a row does not depend on the batch around it."""
    K, N = 37, 40
    w = RNG.standard_normal((K, N)).astype(np.float32)
    a = RNG.standard_normal((15, K)).astype(np.float32)
    panels = gemm.pack(w)
    whole = np.empty((15, gemm.padded(N)), np.float32)
    gemm.matmul(a, panels, whole)
    for i in range(15):
        row = np.empty((1, gemm.padded(N)), np.float32)
        gemm.matmul(a[i:i + 1], panels, row)
        np.testing.assert_array_equal(row, whole[i:i + 1])
    chain = np.zeros(N, np.float32)
    for k in range(K):  # numpy float32 a*b+c rounds twice; the tile fuses: compare loosely
        chain = chain + a[3, k] * w[k]
    np.testing.assert_allclose(whole[3, :N], chain, rtol=1e-5, atol=1e-5)


def _fma_chain(a_row, w):
    """The fused multiply-add chain over k in order, computed exactly with fractions
    and rounded once per step to w's dtype: sum = round(a[k] * w[k, j] + sum)."""
    round_once = _round32 if w.dtype == np.float32 else lambda v: Fraction(float(v))
    sums = [Fraction(0)] * w.shape[1]
    for k, a_k in enumerate(a_row):
        for j in range(w.shape[1]):
            sums[j] = round_once(Fraction(float(a_k)) * Fraction(float(w[k, j])) + sums[j])
    return np.array([float(v) for v in sums], w.dtype)


def _round32(value):
    """A fraction rounded once to the nearest float32, ties to even: the float32
    nearest its float64 rounding is at most one step away from the answer."""
    near = np.float32(float(value))
    candidates = (np.nextafter(near, np.float32(-np.inf)), near,
                  np.nextafter(near, np.float32(np.inf)))
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - value),
                                          int(c.view(np.int32)) & 1))
    return Fraction(float(best))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("R, K, N", [(3, 515, 5), (15, 33, 130)])
def test_matmul_is_one_fused_chain_over_k(R, K, N, dtype):
    """Each output is one fused multiply-add chain over k in order, bit for bit, for
    long sums and for every tile: 15 rows x 130 columns take 8-row tiles, then
    4 x 2-panel, 2 x 2-panel and 1 x 4-panel tiles, then single panels."""
    a = RNG.standard_normal((R, K)).astype(dtype)
    w = RNG.standard_normal((K, N)).astype(dtype)
    out = np.empty((R, gemm.padded(N, dtype)), dtype)
    gemm.matmul(a, gemm.pack(w), out)
    for i in range(R):
        np.testing.assert_array_equal(out[i, :N], _fma_chain(a[i], w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R", [8, 17, 75])
def test_prefetching_tiles_give_the_same_bits(R, dtype):
    """Weights larger than gemm._AHEAD_BYTES take the 8-row tiles that prefetch the
    next panel (one tile per panel, two, and two row blocks): the same chains, bit
    for bit, as one row at a time (a 1-row product never prefetches)."""
    K, N = 300, 530
    w = RNG.standard_normal((K, N)).astype(dtype)
    a = RNG.standard_normal((R, K)).astype(dtype)
    panels = gemm.pack(w)
    assert panels.nbytes > gemm._AHEAD_BYTES
    whole = np.empty((R, gemm.padded(N, dtype)), dtype)
    gemm.matmul(a, panels, whole)
    for i in range(R):
        row = np.empty((1, gemm.padded(N, dtype)), dtype)
        gemm.matmul(a[i:i + 1], panels, row)
        np.testing.assert_array_equal(row, whole[i:i + 1])
    exact = a.astype(np.longdouble) @ w.astype(np.longdouble)
    bound = K * np.finfo(dtype).eps * (np.abs(a).astype(np.longdouble) @ np.abs(w))
    assert np.all(np.abs(whole[:, :N] - exact) <= bound)


def test_pack_layout():
    w = np.arange(3 * 70, dtype=np.float32).reshape(3, 70)
    panels = gemm.pack(w)
    assert panels.shape == (3, 3, gemm.PANEL)
    np.testing.assert_array_equal(panels[1, 2, :], w[2, 32:64])
    np.testing.assert_array_equal(panels[2, 0, :6], w[0, 64:70])
    assert np.all(panels[2, :, 6:] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panels_and_scratch_start_a_cache_line(dtype):
    # NumPy aligns to 16 bytes and Numba to 32; a panel 32 bytes off a cache line
    # makes every 512-bit load of the tiles touch two lines.
    rng = np.random.default_rng(3)
    for K, N in [(1, 1), (3, 12), (64, 256), (128, 512), (7, 97)]:
        for _ in range(5):  # several allocations: each lands at another offset
            w = rng.standard_normal((K, N)).astype(dtype)
            panels = gemm.pack(w)
            assert panels.ctypes.data % 64 == 0
            assert panels.dtype == dtype and panels.flags.c_contiguous
            np.testing.assert_array_equal(
                panels.transpose(1, 0, 2).reshape(K, -1)[:, :N], w)
    like = np.zeros(1, dtype)
    for rows, columns in [(0, 5), (1, 1), (3, 33), (17, 128)]:
        scratch = gemm.aligned_rows(like, rows, columns)
        assert scratch.shape == (rows, columns) and scratch.dtype == dtype
        assert scratch.flags.c_contiguous and scratch.ctypes.data % 64 == 0
        scratch[...] = 1  # writable
        empty = gemm.aligned_empty((rows, columns), dtype)
        assert empty.shape == (rows, columns) and empty.dtype == dtype
        assert empty.size == 0 or empty.ctypes.data % 64 == 0  # NumPy moves empty views


@pytest.mark.parametrize("bad", ["rows", "out", "strides"])
def test_matmul_checks_its_operands(bad):
    a = np.zeros((4, 6), np.float32)
    panels = gemm.pack(np.zeros((6, 10), np.float32))
    out = np.zeros((4, 32), np.float32)
    if bad == "rows":
        a = np.zeros((4, 5), np.float32)
    elif bad == "out":
        out = np.zeros((3, 32), np.float32)
    else:
        a = np.zeros((4, 12), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="gemm.matmul"):
        gemm.matmul(a, panels, out)


def test_layers_pack_weights_in_every_mode():
    x = RNG.standard_normal((2, 4, 3))
    modes = [("float32", False), ("float64", False)]
    if minirnn.bitwise_support():
        modes.append(("float32", True))
    for dtype, bitwise in modes:
        layer = minirnn.GRU(5, reset_after=False, dtype=dtype, seed=0, bitwise=bitwise)
        layer(x.astype(dtype))
        assert all(p.shape[0] > 0 and p.dtype == np.dtype(dtype)
                   and p.shape[2] == gemm.panel_width(dtype) for p in layer._panels)
    layer = minirnn.LSTM(5, seed=0)
    layer(x)
    layer.kernel = layer.kernel * 2  # re-packed at assignment
    np.testing.assert_array_equal(layer._panels[0][0, :, :20], layer.kernel)


@pytest.mark.parametrize("batch, threads", [(32, 2), (8, 2), (9, 2), (2, 2), (3, 2), (64, 2),
                                            (17, 4), (1, 2), (100, 3), (5, 8)])
def test_batch_slices_cover_the_batch(batch, threads):
    slices = policy.batch_slices(batch, threads)
    rows = np.concatenate([np.arange(batch)[s] for s in slices])
    np.testing.assert_array_equal(rows, np.arange(batch))
    assert len(slices) == min(batch, threads)
    if batch >= 8 * threads:
        assert all(s.start % 8 == 0 for s in slices)


@pytest.fixture
def threads(monkeypatch):
    """set_num_threads, restored after the test. Calls split from 1e7 flops here
    (whether or not a worker is awake), so that small sizes exercise the split."""
    monkeypatch.setattr(policy, "SPLIT_FLOPS", 1e7)
    before = minirnn.get_num_threads()
    yield minirnn.set_num_threads
    minirnn.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1", "SimpleRNN"])
def test_split_batch_gives_the_same_bits(kind, threads, dtype):
    """Every row is its own recurrence: slices on threads change nothing."""
    cls = {"LSTM": minirnn.LSTM, "GRU": minirnn.GRU, "SimpleRNN": minirnn.SimpleRNN,
           "GRU_v1": lambda *a, **k: minirnn.GRU(*a, reset_after=False, **k)}[kind]
    x = RNG.standard_normal((19, 40, 64)).astype(dtype)
    mask = RNG.random((19, 40)) < 0.85
    layer = cls(96, return_sequences=True, return_state=True, go_backwards=True, seed=3,
                dtype=dtype)
    threads(1)
    one = layer(x, mask=mask)
    for n in (2, 3, 7):
        threads(n)
        assert layer._split(19, 40)
        for a, b in zip(one, layer(x, mask=mask)):
            np.testing.assert_array_equal(a, b)


def test_stateful_split_keeps_each_rows_states(threads):
    threads(2)
    x = RNG.standard_normal((16, 30, 64)).astype(np.float32)
    split = minirnn.LSTM(128, stateful=True, seed=1)
    threads(1)
    whole = minirnn.LSTM(128, stateful=True, seed=1)
    for _ in range(3):
        threads(1)
        expected = whole(x)
        threads(2)
        np.testing.assert_array_equal(split(x), expected)
    for a, b in zip(split.states, whole.states):
        np.testing.assert_array_equal(a, b)


def test_two_python_threads_at_once(threads):
    threads(2)
    x = RNG.standard_normal((16, 50, 64)).astype(np.float32)
    layers = [minirnn.LSTM(128, return_sequences=True, seed=s) for s in (1, 2)]
    expected = [layer(x) for layer in layers]
    results = {}

    def call(i):
        results[i] = [layers[i % 2](x) for _ in range(5)]

    workers = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for i, outputs in results.items():
        for out in outputs:
            np.testing.assert_array_equal(out, expected[i % 2])


def test_no_thread_keeps_spinning_after_a_call():
    """Idle worker threads sleep in their inboxes: after a split call the process
    uses no CPU while the caller sleeps (in a fresh process, where no other
    library's threads run)."""
    script = textwrap.dedent("""
        import time, numpy as np, minirnn
        minirnn.set_num_threads(2)
        layer = minirnn.LSTM(128, return_sequences=True, seed=0)
        x = np.random.default_rng(0).standard_normal((32, 50, 128)).astype(np.float32)
        layer(x)
        assert layer._split(32, 50)
        step = minirnn.LSTM(128, stateful=True, seed=0)  # a stream: wakes a worker
        step(x[:, :1])  # builds it
        time.sleep(1.0)  # the builds' QR (LAPACK) leaves OpenBLAS threads spinning a while
        layer(x)
        for _ in range(200):
            step(x[:, :1])
        time.sleep(0.01)  # longer than a worker's rest after its last part
        start = time.process_time()
        time.sleep(0.5)
        print(time.process_time() - start)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) < 0.05


needs_spinning = pytest.mark.skipif(not handoff.SPINS, reason="workers spin on x86-64 only")


@needs_spinning
def test_handoff_signals(monkeypatch):
    """A rest ends on a post (or after its budget) and counts the part done; a
    caller's wait ends on that count, or at once without a budget."""
    row = handoff.take_row()
    try:
        assert row >= 0 and not handoff.spinning(row)
        done = int(handoff.TABLE[row, handoff.DONE])
        start = time.perf_counter()
        assert rest.rest(row, handoff.posted(row)) is False  # nothing posted
        assert 1e-4 < time.perf_counter() - start < 0.1
        assert handoff.TABLE[row, handoff.DONE] == done + 1 and not handoff.spinning(row)

        plan = handoff.plan([row])
        assert plan.tolist() == [0, row, done + 2]  # the worker sleeps: no spinning wait
        result = []
        seen = handoff.posted(row)
        monkeypatch.setattr(handoff, "REST_SECONDS", 10.0)  # until the post below
        resting = threading.Thread(target=lambda: result.append(rest.rest(row, seen)))
        resting.start()
        assert _wait_until(lambda: handoff.spinning(row), 5.0)
        plan = handoff.plan([row])
        assert plan[0] > 0  # awake: the caller's kernel may spin
        handoff.begin(handoff.TABLE, plan)
        resting.join(5.0)
        assert result == [True] and handoff.posted(row) == seen + 1
        assert handoff.TABLE[row, handoff.DONE] == done + 2  # the rest counted its part
        handoff.TABLE[row, handoff.SPINNING] = 1  # as if awake: the plan's wait spins
        monkeypatch.setattr(handoff, "WAIT_SECONDS", 5.0)
        plan = handoff.plan([row])  # for done + 3
        handoff.TABLE[row, handoff.SPINNING] = 0
        start = time.perf_counter()
        finishing = threading.Timer(0.002, handoff.finish, (row,))
        finishing.start()
        handoff.end(handoff.TABLE, plan)
        assert handoff.TABLE[row, handoff.DONE] == done + 3
        assert time.perf_counter() - start < 1.0
        finishing.join()
        start = time.perf_counter()
        handoff.end(handoff.TABLE, handoff.plan([row]))  # asleep: no wait at all
        assert time.perf_counter() - start < 0.05
    finally:
        handoff.give_back_row(row)
    assert handoff.plan([-1]) is handoff.NO_PLAN


@needs_spinning
@pytest.mark.parametrize("dtype, B", [("float32", 64), ("float64", 32)])
def test_a_stream_of_calls_splits_once_a_worker_is_awake(threads, monkeypatch, dtype, B):
    """On three threads, calls too small to split with the workers asleep split
    while one is awake (a stream of T=1 calls), with the bits of one thread.
    float64's flops count twice: (32, 1, 128, 128) splits in float64, not in
    float32. (On two threads such calls share their batch instead: below.)"""
    monkeypatch.setattr(policy, "SPLIT_FLOPS", 1e8)
    D, M = 128, 128
    steps = RNG.standard_normal((16, B, 1, D)).astype(dtype)
    work = minirnn.LSTM(M, dtype=dtype)._flops(B, 1, D)
    assert policy.SPLIT_FLOPS_AWAKE <= work < policy.SPLIT_FLOPS
    assert minirnn.LSTM(M)._flops(32, 1, D) < policy.SPLIT_FLOPS_AWAKE
    threads(1)
    alone = minirnn.LSTM(M, stateful=True, seed=4, dtype=dtype)
    expected = [alone(steps[k % 16]) for k in range(400)]
    threads(3)
    layer = minirnn.LSTM(M, stateful=True, seed=4, dtype=dtype)
    posts = lambda: sum(handoff.posted(w.row) for w in _workers())  # noqa: E731
    split_at = None
    for k in range(400):
        before = posts()
        np.testing.assert_array_equal(layer(steps[k % 16]), expected[k])
        if split_at is None and posts() > before:
            split_at = k
    assert split_at is not None and split_at < 380, split_at
    threads(2)
    assert _wait_until(lambda: len(_workers()) <= 1), _workers()
    before = (posts(), _jobs())
    deadline = time.monotonic() + 20
    while _jobs() == before[1] and time.monotonic() < deadline:
        layer.reset_state()
        for k in range(400):
            np.testing.assert_array_equal(layer(steps[k % 16]), expected[k])
    assert posts() == before[0] and _jobs() > before[1]  # shared, never split


@pytest.fixture
def sharing(threads, monkeypatch):
    """Two threads, and every call of two rows or more shares its batch with an
    awake worker from inside its kernel (a job, minirnn.parallel.handoff), none splits."""
    monkeypatch.setattr(policy, "HELP_FLOPS", 0.0)
    monkeypatch.setattr(policy, "SPLIT_FLOPS", np.inf)
    monkeypatch.setattr(policy, "SPLIT_FLOPS_AWAKE", np.inf)
    threads(1)
    assert _wait_until(lambda: not _workers()), _workers()
    return threads


def _jobs():
    """The jobs asked of all workers so far."""
    return sum(int(handoff.TABLE[w.row, handoff.TICKET]) for w in _workers() if w.row >= 0)


def _stream_until_shared(call, expected, seconds=5.0):
    """Call ``call()`` until three of its calls were shared with a worker (or
    ``seconds`` passed: a worker woken by a call takes the GIL from the next ones
    within Python's switch interval), checking every result against ``expected``;
    the number of calls shared."""
    shared, deadline = 0, None
    while shared < 3 and (deadline is None or time.monotonic() < deadline):
        before = _jobs()
        result = call()
        for a, b in zip(expected if isinstance(expected, list) else [expected],
                        result if isinstance(result, list) else [result]):
            np.testing.assert_array_equal(a, b)
        shared += _jobs() > before
        if deadline is None:  # from the end of the first call, which may compile
            deadline = time.monotonic() + seconds
    return shared


LAYERS = {"LSTM": minirnn.LSTM, "GRU": minirnn.GRU, "SimpleRNN": minirnn.SimpleRNN,
          "GRU_v1": lambda *a, **k: minirnn.GRU(*a, reset_after=False, **k)}


@needs_spinning
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1", "SimpleRNN"])
@pytest.mark.parametrize("B, T, options", [
    (2, 1, {}), (3, 4, {"go_backwards": True}), (17, 3, {"mask": True}),
    (32, 1, {"return_sequences": True}),
    (5, 6, {"mask": True, "go_backwards": True, "return_sequences": True}),
])
def test_calls_shared_with_an_awake_worker_give_the_same_bits(sharing, kind, dtype, B, T,
                                                              options):
    """A call too small to split shares its batch rows with an awake worker from
    inside its kernel: every row is its own recurrence, so the bits are those of
    one thread, final states included."""
    options = dict(options)
    mask = RNG.random((B, T)) < 0.7 if options.pop("mask", False) else None
    x = RNG.standard_normal((B, T, 24)).astype(dtype)
    h0 = [RNG.standard_normal((B, 40)).astype(dtype) for _ in range(2 if kind == "LSTM" else 1)]
    layer = LAYERS[kind](40, return_state=True, seed=7, dtype=dtype, **options)
    call = lambda: layer(x, mask=mask, initial_state=h0)  # noqa: E731
    sharing(1)
    expected = call()
    sharing(2)
    assert _stream_until_shared(call, expected) >= 3


@needs_spinning
def test_a_stateful_stream_shares_its_steps(sharing):
    """Streaming one step per call (T=1, stateful): the worker keeps its rows of the
    states, the caller its own; states and outputs are those of one thread."""
    steps = RNG.standard_normal((300, 32, 1, 128)).astype(np.float32)
    sharing(1)
    alone = minirnn.LSTM(128, stateful=True, seed=2)
    expected = [alone(s) for s in steps]
    sharing(2)
    layer = minirnn.LSTM(128, stateful=True, seed=2)
    shared, deadline = 0, time.monotonic() + 20  # (other processes may hold the cores)
    while shared < 100 and time.monotonic() < deadline:
        layer.reset_state()
        for s, e in zip(steps, expected):
            before = _jobs()
            np.testing.assert_array_equal(layer(s), e)
            shared += _jobs() > before
        for a, b in zip(layer.states, alone.states):
            np.testing.assert_array_equal(a, b)
    assert shared >= 100


@needs_spinning
def test_two_python_threads_share_calls_at_once(sharing):
    """Two Python threads streaming small calls: each call holds the worker it
    shares with, or runs alone; every result is right."""
    sharing(2)
    x = RNG.standard_normal((12, 2, 48)).astype(np.float32)
    layers = [minirnn.GRU(64, return_sequences=True, seed=s) for s in (1, 2)]
    expected = [layer(x) for layer in layers]
    errors = []

    before = _jobs()

    def call(i):
        try:
            deadline = time.monotonic() + 20
            for k in itertools.count():
                np.testing.assert_array_equal(layers[i](x), expected[i])
                if k >= 300 and (_jobs() > before or time.monotonic() > deadline):
                    break
        except BaseException as error:  # reported below
            errors.append(error)

    callers = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert not errors, errors[0]
    assert _jobs() > before


@needs_spinning
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_shared_calls_on_one_core_give_the_same_bits():
    """Caller and worker on one core (here pinned there): the worker is off its
    core when asked, the caller takes its jobs back and runs every row, or the
    worker runs them late; every result is right, and the calls go on (in a fresh
    process, whose affinity nothing else shares)."""
    script = textwrap.dedent("""
        import os, threading, time, numpy as np, minirnn
        from minirnn.parallel import handoff, policy
        policy.HELP_FLOPS = 0.0
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the worker inherits it
        x = np.random.default_rng(0).standard_normal((8, 3, 16)).astype(np.float32)
        minirnn.set_num_threads(1)
        layer = minirnn.GRU(24, return_sequences=True, seed=1)
        expected = layer(x)
        minirnn.set_num_threads(2)
        rows = lambda: [w.row for w in threading.enumerate() if w.name == "minirnn"]
        jobs = lambda: sum(int(handoff.TABLE[r, handoff.TICKET]) for r in rows())
        deadline = time.monotonic() + 10
        calls = 0
        while (calls < 2000 or jobs() < 20) and time.monotonic() < deadline:
            assert np.array_equal(layer(x), expected)
            calls += 1
        print(jobs())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 0  # jobs were asked for


@needs_spinning
def test_a_process_exits_while_its_worker_is_awake():
    """The interpreter exits right after a stream of shared calls, while the worker
    still spins on the hand-off table (kept alive to the end): a clean exit."""
    script = textwrap.dedent("""
        import threading, time, numpy as np, minirnn
        from minirnn.parallel import handoff, policy
        policy.HELP_FLOPS = 0.0
        minirnn.set_num_threads(2)
        x = np.random.default_rng(0).standard_normal((8, 1, 16)).astype(np.float32)
        layer = minirnn.LSTM(16, stateful=True, seed=0)
        rows = lambda: [w.row for w in threading.enumerate() if w.name == "minirnn"]
        jobs = lambda: sum(int(handoff.TABLE[r, handoff.TICKET]) for r in rows())
        deadline = time.monotonic() + 20
        while jobs() < 3 and time.monotonic() < deadline:
            layer(x)
        for _ in range(2000):  # the worker stays awake to the end
            layer(x)
        print(jobs())
    """)
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-2000:]
        assert int(result.stdout) > 0  # jobs were asked for, up to the end


@needs_spinning
def test_bitwise_calls_never_share(sharing):
    """The bitwise mode runs TensorFlow's order of operations on one thread."""
    sharing(2)
    x = RNG.standard_normal((8, 1, 16)).astype(np.float32)
    layer = minirnn.LSTM(16, seed=0, bitwise=True)
    plain = minirnn.LSTM(16, seed=0)
    assert _stream_until_shared(lambda: plain(x), plain(x)) >= 1  # the worker is awake
    before = _jobs()
    for _ in range(50):
        layer(x)
    assert _jobs() == before


@needs_spinning
def test_a_job_moves_through_its_states():
    """The HELP word of a worker's row (minirnn.parallel.handoff): a caller claims it once,
    asks, and gets its answer; a failed job's answer is its ticket negated; a job
    nobody takes is taken back; a rest that ends closes the row, answering the job
    asked for first (here one without an entry point: it fails)."""
    table = np.zeros((1, handoff.TABLE.shape[1]), np.int64)
    plan = np.zeros(3 + handoff.JOB_KINDS, np.int64)
    plan[:3] = handoff.HELPED, 0, 1000
    assert handoff.helper_row(table, plan, 1) == -1  # no entry point for that kind
    plan[3 + 1] = 1  # an entry point (never called here)
    assert handoff.helper_row(table, plan, 1) == 0
    assert handoff.helper_row(table, plan, handoff.JOB_KINDS) == -1
    assert handoff.helper_row(np.zeros((1, 8), np.int64), plan, 1) == -1  # too narrow
    assert handoff.helper_row(table, handoff.NO_PLAN, 1) == -1
    assert not handoff.claim_job(table, 0)  # OFF: no worker spins there
    table[0, handoff.HELP] = handoff.READY
    assert handoff.claim_job(table, 0) and not handoff.claim_job(table, 0)  # WRITING
    ticket = handoff.ask(table, 0, plan, 1)
    assert table[0, handoff.HELP] == handoff.ASKED and table[0, handoff.ENTRY] == 1
    assert rest._took_a_job(table, 0) and table[0, handoff.HELP] == handoff.BUSY
    assert not rest._took_a_job(table, 0)
    table[0, handoff.ANSWER] = -ticket  # it failed: the caller runs the rows itself
    table[0, handoff.HELP] = handoff.ANSWERED
    assert handoff.wait(table, plan, 0, ticket) is False
    assert handoff.claim_job(table, 0)  # ANSWERED -> WRITING
    ticket = handoff.ask(table, 0, plan, 1)
    assert handoff.wait(table, plan, 0, ticket) is False  # not taken: taken back
    assert table[0, handoff.HELP] == handoff.READY and table[0, handoff.ANSWER] != ticket
    table[0, handoff.HELP] = handoff.OFF  # as a worker leaves it after its rest
    assert rest._rest(table, 0, 0, 0, 0, False) is False  # no time: ends at once
    assert table[0, handoff.HELP] == handoff.OFF and not table[0, handoff.SPINNING]
    result, budget = [], handoff._cycles_for(5.0)
    resting = threading.Thread(
        target=lambda: result.append(rest._rest(table, 0, 0, budget, budget, False)))
    resting.start()
    assert _wait_until(lambda: table[0, handoff.HELP] == handoff.READY, 5.0)
    assert handoff.claim_job(table, 0)
    ticket = handoff.ask(table, 0, plan, 0)  # kind 0: no entry point in this plan
    plan[2] = budget  # the worker spins: wait until it takes the job
    assert handoff.wait(table, plan, 0, ticket) is False  # the worker took it; it failed
    assert table[0, handoff.ANSWER] == -ticket and table[0, handoff.SPINNING] == 1
    table[0, handoff.POSTED] = 1  # a part: the rest ends
    resting.join(5.0)
    assert result == [True] and table[0, handoff.HELP] == handoff.OFF
    assert not handoff.claim_job(table, 0) and not table[0, handoff.SPINNING]


@needs_spinning
def test_job_arrays_must_lie_in_c_order():
    a = np.zeros((4, 6, 8), np.float32)
    assert handoff.c_order(a) and handoff.c_order(a[1:3]) and handoff.c_order(a[2:3, 1:2])
    assert not handoff.c_order(a[:, :1])  # rows 192 bytes apart, 32 bytes each
    assert handoff.c_order(np.zeros((0, 3))) and handoff.c_order(a[:1, :1, :1])
    assert handoff.c_order(np.zeros((3, 0, 4))[:, :, ::2])  # empty: nothing to read
    assert not handoff.c_order(a[:, :, :4]) and not handoff.c_order(a[::2])
    assert not handoff.c_order(np.asfortranarray(a)) and not handoff.c_order(a[:, ::-1])


def test_workers_without_spinning(threads, monkeypatch):
    """Where workers cannot spin (not x86-64) they sleep between parts, and calls
    split only above policy.SPLIT_FLOPS: the same results."""
    threads(1)
    assert _wait_until(lambda: not _workers()), _workers()
    monkeypatch.setattr(handoff, "SPINS", False)
    x = RNG.standard_normal((16, 30, 64)).astype(np.float32)
    layer = minirnn.GRU(96, return_sequences=True, seed=5)
    expected = layer(x)
    threads(2)
    assert layer._split(16, 30)
    np.testing.assert_array_equal(layer(x), expected)
    assert [w.row for w in _workers()] == [-1]
    assert not policy.worth_a_split(policy.SPLIT_FLOPS / 2)


def test_parts_on_workers_return_in_order_and_raise_the_first_error(threads):

    threads(3)
    first, results = workers.run_parts(lambda: "first", [lambda: 1, lambda: 2])
    assert (first, results) == ("first", [1, 2])
    done = []

    def fails(message):
        def part():
            time.sleep(0.05)  # the caller must wait for it before raising
            done.append(message)
            raise ValueError(message)
        return part

    with pytest.raises(ValueError, match="one"):
        workers.run_parts(lambda: done.append("first"), [fails("one"), fails("two")])
    assert sorted(done) == ["first", "one", "two"]
    # the workers are free again, and the next call uses them
    assert workers.run_parts(lambda: 0, [lambda: 1, lambda: 2]) == (0, [1, 2])


def _workers():
    return [t for t in threading.enumerate() if t.name == "minirnn"]


def _wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_workers_stay_within_the_thread_setting(threads):
    """Lowering the setting ends the extra workers; four Python threads splitting
    calls at once share the workers (a call that finds none idle runs its slices
    itself), and never more than threads - 1 exist."""
    threads(4)
    x = RNG.standard_normal((24, 30, 64)).astype(np.float32)
    layer = minirnn.LSTM(128, return_sequences=True, seed=3)
    expected = layer(x)
    assert layer._split(24, 30)
    assert 1 <= len(_workers()) <= 3
    threads(2)
    assert _wait_until(lambda: len(_workers()) <= 1), _workers()
    results = []

    def call():
        results.extend(layer(x) for _ in range(10))

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(results) == 40
    for out in results:
        np.testing.assert_array_equal(out, expected)
    assert len(_workers()) <= 1
    threads(1)
    assert _wait_until(lambda: not _workers()), _workers()


def test_an_error_on_the_calling_thread_leaves_no_worker_behind(threads):

    threads(3)
    ran_on = []

    def part():
        time.sleep(0.05)  # still running when the caller's part fails
        ran_on.append(threading.current_thread().name)
        return 1

    def fails():
        raise KeyboardInterrupt  # as a Ctrl-C in the caller's slice would

    with pytest.raises(KeyboardInterrupt):
        workers.run_parts(fails, [part, part])
    assert ran_on == ["minirnn", "minirnn"]  # the caller waited for both
    assert _wait_until(lambda: len(workers._idle) == workers._made == 2)
    assert workers.run_parts(lambda: 0, [part, part]) == (0, [1, 1])
    assert ran_on[2:] == ["minirnn", "minirnn"]  # both workers were there again


def test_set_num_threads_checks_its_argument():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"`n` must be a positive integer"):
            minirnn.set_num_threads(bad)


def test_split_in_a_forked_child(threads):
    """A fork after the pool started: the child makes its own pool."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    threads(2)
    layer = minirnn.GRU(128, seed=0)
    x = RNG.standard_normal((16, 40, 64)).astype(np.float32)
    expected = layer(x)
    script = textwrap.dedent("""
        import os, sys, numpy as np, minirnn
        minirnn.set_num_threads(2)
        layer = minirnn.GRU(128, seed=0)
        x = np.random.default_rng(5).standard_normal((16, 40, 64)).astype(np.float32)
        first = layer(x)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.array_equal(layer(x), first) else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "0"
    assert expected.shape == (16, 128)


# Compiled in a child process that starts when collection ends (tests/background.py).
HASWELL = Job(textwrap.dedent("""
    import sys
    import numpy as np, minirnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    layer = minirnn.LSTM(20, return_sequences=True, seed=0)
    y64 = minirnn.LSTM(20, return_sequences=True, seed=0, dtype="float64")(x)
    np.save(sys.argv[1], layer(x))
    np.save(sys.argv[1] + ".64.npy", y64)
    from minirnn.parallel import handoff, policy  # a call shared with a worker: its job's
    if handoff.SPINS:     # entry point and the worker's rest compile here too
        import threading, time
        policy.HELP_FLOPS = 0.0
        minirnn.set_num_threads(2)
        rows = lambda: [w.row for w in threading.enumerate() if w.name == "minirnn"]
        jobs = lambda: sum(int(handoff.TABLE[r, handoff.TICKET]) for r in rows())
        deadline = time.monotonic() + 20
        while jobs() == 0 and time.monotonic() < deadline:
            shared = layer(x)
        np.save(sys.argv[1] + ".shared.npy", shared)
        print(jobs())
"""), args=["{folder}/haswell.npy"], env={"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
                                       "NUMBA_CACHE_DIR": sources_cache("haswell")})


@pytest.mark.background(HASWELL)
def test_kernels_compiled_for_a_cpu_without_avx512():
    """A CPU with 256-bit vectors only (Numba told it is a Haswell): the kernels, the
    entry point of a shared call's job and the worker's rest compile for it (Numba
    keys its cache by CPU, so nothing compiled for this machine is reused) and give
    the same results, never an illegal instruction."""
    result = HASWELL.result()
    assert result.returncode == 0, result.stderr[-2000:]
    path = os.path.join(HASWELL.folder, "haswell.npy")
    x = np.random.default_rng(0).standard_normal((3, 7, 5)).astype(np.float32)
    here = minirnn.LSTM(20, return_sequences=True, seed=0)(x)
    here64 = minirnn.LSTM(20, return_sequences=True, seed=0, dtype="float64")(x)
    # Same chains of fused multiply-adds in the same order: the same bits.
    np.testing.assert_array_equal(np.load(path), here)
    np.testing.assert_array_equal(np.load(path + ".64.npy"), here64)
    if handoff.SPINS:
        assert int(result.stdout) > 0  # a job ran on the worker
        np.testing.assert_array_equal(np.load(path + ".shared.npy"), here)
    index = glob.glob(os.path.join(HASWELL.env["NUMBA_CACHE_DIR"], "**", "*.nbi"),
                      recursive=True)
    assert index, "no Numba cache was written"


@pytest.mark.parametrize("bitwise", [False, True])
def test_bidirectional_directions_side_by_side(bitwise, threads):
    """Both directions at once on two threads: the same bits, the same states."""
    if bitwise and not minirnn.bitwise_support():
        pytest.skip(str(minirnn.bitwise_support()))
    x = RNG.standard_normal((16, 60, 64)).astype(np.float32)
    mask = RNG.random((16, 60)) < 0.9
    results = []
    for n in (1, 2):
        threads(n)
        bi = minirnn.Bidirectional(
            minirnn.GRU(96, return_sequences=True, return_state=True, stateful=True, seed=2),
            bitwise=bitwise)
        assert bi._side_by_side(x) == (n == 2)
        results.append([bi(x, mask=mask) for _ in range(2)])
    for one, two in zip(*results):
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)


def test_keras2_hard_sigmoid_in_the_kernels():
    """Keras 2's hard_sigmoid has a kernel code: the compiled layers agree with the
    readable equations (which tests/test_model.py holds against tf-keras)."""
    from minirnn import keras2
    x = RNG.standard_normal((3, 9, 4)) * 3
    for dtype, tolerance in (("float32", 1e-6), ("float64", 1e-12)):
        for cls, argument in ((keras2.Keras2LSTM, "recurrent_activation"),
                              (keras2.Keras2GRU, "recurrent_activation"),
                              (keras2.Keras2SimpleRNN, "activation")):
            fast = cls(5, return_sequences=True, seed=0, dtype=dtype,
                       **{argument: "hard_sigmoid"})
            fast(x)
            assert fast._use_kernels()
            slow = cls(5, return_sequences=True, dtype=dtype, engine="numpy",
                       **{argument: "hard_sigmoid"})
            slow.set_weights(fast.get_weights())
            np.testing.assert_allclose(fast(x), slow(x), rtol=tolerance, atol=tolerance)
            keras3 = type(fast).__mro__[2](5, return_sequences=True, dtype=dtype,
                                            **{argument: "hard_sigmoid"})
            keras3.set_weights(fast.get_weights())
            assert np.abs(keras3(x) - fast(x)).max() > 1e-3  # Keras 3's is another formula


@pytest.mark.parametrize("B, T, D, M", [(1, 3, 500, 3), (3, 4, 384, 9), (2, 3, 13, 40),
                                        (5, 2, 400, 7), (4, 2, 7, 385), (1, 2, 6, 390)])
def test_exact_mode_gets_onednn_bits_from_the_tiles(B, T, D, M):
    """The exact (bitwise) mode sums each of oneDNN's blocks of k (one block for
    K <= 384 or one row; two or more above) with the packed tiles, and adds the
    blocks' sums left to right: the same bits as minirnn.exact alone, for every
    product of the layer."""
    from minirnn import kernels, layers
    layer = minirnn.LSTM(M, return_sequences=True)
    layer.set_weights(random_weights("LSTM", D, M, dtype="float32", seed=B + M))
    x = RNG.standard_normal((B, T, D)).astype(np.float32)
    none = layers._NO_PANELS["float32"]

    def run(panels):
        h, c = np.random.default_rng(1).standard_normal((2, B, M)).astype(np.float32)
        output, outputs = np.zeros((B, M), np.float32), np.empty((B, T, M), np.float32)
        kernels.lstm_sequence(x, layer._w, layer._u, layer._b, h, c, layers._NO_MASK, False,
                              False, False, True, kernels.TANH, kernels.SIGMOID, outputs,
                              output, False, True, *panels, handoff.TABLE,
                              handoff.NO_PLAN)
        return outputs, h, c

    tiles, chains = run(layer._panels), run((none, none))
    for a, b in zip(tiles, chains):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_over_a_range_of_k(dtype):
    """matmul_over(a, panels, out, k0, k1) is matmul of a[:, k0:k1] by W[k0:k1]: the
    same chains, bit for bit, for any integer type of the bounds; bad bounds raise."""
    a = RNG.standard_normal((11, 45)).astype(dtype)
    w = RNG.standard_normal((45, 37)).astype(dtype)
    panels = gemm.pack(w)
    width = panels.shape[0] * panels.shape[2]
    for k0, k1 in [(0, 45), (3, 17), (17, 45), (44, 45)]:
        ranged, sliced = np.empty((11, width), dtype), np.empty((11, width), dtype)
        gemm.matmul_over(a, panels, ranged, np.int32(k0), np.int16(k1))
        gemm.matmul(np.ascontiguousarray(a[:, k0:k1]), gemm.pack(w[k0:k1]), sliced)
        np.testing.assert_array_equal(ranged[:, :37], sliced[:, :37])
    out = np.ones((11, width), dtype)
    gemm.matmul_over(a, panels, out, 9, 9)  # an empty range: sums of nothing
    assert not out.any()
    for k0, k1 in [(-1, 5), (5, 4), (0, 46)]:
        with pytest.raises(ValueError, match="operand shapes disagree"):
            gemm.matmul_over(a, panels, out, k0, k1)
