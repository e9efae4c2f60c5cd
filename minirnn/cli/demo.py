"""minirnn demo: the seed notebook's experiment, every claim checked.

lstm1, lstm2, gru1, gru2 (T=8, D=2, M=3, return_state=True, without and with
return_sequences=True; both LSTMs and both GRUs share their weights), the four
claims checked on the arrays, and the same experiments run in Keras.

May use: numpy, :mod:`minirnn.bitwise` and its own modules.
"""

from collections import namedtuple

import numpy as np

from ..bitwise import bitwise_differences
from . import keras_support
from .arguments import non_negative_int
from .common import (FAIL, FAILED, FLOAT32_ATOL, FLOAT32_RTOL, KERAS_HINT, LAYER_CLASSES,
                     OK, PASS, SEED_SIZES, TOLERANCE_TEXT)
from .keras_support import KerasUnavailable
from .tables import as_list, call_text, format_shape, sci

__all__ = ["add_parser", "run", "check_claims", "Claim", "seed_experiment",
           "keras_differences"]


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
        return False, f"shapes differ: {format_shape(a.shape)} vs {format_shape(b.shape)}"
    if np.array_equal(a, b):
        return True, "equal bit for bit"
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    bound = FLOAT32_ATOL + FLOAT32_RTOL * np.abs(b.astype(np.float64))
    worst = float(np.max(difference)) if difference.size else 0.0
    if np.all(difference <= bound):
        return True, f"equal within {sci(worst)}"
    return False, f"differ by up to {sci(worst)}"


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
        steps = f"o {format_shape(o.shape)}: " + (
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
        fresh = LAYER_CLASSES[kind](sizes["M"], seed=int(rng.integers(2**31)))
        fresh.build(sizes["D"])
        weights[kind] = fresh.get_weights()
    for name, kind, return_sequences in EXPERIMENTS:
        arguments = {"return_state": True}
        if return_sequences:
            arguments["return_sequences"] = True
        layer = LAYER_CLASSES[kind](sizes["M"], **arguments)
        layer.set_weights(weights[kind])
        results[name] = (arguments, as_list(layer(x)))
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
            shapes = ", ".join(format_shape(np.shape(b)) for b in theirs)
            differences[name] = (float("inf"), False, f"Keras returned {shapes}", None)
            continue
        worst, within = 0.0, True
        for a, b in zip(ours, theirs):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            worst = max(worst, float(np.max(np.abs(a - b))))
            within &= bool(np.all(np.abs(a - b) <= FLOAT32_ATOL + FLOAT32_RTOL * np.abs(b)))
        bits = None
        if bitwise:
            exact = LAYER_CLASSES[kind](sizes["M"], bitwise=True, **arguments)
            exact.set_weights(weights[kind])
            bits = bitwise_differences(as_list(exact(x)), theirs)
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
        keras, keras_layers = keras_support.import_keras()
    except KerasUnavailable as error:
        print(f"Keras comparison: skipped, Keras is not available ({error}).")
        print(f"  To compare with Keras: {KERAS_HINT}")
        return None, False
    from ..bitwise import bitwise_support
    support = bitwise_support()
    bitwise = bool(support) and keras.backend.backend() == "tensorflow"
    print(f"The same experiments in Keras {keras.__version__} ({keras.backend.backend()} "
          "backend), with the same weights\nand input, run with model.predict as in the "
          "notebook:")
    differences = keras_differences(keras_layers, x, weights, results, bitwise=bitwise)
    ok = True
    for name, (worst, within, note, bits) in differences.items():
        line = f"max |minirnn - Keras| = {sci(worst)}" + (f"  ({note})" if note else "")
        if bits is not None:
            differing, total = bits
            line += (f"; bitwise=True: {total} of {total} elements identical" if not differing
                     else f"; bitwise=True: {differing} of {total} elements DIFFER")
        good = within and (bits is None or bits[0] == 0)
        ok &= good
        print(f"  {PASS if good else FAIL} {name:<5}  {line}")
    print(f"  (float32 tolerance, elementwise: |minirnn - Keras| <= {TOLERANCE_TEXT};"
          + (" bitwise=True: the same bits as Keras)" if bitwise else
             f"\n   bitwise mode not checked: {support.reason or 'not the TensorFlow backend'})"))
    return ok, bitwise


def run(args):
    """minirnn demo: the seed notebook's four experiments, every claim checked."""
    sizes = SEED_SIZES
    x, weights, results = seed_experiment(args.seed, sizes)
    print("minirnn demo: the seed notebook's experiment. What do LSTM and GRU return "
          "with\nreturn_state=True, without and with return_sequences=True?\n"
          f"T={sizes['T']} timesteps, D={sizes['D']} features, M={sizes['M']} units, one "
          f"input sequence; the random input and\nweights come from --seed {args.seed}.")
    print()
    print(f"X: the input sequence, shape {format_shape(x.shape)} = (batch, T, D)")
    print(x)
    print()
    for name, kind, _ in EXPERIMENTS:
        arguments, _ = results[name]
        shares = {"lstm1": "  # lstm1 and lstm2 share their weights",
                  "gru1": "   # gru1 and gru2 share their weights"}.get(name, "")
        print(f"  {name:<5} = {call_text(kind, sizes['M'], arguments)}{shares}")
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


def add_parser(commands):
    parser = commands.add_parser(
        "demo", help="the seed experiment: what LSTM and GRU return, every claim checked",
        description="Run the seed notebook's lstm1, lstm2, gru1, gru2 (T=8, D=2, M=3, "
                    "return_state=True, without and with return_sequences=True; the same "
                    "weights for both LSTMs and both GRUs), check its four claims, and "
                    "compare with Keras when it is installed.")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="selects the random input and weights (default 0)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    parser.set_defaults(run=run)
