"""Scoring at scale: Spark and Dask run a saved model with minirnn.predict_fn.

A local Spark session (``local[2,4]``: two cores, four tries per task) and a Dask
``LocalCluster`` of two worker processes each score 100,000 sequences of a
committed corpus model (ethnicolr's Embedding -> LSTM classifier); the results equal
one process's ``model.predict`` bit for bit. In each engine one worker process kills
itself in the middle of the job (``os._exit``, once, keyed by a marker file): the
engine runs the lost task again, and every sequence is scored once, none lost.
Each engine starts once for the module. Also here: predict_fn itself, the threads
of a worker, and ``minirnn predict --batch-size`` on a memory-mapped .npy.

Skipped where pyspark, dask/distributed or Java are missing (each says which).
"""

import logging
import os
import shutil
import sys

import numpy as np
import pytest

import minirnn
from minirnn import cli, scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "corpus", "files", "ethnicolr", "ethnicolr", "models",
                     "wiki", "lstm", "wiki_ln_lstm.h5")   # (None, 20) tokens -> 13 classes
N, STEPS, VOCABULARY = 100_000, 20, 1436
PARTITIONS, BATCH = 10, 1000     # 10,000 rows a partition: no batch of one row (see docs)
_scored = 0                      # batches this worker process scored (KillOnce)
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning")


def tokens(n=N, seed=0):
    return np.random.default_rng(seed).integers(1, VOCABULARY, (n, STEPS)).astype(np.int32)


@pytest.fixture(scope="module")
def expected():
    """The inputs and one process' outputs."""
    x = tokens()
    return x, minirnn.load_model(MODEL).predict(x)


@pytest.fixture(scope="module")
def worker_path():
    """The test module importable in the engines' worker processes (they import
    the functions below by name), for the module's duration."""
    before = os.environ.get("PYTHONPATH")
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, ROOT, before) if p)
    yield
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


class KillOnce:
    """A ``make_predict_fn`` whose predict ends its own process (``os._exit``) at its
    third batch, the first time in the whole job (the marker file says whether that
    happened): the engine must run the lost task again."""

    def __init__(self, factory, marker):
        self.factory, self.marker = factory, str(marker)

    def __call__(self):
        predict = self.factory()

        def killing(x):
            global _scored
            _scored += 1
            if _scored >= 3 and not os.path.exists(self.marker):
                with open(self.marker, "w") as handle:
                    handle.write(str(os.getpid()))
                os._exit(1)
            return predict(x)

        return killing


def threads_in_a_task(x):
    """(engine_threads(), minirnn's threads after a predict) in a worker's task."""
    predict = minirnn.predict_fn(MODEL)()
    predict(x)
    return scale.engine_threads(), minirnn.get_num_threads()


# ---- predict_fn in this process -----------------------------------------------------

def test_predict_fn_loads_once_and_keeps_the_bits(tmp_path):
    import inspect
    import pickle

    model = minirnn.load_model(MODEL)
    x = tokens(600, seed=3)
    factory = minirnn.predict_fn(MODEL, batch_size=128)
    predict = factory()
    assert list(inspect.signature(predict).parameters) == ["embedding_input"]
    np.testing.assert_array_equal(predict(x.astype(np.float64)), model.predict(x))
    shipped = pickle.loads(pickle.dumps(factory))
    assert shipped.model() is factory.model()          # one model per process and bytes
    assert len(pickle.dumps(factory)) < 2 * os.path.getsize(MODEL)
    assert minirnn.predict_fn(model).digest == factory.digest
    before = minirnn.get_num_threads()
    minirnn.predict_fn(MODEL, threads=1)()(x[:10])
    assert minirnn.get_num_threads() == 1
    minirnn.set_num_threads(before)
    minirnn.predict_fn(MODEL)()(x[:10])                # outside an engine: left alone
    assert minirnn.get_num_threads() == before and scale.engine_threads() is None
    with pytest.raises(ValueError, match="batch_size"):
        minirnn.predict_fn(MODEL, batch_size=0)
    with pytest.raises(ValueError, match="threads"):
        minirnn.predict_fn(MODEL, threads=True)
    with pytest.raises(ValueError, match="stateful"):
        minirnn.predict_fn(minirnn.load_model(MODEL, stateful=True))
    with pytest.raises(TypeError, match="path_or_model"):
        minirnn.predict_fn(42)
    with pytest.raises(ValueError, match="no such file"):
        minirnn.predict_fn(tmp_path / "missing.keras")


def test_predict_fn_of_a_model_with_two_inputs_and_outputs(keras, tmp_path):
    a, b = keras.Input((None, 3), name="a"), keras.Input((None, 2), name="b")
    sequence = keras.layers.SimpleRNN(5, return_sequences=True, name="rnn")(
        keras.layers.Concatenate()([keras.layers.Dense(4)(a), b]))
    keras.Model([a, b], [sequence, keras.layers.LSTM(2, name="last")(sequence)]).save(
        tmp_path / "two.keras")
    model = minirnn.load_model(tmp_path / "two.keras")
    predict = minirnn.predict_fn(tmp_path / "two.keras")()
    import inspect
    assert list(inspect.signature(predict).parameters) == ["a", "b"]
    x = model.example_inputs(batch_size=9, timesteps=4)
    result = predict(*x)
    assert list(result) == ["rnn", "last"]
    for got, want in zip(result.values(), model.predict(x)):
        np.testing.assert_array_equal(got, want)


# ---- Spark --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spark(worker_path):
    pytest.importorskip("pyspark", reason="needs pyspark (pip install minirnn[scale])")
    pytest.importorskip("pyarrow", reason="Spark's pandas UDFs need pyarrow")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java: no java on PATH and JAVA_HOME is not set")
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2,4]")     # 2 cores, 4 tries per task
               .appName("minirnn-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.memory", "1g")
               # The workers import this module: its folder on their path, also where
               # Spark's JVM was started earlier in this process without it (the
               # docs' Spark example runs in the same test process).
               .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
               .getOrCreate())
    session.sparkContext.setLogLevel("FATAL")
    yield session
    session.stop()


def test_spark_scores_every_sequence_once(spark, expected, tmp_path):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    import pandas as pd

    x, y = expected
    table = pd.DataFrame({"id": np.arange(N), "tokens": list(x)})
    data = spark.createDataFrame(table).repartitionByRange(PARTITIONS, "id")
    marker = tmp_path / "killed"
    classify = predict_batch_udf(KillOnce(minirnn.predict_fn(MODEL), marker),
                                 return_type=ArrayType(FloatType()), batch_size=BATCH,
                                 input_tensor_shapes=[[STEPS]])
    scored = data.select("id", classify("tokens").alias("scores")).toPandas()
    assert marker.exists(), "no worker was killed: the retry was not tested"
    assert len(scored) == N and scored["id"].is_unique          # none lost, none twice
    scored = scored.sort_values("id")
    np.testing.assert_array_equal(scored["id"].to_numpy(), np.arange(N))
    got = np.stack(scored["scores"].to_numpy()).astype(np.float32)
    assert got.shape == y.shape and got.tobytes() == y.tobytes()
    threads = spark.sparkContext.parallelize([x[:16]] * 2, 2).map(threads_in_a_task).collect()
    assert threads == [(1, 1), (1, 1)]


# ---- Dask ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_client(worker_path):
    pytest.importorskip("dask.array", reason="needs dask[array] (pip install minirnn[scale])")
    distributed = pytest.importorskip("distributed",
                                      reason="needs distributed (pip install minirnn[scale])")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def score_block(block, make, marker):
    """One Dask block through the model; the worker process that scores the third
    block of the job first ends itself (once, see KillOnce)."""
    return KillOnce(make, marker)()(block)


def test_dask_scores_every_sequence_once(dask_client, expected, tmp_path):
    import dask.array as da

    x, y = expected
    blocks = da.from_array(x, chunks=(N // PARTITIONS, STEPS))
    marker = tmp_path / "killed"
    make = minirnn.predict_fn(MODEL, batch_size=BATCH)
    scores = blocks.map_blocks(score_block, make, str(marker), dtype=np.float32,
                               chunks=(N // PARTITIONS, y.shape[1]))
    got = scores.compute()
    assert marker.exists(), "no worker was killed: the retry was not tested"
    assert got.shape == y.shape and got.tobytes() == y.tobytes()
    threads = dask_client.submit(threads_in_a_task, x[:16], pure=False).result()
    assert threads == (1, 1)


# ---- minirnn predict on an input larger than a batch -------------------------------

def test_predict_batches_a_memory_mapped_input(tmp_path, capsys):
    x = tokens(2500, seed=5)
    np.save(tmp_path / "x.npy", x)
    expected = minirnn.load_model(MODEL).predict(x, batch_size=1000)
    for output in ("y.npy", "folder/", "y.npz"):
        status = cli.main(["predict", MODEL, "--input", str(tmp_path / "x.npy"),
                           "--batch-size", "1000", "--output", f"{tmp_path}/{output}"])
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert "memory-mapped), 3 batches of up to 1000" in captured.out
        assert "2500/2500 done" in captured.err                    # the bar's last line
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "folder" / "dense.npy"), expected)
    with np.load(tmp_path / "y.npz") as saved:
        assert saved.files == ["dense"]
        np.testing.assert_array_equal(saved["dense"], expected)
    assert sorted(os.listdir(tmp_path)) == ["folder", "x.npy", "y.npy", "y.npz"]


def test_predict_maps_the_input_and_writes_as_it_goes(tmp_path, capsys, monkeypatch):
    """The input is opened memory-mapped and the outputs are memory-mapped .npy
    files filled batch by batch: memory holds one batch, whatever the input's size."""
    x = tokens(300, seed=6)
    np.save(tmp_path / "x.npy", x)
    opened, made, load, open_memmap = [], [], np.load, np.lib.format.open_memmap
    monkeypatch.setattr(np, "load", lambda path, *a, **k: opened.append(k.get("mmap_mode"))
                        or load(path, *a, **k))
    monkeypatch.setattr(np.lib.format, "open_memmap",
                        lambda *a, **k: made.append(k.get("shape")) or open_memmap(*a, **k))
    assert cli.main(["predict", MODEL, "--input", str(tmp_path / "x.npy"), "--batch-size",
                     "128", "--output", str(tmp_path / "y.npy")]) == 0
    assert "r" in opened and (300, 13) in made   # np.load maps through open_memmap too
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"),
                                  minirnn.load_model(MODEL).predict(x, batch_size=128))
    capsys.readouterr()
    assert cli.main(["predict", MODEL, "--input", str(tmp_path / "x.npy"), "--batch-size",
                     "128", "--output", str(tmp_path / "two" / "y.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
