"""Random configurations over the whole argument space, run in minirnn and Keras.

One generator serves the property tests (hypothesis draws each choice) and
``minirnn verify`` (a NumPy generator draws them): :func:`draw_case` takes a
``choose(name, options)`` callback and returns a case dict; :func:`run_case` builds
the Keras layer with random per-gate weights, converts it with ``minirnn.from_keras``,
runs both on the same input and reports the differences.
"""

import numpy as np

import minirnn
from minirnn.activations import names as activation_names
from minirnn.bitwise import bitwise_differences  # noqa: F401  (part of this module's API)

from . import keras_layers

# Tolerances, |minirnn - keras| <= ATOL + RTOL * |keras|, elementwise, by dtype.
# float64: both sides compute the same expression in the same order; only the
# summation order inside matrix products differs (a few ulp per step).
# float32: additionally TensorFlow's tanh/sigmoid are Eigen's polynomial and
# Cephes-style approximations, about 1 ulp (6e-8) from the correctly rounded value.
TOLERANCES = {"float32": (1e-6, 1e-6), "float64": (1e-12, 1e-12)}

# A case whose Keras outputs or states exceed this magnitude is "divergent": the
# recurrence explodes (unbounded activations such as exponential, relu, softplus
# or selu as gates, with growth over the steps), and the growth amplifies the
# ulp-level differences of the activations and matrix products step after step.
# The tolerances above describe bounded recurrences; divergent cases are reported
# with their errors but not judged against them.
DIVERGENCE_BOUND = 1e3

KINDS = ("LSTM", "GRU", "GRU_v1", "SimpleRNN")
MASKS = ("none", "random", "leading", "trailing", "row_off")
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
COMMON_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")


def draw_case(choose):
    """A case dict; ``choose(name, options)`` returns one of ``options``."""
    case = {
        "kind": choose("kind", KINDS),
        "wrapper": choose("wrapper", ("none", "none", "cell", "bidirectional")),
        "dtype": choose("dtype", ("float32", "float64")),
        "B": choose("B", (1, 1, 2, 3, 5)),
        "T": choose("T", (1, 2, 5, 8, 13)),
        "D": choose("D", (1, 2, 3, 7)),
        "M": choose("M", (1, 2, 3, 5, 8)),
        "use_bias": choose("use_bias", (True, True, False)),
        "return_sequences": choose("return_sequences", (False, True)),
        "return_state": choose("return_state", (False, True)),
        "go_backwards": choose("go_backwards", (False, False, True)),
        "stateful": choose("stateful", (False, False, False, True)),
        "zero_output_for_mask": choose("zero_output_for_mask", (False, True)),
        "mask": choose("mask", MASKS),
        "initial_state": choose("initial_state", (False, True)),
        "inference_only": choose("inference_only", (False, False, True)),
        "seed": choose("seed", tuple(range(1000))),
    }
    pool = COMMON_ACTIVATIONS + tuple(activation_names())
    case["activation"] = choose("activation", ("tanh",) * 4 + pool)
    case["recurrent_activation"] = choose("recurrent_activation", ("sigmoid",) * 4 + pool)
    case["merge_mode"] = (choose("merge_mode", MERGE_MODES)
                          if case["wrapper"] == "bidirectional" else "concat")
    if case["wrapper"] == "bidirectional":
        case["go_backwards"] = False  # Keras refuses a go_backwards forward layer
    return case


def random_case(rng):
    """A case drawn with a NumPy Generator."""
    return draw_case(lambda name, options: options[int(rng.integers(len(options)))])


def describe(case):
    keys = ("kind", "wrapper", "merge_mode", "dtype", "B", "T", "D", "M", "activation",
            "recurrent_activation", "use_bias", "return_sequences", "return_state",
            "go_backwards", "stateful", "zero_output_for_mask", "mask", "initial_state",
            "inference_only", "seed")
    return ", ".join(f"{k}={case[k]!r}" for k in keys
                     if not (k == "merge_mode" and case["wrapper"] != "bidirectional"))


def _unroll_bug(case):
    """Whether Keras' unrolled loop would zero the wrong masked outputs here.

    With unroll=True, go_backwards and zero_output_for_mask (Bidirectional's backward
    layer with return_sequences has both), Keras 3 zeroes the outputs of masked
    steps using the mask in input order while the outputs are in processing order
    (keras/src/backend/tensorflow/rnn.py); its while-loop path, which minirnn
    follows, does not. Such cases are not drawn with unroll=True.
    """
    if case["mask"] == "none" or not case["return_sequences"]:
        return False
    if case["wrapper"] == "bidirectional":
        return True
    return case["go_backwards"] and case["zero_output_for_mask"]


def keras_config(case):
    """The Keras constructor arguments of a case (for the wrapped layer)."""
    kind = "GRU" if case["kind"] == "GRU_v1" else case["kind"]
    config = {
        "kind": kind, "units": case["M"], "activation": case["activation"],
        "use_bias": case["use_bias"], "return_sequences": case["return_sequences"],
        "return_state": case["return_state"], "go_backwards": case["go_backwards"],
        "stateful": case["stateful"], "zero_output_for_mask": case["zero_output_for_mask"],
        "dtype": case["dtype"], "cell": case["wrapper"] == "cell",
    }
    if case.get("inference_only"):
        # Arguments that change nothing at inference; recurrent_dropout > 0 also
        # switches Keras' LSTM and GRU cells to implementation 1 (another order of
        # operations, the same maths).
        config.update(dropout=0.3, recurrent_dropout=0.2, unroll=not _unroll_bug(case))
        if kind != "SimpleRNN":
            config["implementation"] = 1
    if kind != "SimpleRNN":
        config["recurrent_activation"] = case["recurrent_activation"]
    if kind == "GRU":
        config["reset_after"] = case["kind"] == "GRU"
    return config


def make_mask(rng, kind, B, T):
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((B, T)) < 0.7
    mask = np.ones((B, T), bool)
    for b in range(B):
        k = int(rng.integers(0, T + 1))
        if kind == "leading":
            mask[b, :k] = False
        elif kind == "trailing":
            mask[b, T - k:] = False
    if kind == "row_off":
        mask[int(rng.integers(B))] = False
    return mask


def make_data(case):
    """Weights, inputs, masks and initial states of a case, one entry per call.

    Every value is rounded to float32 (and kept in float64), so the float32 and
    float64 runs of the same case see identical numbers.
    """
    rng = np.random.default_rng(case["seed"])
    kind = keras_config(case)["kind"]
    B, T, D, M = case["B"], case["T"], case["D"], case["M"]
    reset_after = case["kind"] != "GRU_v1"
    layers = 2 if case["wrapper"] == "bidirectional" else 1
    weights = []
    for _ in range(layers):
        weights += keras_layers.random_weights(rng, kind, D, M, case["use_bias"], reset_after)
    calls = []
    for call in range(2 if case["stateful"] else 1):
        initial_state = None
        x = rng.normal(size=(B, T, D))
        mask = make_mask(rng, case["mask"], B, T)
        if case["initial_state"] and call == 0:
            initial_state = [rng.normal(0, 0.5, size=(B, M)) for _ in range(n_states(case))]
        calls.append({"x": x, "mask": mask, "initial_state": initial_state})
    round32 = lambda a: None if a is None else a.astype(np.float32).astype(np.float64)
    weights = [round32(w) for w in weights]
    for call in calls:
        call["x"] = round32(call["x"])
        if call["initial_state"] is not None:
            call["initial_state"] = [round32(h) for h in call["initial_state"]]
    return weights, calls


def keras_layer(case, weights, dtype=None):
    """The Keras layer of a case, in ``dtype`` (default the case's), weights set."""
    dtype = dtype or case["dtype"]
    config = {**keras_config(case), "dtype": dtype}
    batch = case["B"] if case["stateful"] else None
    weights = [w.astype(dtype) for w in weights]
    if case["wrapper"] == "bidirectional":
        return keras_layers.build_bidirectional(config, case["D"], case["merge_mode"],
                                                batch_size=batch, weights=weights)
    return keras_layers.build_layer(config, case["D"], batch, weights)


def run_calls(layer, calls, dtype):
    """Outputs of every call (a list of lists of arrays) of a Keras or minirnn layer."""
    results = []
    for call in calls:
        cast = lambda a: None if a is None else a.astype(dtype)
        states = call["initial_state"]
        states = None if states is None else [cast(h) for h in states]
        if hasattr(layer, "get_config") and type(layer).__module__.startswith("keras"):
            out = keras_layers.run(layer, cast(call["x"]), call["mask"], states)
        else:
            out = layer(cast(call["x"]), mask=call["mask"], initial_state=states)
            out = out if isinstance(out, list) else [out]
        results.append([np.asarray(o) for o in out])
    return results


def n_states(case):
    per_layer = 2 if case["kind"] == "LSTM" else 1
    return per_layer * (2 if case["wrapper"] == "bidirectional" else 1)


def tolerance_units(ours, reference, dtype):
    """max |ours - reference| / (ATOL + RTOL |reference|) over finite elements, and
    whether NaN and infinity sit at the same places (and infinities agree in sign)."""
    atol, rtol = TOLERANCES[dtype]
    worst, same_specials = 0.0, True
    for a, b in zip(ours, reference):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return float("inf"), False
        finite = np.isfinite(a) & np.isfinite(b)
        same_specials &= bool(np.array_equal(a[~finite], b[~finite], equal_nan=True))
        if finite.any():
            worst = max(worst, float(np.max(np.abs(a - b)[finite] / (atol + rtol * np.abs(b[finite])))))
    return worst, same_specials


def _max_abs_and_ulp(ours, reference, dtype):
    worst_abs = worst_ulp = 0.0
    for a, b in zip(ours, reference):
        a, b = np.asarray(a), np.asarray(b)
        finite = np.isfinite(a) & np.isfinite(b)
        if not finite.any():
            continue
        diff = np.abs(a[finite].astype(np.float64) - b[finite].astype(np.float64))
        ulp = diff / np.spacing(np.maximum(np.abs(b[finite]), np.finfo(dtype).tiny)).astype(np.float64)
        worst_abs, worst_ulp = max(worst_abs, float(diff.max())), max(worst_ulp, float(ulp.max()))
    return worst_abs, worst_ulp


def _perturbed(rng, values):
    """Each value moved by about one float32 ulp, up or down at random."""
    if values is None:
        return None
    step = 1 + np.finfo(np.float32).eps * rng.choice([-1.0, 1.0], size=np.shape(values))
    return (np.asarray(values) * step).astype(np.float32).astype(np.float64)


def _amplification(case, weights, calls):
    """How far Keras' float32 result strays from its float64 result, in float32
    tolerance units: the larger of two samples, the case's data and the same data
    moved by about one float32 ulp (both measure how much the recurrence amplifies
    rounding; one sample alone is a noisy estimate). Infinite where float32
    overflows or turns NaN and float64 does not."""
    k64 = [a for call in run_calls(keras_layer(case, weights, "float64"), calls, "float64")
           for a in call]
    rng = np.random.default_rng(case["seed"] + 1)
    moved_weights = [_perturbed(rng, w) for w in weights]
    moved_calls = [{"x": _perturbed(rng, c["x"]), "mask": c["mask"],
                    "initial_state": (None if c["initial_state"] is None else
                                      [_perturbed(rng, h) for h in c["initial_state"]])}
                   for c in calls]
    worst = 0.0
    for w, cs in ((weights, calls), (moved_weights, moved_calls)):
        k32 = [a for call in run_calls(keras_layer(case, w, "float32"), cs, "float32")
               for a in call]
        units, same_specials = tolerance_units(k32, k64, "float32")
        if not same_specials:
            return float("inf")
        worst = max(worst, units)
    return worst


# At 1e5 float32 tolerance units Keras' float32 result is off by 10% of its value:
# the error no longer grows linearly with the rounding (it saturates near 100%
# while a float64 error would keep growing), so no prediction for float64 can be
# drawn from it, and the case is taken as ill-conditioned whatever the dtype.
_SATURATED = 1e5

# float64 tolerance units per float32 tolerance unit of rounding amplification:
# (float64 epsilon / float32 epsilon) * (float32 tolerance / float64 tolerance).
_UNITS_64_PER_32 = 2.0 ** -29 * (1e-6 / 1e-12)


def run_case(case):
    """Run a case in Keras and minirnn (two calls when stateful); compare every output.

    Returns a dict: max_abs, max_ulp, units (worst error in tolerance units:
    <= 1 is within tolerance), status "pass", "ill-conditioned" or "fail", and
    amplification when measured.

    A case outside tolerance is checked for ill-conditioning: the same Keras layer
    is run in float32 and float64 on identical data (and in float32 once more on
    data moved by one ulp). When the recurrence amplifies rounding (unbounded gate
    activations, exploding states), Keras' own float32 result lies far from its
    float64 result; ``amplification`` is that distance in float32 tolerance units
    (the larger of the two samples). The case is "ill-conditioned" when minirnn's error is
    within 4x of what that amplification predicts for the case's dtype, else "fail".
    Where Keras' float32 run overflows (or turns NaN) and its float64 run does not,
    or is off by 10% or more (chaotic growth), the amplification is unbounded and the
    case is ill-conditioned.
    """
    dtype = case["dtype"]
    weights, calls = make_data(case)
    layer = keras_layer(case, weights)
    ours = minirnn.from_keras(layer)  # before Keras runs: a stateful layer's states move
    theirs = run_calls(layer, calls, dtype)
    mine = run_calls(ours, calls, dtype)
    flat_mine = [a for call in mine for a in call]
    flat_theirs = [a for call in theirs for a in call]
    same_count = all(len(a) == len(b) for a, b in zip(mine, theirs))
    units, same_specials = tolerance_units(flat_mine, flat_theirs, dtype)
    max_abs, max_ulp = _max_abs_and_ulp(flat_mine, flat_theirs, dtype)
    result = {"max_abs": max_abs, "max_ulp": max_ulp, "units": units, "amplification": None}
    if same_count and same_specials and units <= 1:
        result["status"] = "pass"
        return result
    amplification = _amplification(case, weights, calls)
    result["amplification"] = amplification
    if amplification >= _SATURATED:
        amplification = float("inf")
    predicted = amplification * (1.0 if dtype == "float32" else _UNITS_64_PER_32)
    explained = units <= 4 * predicted
    result["status"] = "ill-conditioned" if same_count and explained else "fail"
    return result


# ---- bitwise mode ----------------------------------------------------------------

def draw_bitwise_case(choose):
    """A float32 case for the bitwise mode: its activations, and inner sizes on both
    sides of oneDNN's 384 block. Batches of one keep single-row products below the
    size whose summation order depends on TensorFlow's threads
    (minirnn.bitwise.check_products)."""
    from minirnn.bitwise import ACTIVATIONS, SINGLE_ROW_SPLIT

    case = draw_case(choose)
    case["dtype"] = "float32"
    pool = ("tanh",) * 6 + ACTIVATIONS
    case["activation"] = choose("bitwise_activation", pool)
    case["recurrent_activation"] = choose("bitwise_recurrent_activation",
                                          ("sigmoid",) * 6 + ACTIVATIONS)
    case["B"] = choose("bitwise_B", (1, 2, 3, 5, 9))
    case["D"] = choose("bitwise_D", (1, 3, 7, 130, 384, 400, 777))
    case["M"] = choose("bitwise_M", (1, 2, 5, 8, 33, 200, 385))
    if case["D"] * case["M"] > 100_000:  # one large inner size at a time
        case["M"] = 33
    gates = {"LSTM": 4, "GRU": 3, "GRU_v1": 3, "SimpleRNN": 1}[case["kind"]]
    if case["B"] == 1 and max(case["D"], case["M"]) * (gates * case["M"] + 1) >= \
            SINGLE_ROW_SPLIT:
        case["B"] = 2
    one_column = case["kind"] == "SimpleRNN" or case["inference_only"]  # implementation=1
    if case["M"] == 1 and case["B"] > 1 and case["D"] > 1 and one_column:
        case["M"] = 2  # a matrix-vector product (unmodelled_product)
    case["T"] = min(case["T"], 5) if max(case["D"], case["M"]) > 100 else case["T"]
    return case


def random_bitwise_case(rng):
    return draw_bitwise_case(lambda name, options: options[int(rng.integers(len(options)))])


def run_bitwise_case(case, predict=False):
    """Run a float32 case in Keras and in minirnn's bitwise mode; compare the bits.

    Returns a dict: identical (bool), differing and total (elements), max_abs.
    With predict, Keras runs through model.predict (plain layers without masks or
    states only) instead of an eager call.
    """
    weights, calls = make_data(case)
    layer = keras_layer(case, weights, "float32")
    ours = minirnn.from_keras(layer, bitwise=True)
    if predict:
        x = calls[0]["x"].astype(np.float32)
        theirs = [keras_layers.predict(layer, x, case["D"])]
    else:
        theirs = run_calls(layer, calls, "float32")
    mine = run_calls(ours, calls[:len(theirs)], "float32")
    flat_mine = [a for call in mine for a in call]
    flat_theirs = [a for call in theirs for a in call]
    differing, total = bitwise_differences(flat_mine, flat_theirs)
    same_count = all(len(a) == len(b) for a, b in zip(mine, theirs))
    max_abs, _ = _max_abs_and_ulp(flat_mine, flat_theirs, "float32") if same_count else \
        (float("inf"), None)
    return {"identical": same_count and differing == 0, "differing": differing,
            "total": total, "max_abs": max_abs}
