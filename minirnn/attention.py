"""Attention layers of saved models (Attention, AdditiveAttention,
MultiHeadAttention), written like :mod:`minirnn.blocks`."""

__all__ = ["BLOCKS"]

BLOCKS = {}
