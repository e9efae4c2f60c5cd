"""The engines: one function per engine, each building ready-to-time callables.

An engine function takes a case (cell, Keras-layout float64 weights, float64 input
x, return_sequences, dtype) and returns a list of :class:`Variant`: a ``run()``
that performs one forward call (the thing timed) and a ``fetch(result)`` that
turns run()'s result into a NumPy array for the correctness check (None where
the engine computes no layer output). Most engines have one variant; an engine
with several modes (keras-function: plain tf.function and XLA) returns one per
mode, all timed, and the fastest correct one is the engine's figure.

What a timed call includes: the input is already in the engine's own form and
place (a NumPy array for minirnn and model.predict, a tf.Tensor, a torch.Tensor
on the engine's device), and the call ends when the output is complete: GPU
engines synchronise the device. Library imports, weight loading, tracing and
compilation happen before timing (see :mod:`benchmarks.timing` for warm-up).

Engines never run in the same process: :mod:`benchmarks.runner` starts a fresh
Python for every engine and cell (TensorFlow, torch, OpenBLAS and Numba each keep
their own thread pools, and on a small machine they fight).
"""

import contextlib
import importlib
import importlib.util
import os
import sys

import numpy as np

from . import onnx_engines
from .base import Engine, Unsupported, Variant, cast as _cast, needs as _needs  # noqa: F401
from .streaming import stream_variant

GATES = {"LSTM": 4, "GRU": 3}


# ---- minirnn -----------------------------------------------------------------

def minirnn_engine(cell, weights, x, return_sequences, dtype, engine="numba",
                   bitwise=False):
    """minirnn's layer, as a user calls it: NumPy array in, NumPy array out."""
    import minirnn
    weights, x = _cast(weights, x, dtype)
    layer = getattr(minirnn, cell)(weights[1].shape[0], return_sequences=return_sequences,
                                   dtype=dtype, engine=engine, bitwise=bitwise)
    layer.set_weights(weights)
    name = "bitwise=True" if bitwise else f"engine={engine}"
    return [Variant(name, lambda: layer(x), np.asarray,
                    {"engine": engine, "bitwise": bitwise})]


def minirnn_bitwise_engine(cell, weights, x, return_sequences, dtype):
    """minirnn's bitwise mode (float32): Keras' CPU bits, at this speed."""
    return minirnn_engine(cell, weights, x, return_sequences, dtype, bitwise=True)


def _bitwise_probe():
    """Skip the bitwise engine where minirnn.bitwise_support() says no."""
    missing = _needs("numba")()
    if missing:
        return missing
    from minirnn import bitwise_support
    support = bitwise_support()
    return None if support else f"bitwise mode not supported here: {support.reason}"


def minirnn_numpy_engine(cell, weights, x, return_sequences, dtype):
    """minirnn's readable NumPy step path (engine="numpy")."""
    return minirnn_engine(cell, weights, x, return_sequences, dtype, engine="numpy")


def minirnn_stream(cell, weights, x, dtype, engine="numba", bitwise=False):
    """Streaming: a stateful layer (stateful=True) called with one timestep (B, 1, D)."""
    import minirnn
    weights, x = _cast(weights, x, dtype)
    layer = getattr(minirnn, cell)(weights[1].shape[0], stateful=True, dtype=dtype,
                                   engine=engine, bitwise=bitwise)
    layer.set_weights(weights)
    steps = [np.ascontiguousarray(x[:, t:t + 1]) for t in range(x.shape[1])]
    name = ("bitwise=True" if bitwise else f"engine={engine}") + ", stateful, T=1"
    return [stream_variant(name, steps, layer.reset_state, lambda x_t, _: (layer(x_t), None),
                           np.asarray, {"engine": engine, "bitwise": bitwise})]


def minirnn_numpy_stream(cell, weights, x, dtype):
    return minirnn_stream(cell, weights, x, dtype, engine="numpy")


def minirnn_bitwise_stream(cell, weights, x, dtype):
    return minirnn_stream(cell, weights, x, dtype, bitwise=True)


# ---- Keras (TensorFlow backend) ------------------------------------------------

def _keras_layer(cell, weights, return_sequences, dtype, **config):
    from minirnn.cli.keras_support import reference
    build_layer = reference("keras_layers").build_layer
    M = weights[1].shape[0]
    config = {"kind": cell, "units": M, "return_sequences": return_sequences,
              "dtype": dtype, **config}
    return build_layer(config, weights[0].shape[0], weights=weights)


def _hide_gpus():
    """Keep a CPU engine on the CPU even where TensorFlow sees a GPU."""
    import tensorflow as tf
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        pass  # devices already initialised; the probe of keras-cudnn says which


def keras_predict_engine(cell, weights, x, return_sequences, dtype):
    """Keras on CPU through model.predict, as the seed notebook calls it.

    The layer sits in a functional Model (Input -> layer); predict gets the whole
    batch at once (batch_size=B, so no batch is split) and returns NumPy.
    """
    _hide_gpus()
    from minirnn.cli.keras_support import reference
    keras = reference("keras_layers").keras
    k = keras()
    weights, x = _cast(weights, x, dtype)
    layer = _keras_layer(cell, weights, return_sequences, dtype)
    B, T, D = x.shape
    inputs = k.Input(shape=(T, D), dtype=dtype)
    model = k.Model(inputs, layer(inputs))
    return [Variant("model.predict", lambda: model.predict(x, batch_size=B, verbose=0),
                    np.asarray, {"batch_size": B})]


def keras_function_engine(cell, weights, x, return_sequences, dtype, jit_modes=(False, True)):
    """The Keras layer called inside a tf.function on CPU: its fastest mode.

    Two variants, both timed: a plain tf.function (graph mode) and one compiled
    with XLA (jit_compile=True), usually the faster on CPU. The input is a
    tf.Tensor made once; the result stays a tf.Tensor (on CPU it is ready when
    the call returns).
    """
    import tensorflow as tf
    _hide_gpus()
    weights, x = _cast(weights, x, dtype)
    tensor = tf.constant(x)
    variants = []
    for jit in jit_modes:
        layer = _keras_layer(cell, weights, return_sequences, dtype)
        function = tf.function(lambda t, layer=layer: layer(t, training=False),
                               jit_compile=jit)
        name = "tf.function+XLA" if jit else "tf.function"
        variants.append(Variant(name, lambda f=function: f(tensor),
                                lambda out: out.numpy(), {"jit_compile": jit}))
    return variants


def keras_function_stream(cell, weights, x, dtype, jit_modes=(False, True)):
    """Streaming: the layer (return_state=True) in a tf.function, states passed explicitly.

    Each call takes x_t (B, 1, D) and the previous call's states as tf.Tensors and
    returns [output, *states]; plain and XLA both timed, as in the sequence case.
    """
    import tensorflow as tf
    _hide_gpus()
    weights, x = _cast(weights, x, dtype)
    B, M = x.shape[0], weights[1].shape[0]
    count = 2 if cell == "LSTM" else 1
    steps = [tf.constant(np.ascontiguousarray(x[:, t:t + 1])) for t in range(x.shape[1])]
    variants = []
    for jit in jit_modes:
        layer = _keras_layer(cell, weights, False, dtype, return_state=True)
        function = tf.function(
            lambda t, states, layer=layer: layer(t, initial_state=states, training=False),
            jit_compile=jit)

        def step(x_t, states, function=function):
            outputs = function(x_t, states)
            return outputs[0], list(outputs[1:])
        name = ("tf.function+XLA" if jit else "tf.function") + ", explicit states, T=1"
        variants.append(stream_variant(
            name, steps, lambda: [tf.zeros((B, M), dtype) for _ in range(count)], step,
            lambda out: out.numpy(), {"jit_compile": jit}))
    return variants


# ---- Keras with cuDNN: the TensorFlow or the torch backend --------------------------

def keras_cudnn_backend():
    """The Keras backend keras-cudnn uses in this process: "tensorflow" or "torch".

    Keras already imported: its backend. Otherwise KERAS_BACKEND when set; else
    TensorFlow when it is installed, torch when only torch is (Keras' own default,
    TensorFlow, would fail to import there). Other backends are refused by the
    probe and the engine. The choice is written to KERAS_BACKEND before Keras is
    imported (:func:`_select_keras_backend`), so a ~/.keras/keras.json naming
    another backend cannot change it.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    chosen = os.environ.get("KERAS_BACKEND", "").strip().lower()
    if chosen:
        return chosen
    if importlib.util.find_spec("tensorflow") is not None:
        return "tensorflow"
    if importlib.util.find_spec("torch") is not None:
        return "torch"
    return "tensorflow"


def _select_keras_backend():
    """Fix this process' Keras backend (before Keras is imported); returns it."""
    backend = keras_cudnn_backend()
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    if backend not in ("tensorflow", "torch"):
        raise Unsupported(f"keras-cudnn runs on Keras' tensorflow or torch backend; "
                          f"KERAS_BACKEND={backend!r}")
    return backend


def keras_cudnn_engine(cell, weights, x, return_sequences, dtype, device=None):
    """Keras with cuDNN on a GPU, on the TensorFlow or the torch backend.

    The backend is :func:`keras_cudnn_backend`'s. ``device`` defaults to "/GPU:0"
    (TensorFlow) or "cuda" (torch); a CPU device ("/CPU:0", "cpu") runs the same
    code with use_cudnn="auto" and no cuDNN, which is how the tests exercise it.
    """
    if _select_keras_backend() == "torch":
        return _keras_torch_cudnn(cell, weights, x, return_sequences, dtype,
                                  device or "cuda")
    return _keras_tf_cudnn(cell, weights, x, return_sequences, dtype, device or "/GPU:0")


def _keras_tf_cudnn(cell, weights, x, return_sequences, dtype, device):
    """TensorFlow backend: the layer in a tf.function placed on ``device``.

    On a GPU, use_cudnn=True makes Keras raise rather than silently fall back to
    its generic loop; TF32 is off so float32 products are float32. Each call ends
    with a device synchronisation.
    """
    import tensorflow as tf
    tf.config.experimental.enable_tensor_float_32_execution(False)
    on_gpu = "GPU" in device.upper()
    weights, x = _cast(weights, x, dtype)
    with tf.device(device):
        layer = _keras_layer(cell, weights, return_sequences, dtype,
                             use_cudnn=True if on_gpu else "auto")
        tensor = tf.constant(x)
        function = tf.function(lambda t: layer(t, training=False))

    def run():
        with tf.device(device):
            out = function(tensor)
        tf.test.experimental.sync_devices()
        return out
    import keras
    info = {"backend": "tensorflow", "keras": keras.__version__, "tensorflow": tf.__version__,
            "device": device, "tf32": False, "use_cudnn": on_gpu or "auto"}
    if on_gpu:
        try:
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0])
            build = tf.sysconfig.get_build_info()
            capability = details.get("compute_capability")
            info.update(device_name=details.get("device_name"),
                        compute_capability=".".join(map(str, capability)) if capability
                        else None,
                        cuda_version=build.get("cuda_version"),
                        cudnn_version=build.get("cudnn_version"))
        except Exception as error:  # noqa: BLE001 - only the report's details are lost
            info["device_details_error"] = f"{type(error).__name__}: {error}"
    return [Variant("tf.function", run, lambda out: out.numpy(), info)]


# The functions of keras/src/backend/torch/rnn.py that run a layer: cuDNN (through
# torch._VF.lstm / gru) or Keras' own loop, which Keras falls back to silently when
# the cuDNN call raises (use_cudnn=True does not stop that on this backend).
_TORCH_RNN_PATHS = {"LSTM": ("_cudnn_lstm", "_fallback_lstm"),
                    "GRU": ("_cudnn_gru", "_fallback_gru")}


def _traced_rnn_call(rnn_module, cell, call):
    """call() once, noting which of Keras' torch RNN functions ran (and what raised)."""
    seen = {"cudnn": 0, "fallback": 0, "cudnn_error": None}
    names = _TORCH_RNN_PATHS[cell]
    missing = [name for name in names if not hasattr(rnn_module, name)]
    if missing:
        raise RuntimeError(f"{getattr(rnn_module, '__name__', rnn_module)} has no "
                           f"{', '.join(missing)}: this Keras' torch RNN code is not the "
                           "one keras-cudnn knows, so its cuDNN path cannot be confirmed")
    originals = {name: getattr(rnn_module, name) for name in names}

    def traced(name, key):
        original = originals[name]

        def wrapper(*args, **kwargs):
            try:
                result = original(*args, **kwargs)
            except Exception as error:  # Keras catches it and falls back
                if key == "cudnn":
                    seen["cudnn_error"] = f"{type(error).__name__}: {error}"
                raise
            seen[key] += 1
            return result
        return wrapper
    try:
        setattr(rnn_module, names[0], traced(names[0], "cudnn"))
        setattr(rnn_module, names[1], traced(names[1], "fallback"))
        result = call()
    finally:
        for name, original in originals.items():
            setattr(rnn_module, name, original)
    return result, seen


def _keras_torch_cudnn(cell, weights, x, return_sequences, dtype, device):
    """Keras 3's torch backend: the layer called eagerly on a torch tensor on ``device``.

    On "cuda" the layer has use_cudnn=True and Keras' torch backend runs cuDNN
    through torch._VF.lstm / gru (keras/src/backend/torch/rnn.py). That backend
    falls back to its own loop without a word when the cuDNN call fails, so one
    call made here, before the check and the timing, is traced: on CUDA it must
    have run ``_cudnn_lstm`` / ``_cudnn_gru`` and not the fallback, else the engine
    raises (the report lists the error). TF32 is off; each call runs under
    torch.no_grad() and ends with torch.cuda.synchronize(). The call is Keras'
    eager __call__ (no graph: under torch.compile Keras skips cuDNN), so its
    Python overhead is part of the figure.
    """
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import keras
    # The modules, not the names: keras.src.backend.torch re-exports a function "rnn".
    torch_core = importlib.import_module("keras.src.backend.torch.core")
    torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
    if keras.backend.backend() != "torch":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not torch")
    device = str(device).lower().lstrip("/").replace("gpu", "cuda")
    target = torch.device(device)
    on_cuda = target.type == "cuda"
    weights, x = _cast(weights, x, dtype)
    # Keras places variables and the zero initial states on its current device; a
    # scope is needed only where that is not ``device`` (the CPU variant on a GPU box).
    scoped = torch.device(torch_core.get_device()).type != target.type
    with keras.device(device) if scoped else contextlib.nullcontext():
        layer = _keras_layer(cell, weights, return_sequences, dtype,
                             use_cudnn=True if on_cuda else "auto")
    tensor = torch.from_numpy(x).to(target)

    def run():
        with torch.no_grad(), (keras.device(device) if scoped else contextlib.nullcontext()):
            out = layer(tensor, training=False)
        if on_cuda:
            torch.cuda.synchronize()
        return out
    _, seen = _traced_rnn_call(torch_rnn, cell, run)
    path = ("cuDNN" if seen["cudnn"] and not seen["fallback"] else
            "Keras' torch loop" if seen["fallback"] and not seen["cudnn"] else
            f"unclear ({seen})")
    if on_cuda and path != "cuDNN":
        raise RuntimeError(
            f"Keras' torch backend did not run cuDNN on {device}: ran {path}"
            + (f"; its cuDNN call raised {seen['cudnn_error']}" if seen["cudnn_error"] else "")
            + f" (keras.src.backend.torch.rnn.cudnn_ok: "
              f"torch.cuda.is_available()={torch.cuda.is_available()}, "
              f"torch.backends.cudnn.is_available()={torch.backends.cudnn.is_available()})")
    info = {"backend": "torch", "keras": keras.__version__, "torch": torch.__version__,
            "device": str(target), "tf32": False, "use_cudnn": True if on_cuda else "auto",
            "rnn_path": path, "tensorflow_imported": sys.modules.get("tensorflow") is not None}
    if on_cuda:
        info.update(_cuda_info(torch, target),
                    cudnn_acceptable=bool(torch.backends.cudnn.is_acceptable(tensor)))
    return [Variant("layer(x), eager", run, lambda out: out.detach().cpu().numpy(), info)]


def _cuda_info(torch, device):
    """The GPU and the CUDA/cuDNN builds a torch engine ran on (for the report)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    properties = torch.cuda.get_device_properties(index)
    return {"device_name": torch.cuda.get_device_name(index),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version()}


def _keras_cudnn_probe():
    """keras-cudnn can run: Keras and its backend installed, a CUDA GPU visible to it."""
    try:
        backend = _select_keras_backend()
    except Unsupported as error:
        return str(error)
    if backend == "torch":
        problem = _needs("keras", "torch")()
        if problem:
            return problem + " (Keras' torch backend)"
        import torch
        if not torch.cuda.is_available():
            return (f"no CUDA GPU visible to torch {torch.__version__} (Keras' torch backend; "
                    f"torch.cuda.is_available() is False; built for CUDA {torch.version.cuda})")
        if not torch.backends.cudnn.is_available():
            return f"torch {torch.__version__} sees a GPU but cuDNN is not available"
        import keras  # a broken install (a missing dependency) is a reason to skip
        if keras.backend.backend() != "torch":
            return f"Keras imported the {keras.backend.backend()!r} backend, not torch"
        return None
    problem = _needs("tensorflow", "keras")()
    if problem:
        return problem
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        return (f"no GPU visible to TensorFlow {tf.__version__} (built with CUDA: "
                f"{tf.test.is_built_with_cuda()})")
    return None


# ---- torch -------------------------------------------------------------------

def torch_weights(cell, weights):
    """Keras-layout weights -> torch.nn.LSTM / nn.GRU parameters (NumPy arrays).

    Keras stores kernel (D, G*M) and recurrent_kernel (M, G*M) with gates as column
    blocks; torch stores weight_ih_l0 (G*M, D) and weight_hh_l0 (G*M, M) with gates
    as row blocks, so each matrix is transposed after reordering the blocks.

    LSTM: Keras i, f, c, o = torch i, f, g, o (same order); Keras has one bias,
    torch two, so bias_ih = Keras bias and bias_hh = 0.
    GRU (Keras reset_after=True, torch's only form): Keras z, r, h -> torch r, z,
    n; Keras bias row 0 (input) -> bias_ih, row 1 (recurrent) -> bias_hh. Both
    compute n = tanh(W_n x + b_in + r * (U_n h + b_hn)), h' = z*h + (1-z)*n.
    """
    kernel, recurrent_kernel, bias = (np.asarray(w) for w in weights)
    M = recurrent_kernel.shape[0]
    if cell == "LSTM":
        order = np.arange(4 * M)
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    elif cell == "GRU":
        z, r, h = np.arange(M), np.arange(M, 2 * M), np.arange(2 * M, 3 * M)
        order = np.concatenate([r, z, h])
        if bias.ndim != 2:
            raise ValueError("torch's GRU needs Keras' reset_after=True bias, shape (2, 3M)")
        bias_ih, bias_hh = bias[0][order], bias[1][order]
    else:
        raise ValueError(f"unknown cell {cell!r}")
    return {
        "weight_ih_l0": np.ascontiguousarray(kernel[:, order].T),
        "weight_hh_l0": np.ascontiguousarray(recurrent_kernel[:, order].T),
        "bias_ih_l0": np.ascontiguousarray(bias_ih),
        "bias_hh_l0": np.ascontiguousarray(bias_hh),
    }


def torch_module(cell, weights, dtype, device="cpu"):
    """A torch.nn.LSTM or nn.GRU (batch_first) holding the Keras weights."""
    import torch
    D, M = weights[0].shape[0], weights[1].shape[0]
    torch_dtype = getattr(torch, dtype)
    module = getattr(torch.nn, cell)(D, M, batch_first=True)
    module = module.to(device=device, dtype=torch_dtype)
    params = torch_weights(cell, weights)
    with torch.no_grad():
        for name, value in params.items():
            getattr(module, name).copy_(torch.from_numpy(value.astype(dtype)))
    module.eval().requires_grad_(False)
    return module


def torch_engine(cell, weights, x, return_sequences, dtype, device="cpu"):
    """torch.nn.LSTM / nn.GRU with the same weights, on ``device``.

    On CPU torch runs its oneDNN/MKL kernels; on "cuda" cuDNN, with TF32 off (set
    for any device, so the GPU code path runs on the CPU in tests too). Gradients
    are off for the whole process. Returns the output sequence, or the last h.
    """
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_grad_enabled(False)
    module = torch_module(cell, weights, dtype, device)
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype)).to(device)
    on_cuda = str(device).startswith("cuda")

    def run():
        out, state = module(tensor)
        if not return_sequences:
            out = (state[0] if cell == "LSTM" else state)[-1]
        if on_cuda:
            torch.cuda.synchronize()
        return out
    info = {"device": str(device), "tf32": False, "torch": torch.__version__,
            "cudnn_version": torch.backends.cudnn.version() if on_cuda else None}
    if on_cuda:
        info.update(_cuda_info(torch, tensor.device),
                    cudnn_acceptable=bool(torch.backends.cudnn.is_acceptable(tensor)))
    return [Variant(f"nn.{cell}", run, lambda out: out.detach().cpu().numpy(), info)]


def torch_stream(cell, weights, x, dtype, device="cpu"):
    """Streaming: the module called on x_t (B, 1, D) with the previous call's (h, c) / h."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_grad_enabled(False)
    module = torch_module(cell, weights, dtype, device)
    B, M = x.shape[0], weights[1].shape[0]
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype)).to(device)
    steps = [tensor[:, t:t + 1].contiguous() for t in range(x.shape[1])]
    on_cuda = str(device).startswith("cuda")

    def start():
        zeros = [torch.zeros((1, B, M), dtype=getattr(torch, dtype), device=device)
                 for _ in range(2 if cell == "LSTM" else 1)]
        return tuple(zeros) if cell == "LSTM" else zeros[0]

    def step(x_t, states):
        out, states = module(x_t, states)
        if on_cuda:
            torch.cuda.synchronize()
        return out, states
    info = {"device": str(device), "tf32": False, "torch": torch.__version__}
    if on_cuda:
        info.update(_cuda_info(torch, tensor.device),
                    cudnn_acceptable=bool(torch.backends.cudnn.is_acceptable(tensor)))
    return [stream_variant(f"nn.{cell}, states carried, T=1", steps, start, step,
                           lambda out: out[:, 0].detach().cpu().numpy(), info)]


def torch_cudnn_stream(cell, weights, x, dtype, device="cuda"):
    return torch_stream(cell, weights, x, dtype, device=device)


def torch_cudnn_engine(cell, weights, x, return_sequences, dtype, device="cuda"):
    """torch on a CUDA GPU (cuDNN RNN kernels); see :func:`torch_engine`."""
    return torch_engine(cell, weights, x, return_sequences, dtype, device=device)


def _torch_cuda_probe():
    problem = _needs("torch")()
    if problem:
        return problem
    import torch
    if not torch.cuda.is_available():
        return (f"no CUDA GPU visible to torch {torch.__version__} "
                f"(torch.cuda.is_available() is False; built for CUDA {torch.version.cuda})")
    if not torch.backends.cudnn.is_available():
        return "torch sees a GPU but cuDNN is not available"
    return None


# ---- the GEMM floor ----------------------------------------------------------

def gemm_floor_engine(cell, weights, x, return_sequences, dtype, blas="numpy"):
    """Only the matrix products every LSTM/GRU must do, nothing else.

    One input GEMM (B*T x D) @ (D x G*M), then T recurrent GEMMs (B x M) @ (M x G*M),
    written into preallocated outputs; no bias, activations or state update.
    ``blas`` picks who multiplies: "numpy" (NumPy's BLAS, one Python call per
    product), "numba" (SciPy's BLAS called from a compiled loop, as minirnn's
    kernels do; no Python overhead per step) or "torch" (torch.mm: MKL/oneDNN).
    The runner runs each in its own process and reports the fastest.
    """
    B, T, D = x.shape
    M = weights[1].shape[0]
    width = GATES[cell] * M
    rng = np.random.default_rng(0)
    x2d = np.ascontiguousarray(x.reshape(B * T, D), dtype)
    kernel = np.ascontiguousarray(weights[0], dtype)
    recurrent_kernel = np.ascontiguousarray(weights[1], dtype)
    h = rng.uniform(-1, 1, size=(B, M)).astype(dtype)
    projected = np.empty((B * T, width), dtype)
    gates = np.empty((B, width), dtype)
    if blas == "numpy":
        def run():
            np.matmul(x2d, kernel, out=projected)
            for _ in range(T):
                np.matmul(h, recurrent_kernel, out=gates)
        info = {"blas": _numpy_blas_name()}
    elif blas == "numba":
        floor = _numba_floor()

        def run():
            floor(x2d, kernel, h, recurrent_kernel, projected, gates, T)
        info = {"blas": "numba np.dot -> " + _scipy_blas_name()}
    elif blas == "torch":
        import torch
        torch.set_grad_enabled(False)
        tensors = [torch.from_numpy(a) for a in (x2d, kernel, h, recurrent_kernel,
                                                 projected, gates)]
        tx, tw, th, tu, tp, tg = tensors

        def run():
            torch.mm(tx, tw, out=tp)
            for _ in range(T):
                torch.mm(th, tu, out=tg)
        info = {"blas": f"torch {torch.__version__} torch.mm ("
                        f"MKL: {torch.backends.mkl.is_available()})"}
    else:
        raise ValueError(f"unknown blas {blas!r}; expected numpy, numba or torch")
    info["gemm"] = {"input": [B * T, D, width], "recurrent": [B, M, width], "count": T}
    return [Variant(f"gemm-floor[{blas}]", run, None, info)]


def gemm_floor_stream(cell, weights, x, dtype, blas="numpy"):
    """Streaming floor: one step's products, (B x D) @ (D x G*M) and (B x M) @ (M x G*M)."""
    (variant,) = gemm_floor_engine(cell, weights, x[:, :1], True, dtype, blas=blas)
    variant.name += ", T=1"
    return [variant]


_FLOOR = None


def _numba_floor():
    """The floor's loop compiled with Numba (np.dot with out= calls SciPy's BLAS)."""
    global _FLOOR
    if _FLOOR is None:
        from numba import njit

        @njit(cache=True)
        def floor(x2d, kernel, h, recurrent_kernel, projected, gates, steps):
            np.dot(x2d, kernel, projected)
            for _ in range(steps):
                np.dot(h, recurrent_kernel, gates)
        _FLOOR = floor
    return _FLOOR


def _numpy_blas_name():
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"numpy {np.__version__} ({config.get('name')} {config.get('version')})"
    except Exception:  # noqa: BLE001 - older NumPy: no dict form
        return f"numpy {np.__version__}"


def _scipy_blas_name():
    try:
        import scipy
        config = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"scipy {scipy.__version__} ({config.get('name')} {config.get('version')})"
    except Exception:  # noqa: BLE001
        return "scipy BLAS"


# ---- the registry ------------------------------------------------------------

NO_PREDICT_STREAM = ("model.predict is not a streaming API; Keras' streaming figure is "
                     "keras-function's (states passed explicitly)")

ENGINES = {engine.name: engine for engine in [
    Engine("minirnn", "minirnn, Numba kernels (engine='numba')", minirnn_engine,
           _needs("numba"), stream=minirnn_stream),
    Engine("minirnn-numpy", "minirnn, readable NumPy steps (engine='numpy')",
           minirnn_numpy_engine, _needs("numpy"), stream=minirnn_numpy_stream),
    Engine("minirnn-bitwise", "minirnn, bitwise=True (Keras' CPU float32 bits; float32 only)",
           minirnn_bitwise_engine, _bitwise_probe, stream=minirnn_bitwise_stream),
    Engine("keras-predict", "Keras 3 (TensorFlow) on CPU: model.predict",
           keras_predict_engine, _needs("tensorflow", "keras"), no_stream=NO_PREDICT_STREAM),
    Engine("keras-function", "Keras 3 layer in a tf.function on CPU (best of plain / XLA)",
           keras_function_engine, _needs("tensorflow", "keras"), stream=keras_function_stream),
    Engine("torch", "torch.nn.LSTM / nn.GRU on CPU", torch_engine, _needs("torch"),
           stream=torch_stream),
    Engine("onnxruntime", "ONNX Runtime, CPU execution provider: a one-node ONNX LSTM / GRU",
           onnx_engines.onnxruntime_engine, onnx_engines.ort_probe,
           stream=onnx_engines.onnxruntime_stream),
    Engine("openvino", "OpenVINO, CPU plugin, f32 precision: the same ONNX model",
           onnx_engines.openvino_engine, onnx_engines.openvino_probe,
           stream=onnx_engines.openvino_stream),
    Engine("gemm-floor", "only the GEMMs (fastest BLAS of numpy / numba+scipy / torch)",
           gemm_floor_engine, _needs("numpy"), checked=False,
           process_options=({"blas": "numpy"}, {"blas": "numba"}, {"blas": "torch"}),
           stream=gemm_floor_stream),
    Engine("keras-cudnn", "Keras 3 with cuDNN on a CUDA GPU, TensorFlow or torch backend "
           "(TF32 off)", keras_cudnn_engine,
           _keras_cudnn_probe, gpu=True, no_stream="no streaming mode written for it"),
    Engine("torch-cudnn", "torch with cuDNN on a CUDA GPU (TF32 off)", torch_cudnn_engine,
           _torch_cuda_probe, gpu=True, stream=torch_cudnn_stream),
]}

CPU_ENGINES = tuple(name for name, engine in ENGINES.items() if not engine.gpu)
# The engines that get float64 rows in the default grid.
# ONNX Runtime and OpenVINO have no float64 kernels: their rows say so (skipped).
# cuDNN's RNN kernels have float64 (torch.backends.cudnn.is_acceptable takes float64, as
# does TensorFlow's CudnnRNN): the GPU engines get float64 rows too.
FLOAT64_ENGINES = ("minirnn", "keras-predict", "keras-function", "torch", "onnxruntime",
                   "openvino", "gemm-floor", "keras-cudnn", "torch-cudnn")
# Engines that are minirnn itself or not a layer at all: never "the best peer".
NOT_PEERS = ("minirnn", "minirnn-numpy", "minirnn-bitwise", "gemm-floor")
