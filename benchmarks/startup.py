"""Start-up mode: what the first call costs in a fresh process, against the second.

    python -m benchmarks startup [--cells LSTM,GRU] [--sizes 1x8x2x3] [--runs 3]

Numba compiles each kernel on its first call, or loads it from its on-disk cache
(``cache=True``). To show both, the harness points ``NUMBA_CACHE_DIR`` at a new,
empty folder, then for every cell starts fresh processes
(``python -m benchmarks.startup CONFIG_JSON``):

- "cold": the first process, with an empty cache (compiles, writes the cache);
- "warm": ``--runs`` more processes with that cache filled (loads it): what a
  user sees from the second program run on.

Each process reports the time to import minirnn, to build the layer, and of the
first, second and third calls; the parent adds the whole process's wall time.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import cases, report, system


def measure(config):
    """In a fresh process: import, build, first/second/third call times."""
    start = time.perf_counter()
    import numpy as np
    import minirnn
    imported = time.perf_counter()
    cell, dtype = config["cell"], config["dtype"]
    weights, x = cases.make_case(cell, tuple(config["size"]))
    layer = getattr(minirnn, cell)(weights[1].shape[0], return_sequences=True, dtype=dtype,
                                   engine="numba")
    layer.set_weights([w.astype(dtype) for w in weights])
    x = x.astype(dtype)
    built = time.perf_counter()
    calls = []
    for _ in range(3):
        t0 = time.perf_counter()
        layer(x)
        calls.append(time.perf_counter() - t0)
    return {**config, "import_seconds": imported - start, "build_seconds": built - imported,
            "first_call_seconds": calls[0], "second_call_seconds": calls[1],
            "third_call_seconds": calls[2], "numpy": np.__version__,
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR")}


def run(args, machine, command):
    """Cold then warm processes for every cell and size; returns the results dict."""
    cells = args.cells or list(cases.CELLS)
    sizes = args.sizes or [cases.SEED_SIZE]
    dtypes = args.dtype or ["float32"]
    cache = tempfile.mkdtemp(prefix="minirnn-numba-cache-")
    records = []
    try:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for cell in cells:
            for size in sizes:
                for dtype in dtypes:
                    for k in range(1 + max(1, args.runs)):
                        config = {"cell": cell, "size": list(size), "dtype": dtype,
                                  "cache": "cold" if k == 0 else "warm", "run": k}
                        records.append(_run_child(config, env, args.timeout))
                        _log(records[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"mode": "startup", "command": command, "argv": sys.argv[1:], "machine": machine,
            "records": records}


def _run_child(config, env, timeout):
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.startup", json.dumps(config)],
                              cwd=system.REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**config, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return {**config, "error": f"exit {done.returncode}: {tail}"}
    return {**json.loads(lines[-1]), "process_wall_seconds": wall}


def _log(record):
    label = f"{record['cell']} {cases.size_label(record['size'])} {record['cache']}"
    if "error" in record:
        print(f"{label}: {record['error']}", file=sys.stderr, flush=True)
        return
    print(f"{label}: import {record['import_seconds']:.2f} s, first call "
          f"{record['first_call_seconds'] * 1e3:,.1f} ms, second call "
          f"{record['second_call_seconds'] * 1e6:,.1f} us", file=sys.stderr, flush=True)


def markdown(results, title):
    lines = report.header_lines(results, title)
    lines += [
        "- Fresh process per row; NUMBA_CACHE_DIR points at a new empty folder: the cold "
        "row compiles and fills it, the warm rows load from it.",
        "",
        "| cell | B x T x D x M | dtype | Numba cache | import minirnn s (NumPy already loaded) | first call ms | "
        "second call us | third call us | first / second | process wall s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["records"]:
        head = f"| {r['cell']} | {cases.size_label(r['size'])} | {r['dtype']} | {r['cache']} |"
        if "error" in r:
            lines.append(head + f" error: {r['error']} |" + " |" * 5)
            continue
        lines.append(
            head + f" {r['import_seconds']:.2f} | {r['first_call_seconds'] * 1e3:,.1f} | "
            f"{r['second_call_seconds'] * 1e6:,.1f} | {r['third_call_seconds'] * 1e6:,.1f} | "
            f"{r['first_call_seconds'] / r['second_call_seconds']:,.0f} | "
            f"{r['process_wall_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def write(results, out, name):
    return report.write_json_and_markdown(
        results, out, name, markdown(results, f"minirnn start-up: {name}"))


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
