"""The Keras side of ``minirnn verify --model``, run in a process of its own.

    python keras_process.py JOB.json

Keras 3 and tf-keras (Keras 2, for the files Keras 2 wrote) cannot share a
process, and neither belongs in the command's own: the command writes the inputs
to .npz files and a JOB.json, starts this file as a script in a fresh
interpreter (so nothing of minirnn is imported here), and reads the outputs back.

JOB.json: {"model": path, "weights": path or null (with a JSON architecture),
"engine": "keras" | "tf_keras", "inputs": [npz, ...],
"outputs": [npz, ...], "result": path}. Each input .npz holds the model's inputs
as arr_0, arr_1, ... in order; each output .npz gets the model's outputs the same
way, from the eager call ``model(x, training=False)``. RESULT.json says
{"status": "ok" | "unavailable" | "error", "message", "keras_version"}.

May use: numpy, keras and tf_keras.
"""

import json
import os
import sys
import tempfile
import zipfile

ENGINES = {"keras": "Keras 3", "tf_keras": "tf-keras (Keras 2)"}


def import_engine(engine):
    """The Keras module of ``engine``: keras (Keras 3) or tf_keras (Keras 2)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if engine == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras as keras
    else:
        import keras
    return keras


def _zip_folder(folder, workdir):
    """An unzipped .keras folder zipped again (Keras loads .keras files only)."""
    path = os.path.join(workdir, "model.keras")
    with zipfile.ZipFile(path, "w") as archive:
        for root, _, names in os.walk(folder):
            for name in names:
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, folder))
    return path


def load_keras_model(keras, engine, path, workdir, weights=None):
    """The saved model loaded by Keras itself (no training configuration; Keras 3's
    safe mode, so a file's Lambda code is not run). A SavedModel folder loads with
    tf-keras as it is; ``weights`` makes ``path`` a JSON architecture, built with
    model_from_json and given its weights with load_weights."""
    if weights is not None:
        with open(path) as handle:
            text = handle.read()
        model = keras.models.model_from_json(text)
        model.load_weights(weights)
        return model
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return keras.models.load_model(path, compile=False)
    if os.path.isdir(path):
        path = _zip_folder(path, workdir)
    if engine == "tf_keras":
        return keras.models.load_model(path, compile=False)
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def call(model, arrays):
    """The eager call on a list of input arrays; the outputs as a list of arrays."""
    import numpy as np

    result = model(arrays if len(arrays) > 1 else arrays[0], training=False)
    if isinstance(result, dict):
        result = [result[name] for name in model.output_names]
    if not isinstance(result, (list, tuple)):
        result = [result]
    return [np.asarray(value) for value in result]


def _write(path, result):
    with open(path, "w") as handle:
        json.dump(result, handle)


def main(job_path):
    with open(job_path) as handle:
        job = json.load(handle)
    try:
        keras = import_engine(job["engine"])
    except Exception as error:  # not installed, or broken
        _write(job["result"], {"status": "unavailable",
                               "message": f"{type(error).__name__}: {error}"})
        return 0
    import numpy as np

    try:
        with tempfile.TemporaryDirectory() as workdir:
            model = load_keras_model(keras, job["engine"], job["model"], workdir,
                                     job.get("weights"))
        for source, target in zip(job["inputs"], job["outputs"]):
            with np.load(source) as data:
                arrays = [data[f"arr_{k}"] for k in range(len(data.files))]
            np.savez(target, *call(model, arrays))
    except Exception as error:  # what Keras says about the file or the inputs
        _write(job["result"], {"status": "error", "keras_version": keras.__version__,
                               "message": f"{type(error).__name__}: {error}"})
        return 0
    _write(job["result"], {"status": "ok", "keras_version": keras.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
