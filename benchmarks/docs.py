"""The generated tables of README.md and docs/*.md, made from benchmarks/results/*/*.json.

    python -m benchmarks.docs                 rewrite every generated table
    python -m benchmarks.docs --check         exit 1, naming the files, if one is out of date
    python -m benchmarks.docs verify NAME ARGS...
        run ``minirnn verify ARGS --json ...`` and keep its report, with the machine,
        the commit and the command, as benchmarks/results/<cpu>/NAME.json and .md

A generated table sits between two HTML comments, which GitHub and the site do not
show; everything between them is replaced::

    <!-- generated: NAME (python -m benchmarks.docs) -->
    ...
    <!-- end generated: NAME -->

Tables reuse :mod:`benchmarks.report` (cell text, best peer, ratios), so a figure
reads the same here as in the results' own Markdown. Each names its CPU, its
command and commit, and links to the full results.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

from . import cases, report, system

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
# The CPU of the headline tables: the project's 2-core Xeon.
MAIN = "intel-xeon-family6-model167-2c"
# Peers in the all-engine table, in this order.
PEERS = ("keras-function", "torch", "onnxruntime", "openvino")

BEGIN = re.compile(r"<!-- generated: ([\w-]+) \(python -m benchmarks\.docs\) -->\n")


# ---- reading results ---------------------------------------------------------

def load(cpu, name):
    with open(os.path.join(RESULTS, cpu, name + ".json")) as handle:
        return json.load(handle)


def cpu_text(machine):
    """"Intel Xeon Processor (family 6, model 167), 2 cores"."""
    model = re.sub(r"\((R|TM)\)", "", machine["cpu_model"]).replace("  ", " ").strip()
    ident = machine.get("cpu_id") or {}
    family = (f" (family {ident['family']}, model {ident['model']})"
              if ident.get("family") else "")
    return f"{model}{family}, {machine['cores']} cores"


def commit_text(machine):
    git = machine.get("git") or {}
    commit = (git.get("commit") or "unknown")[:7]
    return commit + (" with uncommitted changes" if git.get("dirty") else "")


def link(base, cpu, name):
    return f"{base}benchmarks/results/{cpu}/{name}.md"


def source(results, base, cpu, name, extra=""):
    """The line under a table: CPU, command, commit, date, link to the full results."""
    machine = results["machine"]
    return (f"*{cpu_text(machine)} (`{cpu}`); `{results['command']}`{extra}; commit "
            f"{commit_text(machine)}, {machine['date'][:10]}; "
            f"[full results]({link(base, cpu, name)}).*")


def _table(header, align, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _label(cell, mode, size):
    return f"{cell} {'stream ' if mode == 'streaming' else ''}{cases.size_label(size)}"


def _rows(results, dtype):
    """((cell, mode, size), row) in the run's order, for one dtype."""
    for (cell, table_dtype, mode), table in report.tables(results).items():
        if table_dtype != dtype:
            continue
        for size, row in table["rows"].items():
            yield (cell, mode, size), row


def _row(results, dtype, key):
    cell, mode, size = key
    table = report.tables(results).get((cell, dtype, mode)) or {"rows": {}}
    return table["rows"].get(size, {})


def _peer(row):
    return report.ratios(row)[0]


def _time(row, engine):
    return report.cell_text(row.get(engine)) or "-"


# ---- the tables --------------------------------------------------------------

def readme_speed(base):
    """Latest grid, default threads: minirnn and its ratio to the best peer, LSTM and GRU."""
    results = load(MAIN, "peers-rounds2")
    keys = {}
    for (cell, mode, size), row in _rows(results, "float32"):
        keys.setdefault((mode, size), {})[cell] = row
    rows = []
    for (mode, size), by_cell in keys.items():
        label = ("stream " if mode == "streaming" else "") + cases.size_label(size)
        cells = []
        for cell in ("LSTM", "GRU"):
            row = by_cell.get(cell, {})
            cells += [_time(row, "minirnn"), _peer(row)]
        rows.append([label, *cells])
    lines = _table(["(B, T, D, M)", "LSTM µs", "LSTM / best peer", "GRU µs",
                    "GRU / best peer"], "lrrrr", rows)
    return lines + ["", source(results, base, MAIN, "peers-rounds2")]


def peers(base):
    """The latest grid against the three fastest peers, default threads and one thread."""
    default = load(MAIN, "peers-rounds2")
    single = load(MAIN, "peers-rounds2-threads1")
    rows = []
    for key, row in _rows(default, "float32"):
        other = _row(single, "float32", key)
        rows.append([_label(*key), _time(row, "minirnn"), _peer(row),
                     _time(other, "minirnn"), _peer(other)])
    lines = _table(["cell (B, T, D, M)", "default threads: minirnn µs", "/ best peer",
                    "one thread: minirnn µs", "/ best peer"], "lrrrr", rows)
    return lines + ["", source(default, base, MAIN, "peers-rounds2"), "",
                    source(single, base, MAIN, "peers-rounds2-threads1")]


def all_engines(base):
    """float32, every CPU engine, default threads; minirnn on one thread beside it."""
    default = load(MAIN, "float32-rounds2")
    single = load(MAIN, "float32-rounds2-threads1")
    rows = []
    for key, row in _rows(default, "float32"):
        other = _row(single, "float32", key)
        rows.append([_label(*key), _time(row, "minirnn"),
                     *(_time(row, name) for name in PEERS), _peer(row),
                     _time(other, "minirnn"), _peer(other)])
    lines = _table(["cell (B, T, D, M)", "minirnn", *PEERS, "minirnn / best peer",
                    "one thread: minirnn", "/ best peer"], "l" + "r" * 8, rows)
    return lines + ["", source(default, base, MAIN, "float32-rounds2"), "",
                    source(single, base, MAIN, "float32-rounds2-threads1")]


def float64(base):
    results = load(MAIN, "float64")
    engines = ("minirnn", "keras-function", "torch")
    rows = [[_label(*key), *(_time(row, name) for name in engines), *report.ratios(row)]
            for key, row in _rows(results, "float64")]
    lines = _table(["cell (B, T, D, M)", *engines, "minirnn / best peer",
                    "minirnn / GEMM floor"], "lrrrrr", rows)
    return lines + ["", source(results, base, MAIN, "float64")]


def bitwise_cost(base):
    cpu, name = "intel-xeon-emerald-rapids-2c", "bitwise"
    results = load(cpu, name)
    rows = []
    for key, row in _rows(results, "float32"):
        mine, exact = row.get("minirnn") or {}, row.get("minirnn-bitwise") or {}
        ratio = "-"
        if mine.get("status") == "ok" and exact.get("status") == "ok":
            ratio = (f"{exact['timing']['median_s'] / mine['timing']['median_s']:.2f}")
        rows.append([_label(*key), _time(row, "minirnn"), _time(row, "minirnn-bitwise"),
                     ratio])
    lines = _table(["cell (B, T, D, M)", "minirnn µs", "bitwise=True µs", "ratio"],
                   "lrrr", rows)
    return lines + ["", source(results, base, cpu, name)]


def gpu(base):
    cpu, name = "intel-xeon-emerald-rapids-16c", "gpu"
    results = load(cpu, name)
    engines = ("minirnn", "keras-cudnn", "torch-cudnn")
    rows = [[_label(*key), *(_time(row, engine) for engine in engines)]
            for key, row in _rows(results, "float32")]
    gpus = ", ".join(g.get("name", "?") for g in results["machine"].get("gpus") or [])
    lines = _table(["cell (B, T, D, M)", "minirnn (CPU)", "keras-cudnn", "torch-cudnn"],
                   "lrrr", rows)
    return lines + ["", source(results, base, cpu, name, extra=f"; GPU: {gpus}")]


def engine_errors(base):
    """Each engine's largest difference from the float64 reference, float32 grid."""
    results = load(MAIN, "float32-rounds2")
    engines = ("minirnn", "minirnn-bitwise", "keras-function", "torch", "onnxruntime",
               "openvino")
    rows = []
    for key, row in _rows(results, "float32"):
        cells = []
        for engine in engines:
            check = (row.get(engine) or {}).get("check") or {}
            cells.append(report._sci(check.get("max_abs_diff")) if check else "-")
        rows.append([_label(*key), *cells])
    lines = _table(["cell (B, T, D, M)", *engines], "l" + "r" * len(engines), rows)
    return lines + ["", source(results, base, MAIN, "float32-rounds2")]


def _verify_rows(results):
    rows = []
    by_dtype = {}
    for record in results["results"]:
        by_dtype.setdefault(record["case"]["dtype"], []).append(record)
    for dtype in sorted(by_dtype):
        records = by_dtype[dtype]
        count = Counter(record["status"] for record in records)
        passed = [r["units"] for r in records if r["status"] == "pass" and r["units"] is not None]
        worst = f"{max(passed):.2f}" if passed else "-"
        identical = sum(r["status"] == "pass" and r["max_abs"] == 0 for r in records)
        rows.append([dtype, str(len(records)), str(count["pass"]),
                     str(count["ill-conditioned"]), str(count["fail"] + count["error"]), worst,
                     str(identical)])
    return rows


def _bitwise_row(results):
    records = results["results"]
    identical = sum(record["identical"] for record in records)
    elements = sum(record["total"] or 0 for record in records)
    differing = sum(record["differing"] or 0 for record in records)
    return [str(len(records)), str(identical), f"{elements:,}", f"{differing:,}"]


def exactness(base):
    """The random-configuration runs of ``minirnn verify`` against Keras."""
    default = load(MAIN, "verify")
    exact = load(MAIN, "verify-bitwise")
    lines = _table(["dtype", "cases", "pass", "ill-conditioned", "fail",
                    "worst error / tolerance (passing cases)", "identical to Keras"],
                   "lrrrrrr", _verify_rows(default))
    lines += ["", source(default, base, MAIN, "verify"), ""]
    lines += _table(["bitwise=True, float32: cases", "identical", "elements compared",
                     "elements differing"], "rrrr", [_bitwise_row(exact)])
    return lines + ["", source(exact, base, MAIN, "verify-bitwise")]


def memory(base):
    """One call's memory beyond its input and result (``python -m benchmarks memory``)."""
    results = load(MAIN, "memory")
    mib = 2 ** 20
    rows = []
    for record in results["records"]:
        rows.append([f"{record['cell']} {cases.size_label(record['size'])}", record["dtype"],
                     str(record["return_sequences"]), f"{record['input_bytes'] / mib:.1f}",
                     f"{record['returned_bytes'] / mib:.1f}",
                     f"{(record['tracemalloc_peak_bytes'] - record['returned_bytes']) / mib:.1f}",
                     f"{record['call_seconds']:.2f}"])
    lines = _table(["cell (B, T, D, M)", "dtype", "return_sequences", "input MiB",
                    "result MiB", "peak beyond the result MiB", "call s"], "lllrrrr", rows)
    return lines + ["", source(results, base, MAIN, "memory")]


def startup(base):
    """First and second call in a fresh process (``python -m benchmarks startup``)."""
    results = load(MAIN, "startup")
    groups = {}
    for record in results["records"]:
        groups.setdefault((record["cell"], tuple(record["size"]), record["dtype"],
                           record["cache"]), []).append(record)
    rows = []
    for (cell, size, dtype, cache), records in groups.items():
        def median(key):
            values = sorted(record[key] for record in records)
            return values[len(values) // 2]
        rows.append([f"{cell} {cases.size_label(size)}", dtype, cache, str(len(records)),
                     f"{median('import_seconds'):.2f}",
                     f"{median('first_call_seconds') * 1e3:,.1f}",
                     report.micro(median("second_call_seconds"))])
    lines = _table(["cell (B, T, D, M)", "dtype", "Numba cache", "processes",
                    "import minirnn s", "first call ms", "second call µs"], "lllrrrr", rows)
    return lines + ["", source(results, base, MAIN, "startup")]


def index(base):
    """Every results file, per CPU: its command, commit and date."""
    lines = []
    for cpu in sorted(os.listdir(RESULTS)):
        folder = os.path.join(RESULTS, cpu)
        names = sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".json"))
        if not names:
            continue
        rows, machine = [], {}
        for name in names:
            results = load(cpu, name)
            machine = results.get("machine") or machine
            command = f"`{results['command']}`" if results.get("command") else "-"
            rows.append([f"[{name}]({link(base, cpu, name)})", command,
                         commit_text(results.get("machine") or {}),
                         (results.get("machine") or {}).get("date", "-")[:10]])
        lines += [f"### {cpu}", ""]
        if machine:
            lines += [f"{cpu_text(machine)}; flags "
                      f"{', '.join(machine.get('cpu_flags') or []) or 'n/a'}.", ""]
        lines += _table(["results", "command", "commit", "date"], "llll", rows) + [""]
    return lines[:-1]


# ---- the corpus of real model files ---------------------------------------------

def _corpus():
    """(accuracy results, speed results) of the corpus on the main CPU."""
    return load(MAIN, "corpus-accuracy"), load(MAIN, "corpus")


def _speed_cells(speed, name):
    """minirnn's and Keras' best times (µs) and their ratio per batch, or None."""
    from .corpus import _best
    from .report import micro
    record = speed["files"].get(name)
    cells = {}
    for batch in ("1", "32"):
        data = (record or {}).get("batches", {}).get(batch)
        mine = data and _best(data["minirnn"])
        theirs = data and _best(data["keras"])
        if mine and theirs:
            ours, best = mine["timing"]["median_s"], theirs["timing"]["median_s"]
            cells[batch] = (micro(ours), micro(best), ours / best)
    return cells


def _result(record):
    if record.get("result") == "refused":
        return f"refused (its package's own layer {record.get('refuse')})"
    return record.get("verdict") or f"{record.get('result', record['status'])}: " \
        f"{record.get('message', '')[:80]}"


def readme_corpus(base):
    """One row: how many files, from how many packages and Keras versions, minirnn's
    results against Keras, and how many run faster than Keras' fastest call."""
    accuracy, speed = _corpus()
    records = accuracy["files"]
    packages = {r["package"] for r in records.values()}
    versions = sorted({r["keras_version"] for r in records.values()},
                      key=lambda v: [int(p) if p.isdigit() else 0
                                     for p in re.split(r"[.-]", v)])
    formats = {}
    for r in records.values():
        formats[r["format"]] = formats.get(r["format"], 0) + 1
    results = {}
    for r in records.values():
        key = _result(r).split(" (its package")[0]
        results[key] = results.get(key, 0) + 1
    faster = []
    for batch in ("1", "32"):
        ratios = [cells[batch][2] for cells in (_speed_cells(speed, n) for n in records)
                  if batch in cells]
        won = sum(r < 1 for r in ratios)
        faster.append(f"{won} of {len(ratios)} ({min(ratios):.2f}-{max(ratios):.2f})"
                      if ratios else "-")
    row = [str(len(records)), str(len(packages)), f"{versions[0]} to {versions[-1]}",
           ", ".join(f"{n} {k}" for k, n in sorted(formats.items(), key=lambda kv: -kv[1])),
           ", ".join(f"{n} {k}" for k, n in results.items()), *faster]
    lines = _table(["files", "packages", "written by Keras", "formats", "minirnn against Keras",
                    "faster than Keras, batch 1 (time ratio)", "batch 32"], "rrlllll", [row])
    return lines + ["", "*match: within 1e-6 of Keras' float32 outputs, and within 1e-12 of "
                    "Keras' model rebuilt in float64; ill-conditioned: Keras' own float32 "
                    "result is beyond 1e-6 from that float64 one, and minirnn's as close to "
                    "it ([exactness](" + base + "docs/exactness.md)); refused: layers of the "
                    "packages' own code. Time: minirnn's call over the faster of Keras' "
                    "tf.function and tf.function+XLA; per file in [saved models]("
                    + base + "docs/saved-models.md#real-model-files).*",
                    source(accuracy, base, MAIN, "corpus-accuracy"),
                    source(speed, base, MAIN, "corpus")]


def corpus(base):
    """Per file: what it is, minirnn's errors against Keras, and the times."""
    accuracy, speed = _corpus()
    rows = []
    for name, record in accuracy["files"].items():
        cells = _speed_cells(speed, name)
        short = name.split("/", 1)[0] + ": " + "/".join(name.split("/")[-2:])
        layers = ", ".join(c for c in record["classes"] if c != "InputLayer")
        errors = ["-", "-"]
        if record.get("worst") is not None:
            errors = [f"{record['worst']:.1e}", "-" if record.get("float64") is None
                      else f"{record['float64']:.2f}"]
        times = [f"{c[0]} / {c[1]}" if c else "-" for c in (cells.get("1"), cells.get("32"))]
        rows.append([short, record["keras_version"], record["format"], layers,
                     _result(record), *errors, *times])
    lines = _table(["file", "Keras", "format", "layers", "minirnn", "worst abs error",
                    "float64 / tolerance", "µs minirnn / Keras, batch 1", "batch 32"],
                   "lllllrrrr", rows)
    return lines + ["", source(accuracy, base, MAIN, "corpus-accuracy"),
                    source(speed, base, MAIN, "corpus")]


def corpus_export(base):
    """The corpus through the ONNX export: counts, and why each file that does not
    export does not."""
    results = load(MAIN, "corpus-export")
    counts = results["counts"]
    files = results["files"]
    def why(message):  # without the exception's name and the file's path on this machine
        message = message.split(": ", 1)[-1]
        if message.startswith("/"):
            message = message.split(": ", 1)[-1]
        return message[:160].replace("|", "/")

    rows = [[name.split("/", 1)[0] + ": " + name.split("/")[-1], record["result"],
             why(record.get("message", ""))]
            for name, record in files.items() if record["result"] != "exported"]
    lines = [f"Of the {len(files)} files of the model corpus, {counts.get('exported', 0)} "
             f"export and pass the check; the others:", ""]
    lines += _table(["file", "result", "why"], "lll", rows)
    return lines + ["", source(results, base, MAIN, "corpus-export")]


# Which blocks a file may hold, and the prefix of its links to the repository root.
BLOCKS = {
    "readme-speed": readme_speed, "readme-exactness": exactness, "exactness": exactness,
    "engine-errors": engine_errors, "peers": peers, "all-engines": all_engines,
    "float64": float64, "bitwise-cost": bitwise_cost, "gpu": gpu, "memory": memory,
    "startup": startup, "index": index, "readme-corpus": readme_corpus, "corpus": corpus,
    "corpus-export": corpus_export,
}
FILES = ("README.md", "docs/exactness.md", "docs/benchmarks.md", "docs/saved-models.md")


# ---- rewriting files ---------------------------------------------------------

def render(text, base):
    """``text`` with every generated block rewritten."""
    out, position = [], 0
    for match in BEGIN.finditer(text):
        name = match.group(1)
        end = text.find(f"<!-- end generated: {name} -->", match.end())
        if end < 0:
            raise ValueError(f"generated block {name!r} has no end marker")
        if name not in BLOCKS:
            raise ValueError(f"unknown generated block {name!r}; known: {sorted(BLOCKS)}")
        out += [text[position:match.end()], "\n".join(BLOCKS[name](base)), "\n"]
        position = end
    out.append(text[position:])
    return "".join(out)


def stale_files():
    """(path, new text) of every file whose generated blocks are out of date."""
    found = []
    for name in FILES:
        path = os.path.join(ROOT, name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        base = "../" * name.count("/")
        new = render(text, base)
        if new != text:
            found.append((path, new))
    return found


def record_verify(name, arguments):
    """Run ``minirnn verify ARGUMENTS --json``; keep the report with the machine."""
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "verify.json")
        done = subprocess.run([sys.executable, "-m", "minirnn", "verify", *arguments,
                               "--json", target], cwd=ROOT, capture_output=True, text=True)
        if not os.path.exists(target):
            sys.exit(f"minirnn verify wrote no report (exit {done.returncode}):\n"
                     f"{done.stdout}{done.stderr}")
        with open(target) as handle:
            results = json.load(handle)
    results["command"] = " ".join(["minirnn", "verify", *arguments])
    results["machine"] = system.machine_info()
    folder = report.output_dir(RESULTS, results["machine"]["machine_name"])
    report.write_json(results, os.path.join(folder, name + ".json"))
    lines = report.header_lines(results, f"minirnn verify: {name}")
    lines += ["", "```", done.stdout.rstrip(), "```", ""]
    with open(os.path.join(folder, name + ".md"), "w") as handle:
        handle.write("\n".join(lines))
    print(f"wrote {os.path.join(folder, name)}.json and .md (exit {done.returncode}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S} UTC)")
    return done.returncode


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        if len(argv) < 2:
            sys.exit("usage: python -m benchmarks.docs verify NAME [minirnn verify options]")
        return record_verify(argv[1], argv[2:])
    check = "--check" in argv
    stale = stale_files()
    for path, new in stale:
        if check:
            print(f"{os.path.relpath(path, ROOT)} is out of date: run python -m benchmarks.docs")
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(new)
            print(f"rewrote {os.path.relpath(path, ROOT)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
