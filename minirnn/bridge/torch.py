"""PyTorch's recurrent modules as minirnn layers, and minirnn layers as PyTorch modules.

``from_torch(module)`` copies a ``torch.nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` into minirnn
layers that compute what the module computes; ``to_torch(layer)`` goes the other way;
``run_like_torch(layers, x, hx)`` calls the copied layers with torch's arguments and
returns torch's structure, ``output, h_n`` (``output, (h_n, c_n)`` for an LSTM).

The two libraries write the same equations with the weights arranged differently
(M units, D input features; torch calls M ``hidden_size``)::

    Keras / minirnn                         PyTorch
    kernel W            (D, G*M)            weight_ih_l{k} = W^T    (G*M, D)
    recurrent_kernel U  (M, G*M)            weight_hh_l{k} = U^T    (G*M, M)
    LSTM bias b   (4M,)  one                bias_ih + bias_hh  two, summed into gates
    GRU bias b    (2, 3M) input, recurrent  bias_ih, bias_hh   the same two rows
    SimpleRNN b   (M,)   one                bias_ih + bias_hh

- LSTM gates: Keras i, f, c, o is torch's i, f, g, o: the same blocks in the same order.
  Only the sum of torch's two biases enters the gates, so b = b_ih + b_hh.
- GRU gates: Keras z, r, h against torch's r, z, n (n is Keras' candidate hh): the first
  two blocks swap. torch's GRU is Keras' ``reset_after=True`` (the reset gate multiplies
  h @ U_h + b_hh, after the product), and its two biases are Keras' two bias rows.
  Keras' ``reset_after=False`` has no torch counterpart.
- SimpleRNN: torch's ``nn.RNN`` with ``nonlinearity`` "tanh" or "relu".
- Stacks: torch's ``num_layers`` are layers fed one into the next; its reverse direction
  is Keras' backward layer (``go_backwards=True``, output flipped back in time), and its
  outputs are concatenated: ``Bidirectional(merge_mode="concat")``.

Rounding: torch adds (x @ W^T + b_ih) + (h @ U^T + b_hh) on its native path, minirnn
(x @ W + h @ U) + b with b = b_ih + b_hh rounded once; the products' orders of
summation and the tanh and sigmoid code differ too. In float64 all of this stays near
1e-16 per step; in float32 it is a few units in the last place (about 1e-7 on values of
order one), which the tests bound by 1e-6 + 1e-6 * |torch| and check to be rounding:
minirnn lands as close to torch's own float64 result as torch's float32 does.

May use: numpy, :mod:`minirnn.layers` and :mod:`minirnn.bidirectional`; torch only
inside the functions, so that importing this module (and minirnn) never imports torch.
"""

import re

import numpy as np

from ..bidirectional import Bidirectional
from ..layers import GRU, LSTM, SimpleRNN

__all__ = ["from_torch", "to_torch", "run_like_torch", "module_from_state_dict",
           "load_state_dict"]

_RECURRENT = (LSTM, GRU, SimpleRNN)


def _import_torch():
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("minirnn.bridge.torch needs PyTorch: pip install torch") from error
    return torch


# ---- the gate blocks ---------------------------------------------------------


def _gru_blocks_torch_to_keras(rows):
    """torch's GRU blocks r, z, n (along axis 0) -> Keras' z, r, h."""
    r, z, n = np.split(rows, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _gru_blocks_keras_to_torch(rows):
    """Keras' GRU blocks z, r, h (along axis 0) -> torch's r, z, n."""
    z, r, h = np.split(rows, 3, axis=0)
    return np.concatenate([r, z, h], axis=0)


def _keras_weights(kind, w_ih, w_hh, b_ih, b_hh):
    """torch's parameters of one layer and direction -> Keras' weight list.

    ``kind`` is "LSTM", "GRU" or "RNN"; w_ih (G*M, D), w_hh (G*M, M), b_ih and b_hh
    (G*M,) or None without bias. Returns [kernel (D, G*M), recurrent_kernel (M, G*M)]
    plus the bias: LSTM and RNN b_ih + b_hh (G*M,); GRU [b_ih; b_hh] (2, 3M).
    """
    if kind == "GRU":
        w_ih, w_hh = _gru_blocks_torch_to_keras(w_ih), _gru_blocks_torch_to_keras(w_hh)
    weights = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    if b_ih is None:
        return weights
    if kind == "GRU":
        bias = np.stack([_gru_blocks_torch_to_keras(b_ih), _gru_blocks_torch_to_keras(b_hh)])
    else:
        bias = b_ih + b_hh  # one rounding, in the layer's dtype (see the module docstring)
    return weights + [bias]


def _torch_weights(layer):
    """A minirnn layer's Keras weights -> torch's (w_ih, w_hh, b_ih, b_hh), the
    inverse of :func:`_keras_weights`. A single bias becomes b_ih, with b_hh = 0."""
    w_ih, w_hh, bias = layer.kernel.T, layer.recurrent_kernel.T, layer.bias
    if isinstance(layer, GRU):
        w_ih, w_hh = _gru_blocks_keras_to_torch(w_ih), _gru_blocks_keras_to_torch(w_hh)
    if bias is None:
        return w_ih, w_hh, None, None
    if isinstance(layer, GRU):
        return (w_ih, w_hh,
                _gru_blocks_keras_to_torch(bias[0]), _gru_blocks_keras_to_torch(bias[1]))
    return w_ih, w_hh, bias, np.zeros_like(bias)


# ---- torch -> minirnn --------------------------------------------------------


def _describe(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _kind_of(torch, module):
    """The module's kind, "LSTM", "GRU" or "RNN"; TypeError for anything but these
    three classes (subclasses included), ValueError for an LSTM with projections."""
    kinds = {torch.nn.LSTM: "LSTM", torch.nn.GRU: "GRU", torch.nn.RNN: "RNN"}
    kind = kinds.get(type(module))
    if kind is None:
        why = ""
        if isinstance(module, torch.nn.RNNBase):
            why = (" (a subclass may change what forward computes; copy its parameters "
                   "into a plain torch.nn.LSTM/GRU/RNN first)")
        raise TypeError(
            "`module` must be a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN; received "
            f"{_describe(module)}{why}.")
    if getattr(module, "proj_size", 0):
        raise ValueError(
            "`module.proj_size` must be 0: an LSTM with projections feeds back "
            "h = W_hr (o * tanh(c)), proj_size values while its cell keeps hidden_size, and "
            "Keras' LSTM (so minirnn) has no projection matrix; received "
            f"proj_size={module.proj_size}.")
    return kind


def _parameters(module):
    """torch's parameters, per layer and direction: [[(w_ih, w_hh, b_ih, b_hh), ...], ...]
    (forward then reverse), the biases None without ``bias``."""
    def tensors(name):  # e.g. "_l1_reverse"
        weights = (getattr(module, "weight_ih" + name), getattr(module, "weight_hh" + name))
        if not module.bias:
            return weights + (None, None)
        return weights + (getattr(module, "bias_ih" + name), getattr(module, "bias_hh" + name))

    suffixes = ["", "_reverse"] if module.bidirectional else [""]
    return [[tensors(f"_l{k}{suffix}") for suffix in suffixes] for k in range(module.num_layers)]


def _module_dtype(torch, parameters, dtype):
    """The NumPy dtype the layers compute in: the module's parameters' (float32 or
    float64), or ``dtype`` where given."""
    found = {tensor.dtype for layer in parameters for direction in layer
             for tensor in direction if tensor is not None}
    allowed = {torch.float32: "float32", torch.float64: "float64"}
    if len(found) != 1 or not found <= set(allowed):
        raise TypeError(
            "`module`'s parameters must all be float32 or all float64, the dtypes minirnn "
            f"computes in; received {sorted(str(d) for d in found)} (convert with "
            "module.float() or module.double() first).")
    if dtype is None:
        return allowed[found.pop()]
    if dtype not in ("float32", "float64", np.float32, np.float64):
        raise ValueError(f"`dtype` must be 'float32', 'float64' or None; received {dtype!r}.")
    return np.dtype(dtype).name


def _as_numpy(tensor, dtype):
    if tensor is None:
        return None
    if tensor.is_meta:
        raise ValueError("`module`'s parameters are on the 'meta' device: they hold no values.")
    return tensor.detach().to("cpu").numpy().astype(dtype)


def from_torch(module, dtype=None):
    """minirnn layers that compute what a torch ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` does.

    Every layer is built with ``return_sequences=True, return_state=True``, so that
    it returns ``[output, *final_states]``: torch's output sequence and the states
    that make up its ``h_n`` (and ``c_n``). minirnn layers take batch-major input
    (B, T, D), as torch does with ``batch_first=True``; :func:`run_like_torch` runs
    the layers with torch's own arguments and result structure, whatever
    ``batch_first``.

    - ``nn.LSTM`` -> ``minirnn.LSTM``: same gate order; bias = b_ih + b_hh.
    - ``nn.GRU`` -> ``minirnn.GRU(reset_after=True)``: gates r, z, n reordered to
      z, r, h; bias [b_ih; b_hh], shape (2, 3M).
    - ``nn.RNN`` -> ``minirnn.SimpleRNN(activation="tanh" or "relu")``; bias = b_ih + b_hh.
    - ``bidirectional=True`` -> ``minirnn.Bidirectional(merge_mode="concat")`` with
      the reverse parameters in its backward layer (``go_backwards=True``).
    - ``bias=False`` -> ``use_bias=False``. Dropout is ignored (inference).

    Args:
        module: a torch.nn.LSTM, nn.GRU or nn.RNN (not a subclass), float32 or
            float64, without ``proj_size``.
        dtype: "float32" or "float64" for the layers; None (default) takes the
            module's parameters' dtype.

    Returns:
        one layer for ``num_layers == 1``, else a list of ``num_layers`` layers,
        each fed the previous one's output.

    Raises:
        TypeError: ``module`` is not one of the three classes, or its parameters
            are of another dtype (float16, bfloat16, ...).
        ValueError: ``proj_size > 0`` or an unknown ``dtype``.
    """
    torch = _import_torch()
    kind = _kind_of(torch, module)
    parameters = _parameters(module)
    dtype = _module_dtype(torch, parameters, dtype)
    layers = []
    for per_direction in parameters:
        directions = []
        for go_backwards, tensors in zip((False, True), per_direction):
            weights = _keras_weights(kind, *(_as_numpy(t, dtype) for t in tensors))
            directions.append(_new_layer(kind, module, dtype, go_backwards, weights))
        if module.bidirectional:
            layers.append(Bidirectional(directions[0], merge_mode="concat",
                                        backward_layer=directions[1]))
        else:
            layers.append(directions[0])
    return layers[0] if len(layers) == 1 else layers


def module_from_state_dict(state, nonlinearity="tanh", batch_first=False):
    """The ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` whose ``state_dict()`` is ``state``.

    A state dict holds the parameters by name (``weight_ih_l0``, ``bias_hh_l1_reverse``,
    ...), and their shapes tell the rest: G*M rows of ``weight_ih_l0`` for M =
    ``weight_hh_l0``'s columns give the kind (G = 4: LSTM, 3: GRU, 1: RNN), its columns
    the input size; the highest ``_l{k}`` the number of layers; ``_reverse`` keys a
    bidirectional module; ``bias_*`` keys the biases. What a state dict does not
    hold comes as arguments: an ``nn.RNN``'s ``nonlinearity``, and ``batch_first``
    (False as torch's default: the module takes (T, B, D)), which changes only the
    layout the rebuilt module reads.

    Raises:
        ValueError: a key or shape that no such module has (named), a projection
            (``weight_hr_l0``), or missing parameters.
        TypeError: ``state`` is not a mapping of names to tensors.
    """
    torch = _import_torch()
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise TypeError("`state` must be a module's state_dict(): a dict of parameter names "
                        f"to tensors; received {_describe(state)}.")
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"`nonlinearity` must be 'tanh' or 'relu'; received {nonlinearity!r}.")
    if any(name.startswith("weight_hr_l") for name in state):
        raise ValueError("`state` holds weight_hr_l* (an LSTM with proj_size > 0), which "
                         "Keras' LSTM (so minirnn) cannot compute.")
    pattern = r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?"
    levels, reverse, biased = set(), False, False
    for name in state:
        match = re.fullmatch(pattern, name)
        if match is None:
            raise ValueError(f"`state` has a key {name!r} that no nn.LSTM, nn.GRU or nn.RNN "
                             "has (expected weight_ih_l0, weight_hh_l0, bias_ih_l0, ...).")
        levels.add(int(match.group(2)))
        reverse |= match.group(3) is not None
        biased |= match.group(1).startswith("bias")
    if "weight_ih_l0" not in state or "weight_hh_l0" not in state:
        raise ValueError("`state` must hold weight_ih_l0 and weight_hh_l0; received keys "
                         f"{sorted(state)}.")
    w_ih, w_hh = state["weight_ih_l0"], state["weight_hh_l0"]
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_hh.shape[1] == 0 or \
            w_hh.shape[0] % w_hh.shape[1] or w_ih.shape[0] != w_hh.shape[0]:
        raise ValueError("`state`'s weight_ih_l0 and weight_hh_l0 must be (G*M, D) and "
                         f"(G*M, M); received {tuple(w_ih.shape)} and {tuple(w_hh.shape)}.")
    hidden = w_hh.shape[1]
    gates = w_hh.shape[0] // hidden
    kinds = {4: torch.nn.LSTM, 3: torch.nn.GRU, 1: torch.nn.RNN}
    if gates not in kinds:
        raise ValueError(f"`state`'s weight_hh_l0 has {gates} gate blocks of {hidden} rows: "
                         "an LSTM has 4, a GRU 3, an RNN 1.")
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"`batch_first` must be True or False; received {batch_first!r}.")
    options = dict(num_layers=max(levels) + 1, bias=biased, bidirectional=reverse,
                   batch_first=bool(batch_first), dtype=w_ih.dtype)
    if gates == 1:
        options["nonlinearity"] = nonlinearity
    try:
        module = kinds[gates](w_ih.shape[1], hidden, **options)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"`state` does not fit a {kinds[gates].__name__}({w_ih.shape[1]}, "
                         f"{hidden}, {options}): {error}") from None
    return module.eval()


def load_state_dict(path, nonlinearity="tanh", batch_first=False):
    """The module saved with ``torch.save(module.state_dict(), path)``.

    The file is read with ``torch.load(weights_only=True)``, which unpickles tensors
    and plain containers only: a file is data, and one that holds anything else (a
    whole pickled module, whose class would have to be imported) is refused with a
    ValueError that says to save the state dict instead. ``nonlinearity`` and
    ``batch_first``: as :func:`module_from_state_dict`.
    """
    torch = _import_torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:  # torch's unpickler raises several kinds
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith("WeightsUnpickler error")),
                   lines[0] if lines else type(error).__name__)
        why = why.split(" was not an allowed global")[0]  # not the advice to trust the file
        raise ValueError(
            f"{path}: not a state dict that torch.load(weights_only=True) reads ({why}); "
            "save the module's parameters with torch.save(module.state_dict(), path)."
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {_describe(state)}, not a state dict; save the "
                         "module's parameters with torch.save(module.state_dict(), path).")
    return module_from_state_dict(dict(state), nonlinearity, batch_first)


def _new_layer(kind, module, dtype, go_backwards, weights):
    settings = dict(use_bias=bool(module.bias), return_sequences=True, return_state=True,
                    go_backwards=go_backwards, dtype=dtype)
    if kind == "LSTM":
        layer = LSTM(module.hidden_size, **settings)
    elif kind == "GRU":
        layer = GRU(module.hidden_size, reset_after=True, **settings)
    else:
        layer = SimpleRNN(module.hidden_size, activation=module.nonlinearity, **settings)
    layer.set_weights(weights)
    return layer


# ---- running the copy as torch runs the module --------------------------------


def _as_stack(layers, argument):
    stack = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    if not stack:
        raise ValueError(f"`{argument}` must hold at least one layer; received an empty list.")
    for k, layer in enumerate(stack):
        if not isinstance(layer, _RECURRENT + (Bidirectional,)):
            where = argument if len(stack) == 1 else f"{argument}[{k}]"
            raise TypeError(
                f"`{where}` must be a minirnn LSTM, GRU, SimpleRNN or Bidirectional; "
                f"received {_describe(layer)}.")
    return stack


def _cells(layer):
    """The recurrent layers inside ``layer``: [forward] or [forward, backward]."""
    if isinstance(layer, Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def run_like_torch(layers, x, hx=None, batch_first=False):
    """Run :func:`from_torch`'s layers with torch's arguments; torch's results.

    The layers run one after the other, each on the previous one's output sequence,
    as torch runs ``num_layers``; the final states of layer k (forward, then
    backward) are torch's ``h_n[k * directions + d]``::

        output, h_n = run_like_torch(from_torch(gru), x, h0)                # GRU, RNN
        output, (h_n, c_n) = run_like_torch(from_torch(lstm), x, (h0, c0))  # LSTM

    Args:
        layers: a layer or list of layers as :func:`from_torch` returns them
            (``return_sequences`` and ``return_state`` True).
        x: (T, B, D), or (B, T, D) with ``batch_first=True``, or unbatched (T, D).
        hx: None (zeros), or h0 (num_layers * directions, B, M); for an LSTM the
            pair (h0, c0). Unbatched: (num_layers * directions, M).
        batch_first: the layout of ``x`` and ``output``, as the torch module's.

    Returns:
        (output, h_n) or, for an LSTM, (output, (h_n, c_n)), NumPy arrays shaped as
        torch's: output (T, B, directions * M) (batch-first or unbatched as ``x``).
    """
    stack = _as_stack(layers, "layers")
    for k, layer in enumerate(stack):
        if not (layer.return_sequences and layer.return_state):
            raise ValueError(
                f"`layers[{k}]` must have return_sequences=True and return_state=True, as "
                "from_torch builds it; received return_sequences="
                f"{layer.return_sequences}, return_state={layer.return_state}.")
    first = _cells(stack[0])
    for k, layer in enumerate(stack):
        cells = _cells(layer)
        if [type(cell) for cell in cells] != [type(first[0])] * len(first):
            raise ValueError(
                f"`layers[{k}]` must be a {type(first[0]).__name__} like the first layer, "
                f"{'in a Bidirectional ' if len(first) == 2 else ''}as one torch module's "
                f"layers are; received {_describe(layer)} of "
                f"{[type(cell).__name__ for cell in cells]}.")
    units, dtype = first[0].units, first[0].dtype
    for k, layer in enumerate(stack):
        for cell in _cells(layer):
            if cell.units != units or cell.dtype != dtype:
                raise ValueError(
                    f"`layers[{k}]` must have {units} units in {dtype} like the first layer, "
                    "as one torch module's layers have; received "
                    f"{cell.units} units in {cell.dtype}.")
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"`batch_first` must be True or False; received {batch_first!r}.")
    is_lstm = isinstance(first[0], LSTM)
    directions = len(first)
    if hasattr(x, "detach"):  # a torch tensor, as torch's module takes it
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(
            "`x` must be 3-D, (T, B, D) or with batch_first (B, T, D), or unbatched (T, D); "
            f"received shape {x.shape}.")
    if x.dtype != np.dtype(dtype):
        raise TypeError(f"`x` must be {dtype}, the layers' dtype (torch refuses another "
                        f"dtype than its parameters'); received {x.dtype}.")
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    elif not batch_first:
        x = x.transpose(1, 0, 2)
    states = _initial_states(hx, is_lstm, len(stack) * directions, unbatched)

    h_n, c_n = [], []
    output = x
    for k, layer in enumerate(stack):
        initial = None
        if states:  # Keras' order: the forward layer's [h, c], then the backward one's
            initial = [state[k * directions + d] for d in range(directions) for state in states]
        output, *final = layer(output, initial_state=initial)
        h_n += final[::2] if is_lstm else final
        c_n += final[1::2] if is_lstm else []
    if unbatched:
        output, h_n, c_n = output[0], [h[0] for h in h_n], [c[0] for c in c_n]
    elif not batch_first:
        output = np.ascontiguousarray(output.transpose(1, 0, 2))
    h_n = np.stack(h_n)
    return (output, (h_n, np.stack(c_n))) if is_lstm else (output, h_n)


def _initial_states(hx, is_lstm, count, unbatched):
    """torch's hx as a list of per-state arrays (count, B, M): [h0] or [h0, c0]."""
    if hx is None:
        return []
    if is_lstm:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(
                "`hx` for an LSTM must be the pair (h0, c0), as torch's; received "
                f"{type(hx).__name__}" + (f" of {len(hx)}" if isinstance(hx, (tuple, list))
                                           else "") + ".")
        states, names = [np.asarray(hx[0]), np.asarray(hx[1])], ["hx[0] (h0)", "hx[1] (c0)"]
    else:
        states, names = [np.asarray(hx)], ["hx"]
    for name, state in zip(names, states):
        rank = 2 if unbatched else 3
        if state.ndim != rank or state.shape[0] != count:
            expected = "(num_layers * directions, M)" if unbatched else \
                "(num_layers * directions, B, M)"
            raise ValueError(
                f"`{name}` must have shape {expected} with num_layers * directions = "
                f"{count}; received shape {state.shape}.")
    if unbatched:
        states = [state[:, None] for state in states]
    return states


# ---- minirnn -> torch --------------------------------------------------------


def _check_cell(layer, where, go_backwards):
    """Raise ValueError unless torch computes what this recurrent layer computes."""
    if not layer.built:
        raise ValueError(
            f"`{where}` has no weights yet: call it once or set_weights before to_torch.")

    def refuse(setting, expected, why=""):
        raise ValueError(
            f"`{where}.{setting}` has no torch counterpart: expected {expected!r}, received "
            f"{getattr(layer, setting)!r}{why}.")

    if isinstance(layer, SimpleRNN):
        if layer.activation not in ("tanh", "relu"):
            refuse("activation", "tanh' or 'relu", " (torch.nn.RNN's nonlinearities)")
    else:
        if layer.activation != "tanh":
            refuse("activation", "tanh", " (torch's LSTM and GRU use tanh)")
        if layer.recurrent_activation != "sigmoid":
            refuse("recurrent_activation", "sigmoid", " (torch's LSTM and GRU use sigmoid)")
    if isinstance(layer, GRU) and not layer.reset_after:
        refuse("reset_after", True,
               " (torch's GRU applies the reset gate after the recurrent product)")
    if layer.go_backwards != go_backwards:
        refuse("go_backwards", go_backwards,
               " (torch runs backwards only as the reverse half of bidirectional=True)")
    if layer.stateful:
        refuse("stateful", False, " (torch modules keep no states between calls; pass hx)")


def _check_same(first, other, where, settings):
    for setting in settings:
        if getattr(other, setting) != getattr(first, setting):
            raise ValueError(
                f"`{where}.{setting}` must equal the first layer's ({getattr(first, setting)!r}) "
                f"for one torch module; received {getattr(other, setting)!r}.")


def to_torch(layer, batch_first=True):
    """A torch ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` computing what ``layer`` computes.

    ``layer`` is a minirnn LSTM, GRU, SimpleRNN or Bidirectional (concat), or a list
    of them stacked (each fed the previous one's output sequence), which becomes
    ``num_layers``. The module holds the same weights in torch's layout (see the
    module docstring), in the layers' dtype, and is in eval mode. A single Keras
    bias goes to ``bias_ih`` with ``bias_hh = 0``; the GRU's two rows to the two.

    torch returns the whole output sequence and the final states of every layer;
    with ``batch_first=True`` (default, minirnn's layout) ``module(x)[0]`` is the
    ``return_sequences=True`` output of the layer for the same ``x``.

    Raises:
        TypeError: ``layer`` is not a minirnn recurrent layer (or list of them).
        ValueError: a setting with no torch counterpart, named with the value torch
            needs: activation other than tanh (SimpleRNN: tanh or relu),
            recurrent_activation other than sigmoid, GRU reset_after=False,
            go_backwards outside a Bidirectional, stateful, merge_mode other than
            "concat", a Bidirectional merging in another dtype, layers of a stack
            that differ in class, units, use_bias or activation, or whose sizes do
            not chain; or a layer without weights.
    """
    torch = _import_torch()
    stack = _as_stack(layer, "layer")
    name = "layer" if len(stack) == 1 else "layer[{}]"
    first = _cells(stack[0])[0]
    bidirectional = isinstance(stack[0], Bidirectional)
    directions = 2 if bidirectional else 1
    for k, entry in enumerate(stack):
        where = name.format(k)
        if isinstance(entry, Bidirectional) != bidirectional:
            raise ValueError(
                f"`{where}` must be {'a' if bidirectional else 'no'} Bidirectional like the "
                f"first layer: torch's `bidirectional` holds for the whole stack; received "
                f"{_describe(entry)}.")
        if bidirectional:
            if entry.merge_mode != "concat":
                raise ValueError(
                    f"`{where}.merge_mode` has no torch counterpart: expected 'concat', "
                    f"received {entry.merge_mode!r}.")
            if entry.dtype != entry.forward_layer.dtype:
                raise ValueError(
                    f"`{where}.dtype` must be the layers' dtype "
                    f"({entry.forward_layer.dtype!r}): torch's output keeps the "
                    f"parameters' dtype; received {entry.dtype!r}.")
        for direction, cell in zip(("forward_layer", "backward_layer"), _cells(entry)):
            cell_where = f"{where}.{direction}" if bidirectional else where
            _check_cell(cell, cell_where, go_backwards=direction == "backward_layer")
            if type(cell) is not type(first):
                raise ValueError(
                    f"`{cell_where}` must be a {type(first).__name__} like the first layer: "
                    f"one torch module has one cell type; received {type(cell).__name__}.")
            _check_same(first, cell, cell_where, ("units", "use_bias", "activation", "dtype"))
        if k < len(stack) - 1 and not entry.return_sequences:
            raise ValueError(
                f"`{where}.return_sequences` must be True: layer {k + 1} of the stack reads "
                f"its whole output sequence; received False.")
        expected_input = first.input_dim if k == 0 else directions * first.units
        for cell in _cells(entry):
            if cell.input_dim != expected_input:
                raise ValueError(
                    f"`{where}`'s kernel must have {expected_input} rows (input features) to "
                    f"read the previous layer's output; received {cell.input_dim}.")

    kwargs = dict(input_size=first.input_dim, hidden_size=first.units,
                  num_layers=len(stack), bias=first.use_bias, batch_first=batch_first,
                  bidirectional=bidirectional, dtype=getattr(torch, first.dtype))
    if isinstance(first, LSTM):
        module = torch.nn.LSTM(**kwargs)
    elif isinstance(first, GRU):
        module = torch.nn.GRU(**kwargs)
    else:
        module = torch.nn.RNN(nonlinearity=first.activation, **kwargs)
    with torch.no_grad():
        for k, entry in enumerate(stack):
            for suffix, cell in zip(("", "_reverse"), _cells(entry)):
                values = _torch_weights(cell)
                for base, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), values):
                    if value is not None:
                        getattr(module, f"{base}_l{k}{suffix}").copy_(
                            torch.from_numpy(np.array(value)))  # a writable copy
    return module.eval()
