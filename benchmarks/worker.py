"""What runs inside an engine's own fresh process.

    python -m benchmarks.worker JOB.json RESULT.json   # time one engine on one cell
    python -m benchmarks.worker --probe ENGINE         # can ENGINE run here? (JSON)

A job names an engine (and its build options), a cell, a dtype, return_sequences,
the timing settings, the tolerance and a list of cases, each an .npz holding
weights, input and the float64 reference output (see :mod:`benchmarks.cases`).
For every case the worker builds the engine, checks one call's output against
the reference (max abs difference), then times it (:func:`benchmarks.timing.measure`).
A streaming job (``"streaming": true``) builds the engine's streaming mode instead:
the check runs every timestep of the case from zero states, the timing one step
per call (see :mod:`benchmarks.streaming`).
RESULT.json is rewritten after every case, so a crash or a timeout keeps what
was done. Nothing is printed to stdout but the probe's answer.
"""

import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log noise only

import numpy as np  # noqa: E402

from . import cases, engines, system, timing  # noqa: E402
from .base import Unsupported  # noqa: E402


def _write(path, result):
    temporary = path + ".part"
    with open(temporary, "w") as handle:
        json.dump(result, handle, indent=1)
    os.replace(temporary, path)


def _error_text(error):
    return f"{type(error).__name__}: {error}".strip()


def check(variant, result, reference, tolerance):
    """Compare one call's output with the reference; None if the engine has none."""
    if variant.fetch is None:
        return None
    output = np.asarray(variant.fetch(result), dtype=np.float64)
    if output.shape != reference.shape:
        return {"passed": False, "max_abs_diff": None, "tolerance": tolerance,
                "reason": f"shape {output.shape}, expected {reference.shape}"}
    difference = float(np.max(np.abs(output - reference))) if output.size else 0.0
    passed = bool(np.isfinite(difference) and difference <= tolerance)
    return {"passed": passed, "max_abs_diff": difference, "tolerance": tolerance,
            "reference_max_abs": float(np.max(np.abs(reference)))}


def best_variant(variants):
    """The fastest variant whose check passed (or that has no check), else the fastest."""
    timed = [v for v in variants if v.get("timing")]
    if not timed:
        return None
    good = [v for v in timed if v["check"] is None or v["check"]["passed"]]
    pool = good or timed
    return min(pool, key=lambda v: v["timing"]["median_s"])


def run_case(engine, job, case):
    """Build, check and time the engine on one case; returns the case's record."""
    weights, x, reference = cases.read_case(case["npz"])
    record = {"size": case["size"], "status": "ok", "variants": []}
    start = time.perf_counter()
    if job.get("streaming"):
        if engine.stream is None:
            raise Unsupported(engine.no_stream)
        variants = engine.stream(job["cell"], weights, x, job["dtype"],
                                 **job.get("options", {}))
    else:
        variants = engine.build(job["cell"], weights, x, job["return_sequences"],
                                job["dtype"], **job.get("options", {}))
    record["build_seconds"] = time.perf_counter() - start
    for variant in variants:
        entry = {"name": variant.name, "info": variant.info, "check": None, "timing": None}
        record["variants"].append(entry)
        try:
            t0 = time.perf_counter()
            result = (variant.check_run or variant.run)()
            # Streaming: the checked pass over every step, not one call.
            key = "check_pass_seconds" if variant.check_run else "first_call_seconds"
            entry[key] = time.perf_counter() - t0
            entry["check"] = check(variant, result, reference, job["tolerance"])
            del result
            entry["timing"] = timing.measure(variant.run, **job["timing"])
        except Exception as error:  # noqa: BLE001 - one broken mode is reported, not fatal
            entry["error"] = _error_text(error)
            entry["traceback"] = traceback.format_exc(limit=6)
    best = best_variant(record["variants"])
    if best is None:
        record["status"] = "error"
        record["error"] = "; ".join(v.get("error", "?") for v in record["variants"])
        return record
    record["best"] = best["name"]
    record["timing"] = best["timing"]
    record["check"] = best["check"]
    record["info"] = best["info"]
    if best["check"] is not None and not best["check"]["passed"]:
        record["status"] = "FAILED"
    return record


def run_job(job_path, result_path):
    """Run every case of a job, writing RESULT.json after each."""
    with open(job_path) as handle:
        job = json.load(handle)
    engine = engines.ENGINES[job["engine"]]
    result = {key: job[key] for key in ("engine", "options", "cell", "dtype",
                                        "return_sequences", "tolerance", "timing")}
    result["streaming"] = bool(job.get("streaming"))
    result.update({"status": "ok", "pid": os.getpid(), "cases": []})
    for case in job["cases"]:
        try:
            record = run_case(engine, job, case)
        except (ImportError, Unsupported) as error:
            result["status"] = "skipped"
            result["reason"] = str(error) if isinstance(error, Unsupported) else _error_text(error)
            break
        except Exception as error:  # noqa: BLE001 - report, go on with the next size
            record = {"size": case["size"], "status": "error", "error": _error_text(error),
                      "traceback": traceback.format_exc(limit=8)}
        result["cases"].append(record)
        result["threads"] = _threads(result)
        _write(result_path, result)
    result["threads"] = _threads(result)
    _write(result_path, result)


def _threads(result):
    """The process' thread settings, with what the engine itself reported (its info)."""
    threads = system.runtime_threads()
    for record in result["cases"]:
        reported = (record.get("info") or {}).get("threads")
        if reported:
            threads["engine"] = reported
    return threads


def probe(name):
    """Print {"engine": name, "skip": reason or null} as JSON."""
    try:
        reason = engines.ENGINES[name].probe()
    except Exception as error:  # noqa: BLE001 - a broken install is a reason to skip
        reason = _error_text(error)
    print(json.dumps({"engine": name, "skip": reason}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--probe":
        probe(argv[1])
    elif len(argv) == 2:
        run_job(*argv)
    else:
        sys.exit("usage: python -m benchmarks.worker JOB.json RESULT.json | --probe ENGINE")


if __name__ == "__main__":
    main()
