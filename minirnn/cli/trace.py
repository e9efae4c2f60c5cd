"""minirnn trace: every gate of a layer over one sequence, its equation and
statistics, and optionally a picture (heatmaps of the gates, curves of the states).

May use: numpy, :mod:`minirnn.bidirectional`, :mod:`minirnn.bridge.torch`,
:mod:`minirnn.layers`, :mod:`minirnn.plotting` and its own modules.
"""

import os
from collections import namedtuple

import numpy as np

from ..bidirectional import Bidirectional
from ..layers import GRU
from . import limits, models
from .arguments import image_file, input_file, model_path, non_negative_int, positive_int
from .common import FAILED, LAYER_CLASSES, OK, PLOT_HINT, SEED_SIZES, CommandError
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


# One traced layer: a label ("" for a plain layer; "forward layer", "cell 1", ...),
# the minirnn LSTM, GRU or SimpleRNN, and its trace (dict of (B, T, units) arrays).
Part = namedtuple("Part", "label layer trace")


def _batch(layer):
    """1, or the batch size a stateful layer's states fix."""
    return layer.states[0].shape[0] if layer.stateful and layer.states is not None else 1


def random_layer_parts(args):
    """(heading lines, [Part], plot title): a fresh layer with Keras' initial weights
    over one random sequence."""
    kind = _CELL_CHOICES[args.cell]
    D = args.features
    limits.check_memory(
        f"--cell {args.cell} --units {args.units} --timesteps {args.timesteps} --features {D}",
        limits.layer_bytes(kind, D, args.units)
        + limits.trace_bytes(kind, 1, args.timesteps, D, args.units))
    layer = LAYER_CLASSES[kind](args.units, seed=args.seed)
    layer.build(D)
    batch = _batch(layer)
    x = np.random.default_rng(args.seed).standard_normal((batch, args.timesteps, D))
    name = call_text(kind, layer.units, {})
    heading = [f"minirnn trace: {name} over one random sequence of {args.timesteps} timesteps "
               f"x {D} features (seed {args.seed})",
               "  weights: Keras' default initialisation, drawn from the seed: glorot_uniform "
               "kernel,\n           orthogonal recurrent kernel, zero bias"
               f"{' (the forget gate: ones)' if kind == 'LSTM' else ''}"]
    title = f"{name}: {args.timesteps} timesteps, {D} features, seed {args.seed}"
    return heading, [Part("", layer, layer.trace(x))], title


def _sublayers(layer):
    """The LSTM, GRU or SimpleRNN layers inside a model's recurrent layer."""
    if isinstance(layer, Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return list(getattr(layer, "layers", [layer]))  # RNN of StackedRNNCells: its cells


def _split(layer, trace):
    """The Parts of a model's recurrent layer: one, both directions, or every cell."""
    if isinstance(layer, Bidirectional):
        return [Part("forward layer", layer.forward_layer, trace["forward"]),
                Part("backward layer", layer.backward_layer, trace["backward"])]
    if "cells" in trace:
        return [Part(f"cell {k}", cell, cell_trace)
                for k, (cell, cell_trace) in enumerate(zip(layer.layers, trace["cells"]), 1)]
    return [Part("", layer, trace)]


def _model_trace_bytes(model, layer, batch, steps):
    """Bytes of tracing ``layer`` of ``model`` on ``batch`` sequences of ``steps``:
    the inputs, every layer's output on the way (taken as wide as twice the widest
    recurrent layer or input), and the trace itself."""
    inputs = [int(np.prod([n or 1 for n in spec["shape"][2:]])) for spec in model.input_specs]
    widths = list(inputs)
    for _, recurrent in models.recurrent_layers(model):
        for sub in _sublayers(recurrent):
            widths += [sub.units, getattr(sub, "input_dim", None) or 1]
    width = 2 * max(widths)
    needed = 8 * batch * steps * (sum(inputs) + len(model.layers) * width)
    for sub in _sublayers(layer):
        needed += limits.trace_bytes(limits.kind_of(sub), batch, steps,
                                     getattr(sub, "input_dim", None) or width, sub.units)
    return needed


def model_layer_parts(args):
    """(heading lines, [Part], plot title): a recurrent layer of a saved model, traced
    on what reaches it inside the model (Model.trace)."""
    model = models.load(args.model)
    recurrent = models.recurrent_layers(model)
    if not recurrent:
        raise CommandError(f"{args.model} holds no LSTM, GRU, SimpleRNN, RNN or "
                           "Bidirectional layer to trace.", status=FAILED)
    names = [name for name, _ in recurrent]
    name = names[0] if args.layer is None else args.layer
    if name not in names:
        raise CommandError(f"--layer {args.layer!r}: not a recurrent layer of {args.model}; "
                           f"its recurrent layers are {', '.join(map(repr, names))}")
    layer = dict(recurrent)[name]
    if args.input:
        arrays = models.read_inputs(args.input, model)
        models.check_inputs(model, arrays, args.input)
        where = f"the inputs from {args.input} ({models.describe_inputs(model, arrays)})"
    else:
        fixed = [spec["shape"][1] for spec in model.input_specs if len(spec["shape"]) > 1]
        steps = max([n or args.timesteps for n in fixed] or [args.timesteps])
        limits.check_memory(f"--timesteps {args.timesteps} (with the model's sizes)",
                            _model_trace_bytes(model, layer, 1, steps))
        arrays = model.example_inputs(batch_size=1, timesteps=args.timesteps, seed=args.seed,
                                      padding=None)
        where = (f"the model's example input (seed {args.seed}: "
                 f"{models.describe_inputs(model, arrays)})")
    x = arrays if len(arrays) > 1 else arrays[0]
    trace = models.run_model(lambda: model.trace(x, layer=name), args.input or "the example")
    kind = type(layer).__name__
    heading = [f"minirnn trace: layer {name!r} ({kind}) of {args.model}",
               f"  on {where},",
               "  as it reaches the layer inside the model (after the layers before it, with "
               "their mask)"]
    if model.source.get("semantics") == "keras2":
        heading.append("  written by Keras 2: its hard_sigmoid is clip(0.2 x + 0.5, 0, 1)")
    title = f"layer {name!r} ({kind}) of {os.path.basename(args.model)}"
    return heading, _split(layer, trace), title


def torch_parts(args):
    """(heading lines, [Part], plot title): a PyTorch nn.LSTM / GRU / RNN, from its
    state dict (read as data: torch.load(weights_only=True)), copied with
    minirnn.from_torch and traced level by level, each on the previous one's output."""
    from ..bridge.torch import from_torch, load_state_dict

    try:
        module = load_state_dict(args.torch, args.nonlinearity, batch_first=True)
        layers = from_torch(module)
    except ImportError as error:
        raise CommandError(f"--torch needs PyTorch: {error}", status=FAILED)
    except (ValueError, TypeError) as error:  # e.g. float16 parameters
        raise CommandError(f"--torch {args.torch}: {error}", status=FAILED)
    levels = layers if isinstance(layers, list) else [layers]
    D = module.input_size
    kind = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}[type(module).__name__]
    if args.input:
        _, arrays = models._load_arrays(args.input)
        x = arrays[0]
        if len(arrays) != 1 or x.ndim != 3 or x.shape[2] != D:
            raise CommandError(f"--input {args.input}: the module takes (batch, timesteps, "
                               f"{D}) arrays (batch first); received shape {x.shape}")
        where = f"the input from {args.input}, shape {x.shape}"
    else:
        limits.check_memory(f"--timesteps {args.timesteps} (with the module's sizes)",
                            len(levels) * 2 * limits.trace_bytes(
                                kind, 1, args.timesteps, max(D, 2 * module.hidden_size),
                                module.hidden_size))
        x = np.random.default_rng(args.seed).standard_normal((1, args.timesteps, D))
        where = f"one random sequence of {args.timesteps} timesteps x {D} features (seed {args.seed})"
    x = x.astype(levels[0].dtype if not isinstance(levels[0], Bidirectional)
                 else levels[0].forward_layer.dtype)
    parts = []
    for k, layer in enumerate(levels):
        label = f"level {k}" if len(levels) > 1 else ""
        trace = layer.trace(x)
        if isinstance(layer, Bidirectional):
            parts += [Part(f"{label}{', ' if label else ''}{side} direction", sub, trace[side])
                      for side, sub in (("forward", layer.forward_layer),
                                        ("backward", layer.backward_layer))]
        else:
            parts.append(Part(label, layer, trace))
        x = layer(x)[0]  # the sequence the next level reads
    name = f"torch.nn.{type(module).__name__}({module.input_size}, {module.hidden_size}" + \
        (f", num_layers={module.num_layers}" if module.num_layers > 1 else "") + \
        (", bidirectional=True" if module.bidirectional else "") + \
        (", bias=False" if not module.bias else "") + \
        (f", nonlinearity={module.nonlinearity!r}" if kind == "SimpleRNN" else "") + ")"
    heading = [f"minirnn trace: {name} from {args.torch}, copied with minirnn.from_torch",
               f"  on {where}"]
    if kind == "GRU":
        heading.append("  torch's gates r, z, n are Keras' r, z, hh (a GRU with reset_after=True)")
    return heading, parts, f"{name}, {os.path.basename(args.torch)}"


def _print_part(part):
    from ..plotting import describe_trace

    layer, trace = part.layer, part.trace
    if part.label:
        print(f"{part.label}: {call_text(type(layer).__name__, layer.units, {})}")
    if layer.go_backwards:
        print("  go_backwards=True: steps are in processing order, last input first.")
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
    if isinstance(layer, GRU) and layer.reset_after and layer.use_bias:
        print("  (reset_after=True: b is the input bias, bias[0]; b' the recurrent bias, "
              "bias[1])")
    print()
    batch, steps = next(iter(trace.values())).shape[:2]
    print(f"Statistics over {batch} sequence{'s' if batch > 1 else ''} x {steps} "
          f"steps x {layer.units} units:")
    print(_trace_table(layer, trace))


def run(args):
    """minirnn trace: every gate of a layer over one sequence, summarised and drawn."""
    from ..plotting import matplotlib_available, plot_trace

    if args.model and args.torch:
        raise CommandError("--model and --torch: give one of them")
    if args.torch:
        heading, parts, title = torch_parts(args)
    elif args.model:
        heading, parts, title = model_layer_parts(args)
    else:
        heading, parts, title = random_layer_parts(args)
    for line in heading:
        print(line)
    for part in parts:
        print()
        _print_part(part)
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
    first = parts[0]
    if first.label:
        title += f", {first.label}"
    try:
        plot_trace(first.trace, first.layer, args.plot, title=title)
    except (OSError, ValueError, RuntimeError) as error:  # e.g. the disk is full
        raise CommandError(f"cannot write {args.plot!r}: {type(error).__name__}: {error}")
    drawn = f" of the {first.label}" if len(parts) > 1 else ""
    print(f"\nWrote {args.plot}: one heatmap per gate{drawn} (time across, units down) and "
          "the state\ncurves, each titled with its equation.")
    return OK


def add_parser(commands):
    parser = commands.add_parser(
        "trace", help="gate statistics over one sequence, and a picture of the gates",
        description="Run a layer with random weights over a random sequence, or a "
                    "recurrent layer of a saved Keras model on what reaches it inside the "
                    "model (read without TensorFlow); print each gate's equation and "
                    "statistics, and optionally draw them.")
    parser.add_argument("--cell", choices=sorted(_CELL_CHOICES), default="lstm",
                        help="which layer (default lstm); ignored with --model")
    parser.add_argument("--units", type=positive_int, default=SEED_SIZES["M"],
                        help="M (default 3); ignored with --model")
    parser.add_argument("--timesteps", type=positive_int, default=SEED_SIZES["T"],
                        help="T (default 8; with --model, where the model's inputs do not "
                             "fix it)")
    parser.add_argument("--features", type=positive_int, default=SEED_SIZES["D"],
                        help="D (default 2); ignored with --model (the layer's)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="selects the random input and weights (default 0)")
    parser.add_argument("--model", metavar="PATH", type=model_path,
                        help="a saved Keras model (.keras file or folder, .h5), read without "
                             "TensorFlow: trace one of its recurrent layers on what reaches "
                             "it inside the model")
    parser.add_argument("--torch", metavar="STATE.pt", type=input_file,
                        help="a PyTorch nn.LSTM, nn.GRU or nn.RNN saved with "
                             "torch.save(module.state_dict(), path), read as data "
                             "(weights_only): trace every level of it, copied with "
                             "minirnn.from_torch")
    parser.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh",
                        help="with --torch: an nn.RNN's nonlinearity, which its state dict "
                             "does not hold (default tanh)")
    parser.add_argument("--layer", metavar="NAME",
                        help="with --model: the recurrent layer (default: the first)")
    parser.add_argument("--input", metavar="X", type=input_file,
                        help="with --model: X.npy (one input) or X.npz (by input name or in "
                             "order); default: the model's example input, one sequence of "
                             "--timesteps. With --torch: X.npy, (batch, timesteps, features)")
    parser.add_argument("--plot", metavar="PATH", type=image_file,
                        help="write a picture (PNG; another extension picks another format, "
                             "none means .png): a heatmap per gate, the state curves")
    parser.set_defaults(run=run)
