"""Writing results: the JSON (every raw figure), a Markdown table, a PNG plot.

Markdown tables have sizes as rows and engines as columns, in microseconds per
call (median after warm-up); then minirnn's time over the best peer's (the
fastest correct engine that is neither minirnn itself nor the GEMM floor) and
over the GEMM floor's. A figure whose output missed the reference by more than
the tolerance is shown as FAILED, whatever its speed.
"""

import json
import os

from . import cases, engines

ORDER = tuple(engines.ENGINES)


# ---- helpers -----------------------------------------------------------------

def micro(seconds):
    """Seconds -> microseconds with about three significant digits, thousands commas."""
    value = seconds * 1e6
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _mflop(flop):
    value = flop / 1e6
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}"


def _sci(value):
    return "-" if value is None else f"{value:.1e}"


def tables(results):
    """{(cell, dtype, mode): {"engines": [...], "rows": {size: {engine: record}}}}.

    mode is "sequence" (one call per sequence) or "streaming" (one call per step);
    runs recorded before streaming existed are "sequence".
    """
    grouped = {}
    for run in results["runs"]:
        key = (run["cell"], run["dtype"], run.get("mode", "sequence"))
        table = grouped.setdefault(key, {"engines": [], "rows": {}})
        if run["engine"] not in table["engines"]:
            table["engines"].append(run["engine"])
        for record in run.get("cases", []):
            row = table["rows"].setdefault(tuple(record["size"]), {})
            row[run["engine"]] = record
    for table in grouped.values():
        table["engines"].sort(key=lambda name: ORDER.index(name) if name in ORDER else 99)
    return grouped


def cell_text(record):
    """What a table cell shows for one engine at one size."""
    if record is None:
        return ""
    status = record.get("status")
    if status == "skipped":
        return "skipped"
    if status == "FAILED":
        return f"FAILED ({_sci(record['check'].get('max_abs_diff'))})"
    if status != "ok" or not record.get("timing"):
        return "error"
    return micro(record["timing"]["median_s"])


def best_peer(row):
    """(engine, seconds) of the fastest correct peer in a row, or None."""
    best = None
    for name, record in row.items():
        if name in engines.NOT_PEERS or record.get("status") != "ok":
            continue
        seconds = record["timing"]["median_s"]
        if best is None or seconds < best[1]:
            best = (name, seconds)
    return best


def ratios(row):
    """minirnn / best peer and minirnn / GEMM floor, as table text."""
    mine = row.get("minirnn")
    if not mine or mine.get("status") != "ok":
        return "-", "-"
    seconds = mine["timing"]["median_s"]
    peer = best_peer(row)
    peer_text = f"{seconds / peer[1]:.2f} ({peer[0]})" if peer else "-"
    floor = row.get("gemm-floor")
    floor_text = "-"
    if floor and floor.get("status") == "ok":
        floor_text = f"{seconds / floor['timing']['median_s']:.2f}"
    return peer_text, floor_text


# ---- Markdown ----------------------------------------------------------------

def _versions_line(machine):
    versions = machine["versions"]
    names = ("python", "numpy", "scipy", "numba", "tensorflow", "tensorflow-cpu", "keras",
             "torch", "onnx", "onnxruntime", "openvino", "minirnn")
    return ", ".join(f"{name} {versions[name]}" for name in names if versions.get(name))


def _threads_lines(results):
    """One line per engine about its threads, from the workers' reports."""
    lines = []
    seen = set()
    for run in results.get("runs", []):
        for process in run.get("processes", []):
            threads = process.get("threads")
            if not threads:
                continue
            parts = []
            if "torch_num_threads" in threads:
                parts.append(f"torch {threads['torch_num_threads']} threads "
                             f"({threads['torch_num_interop_threads']} inter-op)")
            if "tf_intra_op_threads" in threads:
                env = threads.get("env") or {}
                from_env = [f"{name}={env[name]}" for name in
                            ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS") if name in env]
                parts.append(f"TF intra-op {threads['tf_intra_op_threads']}, inter-op "
                             f"{threads['tf_inter_op_threads']} in tf.config (0 = TF default"
                             + (f": {', '.join(from_env)} from the environment)" if from_env
                                else ", all cores)"))
            if "numba_num_threads" in threads:
                parts.append(f"Numba {threads['numba_num_threads']} threads")
            for key, value in (threads.get("engine") or {}).items():
                parts.append(f"{key} {value}")
            pools = threads.get("threadpools")
            if isinstance(pools, list):
                for pool in pools:
                    version = f" {pool['version']}" if pool.get("version") else ""
                    parts.append(f"{pool['internal_api']}{version} "
                                 f"{pool['num_threads']} threads"
                                 + (f" ({pool['architecture']})" if pool.get("architecture")
                                    else ""))
            label = run["engine"]
            options = process.get("options") or {}
            if options:
                label += "[" + ",".join(map(str, options.values())) + "]"
            label += " streaming" if process.get("streaming") else ""
            text = f"- {label}: " + "; ".join(parts)
            if label not in seen and parts:
                seen.add(label)
                lines.append(text)
    return lines


def header_lines(results, title):
    machine = results["machine"]
    git = machine.get("git") or {}
    env = machine["thread_env"]
    lines = [
        f"# {title}",
        "",
        f"Command: `{results['command']}`",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores "
        f"(`{machine['machine_name']}`){_cpu_id_text(machine.get('cpu_id'))}, "
        f"flags {', '.join(machine['cpu_flags']) or 'n/a'}",
        *_gpu_lines(machine),
        "- Threads: " + _threads_setting(results),
        f"- Software: {_versions_line(machine)}",
        f"- Commit: {git.get('commit') or 'unknown'}"
        + (" (with uncommitted changes)" if git.get("dirty") else "")
        + (f"; {git['note']}" if git.get("note") else ""),
        f"- Date: {machine['date']}",
        "- Thread environment: " + (", ".join(f"{k}={v}" for k, v in env.items())
                                    or "none set (each library's default)"),
    ]
    return lines


def _gpu_lines(machine):
    """The GPUs nvidia-smi listed (none: no line)."""
    lines = []
    for gpu in machine.get("gpus") or []:
        memory = gpu.get("memory_mib")
        parts = [gpu.get("name") or "?"]
        if isinstance(memory, int):
            parts.append(f"{memory / 1024:.0f} GiB")
        if gpu.get("compute_capability"):
            parts.append(f"compute capability {gpu['compute_capability']}")
        if gpu.get("driver"):
            parts.append(f"driver {gpu['driver']}")
        lines.append("- GPU: " + ", ".join(parts))
    return lines


def gpu_engine_lines(results):
    """One line per GPU engine (and mode): the device, CUDA, cuDNN and code path it ran."""
    lines = []
    for run in results.get("runs", []):
        engine = engines.ENGINES.get(run["engine"])
        if engine is None or not engine.gpu:
            continue
        info = {}
        for record in run.get("cases", []):
            info = record.get("info") or info
        if not info:
            continue
        parts = []
        if info.get("backend"):
            parts.append(" ".join(filter(None, ("Keras", info.get("keras"), "on the",
                                                info["backend"], "backend"))))
        if info.get("torch"):
            parts.append(f"torch {info['torch']}")
        if info.get("tensorflow"):
            parts.append(f"TensorFlow {info['tensorflow']}")
        if info.get("device_name"):
            capability = info.get("compute_capability")
            parts.append(f"{info['device_name']}"
                         + (f" (compute capability {capability})" if capability else ""))
        if info.get("cuda_version"):
            parts.append(f"CUDA {info['cuda_version']}")
        if info.get("cudnn_version"):
            parts.append(f"cuDNN {info['cudnn_version']}")
        if info.get("rnn_path"):
            parts.append(f"ran {info['rnn_path']}")
        if "cudnn_acceptable" in info:
            parts.append(f"torch.backends.cudnn.is_acceptable(input) {info['cudnn_acceptable']}")
        parts.append(f"TF32 {'on' if info.get('tf32') else 'off'}")
        text = "; ".join(parts)
        label = run["engine"] + (" streaming" if run.get("mode") == "streaming" else "")
        line = f"- {label} ({run['cell']}, {run['dtype']}): {text}"
        lines.append(line)
    return lines


def _cpu_id_text(cpu_id):
    if not cpu_id:
        return ""
    return (f", {cpu_id.get('vendor', '?')} family {cpu_id.get('family', '?')} model "
            f"{cpu_id.get('model', '?')} stepping {cpu_id.get('stepping', '?')}")


def _threads_setting(results):
    threads = (results.get("settings") or {}).get("threads")
    if threads:
        return (f"every engine's pools capped at {threads} (`--threads {threads}`: OMP, "
                "OpenBLAS, MKL, Numba, TensorFlow, ONNX Runtime intra/inter-op, OpenVINO "
                "inference threads)")
    return "each library's default (no `--threads`)"


def _table_heading(cell, dtype, mode, results):
    if mode != "streaming":
        return f"## {cell}, {dtype}"
    steps = (results.get("settings") or {}).get("stream_steps", "?")
    return (f"## {cell}, {dtype}, streaming: one timestep per call (B, 1, D, M), states "
            f"carried; microseconds per step, over a stream of {steps} calls")


def speed_markdown(results, title):
    """The Markdown report of a speed run."""
    settings = results["settings"]
    lines = header_lines(results, title)
    lines += [
        f"- Layer: return_sequences={settings['return_sequences']}; every engine in its "
        "own fresh process; warm-up calls excluded; figures are the median time per call "
        f"in microseconds over repeated calls (about {settings['repeat_seconds']} s or at "
        f"least {settings['min_samples']} samples per figure; quartiles in the JSON)"
        + (f"; the grid ran {settings['rounds']} times, engines interleaved, and each "
           "figure is the lowest of its rounds' medians (all in the JSON)"
           if settings.get("rounds", 1) > 1 else "") + ".",
        "- Correctness: before timing, each engine's output is compared with minirnn's "
        "float64 NumPy reference on the same weights and input; FAILED (max abs diff) "
        f"means the difference exceeded {settings['tolerance']['float32']:g} (float32) or "
        f"{settings['tolerance']['float64']:g} (float64).",
        "- Ratios: minirnn's time divided by the best peer's (fastest correct engine "
        "other than minirnn, minirnn-numpy and the GEMM floor) and by the GEMM floor's "
        "(below 1: minirnn is faster).",
        "",
        *_load_lines(results),
        "Threads as each engine's process reported them:",
        "",
        *_threads_lines(results),
    ]
    gpu_lines = gpu_engine_lines(results)
    if gpu_lines:
        lines += ["", "GPU engines, as their processes reported them:", "", *gpu_lines]
    for (cell, dtype, mode), table in tables(results).items():
        names = table["engines"]
        lines += ["", _table_heading(cell, dtype, mode, results), "",
                  "| (B, T, D, M) | " + " | ".join(names)
                  + " | minirnn / best peer | minirnn / GEMM floor |",
                  "|---|" + "---:|" * (len(names) + 2)]
        for size, row in table["rows"].items():
            peer, floor = ratios(row)
            cells = [cell_text(row.get(name)) for name in names]
            lines.append(f"| {cases.size_label(size)} | " + " | ".join(cells)
                         + f" | {peer} | {floor} |")
        lines += ["", "Max abs difference from the float64 reference:", "",
                  "| (B, T, D, M) | " + " | ".join(n for n in names
                                                   if engines.ENGINES[n].checked) + " |",
                  "|---|" + "---:|" * sum(engines.ENGINES[n].checked for n in names)]
        for size, row in table["rows"].items():
            cells = []
            for name in names:
                if not engines.ENGINES[name].checked:
                    continue
                record = row.get(name) or {}
                check = record.get("check") or {}
                cells.append(_sci(check.get("max_abs_diff")) if check else "-")
            lines.append(f"| {cases.size_label(size)} | " + " | ".join(cells) + " |")
        lines += _mode_notes(table)
    skipped = {name: info["skipped"] for name, info in results["engines"].items()
               if info.get("skipped")}
    for run in results["runs"]:
        if run.get("status") == "skipped" and run["engine"] not in skipped:
            label = run["engine"] + (" streaming" if run.get("mode") == "streaming" else "")
            label += f" ({run['cell']}, {run['dtype']})"
            skipped.setdefault(label, run["reason"])
    if skipped:
        lines += ["", "## Skipped engines", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped.items()]
    busy = [(run, process) for run in results["runs"] for process in run.get("processes", [])
            if (process.get("background_busy_fraction") or 0) > 0.1]
    if busy:
        lines += ["", "## Engine processes that shared the CPUs with other work", "",
                  "Other programs took this share of the CPUs while the engine ran; its "
                  "figures are likely slower and noisier than on an idle machine:", ""]
        for run, process in busy:
            options = process.get("options") or {}
            label = run["engine"] + (f"[{','.join(map(str, options.values()))}]"
                                     if options else "")
            mode = " streaming" if run.get("mode") == "streaming" else ""
            lines.append(f"- {run['cell']} {run['dtype']}{mode} {label}: "
                         f"{process['background_busy_fraction']:.0%}")
    problems = [(run, record) for run in results["runs"] for record in run.get("cases", [])
                if record.get("status") == "error"]
    if problems:
        lines += ["", "## Errors", ""]
        lines += [f"- {run['cell']} {run['dtype']}"
                  + (" streaming" if run.get("mode") == "streaming" else "")
                  + f" {run['engine']} {cases.size_label(record['size'])}: "
                  f"{record.get('error')}"
                  for run, record in problems]
    lines += ["", f"Total wall time: {results['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _load_lines(results):
    load = results.get("background_load") or {}
    before, after = load.get("before"), load.get("after")
    if not before:
        return [""]
    text = (f"- Background load: {before['busy_fraction']:.0%} of the CPUs busy with other "
            f"work just before the run (load average {before['loadavg'][0]:.1f})")
    if after:
        text += f", {after['busy_fraction']:.0%} just after"
    if max(before["busy_fraction"], (after or before)["busy_fraction"]) > 0.1:
        text += ("; figures are slower and noisier than on an idle machine, "
                 "multithreaded ones most")
    threads = results["settings"].get("threads")
    lines = [text + "."]
    if threads:
        lines.append(f"- Thread pools capped at {threads} per engine process (--threads).")
    return lines + [""]


def _mode_notes(table):
    """Which variant or BLAS won, for engines that have several."""
    notes = []
    for name in table["engines"]:
        chosen = {}
        for size, row in table["rows"].items():
            record = row.get(name) or {}
            if record.get("processes"):
                info = record.get("info") or {}
                chosen.setdefault(info.get("blas", record.get("best")), []).append(size)
            elif len(record.get("variants", [])) > 1:
                chosen.setdefault(record.get("best"), []).append(size)
        if chosen:
            parts = [f"{mode} at {', '.join(cases.size_label(s) for s in sizes)}"
                     for mode, sizes in chosen.items()]
            notes.append(f"- {name} (fastest mode shown): " + "; ".join(parts))
    return ["", *notes] if notes else []


# ---- plot --------------------------------------------------------------------

def speed_plot(results, path):
    """Time per call (log scale) against size, one line per engine, one panel per table.

    Returns None, or the reason no PNG was written (matplotlib missing).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"no PNG: matplotlib is not installed ({error})"
    grouped = tables(results)
    count = len(grouped)
    if not count:
        return "no PNG: nothing was measured"
    columns = min(count, 2)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.8 * rows),
                                squeeze=False)
    for axis, ((cell, dtype, mode), table) in zip(axes.flat, grouped.items()):
        # Sizes in order of work, evenly spaced (two sizes of similar FLOPs would
        # overlap on a FLOP axis); the tick labels give the FLOPs.
        sizes = sorted(table["rows"], key=lambda s: cases.flops(cell, s))
        for name in table["engines"]:
            points, failed = [], []
            for k, size in enumerate(sizes):
                record = table["rows"][size].get(name) or {}
                if record.get("timing") and record.get("status") in ("ok", "FAILED"):
                    target = points if record["status"] == "ok" else failed
                    target.append((k, record["timing"]["median_s"] * 1e6))
            if points:
                style = "--" if name == "gemm-floor" else "-"
                width = 2.5 if name == "minirnn" else 1.3
                axis.plot(*zip(*points), style, marker="o", linewidth=width, label=name)
            if failed:
                axis.plot(*zip(*failed), "x", color="red", markersize=10,
                          label=f"{name} FAILED")
        axis.set_yscale("log")
        axis.set_xticks(range(len(sizes)))
        axis.set_xticklabels([f"{cases.size_label(s)}\n{_mflop(cases.flops(cell, s))} MFLOP"
                              for s in sizes], fontsize=8)
        axis.set_xlabel("size BxTxDxM, in order of GEMM work")
        per = "step" if mode == "streaming" else "call"
        axis.set_ylabel(f"microseconds per {per} (median, log scale)")
        gpus = ", ".join(gpu.get("name", "?") for gpu in results["machine"].get("gpus") or [])
        axis.set_title(f"{cell} {dtype}{', streaming' if mode == 'streaming' else ''}, "
                       f"{results['machine']['machine_name']}" + (f", {gpus}" if gpus else ""))
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


# ---- files -------------------------------------------------------------------

def output_dir(out, machine_name):
    path = os.path.join(out, machine_name)
    os.makedirs(path, exist_ok=True)
    return path


def write_json(results, path):
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1, sort_keys=False, default=str)
        handle.write("\n")


def write_json_and_markdown(results, out, name, markdown_text):
    """Write ``<out>/<machine>/<name>.json`` and ``.md``; returns both paths."""
    folder = output_dir(out, results["machine"]["machine_name"])
    paths = {"json": os.path.join(folder, name + ".json"),
             "markdown": os.path.join(folder, name + ".md")}
    write_json(results, paths["json"])
    with open(paths["markdown"], "w") as handle:
        handle.write(markdown_text)
    return paths


def write_speed(results, out, name):
    """Write <out>/<machine>/<name>.json, .md and .png; returns the paths written."""
    folder = output_dir(out, results["machine"]["machine_name"])
    paths = {"json": os.path.join(folder, name + ".json"),
             "markdown": os.path.join(folder, name + ".md"),
             "png": os.path.join(folder, name + ".png")}
    note = speed_plot(results, paths["png"])
    if note:
        results["plot"] = note
        paths.pop("png")
    markdown = speed_markdown(results, f"minirnn benchmarks: {name}")
    if note:
        markdown += f"\n{note}\n"
    with open(paths["markdown"], "w") as handle:
        handle.write(markdown)
    write_json(results, paths["json"])
    return paths


def rerender(json_path):
    """Rewrite the .md and .png next to a speed run's .json (after changing this module)."""
    with open(json_path) as handle:
        results = json.load(handle)
    stem = os.path.splitext(json_path)[0]
    name = os.path.basename(stem)
    note = speed_plot(results, stem + ".png")
    markdown = speed_markdown(results, f"minirnn benchmarks: {name}")
    if note:
        markdown += f"\n{note}\n"
    with open(stem + ".md", "w") as handle:
        handle.write(markdown)
    return stem + ".md"


if __name__ == "__main__":
    import sys
    for path in sys.argv[1:]:
        print(rerender(path))
