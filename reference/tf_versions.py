"""Which TensorFlow releases give Keras' recurrent layers the bits of TensorFlow 2.21?

Two steps, two kinds of environment:

    # in any environment with tensorflow (2.16 or later) and Keras 3 (not minirnn):
    /tmp/tf2.20/bin/python reference/tf_versions.py run --out /tmp/tfv/2.20.npz
    python reference/tf_versions.py run --out /tmp/tfv/2.21.npz      # the modelled one

    # in minirnn's environment (TensorFlow 2.21), compare the files:
    python -m reference.tf_versions compare --reference /tmp/tfv/2.21.npz \\
        /tmp/tfv/2.20.npz ... [--json FILE --md FILE]

``run`` imports only NumPy, TensorFlow, Keras and the standard library. It builds a
fixed, seeded set of cases (random LSTM, GRU (reset_after both), SimpleRNN, RNN(cell)
and Bidirectional configurations: units, input sizes across oneDNN's K blocks of 384
and 768, batches of 1 to 64, 1 to 40 steps, masks, go_backwards, initial states,
implementation 1, the activations of minirnn's bitwise mode, per-gate weights with
non-zero biases), calls each Keras layer eagerly in float32, and saves the outputs,
digests of the inputs and weights, probes of the bare operations (tf.matmul over
products of one and several rows and K across the blocks, every activation on 200,000
values) and what it can learn of the build: tf.__version__, Keras' version,
tf.sysconfig.get_build_info(), the oneDNN version (its header, and the line
ONEDNN_VERBOSE=1 prints for one product), and SHA-256 digests of the Eigen headers
that hold the float32 tanh and sigmoid formulas.

``compare`` checks, per file, (a) the bits of every case's outputs and of every probe
against the reference file (TensorFlow 2.21), and (b) minirnn's ``bitwise=True``
outputs for the same cases (built in this environment from the same weights) against
the file's outputs; it reports identical cases / total and the differing elements.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 2026
# minirnn.bitwise.ACTIVATIONS (this script must run without minirnn; a test checks
# that the two lists agree).
ACTIVATIONS = ("linear", "tanh", "sigmoid", "hard_sigmoid", "relu", "relu6", "leaky_relu",
               "softsign", "soft_shrink", "silu", "swish", "squareplus", "tanh_shrink",
               "hard_tanh", "hard_shrink", "hard_silu", "hard_swish", "sparse_sigmoid")
KINDS = ("LSTM", "GRU", "GRU_v1", "SimpleRNN")
GATES = {"LSTM": 4, "GRU": 3, "GRU_v1": 3, "SimpleRNN": 1}
MASKS = ("none", "random", "leading", "trailing", "row_off")
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
BATCHES = (1, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 32, 33, 64)
# Inner sizes on both sides of oneDNN's blocks: 384 (one block), 385-768 (two halves),
# above 768 (384s from the front, then the rest halved).
INPUT_SIZES = (1, 2, 3, 5, 8, 13, 31, 64, 130, 384, 385, 400, 700, 768, 769, 800, 1000, 1200)
UNITS = (1, 2, 3, 5, 7, 8, 16, 33, 64, 100, 129, 200, 384, 385, 400, 777, 800)
SINGLE_ROW_FLOATS = 1 << 18   # keep single-row products below any L2 split (1 MiB L2)
WORK_BUDGET = 6e8             # multiply-adds per case (T is cut to fit)
OUTPUT_BUDGET = 1 << 20       # floats of returned sequences per case
PRODUCTS = [(rows, K, N) for rows in (1, 2, 5, 64) for K in (1, 7, 200, 384, 385, 500, 768,
                                                             769, 1000, 1300)
            for N in (3, 40, 400)]
EIGEN_FILES = ("Eigen/src/Core/MathFunctionsImpl.h",
               "Eigen/src/Core/arch/Default/GenericPacketMathFunctions.h",
               "Eigen/src/Core/arch/AVX/MathFunctions.h",
               "Eigen/src/Core/arch/AVX512/MathFunctions.h",
               "Eigen/src/Core/arch/SSE/MathFunctions.h",
               "Eigen/src/Core/functors/UnaryFunctors.h",
               "Eigen/src/Core/GenericPacketMath.h",
               "Eigen/src/Core/MathFunctions.h")


# ---- the cases ---------------------------------------------------------------------

def draw_case(rng, index):
    """Case ``index``: a dict of plain values (JSON), drawn from ``rng``."""
    pick = lambda options: options[int(rng.integers(len(options)))]
    kind = pick(KINDS)
    wrapper = pick(("none", "none", "none", "none", "cell", "bidirectional", "bidirectional"))
    case = {"index": index, "kind": kind, "wrapper": wrapper,
            "B": pick(BATCHES), "T": int(rng.integers(1, 41)),
            "D": pick(INPUT_SIZES), "M": pick(UNITS),
            "use_bias": bool(rng.random() < 0.85),
            "return_sequences": bool(rng.random() < 0.5),
            "return_state": bool(rng.random() < 0.5),
            "go_backwards": bool(rng.random() < 0.3) and wrapper != "bidirectional",
            "mask": pick(MASKS), "zero_output_for_mask": bool(rng.random() < 0.5),
            "initial_state": bool(rng.random() < 0.3),
            "implementation1": bool(rng.random() < 0.15) and kind != "SimpleRNN",
            "activation": "tanh" if rng.random() < 0.5 else pick(ACTIVATIONS),
            "recurrent_activation": "sigmoid" if rng.random() < 0.5 else pick(ACTIVATIONS),
            "merge_mode": pick(MERGE_MODES) if wrapper == "bidirectional" else "concat",
            "seed": int(rng.integers(1 << 30))}
    if case["D"] * case["M"] > 400_000:  # one large inner size at a time
        case["M"] = pick((33, 129, 200))
    G, D, M = GATES[kind], case["D"], case["M"]
    one_column = kind == "SimpleRNN" or case["implementation1"]
    if M == 1 and D > 1 and one_column:
        case["M"] = M = 2  # a matrix-vector product for B > 1 (not modelled by minirnn)
    if case["B"] == 1 and max(D, M) * (G * M + 1) >= SINGLE_ROW_FLOATS:
        case["B"] = 2  # a single row split between threads (not modelled by minirnn)
    directions = 2 if wrapper == "bidirectional" else 1
    per_step = 2 * case["B"] * (D + M) * G * M * directions
    case["T"] = max(1, min(case["T"], int(WORK_BUDGET // per_step)))
    while case["B"] > 2 and case["B"] * case["T"] * M * directions > OUTPUT_BUDGET:
        case["B"] //= 2
    return case


def cases(count, seed=SEED):
    rng = np.random.default_rng(seed)
    return [draw_case(rng, index) for index in range(count)]


def keras_config(case):
    kind = "GRU" if case["kind"] == "GRU_v1" else case["kind"]
    config = {"units": case["M"], "activation": case["activation"],
              "use_bias": case["use_bias"], "return_sequences": case["return_sequences"],
              "return_state": case["return_state"], "go_backwards": case["go_backwards"],
              "zero_output_for_mask": case["zero_output_for_mask"], "dtype": "float32"}
    if kind != "SimpleRNN":
        config["recurrent_activation"] = case["recurrent_activation"]
        if case["implementation1"]:
            config.update(implementation=1, recurrent_dropout=0.2)
    if kind == "GRU":
        config["reset_after"] = case["kind"] == "GRU"
    return kind, config


def n_states(case):
    return (2 if case["kind"] == "LSTM" else 1) * (2 if case["wrapper"] == "bidirectional" else 1)


def make_data(case):
    """(weights, x, mask, initial_state) of a case, float32, from its own seed.

    Each gate's kernel and recurrent kernel have their own scale (so a swapped gate
    shows) and the products stay in the activations' working range at every K; biases
    are non-zero."""
    rng = np.random.default_rng(case["seed"])
    G, B, T, D, M = GATES[case["kind"]], case["B"], case["T"], case["D"], case["M"]
    weights = []
    for _ in range(2 if case["wrapper"] == "bidirectional" else 1):
        scales = np.repeat(rng.uniform(0.5, 1.5, size=G), M)
        weights.append(rng.normal(0.0, 1.0, size=(D, G * M)) * scales / np.sqrt(D))
        weights.append(rng.normal(0.0, 1.0, size=(M, G * M)) * scales / np.sqrt(M))
        if case["use_bias"]:
            shape = (2, G * M) if case["kind"] == "GRU" else (G * M,)
            weights.append(rng.uniform(-0.5, 0.5, size=shape))
    weights = [w.astype(np.float32) for w in weights]
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    mask = None
    if case["mask"] == "random":
        mask = rng.random((B, T)) < 0.7
    elif case["mask"] != "none":
        mask = np.ones((B, T), bool)
        for b in range(B):
            k = int(rng.integers(0, T + 1))
            if case["mask"] == "leading":
                mask[b, :k] = False
            elif case["mask"] == "trailing":
                mask[b, T - k:] = False
        if case["mask"] == "row_off":
            mask[int(rng.integers(B))] = False
    states = None
    if case["initial_state"]:
        states = [rng.normal(0, 0.5, size=(B, M)).astype(np.float32)
                  for _ in range(n_states(case))]
    return weights, x, mask, states


def data_digest(weights, x, mask, states):
    digest = hashlib.sha256()
    for array in list(weights) + [x] + ([] if mask is None else [mask]) + list(states or []):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def keras_layer(case, weights):
    """The built Keras layer of a case with its weights (in the running Keras)."""
    import keras

    kind, config = keras_config(case)

    def single():
        if case["wrapper"] == "cell":
            rnn_args = {name: config.pop(name) for name in
                        ("return_sequences", "return_state", "go_backwards",
                         "zero_output_for_mask") if name in config}
            cell = getattr(keras.layers, kind + "Cell")(**config)
            return keras.layers.RNN(cell, dtype="float32", **rnn_args)
        return getattr(keras.layers, kind)(**config)

    layer = single()
    if case["wrapper"] == "bidirectional":
        layer = keras.layers.Bidirectional(layer, merge_mode=case["merge_mode"],
                                           dtype="float32")
    layer.build((None, None, case["D"]))
    layer.set_weights(weights)
    return layer


def run_keras(layer, x, mask, states):
    import keras

    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if states is not None:
        kwargs["initial_state"] = list(states)
    if type(layer).__name__ == "Bidirectional" and layer.return_state:
        # Keras 3's Bidirectional.compute_mask fails with return_state after call()
        # has run (it multiplies a generator by 2); call() itself is sound.
        result = layer.call(x, **kwargs)
    else:
        result = layer(x, **kwargs)
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(keras.ops.convert_to_numpy(r)) for r in result]


# ---- probes of the bare operations -------------------------------------------------

def _values(n, scale, offset=0):
    k = np.arange(n, dtype=np.int64) + offset
    return (((k * 7919) % 4001 - 2000) / (2000.0 / scale)).astype(np.float32)


def probes():
    """{name: float32 array}: tf.matmul over PRODUCTS, and each activation (Keras')
    over 200,000 values in [-12, 12] plus specials (a tail of 5 on the scalar path)."""
    import keras
    import tensorflow as tf

    out = {}
    for rows, K, N in PRODUCTS:
        a = _values(rows * K, 1.0, 1 + rows + K).reshape(rows, K)
        b = _values(K * N, 1.0, 7 + N).reshape(K, N)
        out[f"matmul_{rows}x{K}x{N}"] = np.asarray(tf.matmul(a, b))
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.uniform(-12, 12, 200_000).astype(np.float32),
                             np.array([-95.0, -88.0, 20.0, 1e-40, -0.0], np.float32)])
    for name in ACTIVATIONS:
        try:
            function = keras.activations.get(name)
        except (ValueError, AttributeError):
            continue
        out[f"activation_{name}"] = np.asarray(keras.ops.convert_to_numpy(function(values)))
    return out


# ---- what the build says of itself -------------------------------------------------

def build_facts():
    import keras
    import tensorflow as tf

    facts = {"tensorflow": tf.__version__, "keras": keras.__version__,
             "numpy": np.__version__, "python": sys.version.split()[0]}
    try:
        facts["build_info"] = {k: str(v) for k, v in tf.sysconfig.get_build_info().items()}
    except Exception as error:  # noqa: BLE001 - only a report
        facts["build_info"] = f"unavailable: {error}"
    include = tf.sysconfig.get_include()
    header = os.path.join(include, "external/onednn/include/oneapi/dnnl/dnnl_version.h")
    try:
        with open(header) as handle:
            numbers = [line.split()[2] for line in handle
                       if line.startswith(("#define DNNL_VERSION_MAJOR ",
                                           "#define DNNL_VERSION_MINOR ",
                                           "#define DNNL_VERSION_PATCH "))]
        facts["onednn_header"] = ".".join(numbers)
    except OSError:
        facts["onednn_header"] = "not found"
    eigen = {}
    for name in EIGEN_FILES:
        try:
            with open(os.path.join(include, name), "rb") as handle:
                eigen[name] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            eigen[name] = "not found"
    facts["eigen_headers_sha256"] = eigen
    code = ("import numpy as np, tensorflow as tf; a = np.ones((5, 400), np.float32); "
            "tf.matmul(a, a.T).numpy()")
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        text = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300).stdout
        facts["onednn_verbose"] = [line for line in text.splitlines()
                                   if line.startswith(("onednn_verbose", "dnnl_verbose"))][:12]
    except (OSError, subprocess.SubprocessError) as error:
        facts["onednn_verbose"] = [f"unavailable: {error}"]
    return facts


def run(out, count, seed):
    import keras

    keras.config.set_floatx("float32")
    arrays, records = {}, []
    for case in cases(count, seed):
        weights, x, mask, states = make_data(case)
        record = {"case": case, "data_sha256": data_digest(weights, x, mask, states)}
        try:
            outputs = run_keras(keras_layer(case, weights), x, mask, states)
        except Exception as error:  # noqa: BLE001 - recorded, compared as missing
            record["error"] = f"{type(error).__name__}: {error}"[:300]
            outputs = []
        record["outputs"] = len(outputs)
        for k, array in enumerate(outputs):
            arrays[f"case{case['index']}_out{k}"] = array
        records.append(record)
    for name, array in probes().items():
        arrays[f"probe_{name}"] = array
    meta = {"facts": build_facts(), "seed": seed, "cases": records}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
    errors = sum("error" in r for r in records)
    print(f"{out}: TensorFlow {meta['facts']['tensorflow']}, Keras {meta['facts']['keras']}, "
          f"{len(records)} cases ({errors} errors), oneDNN {meta['facts']['onednn_header']}")


# ---- comparison (minirnn's environment) --------------------------------------------

def load(path):
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    return meta, data


def differing(a, b):
    """(elements whose bits differ, elements, max |a - b|) of two float32 arrays."""
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    if a.shape != b.shape:
        return b.size, b.size, float("inf")
    bad = a.view(np.int32) != b.view(np.int32)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    finite = np.isfinite(diff)
    return int(bad.sum()), int(b.size), float(diff[finite].max()) if finite.any() else 0.0


def case_outputs(meta_case, data):
    index = meta_case["case"]["index"]
    return [data[f"case{index}_out{k}"] for k in range(meta_case["outputs"])]


def minirnn_outputs(reference_meta):
    """minirnn's bitwise=True outputs of every case (None where it refuses)."""
    import minirnn

    results = {}
    for record in reference_meta["cases"]:
        case = record["case"]
        weights, x, mask, states = make_data(case)
        assert data_digest(weights, x, mask, states) == record["data_sha256"], case
        try:
            ours = minirnn.from_keras(keras_layer(case, weights), bitwise=True)
            out = ours(x, mask=mask, initial_state=states)
            results[case["index"]] = [np.asarray(o) for o in
                                      (out if isinstance(out, list) else [out])]
        except minirnn.BitwiseUnsupportedError as error:
            results[case["index"]] = str(error)
    return results


def features(case):
    """Which products a case runs: rows, and K of the input and recurrent products."""
    return {"rows": "1" if case["B"] == 1 else "2+",
            "K_input": "<=384" if case["D"] <= 384 else ("385-768" if case["D"] <= 768 else ">768"),
            "K_recurrent": "<=384" if case["M"] <= 384 else ("385-768" if case["M"] <= 768
                                                             else ">768")}


def compare_file(path, ref_meta, ref_data, ours):
    meta, data = load(path)
    report = {"file": path, "facts": meta["facts"], "cases": 0, "identical_to_reference": 0,
              "elements": 0, "elements_differing_from_reference": 0,
              "identical_to_minirnn": 0, "elements_differing_from_minirnn": 0,
              "minirnn_refused": 0, "errors": 0, "max_abs_from_reference": 0.0,
              "differing_cases": [], "probes_differing": {}}
    by_index = {r["case"]["index"]: r for r in ref_meta["cases"]}
    for record in meta["cases"]:
        case = record["case"]
        ref = by_index[case["index"]]
        assert record["data_sha256"] == ref["data_sha256"], ("inputs differ", case)
        if "error" in record or "error" in ref:
            report["errors"] += 1
            report["differing_cases"].append({"index": case["index"],
                                              "error": record.get("error", ref.get("error"))})
            continue
        report["cases"] += 1
        theirs, reference = case_outputs(record, data), case_outputs(ref, ref_data)
        bad = total = 0
        worst = 0.0
        for a, b in zip(theirs, reference):
            d, n, m = differing(a, b)
            bad, total, worst = bad + d, total + n, max(worst, m)
        if len(theirs) != len(reference):
            bad = total = max(total, 1)
        report["elements"] += total
        report["elements_differing_from_reference"] += bad
        report["max_abs_from_reference"] = max(report["max_abs_from_reference"], worst)
        report["identical_to_reference"] += bad == 0
        mine = ours[case["index"]]
        if isinstance(mine, str):
            report["minirnn_refused"] += 1
            bad_ours = None
        else:
            bad_ours = sum(differing(a, b)[0] for a, b in zip(mine, theirs))
            bad_ours += 0 if len(mine) == len(theirs) else 1
            report["elements_differing_from_minirnn"] += bad_ours
            report["identical_to_minirnn"] += bad_ours == 0
        if bad or bad_ours:
            keys = ("kind", "wrapper", "B", "T", "D", "M", "activation",
                    "recurrent_activation", "implementation1", "mask")
            report["differing_cases"].append(
                {"index": case["index"], **{k: case[k] for k in keys}, **features(case),
                 "differing_from_reference": bad, "elements": total, "max_abs": worst,
                 "differing_from_minirnn": bad_ours})
    probe_names = [n for n in ref_data.files if n.startswith("probe_")]
    report["probes"] = len(probe_names)
    for name in probe_names:
        if name not in data.files:
            report["probes_differing"][name[6:]] = "missing"
            continue
        d, n, m = differing(data[name], ref_data[name])
        if d:
            report["probes_differing"][name[6:]] = {"differing": d, "elements": n,
                                                    "max_abs": m}
    # The cases that use none of the activations whose probes differ: do they hold?
    suspects = {name[len("activation_"):] for name in report["probes_differing"]
                if name.startswith("activation_")}
    differing_indices = {d["index"] for d in report["differing_cases"]}
    clean = [r["case"]["index"] for r in meta["cases"]
             if "error" not in r and not suspects & set(activations_of(r["case"]))]
    report["activations_differing"] = sorted(suspects)
    report["cases_without_them"] = len(clean)
    report["cases_without_them_identical"] = sum(i not in differing_indices for i in clean)
    return report


def activations_of(case):
    """The activations a case's layers compute."""
    if case["kind"] == "SimpleRNN":
        return [case["activation"]]
    return [case["activation"], case["recurrent_activation"]]


def coverage(records):
    """How many cases have each property that the products' order depends on."""
    cs = [r["case"] for r in records]
    count = lambda test: sum(1 for c in cs if test(c))
    return {"cases": len(cs), "batch 1 (single-row products)": count(lambda c: c["B"] == 1),
            "batch 2-64": count(lambda c: c["B"] > 1),
            "batch >= 16": count(lambda c: c["B"] >= 16),
            "D > 384": count(lambda c: c["D"] > 384), "D > 768": count(lambda c: c["D"] > 768),
            "units > 384": count(lambda c: c["M"] > 384),
            "units > 768": count(lambda c: c["M"] > 768),
            "T > 20": count(lambda c: c["T"] > 20),
            "masked": count(lambda c: c["mask"] != "none"),
            "go_backwards": count(lambda c: c["go_backwards"]),
            "initial states": count(lambda c: c["initial_state"]),
            "implementation 1": count(lambda c: c["implementation1"]),
            "Bidirectional": count(lambda c: c["wrapper"] == "bidirectional"),
            "RNN(cell)": count(lambda c: c["wrapper"] == "cell"),
            **{kind: count(lambda c, k=kind: c["kind"] == k) for kind in KINDS},
            "activations other than tanh and sigmoid":
                count(lambda c: set(activations_of(c)) - {"tanh", "sigmoid"})}


def onednn_isa(facts):
    """The instruction set oneDNN reported (ONEDNN_VERBOSE's "isa:" line)."""
    for line in facts.get("onednn_verbose", []):
        if ",isa:" in line:
            return line.split(",isa:", 1)[1]
    return "not reported"


def markdown(reports, reference_facts, coverage_counts):
    lines = ["# Keras' recurrent layers on other TensorFlow releases: bits against 2.21",
             "",
             "Generated by `reference/tf_versions.py` (`run` in one virtual environment per "
             "release, `compare` in minirnn's, TensorFlow 2.21): the same seeded cases "
             "(LSTM, GRU both variants, SimpleRNN, RNN(cell), Bidirectional; batches 1-64, "
             "1-40 steps, K across oneDNN's 384 and 768 blocks, masks, go_backwards, "
             "initial states, implementation 1, the bitwise mode's activations), called "
             "eagerly in float32. *vs 2.21*: the release's outputs against TensorFlow "
             "2.21's; *vs minirnn*: minirnn's `bitwise=True` outputs against the "
             "release's. Probes: `tf.matmul` of "
             f"{len(PRODUCTS)} shapes and each activation on 200,005 values.",
             "",
             f"Reference: TensorFlow {reference_facts['tensorflow']}, Keras "
             f"{reference_facts['keras']}, oneDNN {reference_facts['onednn_header']}. "
             "oneDNN's instruction set (ONEDNN_VERBOSE), per release: "
             + "; ".join(f"{r['facts']['tensorflow']}: {onednn_isa(r['facts'])}"
                         for r in reports) + ".",
             "",
             "| TensorFlow | Keras | oneDNN | cases identical vs 2.21 | elements differing "
             "vs 2.21 | cases identical vs minirnn | elements differing vs minirnn | "
             "probes differing | Eigen math headers as 2.21's |",
             "|---|---|---|---|---|---|---|---|---|"]
    ref_eigen = reference_facts["eigen_headers_sha256"]
    seen = set()
    for r in reports:
        f = r["facts"]
        label = f["tensorflow"] + (" (run again)" if f["tensorflow"] in seen else "")
        seen.add(f["tensorflow"])
        same_eigen = [name.rsplit("/", 2)[-2] + "/" + name.rsplit("/", 1)[-1]
                      for name, digest in f["eigen_headers_sha256"].items()
                      if digest != ref_eigen.get(name)]
        eigen = "all" if not same_eigen else "differ: " + ", ".join(same_eigen)
        compared = r["cases"] - r["minirnn_refused"]
        lines.append(
            f"| {label} | {f['keras']} | {f['onednn_header']} | "
            f"{r['identical_to_reference']} / {r['cases']} | "
            f"{r['elements_differing_from_reference']:,} of {r['elements']:,} | "
            f"{r['identical_to_minirnn']} / {compared} | "
            f"{r['elements_differing_from_minirnn']:,} | "
            f"{len(r['probes_differing'])} of {r['probes']} | {eigen} |")
    lines += ["", "The Eigen column compares SHA-256 digests of the headers holding Eigen's "
              "float32 math (a header can change where the formulas used do not). Where a "
              "release differs: the activations whose probes differ, and the cases whose "
              "layers use none of them (how many are identical to 2.21).",
              "", "| TensorFlow | activations differing | cases without them: identical / total |",
              "|---|---|---|"]
    for r in reports:
        if r["activations_differing"] or r["probes_differing"]:
            lines.append(f"| {r['facts']['tensorflow']} | "
                         f"{', '.join(r['activations_differing'])} | "
                         f"{r['cases_without_them_identical']} / {r['cases_without_them']} |")
    for r in reports:
        if r["probes_differing"]:
            lines += ["", f"Probes differing, TensorFlow {r['facts']['tensorflow']}: " +
                      ", ".join(f"{name} ({v['differing']:,} of {v['elements']:,})"
                                if isinstance(v, dict) else f"{name} ({v})"
                                for name, v in r["probes_differing"].items())]
        if r["errors"]:
            lines += ["", f"Cases that raised, TensorFlow {r['facts']['tensorflow']}: "
                      f"{r['errors']}"]
    lines += ["", "Cases by property (the same cases for every release):", ""]
    lines += [f"- {name}: {value}" for name, value in coverage_counts.items()]
    return "\n".join(lines) + "\n"


def compare(reference_path, paths, json_path=None, md_path=None):
    ref_meta, ref_data = load(reference_path)
    ours = minirnn_outputs(ref_meta)
    reports = [compare_file(reference_path, ref_meta, ref_data, ours)]
    reports += [compare_file(path, ref_meta, ref_data, ours) for path in paths]
    counts = coverage(ref_meta["cases"])
    text = markdown(reports, ref_meta["facts"], counts)
    print(text)
    if json_path:
        from benchmarks.system import machine_info
        with open(json_path, "w") as handle:
            command = " ".join(["python -m reference.tf_versions", *sys.argv[1:]])
            json.dump({"command": command, "machine": machine_info(),
                       "reference": reference_path,
                       "seed": ref_meta["seed"], "coverage": counts,
                       "cases": ref_meta["cases"],
                       "reports": reports}, handle, indent=1, default=str)
    if md_path:
        with open(md_path, "w") as handle:
            handle.write(text)
    return reports


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the cases in this environment's Keras")
    p.add_argument("--out", required=True)
    p.add_argument("--cases", type=int, default=240)
    p.add_argument("--seed", type=int, default=SEED)
    c = sub.add_parser("compare", help="compare files (in minirnn's environment)")
    c.add_argument("--reference", required=True)
    c.add_argument("files", nargs="*")
    c.add_argument("--json")
    c.add_argument("--md")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.cases, args.seed)
    else:
        compare(args.reference, args.files, args.json, args.md)


if __name__ == "__main__":
    main()
