"""Keras 2 semantics where Keras 3 changed the numbers.

Keras 2.x and tf.keras 2.x defined ``hard_sigmoid`` as a segment of slope 0.2::

    hard_sigmoid(x) = clip(0.2 x + 0.5, 0, 1)          (Keras 2)

Keras 3 changed it to relu6(x + 3) / 6, a slope of 1/6, so a model trained in
Keras 2 computes other numbers in Keras 3. A model loaded with Keras 2 semantics
uses the layers below wherever an activation is ``hard_sigmoid``: they are the
minirnn layers, with that one function replaced, in the readable equations and in
the compiled kernels (which have a code of their own for it).

May use: numpy, :mod:`minirnn.activations`, :mod:`minirnn.equations`,
:mod:`minirnn.kernels` and :mod:`minirnn.layers`.
"""

import numpy as np

from . import activations, equations, kernels
from .layers import GRU, LSTM, SimpleRNN

__all__ = ["hard_sigmoid", "activation", "recurrent_class", "uses_hard_sigmoid"]


def hard_sigmoid(x):
    """Keras 2's hard sigmoid, in TensorFlow's order: clip(x * 0.2 + 0.5, 0, 1)."""
    dtype = x.dtype.type
    return np.clip(x * dtype(0.2) + dtype(0.5), dtype(0), dtype(1))


def activation(name):
    """The NumPy function for an activation name under Keras 2 semantics."""
    if name == "hard_sigmoid":
        return hard_sigmoid
    return activations.get(name)


def uses_hard_sigmoid(layer):
    return "hard_sigmoid" in (layer.activation, getattr(layer, "recurrent_activation", None))


class _Keras2Mixin:
    """hard_sigmoid means Keras 2's: in the readable equations (``_step_function``)
    and in the compiled kernels, which have a code of their own for it."""

    keras_semantics = "keras2"

    @staticmethod
    def _code_of(name):
        if name == "hard_sigmoid":
            return kernels.KERAS2_HARD_SIGMOID
        return activations.code_of(name)

    def _check_bitwise(self):
        raise ValueError(
            f"{type(self).__name__}: Keras 2's hard_sigmoid is not modelled by the bitwise "
            "mode (bitwise=True reproduces Keras 3 on TensorFlow's CPU).")


class Keras2LSTM(_Keras2Mixin, LSTM):
    """minirnn.LSTM with Keras 2's hard_sigmoid."""

    def _step_function(self):
        act, rec_act = activation(self.activation), activation(self.recurrent_activation)

        def step(x, h, c):
            return equations.lstm_step(x, h, c, self.kernel, self.recurrent_kernel, self.bias,
                                       act, rec_act)
        return step


class Keras2GRU(_Keras2Mixin, GRU):
    """minirnn.GRU with Keras 2's hard_sigmoid."""

    def _step_function(self):
        act, rec_act = activation(self.activation), activation(self.recurrent_activation)

        def step(x, h):
            return equations.gru_step(x, h, self.kernel, self.recurrent_kernel, self.bias,
                                      act, rec_act, self.reset_after)
        return step


class Keras2SimpleRNN(_Keras2Mixin, SimpleRNN):
    """minirnn.SimpleRNN with Keras 2's hard_sigmoid."""

    def _step_function(self):
        act = activation(self.activation)

        def step(x, h):
            return equations.simple_rnn_step(x, h, self.kernel, self.recurrent_kernel,
                                             self.bias, act)
        return step


_CLASSES = {LSTM: Keras2LSTM, GRU: Keras2GRU, SimpleRNN: Keras2SimpleRNN}


def recurrent_class(cls):
    """The Keras 2 twin of a minirnn recurrent class."""
    return _CLASSES[cls]
