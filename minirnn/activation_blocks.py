"""Activation layers (LeakyReLU, ReLU, PReLU, ELU, Softmax, ThresholdedReLU) and
UnitNormalization, written like :mod:`minirnn.blocks`."""

__all__ = ["BLOCKS"]

BLOCKS = {}
