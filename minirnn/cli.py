"""The ``minirnn`` command: study tools around the layers.

    minirnn demo     the seed experiment: what LSTM and GRU return, every claim checked
    minirnn shapes   a table of what each configuration returns, and the shapes
    minirnn trace    gate statistics over one sequence, and a picture of the gates
    minirnn verify   random configurations compared with Keras, by layer and argument

``python -m minirnn`` is the same command. Keras is optional: the commands that
compare with it import it (and the ``reference`` package) only when they run, and
say how to install it when it is missing. ``import minirnn`` never imports it.
"""

import argparse
import contextlib
import json
import math
import os
import sys
from collections import namedtuple

import numpy as np

from . import __version__
from .bitwise import bitwise_differences
from .layers import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["main", "build_parser", "check_claims", "Claim"]

# The seed notebook's sizes: batch, timesteps, features, units.
SEED_SIZES = {"B": 1, "T": 8, "D": 2, "M": 3}
# |minirnn - Keras| <= ATOL + RTOL * |Keras|, elementwise, in float32.
FLOAT32_ATOL, FLOAT32_RTOL = 1e-6, 1e-6
_TOLERANCE_TEXT = "1e-6 + 1e-6 |Keras|"

KERAS_HINT = 'pip install "minirnn[keras]"'
PLOT_HINT = 'pip install "minirnn[plot]"'
PASS, FAIL = "[PASS]", "[FAIL]"

# Exit codes.
OK, FAILED, UNAVAILABLE = 0, 1, 2

_LAYER_CLASSES = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


# ---- small helpers -----------------------------------------------------------

class KerasUnavailable(Exception):
    """Keras (or the ``reference`` package that drives it) cannot be imported."""


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence what native code writes to file descriptor 2 (TensorFlow's start-up
    log lines) for the duration of the block; Python's own sys.stderr is untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras():
    """Import Keras and ``reference.keras_layers``; return (keras, keras_layers).

    Raises:
        KerasUnavailable: with the reason, when either cannot be imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _native_stderr_silenced():
            import keras
        from reference import keras_layers
    except Exception as error:  # ImportError, or a broken installation
        raise KerasUnavailable(f"{type(error).__name__}: {error}") from None
    return keras, keras_layers


def format_table(headers, rows, align=None, indent="  "):
    """A plain-text table: a header line, a rule, one line per row.

    ``align`` is a string of "l" / "r", one letter per column (default: all left).
    """
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    align = align or "l" * len(headers)

    def line(cells):
        parts = [cell.rjust(w) if a == "r" else cell.ljust(w)
                 for cell, w, a in zip(cells, widths, align)]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def _format_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _sci(value):
    """A float error in short scientific notation ('0' when exactly zero)."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return "0" if value == 0 else f"{value:.1e}"


def _as_list(result):
    """A layer's result as a list of arrays (one array when return_state=False)."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _call_text(kind, units, arguments):
    """'LSTM(3, return_state=True)': how the layer is created."""
    args = [str(units)] + [f"{k}={v!r}" for k, v in arguments.items()]
    return f"{kind}({', '.join(args)})"


# ---- demo: the seed experiment -------------------------------------------------

# (name, layer kind, return_sequences); every experiment has return_state=True.
EXPERIMENTS = (
    ("lstm1", "LSTM", False),
    ("lstm2", "LSTM", True),
    ("gru1", "GRU", False),
    ("gru2", "GRU", True),
)

Claim = namedtuple("Claim", "number statement passed evidence")


def _compare(a, b):
    """(equal within float32 tolerance, words): is ``a`` the same as ``b``?"""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, f"shapes differ: {_format_shape(a.shape)} vs {_format_shape(b.shape)}"
    if np.array_equal(a, b):
        return True, "equal bit for bit"
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    bound = FLOAT32_ATOL + FLOAT32_RTOL * np.abs(b.astype(np.float64))
    worst = float(np.max(difference)) if difference.size else 0.0
    if np.all(difference <= bound):
        return True, f"equal within {_sci(worst)}"
    return False, f"differ by up to {_sci(worst)}"


def _arrays(outputs, name, count):
    """The first ``count`` arrays of an experiment, or None if it returned fewer."""
    arrays = outputs.get(name, [])
    return arrays[:count] if len(arrays) >= count else None


def claim_output_is_state(outputs):
    """Claim 1: with return_sequences=False, the output o is the hidden state h."""
    evidence, passed = [], True
    for name in ("lstm1", "gru1"):
        arrays = _arrays(outputs, name, 2)
        if arrays is None:
            ok, words = False, "no h returned"
        else:
            ok, words = _compare(arrays[0], arrays[1])
            words = f"o and h: {words}"
        passed &= ok
        evidence.append(f"{name}: {words}")
    return Claim(1, "With return_sequences=False, the output o IS the hidden state h.",
                 passed, evidence)


def claim_sequence_ends_with_state(outputs, timesteps):
    """Claim 2: with return_sequences=True, o has T steps and its last step is h."""
    evidence, passed = [], True
    for name in ("lstm2", "gru2"):
        arrays = _arrays(outputs, name, 2)
        if arrays is None:
            passed = False
            evidence.append(f"{name}: no h returned")
            continue
        o, h = np.asarray(arrays[0]), np.asarray(arrays[1])
        has_steps = o.ndim == 3 and o.shape[1] == timesteps
        ok, words = _compare(o[:, -1], h) if has_steps else (False, "")
        passed &= has_steps and ok
        steps = f"o {_format_shape(o.shape)}: " + (
            f"{timesteps} steps" if has_steps else f"expected {timesteps} steps")
        evidence.append(f"{name}: {steps}" + (f"; o[:, -1] and h: {words}" if has_steps else ""))
    return Claim(2, f"With return_sequences=True, o has all T={timesteps} steps, "
                    "and its last step is h.", passed, evidence)


def claim_states_are_final(outputs):
    """Claim 3: h (and the LSTM's c) are the same with or without return_sequences."""
    evidence, passed = [], True
    for kind, first, second, states in (("LSTM", "lstm1", "lstm2", ("h", "c")),
                                        ("GRU", "gru1", "gru2", ("h",))):
        a = _arrays(outputs, first, 1 + len(states))
        b = _arrays(outputs, second, 1 + len(states))
        if a is None or b is None:
            passed = False
            evidence.append(f"{kind}: a state is missing")
            continue
        words = []
        for k, state in enumerate(states, start=1):
            ok, how = _compare(a[k], b[k])
            passed &= ok
            words.append(f"{state}: {how}")
        evidence.append(f"{first} vs {second}: " + "; ".join(words))
    return Claim(3, "h and c are the final states: the same with or without "
                    "return_sequences.", passed, evidence)


def claim_number_of_arrays(outputs):
    """Claim 4: an LSTM returns three arrays (o, h, c), a GRU two (o, h)."""
    expected = {"lstm1": 3, "lstm2": 3, "gru1": 2, "gru2": 2}
    counts = {name: len(outputs.get(name, [])) for name in expected}
    passed = counts == expected
    evidence = [", ".join(f"{name}: {counts[name]}" for name in expected)]
    return Claim(4, "LSTM returns three arrays (o, h, c), GRU two (o, h).", passed, evidence)


def check_claims(outputs, timesteps=SEED_SIZES["T"]):
    """Check the seed notebook's four claims on the four experiments' results.

    Args:
        outputs: {"lstm1": [o, h, c], "lstm2": [o, h, c], "gru1": [o, h],
            "gru2": [o, h]}, each experiment's returned arrays.
        timesteps: T, the length of the input sequence.

    Returns:
        A list of four :class:`Claim` (number, statement, passed, evidence lines).
    """
    return [claim_output_is_state(outputs),
            claim_sequence_ends_with_state(outputs, timesteps),
            claim_states_are_final(outputs),
            claim_number_of_arrays(outputs)]


def seed_experiment(seed, sizes=SEED_SIZES):
    """Run lstm1, lstm2, gru1, gru2 on one random sequence.

    Both LSTMs get the same weights (Keras' default initialisation, drawn from
    ``seed``), and so do both GRUs, so that the claims compare like with like.

    Returns:
        (x, {kind: weights}, {name: (layer arguments, [arrays])}).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sizes["B"], sizes["T"], sizes["D"])).astype(np.float32)
    weights, results = {}, {}
    for kind in ("LSTM", "GRU"):
        fresh = _LAYER_CLASSES[kind](sizes["M"], seed=int(rng.integers(2**31)))
        fresh.build(sizes["D"])
        weights[kind] = fresh.get_weights()
    for name, kind, return_sequences in EXPERIMENTS:
        arguments = {"return_state": True}
        if return_sequences:
            arguments["return_sequences"] = True
        layer = _LAYER_CLASSES[kind](sizes["M"], **arguments)
        layer.set_weights(weights[kind])
        results[name] = (arguments, _as_list(layer(x)))
    return x, weights, results


def keras_differences(keras_layers, x, weights, results, sizes=SEED_SIZES, bitwise=False):
    """Run the experiments in Keras as the notebook did (Input, Model, predict).

    With bitwise, also run each experiment in minirnn with ``bitwise=True`` and count
    the elements whose bits differ from Keras'.

    Returns:
        {name: (max |minirnn - Keras|, within float32 tolerance, note,
                (differing, total) or None)}.
    """
    differences = {}
    for name, kind, _ in EXPERIMENTS:
        arguments, ours = results[name]
        config = {"kind": kind, "units": sizes["M"], **arguments}
        layer = keras_layers.build_layer(config, sizes["D"], weights=weights[kind])
        theirs = keras_layers.predict(layer, x, sizes["D"], sizes["T"])
        if [a.shape for a in ours] != [np.shape(b) for b in theirs]:
            shapes = ", ".join(_format_shape(np.shape(b)) for b in theirs)
            differences[name] = (float("inf"), False, f"Keras returned {shapes}", None)
            continue
        worst, within = 0.0, True
        for a, b in zip(ours, theirs):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            worst = max(worst, float(np.max(np.abs(a - b))))
            within &= bool(np.all(np.abs(a - b) <= FLOAT32_ATOL + FLOAT32_RTOL * np.abs(b)))
        bits = None
        if bitwise:
            exact = _LAYER_CLASSES[kind](sizes["M"], bitwise=True, **arguments)
            exact.set_weights(weights[kind])
            bits = bitwise_differences(_as_list(exact(x)), theirs)
        differences[name] = (worst, within, "", bits)
    return differences


def _print_claims(claims):
    print("The notebook's claims, each checked on the arrays above:")
    for claim in claims:
        print(f"  {PASS if claim.passed else FAIL} {claim.number}. {claim.statement}")
        for line in claim.evidence:
            print(f"            {line}")


def _print_keras_comparison(x, weights, results):
    """Print minirnn's largest difference from Keras per experiment (and, where the
    platform is modelled, whether bitwise=True gives Keras' bits).

    Returns (True: all within tolerance and bit-identical where checked, False: not,
    None: Keras missing; whether the bits were checked).
    """
    try:
        keras, keras_layers = import_keras()
    except KerasUnavailable as error:
        print(f"Keras comparison: skipped, Keras is not available ({error}).")
        print(f"  To compare with Keras: {KERAS_HINT}")
        return None, False
    from .bitwise import bitwise_support
    support = bitwise_support()
    bitwise = bool(support) and keras.backend.backend() == "tensorflow"
    print(f"The same experiments in Keras {keras.__version__} ({keras.backend.backend()} "
          "backend), with the same weights\nand input, run with model.predict as in the "
          "notebook:")
    differences = keras_differences(keras_layers, x, weights, results, bitwise=bitwise)
    ok = True
    for name, (worst, within, note, bits) in differences.items():
        line = f"max |minirnn - Keras| = {_sci(worst)}" + (f"  ({note})" if note else "")
        if bits is not None:
            differing, total = bits
            line += (f"; bitwise=True: {total} of {total} elements identical" if not differing
                     else f"; bitwise=True: {differing} of {total} elements DIFFER")
        good = within and (bits is None or bits[0] == 0)
        ok &= good
        print(f"  {PASS if good else FAIL} {name:<5}  {line}")
    print(f"  (float32 tolerance, elementwise: |minirnn - Keras| <= {_TOLERANCE_TEXT};"
          + (" bitwise=True: the same bits as Keras)" if bitwise else
             f"\n   bitwise mode not checked: {support.reason or 'not the TensorFlow backend'})"))
    return ok, bitwise


def command_demo(args):
    """minirnn demo: the seed notebook's four experiments, every claim checked."""
    sizes = SEED_SIZES
    x, weights, results = seed_experiment(args.seed, sizes)
    print("minirnn demo: the seed notebook's experiment. What do LSTM and GRU return "
          "with\nreturn_state=True, without and with return_sequences=True?\n"
          f"T={sizes['T']} timesteps, D={sizes['D']} features, M={sizes['M']} units, one "
          f"input sequence; the random input and\nweights come from --seed {args.seed}.")
    print()
    print(f"X: the input sequence, shape {_format_shape(x.shape)} = (batch, T, D)")
    print(x)
    print()
    for name, kind, _ in EXPERIMENTS:
        arguments, _ = results[name]
        shares = {"lstm1": "  # lstm1 and lstm2 share their weights",
                  "gru1": "   # gru1 and gru2 share their weights"}.get(name, "")
        print(f"  {name:<5} = {_call_text(kind, sizes['M'], arguments)}{shares}")
    for name, kind, _ in EXPERIMENTS:
        _, arrays = results[name]
        print()
        print(f"{name}:")
        for label, array in zip(("o", "h", "c"), arrays):
            print(f"{label}:", array)
    print()
    claims = check_claims({name: arrays for name, (_, arrays) in results.items()},
                          sizes["T"])
    _print_claims(claims)
    print()
    keras_ok, bits_checked = True, False
    if not args.no_keras:
        keras_ok, bits_checked = _print_keras_comparison(x, weights, results)
        print()
    failed = [c.number for c in claims if not c.passed]
    if failed:
        print(f"Result: claim(s) {', '.join(map(str, failed))} FAILED.")
    else:
        print(f"Result: all {len(claims)} claims hold", end="")
        if keras_ok is None or args.no_keras:
            print(" (Keras comparison skipped).")
        elif keras_ok:
            print(", and minirnn agrees with Keras within float32 rounding"
                  + (" (bit for bit with bitwise=True)." if bits_checked else "."))
        else:
            print(", but minirnn DIFFERS from Keras beyond the float32 tolerance"
                  + (" or, with bitwise=True, in its bits." if bits_checked else "."))
    return FAILED if failed or keras_ok is False else OK


# ---- shapes ------------------------------------------------------------------

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
    layer = _LAYER_CLASSES[case.kind](units, **case.arguments, seed=0)
    if case.merge_mode is not None:
        layer = Bidirectional(layer, merge_mode=_merge(case))
    return [np.shape(a) for a in _as_list(layer(x))]


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
    return "; ".join(f"{', '.join(group)} {_format_shape(shape)}" for group, shape in groups)


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
    return "; ".join(map(_format_shape, theirs)), False


def _shapes_notes(B, T, M):
    return [
        "o = output, h = hidden state, c = cell state (LSTM only); _fwd / _bwd: the "
        "forward /",
        "  backward layer's. n = how many arrays the call returns.",
        f"return_sequences gives o at every step, (B, T, M) = {_format_shape((B, T, M))}, "
        f"not just the last,",
        f"  (B, M) = {_format_shape((B, M))}. return_state appends the final states: "
        "[o, h, c] for LSTM,",
        "  [o, h] for GRU and SimpleRNN. go_backwards changes the values (the sequence "
        "is read",
        "  from its end), never the shapes.",
        f"Bidirectional: concat doubles the features ({M} + {M} = {2 * M}); sum, mul "
        f"and ave keep {M};",
        "  None returns the two outputs apart; return_state appends both layers' states.",
    ]


def command_shapes(args):
    """minirnn shapes: what each configuration returns, computed live."""
    B, T, D, M = args.batch, args.timesteps, args.features, args.units
    x = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)
    keras_layers, keras_name = None, "Keras"
    if not args.no_keras:
        try:
            keras, keras_layers = import_keras()
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
          f"{_format_shape(x.shape)},\nwith M = {M} units.")
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


# ---- trace -------------------------------------------------------------------

_CELL_CHOICES = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
_SATURATION_MARGIN = 0.05   # a bounded value this close to an end is saturated


def gate_statistics(values, function):
    """mean, std, min, max and, for a bounded activation, the fraction saturated.

    Returns a dict; "low" / "high" are the fractions of values within 0.05 of
    the activation's lower / upper bound (None when unbounded or not a gate).
    """
    from .plotting import activation_range

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
    keras, _ = import_keras()
    from .keras_io import from_keras

    model = keras.saving.load_model(path)
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
    from .plotting import describe_trace

    rows = []
    for entry in describe_trace(layer):
        stats = gate_statistics(trace[entry.name], entry.function if entry.heatmap else None)
        share = lambda v: "-" if v is None else f"{100 * v:.0f}%"
        rows.append([entry.name, entry.function if entry.heatmap else "state update",
                     f"{stats['mean']:+.3f}", f"{stats['std']:.3f}", f"{stats['min']:+.3f}",
                     f"{stats['max']:+.3f}", share(stats["low"]), share(stats["high"])])
    headers = ["", "computed by", "mean", "std", "min", "max", "near low", "near high"]
    return format_table(headers, rows, align="llrrrrrr")


def command_trace(args):
    """minirnn trace: every gate of a layer over one sequence, summarised and drawn."""
    from .plotting import describe_trace, matplotlib_available, plot_trace

    if args.model:
        try:
            layer, source = layer_from_model(args.model)
        except KerasUnavailable as error:
            print(f"--model needs Keras, which is not available ({error}).\n"
                  f"  To install it: {KERAS_HINT}")
            return UNAVAILABLE
        except (OSError, ValueError, TypeError) as error:
            print(f"Could not use {args.model}: {error}")
            return FAILED
        D = layer.input_dim
    else:
        kind = _CELL_CHOICES[args.cell]
        layer = _LAYER_CLASSES[kind](args.units, seed=args.seed)
        D = args.features
        layer.build(D)
        source = ("Keras' default initialisation, drawn from the seed: glorot_uniform "
                  "kernel,\n           orthogonal recurrent kernel, zero bias"
                  f"{' (the forget gate: ones)' if kind == 'LSTM' else ''}")
    batch = layer.states[0].shape[0] if layer.stateful and layer.states is not None else 1
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((batch, args.timesteps, D))
    trace = layer.trace(x)
    name = _call_text(type(layer).__name__, layer.units, {})
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
    plot_trace(trace, layer, args.plot, title=title)
    print(f"\nWrote {args.plot}: one heatmap per gate (time across, units down) and "
          "the state\ncurves, each titled with its equation.")
    return OK


# ---- verify ------------------------------------------------------------------

# The arguments whose values get a row each in the "by argument" table.
_VERIFY_ARGUMENTS = ("dtype", "use_bias", "return_sequences", "return_state", "go_backwards",
                     "stateful", "zero_output_for_mask", "mask", "initial_state", "merge_mode")

STATUS_TEXT = """\
  pass             every output within tolerance: |minirnn - Keras| <= atol + rtol |Keras|
                   (float32: {float32}; float64: {float64}).
  ill-conditioned  outside the tolerance, but not minirnn's fault: the recurrence amplifies
                   rounding (unbounded activations, exploding states), so much that Keras'
                   own float32 result lies as far from its float64 result. minirnn's error is
                   within 4x of what that amplification predicts for the case's dtype.
  fail             outside the tolerance and not explained by the amplification: a bug.
  ulp              the error in units in the last place of Keras' value; near zero one ulp
                   is tiny, so a large ulp count there can still be a tiny absolute error."""


class ProgressBar:
    """A one-line text progress bar, redrawn in place on a stream (stderr)."""

    def __init__(self, total, stream=None, width=30):
        self.total, self.width = total, width
        self.stream = sys.stderr if stream is None else stream

    def update(self, done, note=""):
        filled = int(self.width * done / self.total) if self.total else self.width
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {note}")
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def layer_label(case):
    """'LSTM', 'GRU_v1 (bidirectional)', 'SimpleRNN (RNN cell)': a case's layer."""
    suffix = {"none": "", "bidirectional": " (bidirectional)", "cell": " (RNN cell)"}
    return case["kind"] + suffix[case["wrapper"]]


def argument_labels(case):
    """The 'argument=value' rows of the by-argument table that a case belongs to."""
    labels = []
    for name in _VERIFY_ARGUMENTS:
        if name == "merge_mode" and case["wrapper"] != "bidirectional":
            continue
        labels.append(f"{name}={case[name]}")
    labels.append("activation=tanh" if case["activation"] == "tanh"
                  else "activation=other")
    if case["kind"] != "SimpleRNN":
        labels.append("recurrent_activation=sigmoid" if case["recurrent_activation"]
                      == "sigmoid" else "recurrent_activation=other")
    return labels


def divergent_pass(record, tolerances, bound):
    """Whether a passing case must have outputs beyond ``bound`` in magnitude.

    A pass means |error| <= atol + rtol |Keras|, so an error above
    atol + rtol * bound can only pass where |Keras| > bound: a divergent
    recurrence, whose large absolute error is small relative to its values.
    """
    if record["status"] != "pass" or record["max_abs"] is None:
        return False
    atol, rtol = tolerances[record["case"]["dtype"]]
    return record["max_abs"] > atol + rtol * bound


def _worst(records, field):
    """The record with the largest ``field``, or None."""
    records = [r for r in records if r[field] is not None]
    return max(records, key=lambda r: r[field], default=None)


def _group_rows(records, key, divergent):
    """Table rows: per group, counts by status and the worst passing errors by dtype.

    ``divergent(record)`` marks a worst absolute error with '*' (see
    :func:`divergent_pass`).
    """
    groups = {}
    for record in records:
        for label in key(record["case"]):
            groups.setdefault(label, []).append(record)
    rows = []
    for label, members in groups.items():
        count = lambda status: sum(r["status"] == status for r in members)
        row = [label, len(members), count("pass"), count("ill-conditioned"),
               count("fail") + count("error")]
        for dtype in ("float32", "float64"):
            passing = [r for r in members
                       if r["status"] == "pass" and r["case"]["dtype"] == dtype]
            worst_abs, worst_ulp = _worst(passing, "max_abs"), _worst(passing, "max_ulp")
            abs_text = "-" if worst_abs is None else _sci(worst_abs["max_abs"])
            if worst_abs is not None and divergent(worst_abs):
                abs_text += "*"
            row += [abs_text, "-" if worst_ulp is None else f"{worst_ulp['max_ulp']:.0f}"]
        rows.append(row)
    return rows


def verify_tables(records, divergent=lambda record: False):
    """The two summary tables (by layer, by argument value) as text."""
    headers = ["", "cases", "pass", "ill-cond.", "fail",
               "f32 max abs", "f32 ulp", "f64 max abs", "f64 ulp"]
    align = "lrrrrrrrr"
    by_layer = _group_rows(records, lambda case: [layer_label(case)], divergent)
    order = {label: k for k, label in enumerate(
        f"{kind}{suffix}" for kind in ("LSTM", "GRU", "GRU_v1", "SimpleRNN")
        for suffix in ("", " (RNN cell)", " (bidirectional)"))}
    by_layer.sort(key=lambda row: order.get(row[0], len(order)))
    by_argument = sorted(_group_rows(records, argument_labels, divergent),
                         key=lambda row: row[0])
    headers_layer = ["layer"] + headers[1:]
    headers_argument = ["argument=value"] + headers[1:]
    return (format_table(headers_layer, by_layer, align),
            format_table(headers_argument, by_argument, align))


def _json_safe(value):
    """Replace non-finite floats (not valid JSON) by the strings 'inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _rerun_snippet(case):
    return ("python -c \"from reference.cases import run_case; "
            f"print(run_case({case!r}))\"")


def run_verify_cases(cases_module, count, seed, dtype, progress=None):
    """Draw ``count`` cases from ``seed`` and run each; a list of result records."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        case = cases_module.random_case(rng)
        if dtype != "both":
            case["dtype"] = dtype
        try:
            result = cases_module.run_case(case)
        except Exception as error:  # a crash is reported as a failure, not raised
            result = {"status": "error", "error": f"{type(error).__name__}: {error}",
                      "max_abs": None, "max_ulp": None, "units": None,
                      "amplification": None}
        records.append({"index": index, "case": case, **result})
        if progress is not None:
            bad = sum(r["status"] in ("fail", "error") for r in records)
            ill = sum(r["status"] == "ill-conditioned" for r in records)
            progress.update(index + 1, f" {ill} ill-conditioned, {bad} failed")
    return records


def _print_failure(record, seed):
    case = record["case"]
    print(f"{FAIL} case {record['index']} (the last one of --seed {seed} "
          f"--cases {record['index'] + 1}): {record['status']}")
    print(f"  {case_description(case)}")
    if record["status"] == "error":
        print(f"  raised {record['error']}")
    else:
        print(f"  max abs {_sci(record['max_abs'])}, max ulp {record['max_ulp']:.0f}, "
              f"{record['units']:.3g} tolerance units; Keras' own float32-vs-float64 "
              f"amplification {_sci(record['amplification'])}")
    print(f"  rerun: {_rerun_snippet(case)}")


def case_description(case):
    from reference.cases import describe
    return describe(case)


def _bitwise_row(record):
    case = record["case"]
    sizes = f"B={case['B']} T={case['T']} D={case['D']} M={case['M']}"
    options = [f"{name}={case[name]}" for name in ("mask", "go_backwards", "stateful",
                                                    "initial_state")
               if case[name] not in (False, "none")]
    if not case["use_bias"]:
        options.append("use_bias=False")
    if case["wrapper"] == "bidirectional":
        options.insert(0, f"merge_mode={case['merge_mode']}")
    if case["kind"] == "SimpleRNN":
        if case["activation"] != "tanh":
            options.append(f"activation={case['activation']}")
    elif case["activation"] != "tanh" or case["recurrent_activation"] != "sigmoid":
        options.append(f"{case['activation']}/{case['recurrent_activation']}")
    if record["status"] == "error":
        verdict = f"error: {record['error']}"
    elif record["identical"]:
        verdict = f"identical ({record['total']} elements)"
    else:
        verdict = (f"DIFFERENT: {record['differing']} of {record['total']} elements, "
                   f"max abs {_sci(record['max_abs'])}")
    return [record["index"], layer_label(case), sizes, " ".join(options) or "-", verdict]


def run_verify_bitwise_cases(cases_module, count, seed, progress=None):
    """Draw ``count`` bitwise cases from ``seed``; run each; a list of records."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        case = cases_module.random_bitwise_case(rng)
        try:
            result = {"status": "ok", **cases_module.run_bitwise_case(case)}
        except Exception as error:  # a crash is reported as a failure, not raised
            result = {"status": "error", "error": f"{type(error).__name__}: {error}",
                      "identical": False, "differing": None, "total": None, "max_abs": None}
        records.append({"index": index, "case": case, **result})
        if progress is not None:
            bad = sum(not r["identical"] for r in records)
            progress.update(index + 1, f" {bad} not identical")
    return records


def command_verify_bitwise(args):
    """minirnn verify --bitwise: random float32 configurations, bits compared."""
    from .bitwise import bitwise_support
    support = bitwise_support()
    print(support)
    if not support:
        print("minirnn verify --bitwise needs a platform the bitwise mode models.")
        return UNAVAILABLE
    try:
        keras, _ = import_keras()
        from reference import cases as cases_module
    except (KerasUnavailable, ImportError) as error:
        print(f"minirnn verify compares minirnn with Keras, which is not available "
              f"({error}).\n  To install it: {KERAS_HINT}")
        return UNAVAILABLE
    print(f"\nminirnn verify --bitwise: {args.cases} random float32 configurations (--seed "
          f"{args.seed}), each run in minirnn (bitwise=True) and Keras {keras.__version__}; "
          "every output and state compared bit for bit")
    progress = ProgressBar(args.cases)
    records = run_verify_bitwise_cases(cases_module, args.cases, args.seed, progress)
    progress.close()
    print()
    print(format_table(["case", "layer", "sizes", "options", "result"],
                       [_bitwise_row(r) for r in records], "rllll"))
    groups = {}
    for record in records:
        groups.setdefault(layer_label(record["case"]), []).append(record)
    rows = [[label, len(members), sum(r["identical"] for r in members),
             sum(not r["identical"] for r in members),
             sum(r["differing"] or 0 for r in members), sum(r["total"] or 0 for r in members)]
            for label, members in sorted(groups.items())]
    print()
    print(format_table(["layer", "cases", "identical", "different", "differing elements",
                        "elements"], rows, "lrrrrr"))
    if args.json:
        report = {"command": "minirnn verify --bitwise", "seed": args.seed,
                  "cases": args.cases, "keras_version": keras.__version__,
                  "minirnn_version": __version__, "platform": support.details,
                  "results": records}
        with open(args.json, "w") as handle:
            json.dump(_json_safe(report), handle, indent=1)
        print(f"\nWrote every case and result to {args.json}")
    different = [r for r in records if not r["identical"]]
    for record in different:
        print(f"\n{FAIL} case {record['index']}: {case_description(record['case'])}")
        print("  rerun: python -c \"from reference.cases import run_bitwise_case; "
              f"print(run_bitwise_case({record['case']!r}))\"")
    identical = len(records) - len(different)
    elements = sum(r["total"] or 0 for r in records)
    print(f"\nResult: {identical} of {len(records)} cases identical bit for bit "
          f"({elements} elements compared).")
    return FAILED if different else OK


def command_verify(args):
    """minirnn verify: random configurations, minirnn against Keras."""
    if args.bitwise:
        if args.dtype == "float64":
            print("minirnn verify --bitwise compares float32 results; --dtype float64 "
                  "does not apply.")
            return UNAVAILABLE
        return command_verify_bitwise(args)
    try:
        keras, _ = import_keras()
        from reference import cases as cases_module
    except (KerasUnavailable, ImportError) as error:
        print(f"minirnn verify compares minirnn with Keras, which is not available "
              f"({error}).\n  To install it: {KERAS_HINT}")
        return UNAVAILABLE
    print(f"minirnn verify: {args.cases} random configurations (--seed {args.seed}, "
          f"dtype {args.dtype}), each run in minirnn and Keras {keras.__version__}")
    progress = ProgressBar(args.cases)
    records = run_verify_cases(cases_module, args.cases, args.seed, args.dtype, progress)
    progress.close()
    statuses = [r["status"] for r in records]
    counts = {s: statuses.count(s) for s in ("pass", "ill-conditioned", "fail", "error")}
    print()
    bound = cases_module.DIVERGENCE_BOUND
    divergent = lambda record: divergent_pass(record, cases_module.TOLERANCES, bound)
    by_layer, by_argument = verify_tables(records, divergent)
    print("By layer (max abs / ulp: the worst errors among passing cases, per dtype):")
    print(by_layer)
    print()
    print("By argument value:")
    print(by_argument)
    if any(divergent(r) for r in records):
        print(f"  * from a divergent recurrence: outputs beyond {bound:g} in magnitude "
              "(unbounded activations),\n    where this absolute error is within the "
              "relative tolerance.")
    print()
    print("What the statuses mean:")
    print(STATUS_TEXT.format(**{dtype: f"{atol:.0e} + {rtol:.0e} |Keras|".replace("e-0", "e-")
                                for dtype, (atol, rtol) in cases_module.TOLERANCES.items()}))
    ill = [r for r in records if r["status"] == "ill-conditioned"]
    if ill:
        print()
        print("Ill-conditioned cases (activation / recurrent_activation, error, Keras' own "
              "amplification):")
        for record in ill[:10]:
            case = record["case"]
            print(f"  case {record['index']:>3}: {layer_label(case)}, {case['dtype']}, "
                  f"{case['activation']} / {case['recurrent_activation']}: max abs "
                  f"{_sci(record['max_abs'])}, amplification {_sci(record['amplification'])}")
        if len(ill) > 10:
            print(f"  ... and {len(ill) - 10} more (see --json)")
    if args.json:
        report = {"command": "minirnn verify", "seed": args.seed, "cases": args.cases,
                  "dtype": args.dtype, "keras_version": keras.__version__,
                  "minirnn_version": __version__,
                  "tolerances": {k: list(v) for k, v in cases_module.TOLERANCES.items()},
                  "summary": counts, "results": records}
        with open(args.json, "w") as handle:
            json.dump(_json_safe(report), handle, indent=1)
        print(f"\nWrote every case and result to {args.json}")
    failures = [r for r in records if r["status"] in ("fail", "error")]
    print()
    for record in failures:
        _print_failure(record, args.seed)
        print()
    print(f"Result: {counts['pass']} pass, {counts['ill-conditioned']} ill-conditioned, "
          f"{counts['fail'] + counts['error']} fail, of {len(records)} cases.")
    return FAILED if failures else OK


# ---- the parser ----------------------------------------------------------------

def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {value}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value}")
    return value


def build_parser():
    """The argparse parser of ``minirnn`` and its four subcommands."""
    parser = argparse.ArgumentParser(
        prog="minirnn",
        description="Study tools for minirnn: Keras 3's LSTM, GRU, SimpleRNN and "
                    "Bidirectional in readable NumPy and fast Numba kernels.",
        epilog="Keras comparisons need: " + KERAS_HINT + "; pictures need: " + PLOT_HINT)
    parser.add_argument("--version", action="version", version=f"minirnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="the seed experiment: what LSTM and GRU return, every claim checked",
        description="Run the seed notebook's lstm1, lstm2, gru1, gru2 (T=8, D=2, M=3, "
                    "return_state=True, without and with return_sequences=True; the same "
                    "weights for both LSTMs and both GRUs), check its four claims, and "
                    "compare with Keras when it is installed.")
    demo.add_argument("--seed", type=_seed, default=0,
                      help="selects the random input and weights (default 0)")
    demo.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    demo.set_defaults(run=command_demo)

    shapes = commands.add_parser(
        "shapes", help="a table of what each configuration returns, and the shapes",
        description="Run LSTM, GRU, SimpleRNN (return_sequences x return_state, "
                    "go_backwards) and Bidirectional (every merge mode) and list the "
                    "arrays each returns; confirmed against Keras when installed.")
    shapes.add_argument("--batch", type=_positive_int, default=SEED_SIZES["B"],
                        help="B (default 1)")
    shapes.add_argument("--timesteps", type=_positive_int, default=SEED_SIZES["T"],
                        help="T (default 8)")
    shapes.add_argument("--features", type=_positive_int, default=SEED_SIZES["D"],
                        help="D (default 2)")
    shapes.add_argument("--units", type=_positive_int, default=SEED_SIZES["M"],
                        help="M (default 3)")
    shapes.add_argument("--no-keras", action="store_true", help="skip the Keras check")
    shapes.set_defaults(run=command_shapes)

    trace = commands.add_parser(
        "trace", help="gate statistics over one sequence, and a picture of the gates",
        description="Run a layer (random weights, or the first recurrent layer of a "
                    "saved Keras model) over a random sequence, print each gate's "
                    "equation and statistics, and optionally draw them.")
    trace.add_argument("--cell", choices=sorted(_CELL_CHOICES), default="lstm",
                       help="which layer (default lstm); ignored with --model")
    trace.add_argument("--units", type=_positive_int, default=SEED_SIZES["M"],
                       help="M (default 3); ignored with --model")
    trace.add_argument("--timesteps", type=_positive_int, default=SEED_SIZES["T"],
                       help="T (default 8)")
    trace.add_argument("--features", type=_positive_int, default=SEED_SIZES["D"],
                       help="D (default 2); ignored with --model (the layer's)")
    trace.add_argument("--seed", type=_seed, default=0,
                       help="selects the random input and weights (default 0)")
    trace.add_argument("--model", metavar="PATH",
                       help="a saved Keras model (.keras): trace its first recurrent layer "
                            "(a Bidirectional's forward layer)")
    trace.add_argument("--plot", metavar="PATH",
                       help="write a PNG: a heatmap per gate, the state curves")
    trace.set_defaults(run=command_trace)

    verify = commands.add_parser(
        "verify", help="random configurations compared with Keras",
        description="Draw random configurations over the whole argument space (the "
                    "property tests' generator), run each in minirnn and Keras, and "
                    "report the worst errors by layer and by argument value.")
    verify.add_argument("--cases", type=_positive_int, default=100,
                        help="how many configurations (default 100)")
    verify.add_argument("--seed", type=_seed, default=0,
                        help="seed of the configurations (default 0)")
    verify.add_argument("--json", metavar="FILE", help="write every case and result")
    verify.add_argument("--dtype", choices=("float32", "float64", "both"), default="both",
                        help="force a dtype, or draw it per case (both, default)")
    verify.add_argument("--bitwise", action="store_true",
                        help="float32 configurations in the bitwise mode: report per case "
                             "whether minirnn's bits equal Keras' and how many elements "
                             "differ")
    verify.set_defaults(run=command_verify)
    return parser


def main(argv=None):
    """Run the ``minirnn`` command; returns the exit status (0: success)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else UNAVAILABLE
    if args.command is None:
        parser.print_help()
        return UNAVAILABLE
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (e.g. `minirnn shapes | head`)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
