"""What the two verify commands share (:mod:`.verify` and :mod:`.verify_bitwise`):
the Keras side's random cases, and how a case is named. Uses :mod:`.keras_support`
and :mod:`.common`; imports neither command, so that neither imports the other.

May use: its own modules.
"""

from . import keras_support
from .common import KERAS_HINT
from .keras_support import KerasUnavailable

__all__ = ["layer_label", "keras_and_cases", "case_description"]


def layer_label(case):
    """'LSTM', 'GRU_v1 (bidirectional)', 'SimpleRNN (RNN cell)': a case's layer."""
    suffix = {"none": "", "bidirectional": " (bidirectional)", "cell": " (RNN cell)"}
    return case["kind"] + suffix[case["wrapper"]]


def keras_and_cases():
    """(keras, reference.cases) for the random comparisons, or (None, None) after
    saying how to install Keras."""
    try:
        keras, _ = keras_support.import_keras()
        return keras, keras_support.reference("cases")
    except (KerasUnavailable, ImportError) as error:
        print(f"minirnn verify compares minirnn with Keras, which is not available "
              f"({error}).\n  To install it: {KERAS_HINT}")
        return None, None


def case_description(case):
    return keras_support.reference("cases").describe(case)
