"""Scoring at scale: a saved model on the workers of Spark or Dask, without TensorFlow.

:func:`predict_fn` gives what Spark's ``pyspark.ml.functions.predict_batch_udf``
takes as ``make_predict_fn``: a picklable factory that, called in a worker
process, returns ``predict(*inputs)`` on NumPy arrays. The factory carries the
model as bytes (its pickle: configuration and arrays, see ``Model.__reduce__``),
so the workers need minirnn and no copy of the file; each worker process builds
the model from those bytes once, through load_model's checks, and keeps it (by
the bytes' digest) for every later task and every factory of the same model.
Dask uses the same factory inside ``map_blocks`` or ``map_partitions``.

Threads: an engine runs one task per core, so a minirnn call that split its
batch over every core would oversubscribe them. In a worker of Spark (inside a
task: the task's CPUs, ``spark.task.cpus``, 1 by default) or of Dask's
distributed scheduler (1: each of a worker's threads runs a task of its own),
``predict`` sets :func:`minirnn.set_num_threads` to that number; ``threads=``
overrides it, and outside an engine the setting is left alone.

May use: the standard library, numpy, :mod:`minirnn.model`,
:mod:`minirnn.parallel.workers`; pyspark and distributed only where the process
already imported them (in their workers), never to bring them in.
"""

import collections
import hashlib
import inspect
import keyword
import numbers
import os
import pickle
import sys
import threading

import numpy as np

from .model import Model, load_model
from .parallel import workers

__all__ = ["predict_fn", "engine_threads"]

_CACHED_MODELS = 8   # models a worker process keeps, least recently used dropped first
_models = collections.OrderedDict()   # digest of the model's bytes -> Model
_models_lock = threading.Lock()


def engine_threads():
    """The threads one task may use in this process, where it is a worker of an
    engine that runs a task per core: Spark's task CPUs (``spark.task.cpus``,
    read from the running task's TaskContext) or 1 in a worker of Dask's
    distributed scheduler; None elsewhere (the caller's setting stays)."""
    if "pyspark" in sys.modules:
        try:
            from pyspark import TaskContext
            context = TaskContext.get()
        except Exception:  # noqa: BLE001 - an old or broken pyspark: not a task
            context = None
        if context is not None:
            try:
                return max(1, int(context.cpus()))
            except Exception:  # noqa: BLE001 - before Spark 3.3: one CPU per task
                return 1
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker
            get_worker()
            return 1
        except (ImportError, ValueError):
            pass
    return None


def _positive_or_none(value, argument):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or \
            value < 1:
        raise ValueError(f"`{argument}` must be a positive integer or None; received "
                         f"{value!r}.")
    return int(value)


def predict_fn(path_or_model, batch_size=None, threads=None):
    """The ``make_predict_fn`` of Spark's ``predict_batch_udf`` for a saved model.

    Args:
        path_or_model: a saved model's file (loaded here, on the driver, with
            ``minirnn.load_model(path, stateful=False)``, so a broken file is
            refused at once) or a :class:`minirnn.Model` that is not stateful.
        batch_size: ``model.predict``'s slices inside each batch the engine hands
            over (None: the engine's batch at once).
        threads: minirnn threads per task in the workers; None: one per task in a
            worker of Spark or Dask (see :func:`engine_threads`), the caller's
            setting elsewhere.

    Returns:
        A picklable factory: ``factory()`` returns ``predict(*inputs)``, which takes
        one NumPy array per model input (its signature has one parameter per
        input, as Spark counts them) and returns the output array, or a dict of
        arrays by output name for a model with several outputs. The model is
        built once per worker process and kept.
    """
    batch_size = _positive_or_none(batch_size, "batch_size")
    threads = _positive_or_none(threads, "threads")
    if isinstance(path_or_model, Model):
        model = path_or_model
        if model.stateful:
            raise ValueError("predict_fn scores whole sequences in batches: the model is "
                             "stateful (each call continues the last); set "
                             "`model.stateful = False` first.")
    elif isinstance(path_or_model, (str, os.PathLike)):
        model = load_model(path_or_model, stateful=False)
    else:
        raise TypeError(f"`path_or_model` must be a model file's path or a minirnn.Model; "
                        f"received {type(path_or_model).__name__}.")
    return _PredictFactory(model, batch_size, threads)


class _PredictFactory:
    """``make_predict_fn`` for one model: pickles as the model's bytes and the
    options; calling it in a worker returns a ``predict`` on the model that the
    process builds once."""

    def __init__(self, model, batch_size, threads):
        self.payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        self.digest = hashlib.sha256(self.payload).hexdigest()
        self.batch_size, self.threads = batch_size, threads
        self.input_names = list(model.input_names)
        self.output_names = list(model.output_names)
        _keep(self.digest, model)  # the driver's own calls need no second copy

    def __repr__(self):
        return (f"<minirnn predict_fn: inputs {self.input_names}, outputs "
                f"{self.output_names}, batch_size={self.batch_size}, "
                f"threads={self.threads}>")

    def model(self):
        """This process' model: built from the bytes the first time, then kept."""
        with _models_lock:
            model = _models.get(self.digest)
            if model is not None:
                _models.move_to_end(self.digest)
                return model
        model = pickle.loads(self.payload)  # checked as load_model checks a file
        if not isinstance(model, Model):
            raise ValueError("predict_fn's payload is not a minirnn model.")
        return _keep(self.digest, model)

    def __call__(self):
        model = self.model()
        batch_size, threads = self.batch_size, self.threads
        output_names = self.output_names

        def predict(*inputs):
            wanted = threads if threads is not None else engine_threads()
            if wanted is not None and workers.get_num_threads() != wanted:
                workers.set_num_threads(wanted)
            x = list(inputs) if len(inputs) > 1 else inputs[0]
            result = model.predict(x, batch_size=batch_size)
            if len(output_names) == 1:
                return result
            return dict(zip(output_names, result))

        predict.__signature__ = inspect.Signature([
            inspect.Parameter(name if name.isidentifier() and not keyword.iskeyword(name)
                              else f"input_{k}",
                              inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for k, name in enumerate(self.input_names)])
        predict.__doc__ = (f"The model's outputs {output_names} on its inputs "
                           f"{self.input_names}, NumPy arrays (batch first).")
        return predict


def _keep(digest, model):
    """Keep ``model`` for its digest (the first one kept wins); returns it."""
    with _models_lock:
        model = _models.setdefault(digest, model)
        _models.move_to_end(digest)
        while len(_models) > _CACHED_MODELS:
            _models.popitem(last=False)
    return model
