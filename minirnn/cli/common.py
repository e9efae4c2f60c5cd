"""What every command shares: exit statuses, install hints, the seed sizes, and
the error a command raises to stop with a usage message.

May use: :mod:`minirnn.layers`.
"""

from ..layers import GRU, LSTM, SimpleRNN

# Exit statuses: success; a claim, shape, case or comparison failed; usage error
# (a bad argument, path or size) or a needed package missing.
OK, FAILED, UNAVAILABLE = 0, 1, 2
USAGE = UNAVAILABLE

KERAS_HINT = 'pip install "minirnn[keras]"'
PLOT_HINT = 'pip install "minirnn[plot]"'
PASS, FAIL = "[PASS]", "[FAIL]"

# The seed notebook's sizes: batch, timesteps, features, units.
SEED_SIZES = {"B": 1, "T": 8, "D": 2, "M": 3}
# |minirnn - Keras| <= ATOL + RTOL * |Keras|, elementwise, in float32.
FLOAT32_ATOL, FLOAT32_RTOL = 1e-6, 1e-6
TOLERANCE_TEXT = "1e-6 + 1e-6 |Keras|"

LAYER_CLASSES = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


class CommandError(Exception):
    """A command cannot start (or go on) because of what the user asked for: a
    path that cannot be read or written, a size that cannot fit in memory, a file
    that is not what it should be. ``main`` prints the message and exits with
    ``status`` (2 by default), without a traceback."""

    def __init__(self, message, status=USAGE):
        super().__init__(message)
        self.status = status
