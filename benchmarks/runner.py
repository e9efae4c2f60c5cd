"""The parent process: decides what to run, starts one fresh process per job, merges.

A job is one engine (with one set of build options), one cell and one dtype, over
all the selected sizes. Each job runs as ``python -m benchmarks.worker`` in a new
interpreter, so no two engines ever share a process, and none shares the parent's.
The parent itself only draws the cases, computes the references (minirnn's NumPy
path in float64, before any timing starts) and waits.

GPU engines are probed first, in their own process (importing TensorFlow or
torch to ask for a GPU); an engine that cannot run is reported as skipped with the
reason for every size, never timed and never shown as zero. CPU engines are
probed by looking for their packages; an import that still fails inside the
worker is reported the same way.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from . import cases, engines, streaming, system
from .worker import best_variant

WORKER = [sys.executable, "-m", "benchmarks.worker"]


@dataclass
class Settings:
    """What a speed run covers and how long it measures."""

    cells: list
    sizes: list
    dtypes: list
    engines_by_dtype: dict
    return_sequences: bool = True
    repeat_seconds: float = 1.0
    min_samples: int = 5
    timeout_seconds: float = 1200.0
    seed: int = 0
    threads: int = None
    rounds: int = 1         # passes over every engine, interleaved; best median kept
    stream_sizes: list = field(default_factory=list)  # (B, 1, D, M): one step per call
    stream_steps: int = streaming.STEPS
    tolerance: dict = field(default_factory=lambda: dict(cases.TOLERANCE))

    def timing(self):
        """Keyword arguments of :func:`benchmarks.timing.measure` for the workers."""
        return {"repeat_seconds": self.repeat_seconds, "min_samples": self.min_samples}


def _log(message):
    print(message, file=sys.stderr, flush=True)


def probe_engines(names, log=_log, threads=None):
    """{engine: None or the reason it is skipped}; GPU engines in a fresh process."""
    reasons = {}
    for name in names:
        engine = engines.ENGINES[name]
        if not engine.gpu:
            reasons[name] = engine.probe()
            continue
        try:
            done = subprocess.run([*WORKER, "--probe", name], cwd=system.REPO_ROOT,
                                  env=system.child_env(threads), capture_output=True,
                                  text=True, timeout=300)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if lines:
                reasons[name] = json.loads(lines[-1])["skip"]
            else:
                tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                reasons[name] = f"probe failed (exit {done.returncode}): {tail[0]}"
        except subprocess.TimeoutExpired:
            reasons[name] = "probe timed out"
        if reasons[name]:
            log(f"{name}: SKIPPED: {reasons[name]}")
    return reasons


def run_job(job, workdir, timeout, threads=None):
    """Run one job in a fresh process; returns the worker's result (partial on failure)."""
    tag = f"{job['cell']}-{job['dtype']}-{job['engine']}-{len(os.listdir(workdir))}"
    job_path = os.path.join(workdir, tag + ".job.json")
    result_path = os.path.join(workdir, tag + ".result.json")
    with open(job_path, "w") as handle:
        json.dump(job, handle)
    start = time.perf_counter()
    problem = None
    meter = system.LoadMeter()
    try:
        with meter:
            done = subprocess.run([*WORKER, job_path, result_path], cwd=system.REPO_ROOT,
                                  env=system.child_env(threads), capture_output=True,
                                  text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            problem = f"worker exited with status {done.returncode}: {tail}"
    except subprocess.TimeoutExpired:
        problem = f"worker timed out after {timeout:.0f} s"
    result = {}
    if os.path.exists(result_path):
        with open(result_path) as handle:
            result = json.load(handle)
    result.setdefault("status", "ok")
    result.setdefault("cases", [])
    result["wall_seconds"] = time.perf_counter() - start
    # Share of the CPUs that other programs used while this engine ran.
    result["background_busy_fraction"] = meter.fraction
    done_sizes = {tuple(record["size"]) for record in result["cases"]}
    if problem:
        result["problem"] = problem
        for case in job["cases"]:
            if tuple(case["size"]) not in done_sizes:
                result["cases"].append({"size": case["size"], "status": "error",
                                        "error": problem})
    return result


def merge_processes(processes):
    """One engine's records per size from its per-option processes: the fastest wins.

    Each record keeps ``processes``: every option's outcome (e.g. each BLAS of
    the GEMM floor), so nothing measured is thrown away.
    """
    merged = []
    sizes = []
    for process in processes:
        for record in process["cases"]:
            if record["size"] not in sizes:
                sizes.append(record["size"])
    for size in sizes:
        candidates = []
        for process in processes:
            for record in process["cases"]:
                if record["size"] == size:
                    candidates.append((process.get("options", {}), record))
        if len(candidates) == 1:
            merged.append(candidates[0][1])
            continue
        timed = [{"name": json.dumps(options), "timing": record.get("timing"),
                  "check": record.get("check"), "record": record}
                 for options, record in candidates if record.get("timing")]
        best = best_variant(timed)
        chosen = dict(best["record"]) if best else dict(candidates[0][1])
        chosen["processes"] = [{"options": options, "status": record["status"],
                                "median_s": (record.get("timing") or {}).get("median_s"),
                                "best": record.get("best"), "error": record.get("error"),
                                "info": record.get("info")}
                               for options, record in candidates]
        merged.append(chosen)
    return merged


def run_suite(settings, log=_log):
    """Run every selected engine x cell x dtype x size; returns the results dict."""
    started = time.perf_counter()
    selected = []
    for dtype in settings.dtypes:
        for name in settings.engines_by_dtype[dtype]:
            if name not in selected:
                selected.append(name)
    load_before = system.background_load()
    if load_before and load_before["busy_fraction"] > 0.1:
        log(f"warning: {load_before['busy_fraction']:.0%} of the CPUs are busy with other "
            "work; figures will be slower and noisier than on an idle machine")
    skipped = probe_engines(selected, log, settings.threads)
    workdir = tempfile.mkdtemp(prefix="minirnn-bench-")
    runs = []
    try:
        log(f"computing float64 references for {len(settings.cells)} cell(s) x "
            f"{len(settings.sizes) + len(settings.stream_sizes)} size(s) ...")
        case_files = _write_cases(settings, workdir)
        passes = []
        for round_ in range(settings.rounds):
            if settings.rounds > 1:
                log(f"round {round_ + 1} of {settings.rounds}")
            passes.append([])
            for dtype in settings.dtypes:
                for cell in settings.cells:
                    for mode in ("sequence", "streaming"):
                        if not (settings.stream_sizes if mode == "streaming"
                                else settings.sizes):
                            continue
                        for name in settings.engines_by_dtype[dtype]:
                            passes[-1].append(_run_engine(settings, name, cell, dtype,
                                                          case_files, skipped.get(name),
                                                          workdir, log, mode))
        runs = [best_of_rounds(same) for same in zip(*passes)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "mode": "speed",
        "settings": {**asdict(settings), "sizes": [list(s) for s in settings.sizes],
                     "stream_sizes": [list(s) for s in settings.stream_sizes]},
        "engines": {name: {"description": engines.ENGINES[name].description,
                           "gpu": engines.ENGINES[name].gpu,
                           "checked": engines.ENGINES[name].checked,
                           "skipped": skipped.get(name)} for name in selected},
        "runs": runs,
        "background_load": {"before": load_before, "after": system.background_load()},
        "wall_seconds": time.perf_counter() - started,
    }


def best_of_rounds(runs):
    """One engine, cell, dtype and mode measured in several rounds -> one run whose
    every size keeps the round with the lowest median (a shared machine's speed
    drifts from minute to minute; every engine gets the same number of chances).
    Each case records the medians of all its rounds under "round_medians_s"."""
    if len(runs) == 1:
        return runs[0]
    merged = dict(runs[0])
    if any(run.get("status") != "ok" for run in runs):
        return merged
    cases = []
    for same_size in zip(*(run["cases"] for run in runs)):
        timed = [case for case in same_size if case.get("timing")]
        best = dict(min(timed, key=lambda case: case["timing"]["median_s"])
                    if timed else same_size[0])
        if timed:
            best["round_medians_s"] = [case["timing"]["median_s"] for case in timed]
        if any(case.get("check") and not case["check"].get("passed", True)
               for case in same_size):
            best = dict(next(case for case in same_size
                             if case.get("check") and not case["check"].get("passed", True)))
        cases.append(best)
    merged["cases"] = cases
    merged["processes"] = [p for run in runs for p in run.get("processes", [])]
    return merged


def _write_cases(settings, workdir):
    """{(mode, cell, size): .npz path} for every case, references computed now.

    A streaming size (B, 1, D, M) is checked over the sequence (B, stream_steps,
    D, M): its reference is that sequence's output at every step.
    """
    files = {}
    for cell in settings.cells:
        for mode, sizes in (("sequence", settings.sizes), ("streaming", settings.stream_sizes)):
            for size in sizes:
                drawn = size
                return_sequences = settings.return_sequences
                if mode == "streaming":
                    drawn = streaming.sequence_size(size, settings.stream_steps)
                    return_sequences = True
                path = os.path.join(workdir, f"case-{mode}-{cell}-{cases.size_label(size)}.npz")
                cases.write_case(path, cell, drawn, return_sequences, settings.seed)
                files[mode, cell, size] = path
    return files


def _run_engine(settings, name, cell, dtype, case_files, skip_reason, workdir, log,
                mode="sequence"):
    """All sizes of one engine, cell, dtype and mode: one process per build-option set."""
    engine = engines.ENGINES[name]
    sizes = settings.stream_sizes if mode == "streaming" else settings.sizes
    run = {"engine": name, "cell": cell, "dtype": dtype, "mode": mode, "status": "ok"}
    if mode == "streaming" and not skip_reason and engine.stream is None:
        skip_reason = engine.no_stream
    if skip_reason:
        run.update(status="skipped", reason=skip_reason, cases=[
            {"size": list(size), "status": "skipped", "reason": skip_reason}
            for size in sizes])
        return run
    processes = []
    for options in engine.process_options:
        job = {"engine": name, "options": options, "cell": cell, "dtype": dtype,
               "return_sequences": settings.return_sequences,
               "streaming": mode == "streaming",
               "tolerance": settings.tolerance[dtype], "timing": settings.timing(),
               "cases": [{"size": list(size), "npz": case_files[mode, cell, size]}
                         for size in sizes]}
        result = run_job(job, workdir, settings.timeout_seconds, settings.threads)
        processes.append(result)
        label = (name + (f"[{', '.join(map(str, options.values()))}]" if options else "")
                 + (" streaming" if mode == "streaming" else ""))
        busy = result.get("background_busy_fraction")
        noise = f", other work {busy:.0%} of the CPUs" if busy is not None else ""
        log(f"{cell} {dtype} {label}: {_summary(result)} "
            f"({result['wall_seconds']:.1f} s{noise})")
    usable = [p for p in processes if p.get("status") != "skipped"]
    if not usable:
        reason = "; ".join(p.get("reason", "?") for p in processes)
        run.update(status="skipped", reason=reason, cases=[
            {"size": list(size), "status": "skipped", "reason": reason}
            for size in sizes])
    else:
        run["cases"] = merge_processes(usable)
    run["processes"] = processes
    return run


def _summary(result):
    if result.get("status") == "skipped":
        return f"SKIPPED ({result.get('reason')})"
    parts = []
    for record in result["cases"]:
        label = cases.size_label(record["size"])
        if record.get("timing"):
            parts.append(f"{label} {record['timing']['median_s'] * 1e6:,.1f} us "
                         f"{record['status']}")
        else:
            parts.append(f"{label} {record['status']}")
    return " | ".join(parts)
