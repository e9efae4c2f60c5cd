"""One-step calls of a streaming model against the bare recurrent layer.

The model is Embedding(1000, 32) -> LSTM(64, return_sequences=True) -> Dense(10),
built without Keras (its configuration written by hand, random weights), made
stateful, and called on one time step of a batch of one; the bare layer is
minirnn.LSTM(64, stateful=True, return_sequences=True) called on one step of its
(1, 1, 32) input. Each time is the median over repeats of the mean of many calls
(time.perf_counter). Where minirnn.bridge.onnx exists, the model exported to ONNX
is timed too with ONNX Runtime, one step per call, the states passed as inputs and
outputs. Run: python -m benchmarks.model_streaming [--calls N] [--repeats R]
"""

import argparse
import os
import statistics
import tempfile
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


def seconds_per_call(call, calls, repeats):
    """The median over ``repeats`` of the mean time of ``calls`` calls."""
    for _ in range(min(calls, 200)):
        call()
    means = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        means.append((time.perf_counter() - start) / calls)
    return statistics.median(means)


def onnx_step(model, rng):
    """ONNX Runtime's one-step call of the exported model, or None (no exporter, no
    onnxruntime, or an export that fails: the reason is printed)."""
    try:
        import onnxruntime
        from minirnn.bridge import onnx as bridge
        path = os.path.join(tempfile.mkdtemp(), "streaming.onnx")
        bridge.to_onnx(model, path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as error:  # optional: any failure only skips the row
        print(f"(ONNX Runtime row skipped: {type(error).__name__}: {str(error)[:120]})")
        return None
    feeds = {}
    for item in session.get_inputs():
        shape = [1 if not isinstance(n, int) else n for n in item.shape]
        if "int" in item.type:
            feeds[item.name] = rng.integers(1, VOCABULARY, shape).astype(
                "int64" if "int64" in item.type else "int32")
        else:
            feeds[item.name] = np.zeros(shape, "float32")
    names = [o.name for o in session.get_outputs()]
    state_inputs = [i.name for i in session.get_inputs() if "int" not in i.type]
    state_outputs = names[1:1 + len(state_inputs)]

    def call():
        results = session.run(None, feeds)
        for name, value in zip(state_inputs, results[1:1 + len(state_outputs)]):
            feeds[name] = value.reshape(feeds[name].shape)
    return call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    saved = files.SavedModel(config(), weights(rng), {"path": None, "format": "memory",
                                                      "keras_version": "3.0.0",
                                                      "semantics": "keras3"})
    model = minirnn.Model(saved, stateful=True)
    token = np.array([[7]], "int32")
    lstm = minirnn.LSTM(UNITS, return_sequences=True, stateful=True)
    lstm.set_weights(model.get_layer("lstm").get_weights())
    step = rng.standard_normal((1, 1, WIDTH)).astype("float32")
    rows = [("minirnn LSTM(64) stateful, one step", lambda: lstm(step)),
            ("minirnn Model Embedding -> LSTM(64) -> Dense, one step", lambda: model(token))]
    ort = onnx_step(model, rng)
    if ort is not None:
        rows.append(("ONNX Runtime, exported model, one step (states in/out)", ort))
    times = [seconds_per_call(call, args.calls, args.repeats) for _, call in rows]
    try:
        from benchmarks.system import cpu_model
        cpu = cpu_model()
    except Exception:
        cpu = "unknown CPU"
    print(f"One-step calls, batch 1, float32, median of {args.repeats} x {args.calls} "
          f"calls on {cpu}; numpy {np.__version__}, minirnn {minirnn.__version__}")
    width = max(len(name) for name, _ in rows)
    print(f"{'call'.ljust(width)}  {'us/call':>8}  {'x LSTM':>7}")
    for (name, _), seconds in zip(rows, times):
        print(f"{name.ljust(width)}  {seconds * 1e6:8.2f}  {seconds / times[0]:7.2f}")


if __name__ == "__main__":
    main()
