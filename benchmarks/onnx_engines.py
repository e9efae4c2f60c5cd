"""ONNX Runtime and OpenVINO engines: a one-node ONNX LSTM / GRU from Keras weights.

Both runtimes get the same model, built with ``onnx.helper`` from the Keras-layout
weights every engine receives (:func:`onnx_weights` maps them). Facts from the
ONNX operator specification (opset 14) that the mapping relies on:

- W is (num_directions, G*M, D), R is (num_directions, G*M, M), gates as row
  blocks: y = x W^T + h R^T, so each is the Keras matrix transposed after the gate
  blocks are reordered. B is (num_directions, 2*G*M): [Wb, Rb], both added.
- LSTM gate order i, o, f, c (Keras: i, f, c, o); default activations sigmoid,
  tanh, tanh as Keras' defaults; no peepholes (P omitted).
- GRU gate order z, r, h (as Keras); h' = (1 - z) * h~ + z * h as Keras;
  linear_before_reset=1 is h~ = tanh(x Wh^T + Wbh + r * (h Rh^T + Rbh)), Keras'
  reset_after=True with bias rows [input, recurrent]; linear_before_reset=0 is
  h~ = tanh(x Wh^T + (r * h) Rh^T + Rbh + Wbh), Keras' reset_after=False (one bias
  row, so Rb = 0).
- layout=0: X is (T, B, D) and Y is (T, num_directions, B, M). ONNX Runtime's CPU
  kernels refuse layout=1 ("Batchwise recurrent operations (layout == 1) are not
  supported"), so both runtimes get time-major input, transposed once before
  timing, and the output is mapped back to Keras' (B, T, M) outside the timed call
  (see :func:`batch_major`).

ONNX Runtime's CPU LSTM and GRU kernels are float32 only (a float64 model loads,
then its first call fails with "... does not support double yet"); OpenVINO's CPU
plugin has no float64 precision at all. Both report float64 as skipped with the
reason (:class:`benchmarks.base.Unsupported`).
"""

import numpy as np

from .base import Unsupported, Variant, cast, needs
from .streaming import stream_variant
from .system import thread_cap

OPSET = 14
GATES = {"LSTM": 4, "GRU": 3}
# Keras' LSTM gate blocks i, f, c, o, listed in ONNX's order i, o, f, c.
LSTM_KERAS_BLOCKS_IN_ONNX_ORDER = (0, 3, 1, 2)


# ---- the model ---------------------------------------------------------------

def onnx_weights(cell, weights):
    """Keras [kernel, recurrent_kernel, bias] -> ({"W", "R", "B"} arrays, node attributes).

    kernel (D, G*M) and recurrent_kernel (M, G*M) have Keras' gate column blocks;
    bias is (4M,) for the LSTM, (2, 3M) for a GRU with reset_after=True (rows:
    input, recurrent) and (3M,) for a GRU with reset_after=False.
    """
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}; expected LSTM or GRU")
    if len(weights) != 3:
        raise ValueError(f"expected [kernel, recurrent_kernel, bias]; received {len(weights)} "
                         "arrays (layers without bias are not benchmarked)")
    kernel, recurrent_kernel, bias = (np.asarray(w) for w in weights)
    M = recurrent_kernel.shape[0]
    width = GATES[cell] * M
    if kernel.ndim != 2 or kernel.shape[1] != width or recurrent_kernel.shape != (M, width):
        raise ValueError(f"{cell} weights of {M} units need kernel (D, {width}) and "
                         f"recurrent_kernel ({M}, {width}); received {kernel.shape} and "
                         f"{recurrent_kernel.shape}")
    attributes = {}
    if cell == "LSTM":
        if bias.shape != (width,):
            raise ValueError(f"LSTM bias must be ({width},); received {bias.shape}")
        order = np.concatenate([np.arange(k * M, (k + 1) * M)
                                for k in LSTM_KERAS_BLOCKS_IN_ONNX_ORDER])
        input_bias, recurrent_bias = bias[order], np.zeros_like(bias)
    else:
        order = np.arange(width)  # z, r, h in both
        if bias.shape == (2, width):
            input_bias, recurrent_bias = bias[0], bias[1]
            attributes["linear_before_reset"] = 1
        elif bias.shape == (width,):
            input_bias, recurrent_bias = bias, np.zeros_like(bias)
            attributes["linear_before_reset"] = 0
        else:
            raise ValueError(f"GRU bias must be (2, {width}) (reset_after=True) or "
                             f"({width},) (reset_after=False); received {bias.shape}")
    arrays = {
        "W": np.ascontiguousarray(kernel[:, order].T[None]),
        "R": np.ascontiguousarray(recurrent_kernel[:, order].T[None]),
        "B": np.concatenate([input_bias, recurrent_bias])[None],
    }
    return arrays, attributes


def build_model(cell, weights, dtype, batch, steps, outputs=("Y",), with_states=False):
    """A one-node ONNX model (onnx.ModelProto) of the layer, weights as initializers.

    Inputs: X (steps, batch, D), and with ``with_states`` initial_h (1, batch, M)
    (and initial_c for the LSTM). ``outputs``: any of "Y" (steps, 1, batch, M),
    "Y_h" and "Y_c" (1, batch, M); the node leaves the others empty, so the
    runtime need not produce them.
    """
    import onnx
    from onnx import helper, numpy_helper

    unknown = set(outputs) - {"Y", "Y_h", "Y_c"}
    if unknown or not outputs or ("Y_c" in outputs and cell != "LSTM"):
        raise ValueError(f"outputs {outputs!r}: choose from Y, Y_h and (LSTM) Y_c")
    arrays, attributes = onnx_weights(cell, weights)
    D = arrays["W"].shape[2]
    M = arrays["R"].shape[2]
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    initializers = [numpy_helper.from_array(np.ascontiguousarray(a, dtype), name)
                    for name, a in arrays.items()]
    graph_inputs = [helper.make_tensor_value_info("X", element, [steps, batch, D])]
    node_inputs = ["X", "W", "R", "B"]
    if with_states:
        state_names = ["initial_h", "initial_c"] if cell == "LSTM" else ["initial_h"]
        node_inputs += [""] + state_names  # "" = no sequence_lens: every row runs all steps
        graph_inputs += [helper.make_tensor_value_info(name, element, [1, batch, M])
                         for name in state_names]
    shapes = {"Y": [steps, 1, batch, M], "Y_h": [1, batch, M], "Y_c": [1, batch, M]}
    slots = ["Y", "Y_h", "Y_c"] if cell == "LSTM" else ["Y", "Y_h"]
    node_outputs = [name if name in outputs else "" for name in slots]
    while node_outputs[-1] == "":
        node_outputs.pop()
    node = helper.make_node(cell, node_inputs, node_outputs, hidden_size=M, **attributes)
    graph = helper.make_graph(
        [node], f"keras_{cell.lower()}", graph_inputs,
        [helper.make_tensor_value_info(name, element, shapes[name]) for name in outputs],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="minirnn-benchmarks")
    onnx.checker.check_model(model)
    return model


def time_major(x):
    """(B, T, D) -> (T, B, D), contiguous: ONNX's layout 0."""
    return np.ascontiguousarray(np.swapaxes(x, 0, 1))


def batch_major(y):
    """ONNX's Y (T, 1, B, M) -> Keras' (B, T, M)."""
    return np.swapaxes(np.asarray(y)[:, 0], 0, 1)


def _sequence_outputs(return_sequences):
    return ("Y",) if return_sequences else ("Y_h",)


def _layer_output(return_sequences):
    """ONNX output -> what the Keras layer returns: (B, T, M) or the last h (B, M)."""
    if return_sequences:
        return batch_major
    return lambda y_h: np.asarray(y_h)[0]


def _stream_steps(x, dtype):
    """Per-step inputs (1, B, D) for the streaming models, made before timing."""
    return [np.ascontiguousarray(x[:, t][None], dtype) for t in range(x.shape[1])]


def _zero_states(cell, batch, units, dtype):
    return [np.zeros((1, batch, units), dtype) for _ in range(2 if cell == "LSTM" else 1)]


def _state_names(cell):
    return ["initial_h", "initial_c"] if cell == "LSTM" else ["initial_h"]


def _stream_outputs(cell):
    return ("Y_h", "Y_c") if cell == "LSTM" else ("Y_h",)


# ---- ONNX Runtime ------------------------------------------------------------

ort_probe = needs("onnx", "onnxruntime")


def ort_session(model):
    """An InferenceSession on the CPU execution provider; threads from the harness' cap."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    threads = thread_cap()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    info = {"runtime": f"onnxruntime {ort.__version__}", "providers": session.get_providers(),
            "opset": OPSET, "layout": "time-major (T, B, D) in, (T, 1, B, M) out",
            "threads": {"onnxruntime_intra_op_num_threads":
                        threads or "0 (default: one per physical core)",
                        "onnxruntime_inter_op_num_threads": threads or "0 (default)"}}
    return session, info


def _ort_first_call(session, feed, dtype, cell):
    """Run once; a kernel that does not exist for this dtype becomes Unsupported."""
    import onnxruntime as ort
    try:
        session.run(None, feed)
    except Exception as error:  # noqa: BLE001 - the runtime's own exception types vary
        text = str(error)
        if "not support" in text or "NOT_IMPLEMENTED" in text:
            raise Unsupported(f"onnxruntime {ort.__version__} has no CPU {cell} kernel for "
                              f"{dtype}: {text.strip().splitlines()[-1]}") from None
        raise


def onnxruntime_engine(cell, weights, x, return_sequences, dtype):
    """ONNX Runtime (CPU execution provider) running the one-node model.

    Timed: ``session.run`` on the time-major input made before timing; it returns
    a new NumPy array, as minirnn's call does.
    """
    weights, x = cast(weights, x, dtype)
    B, T, _ = x.shape
    outputs = _sequence_outputs(return_sequences)
    session, info = ort_session(build_model(cell, weights, dtype, B, T, outputs))
    feed = {"X": time_major(x)}
    _ort_first_call(session, feed, dtype, cell)
    to_layer = _layer_output(return_sequences)
    return [Variant("InferenceSession.run", lambda: session.run(outputs, feed)[0],
                    to_layer, info)]


def onnxruntime_stream(cell, weights, x, dtype):
    """One step per call: X (1, B, D) and the previous call's Y_h (and Y_c) as initial states."""
    weights, x = cast(weights, x, dtype)
    B, _, _ = x.shape
    M = weights[1].shape[0]
    outputs = _stream_outputs(cell)
    session, info = ort_session(build_model(cell, weights, dtype, B, 1, outputs,
                                            with_states=True))
    names = _state_names(cell)
    steps = _stream_steps(x, dtype)
    _ort_first_call(session, {"X": steps[0], **dict(zip(names, _zero_states(cell, B, M, dtype)))},
                    dtype, cell)

    def step(x_t, states):
        new_states = session.run(outputs, {"X": x_t, **dict(zip(names, states))})
        return new_states[0], new_states
    return [stream_variant("InferenceSession.run, T=1", steps,
                           lambda: _zero_states(cell, B, M, dtype), step,
                           lambda y_h: y_h[0], info)]


# ---- OpenVINO ----------------------------------------------------------------

openvino_probe = needs("onnx", "openvino")


def _openvino_version():
    import openvino as ov
    return ov.__version__.split("-")[0]  # "2026.4.1-22982-<hash>-releases/..." -> "2026.4.1"


def _property_text(value):
    """An OpenVINO property as plain text: an element type as "f32", an enum by name."""
    if hasattr(value, "get_type_name"):
        return value.get_type_name()
    return getattr(value, "name", None) or str(value)


def openvino_compiled(model, dtype):
    """The model compiled for OpenVINO's CPU plugin at f32 precision; (compiled, info).

    INFERENCE_PRECISION_HINT=f32: on CPUs with AVX512_BF16 or AMX the plugin's
    default is bf16 (errors ~1e-2, far above the tolerance); the hint is read back
    after compiling and anything else is refused.
    """
    import openvino as ov
    core = ov.Core()
    if dtype != "float32":
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "FP64" not in capabilities:
            raise Unsupported(f"OpenVINO {_openvino_version()}'s CPU plugin has no {dtype} "
                              f"precision (optimization capabilities: "
                              f"{', '.join(capabilities)}); a {dtype} model is computed "
                              "in f32 inside")
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    threads = thread_cap()
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(model.SerializeToString()), "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    if precision != ov.Type.f32:
        raise RuntimeError(f"OpenVINO compiled the model at {precision} precision although "
                           "INFERENCE_PRECISION_HINT=f32 was asked for")
    properties = ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS",
                  "INFERENCE_NUM_THREADS")
    settings = {name: _property_text(compiled.get_property(name)) for name in properties}
    info = {"runtime": f"openvino {_openvino_version()}", "device": "CPU", "opset": OPSET,
            "layout": "time-major (T, B, D) in, (T, 1, B, M) out", "properties": settings,
            "threads": {"openvino_inference_num_threads": settings["INFERENCE_NUM_THREADS"],
                        "openvino_num_streams": settings["NUM_STREAMS"]}}
    return compiled, info


def openvino_engine(cell, weights, x, return_sequences, dtype):
    """OpenVINO's CPU plugin running the one-node model.

    Timed: ``InferRequest.infer`` on the time-major input made before timing
    (shared, not copied), its output copied into a new NumPy array.
    """
    weights, x = cast(weights, x, dtype)
    B, T, _ = x.shape
    outputs = _sequence_outputs(return_sequences)
    compiled, info = openvino_compiled(build_model(cell, weights, dtype, B, T, outputs), dtype)
    request = compiled.create_infer_request()
    feed = {"X": time_major(x)}
    port = compiled.output(outputs[0])
    to_layer = _layer_output(return_sequences)
    return [Variant("InferRequest.infer", lambda: request.infer(feed, share_inputs=True)[port],
                    to_layer, info)]


def openvino_stream(cell, weights, x, dtype):
    """One step per call: X (1, B, D) and the previous call's Y_h (and Y_c) as initial states."""
    weights, x = cast(weights, x, dtype)
    B, _, _ = x.shape
    M = weights[1].shape[0]
    outputs = _stream_outputs(cell)
    compiled, info = openvino_compiled(
        build_model(cell, weights, dtype, B, 1, outputs, with_states=True), dtype)
    request = compiled.create_infer_request()
    ports = [compiled.output(name) for name in outputs]
    names = _state_names(cell)

    def step(x_t, states):
        # Outputs are copied (share_outputs=False): they are the next call's inputs.
        result = request.infer({"X": x_t, **dict(zip(names, states))}, share_inputs=True)
        new_states = [result[port] for port in ports]
        return new_states[0], new_states
    return [stream_variant("InferRequest.infer, T=1", _stream_steps(x, dtype),
                           lambda: _zero_states(cell, B, M, dtype), step,
                           lambda y_h: y_h[0], info)]
