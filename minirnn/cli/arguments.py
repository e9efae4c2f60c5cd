"""Argument types of the command line: each checks one value as argparse reads
it, so that a bad value is a usage error (exit 2) before any work starts."""

import argparse

__all__ = ["non_negative_int", "positive_int"]


def non_negative_int(text):
    """An integer >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {value}")
    return value


def positive_int(text):
    """An integer > 0 (a size, a count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value}")
    return value
