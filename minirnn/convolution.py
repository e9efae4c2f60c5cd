"""Convolution, pooling, padding, cropping and up-sampling blocks of saved models
(1-D and the 2-D layers of CRNN models), written like :mod:`minirnn.blocks`."""

__all__ = ["BLOCKS"]

BLOCKS = {}
