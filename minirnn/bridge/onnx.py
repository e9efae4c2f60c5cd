"""minirnn layers and whole models written as ONNX graphs, checked before they are written.

May use: numpy, and what it writes: :mod:`minirnn.activations`, :mod:`minirnn.blocks`,
:mod:`minirnn.layers`, :mod:`minirnn.bidirectional`, :mod:`minirnn.graph`,
:mod:`minirnn.mask_operations`, :mod:`minirnn.model`, :mod:`minirnn.recurrent` and
:mod:`minirnn.streaming`; onnx and onnxruntime only inside
the functions that need them (the ``export`` extra), so that ``import minirnn``
stays free of them.

:func:`to_onnx` writes a minirnn layer (LSTM, GRU, SimpleRNN, Bidirectional) or a
:class:`minirnn.Model` as an ONNX file. Each recurrent layer becomes one of two
graphs, both exact:

- **the ONNX recurrent node** (``LSTM``, ``GRU``, ``RNN``) where it computes what the
  layer computes: float32, no mask, activations the node has (Tanh, Sigmoid, Relu,
  Softsign, and HardSigmoid with Keras' alpha/beta). The weight mapping, from Keras'
  column blocks to ONNX's row blocks::

      W[0] = kernel[:, order].T        (G M, D)     y = x W^T + h R^T (+ Wb + Rb)
      R[0] = recurrent_kernel[:, order].T (G M, M)
      B[0] = [Wb, Rb]                  (2 G M)

  LSTM: Keras' gate blocks i, f, c, o in ONNX's order i, o, f, c; one Keras bias, so
  Wb = bias (reordered) and Rb = 0. GRU: z, r, h in both; reset_after=True is
  ``linear_before_reset=1`` with Wb = bias[0], Rb = bias[1]; reset_after=False is
  ``linear_before_reset=0`` with Wb = bias, Rb = 0. SimpleRNN: Wb = bias, Rb = 0.
  Activations: LSTM [f, g, h] = [recurrent_activation, activation, activation], GRU
  [f, g] = [recurrent_activation, activation], RNN [activation]. hard_sigmoid is
  HardSigmoid(alpha, beta) = clip(alpha x + beta, 0, 1): Keras 3's relu6(x + 3) / 6
  is alpha = 1/6, beta = 0.5; Keras 2's clip(0.2 x + 0.5, 0, 1) alpha 0.2, beta 0.5.
  The node is used with HardSigmoid only where the alpha/beta lists cannot be read
  two ways (HardSigmoid first in the list of activations).
  The node is time-major (layout 0): X (T, B, D) in, Y (T, 1, B, M) out. go_backwards
  is ``direction="reverse"``, whose Y is aligned with the input steps, so Y is flipped
  in time to give Keras' order (processed order: ``output[:, 0]`` is the last step's).

- **a Scan of the layer's step** otherwise: float64 (ONNX Runtime's recurrent nodes
  are float32 only), masks, and every other activation written as ONNX operators.
  The input projection x W + b is one MatMul over all steps; the Scan carries the
  states and the last output, and at each step computes, as minirnn.equations::

      LSTM  z = xw_t + h U;  i, f, g, o = sig(z_i), sig(z_f), phi(z_g), sig(z_o)
            c' = f c + i g;  h' = o phi(c')
      GRU   reset_after: u = h U + b[1];  z, r = sig(xw_z + u_z), sig(xw_r + u_r)
                          hh = phi(xw_h + r u_h)
            otherwise:    z, r = sig(xw_zr + h U_zr);  hh = phi(xw_h + (r h) U_h)
            h' = z h + (1 - z) hh
      RNN   h' = phi(xw_t + h U)

  with Keras' mask rule: where m_t is off, every state is held and the output is the
  previous step's output (zeros before the first), or zeros with zero_output_for_mask.
  go_backwards scans the inputs in reverse and keeps the outputs in processed order.

The other layers of a model become their ONNX operators (see :data:`_BLOCK_EXPORTS`),
masks computed and carried beside the values as :mod:`minirnn.model` carries them.
Anything else is refused with a ValueError naming the layer, its class and why: the
exporter never writes a graph that computes something else.

Every export is checked before it is written: ``onnx.checker`` passes, and ONNX
Runtime runs it on example inputs (a model's :meth:`Model.example_inputs` with padding
at the end and in the middle of rows; random inputs for a layer) and matches minirnn
within 1e-6 abs + 1e-6 rel (float32 outputs) or 1e-12 + 1e-12 rel (float64).

**Streaming export** (``to_onnx(model, path, streaming=True)``; the default for a model
whose ``model.stateful`` is True): the graph runs one slice of time steps per call, as
a stateful :class:`minirnn.Model` does, and what a layer carries from one slice to the
next is a graph input and a graph output, which the caller threads from one call
into the next (zeros before the first slice, and to start a sequence again):

- a recurrent layer ``<layer>``: inputs ``<layer>_h_in`` (and ``<layer>_c_in`` for an
  LSTM), (batch, units); outputs ``<layer>_h_out`` (``<layer>_c_out``), its states
  after the slice. Masked steps hold the states and repeat the last output, also
  across slices: the Scan's "last output" starts at ``<layer>_h_in`` (as minirnn's
  stateful model, where a slice that begins with masked steps outputs the last h);
- a causal Conv1D ``<layer>`` (padding="causal", strides 1, kernel spanning
  s = (kernel_size - 1) dilation_rate + 1 > 1 steps): input ``<layer>_past_in`` and
  output ``<layer>_past_out``, (batch, s - 1, channels), the last s - 1 input steps
  (zeros stand for the whole sequence's padding before the first slice); the
  convolution runs unpadded on Concat(past, slice).

The graph's inputs are the model's inputs, then the carried inputs; its outputs the
model's outputs, then the carried outputs, in the same order, so that output
``n_model_outputs + k`` feeds input ``n_model_inputs + k`` of the next call. The
pairs are also listed in the model's metadata (``minirnn.streaming_states``, JSON:
``[{"layer", "state", "input", "output"}, ...]``, see :func:`streaming_states`).
What cannot stream is refused by the model's own check (:class:`minirnn.streaming.Streaming`:
Bidirectional, go_backwards, non-causal convolution over time, pooling or any other
layer that reads later steps, ...), naming the layer and why. The check runs the
graph on sequences fed in slices (1 step, 3 steps, uneven lengths; padding inside
and at the start of slices), the carried values threaded through, against minirnn's
stateful model fed the same slices: the model's outputs after every slice, within
the same bounds.
"""

import numpy as np

from .. import activations as _activations
from .. import blocks as _blocks
from ..bidirectional import Bidirectional
from ..layers import GRU, LSTM, SimpleRNN

__all__ = ["to_onnx", "export_model", "check_export", "recurrent_weights",
           "streaming_states", "OPSET", "ExportError"]

OPSET = 17           # the default opset; 14 (LSTM's layout) up to 21 are written
_OPSETS = range(14, 22)
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Keras' LSTM gate blocks i, f, c, o, listed in ONNX's order i, o, f, c.
_LSTM_BLOCKS_IN_ONNX_ORDER = (0, 3, 1, 2)
_INSTALL = "pip install minirnn[export]"
_TOLERANCE = {"float32": 1e-6, "float64": 1e-12}
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_STREAMING_KEY = "minirnn.streaming_states"
# Streaming checks: (batch, padding, timesteps, slice lengths); padding runs (every
# other row, a third of the steps) fall inside slices and at their starts.
_STREAMING_EXAMPLES = ((3, "middle", 10, (1, 3, 1, 4, 1)), (2, "start", 7, (3, 1, 3)),
                       (1, "end", 4, (1, 1, 1, 1)))


class ExportError(ValueError):
    """The graph was built but does not compute what minirnn computes (or ONNX
    Runtime cannot run it); nothing was written."""


def _refuse(where, why):
    return ValueError(f"{where}: {why}; it cannot be exported to ONNX exactly, so it is "
                      "refused.")


def _require():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise ImportError(f"ONNX export needs the packages onnx and onnxruntime "
                          f"({error}); install them with `{_INSTALL}`.") from None


# ---- the weight mapping --------------------------------------------------------------

def recurrent_weights(cell, kernel, recurrent_kernel, bias, reset_after=True):
    """Keras-layout weights -> ONNX's W (1, G M, D), R (1, G M, M), B (1, 2 G M) and
    the node's attributes (``linear_before_reset`` for the GRU).

    ``cell``: "LSTM", "GRU" or "RNN" (SimpleRNN). ``bias`` None means use_bias=False
    (B is zeros). See the module docstring for the reorder and the two biases."""
    if cell not in _GATES:
        raise ValueError(f"unknown cell {cell!r}; expected LSTM, GRU or RNN")
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    M = recurrent_kernel.shape[0]
    width = _GATES[cell] * M
    if cell == "LSTM":
        order = np.concatenate([np.arange(k * M, (k + 1) * M)
                                for k in _LSTM_BLOCKS_IN_ONNX_ORDER])
    else:
        order = np.arange(width)  # GRU: z, r, h in both; RNN: one block
    attributes = {}
    zeros = np.zeros(width, kernel.dtype)
    if bias is None:
        input_bias, recurrent_bias = zeros, zeros
    elif cell == "GRU" and reset_after:
        input_bias, recurrent_bias = np.asarray(bias)[0], np.asarray(bias)[1]
    else:
        input_bias, recurrent_bias = np.asarray(bias)[order], zeros
    if cell == "GRU":
        attributes["linear_before_reset"] = int(bool(reset_after))
    arrays = {
        "W": np.ascontiguousarray(kernel[:, order].T[None]),
        "R": np.ascontiguousarray(recurrent_kernel[:, order].T[None]),
        "B": np.concatenate([input_bias, recurrent_bias])[None],
    }
    return arrays, attributes


# ---- building a graph ------------------------------------------------------------------

class _Graph:
    """Nodes, initializers, inputs and outputs of one ONNX graph (the main graph or a
    Scan body), with unique names. ``op`` adds a node and returns its output name(s)."""

    def __init__(self, opset, prefix=""):
        self.opset = opset
        self.prefix = prefix
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._used = set()

    def name(self, hint):
        base = self.prefix + "".join(ch if ch.isalnum() or ch in "_.:/" else "_"
                                     for ch in str(hint))
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, array, hint="const"):
        from onnx import numpy_helper
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value, dtype, hint="c"):
        return self.const(np.array(value, dtype), hint)

    def ints(self, values, hint="shape"):
        return self.const(np.array(values, np.int64), hint)

    def op(self, op_type, inputs, hint=None, outputs=1, **attributes):
        from onnx import helper
        names = [self.name(f"{hint or op_type.lower()}") for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names,
                                           name=self.name(f"node_{op_type}"), **attributes))
        return names[0] if outputs == 1 else names

    # the operators whose signature changed between opsets
    def reduce(self, op_type, x, axes, keepdims=True, hint=None):
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.op(op_type, [x, self.ints(axes, "axes")], hint,
                           keepdims=int(keepdims))
        return self.op(op_type, [x], hint, axes=list(axes), keepdims=int(keepdims))

    def split(self, x, sizes, axis, hint="part"):
        return self.op("Split", [x, self.ints(sizes, "split")], hint, outputs=len(sizes),
                       axis=axis)

    def unsqueeze(self, x, axes, hint=None):
        return self.op("Unsqueeze", [x, self.ints(axes, "axes")], hint)

    def squeeze(self, x, axes, hint=None):
        return self.op("Squeeze", [x, self.ints(axes, "axes")], hint)

    def reverse_time(self, x, axis, hint=None):
        """x flipped along ``axis``: Slice from the last entry backwards, step -1."""
        return self.op("Slice", [x, self.ints([-1]), self.ints([_INT64_MIN]),
                                 self.ints([axis]), self.ints([-1])], hint or "reversed")

    def rows_of_zeros(self, like, width, dtype, hint="zeros"):
        """Zeros (B, width), B taken from the first dimension of ``like`` at run time."""
        from onnx import numpy_helper
        batch = self.op("Slice", [self.op("Shape", [like]), self.ints([0]), self.ints([1])],
                        "batch")
        shape = self.op("Concat", [batch, self.ints([width])], "shape", axis=0)
        return self.op("ConstantOfShape", [shape], hint,
                       value=numpy_helper.from_array(np.zeros(1, dtype)))


_COMPUTED = ("float32", "float64", "int32", "int64")  # input dtypes the graph computes on


def _input_dtypes(spec):
    """(the dtype a model input is declared with in the graph, the dtype the graph
    computes on): the input's own dtype where ONNX has it, cast to int32 (integers and
    booleans) or float32 (other floats) where the layers need that."""
    declared = spec["dtype"]
    try:
        _element(declared)
    except (TypeError, KeyError, ValueError):
        declared = "float32"
    if declared in _COMPUTED:
        return declared, declared
    kind = np.dtype(declared).kind
    return declared, "int32" if kind in "biu" else "float32"


def _element(dtype):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _value_info(name, dtype, shape):
    from onnx import helper
    dims = [n if isinstance(n, int) else (n or None) for n in shape]
    return helper.make_tensor_value_info(name, _element(dtype), dims)


# ---- activations ------------------------------------------------------------------------

# Activations that the ONNX recurrent nodes have, as (name, alpha, beta) by semantics.
_NATIVE = {"tanh": ("Tanh", None, None), "sigmoid": ("Sigmoid", None, None),
           "relu": ("Relu", None, None), "softsign": ("Softsign", None, None)}
_NATIVE_HARD_SIGMOID = {"keras3": ("HardSigmoid", 1 / 6, 0.5),
                        "keras2": ("HardSigmoid", 0.2, 0.5)}
# What each refused activation lacks.
_NO_GRAPH = {
    "soft_shrink": "a piecewise function with no ONNX operator here",
    "sparse_plus": "a piecewise function with no ONNX operator here",
    "hard_shrink": "a piecewise function with no ONNX operator here",
    "sparse_sigmoid": "a piecewise function with no ONNX operator here",
    "log_softmax": "a row-wise function not exported",
    "sparsemax": "a row-wise function (a sort) not exported",
}


def _activation(g, name, x, dtype, semantics, where):
    """ONNX operators computing activation ``name`` (Keras 3's formulas, Keras 2's
    hard_sigmoid under ``semantics="keras2"``) of x, as :mod:`minirnn.activations`."""
    name = _activations.canonical(name)
    c = lambda v: g.scalar(v, dtype)  # noqa: E731
    if name in _NO_GRAPH:
        raise _refuse(where, f"activation {name!r} is {_NO_GRAPH[name]}")
    if name == "gelu" and np.dtype(dtype) == np.float64:
        raise _refuse(where, "activation 'gelu' needs Erf, which ONNX Runtime has for "
                      "float32 only")
    if name == "linear":
        return x
    simple = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "exponential": "Exp",
              "softsign": "Softsign"}
    if name in simple:
        return g.op(simple[name], [x], name)
    if name == "hard_sigmoid":
        if semantics == "keras2":   # clip(0.2 x + 0.5, 0, 1), TensorFlow's order
            y = g.op("Add", [g.op("Mul", [x, c(0.2)]), c(0.5)])
            return g.op("Min", [g.op("Max", [y, c(0)]), c(1)], "hard_sigmoid")
        return g.op("Div", [g.op("Min", [g.op("Relu", [g.op("Add", [x, c(3)])]), c(6)]),
                            c(6)], "hard_sigmoid")  # relu6(x + 3) / 6
    if name == "relu6":
        return g.op("Min", [g.op("Relu", [x]), c(6)], "relu6")
    if name == "hard_tanh":
        return g.op("Min", [g.op("Max", [x, c(-1)]), c(1)], "hard_tanh")
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], "leaky_relu", alpha=_activations.LEAKY_RELU_ALPHA)
    if name in ("elu", "selu", "celu"):
        negative = g.op("Sub", [g.op("Exp", [g.op("Min", [x, c(0)])]), c(1)])
        if name == "elu":    # x if x > 0 else exp(x) - 1 (ONNX Runtime's Elu: float only)
            return g.op("Where", [g.op("Greater", [x, c(0)]), x, negative], "elu")
        if name == "celu":   # max(x, 0) + expm1(min(x, 0))
            return g.op("Add", [g.op("Relu", [x]), negative], "celu")
        inner = g.op("Where", [g.op("Greater", [x, c(0)]), x,
                               g.op("Mul", [c(_activations._SELU_ALPHA), negative])])
        return g.op("Mul", [c(_activations._SELU_SCALE), inner], "selu")
    if name in ("softplus", "mish", "log_sigmoid"):
        source = g.op("Neg", [x]) if name == "log_sigmoid" else x
        # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), never overflowing
        soft = g.op("Add", [g.op("Relu", [source]), g.op("Log", [g.op("Add", [
            c(1), g.op("Exp", [g.op("Neg", [g.op("Abs", [source])])])])])], "softplus")
        if name == "softplus":
            return soft
        if name == "log_sigmoid":
            return g.op("Neg", [soft], "log_sigmoid")
        return g.op("Mul", [x, g.op("Tanh", [soft])], "mish")
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])], "silu")
    if name == "hard_silu":
        return g.op("Mul", [x, _activation(g, "hard_sigmoid", x, dtype, "keras3", where)],
                    "hard_silu")
    if name == "tanh_shrink":
        return g.op("Sub", [x, g.op("Tanh", [x])], "tanh_shrink")
    if name == "squareplus":
        root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x]), c(4)])])
        return g.op("Div", [g.op("Add", [x, root]), c(2)], "squareplus")
    if name == "gelu":   # x / 2 * erfc(-x / sqrt 2) = x / 2 * (1 + erf(x / sqrt 2))
        erf = g.op("Erf", [g.op("Mul", [x, c(_activations.GELU_SQRT_HALF)])])
        return g.op("Mul", [g.op("Mul", [c(0.5), x]), g.op("Add", [c(1), erf])], "gelu")
    if name == "softmax":
        return g.op("Softmax", [x], "softmax", axis=-1)
    raise _refuse(where, f"activation {name!r} has no ONNX graph here")


# ---- recurrent layers ------------------------------------------------------------------

def _cell(layer):
    if isinstance(layer, LSTM):
        return "LSTM"
    if isinstance(layer, GRU):
        return "GRU"
    if isinstance(layer, SimpleRNN):
        return "RNN"
    raise TypeError(f"not a minirnn recurrent layer: {type(layer).__name__}")


def _semantics(layer):
    return getattr(layer, "keras_semantics", "keras3")


def _native_activations(layer):
    """The node's activations attributes, or None where the node cannot compute them."""
    cell, semantics = _cell(layer), _semantics(layer)
    names = {"LSTM": [layer.recurrent_activation, layer.activation, layer.activation],
             "GRU": [layer.recurrent_activation, layer.activation],
             "RNN": [layer.activation]}[cell]
    chosen = []
    for k, name in enumerate(names):
        if name == "hard_sigmoid":
            # alpha/beta lists are read in order; keep HardSigmoid as a prefix so that
            # "one entry per activation" and "one per parametrised one" agree.
            if any(n != "hard_sigmoid" for n in names[:k]):
                return None
            chosen.append(_NATIVE_HARD_SIGMOID[semantics])
        elif name in _NATIVE:
            chosen.append(_NATIVE[name])
        else:
            return None
    attributes = {"activations": [a for a, _, _ in chosen]}
    alphas = [a for _, a, _ in chosen if a is not None]
    if alphas:
        attributes["activation_alpha"] = alphas
        attributes["activation_beta"] = [b for _, _, b in chosen if b is not None]
    return attributes


class _Run:
    """What one direction of a recurrent layer gives: the outputs (B, T, M) in
    processed order, the last output (B, M), the final states [h] or [h, c]."""

    def __init__(self, sequence, last, states):
        self.sequence, self.last, self.states = sequence, last, states


def _recurrent_node(g, layer, x, states, where):
    """The ONNX LSTM / GRU / RNN node of an unmasked float32 layer."""
    cell = _cell(layer)
    M = layer.units
    arrays, attributes = recurrent_weights(cell, layer.kernel, layer.recurrent_kernel,
                                           layer.bias, getattr(layer, "reset_after", True))
    names = {k: g.const(v.astype(layer.dtype), f"{layer_name(layer)}_{k}")
             for k, v in arrays.items()}
    x_time = g.op("Transpose", [x], "x_time_major", perm=[1, 0, 2])
    inputs = [x_time, names["W"], names["R"], names["B"]]
    if states is not None:
        inputs += [""] + [g.unsqueeze(s, [0], "initial") for s in states]
    n_out = 3 if cell == "LSTM" else 2
    outs = g.op(cell, inputs, cell.lower(), outputs=n_out, hidden_size=M, layout=0,
                direction="reverse" if layer.go_backwards else "forward",
                **attributes, **_native_activations(layer))
    y = g.op("Transpose", [g.squeeze(outs[0], [1])], "sequence", perm=[1, 0, 2])
    if layer.go_backwards:   # Y is aligned with the input steps: Keras' is processed order
        y = g.reverse_time(y, 1, "sequence")
    final = [g.squeeze(s, [0], "state") for s in outs[1:]]
    return _Run(y, final[0], final)


def layer_name(layer):
    return getattr(layer, "name", None) or type(layer).__name__.lower()


def _recurrent_scan(g, layer, x, mask, states, where, first_output=None):
    """A Scan of the layer's step (module docstring): any dtype, mask, activation.
    ``first_output``: the "last output" before the first step (default zeros; a
    streaming graph starts it at the h carried in)."""
    from onnx import helper
    cell, dtype, M = _cell(layer), layer.dtype, layer.units
    semantics = _semantics(layer)
    base = layer_name(layer)
    kernel = g.const(np.asarray(layer.kernel, dtype), f"{base}_kernel")
    G = _GATES[cell]
    reset_after = getattr(layer, "reset_after", True)
    bias = None if layer.bias is None else np.asarray(layer.bias, dtype)
    projected = g.op("MatMul", [x, kernel], "xw")
    if bias is not None:
        input_bias = bias[0] if cell == "GRU" and reset_after else bias
        projected = g.op("Add", [projected, g.const(input_bias, f"{base}_bias")], "xw")
    U = np.asarray(layer.recurrent_kernel, dtype)
    if states is None:
        states = [g.rows_of_zeros(x, M, dtype, "initial_state")
                  for _ in range(2 if cell == "LSTM" else 1)]
    zero_output = g.rows_of_zeros(x, M, dtype, "initial_output") if first_output is None \
        else first_output

    body = _Graph(g.opset, prefix=f"{base}_step_")
    c = lambda v: body.scalar(v, dtype)  # noqa: E731
    state_names = ["h", "c"] if cell == "LSTM" else ["h"]
    ins = {n: body.name(f"{n}_in") for n in state_names + ["out", "xw"]}
    if mask is not None:
        ins["m"] = body.name("m_in")
    h = ins["h"]
    act = lambda v: _activation(body, layer.activation, v, dtype, semantics, where)  # noqa
    rec = lambda v: _activation(body, layer.recurrent_activation, v, dtype, semantics,  # noqa
                                where)
    if cell == "LSTM":
        z = body.op("Add", [ins["xw"], body.op("MatMul", [h, body.const(U, "U")])], "z")
        z_i, z_f, z_g, z_o = body.split(z, [M] * 4, axis=1)
        i, f, gg, o = rec(z_i), rec(z_f), act(z_g), rec(z_o)
        new_c = body.op("Add", [body.op("Mul", [f, ins["c"]]), body.op("Mul", [i, gg])], "c")
        new = {"h": body.op("Mul", [o, act(new_c)], "h"), "c": new_c}
    elif cell == "GRU":
        x_z, x_r, x_h = body.split(ins["xw"], [M] * 3, axis=1)
        if reset_after:
            u = body.op("MatMul", [h, body.const(U, "U")])
            if bias is not None:
                u = body.op("Add", [u, body.const(bias[1], "recurrent_bias")])
            u_z, u_r, u_h = body.split(u, [M] * 3, axis=1)
            z = rec(body.op("Add", [x_z, u_z]))
            r = rec(body.op("Add", [x_r, u_r]))
            hh = act(body.op("Add", [x_h, body.op("Mul", [r, u_h])]))
        else:
            u_z, u_r = body.split(body.op("MatMul", [h, body.const(U[:, :2 * M], "U_zr")]),
                                  [M, M], axis=1)
            z = rec(body.op("Add", [x_z, u_z]))
            r = rec(body.op("Add", [x_r, u_r]))
            hh = act(body.op("Add", [x_h, body.op("MatMul", [body.op("Mul", [r, h]),
                                                            body.const(U[:, 2 * M:], "U_h")])]))
        kept = body.op("Mul", [z, h])
        fresh = body.op("Mul", [body.op("Sub", [c(1), z]), hh])
        new = {"h": body.op("Add", [kept, fresh], "h")}
    else:
        new = {"h": act(body.op("Add", [ins["xw"], body.op("MatMul", [h, body.const(U, "U")])]))}
    if mask is None:
        held = dict(new)
        out = new["h"]
    else:
        keep = body.unsqueeze(ins["m"], [1], "keep")
        held = {n: body.op("Where", [keep, new[n], ins[n]], n) for n in state_names}
        previous = c(0) if layer.zero_output_for_mask else ins["out"]
        out = body.op("Where", [keep, new["h"], previous], "out")
    results = [body.op("Identity", [held[n]], f"{n}_out") for n in state_names]
    results += [body.op("Identity", [out], "out_out"), body.op("Identity", [out], "y")]
    body_inputs = [_value_info(ins[n], dtype, ["batch", M]) for n in state_names + ["out"]]
    body_inputs.append(_value_info(ins["xw"], dtype, ["batch", G * M]))
    if mask is not None:
        body_inputs.append(_value_info(ins["m"], np.bool_, ["batch"]))
    body_outputs = [_value_info(r, dtype, ["batch", M]) for r in results]
    body_graph = helper.make_graph(body.nodes, f"{base}_step", body_inputs, body_outputs,
                                   body.initializers)
    scan_inputs = [projected] + ([mask] if mask is not None else [])
    n_scan = len(scan_inputs)
    direction = 1 if layer.go_backwards else 0
    outs = g.op("Scan", list(states) + [zero_output] + scan_inputs, f"{base}_scan",
                outputs=len(results), body=body_graph, num_scan_inputs=n_scan,
                scan_input_axes=[1] * n_scan, scan_input_directions=[direction] * n_scan,
                scan_output_axes=[1], scan_output_directions=[0])
    final = outs[:len(state_names)]
    return _Run(outs[-1], outs[len(state_names)], final)


def _direction(g, layer, x, mask, states, where, streaming=False):
    """One recurrent layer (one direction) on x, with the graph that fits it.
    ``streaming``: one slice of a stream, the states carried in (``states``) and the
    "last output" of masked steps starting at the h carried in."""
    if layer.stateful and not streaming:
        raise _refuse(where, "it is stateful: its states live between calls, outside any "
                      "graph (export the model with streaming=True, or the layer with "
                      "stateful=False, to pass the states as inputs and outputs)")
    if mask is None and np.dtype(layer.dtype) == np.float32 and \
            _native_activations(layer) is not None:
        return _recurrent_node(g, layer, x, states, where)
    first_output = states[0] if streaming else None
    return _recurrent_scan(g, layer, x, mask, states, where, first_output)


def _recurrent(g, layer, x, mask, states, where):
    """The outputs of a recurrent layer as it returns them: [output, *states] (a list
    in every case; merge_mode None gives [forward, backward, *states])."""
    if isinstance(layer, Bidirectional):
        forward, backward = layer.forward_layer, layer.backward_layer
        n = len(forward._state_names)
        front, back = (None, None) if states is None else (states[:n], states[n:])
        y = _direction(g, forward, x, mask, front, where)
        y_rev = _direction(g, backward, x, mask, back, where)
        if layer.return_sequences:
            a, b = y.sequence, g.reverse_time(y_rev.sequence, 1, "backward_aligned")
        else:
            a, b = y.last, y_rev.last
        if np.dtype(forward.dtype) != np.dtype(layer.dtype):
            a = g.op("Cast", [a], "merged_dtype", to=_element(layer.dtype))
            b = g.op("Cast", [b], "merged_dtype", to=_element(layer.dtype))
        mode = layer.merge_mode
        if mode == "concat":
            merged = [g.op("Concat", [a, b], "concat", axis=-1)]
        elif mode == "sum":
            merged = [g.op("Add", [a, b], "sum")]
        elif mode == "mul":
            merged = [g.op("Mul", [a, b], "mul")]
        elif mode == "ave":
            merged = [g.op("Div", [g.op("Add", [a, b]), g.scalar(2, layer.dtype)], "ave")]
        else:
            merged = [a, b]
        final = y.states + y_rev.states if layer.return_state else []
        return merged + final
    run = _direction(g, layer, x, mask, states, where)
    output = run.sequence if layer.return_sequences else run.last
    return [output] + (run.states if layer.return_state else [])


# ---- a layer on its own -------------------------------------------------------------------

def _layer_graph(layer, opset, initial_state, mask):
    """(graph, input names, output names, example feed) of a layer on its own."""
    from onnx import helper
    recurrent = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    if not recurrent.built:
        raise ValueError("the layer has no weights yet: call it once or set_weights first")
    dtype, D = recurrent.dtype, recurrent.kernel.shape[0]
    g = _Graph(opset)
    g.inputs.append(_value_info("x", dtype, ["batch", "timesteps", D]))
    g._used.add("x")
    state_inputs = None
    if initial_state:
        sides = [layer.forward_layer, layer.backward_layer] if isinstance(
            layer, Bidirectional) else [layer]
        state_inputs = []
        for side_name, side in zip(["forward_", "backward_"] if len(sides) == 2 else [""],
                                   sides):
            for n in side._state_names:
                name = f"initial_{side_name}{n}"
                g._used.add(name)
                g.inputs.append(_value_info(name, dtype, ["batch", side.units]))
                state_inputs.append(name)
    mask_input = None
    if mask:
        mask_input = "mask"
        g._used.add("mask")
        g.inputs.append(_value_info("mask", np.bool_, ["batch", "timesteps"]))
    where = f"layer {layer_name(layer)!r} ({type(layer).__name__})"
    outputs = _recurrent(g, layer, "x", mask_input, state_inputs, where)
    names = _layer_output_names(layer)
    for value, name in zip(outputs, names):
        g.nodes.append(helper.make_node("Identity", [value], [name], name=f"output_{name}"))
    return g, [v.name for v in g.inputs], names


def _n_states(layer):
    if not layer.return_state:
        return 0
    if isinstance(layer, Bidirectional):
        return len(layer.forward_layer._state_names) + len(layer.backward_layer._state_names)
    return len(layer._state_names)


def _layer_output_names(layer):
    if isinstance(layer, Bidirectional):
        outputs = ["forward_output", "backward_output"] if layer.merge_mode is None \
            else ["output"]
        if layer.return_state:
            outputs += [f"{side}_{n}" for side, sub in (("forward", layer.forward_layer),
                                                        ("backward", layer.backward_layer))
                        for n in sub._state_names]
        return outputs
    return ["output"] + ([f"{n}" for n in layer._state_names] if layer.return_state else [])


def _layer_examples(layer, initial_state, mask, seed=0):
    """Feeds for the check: odd sizes, a batch of 3 and of 1, random states and mask."""
    recurrent = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    dtype, D = recurrent.dtype, recurrent.kernel.shape[0]
    rng = np.random.default_rng(seed)
    feeds = []
    for B, T in ((3, 5), (1, 1), (2, 7)):
        feed = {"x": rng.standard_normal((B, T, D)).astype(dtype)}
        if initial_state:
            sides = [layer.forward_layer, layer.backward_layer] if isinstance(
                layer, Bidirectional) else [layer]
            for side_name, side in zip(["forward_", "backward_"] if len(sides) == 2
                                       else [""], sides):
                for n in side._state_names:
                    feed[f"initial_{side_name}{n}"] = \
                        rng.standard_normal((B, side.units)).astype(dtype)
        if mask:
            m = np.ones((B, T), bool)
            m[1::2, max(1, T - T // 3):] = False       # padding at the end
            if T > 3:
                m[0, 2] = False                         # and a hole
            feed["mask"] = m
        feeds.append(feed)
    return feeds


def _run_layer(layer, feed, initial_state, mask):
    states = None
    if initial_state:
        states = [v for k, v in feed.items() if k.startswith("initial_")]
    result = layer(feed["x"], mask=feed.get("mask"), initial_state=states)
    return result if isinstance(result, list) else [result]


# ---- whole models ----------------------------------------------------------------------------

def _streaming_plan(model):
    """The model's own streaming plan (:class:`minirnn.streaming.Streaming`), or the
    ValueError naming the first layer that cannot run on slices, and why."""
    from ..streaming import Streaming
    try:
        return Streaming(model)
    except ValueError as error:
        raise ValueError(f"the model cannot be exported for streaming: {error}") from None


class _Carried:
    """The values a streaming graph carries between calls: for each, the layer, the
    graph input (the value before the slice) and output (after it)."""

    def __init__(self, g):
        self.g = g
        self.pairs, self._hints = [], []

    def take(self, layer, state, hint, dtype, shape):
        """A new graph input ``<hint>_in``: the value ``state`` ("h", "c" or "past")
        of ``layer`` before the slice."""
        name = self.g.name(f"{hint}_in")
        self.g.inputs.append(_value_info(name, dtype, shape))
        self.pairs.append({"layer": layer, "state": state, "input": name, "output": None})
        self._hints.append(hint)
        return name

    def give(self, value, index):
        """The value after the slice, as ``<hint>_out``, paired with input ``index``."""
        from onnx import helper
        pair = self.pairs[index]
        name = self.g.name(f"{self._hints[index]}_out")
        self.g.nodes.append(helper.make_node("Identity", [value], [name],
                                             name=f"output_{name}"))
        pair["output"] = name


def _streaming_recurrent(g, runner, step, x, mask, carried, where):
    """A recurrent layer on one slice: its states carried in and out. Returns the
    layer's outputs as it returns them."""
    layer = runner.layer
    suffix = "" if step.index == 0 else f"_{step.index}"
    first = len(carried.pairs)
    states = [carried.take(step.spec.name, n, f"{step.spec.name}{suffix}_{n}", layer.dtype,
                           ["batch", layer.units]) for n in layer._state_names]
    run = _direction(g, layer, x, mask, states, where, streaming=True)
    for k, value in enumerate(run.states):
        carried.give(value, first + k)
    output = run.sequence if layer.return_sequences else run.last
    return [output] + (list(run.states) if layer.return_state else [])


def _streaming_conv1d(g, block, step, x, carried, where):
    """A causal Conv1D on one slice: y = Conv(Concat(past, x)) unpadded, and the
    last (kernel_size - 1) dilation_rate steps of that Concat carried out."""
    if type(block) is not _blocks.Conv1D:
        raise _refuse(where, f"{block.keras_class} is not exported")
    keep = (block.kernel_size - 1) * block.dilation_rate
    suffix = "" if step.index == 0 else f"_{step.index}"
    channels = int(np.shape(block.weights[0])[1])
    past = carried.take(step.spec.name, "past", f"{step.spec.name}{suffix}_past",
                        block.dtype, ["batch", keep, channels])
    joined = g.op("Concat", [past, _cast_in(g, block, x)], "joined", axis=1)
    carried.give(g.op("Slice", [joined, g.ints([-keep]), g.ints([_INT64_MAX]),
                                g.ints([1])], "past"), len(carried.pairs) - 1)
    return _convolve(g, block, joined, {"pads": [0, 0]}, where), None


def _model_graph(model, opset, streaming=False):
    """(graph, output names, carried pairs) of a minirnn Model: its walk, written as
    ONNX operators; ``streaming``: one slice of a stream, what the layers carry from
    slice to slice as extra inputs and outputs (pairs: see :func:`streaming_states`)."""
    from onnx import helper
    from .. import graph as graphs
    from ..mask_operations import MaskOperation
    from ..recurrent import RecurrentNode, StackedRNN
    plan = _streaming_plan(model) if streaming else None
    g = _Graph(opset)
    carried = _Carried(g)
    store = {}
    for ref, spec in zip(model._graph.inputs, model.input_specs):
        name = g.name(spec["name"])
        declared, dtype = _input_dtypes(spec)
        shape = ["batch"] + [n if n is not None else f"{spec['name']}_dim{k + 1}"
                             for k, n in enumerate(spec["shape"][1:])]
        g.inputs.append(_value_info(name, declared, shape))
        if declared != dtype:  # e.g. uint8 token ids: the graph computes on int32
            name = g.op("Cast", [name], f"{spec['name']}_as_{dtype}", to=_element(dtype))
        store[graphs.Ref(ref.layer, 0, 0)] = (name, None)
    problems = []
    for step in model._order:
        runner, name = step.runner, step.spec.name
        where = f"layer {name!r} ({step.spec.class_name})"
        try:
            if isinstance(runner, MaskOperation):
                x = _lookup(step.x, store)
                x = [v[0] for v in x] if isinstance(x, list) else x[0]
                constants = [_lookup(c, store)[0] if graphs.refs_in(c) else c
                             for c in step.call.constants]
                store[graphs.Ref(name, step.index, 0)] = (_mask_operation(g, runner, x,
                                                                          constants), None)
                continue
            if step.arguments is not None:
                raise _refuse(where, "layers with call arguments (attention) are not "
                              "exported")
            values = _lookup(step.x, store)
            if isinstance(values, list):
                x, masks = [v[0] for v in values], [v[1] for v in values]
            else:
                x, masks = values
            if step.mask is not None:
                masks = _lookup(step.mask, store)[0] if not isinstance(step.mask, list) \
                    else [_lookup(m, store)[0] if m is not None else None for m in step.mask]
            unmasked = step.runs_unmasked(model.semantics)  # as Model._run
            if isinstance(runner, RecurrentNode):
                if isinstance(runner.layer, StackedRNN):
                    raise _refuse(where, "RNN(StackedRNNCells) is not exported")
                state = None if step.initial_state is None else \
                    [_lookup(s, store)[0] for s in step.initial_state]
                if plan is not None and step in plan.carries:
                    outputs = _streaming_recurrent(g, runner, step, x, masks, carried,
                                                   where)
                else:
                    outputs = _recurrent(g, runner.layer, x, None if unmasked else masks,
                                         state, where)
                out_masks = runner.compute_mask(None, masks)
            elif plan is not None and step in plan.carries:   # a causal convolution
                outputs, out_masks = _streaming_conv1d(g, runner, step, x, carried, where)
            else:
                outputs, out_masks = _block(g, runner, x, masks, where, model.semantics)
        except ValueError as error:
            problems.append(str(error))
            if len(problems) >= 8:
                break
            # a placeholder so that later layers can still be looked at
            outputs, out_masks = [None] * 8, None
        if not isinstance(outputs, list):
            outputs = [outputs]
        if not isinstance(out_masks, list):
            out_masks = [out_masks] * len(outputs)
        for k, (value, mask) in enumerate(zip(outputs, out_masks)):
            store[graphs.Ref(name, step.index, k)] = (value, mask)
    if problems:
        raise ValueError("the model cannot be exported to ONNX: " + "; ".join(
            dict.fromkeys(p for p in problems if "placeholder" not in p)))
    names = []
    for ref in model._graph.outputs:
        value = store[ref][0]
        name = ref.layer if ref.index == 0 and ref.node == 0 else \
            f"{ref.layer}_{ref.node}_{ref.index}"
        name = g.name(name)
        g.nodes.append(helper.make_node("Identity", [value], [name], name=f"output_{name}"))
        names.append(name)
    return g, names + [pair["output"] for pair in carried.pairs], carried.pairs


def _mask_operation(g, op, x, constants):
    """The operations Keras 3 records to compute masks (``not_equal(x, 0)``,
    ``any(..., axis)``, ...), as ONNX operators on bool tensors; a number constant
    takes x's element type (CastLike)."""
    where = f"operation {op.name!r} ({op.keras_class})"
    kind, config = op.keras_class, op.config

    def operand(value):
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)) and g.opset >= 15:
            return g.op("CastLike", [g.const(np.array(value, np.float64)), x])
        raise _refuse(where, f"its operand {str(value)[:40]} is not exported (opset >= 15 "
                      "needed for number operands)")

    def axes():
        axis = config.get("axis")
        return None if axis is None else ([axis] if isinstance(axis, int) else list(axis))

    if kind in ("NotEqual", "Equal"):
        same = g.op("Equal", [x, operand(constants[0])], "equal")
        return same if kind == "Equal" else g.op("Not", [same], "not_equal")
    if kind in ("Any", "All"):
        numbers = g.op("Cast", [x], to=_element(np.int32))
        reduce = "ReduceMax" if kind == "Any" else "ReduceMin"
        keep = bool(config.get("keepdims", False))
        if axes() is None:
            reduced = g.op(reduce, [numbers], keepdims=int(keep))
        else:
            reduced = g.reduce(reduce, numbers, axes(), keep)
        return g.op("Cast", [reduced], kind.lower(), to=_element(np.bool_))
    if kind in ("LogicalAnd", "LogicalOr"):
        return g.op("And" if kind == "LogicalAnd" else "Or", [x, operand(constants[0])])
    if kind == "LogicalNot":
        return g.op("Not", [x])
    if kind == "ExpandDims":
        return g.unsqueeze(x, axes() or [-1])
    if kind == "Squeeze" and axes() is not None:
        return g.squeeze(x, axes())
    if kind in ("Cast", "ConvertToTensor") and config.get("dtype") in ("bool", None):
        return x if config.get("dtype") is None else g.op("Cast", [x], to=_element(np.bool_))
    raise _refuse(where, "this mask operation is not exported")


def _lookup(value, store):
    from .. import graph as graphs
    if isinstance(value, graphs.Ref):
        found = store[value]
        if found[0] is None:
            raise ValueError("placeholder: reads a refused layer")
        return found
    if isinstance(value, list):
        return [_lookup(v, store) for v in value]
    raise ValueError(f"a constant input {str(value)[:40]} is not exported")


def _block(g, block, x, masks, where, semantics):
    """(outputs, output masks) of one non-recurrent layer, as ONNX operators."""
    kind = type(block).__name__
    export = _BLOCK_EXPORTS.get(kind)
    if isinstance(block, _blocks.Identity):
        export = _identity
    if export is None:
        raise _refuse(where, f"{block.keras_class} layers are not exported")
    return export(g, block, x, masks, where)


def _identity(g, block, x, mask, where):
    """Dropout family: y = x at inference. Mask: passes."""
    return x, mask


def _cast_in(g, block, x):
    return g.op("Cast", [x], "as_dtype", to=_element(block.dtype))


def _dense(g, block, x, mask, where):
    """y = activation(x W + b). Mask: passes."""
    y = g.op("MatMul", [_cast_in(g, block, x), g.const(block.weights[0], f"{block.name}_W")],
             "dense")
    if block.use_bias:
        y = g.op("Add", [y, g.const(block.weights[1], f"{block.name}_b")], "dense")
    return _activation(g, block.activation, y, block.dtype, block.semantics, where), mask


def _activation_block(g, block, x, mask, where):
    """y = activation(x). Mask: passes."""
    return _activation(g, block.activation, _cast_in(g, block, x), block.dtype,
                       block.semantics, where), mask


def _embedding(g, block, x, mask, where):
    """y = Gather(E, x) (floats truncated to integers, as Keras casts them).
    Mask: makes x != 0 with mask_zero."""
    index = g.op("Cast", [x], "index", to=_element(np.int64))
    y = g.op("Gather", [g.const(block.weights[0], f"{block.name}_E"), index], "embedding",
             axis=0)
    made = None
    if block.mask_zero:
        made = g.op("Not", [g.op("Equal", [index, g.ints(0, "zero")])], "mask")
    return y, made


def _masking(g, block, x, mask, where):
    """keep = any(x != v, axis=-1); y = x * keep. Mask: makes keep."""
    x = _cast_in(g, block, x)
    same = g.op("Cast", [g.op("Equal", [x, g.scalar(block.dtype_value(), block.dtype)])],
                "same", to=_element(block.dtype))
    keep = g.op("Sub", [g.scalar(1, block.dtype), g.reduce("ReduceMin", same, [-1])], "keep")
    y = g.op("Mul", [x, keep], "masked")
    made = g.op("Cast", [g.squeeze(keep, [-1])], "mask", to=_element(np.bool_))
    return y, made


def _time_distributed(g, block, x, mask, where):
    """TimeDistributed(layer) of a layer acting on the last axis only is that layer.
    Mask: passes."""
    inner = block.inner
    if type(inner).__name__ not in ("Dense", "Activation") and \
            not isinstance(inner, _blocks.Identity):
        raise _refuse(where, f"TimeDistributed({inner.keras_class}) is not exported")
    y, _ = _block(g, inner, x, None, where, block.semantics)
    return y, mask


def _merge(op_type):
    def export(g, block, xs, masks, where):
        """Element-wise merges of unmasked inputs, left to right; Add/Average/Subtract
        also where masks come (their values do not read them)."""
        xs = [_cast_in(g, block, v) for v in xs]
        has_masks = masks is not None and any(m is not None for m in masks)
        if has_masks and op_type not in ("Add", "Sub", "Average"):
            raise _refuse(where, f"{block.keras_class} of masked inputs is not exported")
        if op_type == "Sub" and len(xs) != 2:
            raise _refuse(where, "Subtract takes exactly 2 inputs")
        op = "Add" if op_type == "Average" else op_type
        y = xs[0]
        for v in xs[1:]:
            y = g.op(op, [y, v], op.lower())
        if op_type == "Average":
            y = g.op("Div", [y, g.scalar(len(xs), block.dtype)], "average")
        out_mask = None
        if has_masks:
            present = [m for m in masks if m is not None]
            if block.semantics == "keras2":
                out_mask = present[0]
                for m in present[1:]:
                    out_mask = g.op("And", [out_mask, m], "mask")
            elif len(present) == len(masks):
                out_mask = present[0]
                for m in present[1:]:
                    out_mask = g.op("Or", [out_mask, m], "mask")
        return y, out_mask
    return export


def _concatenate(g, block, xs, masks, where):
    """y = Concat(inputs, axis). Mask: refused where an input has one."""
    if masks is not None and any(m is not None for m in masks):
        raise _refuse(where, "Concatenate of masked inputs is not exported")
    xs = [_cast_in(g, block, v) for v in xs]
    return g.op("Concat", xs, "concat", axis=block.axis), None


def _flatten(g, block, x, mask, where):
    """(B, d1, d2, ...) -> (B, d1 d2 ...). Mask: drops."""
    return g.op("Flatten", [_cast_in(g, block, x)], "flatten", axis=1), None


def _reshape(g, block, x, mask, where):
    """(B, ...) -> (B, *target_shape); 0 copies the batch size. Mask: drops."""
    shape = g.ints([0, *block.target_shape], "target_shape")
    return g.op("Reshape", [_cast_in(g, block, x), shape], "reshape"), None


def _permute(g, block, x, mask, where):
    """Transpose by (0, *dims). Mask: drops."""
    return g.op("Transpose", [_cast_in(g, block, x)], "permute",
                perm=[0, *block.dims]), None


def _repeat_vector(g, block, x, mask, where):
    """(B, C) -> (B, n, C): Tile of the unsqueezed input. Mask: drops."""
    y = g.unsqueeze(_cast_in(g, block, x), [1])
    return g.op("Tile", [y, g.ints([1, block.n, 1], "repeats")], "repeat"), None


def _channels_first(g, x):
    return g.op("Transpose", [x], "channels_first", perm=[0, 2, 1])


def _conv1d(g, block, x, mask, where):
    """Conv over (B, C, T) with W (F, C, K) = kernel transposed; pads: valid none,
    causal (K - 1) d before, same as TensorFlow (SAME_UPPER: the extra step at the
    end). Then the bias and activation. Mask: drops."""
    if type(block) is not _blocks.Conv1D:
        raise _refuse(where, f"{block.keras_class} is not exported")
    span = (block.kernel_size - 1) * block.dilation_rate + 1
    padding = {"valid": {"pads": [0, 0]}, "causal": {"pads": [span - 1, 0]},
               "same": {"auto_pad": "SAME_UPPER"}}[block.padding]
    return _convolve(g, block, _cast_in(g, block, x), padding, where), None


def _convolve(g, block, x, padding, where):
    """activation(Conv(x) + b) of a (B, T, C) x already in the block's dtype, with
    the Conv padding attributes given."""
    if np.dtype(block.dtype) != np.float32:
        raise _refuse(where, f"ONNX Runtime's Conv has no {np.dtype(block.dtype).name} "
                      "kernel")
    kernel = np.ascontiguousarray(np.transpose(block.weights[0], (2, 1, 0)))
    inputs = [_channels_first(g, x), g.const(kernel, f"{block.name}_W")]
    if block.use_bias:
        inputs.append(g.const(block.weights[1], f"{block.name}_b"))
    y = g.op("Conv", inputs, "conv", kernel_shape=[block.kernel_size],
             strides=[block.strides], dilations=[block.dilation_rate], **padding)
    y = _channels_first(g, y)
    return _activation(g, block.activation, y, block.dtype, block.semantics, where)


def _pooling1d(op_type):
    def export(g, block, x, mask, where):
        """MaxPool / AveragePool over time (padding never counted). Mask: drops."""
        padding = {"auto_pad": "SAME_UPPER"} if block.padding == "same" else {}
        y = g.op(op_type, [_channels_first(g, _cast_in(g, block, x))], op_type.lower(),
                 kernel_shape=[block.pool_size], strides=[block.strides], **padding)
        return _channels_first(g, y), None
    return export


def _global_pooling1d(op_type):
    def export(g, block, x, mask, where):
        """Max or mean over time; the average with a mask: sum(m x) / sum(m).
        Mask: drops (consumed)."""
        x = _cast_in(g, block, x)
        if op_type == "ReduceMean" and mask is not None:
            keep = g.unsqueeze(mask, [2], "keep")
            zero = g.scalar(0, block.dtype)
            total = g.reduce("ReduceSum", g.op("Where", [keep, x, zero]), [1],
                             block.keepdims)
            count = g.reduce("ReduceSum", g.op("Cast", [keep], to=_element(block.dtype)),
                             [1], block.keepdims)
            return g.op("Div", [total, count], "average"), None
        return g.reduce(op_type, x, [1], block.keepdims, "pooled"), None
    return export


def _batch_normalization(g, block, x, mask, where):
    """y = x inv + shift, with inv and shift computed as minirnn computes them (from the
    moving statistics), so the graph holds the same two arrays. Mask: passes."""
    x = _cast_in(g, block, x)
    if block.axes != [-1]:
        raise _refuse(where, "normalisation over an axis other than the last is not "
                      "exported")
    inv, shift = block.scale_and_shift()
    y = g.op("Mul", [x, g.const(np.asarray(inv, block.dtype), f"{block.name}_inv")])
    return g.op("Add", [y, g.const(np.asarray(shift, block.dtype), f"{block.name}_shift")],
                "batch_normalization"), mask


def _layer_normalization(g, block, x, mask, where):
    """Over the last axis: inv = gamma / sqrt(var + eps); y = x inv + (beta - mu inv)
    (rms_scaling: x / sqrt(var + eps) gamma). Mask: passes."""
    if block.axes != [-1]:
        raise _refuse(where, "normalisation over axes other than the last alone is not "
                      "exported")
    x = _cast_in(g, block, x)
    dtype = block.dtype
    w = list(block.weights)
    gamma = g.const(w.pop(0), f"{block.name}_gamma") if block.scale else None
    beta = g.const(w.pop(0), f"{block.name}_beta") if block.center else None
    mean = g.reduce("ReduceMean", x, [-1], True, "mean")
    centred = g.op("Sub", [x, mean])
    variance = g.reduce("ReduceMean", g.op("Mul", [centred, centred]), [-1], True, "var")
    inv = g.op("Div", [g.scalar(1, dtype), g.op("Sqrt", [g.op("Add", [
        variance, g.scalar(block.dtype_epsilon(), dtype)])])], "inv")
    if block.rms_scaling:
        y = g.op("Mul", [x, inv])
        return (g.op("Mul", [y, gamma]) if gamma is not None else y), mask
    if gamma is not None:
        inv = g.op("Mul", [inv, gamma])
    shift = g.op("Neg", [g.op("Mul", [mean, inv])])
    if beta is not None:
        shift = g.op("Add", [shift, beta])
    return g.op("Add", [g.op("Mul", [x, inv]), shift], "layer_normalization"), mask


def _unit_normalization(g, block, x, mask, where):
    """y = x min(1 / sqrt(sum x^2), 1e12) (Keras 2: x / sqrt(max(sum x^2, 1e-12))), the
    sum over ``axis``. Mask: passes."""
    x = _cast_in(g, block, x)
    c = lambda v: g.scalar(v, block.dtype)  # noqa: E731
    square_sum = g.reduce("ReduceSum", g.op("Mul", [x, x]), list(block.axis), True,
                          "square_sum")
    if block.semantics == "keras2":
        inverse = g.op("Div", [c(1), g.op("Sqrt", [g.op("Max", [square_sum, c(1e-12)])])])
    else:
        inverse = g.op("Min", [g.op("Div", [c(1), g.op("Sqrt", [square_sum])]), c(1e12)])
    return g.op("Mul", [x, inverse], "unit_normalized"), mask


def _zero_padding1d(g, block, x, mask, where):
    """Pad p0 zero steps before and p1 after, along time. Mask: drops."""
    if block.data_format != "channels_last":
        raise _refuse(where, "channels_first padding is not exported")
    before, after = block.padding
    pads = g.ints([0, before, 0, 0, after, 0], "pads")
    return g.op("Pad", [_cast_in(g, block, x), pads], "padded", mode="constant"), None


def _cropping1d(g, block, x, mask, where):
    """x[:, c0 : T - c1]. Mask: drops."""
    start, end = block.cropping
    return g.op("Slice", [_cast_in(g, block, x), g.ints([start]), g.ints([-end if end else
                                                                          2**62]),
                          g.ints([1])], "cropped"), None


def _relu_block(g, block, x, mask, where):
    """ReLU with its defaults (or only a max_value): min(max(x, 0), max_value); the
    max_value float32-rounded under Keras 3 as its ops.cast does. Mask: passes."""
    if block.negative_slope != 0 or block.threshold != 0:
        raise _refuse(where, "ReLU with a negative_slope or threshold is not exported")
    y = g.op("Relu", [_cast_in(g, block, x)], "relu")
    if block.max_value is not None:
        value = block.max_value if block.semantics == "keras2" else \
            float(np.float32(block.max_value))
        y = g.op("Min", [y, g.scalar(value, block.dtype)], "relu")
    return y, mask


def _leaky_relu_block(g, block, x, mask, where):
    """LeakyReLU as TensorFlow's kernel: x where x > 0, else x * slope, the slope
    float32-rounded (written as Where, Greater and Mul, the same operations as
    minirnn's). Mask: passes."""
    x = _cast_in(g, block, x)
    slope = g.scalar(float(np.float32(block.negative_slope)), block.dtype)
    positive = g.op("Greater", [x, g.scalar(0.0, block.dtype)], "positive")
    return g.op("Where", [positive, x, g.op("Mul", [x, slope], "sloped")], "leaky_relu"), mask


def _softmax_block(g, block, x, mask, where):
    """Softmax over one axis of an unmasked input. Mask: passes."""
    if mask is not None or len(block.axis) != 1:
        raise _refuse(where, "Softmax with a mask or over several axes is not exported")
    return g.op("Softmax", [_cast_in(g, block, x)], "softmax", axis=block.axis[0]), mask


_BLOCK_EXPORTS = {
    "Dense": _dense, "Activation": _activation_block, "Embedding": _embedding,
    "Masking": _masking, "TimeDistributed": _time_distributed,
    "Add": _merge("Add"), "Subtract": _merge("Sub"), "Multiply": _merge("Mul"),
    "Average": _merge("Average"), "Maximum": _merge("Max"), "Minimum": _merge("Min"),
    "Concatenate": _concatenate, "Flatten": _flatten, "Reshape": _reshape,
    "Permute": _permute, "RepeatVector": _repeat_vector, "Conv1D": _conv1d,
    "MaxPooling1D": _pooling1d("MaxPool"), "AveragePooling1D": _pooling1d("AveragePool"),
    "GlobalMaxPooling1D": _global_pooling1d("ReduceMax"),
    "GlobalAveragePooling1D": _global_pooling1d("ReduceMean"),
    "BatchNormalization": _batch_normalization, "LayerNormalization": _layer_normalization,
    "UnitNormalization": _unit_normalization, "ZeroPadding1D": _zero_padding1d,
    "Cropping1D": _cropping1d, "ReLU": _relu_block, "LeakyReLU": _leaky_relu_block, "Softmax": _softmax_block,
}


# ---- the model, the check, the file --------------------------------------------------------

def _is_model(value):
    from ..model import Model
    return isinstance(value, Model)


def export_model(model_or_layer, opset=None, *, initial_state=False, mask=False,
                 streaming=None):
    """The checked ONNX model (an ``onnx.ModelProto``) of a minirnn layer or Model.

    For a layer, the graph's inputs are ``x`` (B, T, D), with ``initial_state=True``
    also ``initial_h`` (and ``initial_c``; ``initial_forward_h``, ... for a
    Bidirectional), with ``mask=True`` also ``mask`` (B, T) bool; its outputs are
    ``output`` and, with return_state, the states (``h``, ``c``; ``forward_h``, ...).
    A Model keeps its input names; its outputs are named after the layers that make
    them. ``streaming`` (models only; None: ``model.stateful``): the graph of one
    slice of a stream, with what the layers carry between slices as extra inputs and
    outputs (module docstring, "Streaming export"). Raises ValueError for what cannot
    be exported exactly (naming the layer, its class and why), ExportError if the
    check fails, ImportError without onnx or onnxruntime."""
    _require()
    import json
    from onnx import helper
    opset = OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in _OPSETS:
        raise ValueError(f"`opset` must be an integer from {_OPSETS[0]} to {_OPSETS[-1]}; "
                         f"received {opset!r}.")
    if streaming not in (None, True, False):
        raise TypeError(f"`streaming` must be True, False or None; received {streaming!r}.")
    pairs = None
    if _is_model(model_or_layer):
        if initial_state or mask:
            raise ValueError("`initial_state` and `mask` are for a layer on its own; a "
                             "model's graph takes the model's inputs.")
        if streaming is None:
            streaming = model_or_layer.stateful
        elif not streaming and model_or_layer.stateful:
            raise ValueError("the model is stateful: export it with streaming=True (what "
                             "its layers carry between calls as graph inputs and outputs), "
                             "or set model.stateful = False for the whole-sequence graph.")
        graph, outputs, pairs = _model_graph(model_or_layer, opset, streaming)
        title = "minirnn_streaming_model" if streaming else "minirnn_model"
    elif streaming:
        raise ValueError("`streaming` is for a whole Model; a layer on its own passes its "
                         "states with initial_state=True and return_state=True.")
    elif isinstance(model_or_layer, (LSTM, GRU, SimpleRNN, Bidirectional)):
        graph, _, outputs = _layer_graph(model_or_layer, opset, initial_state, mask)
        title = f"minirnn_{type(model_or_layer).__name__.lower()}"
    else:
        raise TypeError(f"`model_or_layer` must be a minirnn LSTM, GRU, SimpleRNN, "
                        f"Bidirectional or Model; received {type(model_or_layer).__name__}.")
    graph.outputs = [helper.make_tensor_value_info(name, 0, None) for name in outputs]
    proto = helper.make_model(
        helper.make_graph(graph.nodes, title, graph.inputs, graph.outputs,
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="minirnn")
    if streaming:
        helper.set_model_props(proto, {_STREAMING_KEY: json.dumps(pairs)})
    proto = _with_output_types(proto)
    check_export(proto, model_or_layer, initial_state=initial_state, mask=mask,
                 streaming=bool(streaming))
    return proto


def streaming_states(proto):
    """The carried values of a streaming export, as pairs ``{"layer", "state",
    "input", "output"}`` in graph order (state: "h", "c", or "past" for a causal
    Conv1D's past inputs): feed each output of one call to its input in the next
    (zeros before the first call). [] for a graph that is not a streaming export."""
    import json
    for prop in proto.metadata_props:
        if prop.key == _STREAMING_KEY:
            return json.loads(prop.value)
    return []


def _with_output_types(proto):
    """Output value infos with their element types, from ONNX's shape inference."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(proto)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    outputs = []
    for output in proto.graph.output:
        info = known.get(output.name)
        if info is not None and info.type.tensor_type.elem_type:
            outputs.append(info)
        else:
            outputs.append(output)
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    return proto


def check_export(proto, model_or_layer, *, initial_state=False, mask=False, feeds=None,
                 streaming=None):
    """onnx.checker, then ONNX Runtime against minirnn on example inputs; raises
    ExportError with the worst difference if any output is beyond tolerance.
    Returns the largest error seen per output dtype. ``streaming`` (None: whether
    ``proto`` lists carried values, :func:`streaming_states`): the graph of a
    streaming export, checked on sequences fed in slices (:func:`_check_streaming`;
    ``feeds`` is not used)."""
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(proto, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - the runtime's own exception types vary
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {error}") from None
    if streaming is None:
        streaming = bool(streaming_states(proto))
    if streaming:
        if not _is_model(model_or_layer):
            raise TypeError("a streaming graph is checked against a minirnn Model.")
        return _check_streaming(session, proto, model_or_layer)
    if feeds is None:
        if _is_model(model_or_layer):
            feeds = _model_feeds(model_or_layer, session)
        else:
            feeds = _layer_examples(model_or_layer, initial_state, mask)
    worst = {}
    for feed in feeds:
        if _is_model(model_or_layer):
            names = [n.name for n in session.get_inputs()]
            run = lambda: model_or_layer([feed[name] for name in names])  # noqa: E731
        else:
            run = lambda: _run_layer(model_or_layer, feed, initial_state, mask)  # noqa: E731
        expected = _as_list(run())
        got = _run_session(session, feed)
        if len(got) != len(expected):
            raise ExportError(f"the graph has {len(got)} outputs; minirnn gives "
                              f"{len(expected)}")
        spread = None
        for k, (ours, theirs) in enumerate(zip(expected, got)):
            try:
                _compare(f"output {k}", ours, theirs, worst)
            except ExportError:
                if np.asarray(ours).dtype != np.float32:
                    raise
                if spread is None:  # measured once per feed, where it is needed
                    spread = _rounding_spread(model_or_layer, run, expected)
                _compare(f"output {k}", ours, theirs, worst, spread[k])
    return worst


def _as_list(result):
    return result if isinstance(result, list) else [result]


# How far, in units of the model's own rounding spread, a float32 result may land from
# minirnn's and still count as rounding: the factor of minirnn verify's rule for
# ill-conditioned cases.
AS_CLOSE = 4


def _weight_holders(model_or_layer):
    """The layers whose weights :func:`_rounding_spread` nudges."""
    layers = model_or_layer.layers if _is_model(model_or_layer) else [model_or_layer]
    return [layer for layer in layers if hasattr(layer, "get_weights")
            and hasattr(layer, "set_weights") and layer.get_weights()]


def _nudge(array, rng):
    """A float32 array moved one unit in the last place, up or down at random."""
    array = np.asarray(array)
    if array.dtype != np.float32:
        return array
    direction = np.where(rng.random(array.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
    return np.nextafter(array, direction)


def _rounding_spread(model_or_layer, run, expected, tries=2):
    """How far float32 rounding alone moves each output of this model, element by
    element: the largest change of the outputs when every float32 weight moves one
    unit in the last place (random signs, ``tries`` draws). A graph that computes the
    same maths in another order of operations (ONNX Runtime's kernels have their own
    sums and activations) differs from minirnn's float32 result by rounding errors of
    this size, amplified as much; a graph that computes something else differs by far
    more. The weights are restored afterwards."""
    holders = _weight_holders(model_or_layer)
    originals = [holder.get_weights() for holder in holders]
    spread = [np.zeros(np.shape(e)) for e in expected]
    try:
        for seed in range(tries):
            rng = np.random.default_rng(seed)
            for holder, weights in zip(holders, originals):
                holder.set_weights([_nudge(w, rng) for w in weights])
            for k, (moved, base) in enumerate(zip(_as_list(run()), expected)):
                spread[k] = np.maximum(spread[k], np.abs(np.asarray(moved, np.float64) - base))
    finally:
        for holder, weights in zip(holders, originals):
            holder.set_weights(weights)
    return spread


def _run_session(session, feed):
    try:
        return session.run(None, feed)
    except Exception as error:  # noqa: BLE001 - the runtime's own exception types vary
        raise ExportError(f"ONNX Runtime cannot run the exported graph: "
                          f"{str(error).strip().splitlines()[-1]}") from None


def _compare(what, ours, theirs, worst, spread=None):
    """ExportError unless ONNX Runtime's ``theirs`` is minirnn's ``ours`` within the
    dtype's bound (same shape, dtype and NaNs); records the largest error in
    ``worst`` (by dtype name).

    With ``spread`` (float32: how far rounding alone moves each element, see
    :func:`_rounding_spread`) the bound grows by ``AS_CLOSE`` times the output's
    largest spread: an ill-conditioned model, whose float32 results in any order of
    operations land that far apart (two draws of one-ulp changes estimate the size,
    not where in the output it shows). Such a match is recorded as ``worst["float32, ill-conditioned"]``."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        raise ExportError(f"{what}: ONNX Runtime gives {theirs.dtype} {theirs.shape}; "
                          f"minirnn {ours.dtype} {ours.shape}")
    tolerance = _TOLERANCE.get(ours.dtype.name, 0)
    error = np.abs(theirs.astype(np.float64) - ours)
    bound = tolerance + tolerance * np.abs(ours)
    if spread is not None:  # the output's largest: the model's conditioning, not one element's
        bound = bound + AS_CLOSE * float(np.nanmax(spread)) if np.size(spread) else bound
    if not np.all(error <= bound) or not np.array_equal(np.isnan(ours), np.isnan(theirs)):
        detail = "" if ours.dtype != np.float32 else (
            " (float32 rounding grows over long sequences; a float64 model, "
            "minirnn.load_model(path, dtype='float64'), is checked to 1e-12)")
        if spread is not None:
            detail = (f", beyond {AS_CLOSE} times what float32 rounding alone moves this "
                      f"model's outputs (up to {np.nanmax(spread):.3g} for a one-ulp change "
                      "of the weights)")
        raise ExportError(
            f"{what}: ONNX Runtime's result differs from minirnn's by up to "
            f"{np.nanmax(error):.3g} ({ours.dtype.name}: allowed {tolerance:g} abs + "
            f"{tolerance:g} rel){detail}; the graph is not written")
    if error.size:
        key = ours.dtype.name if spread is None else f"{ours.dtype.name}, ill-conditioned"
        worst[key] = max(worst.get(key, 0.0), float(np.nanmax(error)))


def _model_feeds(model, session):
    """The check's inputs: the model's example inputs (padded where an input masks,
    at the end of rows and in their middle; and unpadded), in each input's declared
    dtype, and once more with zeros in some float time steps, so that a mask a graph
    computes from float inputs (``not_equal(x, 0)`` and the like) is exercised too."""
    names = [i.name for i in session.get_inputs()]
    feeds = []
    for padding, batch in (("end", 4), ("middle", 3), (None, 1), ("zeros", 3)):
        arrays = model.example_inputs(batch_size=batch, padding=None if padding == "zeros"
                                      else padding, seed=len(feeds))
        arrays = [np.asarray(a).astype(_input_dtypes(spec)[0], copy=False)
                  for a, spec in zip(arrays, model.input_specs)]
        if padding == "zeros":
            arrays = [_zero_steps(a) for a in arrays]
        feeds.append(dict(zip(names, arrays)))
    return feeds


def _zero_steps(x):
    """A float input with time steps (rank 3 or more) with whole steps set to zero: the
    last two of row 0, the first of row 1; other inputs as they are."""
    if x.dtype.kind != "f" or x.ndim < 3 or x.shape[1] < 3:
        return x
    x = x.copy()
    x[0, -2:] = 0
    if x.shape[0] > 1:
        x[1, :1] = 0
    return x


def _check_streaming(session, proto, model):
    """A streaming graph against minirnn's stateful model fed the same slices.

    Each example of :data:`_STREAMING_EXAMPLES` (a model whose input has a fixed
    number of steps L: two slices of L) is fed slice by slice to both, the carried
    values threaded from one ONNX Runtime call into the next (zeros before the
    first); the model's outputs after every slice are compared. The carried values
    are checked through them: every example has two slices or more, and each slice
    after the first starts from what the one before carried out. (They are not
    compared one by one: an LSTM's c is not squashed, and over a long float32 slice
    its rounding alone can pass 1e-6 relative while every output stays within it.)
    The model is made stateful for the check and given back as it was, its states
    included."""
    pairs = streaming_states(proto)
    plan = _streaming_plan(model)
    inputs = session.get_inputs()
    n_inputs = len(inputs) - len(pairs)
    input_names = [i.name for i in inputs[:n_inputs]]
    output_names = [o.name for o in session.get_outputs()]
    n_outputs = len(output_names) - len(pairs)
    carried_shapes = {i.name: (i.shape, np.float64 if "double" in i.type else np.float32)
                      for i in inputs[n_inputs:]}
    fixed = {spec["shape"][1] for spec, timed in zip(model.input_specs, plan.input_timed)
             if timed and spec["shape"][1] is not None}
    was_stateful = model.stateful
    saved = model._carried() if was_stateful else None
    worst = {}
    try:
        for seed, (batch, padding, steps, cuts) in enumerate(_STREAMING_EXAMPLES):
            if fixed:   # slices of exactly L steps: two of them
                steps = max(fixed)
                cuts = (steps, steps)
                first, second = (model.example_inputs(batch, steps, seed + k, padding)
                                 for k in (0, 1))
                arrays = [np.concatenate([a, b], axis=1) if timed else a
                          for a, b, timed in zip(first, second, plan.input_timed)]
            else:
                arrays = model.example_inputs(batch, steps, seed, padding)
            model.stateful = True   # zero states, the batch size free again
            carry = {name: np.zeros([batch if isinstance(n, str) or n is None else n
                                     for n in shape], dtype)
                     for name, (shape, dtype) in carried_shapes.items()}
            start = 0
            for length in cuts:
                part = [np.ascontiguousarray(a[:, start:start + length]) if timed else a
                        for a, timed in zip(arrays, plan.input_timed)]
                where = f"(batch {batch}, steps {start}:{start + length})"
                expected = model(part)
                expected = expected if isinstance(expected, list) else [expected]
                got = _run_session(session, {**dict(zip(input_names, part)), **carry})
                for name, ours, theirs in zip(output_names, expected, got[:n_outputs]):
                    _compare(f"output {name!r} {where}", ours, theirs, worst)
                for pair, value in zip(pairs, got[n_outputs:]):
                    carry[pair["input"]] = value
                start += length
    finally:
        model.stateful = was_stateful
        if was_stateful:
            model._restore(saved)
    return worst


def to_onnx(model_or_layer, path, opset=None, *, initial_state=False, mask=False,
            streaming=None):
    """Write a minirnn layer or Model as an ONNX file at ``path``, checked first.

    Args:
        model_or_layer: minirnn.LSTM, GRU, SimpleRNN, Bidirectional (with weights), or
            a minirnn.Model (``minirnn.load_model(...)``).
        path: the .onnx file to write (nothing is written if the check fails).
        opset: the ONNX opset (default :data:`OPSET`, 17).
        initial_state: (layers) the initial states as graph inputs.
        mask: (layers) a (B, T) bool ``mask`` input; the layer is written as a Scan.
        streaming: (models) True: the graph of one slice of a stream, each recurrent
            layer's states (``<layer>_h_in``, ``<layer>_c_in`` -> ``<layer>_h_out``,
            ``<layer>_c_out``) and each causal Conv1D's past inputs
            (``<layer>_past_in`` -> ``<layer>_past_out``) as extra inputs and outputs,
            fed by the caller from one call into the next (zeros to start); a layer
            that cannot stream is refused, named. None (default): as
            ``model.stateful``. False: the whole-sequence graph (a stateful model is
            refused).

    Returns:
        the onnx.ModelProto written.
    """
    proto = export_model(model_or_layer, opset, initial_state=initial_state, mask=mask,
                         streaming=streaming)
    with open(path, "wb") as handle:
        handle.write(proto.SerializeToString())
    return proto
