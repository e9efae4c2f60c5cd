"""``python -m benchmarks.corpus``: every real model file of the corpus, timed.

The corpus is tests/corpus/manifest.json (reference/corpus.py fetches its files). For
every file that Keras runs, at batch 1 and batch 32, on the same inputs (the model's
example inputs, padded at the end where the model masks):

    minirnn          model(x) of minirnn.load_model(file)
    keras            the Keras model called inside a tf.function, plain and with XLA
                     (jit_compile=True): the faster correct one counts

Keras is Keras 3 for the files Keras 3 wrote and tf-keras for the Keras 2 ones
(Keras 2.0 files through the reference's own route, reference.corpus). Each engine
runs in a process of its own, all its files one after another; before timing, every
engine's outputs are checked against minirnn's float64 run (1e-4 in float32, as
``python -m benchmarks --model``). Results: ``<out>/<machine>/corpus.json`` and
``.md``, with minirnn's time over the fastest Keras call per file and batch, and a
per-layer profile of minirnn's call for every file where that ratio is above 1.

    python -m benchmarks.corpus [--out DIR] [--threads N] [--repeat-seconds S]
    python -m benchmarks.corpus --worker ENGINE JOB.json RESULT.json   (one engine)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

from . import report, system, timing
from .model import TOLERANCE, _as_list, _check

BATCHES = (1, 32)
FLAVOURS = {"keras3": "keras", "tf_keras": "tf_keras", "tf_keras_json": "tf_keras"}


# ---- inside an engine's process --------------------------------------------------------

def _minirnn_runs(entry, facts, arrays):
    import minirnn
    options = {"weights": facts["weights"]} if facts.get("weights") else {}
    model = minirnn.load_model(facts["path"], **options)
    x = arrays if len(arrays) > 1 else arrays[0]
    return [("model(x)", lambda: model(x))]


def _keras_runs(entry, facts, arrays, flavour):
    import tensorflow as tf

    from reference import corpus
    model = corpus._load(entry, facts["path"], flavour)
    tensors = [tf.constant(a) for a in arrays]
    inputs = tensors if len(tensors) > 1 else tensors[0]
    runs = []
    for jit in (False, True):
        function = tf.function(lambda t: model(t, training=False), jit_compile=jit)
        runs.append(("tf.function+XLA" if jit else "tf.function", lambda f=function: f(inputs)))
    return runs


def _profile(entry, facts, arrays, repeats=20):
    """Seconds per layer of minirnn's call (the median of ``repeats`` calls), by
    wrapping each layer's runner; the rest (the walk itself) as "graph walk"."""
    import minirnn
    from minirnn import model as models
    options = {"weights": facts["weights"]} if facts.get("weights") else {}
    model = minirnn.load_model(facts["path"], **options)
    spent = {}
    original = models._call_layer

    def timed(runner, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(runner, *args, **kwargs)
        finally:
            key = getattr(runner, "name", "?")
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - start

    x = arrays if len(arrays) > 1 else arrays[0]
    model._chain = None  # the walk that calls _call_layer, also for a chain of calls
    model(x)
    totals, layers = [], {}
    models._call_layer = timed
    try:
        for _ in range(repeats):
            spent.clear()
            start = time.perf_counter()
            model(x)
            totals.append(time.perf_counter() - start)
            for key, value in spent.items():
                layers.setdefault(key, []).append(value)
    finally:
        models._call_layer = original
    classes = {spec.name: spec.class_name for spec in model._graph.layers}
    rows = [[name, classes.get(name, "?"), float(np.median(values))]
            for name, values in layers.items()]
    walk = float(np.median(totals)) - sum(r[2] for r in rows)
    return sorted(rows, key=lambda r: -r[2]) + [["(graph walk)", "", max(walk, 0.0)]]


def run_worker(engine, job_path, result_path):
    with open(job_path) as handle:
        job = json.load(handle)
    results = {}
    for name, item in job["files"].items():
        entry, facts = item["entry"], item["facts"]
        record = results[name] = {}
        for batch in BATCHES:
            with np.load(item["inputs"][str(batch)]) as data:
                arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
            with np.load(item["reference"][str(batch)]) as data:
                reference = [data[f"arr_{k}"] for k in range(len(data.files))]
            variants = record[str(batch)] = []
            try:
                runs = _minirnn_runs(entry, facts, arrays) if engine == "minirnn" else \
                    _keras_runs(entry, facts, arrays, entry["reference"])
            except Exception as error:  # noqa: BLE001 - reported per file
                variants.append({"name": "load", "error": f"{type(error).__name__}: {error}",
                                 "traceback": traceback.format_exc(limit=4)})
                continue
            for label, run in runs:
                variant = {"name": label}
                variants.append(variant)
                try:
                    variant["check"] = _check(_as_list(run()), reference, item["tolerance"])
                    variant["timing"] = timing.measure(run, **job["timing"])
                except Exception as error:  # noqa: BLE001 - one broken variant is reported
                    variant["error"] = f"{type(error).__name__}: {error}"
    with open(result_path, "w") as handle:
        json.dump({"engine": engine, "files": results,
                   "threads": system.runtime_threads()}, handle, indent=1)


# ---- the parent ------------------------------------------------------------------------

def _best(variants):
    good = [v for v in variants if v.get("timing") and (v.get("check") or {}).get("passed")]
    return min(good, key=lambda v: v["timing"]["median_s"], default=None)


def _prepare(workdir, log, only=None):
    """The job's files: per corpus file, inputs and float64 references per batch."""
    import minirnn
    from reference import corpus
    manifest = corpus.load_manifest()
    paths, missing = corpus.fetch(manifest=manifest)
    files = {}
    for k, (name, entry) in enumerate(manifest["files"].items()):
        if entry.get("refuse") or name not in paths or (only and only not in name):
            if name in missing:
                log(f"skipped {name}: {missing[name]}")
            continue
        facts = {"path": paths[name], "weights": corpus.weights_path(entry, paths[name])}
        options = {"weights": facts["weights"]} if facts["weights"] else {}
        model = minirnn.load_model(facts["path"], **options)
        exact = minirnn.load_model(facts["path"], dtype="float64", **options)
        item = {"entry": entry, "facts": facts, "inputs": {}, "reference": {}}
        for batch in BATCHES:
            arrays = model.example_inputs(batch_size=batch, seed=batch, padding="end")
            wide = [a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays]
            outputs = _as_list(exact(wide if len(wide) > 1 else wide[0]))
            dtype = str(_as_list(model(arrays if len(arrays) > 1 else arrays[0]))[0].dtype)
            item["tolerance"] = TOLERANCE.get(dtype, TOLERANCE["float32"])
            item["inputs"][str(batch)] = os.path.join(workdir, f"x{k}-{batch}.npz")
            item["reference"][str(batch)] = os.path.join(workdir, f"y{k}-{batch}.npz")
            np.savez(item["inputs"][str(batch)], *arrays)
            np.savez(item["reference"][str(batch)], *outputs)
        files[name] = item
    return files


def _engine(engine, files, workdir, settings, threads, timeout):
    job_path = os.path.join(workdir, f"{engine}.job.json")
    result_path = os.path.join(workdir, f"{engine}.result.json")
    with open(job_path, "w") as handle:
        json.dump({"files": files, "timing": settings}, handle)
    done = subprocess.run([sys.executable, "-m", "benchmarks.corpus", "--worker", engine,
                           job_path, result_path], cwd=system.REPO_ROOT,
                          env=system.child_env(threads), capture_output=True, text=True,
                          timeout=timeout)
    if not os.path.exists(result_path):
        raise RuntimeError(f"the {engine} worker failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    with open(result_path) as handle:
        return json.load(handle)


def run(args, log=None):
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    settings = {"repeat_seconds": args.repeat_seconds, "min_samples": 5}
    results = {"machine": system.machine_info(),
               "command": " ".join(["python -m benchmarks.corpus", *sys.argv[1:]]),
               "settings": settings, "threads": args.threads,
               "files": {}}
    with tempfile.TemporaryDirectory(prefix="minirnn-corpus-") as workdir:
        files = _prepare(workdir, log, args.only)
        engines = {}
        for engine, flavours in (("minirnn", None), ("keras", ("keras3",)),
                                 ("tf_keras", ("tf_keras", "tf_keras_json"))):
            chosen = {n: f for n, f in files.items()
                      if flavours is None or f["entry"]["reference"] in flavours}
            log(f"{engine}: {len(chosen)} files in a process of its own ...")
            engines[engine] = _engine(engine, chosen, workdir, settings, args.threads,
                                      args.timeout)
        for name, item in files.items():
            entry = item["entry"]
            keras = "keras" if entry["reference"] == "keras3" else "tf_keras"
            record = {"package": entry["package"], "keras_version": entry["keras_version"],
                      "keras": keras, "batches": {}}
            for batch in map(str, BATCHES):
                ours = engines["minirnn"]["files"][name][batch]
                theirs = engines[keras]["files"].get(name, {}).get(batch, [])
                record["batches"][batch] = {"minirnn": ours, "keras": theirs}
                mine, best = _best(ours), _best(theirs)
                if mine and best and mine["timing"]["median_s"] > best["timing"]["median_s"]:
                    with np.load(item["inputs"][batch]) as data:
                        arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
                    record["batches"][batch]["profile"] = _profile(entry, item["facts"],
                                                                   arrays)
            results["files"][name] = record
    return results


def _short(name):
    return name.split("/", 1)[0] + "/…/" + name.rsplit("/", 1)[-1] if name.count("/") > 2 \
        else name


def markdown(results):
    machine = results["machine"]
    lines = [f"# Real model files: minirnn against Keras' fastest call",
             "", f"CPU: {machine['cpu_model']} ({machine['cores']} cores), "
             f"{machine['machine_name']}; threads: "
             f"{results['threads'] or 'each library default'}; commit "
             f"{(machine.get('git') or {}).get('commit', '?')}; {machine['date']}.",
             f"Command: `{results['command']}`. Median time per call in µs; Keras: the "
             "faster of tf.function and tf.function+XLA whose outputs pass the check; "
             "ratio = minirnn / Keras (below 1: minirnn is faster).", "",
             "| file | Keras | batch 1: minirnn | Keras | ratio | batch 32: minirnn | Keras "
             "| ratio |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    profiles = []
    for name, record in results["files"].items():
        cells = []
        for batch, data in record["batches"].items():
            mine, best = _best(data["minirnn"]), _best(data["keras"])
            if mine is None or best is None:
                errors = [v.get("error") or "check failed"
                          for v in data["minirnn"] + data["keras"]
                          if v.get("error") or not (v.get("check") or {}).get("passed")]
                cells += ["-", "-", (errors[:1] or ["-"])[0][:60]]
                continue
            ours, theirs = mine["timing"]["median_s"], best["timing"]["median_s"]
            cells += [report.micro(ours), f"{report.micro(theirs)} ({best['name']})",
                      f"{ours / theirs:.2f}"]
            if "profile" in data:
                profiles.append((name, batch, data["profile"], ours))
        lines.append(f"| {_short(name)} | {record['keras']} {record['keras_version']} | "
                     + " | ".join(cells) + " |")
    for name, batch, rows, total in profiles:
        lines += ["", f"Profile of minirnn's call, {_short(name)}, batch {batch} "
                  f"({report.micro(total)} µs in all):", "", "| layer | class | µs |",
                  "|---|---|---:|"]
        lines += [f"| {layer} | {cls} | {report.micro(seconds)} |"
                  for layer, cls, seconds in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        run_worker(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(system.REPO_ROOT, "benchmarks",
                                                      "results"))
    parser.add_argument("--name", default="corpus")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat-seconds", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only the files whose name contains TEXT")
    args = parser.parse_args(argv)
    results = run(args)
    paths = report.write_json_and_markdown(results, args.out, args.name, markdown(results))
    print(markdown(results))
    print(f"Wrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
