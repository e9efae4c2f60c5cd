"""Timing one callable: warm-up, repeated samples, robust statistics.

Method (as :mod:`timeit`, with the warm-up made explicit):

1. Warm-up: call at least ``min_warmup`` times and for at least
   ``warmup_seconds``; these calls (compilation, tracing, caches, thread-pool
   start-up) are never counted.
2. Calibrate: a sample is ``inner`` back-to-back calls, with ``inner`` chosen so
   a sample lasts at least ``sample_seconds`` (fast calls are timed in groups so
   the clock's own overhead does not count; slow calls one by one).
3. Repeat samples until ``repeat_seconds`` have passed and at least
   ``min_samples`` were taken, but stop after ``max_seconds`` once 3 samples
   exist (so a slow engine cannot hold the run up for minutes).
4. Report the median time per call and the interquartile range (25th to 75th
   percentile) over the samples; the garbage collector is off while timing.
"""

import gc
import time

import numpy as np


def measure(run, repeat_seconds=1.0, min_samples=5, warmup_seconds=None, min_warmup=2,
            sample_seconds=1e-3, max_seconds=None):
    """Time ``run()`` (no arguments); returns a dict of statistics, in seconds."""
    if warmup_seconds is None:
        warmup_seconds = 0.25 * repeat_seconds
    if max_seconds is None:
        max_seconds = max(10.0 * repeat_seconds, 5.0)
    clock = time.perf_counter

    start = clock()
    warmup_times = []
    while len(warmup_times) < min_warmup or clock() - start < warmup_seconds:
        t0 = clock()
        run()
        warmup_times.append(clock() - t0)
    warmup_total = clock() - start
    # A typical call: the median of the later half of the warm-up.
    typical = float(np.median(warmup_times[len(warmup_times) // 2:]))

    inner = max(1, int(sample_seconds / max(typical, 1e-9)))
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        begin = clock()
        while True:
            t0 = clock()
            for _ in range(inner):
                run()
            samples.append((clock() - t0) / inner)
            elapsed = clock() - begin
            if elapsed >= repeat_seconds and len(samples) >= min_samples:
                break
            if elapsed >= max_seconds and len(samples) >= 3:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return summarize(samples, inner=inner, warmup_calls=len(warmup_times),
                     warmup_seconds=warmup_total, first_warmup_call_s=warmup_times[0])


def summarize(samples, **extra):
    """Median, quartiles, IQR, min, mean of per-call times (seconds), plus ``extra``."""
    values = np.asarray(samples, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "median_s": float(median),
        "q1_s": float(q1),
        "q3_s": float(q3),
        "iqr_s": float(q3 - q1),
        "min_s": float(values.min()),
        "mean_s": float(values.mean()),
        "samples": len(values),
        "calls": len(values) * extra.get("inner", 1),
        **extra,
    }
