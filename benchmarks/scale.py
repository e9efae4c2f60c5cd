"""Scoring at scale: sequences per second of one saved model on Spark and Dask.

    python -m benchmarks.scale [--sequences N] [--repeats R] [--out DIR]

One model of the corpus (asmscan-bilstm's bass-model1.h5: Embedding -> Bidirectional
LSTM -> LSTM -> Dense, a binary classifier of 40 tokens; fetched into the corpus
cache by reference.corpus) scores N random token sequences:

- minirnn in one process (all threads, and one thread: the per-core rate);
- Dask: a LocalCluster of 2 worker processes x 1 thread, ``map_blocks`` with
  ``minirnn.predict_fn``;
- Spark ``local[2]``: ``predict_batch_udf`` with ``minirnn.predict_fn``;
- Spark ``local[2]``: the same ``predict_batch_udf`` with tf-keras (TensorFlow)
  loading the file in ``make_predict_fn``, as people do today.

Each engine starts once, scores a small warm-up job (models loaded, kernels
compiled), then the N sequences ``--repeats`` times; the table gives the median.
Memory per worker is the peak resident set (ru_maxrss) of each process that ran
a predict. Results go to benchmarks/results/<machine>/scale.json and .md.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

from . import report, system

ENTRY = "asmscan-bilstm/asmscan/bilstm/resources/model/cvms/bass-model1.h5"
PARTITIONS, BATCH = 16, 1000
_peak_folder = None


def model_path():
    """The corpus file, from the cache (fetched there if it is not yet)."""
    sys.path.insert(0, system.REPO_ROOT)
    from reference import corpus
    manifest = corpus.load_manifest()
    entry = manifest["files"][ENTRY]
    return corpus.locate(ENTRY, entry, manifest, corpus.cache_dir(), {})


def tokens(n, steps, high, seed=0):
    return np.random.default_rng(seed).integers(1, high, (n, steps)).astype(np.int32)


class Measured:
    """A ``make_predict_fn`` whose predict writes its process' peak RSS into a
    folder after each batch (one file per process id)."""

    def __init__(self, make, folder):
        self.make, self.folder = make, folder

    def __call__(self):
        predict = self.make()

        def measured(x):
            y = predict(x)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            with open(os.path.join(self.folder, str(os.getpid())), "w") as handle:
                handle.write(str(peak))
            return y

        return measured


class KerasPredict:
    """``make_predict_fn`` with tf-keras (TensorFlow) in the worker, as people write
    it: load the file, return ``model.predict``."""

    def __init__(self, path, batch_size):
        self.path, self.batch_size = path, batch_size

    def __call__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tf_keras
        model = tf_keras.models.load_model(self.path, compile=False)
        return lambda x: model.predict(x, batch_size=self.batch_size, verbose=0)


def peaks(folder):
    """{pid: peak RSS in bytes} the measured predicts wrote; empties the folder."""
    found = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as handle:
            found[name] = int(handle.read())
        os.remove(os.path.join(folder, name))
    return found


def timed(run, repeats):
    """(median seconds, every time) of ``run()`` repeated."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def one_process(path, x, repeats):
    import minirnn
    model = minirnn.load_model(path)
    model.predict(x[:2000], batch_size=BATCH)
    rows = {}
    before = minirnn.get_num_threads()
    for threads in (before, 1):
        minirnn.set_num_threads(threads)
        median, times = timed(lambda: model.predict(x, batch_size=BATCH), repeats)
        rows[f"minirnn, one process, {threads} thread{'s' if threads > 1 else ''}"] = {
            "seconds": median, "times": times, "workers": 1, "threads": threads}
    minirnn.set_num_threads(before)
    return rows, model.predict(x, batch_size=BATCH)


def dask_run(path, x, repeats, folder):
    import dask.array as da
    import distributed
    import logging

    import minirnn
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        make = Measured(minirnn.predict_fn(path, batch_size=BATCH), folder)
        blocks = da.from_array(x, chunks=(len(x) // PARTITIONS, x.shape[1]))
        scores = blocks.map_blocks(lambda block: make()(block), dtype=np.float32,
                                   chunks=(len(x) // PARTITIONS, 1))
        scores[:2000].compute()
        blocks = client.persist(blocks)      # the inputs in the workers, as data would be
        distributed.wait(blocks)
        scores = blocks.map_blocks(lambda block: make()(block), dtype=np.float32,
                                   chunks=(len(x) // PARTITIONS, 1))
        result = {}
        median, times = timed(lambda: result.update(y=scores.compute()), repeats)
    finally:
        client.close()
        cluster.close()
    return {"seconds": median, "times": times, "workers": 2, "threads": 1,
            "rss": peaks(folder)}, result["y"]


def spark_session():
    from pyspark.sql import SparkSession
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("minirnn-scale")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.memory", "2g").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_run(make, n, steps, high, repeats, folder):
    """predict_batch_udf(make) over a DataFrame of n token arrays made in Spark, the
    scores written to Spark's no-op sink; returns the row and the first 2000 scores
    with their tokens, to check."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    session = spark_session()
    try:
        udf = predict_batch_udf(Measured(make, folder), return_type=ArrayType(FloatType()),
                                batch_size=BATCH, input_tensor_shapes=[[steps]])
        frame = session.range(0, n, 1, PARTITIONS).select(
            "id", F.expr(f"transform(sequence(0, {steps - 1}), "
                         f"i -> cast(pmod(xxhash64(id, i), {high - 1}) + 1 as int))")
            .alias("tokens")).cache()
        frame.count()
        frame.limit(2000).select(udf("tokens")).collect()              # warm-up
        scored = frame.select("id", udf("tokens").alias("score"))
        median, times = timed(lambda: scored.write.format("noop").mode("overwrite").save(),
                              repeats)
        sample = frame.filter("id < 2000").select(
            "id", "tokens", udf("tokens").alias("score")).toPandas().sort_values("id")
    finally:
        session.stop()
    check = (np.stack(sample["tokens"].to_numpy()), np.stack(sample["score"].to_numpy()))
    return {"seconds": median, "times": times, "workers": 2, "threads": 1,
            "rss": peaks(folder)}, check


def run(args):
    import minirnn
    path = model_path()
    model = minirnn.load_model(path)
    spec = model.input_specs[0]
    steps, high = spec["shape"][1], spec["int_high"]
    x = tokens(args.sequences, steps, high)
    results = {"machine": system.machine_info(),
               "command": " ".join(["python -m benchmarks.scale", *sys.argv[1:]]),
               "model": ENTRY, "sequences": args.sequences, "batch_size": BATCH,
               "partitions": PARTITIONS, "repeats": args.repeats, "rows": {}}
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    rows, expected = one_process(path, x, args.repeats)
    results["rows"].update(rows)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (system.REPO_ROOT, previous) if p)
    with tempfile.TemporaryDirectory(prefix="minirnn-scale-") as folder:
        log("Dask: 2 workers x 1 thread ...")
        row, y = dask_run(path, x, args.repeats, folder)
        row["bitwise_equal"] = bool(y.tobytes() == expected.tobytes())
        results["rows"]["minirnn, Dask LocalCluster, 2 workers x 1 thread"] = row
        engines = [("minirnn", minirnn.predict_fn(path))]
        if not args.no_keras:
            engines.append(("tf-keras (TensorFlow)", KerasPredict(path, BATCH)))
        for name, make in engines:
            log(f"Spark local[2]: {name} ...")
            row, (sample_x, sample_y) = spark_run(make, args.sequences, steps, high,
                                                  args.repeats, folder)
            reference = model.predict(sample_x, batch_size=BATCH)
            row["max_abs_difference_to_minirnn"] = float(np.abs(sample_y - reference).max())
            results["rows"][f"{name}, Spark local[2], predict_batch_udf"] = row
    for row in results["rows"].values():
        row["sequences_per_second"] = args.sequences / row["seconds"]
    return results


def markdown(results):
    machine = results["machine"]
    rows = results["rows"]
    lines = ["# Scoring at scale: sequences per second", "",
             f"CPU: {machine['cpu_model']} ({machine['cores']} cores), "
             f"{machine['machine_name']}; commit "
             f"{(machine.get('git') or {}).get('commit', '?')}; {machine['date']}.",
             f"Command: `{results['command']}`. Model: {results['model']}; "
             f"{results['sequences']:,} sequences, batches of {results['batch_size']}, "
             f"{results['partitions']} partitions / blocks; median of "
             f"{results['repeats']} runs after a warm-up. RSS: the peak resident memory "
             "of each worker process that scored.", "",
             "| how | sequences / s | per worker process | RSS per worker |",
             "|---|---:|---:|---:|"]
    for name, row in rows.items():
        rss = row.get("rss") or {}
        memory = " / ".join(f"{value / 2**20:.0f} MiB" for value in sorted(rss.values())) \
            if rss else "-"
        lines.append(f"| {name} | {row['sequences_per_second']:,.0f} | "
                     f"{row['sequences_per_second'] / row['workers']:,.0f} | {memory} |")
    engines = [(name, row["sequences_per_second"] / row["workers"])
               for name, row in rows.items() if row["workers"] > 1]
    lines += ["", "A cluster of N machines of C cores runs one task per core: at each engine's "
              "measured rate per worker process (one core; the engine's overhead "
              "included, on a 2-core machine that also runs the driver), N x C x that "
              "rate, e.g. 100 million sequences take:", "",
              "| machines x cores | " + " | ".join(name for name, _ in engines) + " |",
              "|---|" + "---:|" * len(engines)]
    for machines, cores in ((1, 2), (10, 16), (100, 16)):
        cells = [f"{_duration(1e8 / (machines * cores * rate))} "
                 f"({machines * cores * rate:,.0f}/s)" for _, rate in engines]
        lines.append(f"| {machines} x {cores} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _duration(seconds):
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-keras", action="store_true",
                        help="leave out the tf-keras row (no TensorFlow needed)")
    parser.add_argument("--out", default=os.path.join(system.REPO_ROOT, "benchmarks",
                                                      "results"))
    parser.add_argument("--name", default="scale")
    parser.add_argument("--markdown", metavar="JSON", default=None,
                        help="only write the .md of results already measured")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as handle:
            results = json.load(handle)
    else:
        results = run(args)
    text = markdown(results)
    paths = report.write_json_and_markdown(results, args.out, args.name, text)
    print(text)
    print(f"Wrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
