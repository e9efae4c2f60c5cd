"""The minirnn benchmark harness.

Times the forward pass of an LSTM or GRU layer in several engines (minirnn's
Numba kernels and NumPy equations, Keras, torch, ONNX Runtime, OpenVINO, a
pure-GEMM floor, and GPU engines where a CUDA GPU exists), each engine in its own
fresh process, after checking its output against a float64 minirnn reference
with the same weights: over whole sequences, and streaming (one timestep per
call, states carried).

Run ``python -m benchmarks --help`` from the repository root. Modules:

- :mod:`benchmarks.__main__`  the command line
- :mod:`benchmarks.cases`     sizes, grids, weights, inputs, references, tolerances
- :mod:`benchmarks.base`      Variant, Engine, Unsupported: what engine modules share
- :mod:`benchmarks.engines`   one function per engine, and the engine registry
- :mod:`benchmarks.onnx_engines`  the one-node ONNX model; ONNX Runtime and OpenVINO
- :mod:`benchmarks.streaming` the streaming case: sizes, one step per timed call
- :mod:`benchmarks.timing`    warm-up, repeated calls, median and interquartile range
- :mod:`benchmarks.worker`    what runs inside each engine's fresh process
- :mod:`benchmarks.runner`    the parent: probes, subprocesses, merging results
- :mod:`benchmarks.system`    machine, thread settings, library versions
- :mod:`benchmarks.report`    JSON, Markdown and PNG output
- :mod:`benchmarks.memory`    peak-memory mode
- :mod:`benchmarks.startup`   first-call versus second-call mode
"""
