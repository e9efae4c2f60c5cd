"""The streaming case: a layer called once per timestep, its states carried between calls.

A streaming figure is the time of one call with T=1 (one step of a stateful
stream), so microseconds per step. Each engine with a streaming mode provides
per-step inputs already in its own form, the zero states, and ``step(x_t,
states) -> (result, new_states)``; :func:`stream_variant` turns those into a
:class:`~benchmarks.base.Variant`:

- run(): the next step of an endless stream over the case's timesteps (after
  the last, the first again, the states carried on): the thing timed;
- check_run(): every timestep once from zero states, the outputs stacked to
  (B, T, M): the correctness check holds them against the reference of the whole
  sequence (return_sequences=True), so a state that is not carried, or carried
  wrongly, fails the check.

Engines that keep their states inside the layer (minirnn's stateful=True) pass
a ``start`` that resets the layer and ignore the ``states`` argument.
"""

import numpy as np

from .base import Variant

# The streaming grid: (B, 1, D, M), one timestep per call; STEPS calls make the
# sequence that is checked (and cycled through while timing).
STREAM_SIZES = ((1, 1, 32, 64), (32, 1, 128, 128))
QUICK_STREAM_SIZES = STREAM_SIZES[:1]
STEPS = 100


def sequence_size(size, steps=STEPS):
    """The checked sequence of a streaming size: (B, 1, D, M) -> (B, steps, D, M)."""
    B, T, D, M = size
    if T != 1:
        raise ValueError(f"a streaming size has T=1 (one step per call); received "
                         f"{'x'.join(map(str, size))}")
    return (B, steps, D, M)


def stream_variant(name, steps, start, step, output, info):
    """A Variant timing one step per call over the per-step inputs ``steps``.

    start() -> the zero states (and resets an engine's own states);
    step(x_t, states) -> (result, new_states); output(result) -> the step's
    output as a NumPy-convertible (B, M) array, used only by the check.
    """
    if not steps:
        raise ValueError("a stream needs at least one timestep")
    stream = {"states": start(), "t": 0}

    def run():
        t = stream["t"]
        result, stream["states"] = step(steps[t], stream["states"])
        stream["t"] = t + 1 if t + 1 < len(steps) else 0
        return result

    def check_run():
        states = start()
        outputs = []
        for x_t in steps:
            result, states = step(x_t, states)
            outputs.append(np.asarray(output(result), dtype=np.float64))
        stream["states"], stream["t"] = states, 0
        return outputs

    info = {**info, "streaming": {"steps": len(steps), "per_call": "one timestep"}}
    return Variant(name, run, lambda outputs: np.stack(outputs, axis=1), info, check_run)
