"""One-step calls of a streaming model against the bare recurrent layer and ONNX Runtime.

The model is Embedding(1000, 32) -> LSTM(64, return_sequences=True) -> Dense(10),
built without Keras (its configuration written by hand, random weights), made
stateful, and called on one time step of a batch of one. The rows:

- the bare layer: minirnn.LSTM(64, stateful=True, return_sequences=True) called on
  one step of its (1, 1, 32) input;
- the minirnn model: ``model(token)``, token (1, 1) int32;
- ONNX Runtime on the model's streaming export (minirnn.bridge.onnx,
  ``export_model(model, streaming=True)``): ``session.run`` on the token and the
  LSTM's states ``lstm_h_in``, ``lstm_c_in``, whose outputs ``lstm_h_out``,
  ``lstm_c_out`` become the next call's inputs (two dict assignments, the rest of
  the feed built once), with ``intra_op_num_threads=1`` and with ONNX Runtime's
  default thread pools.

Each repeat times ``--calls`` calls of every row in turn (rows interleaved, so that
a busy moment of a shared machine falls on all of them); a row's time is the median
over repeats of the mean per call, with the fastest and slowest repeat as its spread.
Results: ``<out>/<machine>/<name>.json`` and ``.md`` (benchmarks/report.py).

Run: python -m benchmarks.model_streaming [--calls N] [--repeats R] [--no-write]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

import minirnn
from minirnn import files

VOCABULARY, WIDTH, UNITS, CLASSES = 1000, 32, 64, 10


def config():
    """A Keras 3 Sequential configuration: Embedding -> LSTM -> Dense."""
    def layer(class_name, **settings):
        return {"class_name": class_name, "config": {"name": settings.pop("name"),
                                                     "dtype": "float32", **settings}}
    return {"class_name": "Sequential", "config": {"name": "streaming", "layers": [
        {"class_name": "InputLayer", "config": {"name": "tokens", "batch_shape": [None, None],
                                                 "dtype": "int32"}},
        layer("Embedding", name="embedding", input_dim=VOCABULARY, output_dim=WIDTH),
        layer("LSTM", name="lstm", units=UNITS, return_sequences=True),
        layer("Dense", name="dense", units=CLASSES)]}}


def weights(rng):
    def random(*shape):
        return (rng.standard_normal(shape) * 0.2).astype("float32")
    return {"embedding": [random(VOCABULARY, WIDTH)],
            "lstm": [random(WIDTH, 4 * UNITS), random(UNITS, 4 * UNITS), random(4 * UNITS)],
            "dense": [random(UNITS, CLASSES), random(CLASSES)]}


def time_rows(calls_by_row, calls, repeats):
    """The mean seconds per call of each row in each repeat: {row: [mean, ...]}.
    Every row is warmed up first; the repeats interleave the rows."""
    for call in calls_by_row.values():
        for _ in range(min(calls, 200)):
            call()
    means = {name: [] for name in calls_by_row}
    for _ in range(repeats):
        for name, call in calls_by_row.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            means[name].append((time.perf_counter() - start) / calls)
    return means


def onnx_steps(model, token):
    """ONNX Runtime's one-step calls of the model's streaming export, as
    {row name: call}, one session with intra_op_num_threads=1 and one with the
    default threads; ({}, reason) where the exporter or onnxruntime is missing or the
    export fails."""
    try:
        import onnxruntime
        from minirnn.bridge import onnx as bridge
        proto = bridge.export_model(model, streaming=True)
    except Exception as error:  # optional: any failure only skips the rows
        return {}, f"{type(error).__name__}: {str(error)[:160]}"
    graph = proto.SerializeToString()
    pairs = bridge.streaming_states(proto)
    rows = {}
    for label, threads in (("1 thread", 1), ("default threads", None)):
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(graph, options,
                                               providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        outputs = [o.name for o in session.get_outputs()]
        feed = {inputs[0].name: token}
        for item in inputs[1:]:
            feed[item.name] = np.zeros([1 if not isinstance(n, int) else n
                                        for n in item.shape], np.float32)
        # (input name, index of the output that feeds it next call)
        threading = [(pair["input"], outputs.index(pair["output"])) for pair in pairs]
        rows[f"ONNX Runtime, streaming export, {label}"] = _session_call(session, feed,
                                                                        threading)
    return rows, None


def _session_call(session, feed, threading):
    def call():
        results = session.run(None, feed)
        for name, index in threading:
            feed[name] = results[index]
    return call


def run(args):
    rng = np.random.default_rng(0)
    saved = files.SavedModel(config(), weights(rng), {"path": None, "format": "memory",
                                                      "keras_version": "3.0.0",
                                                      "semantics": "keras3"})
    model = minirnn.Model(saved, stateful=True)
    token = np.array([[7]], "int32")
    lstm = minirnn.LSTM(UNITS, return_sequences=True, stateful=True)
    lstm.set_weights(model.get_layer("lstm").get_weights())
    step = rng.standard_normal((1, 1, WIDTH)).astype("float32")
    rows = {"minirnn LSTM(64) stateful, one step": lambda: lstm(step),
            "minirnn Model Embedding -> LSTM(64) -> Dense, one step": lambda: model(token)}
    ort_rows, skipped = onnx_steps(model, token)
    rows.update(ort_rows)
    means = time_rows(rows, args.calls, args.repeats)
    from benchmarks import system
    base = statistics.median(means[next(iter(rows))])
    records = []
    for name, values in means.items():
        median = statistics.median(values)
        records.append({"row": name, "median_seconds": median, "min_seconds": min(values),
                        "max_seconds": max(values), "repeat_seconds": values,
                        "ratio_to_lstm": median / base})
    return {"machine": system.machine_info(),
            "command": " ".join(["python -m benchmarks.model_streaming", *sys.argv[1:]]),
            "settings": {"calls": args.calls, "repeats": args.repeats, "batch": 1,
                         "dtype": "float32", "threads": None},
            "onnx_skipped": skipped, "rows": records}


def markdown(results):
    from benchmarks import report
    settings = results["settings"]
    lines = report.header_lines(results, "minirnn: one-step calls of a streaming model")
    lines += [
        f"- Embedding(1000, 32) -> LSTM(64) -> Dense(10), batch 1, float32, one time step "
        f"per call, states carried. Each of {settings['repeats']} repeats times "
        f"{settings['calls']} calls of every row in turn; median of the repeats' mean "
        "time per call, and the fastest and slowest repeat.",
        "- ONNX Runtime rows: `session.run` on the streaming export, the states fed in and "
        "taken out every call (the feed built once); one session with "
        "`intra_op_num_threads=1`, one with ONNX Runtime's default threads.",
        "",
        "| call | µs per step (median) | fastest – slowest repeat | x bare LSTM |",
        "|---|---:|---:|---:|",
    ]
    for record in results["rows"]:
        lines.append(f"| {record['row']} | {report.micro(record['median_seconds'])} | "
                     f"{report.micro(record['min_seconds'])} – "
                     f"{report.micro(record['max_seconds'])} | "
                     f"{record['ratio_to_lstm']:.2f} |")
    if results.get("onnx_skipped"):
        lines += ["", f"ONNX Runtime rows skipped: {results['onnx_skipped']}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    from benchmarks import report, system
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_streaming",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(system.REPO_ROOT, "benchmarks",
                                                      "results"))
    parser.add_argument("--name", default="model-streaming")
    parser.add_argument("--no-write", action="store_true",
                        help="print the table only, write no result files")
    args = parser.parse_args(argv)
    results = run(args)
    text = markdown(results)
    print(text)
    if not args.no_write:
        paths = report.write_json_and_markdown(results, args.out, args.name, text)
        print(f"Wrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
