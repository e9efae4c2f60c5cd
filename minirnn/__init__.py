"""minirnn: Keras 3's recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional),
forward pass only, in readable NumPy and fast Numba kernels.

Public names only; ``import minirnn`` does not import TensorFlow or Keras.
"""

from .bitwise import BitwiseUnsupportedError, bitwise_support
from .keras_io import from_keras
from .layers import GRU, LSTM, Bidirectional, SimpleRNN, get_num_threads, set_num_threads
from .model import Model, load_model

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "from_keras", "bitwise_support",
           "BitwiseUnsupportedError", "Model", "load_model", "set_num_threads",
           "get_num_threads", "__version__"]
