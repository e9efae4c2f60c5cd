"""``python -m benchmarks --model PATH``: the user's own saved model, timed.

Engines, each in a fresh process of its own (as the layer benchmarks):

    minirnn          minirnn.load_model(PATH).predict(x, batch_size=B)
    keras-predict    Keras' own load_model(PATH) and model.predict(x, batch_size=B)
    keras-function   the Keras model called inside a tf.function, plain and XLA
                     (jit_compile=True), the faster correct one shown
    onnxruntime      the model exported by minirnn.bridge.onnx (checked against
                     minirnn before it is used), run by an ONNX Runtime
                     InferenceSession on the CPU; skipped with the reason where the
                     model is refused for export or onnx/onnxruntime are missing

Keras is Keras 3 for .keras files and Keras 3 .h5 files, and tf-keras (Keras 2) for
the files Keras 2 wrote (minirnn reads which from the file: the model's semantics).
The inputs are the user's (--input) or the model's example inputs (--batch,
--timesteps). Before timing, each engine's outputs are compared with minirnn's
float64 run of the same model (``cases.TOLERANCE`` in float32); a figure whose
outputs miss is marked FAILED and is never "the fastest".

    python -m benchmarks.model JOB.json RESULT.json     # one engine (the worker)
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

from . import system, timing
from .base import Unsupported

ENGINES = ("minirnn", "keras-predict", "keras-function", "onnxruntime")
DEFAULT_BATCH = 32
WORKER = [sys.executable, "-m", "benchmarks.model"]
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


# ---- inside an engine's process ------------------------------------------------------

def _keras_process():
    """minirnn/cli/keras_process.py (Keras 3 or tf-keras loading), imported by its path
    so that a Keras engine's process never imports minirnn."""
    path = os.path.join(system.REPO_ROOT, "minirnn", "cli", "keras_process.py")
    spec = importlib.util.spec_from_file_location("minirnn_keras_process", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_list(result):
    """A model's outputs (an array, a list, a dict, tensors) as a list of arrays."""
    if isinstance(result, dict):
        result = list(result.values())
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(r) for r in result]


def minirnn_variants(job, arrays):
    import minirnn
    model = minirnn.load_model(job["model"])
    x = arrays if len(arrays) > 1 else arrays[0]
    batch = arrays[0].shape[0]
    return [("Model.predict", lambda: model.predict(x, batch_size=batch), _as_list)]


def onnxruntime_variants(job, arrays):
    """The exported model in an InferenceSession; a refused export is Unsupported."""
    import minirnn
    from minirnn.bridge import onnx as bridge

    from .onnx_engines import ort_session
    model = minirnn.load_model(job["model"])
    try:
        proto = bridge.export_model(model)
    except bridge.ExportError:
        raise
    except ValueError as error:
        raise Unsupported(f"minirnn does not export this model to ONNX: {error}") from None
    session, _ = ort_session(proto)
    feed = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    return [("InferenceSession.run", lambda: session.run(None, feed), _as_list)]


def keras_variants(job, arrays, compiled):
    helper = _keras_process()
    keras = helper.import_engine(job["keras"])
    import tensorflow as tf
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        pass
    with tempfile.TemporaryDirectory() as workdir:
        model = helper.load_keras_model(keras, job["keras"], job["model"], workdir)
    batch = arrays[0].shape[0]
    x = arrays if len(arrays) > 1 else arrays[0]
    if not compiled:
        return [("model.predict",
                 lambda: model.predict(x, batch_size=batch, verbose=0), _as_list)]
    tensors = [tf.constant(a) for a in arrays]
    inputs = tensors if len(tensors) > 1 else tensors[0]
    variants = []
    for jit in (False, True):
        function = tf.function(lambda t: model(t, training=False), jit_compile=jit)
        variants.append(("tf.function+XLA" if jit else "tf.function",
                         lambda f=function: f(inputs), _as_list))
    return variants


def _check(outputs, reference, tolerance):
    if len(outputs) != len(reference) or any(o.shape != r.shape
                                             for o, r in zip(outputs, reference)):
        return {"passed": False, "max_abs_diff": None,
                "reason": f"shapes {[o.shape for o in outputs]}, expected "
                          f"{[r.shape for r in reference]}"}
    difference = max(float(np.max(np.abs(o.astype(np.float64) - r))) if r.size else 0.0
                     for o, r in zip(outputs, reference))
    return {"passed": bool(np.isfinite(difference) and difference <= tolerance),
            "max_abs_diff": difference, "tolerance": tolerance}


def run_worker(job_path, result_path):
    with open(job_path) as handle:
        job = json.load(handle)
    with np.load(job["inputs"]) as data:
        arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
    with np.load(job["reference"]) as data:
        reference = [data[f"arr_{k}"] for k in range(len(data.files))]
    result = {"engine": job["engine"], "status": "ok", "variants": []}
    try:
        start = time.perf_counter()
        if job["engine"] == "minirnn":
            variants = minirnn_variants(job, arrays)
        elif job["engine"] == "onnxruntime":
            variants = onnxruntime_variants(job, arrays)
        else:
            variants = keras_variants(job, arrays, job["engine"] == "keras-function")
        result["build_seconds"] = time.perf_counter() - start
    except ImportError as error:
        result.update(status="skipped", reason=f"{type(error).__name__}: {error}")
        variants = []
    except Unsupported as error:
        result.update(status="skipped", reason=str(error))
        variants = []
    except Exception as error:  # noqa: BLE001 - a model an engine cannot load is reported
        result.update(status="error", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc(limit=6))
        variants = []
    for name, run, fetch in variants:
        entry = {"name": name, "check": None, "timing": None}
        result["variants"].append(entry)
        try:
            entry["check"] = _check(fetch(run()), reference, job["tolerance"])
            entry["timing"] = timing.measure(run, **job["timing"])
        except Exception as error:  # noqa: BLE001 - one broken mode is reported
            entry["error"] = f"{type(error).__name__}: {error}"
    result["threads"] = system.runtime_threads()
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=1)


# ---- the parent ------------------------------------------------------------------------

def _inputs(model, args):
    if args.input:
        loaded = np.load(args.input, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return [loaded]
        with loaded:
            names = list(loaded.files)
            by_name = {name: loaded[name] for name in names}
        if all(name in by_name for name in model.input_names):
            return [by_name[name] for name in model.input_names]
        return [by_name[name] for name in names]
    return model.example_inputs(batch_size=args.batch or DEFAULT_BATCH,
                                timesteps=args.timesteps, seed=0, padding="end")


def _engine_process(job, workdir, timeout, threads):
    job_path = os.path.join(workdir, f"{job['engine']}.job.json")
    result_path = os.path.join(workdir, f"{job['engine']}.result.json")
    with open(job_path, "w") as handle:
        json.dump(job, handle)
    try:
        done = subprocess.run([*WORKER, job_path, result_path], cwd=system.REPO_ROOT,
                              env=system.child_env(threads), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"engine": job["engine"], "status": "error",
                "error": f"timed out after {timeout:.0f} s", "variants": []}
    if not os.path.exists(result_path):
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return {"engine": job["engine"], "status": "error", "variants": [],
                "error": f"worker exited with status {done.returncode}: {tail}"}
    with open(result_path) as handle:
        return json.load(handle)


def _best(result):
    timed = [v for v in result["variants"] if v.get("timing")]
    good = [v for v in timed if v["check"] is None or v["check"]["passed"]]
    return min(good or timed, key=lambda v: v["timing"]["median_s"], default=None)


def run(args, engines=ENGINES, log=None):
    """Time every engine on the model; the results as a dict (see :func:`table`)."""
    import minirnn

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    model = minirnn.load_model(args.model)
    arrays = _inputs(model, args)
    reference = minirnn.load_model(args.model, dtype="float64").predict(
        arrays if len(arrays) > 1 else arrays[0])
    reference = [np.asarray(r, np.float64) for r in _as_list(reference)]
    dtype = str(_as_list(model.predict([a[:1] for a in arrays] if len(arrays) > 1
                                       else arrays[0][:1]))[0].dtype)
    keras_engine = "tf_keras" if model.source.get("semantics") == "keras2" else "keras"
    settings = {"repeat_seconds": args.repeat_seconds or 1.0,
                "min_samples": args.min_samples or 5}
    results = {"model": os.path.abspath(args.model), "source": model.source,
               "inputs": [[name, list(a.shape), str(a.dtype)]
                          for name, a in zip(model.input_names, arrays)],
               "keras": keras_engine, "dtype": dtype, "engines": []}
    with tempfile.TemporaryDirectory(prefix="minirnn-bench-") as workdir:
        inputs_path = os.path.join(workdir, "inputs.npz")
        reference_path = os.path.join(workdir, "reference.npz")
        np.savez(inputs_path, *arrays)
        np.savez(reference_path, *reference)
        for engine in engines:
            log(f"{engine}: running in its own process ...")
            job = {"engine": engine, "model": os.path.abspath(args.model),
                   "keras": keras_engine, "inputs": inputs_path,
                   "reference": reference_path, "timing": settings,
                   "tolerance": TOLERANCE.get(dtype, TOLERANCE["float32"])}
            results["engines"].append(_engine_process(job, workdir, args.timeout,
                                                      args.threads))
    return results


def _micros(seconds):
    return f"{seconds * 1e6:,.0f}" if seconds >= 1e-4 else f"{seconds * 1e6:.3g}"


def table(results):
    """The results as Markdown: one row per engine, time per call and the check."""
    keras = {"keras": "Keras 3", "tf_keras": "tf-keras (Keras 2)"}[results["keras"]]
    inputs = ", ".join(f"{name} {tuple(shape)} {dtype}"
                       for name, shape, dtype in results["inputs"])
    lines = [f"Model {results['model']} ({results['source'].get('format')} file, "
             f"{results['source'].get('semantics')} semantics; Keras side: {keras}), "
             f"inputs {inputs}; median time per call, in microseconds:", "",
             "| engine | variant | median µs | IQR µs | max abs diff vs float64 | vs minirnn |",
             "|---|---|---:|---:|---:|---:|"]
    ours = next((_best(r) for r in results["engines"] if r["engine"] == "minirnn"), None)
    for result in results["engines"]:
        best = _best(result) if result["status"] == "ok" else None
        if best is None:
            why = result.get("reason") or result.get("error") or "no variant ran"
            lines.append(f"| {result['engine']} | {result['status'].upper()}: {why} | | | | |")
            continue
        check = best["check"] or {}
        diff = check.get("max_abs_diff")
        diff_text = "-" if diff is None else f"{diff:.1e}"
        if not check.get("passed", True):
            diff_text += " FAILED"
        ratio = "" if ours is None else \
            f"{best['timing']['median_s'] / ours['timing']['median_s']:.2f}x"
        lines.append(f"| {result['engine']} | {best['name']} | "
                     f"{_micros(best['timing']['median_s'])} | "
                     f"{_micros(best['timing']['iqr_s'])} | {diff_text} | {ratio} |")
    lines += ["", "vs minirnn: the engine's time over minirnn's (above 1: minirnn is faster)."]
    return "\n".join(lines)


if __name__ == "__main__":
    run_worker(*sys.argv[1:3])
