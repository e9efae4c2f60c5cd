"""LSTM, GRU, SimpleRNN and Bidirectional: Keras 3's recurrent layers for inference.

A layer holds its configuration, its weights in Keras' layout and, when stateful,
its states. Calling it validates the inputs in Python, then runs either the
compiled kernels (:mod:`minirnn.kernels`, the default) or the readable equations
(:mod:`minirnn.equations`, ``engine="numpy"``), and returns Keras' structure: one
array, or ``[output, *states]`` with ``return_state=True``.

Every public attribute (``units``, ``kernel``, ``activation``, ``dtype``, ...) can be
read and assigned after construction. An assignment is checked when it happens:
first the value alone, then the whole layer (do the weights still fit ``units``,
``use_bias`` and ``reset_after``? does ``bitwise=True`` still hold?); a refused
value leaves the layer as it was and the error names the attribute. Accepted
values are stored read-only and everything the kernels read is derived from them
at once, so a call never meets an inconsistent layer and never pays for the
checks. See :class:`_Configurable`.
"""

import functools
import numbers
import os
import queue
import threading

import numpy as np

from . import activations, equations, exact, gemm, handoff, kernels
from .bitwise import ACTIVATIONS as _BITWISE_ACTIVATIONS
from .bitwise import check_products as _check_bitwise_products
from .bitwise import require as _require_bitwise
from .worker import compile_rest as _compile_rest
from .worker import rest as _rest
from numba.core import config as _numba_config  # after kernels: see its cache directory

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "set_num_threads", "get_num_threads"]

_DTYPES = {"float32": np.float32, "float64": np.float64}
_ENGINES = ("numba", "numpy")
# Keras arguments that only matter for training or for speed: accepted, no effect.
_IGNORED = frozenset([
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "name", "trainable", "input_shape", "batch_input_shape",
    "batch_size", "input_dim",
])


def _check_dtype(dtype, argument="dtype"):
    """float32 or float64 from a name or NumPy dtype; None is Keras' default, float32."""
    if dtype is None:
        return np.float32
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else None
    except TypeError:
        name = None
    if name in _DTYPES:
        return _DTYPES[name]
    raise ValueError(f"`{argument}` must be 'float32' or 'float64'; received {dtype!r}.")


def _check_bool(value, argument):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{argument}` must be True or False; received {value!r}.")


def _check_units(units, argument="units"):
    if isinstance(units, (bool, np.bool_)) or not isinstance(units, numbers.Integral):
        raise TypeError(f"`{argument}` must be a positive integer; received {units!r}.")
    if units <= 0:
        raise ValueError(f"`{argument}` must be a positive integer; received {units}.")
    return int(units)


def _check_rate(value, argument):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{argument}` must be a float in [0, 1]; received {value!r}.")
    if not 0 <= value <= 1:
        raise ValueError(f"`{argument}` must be in [0, 1]; received {value}.")
    return float(value)


def _check_seed(seed, argument="seed"):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"`{argument}` must be an integer or None; received {seed!r}.")
    if seed is not None and seed < 0:
        raise ValueError(f"`{argument}` must be a non-negative integer or None; received {seed}.")
    return None if seed is None else int(seed)


def _check_choice(value, choices, argument):
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(f"`{argument}` must be one of {choices}; received {value!r}.")
    return value


def _numeric_array(value, argument):
    """np.asarray with a TypeError naming the argument for non-numeric data."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise TypeError(
            f"`{argument}` must be a numeric array; could not convert it ({error})."
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{argument}` must hold real numbers; received an array of dtype "
            f"{array.dtype}."
        )
    return array


def _frozen(array, dtype):
    """A read-only, C-contiguous copy of ``array`` in ``dtype``: stored weights change
    by assignment only, never in place.

    The copy is a read-only view of a private writable array, which the kernels
    get (see :func:`_for_kernels`): Numba types read-only arrays apart, and
    checks their type more slowly at every call."""
    return _read_only(np.array(array, dtype=dtype, order="C"), dtype)


def _read_only(array, dtype):
    """What ``_frozen(array, dtype)`` stores, without the copy when ``array`` is
    already C-contiguous and writable in ``dtype``: for arrays nothing else holds
    (a fresh copy, or a call's fresh states when they are not returned)."""
    if array.dtype != dtype or not array.flags.c_contiguous or not array.flags.writeable:
        array = np.array(array, dtype=dtype, order="C")
    view = array.view()
    view.setflags(write=False)
    return view


def _for_kernels(array):
    """The writable array behind a stored read-only one, for the compiled kernels
    (which never write their weights); the array itself where there is none."""
    base = array.base
    if isinstance(base, np.ndarray) and base.flags.writeable and base.shape == array.shape \
            and base.dtype == array.dtype and base.flags.c_contiguous:
        return base
    return np.array(array, order="C")


class _Configurable:
    """Layers whose public attributes are checked whenever they are assigned.

    ``_checks`` maps each such attribute to ``check(layer, value, name)``, which
    checks the value on its own (type, range) and returns what to store.
    ``layer.name = value`` runs that check, stores the result, then calls
    ``layer._configure(name)``, which checks the layer as a whole and derives
    what the kernels read. If either refuses, every attribute keeps its old
    value and the error (naming the attribute) propagates: a layer is never left
    inconsistent. Values live in the instance's ``__dict__``, so reading an
    attribute costs what reading a plain one does; only assignments pay.
    """

    _checks = {}
    _ready = False  # set at the end of __init__: until then, no whole-layer checks

    def __setattr__(self, name, value):
        if name in self._checks:
            self._assign(**{name: value})
        else:
            object.__setattr__(self, name, value)

    def _assign(self, **values):
        """Assign several attributes that only fit together (the weights): each is
        checked alone, then the layer as a whole, once."""
        checked = {name: self._checks[name](self, value, name)
                   for name, value in values.items()}
        saved = dict(self.__dict__)
        self.__dict__.update(checked)
        if not self._ready:
            return
        try:
            self._configure(next(iter(values)))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _configure(self, changed):
        """Check the whole layer after ``changed`` was assigned; derive kernel inputs."""


# ---- checks of one attribute's value, as _Configurable wants them --------------

def _plain(check):
    """A _Configurable check from a check of the value alone, ``check(value, argument)``."""
    return lambda layer, value, name: check(value, name)


def _activation_setting(layer, value, name):
    return activations.canonical(value, name)


def _dtype_setting(layer, value, name):
    return np.dtype(_check_dtype(value, name)).name


def _engine_setting(layer, value, name):
    return _check_choice(value, _ENGINES, name)


def _implementation_setting(layer, value, name):
    if isinstance(value, (bool, np.bool_)) or value not in (1, 2):
        raise ValueError(f"`{name}` must be 1 or 2; received {value!r}.")
    return int(value)


def _use_cudnn_setting(layer, value, name):
    if not any(value is choice for choice in ("auto", True, False)) and value != "auto":
        raise ValueError(f"`{name}` must be 'auto', True or False; received {value!r}.")
    return value


def _weight_setting(layer, value, name):
    """A weight array, stored read-only in the layer's dtype (None: not built)."""
    if value is None:
        return None
    return _frozen(_numeric_array(value, name), np.dtype(layer.dtype))


def _states_setting(layer, value, name):
    """A stateful layer's states: None, or [h] / [h, c], each (batch, units)."""
    if value is None:
        return None
    where = f"of this stateful {type(layer).__name__}"
    return tuple(_frozen(s, np.dtype(layer.dtype))
                 for s in layer._checked_states(value, name, where))


class _Recurrent(_Configurable):
    """What LSTM, GRU and SimpleRNN share: arguments, weights, states, calling.

    A subclass sets ``_gates`` (weight blocks per unit), ``_state_names``, and
    implements ``_bias_shape``, ``_initial_bias``, ``_step_function`` and
    ``_kernel_run``.
    """

    _gates = 1
    _state_names = ("h",)
    _trace_names = ("h",)
    _job = "simple_rnn"  # its kernel's kind of job (kernels.JOB_KINDS, minirnn.handoff)

    _checks = {
        "units": _plain(_check_units),
        "activation": _activation_setting,
        "recurrent_activation": _activation_setting,
        "use_bias": _plain(_check_bool),
        "return_sequences": _plain(_check_bool),
        "return_state": _plain(_check_bool),
        "go_backwards": _plain(_check_bool),
        "stateful": _plain(_check_bool),
        "zero_output_for_mask": _plain(_check_bool),
        "unroll": _plain(_check_bool),
        "dtype": _dtype_setting,
        "dropout": _plain(_check_rate),
        "recurrent_dropout": _plain(_check_rate),
        "implementation": _implementation_setting,
        "use_cudnn": _use_cudnn_setting,
        "seed": _plain(_check_seed),
        "engine": _engine_setting,
        "bitwise": _plain(_check_bool),
        "kernel": _weight_setting,            # W (input_dim, gates * units), read-only
        "recurrent_kernel": _weight_setting,  # U (units, gates * units), read-only
        "bias": _weight_setting,              # b, None without use_bias; read-only
        "states": _states_setting,            # a stateful layer's, after its last call
    }

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, zero_output_for_mask=False,
                 dtype="float32", dropout=0.0, recurrent_dropout=0.0, unroll=False,
                 seed=None, engine="numba", implementation=2, use_cudnn="auto",
                 bitwise=False, **kwargs):
        unknown = sorted(set(kwargs) - _IGNORED)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; "
                f"accepted: the Keras 3 {type(self).__name__} arguments.")
        self.units = units
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = use_bias
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.zero_output_for_mask = zero_output_for_mask
        self.unroll = unroll
        self.dtype = dtype
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.implementation = implementation
        self.use_cudnn = use_cudnn
        self.seed = seed
        self.engine = engine
        self.bitwise = bitwise
        self.kernel = self.recurrent_kernel = self.bias = self.states = None
        self._ready = True
        self._configure(None)

    # ---- the layer as a whole --------------------------------------------------

    def _configure(self, changed):
        """Check that the attributes fit together, then derive the kernels' inputs.

        Runs after every assignment (``changed`` names the attribute) and once at
        the end of construction. The weights fix ``units``, ``use_bias`` (and the
        GRU's ``reset_after``) once they are set; ``dtype`` recasts them.
        """
        if self.recurrent_dropout != 0 and self._gates > 1:
            self.__dict__["implementation"] = 1  # as Keras' LSTM and GRU cells do
        dtype = self._np_dtype = np.dtype(self.dtype)
        for name in ("kernel", "recurrent_kernel", "bias"):
            if self.__dict__[name] is not None and self.__dict__[name].dtype != dtype:
                self.__dict__[name] = _frozen(self.__dict__[name], dtype)
        if self.states is not None and self.states[0].dtype != dtype:
            self.__dict__["states"] = tuple(_frozen(s, dtype) for s in self.states)
        self._check_weights(changed)
        self._check_states(changed)
        if self.bitwise:
            self._check_bitwise()
        self._codes = (self._code_of(self.activation),
                       self._code_of(self.recurrent_activation))
        self._compiled = self.engine == "numba" and None not in self._codes
        if self.built:
            self._prepare_kernel_weights()

    def _check_weights(self, changed):
        """The weights are all set or all None, and have the shapes the
        configuration asks for; the error names what was assigned."""
        weights = {"kernel": self.kernel, "recurrent_kernel": self.recurrent_kernel,
                   "bias": self.bias}
        if all(w is None for w in weights.values()):
            return
        name = type(self).__name__
        if self.kernel is None or self.recurrent_kernel is None:
            missing = "kernel" if self.kernel is None else "recurrent_kernel"
            raise ValueError(
                f"`{changed}`: {name}'s weights go together and `{missing}` is None; set "
                "them all at once with set_weights([kernel, recurrent_kernel"
                f"{', bias' if self.use_bias else ''}]).")
        input_dim = self.kernel.shape[0] if self.kernel.ndim == 2 else None
        if input_dim == 0:
            raise ValueError(
                "`kernel` must have at least one row (one per input feature); received "
                f"shape {self.kernel.shape}.")
        expected = dict(zip(("kernel", "recurrent_kernel", "bias"),
                            self._weight_shapes(input_dim)))
        expected.setdefault("bias", None)
        for weight, shape in expected.items():
            got = None if weights[weight] is None else weights[weight].shape
            if got == shape:
                continue
            fits = (f"{name}(units={self.units}, use_bias={self.use_bias}"
                    + (f", reset_after={self.reset_after}" if hasattr(self, "reset_after")
                       else "") + ")")
            if changed in weights:
                raise ValueError(
                    f"`{changed}` does not fit this {fits}: `{weight}` must have "
                    f"{'shape ' + str(shape) if shape else 'no value (None)'}; received "
                    f"{'shape ' + str(got) if got else 'None'}.")
            raise ValueError(
                f"`{changed}` cannot be {getattr(self, changed)!r} on this layer: its weights "
                f"were set for another configuration (`{weight}` has "
                f"{'shape ' + str(got) if got else 'no value'}, a {fits} needs "
                f"{'shape ' + str(shape) if shape else 'none'}). Build a new layer instead: "
                f"minirnn.{name}(**{{**layer.get_config(), {changed!r}: "
                f"{getattr(self, changed)!r}}}) and give it weights with set_weights().")

    def _check_states(self, changed):
        """Stored states (if any) are (batch, units) arrays with one batch size."""
        if self.states is None:
            return
        shapes = [s.shape for s in self.states]
        batch = shapes[0][0]
        if any(shape != (batch, self.units) for shape in shapes):
            raise ValueError(
                f"`{changed}` does not fit this layer's stored `states`: they must have "
                f"shape (batch, units) = {(batch, self.units)}; received "
                f"{[tuple(s) for s in shapes]} (reset_state() keeps them; assign "
                "layer.states = None to drop them).")

    def _check_bitwise(self):
        """bitwise=True needs float32, the kernels, modelled activations, a modelled
        platform (minirnn.bitwise)."""
        where = f"{type(self).__name__}(bitwise=True)"
        if self.dtype != "float32":
            raise ValueError(
                f"{where} reproduces Keras' float32 arithmetic: `dtype` must be 'float32'; "
                f"received {self.dtype!r}.")
        if self.engine != "numba":
            raise ValueError(
                f"{where} runs the compiled kernels: `engine` must be 'numba'; received "
                f"{self.engine!r}.")
        arguments = ["activation"] + (["recurrent_activation"] if self._gates > 1 else [])
        for argument in arguments:
            name = getattr(self, argument)
            if name not in _BITWISE_ACTIVATIONS:
                raise ValueError(
                    f"{where}: `{argument}` must be one of the activations whose "
                    f"TensorFlow results are modelled bit for bit, {_BITWISE_ACTIVATIONS}; "
                    f"received {name!r} (TensorFlow computes it with Eigen formulas "
                    "minirnn does not reproduce).")
        _require_bitwise(where)

    # ---- configuration -------------------------------------------------------

    def get_config(self):
        """The constructor arguments that define this layer (Keras names)."""
        config = {
            "units": self.units, "activation": self.activation,
            "use_bias": self.use_bias, "return_sequences": self.return_sequences,
            "return_state": self.return_state, "go_backwards": self.go_backwards,
            "stateful": self.stateful, "zero_output_for_mask": self.zero_output_for_mask,
            "dtype": self.dtype, "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout, "unroll": self.unroll,
            "seed": self.seed, "engine": self.engine, "bitwise": self.bitwise,
            "implementation": self.implementation,
        }
        if self._gates > 1:
            config["recurrent_activation"] = self.recurrent_activation
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def built(self):
        return self.kernel is not None

    @property
    def input_dim(self):
        return None if self.kernel is None else self.kernel.shape[0]

    # ---- weights -------------------------------------------------------------

    def _weight_shapes(self, input_dim):
        width = self._gates * self.units
        shapes = [(input_dim, width), (self.units, width)]
        if self.use_bias:
            shapes.append(self._bias_shape())
        return shapes

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _initial_bias(self):
        return np.zeros(self._bias_shape())

    def build(self, input_dim):
        """Initialise the weights as Keras does, for inputs of ``input_dim`` features.

        kernel: glorot_uniform; recurrent_kernel: orthogonal; bias: zeros (the
        LSTM's forget block ones). Reproducible with the layer's ``seed``.
        """
        rng = np.random.default_rng(self.seed)
        width = self._gates * self.units
        limit = np.sqrt(6.0 / (input_dim + width))
        kernel = rng.uniform(-limit, limit, size=(input_dim, width))
        recurrent_kernel = _orthogonal(rng, self.units, width)
        weights = [kernel, recurrent_kernel]
        if self.use_bias:
            weights.append(self._initial_bias())
        self.set_weights(weights)

    def set_weights(self, weights):
        """Set [kernel, recurrent_kernel(, bias)] in Keras' layout, shapes and gate order."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                "`weights` must be a list [kernel, recurrent_kernel"
                f"{', bias' if self.use_bias else ''}]; received {type(weights).__name__}.")
        expected = 3 if self.use_bias else 2
        if len(weights) != expected:
            raise ValueError(
                f"`weights` for {type(self).__name__}(use_bias={self.use_bias}) must hold "
                f"{expected} arrays; received {len(weights)}.")
        names = ["kernel", "recurrent_kernel", "bias"]
        arrays = [_numeric_array(w, f"weights[{k}] ({names[k]})") for k, w in enumerate(weights)]
        input_dim = arrays[0].shape[0] if arrays[0].ndim == 2 else None
        if self.built and input_dim != self.input_dim:
            raise ValueError(
                f"`weights[0]` (kernel) must have shape {self._weight_shapes(self.input_dim)[0]} "
                f"for this built layer; received {arrays[0].shape}.")
        if input_dim == 0:
            raise ValueError(
                "`weights[0]` (kernel) must have at least one row (one per input feature); "
                f"received shape {arrays[0].shape}.")
        for k, (array, shape) in enumerate(zip(arrays, self._weight_shapes(input_dim))):
            if array.shape != shape:
                raise ValueError(
                    f"`weights[{k}]` ({names[k]}) must have shape {shape}; "
                    f"received {array.shape}.")
        self._assign(kernel=arrays[0], recurrent_kernel=arrays[1],
                     bias=arrays[2] if self.use_bias else None)

    def _prepare_kernel_weights(self):
        """Derived arrays the kernels read (override where needed)."""

    def _packed(self, weights):
        """``weights`` packed for minirnn.gemm (the bitwise mode uses them too,
        summing oneDNN's blocks of k on them; see kernels._exact_product)."""
        return gemm.pack(weights)

    def _products(self, input_dim):
        """(K, N) of each weight product per step, as Keras computes them
        (implementation=1: one product per gate block)."""
        width = self._gates * self.units
        if self.implementation == 1:
            return [(input_dim, self.units), (self.units, self.units)]
        return [(input_dim, width), (self.units, width)]

    def get_weights(self):
        """[kernel, recurrent_kernel(, bias)], copies, in Keras' layout."""
        if not self.built:
            return []
        weights = [self.kernel.copy(), self.recurrent_kernel.copy()]
        if self.use_bias:
            weights.append(self.bias.copy())
        return weights

    # ---- states --------------------------------------------------------------

    def reset_state(self):
        """Zero the stored states of a stateful layer (keeps its batch size)."""
        if self.states is not None:
            self.states = [np.zeros_like(s) for s in self.states]

    reset_states = reset_state

    # ---- calling -------------------------------------------------------------

    def _prepare(self, x, mask, initial_state, for_kernels=True):
        """Validate and convert every input; returns (x, mask or None, states list).

        The states are fresh writable arrays (the kernels update them in place).
        With ``for_kernels`` a bitwise layer also checks that Keras' products at
        this batch size are modelled, so a refusal comes before any work.
        """
        dtype = self._np_dtype
        ready = type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous
        if not ready:
            x = _numeric_array(x, "x")
        if x.ndim != 3:
            raise ValueError(
                f"`x` must be 3-D (batch, timesteps, features); received shape {x.shape}.")
        B, T, D = x.shape
        if B == 0 or T == 0 or D == 0:
            raise ValueError(
                f"`x` must have at least one sample, timestep and feature; received "
                f"shape {x.shape}.")
        kernel = self.kernel
        if kernel is not None and D != kernel.shape[0]:
            raise ValueError(
                f"`x` must have {self.input_dim} features (the kernel has {self.input_dim} "
                f"rows); received shape {x.shape}.")
        if not ready:
            x = np.ascontiguousarray(x, dtype)
        if mask is not None:
            mask = _numeric_array(mask, "mask")
            if mask.shape != (B, T):
                raise ValueError(
                    f"`mask` must have shape (batch, timesteps) = {(B, T)}; "
                    f"received {mask.shape}.")
            mask = np.ascontiguousarray(mask != 0)
        stored = self.states if self.stateful else None
        if stored is not None and stored[0].shape[0] != B:
            raise ValueError(
                f"This layer is stateful: `x` must keep the batch size "
                f"{stored[0].shape[0]} of its states (call reset_state() does not "
                f"change it; create a new layer for another batch size); received "
                f"batch size {B}.")
        n = len(self._state_names)
        if initial_state is None:
            if stored is not None:
                states = [s.copy() for s in stored]
            else:
                states = [np.zeros((B, self.units), dtype) for _ in range(n)]
        else:
            if n == 1 and not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            states = self._checked_states(initial_state, "initial_state",
                                          f"for {type(self).__name__}", B)
        if self.bitwise and for_kernels:
            _check_bitwise_products(B, self._products(D), f"{type(self).__name__}(bitwise=True)")
        return x, mask, states

    def _checked_states(self, values, argument, where, batch=None):
        """Copies of ``values`` ([h] or [h, c]) in the layer's dtype, each checked to
        be (batch, units); with batch None, the first array's batch size is used."""
        n, names = len(self._state_names), list(self._state_names)
        if not isinstance(values, (list, tuple)) or len(values) != n:
            got = (f"{len(values)} arrays" if isinstance(values, (list, tuple))
                   else type(values).__name__)
            each = "" if batch is None else f", each (batch, units) = {(batch, self.units)}"
            raise ValueError(
                f"`{argument}` {where} must be a list of {n} array(s) {names}{each}; "
                f"received {got}.")
        checked = []
        for name, value in zip(names, values):
            value = _numeric_array(value, f"{argument} ({name})")
            if batch is None and value.ndim:
                batch = value.shape[0]
            if value.shape != (batch, self.units):
                raise ValueError(
                    f"`{argument}` ({name}) must have shape (batch, units) = "
                    f"{(batch, self.units)}; received {value.shape}.")
            checked.append(np.array(value, dtype=self.dtype, order="C"))
        return checked

    def _use_kernels(self):
        """Whether calls run the compiled kernels (the engine, and activations they
        know)."""
        return self._compiled

    @staticmethod
    def _code_of(name):
        """The kernels' code of an activation name, None for a row-wise one (a
        subclass that changes an activation's formula maps it to another code)."""
        return activations.code_of(name)

    def __call__(self, x, mask=None, initial_state=None, training=None):
        """Run the layer on x (B, T, D).

        Args:
            x: inputs, (batch, timesteps, features); cast to the layer's dtype.
            mask: (batch, timesteps), True (non-zero) = use this step; or None.
            initial_state: list of (batch, units) arrays, [h] or [h, c] for LSTM;
                overrides a stateful layer's stored states for this call.
            training: accepted for Keras compatibility; inference only.

        Returns:
            output ((B, units), or (B, T, units) with return_sequences), or the list
            [output, *final_states] with return_state.
        """
        x, mask, states = self._prepare(x, mask, initial_state)
        if not self.built:
            self.build(x.shape[2])
        outputs, output, states = self._forward(x, mask, states)
        if self.stateful:  # valid by construction: stored without the checks
            self.__dict__["states"] = tuple(
                _frozen(s, x.dtype) if self.return_state else _read_only(s, x.dtype)
                for s in states)
        result = outputs if self.return_sequences else output
        if self.return_state:
            return [result, *states]
        return result

    def _forward(self, x, mask, states):
        """(all outputs or None, last output, final states) for validated inputs."""
        B, T, _ = x.shape
        if not self._use_kernels():
            outputs, states, _ = equations.run(
                self._step_function(), x, states, mask, self.go_backwards,
                self.zero_output_for_mask)
            return outputs, outputs[:, -1].copy(), states
        dtype = x.dtype
        output = np.zeros((B, self.units), dtype)
        if self.return_sequences:
            outputs = np.empty((B, T, self.units), dtype)
        else:
            outputs = _NO_OUTPUTS[self.dtype]  # the dtype's name (dtype.name takes ~1 µs)
        use_mask = mask is not None
        mask = mask if use_mask else _NO_MASK
        threads = _ALONE if self.bitwise else self._threads(B, T)
        helper = _helping_worker(kernels.JOB_KINDS[self._job, self.dtype]) \
            if threads is _SHARED else None
        if self.bitwise:
            with exact.flush_denormals():
                self._kernel_run(x, states, mask, use_mask, outputs, output)
        elif threads is _SLICES:
            self._run_slices(x, states, mask, use_mask, outputs, output)
        elif helper is None:
            self._kernel_run(x, states, mask, use_mask, outputs, output)
        else:
            _run_helped(*helper, lambda: self._kernel_run(
                x, states, mask, use_mask, outputs, output))
        return (outputs if self.return_sequences else None), output, states

    def _threads(self, B, T):
        """How a call on B rows of T steps uses threads: _ALONE (none but the
        caller's), _SLICES (slices of the batch on worker threads, see
        _worth_a_split) or _SHARED (its batch shared with an awake worker from
        inside its kernel, see _helping_worker; on two threads every call from
        _HELP_FLOPS to _SPLIT_FLOPS, on more those below _SPLIT_FLOPS_AWAKE)."""
        if B < 2:
            return _ALONE
        threads = get_num_threads()
        if threads < 2 or getattr(_local, "in_part", False):
            return _ALONE
        flops = self._flops(B, T, self.kernel.shape[0])
        if flops >= _SPLIT_FLOPS or (threads > 2 and flops >= _SPLIT_FLOPS_AWAKE):
            return _SLICES if _worth_a_split(flops) else _ALONE
        return _SHARED if flops >= _HELP_FLOPS else _ALONE

    def _split(self, B, T):
        """Whether this call runs slices of its batch on several threads."""
        return self._threads(B, T) is _SLICES

    def _flops(self, B, T, D):
        """Floating-point operations of the products of a call on (B, T, D) inputs,
        float64's counted twice (they take about twice as long): the measure of work
        that decides a split (_worth_a_split)."""
        flops = 2.0 * B * T * self._gates * self.units * (D + self.units)
        return flops * self._np_dtype.itemsize / 4

    def _run_slices(self, x, states, mask, use_mask, outputs, output):
        """The kernels on slices of the batch: the calling thread runs the first,
        the pool the others; every slice writes its own rows only."""
        def run(rows):
            return lambda: self._kernel_run(
                x[rows], [s[rows] for s in states], mask[rows] if use_mask else mask,
                use_mask, outputs[rows] if self.return_sequences else outputs, output[rows])

        first, *others = _batch_slices(x.shape[0], get_num_threads())
        _run_parts(run(first), [run(rows) for rows in others])

    def trace(self, x, mask=None, initial_state=None):
        """Every gate and state at every step, from the readable equations.

        Returns a dict of (B, T, units) arrays in processing order (reversed in time
        with go_backwards): LSTM i, f, g, o, c, h; GRU z, r, hh, h; SimpleRNN h.
        States are recorded after each step and held where the mask is off, so
        ``trace["h"][:, -1]`` is the final h; gates are recorded as computed. A
        stateful layer starts from its stored states, which the trace leaves as
        they are.
        """
        x, mask, states = self._prepare(x, mask, initial_state, for_kernels=False)
        if not self.built:
            self.build(x.shape[2])
        _, _, record = equations.run(
            self._step_function(), x, states, mask, self.go_backwards,
            self.zero_output_for_mask, record=True)
        return {name: record[name] for name in self._trace_names}


# ---- threads: slices of the batch ------------------------------------------------
#
# Every row of a batch runs its own recurrence, so a layer with a large
# enough batch runs the whole sequence on slices of the batch, one per thread, with
# no synchronisation per step (ONNX Runtime's LSTM does the same). The kernels
# release the GIL. The calling thread runs the first slice; the others go to
# minirnn's worker threads. After a part a worker stays awake for
# handoff.REST_SECONDS (0.2 ms), spinning without the GIL, so that the next call of
# a stream of calls is taken up at once; then it sleeps in its inbox, so nothing
# keeps a core busy between calls further apart (see minirnn.handoff).
#
# A call too small for that round trip through Python shares its batch with an
# awake worker from inside its kernel instead (a job, minirnn.handoff and
# minirnn.worker): the caller's kernel runs the first half of the rows and the
# worker's rest the other, without either taking the GIL. On two threads every
# call from _HELP_FLOPS up to _SPLIT_FLOPS shares so; on more, the calls from
# _SPLIT_FLOPS_AWAKE up split over all the threads.

# How much work (flops of the products) a call needs to gain from a split. Measured
# on the 2-core Xeon (family 6, model 167, a virtual machine), LSTM, median of calls
# 3 ms apart against the same on one thread, and of calls back to back:
# - with the worker asleep, the split loses below about 1e8 flops: (32, 1, 128, 128)
#   8.4e6 flops 147 against 78 µs, (32, 5, 128, 128) 4.2e7 355 against 283,
#   (32, 10, 128, 128) 8.4e7 611 against 594. Woken by the caller, the worker
#   often gets the caller's core, and runs when the caller waits;
# - with the worker awake (back to back), it wins from about 1e7 flops:
#   (64, 1, 128, 128) 1.7e7 87 against 110 µs, (32, 5, 128, 128) 164 against 258,
#   (16, 10, 64, 64) 1.0e7 77 against 93; (32, 1, 128, 128) 8.4e6 61.5 against 58.
# float64's flops count twice (_flops): its (32, 1, 128, 128) steps back to back
# took 134 µs on one thread and 105 split (LSTM), 98 and 83 (GRU).
# - a call shared with an awake worker (same machine, back to back, OpenBLAS's
#   threads quiet) wins from about 4e6 flops, and beats the split wherever both run:
#   (16, 1, 128, 128) 4.2e6 28.3 against 30.1 µs alone, (32, 1, 128, 128) 8.4e6 41.5
#   against 52.2, (64, 1, 128, 128) 64.6 against 98.4 (split 85), (32, 5, 128, 128)
#   134 against 233 (split 156), GRU (32, 1, 128, 128) 33.2 against 41.1; it loses
#   below: (8, 1, 128, 128) 2.1e6 21.3 against 19.3, (32, 1, 64, 64) 23.3 against 21.5.
_SPLIT_FLOPS = 1e8
_SPLIT_FLOPS_AWAKE = 1e7
_HELP_FLOPS = 4e6
_WAKE = object()    # in a worker's inbox: no part, only a rest (see _worth_a_split)
_ALONE, _SLICES, _SHARED = "alone", "slices", "shared"  # see _Recurrent._threads
_threads = None     # set_num_threads; None: NUMBA_NUM_THREADS, as Numba's own default
# A thread that already runs part of a call in parallel (a worker, or a
# Bidirectional running its directions side by side) does not split again: a
# worker must never wait for other workers, or they could all wait for each other.
_local = threading.local()


class _ParallelPart:
    """Marks the current thread as running one part of a parallel call."""

    def __enter__(self):
        self.before = getattr(_local, "in_part", False)
        _local.in_part = True

    def __exit__(self, *error):
        _local.in_part = self.before


class _Task:
    """One part of a parallel call: the callable, then its result or error; ``done``
    is released when it has run."""

    def __init__(self, part):
        self.part, self.result, self.error = part, None, None
        self.done = threading.Lock()
        self.done.acquire()


class _Worker(threading.Thread):
    """A thread that runs parts of parallel calls, one at a time.

    A part comes through its inbox (a ``queue.SimpleQueue``) and the caller waits
    for it on a lock. After each part the worker spins for a short while (see
    minirnn.handoff, where the caller's kernel posts the next part and waits for
    its end without either thread waiting for the GIL): a round trip of about 3 µs
    on the project's 2-core Xeon while it is awake, against 50-75 µs to wake a
    worker that sleeps in its inbox (and about 90 µs through
    ``concurrent.futures``). ``_WAKE`` in the inbox only starts such a spin.

    After each part the worker puts itself back among the idle ones, whatever its
    caller does meanwhile (an interrupted caller never leaves a worker lost or
    busy), or ends when there are more workers than the thread setting allows.
    """

    def __init__(self):
        super().__init__(name="minirnn", daemon=True)
        self.inbox = queue.SimpleQueue()
        self.row = handoff.take_row()  # its row of handoff.TABLE, -1: it never spins

    def run(self):
        _local.in_part = True
        try:
            self._serve()
        finally:
            handoff.give_back_row(self.row)

    def _serve(self):
        while True:
            task = self.inbox.get()
            if task is None:
                return
            if task is _WAKE:
                seen = handoff.posted(self.row)
                if _idle_again(self):
                    _rest(self.row, seen, finished=False)
                    continue
                return
            try:
                task.result = task.part()
            except BaseException as error:  # handed to the caller, raised there
                task.error = error
            task.part = None
            seen = handoff.posted(self.row)  # parts posted from here on are new
            stay = _idle_again(self)
            task.done.release()
            if not stay:
                handoff.finish(self.row)  # the caller's kernel waits for this signal
                return
            _rest(self.row, seen)


# Workers waiting for a part, and how many exist (at most get_num_threads() - 1 are
# made; a call that finds none idle, because another Python thread's call has them,
# runs its parts on the calling thread).
_idle = set()
_made = 0
_idle_lock = threading.Lock()


def _idle_again(worker):
    """Put ``worker`` back among the idle ones; False (and counted out) when there
    are more workers than the thread setting allows, and it should end."""
    global _made
    with _idle_lock:
        if _made > get_num_threads() - 1:
            _made -= 1
            return False
        _idle.add(worker)
        return True


def _take_workers(wanted):
    """Up to ``wanted`` idle workers, made as needed within the thread setting."""
    global _made
    if handoff.SPINS and _made < get_num_threads() - 1:  # a worker may be made below
        _compile_rest()  # here, not in the new worker (see minirnn.worker)
    with _idle_lock:
        taken = [_idle.pop() for _ in range(min(wanted, len(_idle)))]
        new = min(wanted - len(taken), max(0, get_num_threads() - 1 - _made))
        _made += new
    for k in range(new):
        worker = _Worker()
        try:
            worker.start()
        except RuntimeError:  # no more threads: the caller runs the rest itself
            handoff.give_back_row(worker.row)
            with _idle_lock:
                _made -= new - k
            break
        taken.append(worker)
    return taken


def _worth_a_split(flops):
    """Whether a call with ``flops`` of products runs on several threads: with at
    least _SPLIT_FLOPS, or with _SPLIT_FLOPS_AWAKE when an idle worker is awake.
    A call in between that finds none awake runs alone and wakes one, so that a
    stream of such calls (one step each) splits from its second or third call on."""
    if flops >= _SPLIT_FLOPS:
        return True
    if flops < _SPLIT_FLOPS_AWAKE or not handoff.SPINS:
        return False
    if any(handoff.spinning(worker.row) for worker in tuple(_idle)):  # a snapshot
        return True
    _wake_a_worker()
    return False


def _wake_a_worker():
    """Start the rest of an idle worker (made if the thread setting allows), so that
    the next call of a stream finds it awake."""
    for worker in _take_workers(1):
        worker.inbox.put(_WAKE)


def _helping_worker(kind):
    """(worker, kind, entry point) for an idle worker that is awake now, taken to
    run some of the batch rows of a call (a job of ``kind``, see minirnn.handoff),
    or None: no worker is awake (then one is woken, so that the next call of a
    stream finds it awake). The job's entry point is compiled here the first time
    (or read from the cache), on the calling thread."""
    if not handoff.SPINS:
        return None
    entry = kernels.job_address(kind)
    with _idle_lock:
        for worker in _idle:
            if handoff.spinning(worker.row):
                _idle.remove(worker)
                return worker, kind, entry
    _wake_a_worker()
    return None


def _run_helped(worker, kind, entry, run):
    """Run ``run`` (a kernel call) here with a helper plan for ``worker`` and jobs
    of ``kind`` (with their ``entry`` point); this call holds the worker until the
    kernel returns (see _helping_worker)."""
    plan = handoff.helper_plan(worker.row, kind, entry)
    try:
        handoff.offer(plan)
        try:
            run()
        finally:
            handoff.withdraw(plan)  # never left for another kernel of this thread
    finally:
        if not _idle_again(worker):
            worker.inbox.put(None)  # more workers than the thread setting: it ends


def _run_parts(first, others):
    """Run ``others`` (callables) on worker threads and ``first`` here, wait for
    all, and raise: the caller's error if a part here failed, else the first
    worker's. Return first's result and the others' results. Parts that find no
    idle worker run here, after ``first``."""
    workers = _take_workers(len(others))
    tasks = [_Task(part) for part in others[:len(workers)]]
    # Each worker's count of finished parts, read before it gets this one: the
    # first kernel that ``first`` runs posts the parts and waits for that count + 1.
    plan = handoff.plan([worker.row for worker in workers])
    begun = 0
    try:
        for worker, task in zip(workers, tasks):
            worker.inbox.put(task)
            begun += 1
        with _ParallelPart():
            handoff.offer(plan)
            try:
                result = first()
            finally:
                handoff.withdraw(plan)  # posts the parts here if no kernel ran
            results = [part() for part in others[len(workers):]]
    finally:
        # A worker not handed its part (an interrupt just above) is idle as it was;
        # one that was puts itself back when done. (An interrupt inside the loop
        # above, around one put, can lose that one worker from the idle set.)
        with _idle_lock:
            _idle.update(workers[begun + 1:])
        for task in tasks[:begun]:
            task.done.acquire()
    for task in tasks:
        if task.error is not None:
            raise task.error
    return result, [task.result for task in tasks] + results


def set_num_threads(n):
    """Use at most ``n`` threads per layer call (1: the calling thread only).

    The default is Numba's NUMBA_NUM_THREADS (the number of CPUs unless that
    variable says otherwise). Only layers with at least two batch rows and
    enough work split their batch; results do not depend on the split.
    """
    global _threads, _made
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"`n` must be a positive integer; received {n!r}.")
    _threads = int(n)
    with _idle_lock:  # idle workers beyond the new setting end now, busy ones when done
        while _made > _threads - 1 and _idle:
            _idle.pop().inbox.put(None)
            _made -= 1


def get_num_threads():
    """The most threads a layer call uses (see :func:`set_num_threads`)."""
    if _threads is not None:
        return _threads
    return max(1, int(_numba_config.NUMBA_NUM_THREADS))  # reading it starts no thread pool


def _forget_workers():
    """After fork: the child has none of the parent's threads."""
    global _idle, _made, _idle_lock
    _idle, _made, _idle_lock = set(), 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


@functools.lru_cache(maxsize=256)
def _batch_slices(batch, threads):
    """Near-equal slices of the batch, one per thread, in whole tiles of 8 rows
    where the batch allows (minirnn.gemm's widest tile); a tuple, kept for the
    next call."""
    parts = min(threads, batch)
    unit = 8 if batch >= 8 * parts else 1
    blocks = -(-batch // unit)
    bounds = [min(batch, unit * (blocks * k // parts)) for k in range(parts + 1)]
    return tuple(slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a)


_NO_MASK = np.ones((1, 1), bool)  # placeholder the kernels do not read without a mask
# Placeholders for every output, which the kernels write only with return_sequences.
_NO_OUTPUTS = {name: np.empty((1, 1, 1), dtype) for name, dtype in _DTYPES.items()}
# "Not packed": a GRU's unused U_h (reset_after=True), per dtype.
_NO_PANELS = {name: np.zeros((0, 1, gemm.panel_width(dtype)), dtype)
              for name, dtype in _DTYPES.items()}


def _no_bias(size, dtype):
    """The bias the kernels add for a layer without one: -0.0, for which x + b is x
    bit for bit (+0.0 would turn a -0 sum into +0, where Keras adds nothing)."""
    return np.full(size, -0.0, dtype)


def _orthogonal(rng, rows, cols):
    """Keras' Orthogonal initializer (gain 1) for a (rows, cols) matrix."""
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return q.T if rows < cols else q


class LSTM(_Recurrent):
    """Long Short-Term Memory layer, Keras 3's ``keras.layers.LSTM`` for inference.

    Equations: see :func:`minirnn.equations.lstm_step`. Weights:
    kernel (D, 4M), recurrent_kernel (M, 4M), bias (4M,), gate order i, f, c, o.

    Args:
        units: M, the size of h and c.
        activation: phi, Keras 3 name (default "tanh"); None means linear.
        recurrent_activation: sigma for the gates (default "sigmoid").
        use_bias: whether the layer has a bias.
        return_sequences: return every step's output (B, T, M), not only the last.
        return_state: also return the final states: [output, h, c].
        go_backwards: process the sequence from the last step to the first; the
            output sequence is not reversed back.
        stateful: keep the final states of each batch row as the next call's initial
            states (fixed batch size; reset_state() zeroes them).
        zero_output_for_mask: output zeros at masked steps (otherwise the previous
            output is repeated).
        dtype: "float32" or "float64": the precision of weights and computation.
        unit_forget_bias: initialise the forget gate bias to one (initialisation only).
        seed: seed of the weight initialisation.
        engine: "numba" (compiled kernels, default) or "numpy" (readable equations).
        bitwise: reproduce Keras' float32 results on TensorFlow's CPU bit for bit
            (float32 and the activations in minirnn.bitwise.ACTIVATIONS only; raises
            BitwiseUnsupportedError where minirnn.bitwise_support() says no).
        implementation: Keras' order of the sums: 2 (default) z = (x W + h U) + b,
            1 z = (x W + b) + h U, which Keras also takes when recurrent_dropout > 0
            (so does minirnn). The results differ in rounding only.
        dropout, recurrent_dropout, unroll, use_cudnn, initializers, regularizers,
            constraints: accepted, no effect at inference.

    Every argument is also an attribute that may be assigned later (checked at
    once; the weights fix units and use_bias), as are ``kernel``,
    ``recurrent_kernel``, ``bias`` (read-only arrays) and ``states``.
    """

    _gates = 4
    _job = "lstm"
    _state_names = ("h", "c")
    _trace_names = ("i", "f", "g", "o", "c", "h")

    _checks = {**_Recurrent._checks, "unit_forget_bias": _plain(_check_bool)}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, zero_output_for_mask=False,
                 dtype="float32", unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = unit_forget_bias
        super().__init__(units, activation, recurrent_activation, use_bias, return_sequences,
                         return_state, go_backwards, stateful, zero_output_for_mask, dtype,
                         **kwargs)

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}

    def _initial_bias(self):
        bias = np.zeros(4 * self.units)
        if self.unit_forget_bias:
            bias[self.units:2 * self.units] = 1.0
        return bias

    def _step_function(self):
        act = activations.get(self.activation)
        rec_act = activations.get(self.recurrent_activation)

        def step(x, h, c):
            return equations.lstm_step(x, h, c, self.kernel, self.recurrent_kernel, self.bias,
                                       act, rec_act)
        return step

    def _prepare_kernel_weights(self):
        self._w, self._u = _for_kernels(self.kernel), _for_kernels(self.recurrent_kernel)
        self._b = _for_kernels(self.bias) if self.use_bias else \
            _no_bias(4 * self.units, self.dtype)
        self._bias_first = self.use_bias and self.implementation == 1
        self._panels = (self._packed(self.kernel), self._packed(self.recurrent_kernel))

    def _kernel_run(self, x, states, mask, use_mask, outputs, output):
        h, c = states
        act, rec_act = self._codes
        kernels.lstm_sequence(
            x, self._w, self._u, self._b, h, c, mask, use_mask,
            self.go_backwards, self.zero_output_for_mask, self.return_sequences,
            act, rec_act, outputs, output, self._bias_first, self.bitwise, *self._panels,
            *handoff.claim())


class GRU(_Recurrent):
    """Gated Recurrent Unit layer, Keras 3's ``keras.layers.GRU`` for inference.

    Equations (both variants): see :func:`minirnn.equations.gru_step`. Weights:
    kernel (D, 3M), recurrent_kernel (M, 3M), gate order z, r, h; bias (2, 3M) with
    reset_after=True (input row, recurrent row), (3M,) with reset_after=False.

    Args:
        reset_after: apply the reset gate after the recurrent product (Keras' and
            cuDNN's default, True) or before it (the original GRU, False).
        Other arguments as :class:`LSTM` (without unit_forget_bias); return_state
        gives [output, h]. With a bias, the weights fix reset_after too.
    """

    _gates = 3
    _job = "gru"
    _trace_names = ("z", "r", "hh", "h")

    _checks = {**_Recurrent._checks, "reset_after": _plain(_check_bool)}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, zero_output_for_mask=False,
                 dtype="float32", reset_after=True, **kwargs):
        self.reset_after = reset_after
        super().__init__(units, activation, recurrent_activation, use_bias, return_sequences,
                         return_state, go_backwards, stateful, zero_output_for_mask, dtype,
                         **kwargs)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _products(self, input_dim):
        if self.reset_after or self.implementation == 1:
            return super()._products(input_dim)
        M = self.units
        return [(input_dim, 3 * M), (M, 2 * M), (M, M)]

    def _prepare_kernel_weights(self):
        M, dtype = self.units, np.dtype(self.dtype)
        if self.reset_after:
            self._u, self._u_h = _for_kernels(self.recurrent_kernel), np.zeros((1, 1), dtype)
        else:
            self._u = np.ascontiguousarray(self.recurrent_kernel[:, :2 * M])
            self._u_h = np.ascontiguousarray(self.recurrent_kernel[:, 2 * M:])
        self._w = _for_kernels(self.kernel)
        bias = _for_kernels(self.bias) if self.use_bias else None
        zeros = _no_bias(3 * M, dtype)
        if not self.use_bias:
            self._b_in, self._b_rec = zeros, zeros
        elif self.reset_after:
            self._b_in, self._b_rec = bias[0], bias[1]
        else:
            self._b_in, self._b_rec = bias, zeros
        self._panels = (self._packed(self.kernel), self._packed(self._u),
                        self._packed(self._u_h) if not self.reset_after else _NO_PANELS[self.dtype])

    def _step_function(self):
        act = activations.get(self.activation)
        rec_act = activations.get(self.recurrent_activation)

        def step(x, h):
            return equations.gru_step(x, h, self.kernel, self.recurrent_kernel, self.bias,
                                      act, rec_act, self.reset_after)
        return step

    def _kernel_run(self, x, states, mask, use_mask, outputs, output):
        act, rec_act = self._codes
        kernels.gru_sequence(
            x, self._w, self._u, self._u_h, self._b_in, self._b_rec, self.reset_after,
            states[0], mask, use_mask, self.go_backwards, self.zero_output_for_mask,
            self.return_sequences, act, rec_act, outputs, output, self.bitwise, *self._panels,
            *handoff.claim())


class SimpleRNN(_Recurrent):
    """Fully connected (Elman) RNN layer, Keras 3's ``keras.layers.SimpleRNN``.

    Equation: see :func:`minirnn.equations.simple_rnn_step`. Weights:
    kernel (D, M), recurrent_kernel (M, M), bias (M,).

    Args: as :class:`LSTM`, without recurrent_activation and unit_forget_bias;
    return_state gives [output, h].
    """

    def __init__(self, units, activation="tanh", use_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False,
                 zero_output_for_mask=False, dtype="float32", **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError(
                "SimpleRNN got unexpected keyword argument(s) ['recurrent_activation']: "
                "a SimpleRNN has no gates, only `activation` (as in Keras).")
        super().__init__(units, activation, "sigmoid", use_bias, return_sequences,
                         return_state, go_backwards, stateful, zero_output_for_mask, dtype,
                         **kwargs)

    def _configure(self, changed):
        if changed == "recurrent_activation":
            raise ValueError(
                "`recurrent_activation`: a SimpleRNN has no gates, only `activation` "
                "(as in Keras); it stays 'sigmoid' and is not used.")
        super()._configure(changed)

    def _step_function(self):
        act = activations.get(self.activation)

        def step(x, h):
            return equations.simple_rnn_step(x, h, self.kernel, self.recurrent_kernel,
                                             self.bias, act)
        return step

    def _prepare_kernel_weights(self):
        self._w, self._u = _for_kernels(self.kernel), _for_kernels(self.recurrent_kernel)
        self._b = _for_kernels(self.bias) if self.use_bias else _no_bias(self.units, self.dtype)
        self._panels = (self._packed(self.kernel), self._packed(self.recurrent_kernel))

    def _kernel_run(self, x, states, mask, use_mask, outputs, output):
        kernels.simple_rnn_sequence(
            x, self._w, self._u, self._b, states[0], mask, use_mask,
            self.go_backwards, self.zero_output_for_mask, self.return_sequences,
            self._codes[0], outputs, output, self.bitwise, *self._panels, *handoff.claim())


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _copy_layer(layer, **changes):
    config = {**layer.get_config(), **changes}
    return type(layer)(**config)


def _with_bitwise(layer, bitwise):
    """``layer``, or a copy of it (weights and states too) with another ``bitwise``."""
    if layer.bitwise == bitwise:
        return layer
    copy = _copy_layer(layer, bitwise=bitwise)
    if layer.built:
        copy.set_weights(layer.get_weights())
    if layer.states is not None:
        copy.states = [s.copy() for s in layer.states]
    return copy


def _recurrent_setting(layer, value, name):
    if not isinstance(value, _Recurrent):
        raise TypeError(
            f"`{name}` must be a minirnn LSTM, GRU or SimpleRNN; received "
            f"{type(value).__name__}.")
    return value


def _merge_mode_setting(layer, value, name):
    return _check_choice(value, _MERGE_MODES, name)


class Bidirectional(_Configurable):
    """Bidirectional wrapper, Keras 3's ``keras.layers.Bidirectional`` for inference.

    The forward layer is a copy of ``layer`` (with its weights, if it has any); the
    backward layer is ``backward_layer`` or a copy of ``layer``'s configuration with
    ``go_backwards=True`` and fresh weights. As in Keras, both layers get
    ``zero_output_for_mask = return_sequences``. With return_sequences the backward
    outputs are flipped back in time before merging, so ``output[:, t]`` pairs the
    forward and backward outputs of input step t; the backward final state belongs
    to ``output[:, 0]``.

    Args:
        layer: a minirnn LSTM, GRU or SimpleRNN.
        merge_mode: "concat" (default), "sum", "mul", "ave" or None (return the two
            outputs as a list [forward, backward]).
        backward_layer: optional layer for the backward direction; must have the
            opposite go_backwards and the same return_sequences, return_state and
            stateful as ``layer``.
        dtype: the dtype of the merged output (states keep their layer's dtype).
            None (default) means ``layer.dtype``. Keras' own default is the float32
            policy whatever the wrapped layers compute in, so a Keras Bidirectional
            around float64 layers returns float32 outputs; from_keras carries that.
        bitwise: True or False sets the mode of both directions (copying
            ``backward_layer`` if its mode differs); None (default) keeps the
            layers' own, which must agree. With bitwise, the merge also runs as
            TensorFlow's does (denormal results flushed to zero).

    Calling returns the merged output, or with return_state the list
    [output, *forward_states, *backward_states] ([forward, backward, *states] with
    merge_mode None). initial_state is split in half: forward first.

    ``merge_mode``, ``dtype``, ``forward_layer`` and ``backward_layer`` may be
    assigned later (checked at once). ``return_sequences``, ``return_state``,
    ``stateful`` and ``bitwise`` are the two layers': assigning one sets both.
    Since the two layers can also be changed through references of their own,
    each call checks again that they still make a pair.
    """

    _checks = {
        "merge_mode": _merge_mode_setting,
        "dtype": _dtype_setting,  # of the merged output
        "forward_layer": _recurrent_setting,
        "backward_layer": _recurrent_setting,
    }

    def __init__(self, layer, merge_mode="concat", backward_layer=None, dtype=None,
                 bitwise=None, **kwargs):
        unknown = sorted(set(kwargs) - {"name", "trainable", "weights"})
        if unknown:
            raise TypeError(f"Bidirectional got unexpected keyword argument(s) {unknown}.")
        _recurrent_setting(self, layer, "layer")
        if backward_layer is not None:
            _recurrent_setting(self, backward_layer, "backward_layer")
        self.merge_mode = merge_mode
        self.forward_layer = _copy_layer(layer)
        if layer.built:
            self.forward_layer.set_weights(layer.get_weights())
        if backward_layer is None:
            seed = None if layer.seed is None else layer.seed + 1
            backward_layer = _copy_layer(layer, go_backwards=True, seed=seed)
        self.backward_layer = backward_layer
        self.dtype = layer.dtype if dtype is None else dtype
        self._check_pair("backward_layer", zero_output_for_mask=False)
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences
        if bitwise is not None:
            bitwise = _check_bool(bitwise, "bitwise")
            self.forward_layer = _with_bitwise(self.forward_layer, bitwise)
            self.backward_layer = _with_bitwise(self.backward_layer, bitwise)
        self._ready = True
        self._configure("backward_layer")

    def _configure(self, changed):
        self._check_pair(changed)

    def _check_pair(self, changed, zero_output_for_mask=True):
        """Raise unless the two layers make a pair Keras would build (``changed``:
        what was assigned, for the message)."""
        forward, backward = self.forward_layer, self.backward_layer
        for attribute in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ValueError(
                    f"`backward_layer` must have the same {attribute} as `layer`: "
                    f"expected {getattr(forward, attribute)}; received "
                    f"{getattr(backward, attribute)} (after `{changed}` was set; assign "
                    f"Bidirectional.{attribute} to change both).")
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "The forward and backward layers must have different `go_backwards`: "
                f"expected backward go_backwards={not forward.go_backwards}; "
                f"received {backward.go_backwards}.")
        if forward.dtype != backward.dtype:
            raise ValueError(
                f"`backward_layer` must have dtype {forward.dtype!r}; received "
                f"{backward.dtype!r}.")
        if self.merge_mode in ("sum", "mul", "ave") and forward.units != backward.units:
            raise ValueError(
                f"merge_mode={self.merge_mode!r} adds or multiplies the two outputs: "
                f"`backward_layer` must have {forward.units} units like `layer`; received "
                f"{backward.units}.")
        if zero_output_for_mask:
            for direction, sub in (("forward", forward), ("backward", backward)):
                if sub.zero_output_for_mask != sub.return_sequences:
                    raise ValueError(
                        f"The {direction} layer's `zero_output_for_mask` must equal its "
                        f"return_sequences ({sub.return_sequences}), as Keras' "
                        f"Bidirectional sets it; received {sub.zero_output_for_mask}.")
        if forward.bitwise != backward.bitwise:
            raise ValueError(
                f"`backward_layer` must have the same bitwise as `layer`: expected "
                f"{forward.bitwise}; received {backward.bitwise} "
                "(or pass bitwise= to Bidirectional, or assign Bidirectional.bitwise).")
        if forward.bitwise and self.dtype != "float32":
            raise ValueError(
                "Bidirectional(bitwise=True) merges in float32 as Keras does: `dtype` must "
                f"be 'float32' or None; received {self.dtype!r}.")

    def _both(self, attribute, value):
        """Assign ``attribute`` on both layers, or on neither if either refuses."""
        forward, backward = self.forward_layer, self.backward_layer
        old = (getattr(forward, attribute), getattr(backward, attribute))
        try:
            setattr(forward, attribute, value)
            setattr(backward, attribute, value)
            if attribute == "return_sequences":
                forward.zero_output_for_mask = backward.zero_output_for_mask = \
                    forward.return_sequences
            self._check_pair(attribute)
        except BaseException:
            setattr(forward, attribute, old[0])
            setattr(backward, attribute, old[1])
            if attribute == "return_sequences":
                forward.zero_output_for_mask, backward.zero_output_for_mask = old
            raise

    return_sequences = property(lambda self: self.forward_layer.return_sequences,
                                lambda self, value: self._both("return_sequences", value))
    return_state = property(lambda self: self.forward_layer.return_state,
                            lambda self, value: self._both("return_state", value))
    stateful = property(lambda self: self.forward_layer.stateful,
                        lambda self, value: self._both("stateful", value))
    bitwise = property(lambda self: self.forward_layer.bitwise,
                       lambda self, value: self._both("bitwise", value))

    def __repr__(self):
        return (f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r}, "
                f"backward_layer={self.backward_layer!r}, dtype={self.dtype!r}, "
                f"bitwise={self.bitwise!r})")

    @property
    def built(self):
        return self.forward_layer.built and self.backward_layer.built

    def set_weights(self, weights):
        """Forward layer's weights, then the backward layer's (Keras' order)."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"`weights` must be a list; received {type(weights).__name__}.")
        n_forward = 3 if self.forward_layer.use_bias else 2
        n_backward = 3 if self.backward_layer.use_bias else 2
        if len(weights) != n_forward + n_backward:
            raise ValueError(
                f"`weights` for this Bidirectional must hold {n_forward + n_backward} arrays "
                f"(forward then backward); received {len(weights)}.")
        self.forward_layer.set_weights(list(weights[:n_forward]))
        self.backward_layer.set_weights(list(weights[n_forward:]))

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def reset_state(self):
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    reset_states = reset_state

    def _split_initial_state(self, initial_state):
        """(forward states, backward states) from Keras' flat list, split in half."""
        if initial_state is None:
            return None, None
        if not isinstance(initial_state, (list, tuple)):
            raise ValueError(
                "`initial_state` for Bidirectional must be a list: the forward states "
                f"then the backward states; received {type(initial_state).__name__}.")
        n_forward = len(self.forward_layer._state_names)
        n = n_forward + len(self.backward_layer._state_names)
        if len(initial_state) != n:
            raise ValueError(
                f"`initial_state` for this Bidirectional must hold {n} arrays (forward "
                f"states then backward states); received {len(initial_state)}.")
        if n_forward * 2 != n:
            raise ValueError(
                "`initial_state` cannot be given to a Bidirectional whose layers have "
                f"different numbers of states ({type(self.forward_layer).__name__} forward, "
                f"{type(self.backward_layer).__name__} backward): Keras splits the list in "
                "half.")
        half = len(initial_state) // 2
        return list(initial_state[:half]), list(initial_state[half:])

    def __call__(self, x, mask=None, initial_state=None, training=None):
        """Run both directions and merge; arguments as the wrapped layer's call."""
        self._check_pair("a layer's attribute")
        forward_state, backward_state = self._split_initial_state(initial_state)
        # Validate both before running either, so a refused call leaves no partial state.
        x_checked, mask_checked, _ = self.forward_layer._prepare(x, mask, forward_state)
        self.backward_layer._prepare(x_checked, mask_checked, backward_state)
        forward = lambda: self.forward_layer(x_checked, mask_checked, forward_state)  # noqa
        backward = lambda: self.backward_layer(x_checked, mask_checked, backward_state)  # noqa
        if self._side_by_side(x_checked):
            y, (y_rev,) = _run_parts(forward, [backward])
        else:
            y, y_rev = forward(), backward()
        states = []
        if self.return_state:
            states = y[1:] + y_rev[1:]
            y, y_rev = y[0], y_rev[0]
        y, y_rev = y.astype(self.dtype, copy=False), y_rev.astype(self.dtype, copy=False)
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        if self.bitwise:
            with exact.flush_denormals():
                output = self._merge(y, y_rev)
        else:
            output = self._merge(y, y_rev)
        if self.merge_mode is None:
            return output + states if self.return_state else output
        return [output, *states] if self.return_state else output

    def _side_by_side(self, x):
        """Whether the two directions run at once, on two threads: with threads to
        spare, both on the compiled kernels (whose products call no BLAS, which
        would start threads of its own), and enough work to pay for the hand-off."""
        forward, backward = self.forward_layer, self.backward_layer
        if get_num_threads() < 2 or getattr(_local, "in_part", False) or \
                not (forward._use_kernels() and backward._use_kernels()):
            return False
        B, T, D = x.shape
        return _worth_a_split(forward._flops(B, T, D) + backward._flops(B, T, D))

    def _merge(self, y, y_rev):
        """Keras' merge of the forward and the (time-aligned) backward outputs."""
        if self.merge_mode == "concat":
            output = np.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / y.dtype.type(2)
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, np.ascontiguousarray(y_rev)]
        return output

    def trace(self, x, mask=None, initial_state=None):
        """{"forward": trace, "backward": trace} of the two layers (processing order)."""
        self._check_pair("a layer's attribute")
        forward_state, backward_state = self._split_initial_state(initial_state)
        return {"forward": self.forward_layer.trace(x, mask, forward_state),
                "backward": self.backward_layer.trace(x, mask, backward_state)}
