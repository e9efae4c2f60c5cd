"""LSTM, GRU and SimpleRNN: Keras 3's recurrent layers for inference.

A layer holds its configuration, its weights in Keras' layout and, when stateful,
its states. Calling it validates the inputs in Python, then runs either the
compiled kernels (:mod:`minirnn.kernels`, the default) or the readable equations
(:mod:`minirnn.equations`, ``engine="numpy"``), and returns Keras' structure: one
array, or ``[output, *states]`` with ``return_state=True``.

Every public attribute (``units``, ``kernel``, ``activation``, ``dtype``, ...) can be
read and assigned after construction; each assignment is checked when it happens
(:mod:`minirnn.attributes`). A large enough call runs slices of its batch on
several threads, or shares it with an awake worker (:mod:`minirnn.parallel`).
Bidirectional wraps two of these layers (:mod:`minirnn.bidirectional`).

May use: numpy, :mod:`minirnn.attributes`, :mod:`minirnn.activations`,
:mod:`minirnn.equations`, :mod:`minirnn.kernels` (with :mod:`minirnn.gemm` and
:mod:`minirnn.exact`, whose products it packs), :mod:`minirnn.bitwise` and
:mod:`minirnn.parallel`.
"""

import numpy as np

from . import activations, equations, exact, gemm, kernels
from .attributes import (DTYPES, Configurable, activation_setting, check_bool, check_rate,
                         check_seed, check_units, dtype_setting, engine_setting, for_kernels,
                         frozen, implementation_setting, numeric_array, plain, read_only,
                         states_setting, use_cudnn_setting, weight_setting)
from .bitwise import ACTIVATIONS as _BITWISE_ACTIVATIONS
from .bitwise import check_products as _check_bitwise_products
from .bitwise import require as _require_bitwise
from .parallel import handoff, policy, workers
from .parallel.workers import get_num_threads, set_num_threads

__all__ = ["LSTM", "GRU", "SimpleRNN", "set_num_threads", "get_num_threads"]

# Keras arguments that only matter for training or for speed: accepted, no effect.
_IGNORED = frozenset([
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "name", "trainable", "input_shape", "batch_input_shape",
    "batch_size", "input_dim",
])

_NO_MASK = np.ones((1, 1), bool)  # placeholder the kernels do not read without a mask
# Placeholders for every output, which the kernels write only with return_sequences.
_NO_OUTPUTS = {name: np.empty((1, 1, 1), dtype) for name, dtype in DTYPES.items()}
# "Not packed": a GRU's unused U_h (reset_after=True), per dtype.
_NO_PANELS = {name: np.zeros((0, 1, gemm.panel_width(dtype)), dtype)
              for name, dtype in DTYPES.items()}


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


class Recurrent(Configurable):
    """What LSTM, GRU and SimpleRNN share: arguments, weights, states, calling.

    A subclass sets ``_gates`` (weight blocks per unit), ``_state_names``, and
    implements ``_bias_shape``, ``_initial_bias``, ``_step_function`` and
    ``_kernel_run``.
    """

    _gates = 1
    _state_names = ("h",)
    _trace_names = ("h",)
    _job = "simple_rnn"  # its kernel's kind of job (kernels.JOB_KINDS, minirnn.parallel.handoff)

    _checks = {
        "units": plain(check_units),
        "activation": activation_setting,
        "recurrent_activation": activation_setting,
        "use_bias": plain(check_bool),
        "return_sequences": plain(check_bool),
        "return_state": plain(check_bool),
        "go_backwards": plain(check_bool),
        "stateful": plain(check_bool),
        "zero_output_for_mask": plain(check_bool),
        "unroll": plain(check_bool),
        "dtype": dtype_setting,
        "dropout": plain(check_rate),
        "recurrent_dropout": plain(check_rate),
        "implementation": implementation_setting,
        "use_cudnn": use_cudnn_setting,
        "seed": plain(check_seed),
        "engine": engine_setting,
        "bitwise": plain(check_bool),
        "kernel": weight_setting,            # W (input_dim, gates * units), read-only
        "recurrent_kernel": weight_setting,  # U (units, gates * units), read-only
        "bias": weight_setting,              # b, None without use_bias; read-only
        "states": states_setting,            # a stateful layer's, after its last call
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
                self.__dict__[name] = frozen(self.__dict__[name], dtype)
        if self.states is not None and self.states[0].dtype != dtype:
            self.__dict__["states"] = tuple(frozen(s, dtype) for s in self.states)
        self._check_weights(changed)
        self._check_states(changed)
        if self.bitwise:
            self._check_bitwise()
        self._codes = (self._code_of(self.activation),
                       self._code_of(self.recurrent_activation))
        self._compiled = self.engine == "numba" and None not in self._codes
        # The input width of a call __call__ may take on its short path (_call_one_row):
        # built, on the compiled kernels and not bitwise; None otherwise.
        self._one_row_width = self.kernel.shape[0] if (
            self.built and self._compiled and not self.bitwise) else None
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

    def _pickled(self):
        """Pickling (see :func:`minirnn.attributes.rebuild`): the configuration, then
        the weights and the states, each assigned as ``layer.kernel = ...`` is."""
        assignments = []
        if self.built:
            assignments.append({"kernel": self.kernel, "recurrent_kernel": self.recurrent_kernel,
                                "bias": self.bias})
        if self.states is not None:
            assignments.append({"states": list(self.states)})
        plain = self._plain_attributes()
        if plain:
            assignments.append(plain)
        return self.get_config(), assignments

    @property
    def built(self):
        return self.kernel is not None

    @property
    def states(self):
        """A stateful layer's states after its last call, (h,) or (h, c), each
        (batch, units); None before its first call. Each read gives read-only views:
        the layer keeps its own arrays, which calls replace and never write into.
        Assigning ``layer.states = [h, c]`` checks and copies the values."""
        stored = self.__dict__["states"]
        return None if stored is None else tuple(read_only(s) for s in stored)

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
        arrays = [numeric_array(w, f"weights[{k}] ({names[k]})") for k, w in enumerate(weights)]
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
        summing oneDNN's blocks of k on them; see kernels.products._exact_product)."""
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
            x = numeric_array(x, "x")
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
            mask = numeric_array(mask, "mask")
            if mask.shape != (B, T):
                raise ValueError(
                    f"`mask` must have shape (batch, timesteps) = {(B, T)}; "
                    f"received {mask.shape}.")
            mask = np.ascontiguousarray(mask != 0)
        if initial_state is None:
            states = self._start_states(B)
        else:
            self._stored_states(B)  # a stateful layer keeps its batch size
            if len(self._state_names) == 1 and not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            states = self._checked_states(initial_state, "initial_state",
                                          f"for {type(self).__name__}", B)
        if self.bitwise and for_kernels:
            _check_bitwise_products(B, self._products(D), f"{type(self).__name__}(bitwise=True)")
        return x, mask, states

    def _stored_states(self, B):
        """The states a stateful layer stored, for a call on B rows (None where it
        has none, or is not stateful); another batch size is refused."""
        stored = self.__dict__["states"] if self.stateful else None
        if stored is not None and stored[0].shape[0] != B:
            raise ValueError(
                f"This layer is stateful: `x` must keep the batch size "
                f"{stored[0].shape[0]} of its states (call reset_state() does not "
                f"change it; create a new layer for another batch size); received "
                f"batch size {B}.")
        return stored

    def _start_states(self, B):
        """The states a call on B rows without initial_state starts from: fresh
        copies of a stateful layer's stored ones (the kernels write into them), else
        zeros."""
        stored = self._stored_states(B)
        if stored is not None:
            return [s.copy() for s in stored]
        return [np.zeros((B, self.units), self._np_dtype) for _ in self._state_names]

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
            value = numeric_array(value, f"{argument} ({name})")
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
        if mask is None and initial_state is None and type(x) is np.ndarray and \
                x.ndim == 3 and x.shape[0] == 1 and x.shape[1] and \
                x.shape[2] == self._one_row_width and x.dtype == self._np_dtype and \
                x.flags.c_contiguous:
            return self._call_one_row(x)
        x, mask, states = self._prepare(x, mask, initial_state)
        if not self.built:
            self.build(x.shape[2])
        outputs, output, states = self._forward(x, mask, states)
        return self._result(outputs, output, states)

    def _call_one_row(self, x):
        """__call__ on one sequence that needs no conversion or check: ``x`` a
        C-contiguous (1, T, input_dim) array in the layer's dtype, no mask and no
        initial state, on a built layer that runs the compiled kernels (not bitwise).
        The general path's choices are known here (one row runs on the calling
        thread alone), so this is its kernel call without them: the call a
        streaming model makes at every step."""
        dtype, units = self._np_dtype, self.units
        states = self._start_states(1)
        output = np.zeros((1, units), dtype)
        outputs = np.empty((1, x.shape[1], units), dtype) if self.return_sequences \
            else _NO_OUTPUTS[self.dtype]
        self._kernel_run(x, states, _NO_MASK, False, outputs, output)
        return self._result(outputs, output, states)

    def _result(self, outputs, output, states):
        """What a call returns, given its outputs and final states; a stateful
        layer stores those states (valid by construction: without the checks)."""
        if self.stateful:  # the call's fresh arrays: copies of those it returns
            self.__dict__["states"] = tuple([s.copy() for s in states]) \
                if self.return_state else tuple(states)
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
        threads = policy.ALONE if self.bitwise else self._threads(B, T)
        helper = workers.helping_worker(self._job_kind()) if threads is policy.SHARED else None
        if self.bitwise:
            with exact.flush_denormals():
                self._kernel_run(x, states, mask, use_mask, outputs, output)
        elif threads is policy.SLICES:
            self._run_slices(x, states, mask, use_mask, outputs, output)
        elif helper is None:
            self._kernel_run(x, states, mask, use_mask, outputs, output)
        else:
            workers.run_helped(helper, lambda: self._kernel_run(
                x, states, mask, use_mask, outputs, output))
        return (outputs if self.return_sequences else None), output, states

    def _threads(self, B, T):
        """How a call on B rows of T steps uses threads: policy.ALONE, SLICES or
        SHARED (see :func:`minirnn.parallel.policy.threads_for`)."""
        if B < 2:
            return policy.ALONE
        return policy.threads_for(self._flops(B, T, self.kernel.shape[0]))

    def _job_kind(self):
        """This call's kind of job, and the entry point that runs it in a worker
        (compiled here the first time): what a worker that shares the batch runs."""
        kind = kernels.JOB_KINDS[self._job, self.dtype]
        return kind, lambda: kernels.job_address(kind)

    def _split(self, B, T):
        """Whether this call runs slices of its batch on several threads."""
        return self._threads(B, T) is policy.SLICES

    def _flops(self, B, T, D):
        """Floating-point operations of the products of a call on (B, T, D) inputs,
        float64's counted twice (they take about twice as long): the measure of work
        that decides a split (minirnn.parallel.policy)."""
        flops = 2.0 * B * T * self._gates * self.units * (D + self.units)
        return flops * self._np_dtype.itemsize / 4

    def _run_slices(self, x, states, mask, use_mask, outputs, output):
        """The kernels on slices of the batch: the calling thread runs the first,
        the pool the others; every slice writes its own rows only."""
        def run(rows):
            return lambda: self._kernel_run(
                x[rows], [s[rows] for s in states], mask[rows] if use_mask else mask,
                use_mask, outputs[rows] if self.return_sequences else outputs, output[rows])

        first, *others = policy.batch_slices(x.shape[0], workers.get_num_threads())
        workers.run_parts(run(first), [run(rows) for rows in others])

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


class LSTM(Recurrent):
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

    _checks = {**Recurrent._checks, "unit_forget_bias": plain(check_bool)}

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
        self._w, self._u = for_kernels(self.kernel), for_kernels(self.recurrent_kernel)
        self._b = for_kernels(self.bias) if self.use_bias else \
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


class GRU(Recurrent):
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

    _checks = {**Recurrent._checks, "reset_after": plain(check_bool)}

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
            self._u, self._u_h = for_kernels(self.recurrent_kernel), np.zeros((1, 1), dtype)
        else:
            # Copies, writable: a slice that is already contiguous (one unit) would
            # be the read-only weight itself, another type to Numba (another compile).
            self._u = np.array(self.recurrent_kernel[:, :2 * M], order="C")
            self._u_h = np.array(self.recurrent_kernel[:, 2 * M:], order="C")
        self._w = for_kernels(self.kernel)
        bias = for_kernels(self.bias) if self.use_bias else None
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


class SimpleRNN(Recurrent):
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
        self._w, self._u = for_kernels(self.kernel), for_kernels(self.recurrent_kernel)
        self._b = for_kernels(self.bias) if self.use_bias else _no_bias(self.units, self.dtype)
        self._panels = (self._packed(self.kernel), self._packed(self.recurrent_kernel))

    def _kernel_run(self, x, states, mask, use_mask, outputs, output):
        kernels.simple_rnn_sequence(
            x, self._w, self._u, self._b, states[0], mask, use_mask,
            self.go_backwards, self.zero_output_for_mask, self.return_sequences,
            self._codes[0], outputs, output, self.bitwise, *self._panels, *handoff.claim())
