"""Streaming: a stateful model run on a long sequence one slice of time steps per call.

:class:`Streaming` is a stateful model's plan, made when streaming is switched on
(``load_model(path, stateful=True)``, ``model.stateful = True``): which calls carry
something from one slice to the next, and the first layer that cannot run on slices,
refused with the reason. The table below says how each layer runs on a slice.

May use: numpy, :mod:`minirnn.blocks`, :mod:`minirnn.graph`,
:mod:`minirnn.mask_operations` and :mod:`minirnn.recurrent`.
"""

import numpy as np

from . import blocks, graph as graphs, recurrent
from .graph import take as _take
from .mask_operations import MaskOperation

__all__ = ["Streaming", "carry_recurrent", "span"]


# A stateful model runs a long sequence one slice of time steps per call. How each
# layer runs on a slice (checked when streaming is switched on, by Streaming._plan):
#
#   per step: the output at step t reads the inputs at step t only, so the layer runs
#       on any slice as it is and carries nothing:
#       Embedding, Masking, Dense, Activation, TimeDistributed, Dropout,
#       SpatialDropout1D, GaussianNoise, GaussianDropout, AlphaDropout,
#       ActivityRegularization, ReLU, LeakyReLU, ELU, ThresholdedReLU, PReLU (alpha
#       shared over time), Add, Subtract, Multiply, Average, Maximum, Minimum, Merge;
#       Concatenate not along time; BatchNormalization, LayerNormalization, Softmax,
#       UnitNormalization not over time; Conv1D and SeparableConv1D whose kernel
#       spans one step (strides 1); the mask operations not along time.
#   carries: the layer keeps what the next slice needs:
#       LSTM, GRU, SimpleRNN, RNN (one cell or StackedRNNCells), CuDNNLSTM, CuDNNGRU:
#           their states (h, and c for the LSTM), as Keras' stateful layers. A masked
#           step keeps the state and repeats the last output, as in the whole
#           sequence (Keras' stateful layer starts each call's "last output" at
#           zero, so a slice that begins with masked steps outputs zeros there in
#           Keras; here it outputs what the whole sequence does, the last h).
#           Without return_sequences the output is the one after the slice.
#       Conv1D and SeparableConv1D with padding="causal", strides 1: the last
#           (kernel_size - 1) * dilation_rate input steps, which stand where the
#           whole sequence has its padding zeros (zeros before the first slice).
#   refused: the layer needs later steps (or all of them) for step t, or restarts:
#       see _NEEDS_SEQUENCE, and Bidirectional, go_backwards, Conv1D with another
#       padding (kernel span > 1) or strides > 1, axes over time, a recurrent layer
#       with an initial state from the graph or called several times.
#
# A tensor either has the stream's time axis (axis 1 of every model input of rank
# 3 or more, and of a rank 2 input to an Embedding, and what per-step layers make of
# them) or does not (the other inputs, and what a recurrent layer without
# return_sequences or its states return: the value after the slice). Layers that
# need a time axis are not concerned by tensors without one, except the recurrent
# layers and RepeatVector, which would make a sequence that is not the stream's.

_PER_STEP = ("Embedding", "Masking", "Dense", "Activation", "TimeDistributed", "Dropout",
             "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
             "ActivityRegularization", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU",
             "PReLU", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
             "Merge", "Concatenate", "BatchNormalization", "LayerNormalization", "Softmax",
             "UnitNormalization")
_NEEDS_SEQUENCE = {
    "Flatten": "it joins the time steps into one vector",
    "Reshape": "it reshapes across the time axis",
    "Permute": "it moves the time axis",
    "RepeatVector": "its steps are copies of one vector, not the stream's steps",
    "MaxPooling1D": "it pools windows of steps, which slices would cut",
    "AveragePooling1D": "it pools windows of steps, which slices would cut",
    "GlobalMaxPooling1D": "it pools over every step of the sequence",
    "GlobalAveragePooling1D": "it pools over every step of the sequence",
    "ZeroPadding1D": "it pads the sequence at its start and end",
    "Cropping1D": "it crops the sequence at its start and end",
    "UpSampling1D": "it changes the number of steps",
    "Conv2D": "it convolves over the time axis as an image axis",
    "ZeroPadding2D": "it pads the time axis as an image axis",
    "MaxPooling2D": "it pools over the time axis as an image axis",
    "AveragePooling2D": "it pools over the time axis as an image axis",
    "GlobalMaxPooling2D": "it pools over every step of the sequence",
    "GlobalAveragePooling2D": "it pools over every step of the sequence",
    "Attention": "it attends over every step of the sequence, later ones included",
    "AdditiveAttention": "it attends over every step of the sequence, later ones included",
    "MultiHeadAttention": "it attends over every step of the sequence, later ones "
                          "included",
}
_AXIS_OPERATIONS = ("Any", "All", "ExpandDims", "Squeeze", "Concatenate")


class Streaming:
    """A stateful model's plan and carried values: which calls carry something from
    one slice to the next (``carries``: step -> function), the causal
    convolutions' past inputs (``contexts``), which outputs have the time axis, and
    the batch size the first call fixes. Built by ``Model.stateful = True``; it
    raises ValueError naming the first layer that cannot stream, and why."""

    def __init__(self, model):
        self.batch = None
        self.contexts = {}
        self.carries = {}
        timed = {}
        for ref, spec in zip(model._graph.inputs, model.input_specs):
            rank = len(spec["shape"])
            timed[graphs.Ref(ref.layer, 0, 0)] = rank >= 3 or (
                rank == 2 and spec["int_high"] is not None)
        self.input_timed = [timed[graphs.Ref(ref.layer, 0, 0)] for ref in model._graph.inputs]
        self.ranks = {}  # a mask operation's output -> its rank (None: not known)
        for step in model._order:
            self._plan(step, timed, model._shapes)
        self.layers = [layer for runner in model._runners.values()
                       if isinstance(runner, recurrent.RecurrentNode)
                       for layer in runner._weight_layers()]  # those with states
        self.output_timed = [timed[ref] for ref in model._graph.outputs]

    def _plan(self, step, timed, shapes):
        runner, name = step.runner, step.spec.name
        if runner is None:
            return
        read = _take(step.x, timed)
        on_time = any(read) if isinstance(read, list) else read
        where = runner.where if isinstance(runner, MaskOperation) else \
            f"layer {name!r} ({step.spec.class_name})"
        shape = None if isinstance(runner, MaskOperation) else _take(step.x, shapes)
        if isinstance(read, list) and shape is not None:
            shape = shape[0]
        if isinstance(runner, MaskOperation):
            rank = self._mask_rank(runner, step, shapes)
            self.ranks[graphs.Ref(name, step.index, 0)] = rank
            shape = None if rank is None else (None,) * self._input_rank(step, shapes)
        if isinstance(runner, recurrent.RecurrentNode) and not on_time:
            reason = "its input has no time axis of the stream (a layer before it " \
                "returns one value per slice)"
        elif isinstance(runner, blocks.RepeatVector):
            reason = _NEEDS_SEQUENCE["RepeatVector"]
        else:
            reason = _needs_sequence(runner, step, shape) if on_time else None
        if reason:
            raise ValueError(f"{where} cannot run on slices of a sequence (stateful "
                             f"streaming): {reason}.")
        outputs = 1
        while graphs.Ref(name, step.index, outputs) in shapes:
            outputs += 1
        out = [on_time] * outputs
        if isinstance(runner, recurrent.RecurrentNode):
            out = [on_time and runner.return_sequences] + [False] * (outputs - 1)
            self.carries[step] = carry_recurrent
        elif isinstance(runner, blocks.Conv1D) and on_time and span(runner) > 1:
            self.carries[step] = _carry_convolution
        for k, value in enumerate(out):
            timed[graphs.Ref(name, step.index, k)] = value

    def _rank(self, ref, shapes):
        if ref in self.ranks:
            return self.ranks[ref]
        shape = shapes.get(ref)
        return None if shape is None else len(shape)

    def _input_rank(self, step, shapes):
        """The rank of a mask operation's (first) input, or None where not known."""
        refs = step.x if isinstance(step.x, list) else [step.x]
        ranks = [self._rank(r, shapes) for r in refs if isinstance(r, graphs.Ref)]
        return None if not ranks or None in ranks else max(ranks)

    def _mask_rank(self, runner, step, shapes):
        """The rank of a mask operation's output, from its input's and its axis."""
        rank = self._input_rank(step, shapes)
        if rank is None:
            return None
        op, config = runner.keras_class, runner.config
        if op in ("Any", "All"):
            if config.get("keepdims"):
                return rank
            axis = config.get("axis")
            return 0 if axis is None else rank - (len(axis) if isinstance(axis, list) else 1)
        if op == "ExpandDims":
            return rank + 1
        if op == "Squeeze":
            axis = config.get("axis")
            return None if axis is None else rank - (len(axis) if isinstance(axis, list) else 1)
        if op == "BroadcastTo":
            return len(config.get("shape") or ()) or None
        return rank

    def check_batch(self, arrays):
        """The first call fixes the batch size; later calls must keep it."""
        batch = arrays[0].shape[0]
        if self.batch is None:
            self.batch = batch
        elif batch != self.batch:
            raise ValueError(f"this stateful model continues {self.batch} sequences (its "
                             f"first call fixed the batch size; reset_states() keeps it, "
                             f"`model.stateful = True` forgets it); received batch size "
                             f"{batch}.")

    def reset(self):
        self.contexts = {key: np.zeros_like(value) for key, value in self.contexts.items()}

    def snapshot(self):
        """What a call may change: the batch size, the causal convolutions' past
        inputs and every recurrent layer's states (arrays a call replaces, never
        writes into, so references suffice)."""
        return (self.batch, dict(self.contexts) if self.contexts else None,
                [layer.__dict__["states"] for layer in self.layers])

    def restore(self, snapshot):
        self.batch, contexts, states = snapshot
        self.contexts = contexts or {}
        for layer, value in zip(self.layers, states):
            layer.__dict__["states"] = value  # as they were: checked when first stored


def span(convolution):
    """How many time steps a convolution's kernel spans."""
    return (convolution.kernel_size - 1) * convolution.dilation_rate + 1


def _needs_sequence(runner, step, shape):
    """Why a call that reads the stream's time axis cannot run on slices, or None."""
    if isinstance(runner, MaskOperation):
        axis = runner.config.get("axis")
        if runner.keras_class == "BroadcastTo":
            return "it broadcasts to a fixed shape"
        if runner.keras_class in _AXIS_OPERATIONS:
            axes = axis if isinstance(axis, list) else [axis]
            rank = None if shape is None else len(shape)  # the input's, where known
            if runner.keras_class == "ExpandDims" and rank is not None:
                rank += 1  # its axis counts in the output
            if (axis is None and runner.keras_class != "ExpandDims") or any(
                    isinstance(a, int) and 0 <= a <= 1 for a in axes):
                return f"it works along the time axis (axis={axis})"
            if any(isinstance(a, int) and a < 0 and (rank is None or a + rank <= 1)
                   for a in axes):
                return (f"it works along the time axis (axis={axis})" if rank is not None
                        else f"axis={axis} counts from the end of an input whose rank is "
                             "not known here, so it may be the time axis")
        return None
    if isinstance(runner, recurrent.RecurrentNode):
        layer = runner.layer
        if isinstance(layer, recurrent.Bidirectional):
            return "its backward layer reads the sequence from its last step"
        if layer.go_backwards:
            return "go_backwards reads the sequence from its last step"
        if step.initial_state is not None:
            return "its initial state comes from the graph and would restart it at " \
                "every slice"
        if len(step.spec.calls) > 1:
            return f"it is called {len(step.spec.calls)} times, and a stateful layer " \
                "holds the states of one sequence"
        return None
    if isinstance(runner, blocks.Conv1D):
        if getattr(runner, "data_format", "channels_last") == "channels_first":
            return "data_format='channels_first' puts the time steps on axis 2"
        if runner.strides != 1:
            return f"strides={runner.strides} changes the time rate"
        if span(runner) > 1 and runner.padding != "causal":
            return f"padding={runner.padding!r} with a kernel spanning {span(runner)} " \
                "steps reads steps after t (padding='causal' streams)"
        return None
    name = runner.keras_class
    if name not in _PER_STEP:
        return _NEEDS_SEQUENCE.get(name, "it is not known to be causal in time")
    rank = len(shape)
    axes = {"BatchNormalization": lambda: runner.axes,
            "LayerNormalization": lambda: runner.axes,
            "Softmax": lambda: runner.axis, "UnitNormalization": lambda: runner.axis,
            "Concatenate": lambda: [runner.axis]}.get(name)
    if axes is not None:
        over = [a for a in axes() if a % rank == 1]
        if over:
            verb = "joins inputs" if name == "Concatenate" else "computes"
            return f"it {verb} along the time axis (axis={over[0]})"
    if name == "PReLU" and rank >= 3 and runner.weights and \
            runner.weights[0].shape[0] != 1:
        return "its alpha holds one value per time step (shared_axes without 1)"
    return None


def carry_recurrent(stream, step, x, mask):
    """A recurrent layer's slice: the stateful layer carries its states; where a
    row's slice starts with masked steps, their outputs are the last h before the
    slice (the whole sequence's last output), where Keras' call would give zeros."""
    runner = step.runner
    layer = runner.layer
    last = layer.layers[-1] if isinstance(layer, recurrent.StackedRNN) else layer
    before = last.states
    output = runner(x, mask, None)
    if mask is not None and before is not None and not layer.zero_output_for_mask:
        waiting = ~np.logical_or.accumulate(np.asarray(mask, bool), axis=1)
        if waiting.any():
            values = output[0] if runner.return_state else output
            h = before[0]
            if runner.return_sequences:
                values = np.where(waiting[:, :, None], h[:, None, :], values)
            else:
                values = np.where(waiting[:, -1:], h, values)
            output = [values, *output[1:]] if runner.return_state else values
    return output, runner.compute_mask(x, mask)


def _carry_convolution(stream, step, x, mask):
    """A causal convolution's slice, after the past inputs it carries."""
    key = (step.spec.name, step.index)
    y, stream.contexts[key] = step.runner.stream(x, stream.contexts.get(key))
    return y, step.runner.compute_mask(x, mask)
