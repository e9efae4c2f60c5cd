"""Memory mode: how much memory one minirnn call needs beyond its input and output.

    python -m benchmarks memory [--sizes 64x4000x256x512] [--cells LSTM] [--dtype float32]

Each configuration (cell, engine, return_sequences False and True) runs in a
fresh process (``python -m benchmarks.memory CONFIG_JSON``), which:

1. builds the layer and compiles it on a tiny input (so compilation is not counted),
2. fills the input in place (no float64 temporary that would raise the
   high-water mark before the call),
3. measures one call with two instruments:

   - tracemalloc's peak: every NumPy allocation made during the call (NumPy
     reports its data buffers to tracemalloc), the returned array included; not
     what Numba allocates inside compiled code;
   - the resident-set peak: ``ru_maxrss`` after the call minus the resident set
     just before it, which sees every allocation (Numba's and BLAS' too) that was
     touched, at page granularity.

Both are reported next to the sizes of the input and of the returned arrays:
what a call must hold. The difference is scratch memory.
"""

import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from . import cases, report, system

DEFAULT_SIZE = (64, 4000, 256, 512)
MIB = 1024.0 * 1024.0


def _resident_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_resident_bytes():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(config):
    """In a fresh process: one call's peak memory for ``config``; returns a dict."""
    import minirnn
    cell, engine, dtype = config["cell"], config["engine"], config["dtype"]
    return_sequences = config["return_sequences"]
    B, T, D, M = config["size"]
    width = cases.GATES[cell] * M
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 1 / np.sqrt(D), (D, width)),
               rng.normal(0, 1 / np.sqrt(M), (M, width)),
               rng.uniform(-0.5, 0.5, (2, width) if cell == "GRU" else (width,))]
    layer = getattr(minirnn, cell)(M, return_sequences=return_sequences, dtype=dtype,
                                   engine=engine)
    layer.set_weights(weights)
    layer(np.zeros((2, 3, D), dtype))  # compile, allocate nothing large
    del weights
    x = np.empty((B, T, D), dtype)
    rng.standard_normal(out=x, dtype=np.dtype(dtype).type)
    gc.collect()
    resident_before = _resident_bytes()
    high_water_before = _max_resident_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    output = layer(x)
    seconds = time.perf_counter() - start
    traced_after, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    high_water_after = _max_resident_bytes()
    outputs = output if isinstance(output, list) else [output]
    returned = sum(array.nbytes for array in outputs)
    return {
        **config,
        "input_bytes": x.nbytes,
        "returned_bytes": returned,
        "returned_shapes": [list(array.shape) for array in outputs],
        "weights_bytes": sum(w.nbytes for w in layer.get_weights()),
        "tracemalloc_peak_bytes": traced_peak,
        "tracemalloc_after_bytes": traced_after,
        "rss_before_bytes": resident_before,
        "max_rss_before_bytes": high_water_before,
        "max_rss_after_bytes": high_water_after,
        "rss_peak_increase_bytes": max(0, high_water_after - resident_before),
        # If the process had already been larger before the call, the high-water
        # mark hides a call peak below it: then the RSS figure is a lower bound.
        "rss_figure_is_lower_bound": high_water_before > resident_before,
        "call_seconds": seconds,
        "threads": system.runtime_threads(),
    }


def run(args, machine, command):
    """Every configuration in its own process; returns the results dict."""
    sizes = args.sizes or [DEFAULT_SIZE]
    cells = args.cells or ["LSTM"]
    dtypes = args.dtype or ["float32"]
    names = args.engines or ["minirnn"]
    choices = {"minirnn": "numba", "minirnn-numpy": "numpy"}
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise SystemExit(f"memory mode measures minirnn and minirnn-numpy only; got {unknown}")
    records = []
    for size in sizes:
        for cell in cells:
            for dtype in dtypes:
                for name in names:
                    for return_sequences in (False, True):
                        config = {"cell": cell, "name": name, "engine": choices[name],
                                  "dtype": dtype,
                                  "size": list(size), "return_sequences": return_sequences}
                        records.append(_run_child(config, args.timeout))
                        _log_record(name, records[-1])
    return {"mode": "memory", "command": command, "argv": sys.argv[1:], "machine": machine,
            "records": records}


def _run_child(config, timeout):
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.memory", json.dumps(config)],
                              cwd=system.REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**config, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return {**config, "error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def _log_record(name, record):
    size = cases.size_label(record["size"])
    if "error" in record:
        message = record["error"]
    else:
        message = (f"tracemalloc peak {record['tracemalloc_peak_bytes'] / MIB:,.0f} MiB, "
                   f"RSS +{record['rss_peak_increase_bytes'] / MIB:,.0f} MiB, returned "
                   f"{record['returned_bytes'] / MIB:,.1f} MiB, "
                   f"{record['call_seconds']:.1f} s")
    print(f"{record['cell']} {size} {name} return_sequences={record['return_sequences']}: "
          f"{message}", file=sys.stderr, flush=True)


def markdown(results, title):
    lines = report.header_lines(results, title)
    lines += [
        "- One call per configuration, each in a fresh process, after compiling on a "
        "tiny input. tracemalloc peak: NumPy allocations during the call (the returned "
        "array included; Numba's internal allocations are not seen). RSS increase: "
        "ru_maxrss after the call minus the resident set just before it (every touched "
        "page). MiB = 2^20 bytes.",
        "",
        "| cell | B x T x D x M | dtype | engine | return_sequences | input MiB | "
        "returned MiB | tracemalloc peak MiB | tracemalloc peak - returned MiB | "
        "RSS increase MiB | RSS increase - returned MiB | call s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["records"]:
        head = (f"| {r['cell']} | {cases.size_label(r['size'])} | {r['dtype']} | "
                f"{r.get('name', r['engine'])} "
                f"| {r['return_sequences']} |")
        if "error" in r:
            lines.append(head + f" error: {r['error']} |" + " |" * 6)
            continue
        returned = r["returned_bytes"]
        bound = " (lower bound)" if r["rss_figure_is_lower_bound"] else ""
        lines.append(
            head + f" {r['input_bytes'] / MIB:,.1f} | {returned / MIB:,.1f} | "
            f"{r['tracemalloc_peak_bytes'] / MIB:,.1f} | "
            f"{(r['tracemalloc_peak_bytes'] - returned) / MIB:,.1f} | "
            f"{r['rss_peak_increase_bytes'] / MIB:,.1f}{bound} | "
            f"{(r['rss_peak_increase_bytes'] - returned) / MIB:,.1f} | "
            f"{r['call_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def write(results, out, name):
    return report.write_json_and_markdown(
        results, out, name, markdown(results, f"minirnn memory: {name}"))


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
