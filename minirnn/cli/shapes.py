"""minirnn shapes: what each configuration returns, and the shapes, computed live
and confirmed by running the same layers in Keras.

May use: numpy, :mod:`minirnn.bidirectional` and its own modules.
"""

from collections import namedtuple

import numpy as np

from ..bidirectional import Bidirectional
from . import keras_support, limits
from .arguments import positive_int
from .common import FAILED, KERAS_HINT, LAYER_CLASSES, OK, SEED_SIZES
from .keras_support import KerasUnavailable
from .tables import as_list, format_shape, format_table

__all__ = ["add_parser", "run", "shape_cases", "describe_returns", "output_names"]


# One row of the shapes table: layer kind, its arguments, Bidirectional merge mode
# (None when not wrapped; the string "None" for merge_mode=None).
ShapeCase = namedtuple("ShapeCase", "kind arguments merge_mode")


def shape_cases():
    """Every configuration the shapes table shows, in order."""
    cases = []
    for kind in ("LSTM", "GRU", "SimpleRNN"):
        for return_sequences in (False, True):
            for return_state in (False, True):
                cases.append(ShapeCase(kind, {"return_sequences": return_sequences,
                                              "return_state": return_state}, None))
        cases.append(ShapeCase(kind, {"return_sequences": True, "return_state": True,
                                      "go_backwards": True}, None))
    for merge_mode in ("concat", "sum", "mul", "ave", "None"):
        for return_state in (False, True):
            cases.append(ShapeCase("LSTM", {"return_sequences": True,
                                            "return_state": return_state}, merge_mode))
    return cases


def _merge(case):
    return None if case.merge_mode == "None" else case.merge_mode


def output_names(case):
    """Names of the returned arrays: o, h, c; _fwd / _bwd inside a Bidirectional."""
    states = ["h", "c"] if case.kind == "LSTM" else ["h"]
    if case.merge_mode is None:
        return ["o"] + (states if case.arguments["return_state"] else [])
    outputs = ["o_fwd", "o_bwd"] if _merge(case) is None else ["o"]
    if case.arguments["return_state"]:
        outputs += [f"{s}_fwd" for s in states] + [f"{s}_bwd" for s in states]
    return outputs


def minirnn_shapes(case, x, units):
    """The shapes of what the minirnn layer of ``case`` returns for ``x``."""
    layer = LAYER_CLASSES[case.kind](units, **case.arguments, seed=0)
    if case.merge_mode is not None:
        layer = Bidirectional(layer, merge_mode=_merge(case))
    return [np.shape(a) for a in as_list(layer(x))]


def keras_shapes(keras_layers, case, x, units):
    """The shapes of what the Keras layer of ``case`` returns for ``x``."""
    config = {"kind": case.kind, "units": units, **case.arguments}
    if case.merge_mode is None:
        layer = keras_layers.build_layer(config, x.shape[2])
    else:
        layer = keras_layers.build_bidirectional(config, x.shape[2], _merge(case))
    return [np.shape(a) for a in keras_layers.run(layer, x)]


def describe_returns(names, shapes):
    """'o (1, 8, 3); h, c (1, 3)': the returned arrays, equal shapes grouped."""
    groups = []
    for name, shape in zip(names, shapes):
        if groups and groups[-1][1] == tuple(shape):
            groups[-1][0].append(name)
        else:
            groups.append(([name], tuple(shape)))
    return "; ".join(f"{', '.join(group)} {format_shape(shape)}" for group, shape in groups)


def _shape_row(case, shapes):
    """The table cells of a case, without the Keras column."""
    returned = describe_returns(output_names(case), shapes)
    flags = [str(case.arguments.get(k, False))
             for k in ("return_sequences", "return_state", "go_backwards")]
    if case.merge_mode is None:
        return [case.kind] + flags + [str(len(shapes)), returned]
    return [case.merge_mode, flags[1], str(len(shapes)), returned]


def _keras_cell(keras_layers, case, x, units, shapes):
    """(text of the Keras column, whether Keras agrees)."""
    try:
        theirs = keras_shapes(keras_layers, case, x, units)
    except Exception as error:  # report it in the table, keep going
        return f"error: {type(error).__name__}", False
    if [tuple(s) for s in theirs] == [tuple(s) for s in shapes]:
        return "same", True
    return "; ".join(map(format_shape, theirs)), False


def _shapes_notes(B, T, M):
    return [
        "o = output, h = hidden state, c = cell state (LSTM only); _fwd / _bwd: the "
        "forward /",
        "  backward layer's. n = how many arrays the call returns.",
        f"return_sequences gives o at every step, (B, T, M) = {format_shape((B, T, M))}, "
        f"not just the last,",
        f"  (B, M) = {format_shape((B, M))}. return_state appends the final states: "
        "[o, h, c] for LSTM,",
        "  [o, h] for GRU and SimpleRNN. go_backwards changes the values (the sequence "
        "is read",
        "  from its end), never the shapes.",
        f"Bidirectional: concat doubles the features ({M} + {M} = {2 * M}); sum, mul "
        f"and ave keep {M};",
        "  None returns the two outputs apart; return_state appends both layers' states.",
    ]


def memory_needed(B, T, D, M, keras):
    """Bytes of the largest configuration of the table (a Bidirectional LSTM: two
    layers, both halves of the output); twice that when Keras runs it too."""
    one = 2 * limits.layer_bytes("LSTM", D, M) + limits.call_bytes(B, T, D, M, outputs=4)
    return 2 * one if keras else one


def run(args):
    """minirnn shapes: what each configuration returns, computed live."""
    B, T, D, M = args.batch, args.timesteps, args.features, args.units
    limits.check_memory(f"--batch {B} --timesteps {T} --features {D} "
                        f"--units {M}", memory_needed(B, T, D, M, keras=not args.no_keras))
    x = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)
    keras_layers, keras_name = None, "Keras"
    if not args.no_keras:
        try:
            keras, keras_layers = keras_support.import_keras()
            keras_name = f"Keras {keras.__version__}"
        except KerasUnavailable:
            pass
    plain, wrapped, mismatches = [], [], 0
    for case in shape_cases():
        shapes = minirnn_shapes(case, x, M)
        row = _shape_row(case, shapes)
        if keras_layers is not None:
            cell, same = _keras_cell(keras_layers, case, x, M, shapes)
            row.append(cell)
            mismatches += not same
        elif not args.no_keras:
            row.append("not installed")
        (plain if case.merge_mode is None else wrapped).append(row)
    keras_header = [] if args.no_keras else ["Keras"]
    print(f"minirnn shapes: what each layer returns for x of shape (B, T, D) = "
          f"{format_shape(x.shape)},\nwith M = {M} units.")
    print()
    print(format_table(["layer", "return_sequences", "return_state", "go_backwards", "n",
                        "returns"] + keras_header, plain, align="llllrll"))
    print()
    print(f"Bidirectional(LSTM({M}, return_sequences=True), merge_mode=...):")
    print(format_table(["merge_mode", "return_state", "n", "returns"] + keras_header,
                       wrapped, align="llrll"))
    print()
    for line in _shapes_notes(B, T, M):
        print(f"  {line}")
    print()
    if args.no_keras:
        print("Keras check skipped (--no-keras).")
    elif keras_layers is None:
        print(f"Keras check skipped: Keras is not installed. To compare: {KERAS_HINT}")
    elif mismatches:
        print(f"{mismatches} configuration(s) differ from {keras_name}.")
    else:
        print(f"Every row confirmed by running the same layer in {keras_name}.")
    return FAILED if mismatches else OK


def add_parser(commands):
    parser = commands.add_parser(
        "shapes", help="a table of what each configuration returns, and the shapes",
        description="Run LSTM, GRU, SimpleRNN (return_sequences x return_state, "
                    "go_backwards) and Bidirectional (every merge mode) and list the "
                    "arrays each returns; confirmed against Keras when installed.")
    parser.add_argument("--batch", type=positive_int, default=SEED_SIZES["B"],
                        help="B (default 1)")
    parser.add_argument("--timesteps", type=positive_int, default=SEED_SIZES["T"],
                        help="T (default 8)")
    parser.add_argument("--features", type=positive_int, default=SEED_SIZES["D"],
                        help="D (default 2)")
    parser.add_argument("--units", type=positive_int, default=SEED_SIZES["M"],
                        help="M (default 3)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras check")
    parser.set_defaults(run=run)
