"""minirnn: Keras 3's recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional),
forward pass only, in readable NumPy and fast Numba kernels.

Public names only; ``import minirnn`` does not import TensorFlow, Keras, torch or
onnx (the bridges import them inside the functions that need them).

May use: its own modules, whose public names it gathers.
"""

from .bitwise import BitwiseUnsupportedError, bitwise_support
from .keras_io import from_keras
from .bidirectional import Bidirectional
from .layers import GRU, LSTM, SimpleRNN
from .parallel.workers import get_num_threads, set_num_threads
from .model import Model, load_model
from .scale import predict_fn
from .bridge.onnx import to_onnx
from .bridge.torch import from_torch, to_torch

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "from_keras", "bitwise_support",
           "BitwiseUnsupportedError", "Model", "load_model", "set_num_threads",
           "get_num_threads", "from_torch", "to_torch", "to_onnx", "predict_fn", "__version__"]
