"""Bidirectional: Keras 3's ``keras.layers.Bidirectional`` wrapper, for inference.

A forward and a backward recurrent layer (:mod:`minirnn.layers`) read the same
inputs; the backward one runs with ``go_backwards=True`` and its outputs are
flipped back in time, then the two are merged (concat, sum, ave, mul, or kept
apart with ``merge_mode=None``). With threads to spare, the two directions run at
once (:mod:`minirnn.parallel`).

May use: numpy, :mod:`minirnn.attributes`, :mod:`minirnn.layers`,
:mod:`minirnn.exact` and :mod:`minirnn.parallel`.
"""

import numpy as np

from . import exact
from .attributes import Configurable, check_bool, check_choice, dtype_setting
from .layers import Recurrent
from .parallel import policy, workers

__all__ = ["Bidirectional"]

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
    if not isinstance(value, Recurrent):
        raise TypeError(
            f"`{name}` must be a minirnn LSTM, GRU or SimpleRNN; received "
            f"{type(value).__name__}.")
    return value


def _merge_mode_setting(layer, value, name):
    return check_choice(value, _MERGE_MODES, name)


class Bidirectional(Configurable):
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
        "dtype": dtype_setting,  # of the merged output
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
            bitwise = check_bool(bitwise, "bitwise")
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

    def _pickled(self):
        """Pickling (see :func:`minirnn.attributes.rebuild`): the constructor on the
        two layers, then the forward layer itself (the constructor copies it without
        its states), checked as ``bi.forward_layer = layer`` is."""
        arguments = {"layer": self.forward_layer, "merge_mode": self.merge_mode,
                     "backward_layer": self.backward_layer, "dtype": self.dtype}
        plain = self._plain_attributes()
        return arguments, [{"forward_layer": self.forward_layer}] + ([plain] if plain else [])

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
            y, (y_rev,) = workers.run_parts(forward, [backward])
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
        if not (forward._use_kernels() and backward._use_kernels()):
            return False
        B, T, D = x.shape
        return policy.side_by_side(forward._flops(B, T, D) + backward._flops(B, T, D))

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
