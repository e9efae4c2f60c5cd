"""What every engine module shares: Variant, Engine, probes and the casting helper.

Kept apart from :mod:`benchmarks.engines` (the registry) so that engine modules
(:mod:`benchmarks.onnx_engines`, :mod:`benchmarks.streaming`) can use them without
importing the registry that imports them.
"""

import importlib.util
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


class Unsupported(Exception):
    """An engine that is installed cannot run this case (e.g. no float64 kernel).

    The worker reports the engine, cell and dtype as skipped with this message,
    as it does for a package that is not installed; never as an error or a zero.
    """


@dataclass
class Variant:
    """One timed mode of an engine.

    run: one call, the thing timed. fetch: run()'s (or check_run()'s) result ->
    NumPy array for the correctness check, or None where the engine computes no
    layer output. check_run: what the check calls instead of run() where one call
    is not the whole answer (streaming: every step of the sequence from zero
    states); None means run().
    """

    name: str
    run: Callable[[], object]
    fetch: Optional[Callable[[object], np.ndarray]]
    info: dict = field(default_factory=dict)
    check_run: Optional[Callable[[], object]] = None


@dataclass
class Engine:
    """An engine of the registry.

    build: ``build(cell, weights, x, return_sequences, dtype, **options)`` ->
        list of Variant.
    probe: ``probe()`` -> None when the engine can run here, else the reason it
        cannot (run in a fresh process for GPU engines, see runner).
    stream: ``stream(cell, weights, x, dtype, **options)`` -> list of Variant
        whose run() is one step (T=1) of a stateful stream over x's timesteps
        (see :mod:`benchmarks.streaming`); None: the engine has no streaming
        mode, and ``no_stream`` says why.
    process_options: one dict of build options per separate process; the
        runner keeps the fastest (gemm-floor runs each BLAS in its own process).
    checked: whether the engine's output is compared with the reference.
    """

    name: str
    description: str
    build: Callable
    probe: Callable[[], Optional[str]]
    gpu: bool = False
    checked: bool = True
    process_options: tuple = ({},)
    stream: Optional[Callable] = None
    no_stream: str = "no streaming mode"


def needs(*modules):
    """A probe: the reason if one of ``modules`` is not installed, else None."""
    def probe():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            return f"not installed: {', '.join(missing)}"
        return None
    return probe


def cast(weights, x, dtype):
    """Weights and input as contiguous arrays of ``dtype``."""
    return [np.ascontiguousarray(w, dtype) for w in weights], np.ascontiguousarray(x, dtype)
