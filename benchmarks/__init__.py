"""The minirnn benchmark harness.

Times the forward pass of an LSTM or GRU layer in several engines (minirnn's
Numba kernels and NumPy equations, Keras, torch, a pure-GEMM floor, and GPU
engines where a CUDA GPU exists), each engine in its own fresh process, after
checking its output against a float64 minirnn reference with the same weights.

Run ``python -m benchmarks --help`` from the repository root. Modules:

- :mod:`benchmarks.__main__`  the command line
- :mod:`benchmarks.cases`     sizes, grids, weights, inputs, references, tolerances
- :mod:`benchmarks.engines`   one function per engine, and the engine registry
- :mod:`benchmarks.timing`    warm-up, repeated calls, median and interquartile range
- :mod:`benchmarks.worker`    what runs inside each engine's fresh process
- :mod:`benchmarks.runner`    the parent: probes, subprocesses, merging results
- :mod:`benchmarks.system`    machine, thread settings, library versions
- :mod:`benchmarks.report`    JSON, Markdown and PNG output
- :mod:`benchmarks.memory`    peak-memory mode
- :mod:`benchmarks.startup`   first-call versus second-call mode
"""
