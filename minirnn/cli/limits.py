"""Sizes that cannot fit in memory, refused before any work starts.

A command estimates the bytes it would allocate for the sizes asked for (the
largest arrays it makes, and what building the weights needs) and refuses with
the sizes and the estimate when that is more than half of the memory available
now, instead of ending in a MemoryError or in the system's out-of-memory killer.

May use: its own modules.
"""

import os

from .common import CommandError

__all__ = ["available_memory", "memory_budget", "check_memory", "human_bytes",
           "layer_bytes", "call_bytes", "trace_bytes", "kind_of"]

# The share of the memory available now that one command may plan to use.
BUDGET_SHARE = 0.5
# When the available memory cannot be read (not Linux): a fixed cap.
FALLBACK_BUDGET = 4 * 2**30

# Gate blocks per layer kind: the kernel is (D, G * M), the recurrent kernel (M, G * M).
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
# Arrays in a trace: LSTM i, f, g, o, c, h; GRU z, r, hh, h; SimpleRNN h.
TRACE_ENTRIES = {"LSTM": 6, "GRU": 4, "SimpleRNN": 1}


def available_memory():
    """Bytes of memory available now (Linux' MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget():
    """(bytes a command may plan to use, how that bound was chosen)."""
    available = available_memory()
    if available is None:
        return FALLBACK_BUDGET, f"a fixed cap of {human_bytes(FALLBACK_BUDGET)}"
    return (int(available * BUDGET_SHARE),
            f"half of the {human_bytes(available)} of memory available now")


def human_bytes(count):
    """'1.5 GiB', '320 MiB', '12 KiB', '100 B'."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} B"


def check_memory(sizes, needed):
    """Raise CommandError (exit 2) when ``needed`` bytes exceed the budget.

    Args:
        sizes: the sizes asked for, as the user wrote them ("--units 50000").
        needed: the estimated bytes.
    """
    budget, how = memory_budget()
    if needed > budget:
        raise CommandError(
            f"{sizes} would need about {human_bytes(needed)} of memory, "
            f"more than the {human_bytes(budget)} allowed ({how}); choose smaller sizes.")


def layer_bytes(kind, features, units):
    """Bytes to build one layer's weights, Keras' way: a glorot-uniform kernel and
    an orthogonal recurrent kernel drawn in float64 (the QR of a (G·M, M) matrix
    holds about four such arrays at once), then kept in float32."""
    width = GATES[kind] * units
    kernel, recurrent = features * width, units * width
    return 8 * (kernel + 4 * recurrent) + 4 * (kernel + recurrent + 2 * width)


def call_bytes(batch, timesteps, features, units, outputs=2):
    """Bytes of one call: the input, ``outputs`` (B, T, M)-sized results (two for a
    Bidirectional's halves) and the kernels' scratch (16 MiB of input projection)."""
    return 4 * batch * timesteps * (features + outputs * units) + 16 * 2**20


def kind_of(layer):
    """"LSTM", "GRU" or "SimpleRNN": the minirnn class a layer is, or derives from."""
    for cls in type(layer).__mro__:
        if cls.__name__ in GATES:
            return cls.__name__
    raise TypeError(f"not a minirnn LSTM, GRU or SimpleRNN: {type(layer).__name__}")


def trace_bytes(kind, batch, timesteps, features, units):
    """Bytes of ``minirnn trace``: the float64 input and its float32 copy, every
    array of the trace (built step by step, then stacked: twice), and the float64
    copy that the statistics of one array make."""
    values = batch * timesteps * units
    return (12 * batch * timesteps * features + 2 * 4 * TRACE_ENTRIES[kind] * values
            + 2 * 8 * values)
