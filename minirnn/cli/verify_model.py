"""minirnn verify --model: a saved model run by minirnn and by Keras on the same
inputs, the worst error per output.

Keras runs in a process of its own (:mod:`.keras_process`): Keras 3 for .keras
files and Keras 3 .h5 files, tf-keras (Keras 2) for the files Keras 2 wrote (the
model's semantics "keras2"), never both in one process. The inputs are the user's
(--input) or the model's example inputs, twice: padded at the end and at the start
(padding only matters where the model masks).

May use: numpy, :mod:`minirnn`, :mod:`minirnn.bitwise` and its own modules.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from .. import __version__
from ..bitwise import bitwise_differences
from . import keras_process, models
from .common import FAILED, KERAS_HINT, OK, UNAVAILABLE, CommandError
from .keras_support import KerasUnavailable
from .tables import format_shape, format_table, sci, write_json

__all__ = ["run", "compare", "keras_outputs", "TOLERANCES"]

# |minirnn - Keras| <= atol + rtol |Keras|, elementwise, by the dtype of the output.
TOLERANCES = {"float32": (1e-6, 1e-6), "float64": (1e-12, 1e-12)}
KERAS_TIMEOUT = 900  # seconds for Keras to load the model and run it


def compare(ours, theirs, bitwise=False):
    """{"shape", "max_abs", "within", "differing", "total"} of one output.

    Bitwise: within means identical bits. Otherwise within tolerance elementwise,
    NaN where Keras has NaN counting as equal."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    record = {"shape": list(theirs.shape), "max_abs": None, "within": False,
              "differing": None, "total": int(theirs.size)}
    if ours.shape != theirs.shape:
        record["problem"] = (f"shape {format_shape(ours.shape)} against Keras' "
                             f"{format_shape(theirs.shape)}")
        return record
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):  # inf - inf
        difference = np.where(both_nan | (a == b), 0.0, np.abs(a - b))
    difference = np.where(np.isnan(difference), np.inf, difference)
    record["max_abs"] = float(difference.max()) if difference.size else 0.0
    if bitwise:
        differing, _ = bitwise_differences([ours], [theirs])
        record["differing"] = differing
        record["within"] = differing == 0
    else:
        atol, rtol = TOLERANCES.get(str(ours.dtype), TOLERANCES["float32"])
        bound = np.where(both_nan, 0.0, atol + rtol * np.abs(np.nan_to_num(b)))
        record["within"] = bool(np.all(difference <= bound))
    return record


def keras_outputs(path, engine, input_sets, timeout=KERAS_TIMEOUT, weights=None):
    """Run the model in Keras (``engine``: "keras" or "tf_keras"), in a fresh
    process, on every list of input arrays; (outputs per set, Keras' version).

    Raises:
        KerasUnavailable: that Keras cannot be imported.
        CommandError: Keras could not load or run the model (its message).
    """
    with tempfile.TemporaryDirectory(prefix="minirnn-verify-") as workdir:
        inputs = [os.path.join(workdir, f"inputs{k}.npz") for k in range(len(input_sets))]
        outputs = [os.path.join(workdir, f"outputs{k}.npz") for k in range(len(input_sets))]
        for target, arrays in zip(inputs, input_sets):
            np.savez(target, *arrays)
        job = {"model": os.path.abspath(path), "engine": engine, "inputs": inputs,
               "weights": None if weights is None else os.path.abspath(weights),
               "outputs": outputs, "result": os.path.join(workdir, "result.json")}
        job_path = os.path.join(workdir, "job.json")
        with open(job_path, "w") as handle:
            json.dump(job, handle)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        try:
            done = subprocess.run([sys.executable, keras_process.__file__, job_path],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CommandError(f"{keras_process.ENGINES[engine]} did not finish with "
                               f"{path!r} within {timeout} s", status=FAILED)
        if not os.path.exists(job["result"]):
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise CommandError(f"the Keras process ended with status {done.returncode} "
                               f"and no result:\n{tail}", status=FAILED)
        with open(job["result"]) as handle:
            result = json.load(handle)
        if result["status"] == "unavailable":
            raise KerasUnavailable(result["message"])
        if result["status"] != "ok":
            raise CommandError(f"{keras_process.ENGINES[engine]} {result['keras_version']} "
                               f"cannot run {path!r}: {result['message']}")
        sets = []
        for target in outputs:
            with np.load(target) as data:
                sets.append([data[f"arr_{k}"] for k in range(len(data.files))])
        return sets, result["keras_version"]


def input_sets(model, args):
    """[(label, arrays)]: the user's inputs, or the example inputs padded at the end
    and at the start."""
    if args.input:
        arrays = models.read_inputs(args.input, model)
        models.check_inputs(model, arrays, args.input)
        return [(os.path.basename(args.input), arrays)]
    return [(f"example, padded at the {padding}",
             model.example_inputs(batch_size=4, seed=args.seed, padding=padding))
            for padding in ("end", "start")]


def _verdict(record, bitwise):
    if "problem" in record:
        return f"FAIL: {record['problem']}"
    if bitwise:
        return ("identical" if record["within"] else
                f"DIFFERENT: {record['differing']} of {record['total']} elements")
    return "pass" if record["within"] else "FAIL: beyond tolerance"


def run(args):
    weights = getattr(args, "weights", None)
    model = models.load(args.model, bitwise=args.bitwise, weights=weights)
    semantics = model.source.get("semantics", "keras3")
    engine = "tf_keras" if semantics == "keras2" else "keras"
    sets = input_sets(model, args)
    ours = [models.outputs_list(models.run_model(
                lambda: model(arrays if len(arrays) > 1 else arrays[0]), label))
            for label, arrays in sets]
    mode = "bitwise=True" if args.bitwise else "default mode"
    print(f"minirnn verify --model {args.model}: minirnn ({mode}) against "
          f"{keras_process.ENGINES[engine]} in a process of its own (the file's semantics: "
          f"{semantics}), the eager call model(x) on each input")
    try:
        theirs, version = keras_outputs(args.model, engine, [arrays for _, arrays in sets],
                                        weights=weights)
    except KerasUnavailable as error:
        hint = 'pip install --no-deps "tf-keras"' if engine == "tf_keras" else KERAS_HINT
        print(f"{keras_process.ENGINES[engine]} is not available ({error}).\n"
              f"  To install it: {hint}")
        return UNAVAILABLE
    records, rows = [], []
    for (label, arrays), mine, keras_side in zip(sets, ours, theirs):
        if len(mine) != len(keras_side):
            raise CommandError(f"minirnn returned {len(mine)} outputs, Keras "
                               f"{len(keras_side)}", status=FAILED)
        for name, a, b in zip(model.output_names, mine, keras_side):
            record = {"inputs": label, "output": name, **compare(a, b, args.bitwise)}
            records.append(record)
            rows.append([label, name, format_shape(record["shape"]), sci(record["max_abs"]),
                         _verdict(record, args.bitwise)])
    print(f"Keras {version}; inputs: "
          + "; ".join(f"{label}: {models.describe_inputs(model, arrays)}"
                      for label, arrays in sets))
    print()
    print(format_table(["inputs", "output", "shape", "max |minirnn - Keras|", "result"], rows,
                       "lllrl"))
    failed = [r for r in records if not r["within"]]
    print()
    if args.bitwise:
        print("  (bitwise=True: the same float32 bits as Keras' eager call)")
    else:
        print("  (elementwise |minirnn - Keras| <= atol + rtol |Keras|: float32 1e-6 + 1e-6, "
              "float64 1e-12 + 1e-12)")
    if args.json:
        write_json(args.json, {"command": "minirnn verify --model", "model": args.model,
                               "source": model.source, "bitwise": args.bitwise,
                               "keras": keras_process.ENGINES[engine], "keras_version": version,
                               "minirnn_version": __version__, "results": records})
        print(f"\nWrote every output's result to {args.json}")
    print(f"\nResult: {len(records) - len(failed)} of {len(records)} outputs "
          + ("identical bit for bit." if args.bitwise else "within tolerance."))
    return FAILED if failed else OK
