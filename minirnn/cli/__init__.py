"""The ``minirnn`` command: study tools around the layers.

    minirnn demo     the seed experiment: what LSTM and GRU return, every claim checked
    minirnn shapes   a table of what each configuration returns, and the shapes
    minirnn trace    gate statistics over one sequence, and a picture of the gates
    minirnn verify   random configurations (or a saved model, --model) compared with Keras
    minirnn summary  the layers, inputs and outputs of a saved model
    minirnn predict  a saved model run on arrays from a .npy / .npz file

``python -m minirnn`` is the same command. One module per command (``demo``,
``shapes``, ``trace``, ``verify``, ``verify_bitwise``, ``verify_model``, ``summary``,
``predict``), each with ``add_parser`` and ``run``; the shared parts are ``app``
(parser, entry point), ``arguments`` (argument and path types), ``limits`` (memory
estimates), ``models`` (saved models and input files), ``common`` (exit statuses,
hints, the seed sizes), ``tables`` (text output), ``progress`` (the progress bar),
``keras_support`` (Keras, imported only when a command compares with it; ``import
minirnn.cli`` never does) and ``keras_process`` (Keras in a process of its own).

May use: its own modules.
"""

from .app import build_parser, main

__all__ = ["main", "build_parser"]
