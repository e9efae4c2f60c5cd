"""Fixture models for the attention blocks of saved models (see reference/model_files.py)."""

KERAS3 = {}
KERAS2 = {}


def keras3_models(rng):
    """{name: (Keras 3 model, inputs)} for every name in KERAS3."""
    return {}


def keras2_models(rng):
    """{name: (tf-keras model, inputs)} for every name in KERAS2."""
    return {}
