"""The ``minirnn`` command: study tools around the layers.

    minirnn demo     the seed experiment: what LSTM and GRU return, every claim checked
    minirnn shapes   a table of what each configuration returns, and the shapes
    minirnn trace    gate statistics over one sequence, and a picture of the gates
    minirnn verify   random configurations compared with Keras, by layer and argument

``python -m minirnn`` is the same command. One module per command (``demo``,
``shapes``, ``trace``, ``verify`` and ``verify_bitwise``), each with ``add_parser``
and ``run``; the shared parts are ``app`` (parser, entry point), ``arguments``
(argument types), ``common`` (exit statuses, hints, the seed sizes), ``tables``
(text output), ``progress`` (the progress bar) and ``keras_support`` (Keras,
imported only when a command compares with it; ``import minirnn.cli`` never does).
"""

from .app import build_parser, main

__all__ = ["main", "build_parser"]
