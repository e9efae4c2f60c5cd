"""minirnn trace: every gate of a layer over one sequence, its equation and
statistics, and optionally a picture (heatmaps of the gates, curves of the states)."""

import numpy as np

from . import keras_support, limits
from .arguments import image_file, model_path, non_negative_int, positive_int
from .common import (FAILED, KERAS_HINT, LAYER_CLASSES, OK, PLOT_HINT, SEED_SIZES,
                     UNAVAILABLE, CommandError)
from .keras_support import KerasUnavailable
from .tables import call_text, format_table

__all__ = ["add_parser", "run", "gate_statistics", "layer_from_model"]


_CELL_CHOICES = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
_SATURATION_MARGIN = 0.05   # a bounded value this close to an end is saturated


def gate_statistics(values, function):
    """mean, std, min, max and, for a bounded activation, the fraction saturated.

    Returns a dict; "low" / "high" are the fractions of values within 0.05 of
    the activation's lower / upper bound (None when unbounded or not a gate).
    """
    from ..plotting import activation_range

    values = np.asarray(values, np.float64)
    stats = {"mean": float(values.mean()), "std": float(values.std()),
             "min": float(values.min()), "max": float(values.max()),
             "low": None, "high": None}
    bounds = activation_range(function)
    if bounds is not None:
        low, high = bounds
        stats["low"] = float(np.mean(values < low + _SATURATION_MARGIN))
        stats["high"] = float(np.mean(values > high - _SATURATION_MARGIN))
    return stats


def _walk_layers(model):
    """Every layer of a Keras model, depth first, entering nested models."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers") and type(layer).__name__ != "Bidirectional":
            yield from _walk_layers(layer)


def layer_from_model(path):
    """(minirnn layer, description): the first recurrent layer of a saved model."""
    keras, _ = keras_support.import_keras()
    from ..keras_io import from_keras

    try:
        with keras_support.native_stderr_silenced():
            model = keras.saving.load_model(path)
    except Exception as error:  # whatever Keras raises for a file it cannot load
        raise CommandError(f"cannot load {path!r}: {type(error).__name__}: {error}")
    recurrent = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")
    for layer in _walk_layers(model):
        kind = type(layer).__name__
        if kind in recurrent:
            ours = from_keras(layer)
            if kind == "Bidirectional":
                ours = ours.forward_layer
                return ours, f"the forward layer of Bidirectional {layer.name!r} in {path}"
            return ours, f"layer {layer.name!r} ({kind}) of {path}"
    raise ValueError(f"{path} holds no LSTM, GRU, SimpleRNN, RNN or Bidirectional layer.")


def _trace_table(layer, trace):
    from ..plotting import describe_trace

    rows = []
    for entry in describe_trace(layer):
        stats = gate_statistics(trace[entry.name], entry.function if entry.heatmap else None)
        share = lambda v: "-" if v is None else f"{100 * v:.0f}%"
        rows.append([entry.name, entry.function if entry.heatmap else "state update",
                     f"{stats['mean']:+.3f}", f"{stats['std']:.3f}", f"{stats['min']:+.3f}",
                     f"{stats['max']:+.3f}", share(stats["low"]), share(stats["high"])])
    headers = ["", "computed by", "mean", "std", "min", "max", "near low", "near high"]
    return format_table(headers, rows, align="llrrrrrr")


def _batch(layer):
    """1, or the batch size a stateful layer's states fix."""
    return layer.states[0].shape[0] if layer.stateful and layer.states is not None else 1


def run(args):
    """minirnn trace: every gate of a layer over one sequence, summarised and drawn."""
    from ..plotting import describe_trace, matplotlib_available, plot_trace

    if args.model:
        try:
            layer, source = layer_from_model(args.model)
        except KerasUnavailable as error:
            print(f"--model needs Keras, which is not available ({error}).\n"
                  f"  To install it: {KERAS_HINT}")
            return UNAVAILABLE
        except (ValueError, TypeError) as error:
            print(f"Could not use {args.model}: {error}")
            return FAILED
        D = layer.input_dim
        batch = _batch(layer)
        limits.check_memory(
            f"--timesteps {args.timesteps} (batch {batch}, {D} features, {layer.units} units "
            "from the model)",
            limits.trace_bytes(type(layer).__name__, batch, args.timesteps, D, layer.units))
    else:
        kind = _CELL_CHOICES[args.cell]
        D = args.features
        limits.check_memory(
            f"--cell {args.cell} --units {args.units} --timesteps "
            f"{args.timesteps} --features {D}",
            limits.layer_bytes(kind, D, args.units)
            + limits.trace_bytes(kind, 1, args.timesteps, D, args.units))
        layer = LAYER_CLASSES[kind](args.units, seed=args.seed)
        layer.build(D)
        source = ("Keras' default initialisation, drawn from the seed: glorot_uniform "
                  "kernel,\n           orthogonal recurrent kernel, zero bias"
                  f"{' (the forget gate: ones)' if kind == 'LSTM' else ''}")
    batch = _batch(layer)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((batch, args.timesteps, D))
    trace = layer.trace(x)
    name = call_text(type(layer).__name__, layer.units, {})
    print(f"minirnn trace: {name} over one random sequence of {args.timesteps} timesteps "
          f"x {D} features (seed {args.seed})")
    print(f"  weights: {source}")
    if layer.go_backwards:
        print("  go_backwards=True: steps are in processing order, last input first.")
    print()
    print("Equations at step t (x_t: the input; W, U, b: the gate's blocks of the kernel, "
          "the\nrecurrent kernel and the bias; * is the element-wise product):")
    entries = describe_trace(layer)
    width = max(len(entry.equation) for entry in entries)
    one_line = 2 + width + 2 + max(len(entry.meaning) for entry in entries) <= 90
    for entry in entries:
        if one_line:
            print(f"  {entry.equation:<{width}}  {entry.meaning}")
        else:
            print(f"  {entry.equation}\n      {entry.meaning}")
    if type(layer).__name__ == "GRU" and layer.reset_after and layer.use_bias:
        print("  (reset_after=True: b is the input bias, bias[0]; b' the recurrent bias, "
              "bias[1])")
    print()
    print(f"Statistics over {batch} sequence{'s' if batch > 1 else ''} x {args.timesteps} "
          f"steps x {layer.units} units:")
    print(_trace_table(layer, trace))
    print()
    print(f"  near low / near high: the share of values within {_SATURATION_MARGIN} of the "
          "activation's bounds\n  (sigmoid: below 0.05, the gate is shut; above 0.95, fully "
          "open; tanh: beyond -0.95\n  or +0.95). A saturated gate barely responds to its "
          "input and passes almost no gradient.")
    if not args.plot:
        hint = "" if matplotlib_available() else f" (needs matplotlib: {PLOT_HINT})"
        print(f"\nFor a picture of every gate: add --plot trace.png{hint}")
        return OK
    if not matplotlib_available():
        print(f"\nCannot write {args.plot}: plotting needs matplotlib. To install it: "
              f"{PLOT_HINT}")
        return FAILED
    title = f"{name}: {args.timesteps} timesteps, {D} features, seed {args.seed}"
    try:
        plot_trace(trace, layer, args.plot, title=title)
    except (OSError, ValueError, RuntimeError) as error:  # e.g. the disk is full
        raise CommandError(f"cannot write {args.plot!r}: {type(error).__name__}: {error}")
    print(f"\nWrote {args.plot}: one heatmap per gate (time across, units down) and "
          "the state\ncurves, each titled with its equation.")
    return OK


def add_parser(commands):
    parser = commands.add_parser(
        "trace", help="gate statistics over one sequence, and a picture of the gates",
        description="Run a layer (random weights, or the first recurrent layer of a "
                    "saved Keras model) over a random sequence, print each gate's "
                    "equation and statistics, and optionally draw them.")
    parser.add_argument("--cell", choices=sorted(_CELL_CHOICES), default="lstm",
                        help="which layer (default lstm); ignored with --model")
    parser.add_argument("--units", type=positive_int, default=SEED_SIZES["M"],
                        help="M (default 3); ignored with --model")
    parser.add_argument("--timesteps", type=positive_int, default=SEED_SIZES["T"],
                        help="T (default 8)")
    parser.add_argument("--features", type=positive_int, default=SEED_SIZES["D"],
                        help="D (default 2); ignored with --model (the layer's)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="selects the random input and weights (default 0)")
    parser.add_argument("--model", metavar="PATH", type=model_path,
                        help="a saved Keras model (.keras): trace its first recurrent layer "
                             "(a Bidirectional's forward layer)")
    parser.add_argument("--plot", metavar="PATH", type=image_file,
                        help="write a picture (PNG; another extension picks another format, "
                             "none means .png): a heatmap per gate, the state curves")
    parser.set_defaults(run=run)
