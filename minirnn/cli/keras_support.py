"""Keras, imported only by the commands that compare with it, and quietly.

``import minirnn`` and ``import minirnn.cli`` never import it; the commands call
:func:`import_keras` when they run and say how to install Keras when it fails.

May use: keras.
"""

import contextlib
import importlib
import os

__all__ = ["KerasUnavailable", "import_keras", "reference", "native_stderr_silenced"]


class KerasUnavailable(Exception):
    """Keras (or the ``reference`` package that drives it) cannot be imported."""


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native code writes to file descriptor 2 (TensorFlow's start-up
    log lines) for the duration of the block; Python's own sys.stderr is untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def reference(name):
    """The Keras-side module ``<package>.<name>`` (e.g. "cases", "keras_layers").

    Installed, the package is ``minirnn.reference`` (setup.py maps the repository's
    ``reference/`` there, so that no top-level ``reference`` is installed); in a
    source checkout it is the top-level ``reference`` beside ``minirnn/``.
    """
    try:
        package = importlib.import_module("minirnn.reference")
    except ModuleNotFoundError as error:
        if error.name != "minirnn.reference":  # something inside it is missing
            raise
        package = importlib.import_module("reference")
    return importlib.import_module(f"{package.__name__}.{name}")


def import_keras():
    """Import Keras and ``reference.keras_layers``; return (keras, keras_layers).

    Raises:
        KerasUnavailable: with the reason, when either cannot be imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with native_stderr_silenced():
            import keras
        keras_layers = reference("keras_layers")
    except Exception as error:  # ImportError, or a broken installation
        raise KerasUnavailable(f"{type(error).__name__}: {error}") from None
    return keras, keras_layers
