"""Mutated model files: every case must end in a clean load or a ValueError.

    python -m tests.fuzz_model_files DIR CASES SEED

Run by tests/test_files.py in a subprocess, so that a crash inside a file reader
fails the test instead of killing pytest. Mutations, in turn, of valid fixture files
from DIR (.keras zips and .h5 files):

- bytes: 1 to 16 random bytes overwritten (in a .keras file, also inside its
  model.weights.h5, re-zipped so that the zip's checksums hold), or the file
  truncated anywhere;
- JSON: one field of the configuration deleted or replaced by another type, an
  extreme number, a long string, a deep nesting, or a class name;
- HDF5 attributes: layer_names / weight_names shuffled, cut, renamed or retyped;
  keras_version and model_config replaced;
- HDF5 shapes: one weight dataset replaced by one of another shape or dtype.

A loaded model is also run on a small valid input (ValueError allowed there too).
Prints one JSON line: the counts per mutation and outcome, and any failures.
"""

import io
import json
import os
import random
import signal
import sys
import tempfile
import traceback
import zipfile

import numpy as np

import minirnn

BASES = ["text_bilstm.keras", "merges.h5", "k2_hard.h5", "cells.keras", "seq2seq.h5",
         "k2_cudnn.h5", "timeseries_bn.keras", "tagging.h5"]
SECONDS_PER_CASE = 20


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _replacement(rng):
    return rng.choice([
        None, -1, 0, 1, 2**40, -2**40, 1e308, -0.5, 3.5, "", "x" * 5000, "LSTM", "Lambda",
        "keras.src.ops.numpy", True, False, [], {}, [None], [[1, 2, 3]], {"a": 1},
        {"class_name": "Lambda", "config": {}}, ["x", 0, 0], [-1, -1], "float16",
        "mixed_float16", "hard_sigmoid", "causal", {"class_name": "__keras_tensor__",
                                                     "config": {"keras_history": ["z", 9, 9]}},
    ])


def _paths(value, prefix=()):
    """Every path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, prefix + (k,))


def mutate_json(config, rng):
    config = json.loads(json.dumps(config))
    paths = [p for p in _paths(config) if p]
    path = rng.choice(paths)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[key]
    else:
        parent[key] = _replacement(rng)
    return config


def _rewrite_zip(data, config):
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "config.json":
                content = json.dumps(config).encode()
            target.writestr(info.filename, content)
    return out.getvalue()


def _h5_mutation(path, rng, kind):
    if kind == "bytes":  # inside the HDF5 file of a .keras zip, which is then re-zipped
        data = bytearray(open(path, "rb").read())
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        open(path, "wb").write(bytes(data))
        return
    import h5py
    with h5py.File(path, "r+") as f:
        if kind == "attributes":
            groups = []
            f.visititems(lambda n, o: groups.append(o) if isinstance(o, h5py.Group) else None)
            groups.append(f)
            candidates = [(g, a) for g in groups for a in g.attrs.keys()]
            group, attribute = rng.choice(candidates)
            value = group.attrs[attribute]
            choice = rng.randrange(6)
            if choice == 0 and hasattr(value, "__len__") and len(value) > 1:
                value = list(value)
                rng.shuffle(value)
                group.attrs[attribute] = value
            elif choice == 1 and hasattr(value, "__len__") and len(value) > 0:
                group.attrs[attribute] = list(value)[:-1]
            elif choice == 2:
                group.attrs[attribute] = np.array([b"missing/name:0"])
            elif choice == 3:
                group.attrs[attribute] = rng.choice([3, 2.5, b"", b"{}", b"[1,2", b"3.0",
                                                     np.zeros((2, 2))])
            elif choice == 4:
                del group.attrs[attribute]
            else:
                group.attrs[attribute] = b"\xff\xfe not utf-8"
        else:
            datasets = []
            f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset)
                         else None)
            name = rng.choice(datasets)
            old = f[name]
            shape = list(old.shape) or [1]
            choice = rng.randrange(5)
            if choice == 0:
                shape[rng.randrange(len(shape))] += rng.choice([-1, 1, 7])
                new = np.ones([max(n, 0) for n in shape], old.dtype)
            elif choice == 1:
                new = np.ones(shape + [2], old.dtype)
            elif choice == 2:
                new = np.ones(shape, rng.choice(["int32", "float64", "float16", "uint8"]))
            elif choice == 3:
                new = np.array(b"text")
            else:
                new = np.ones(shape[1:] or [1], old.dtype)
            del f[name]
            f.create_dataset(name, data=new)


def make_case(directory, rng, scratch):
    """(mutation kind, path of the mutated file)."""
    base = rng.choice(BASES)
    with open(os.path.join(directory, base), "rb") as handle:
        data = handle.read()
    suffix = os.path.splitext(base)[1]
    target = os.path.join(scratch, "case" + suffix)
    kind = rng.choice(["bytes", "truncate", "json", "h5-attributes", "h5-shapes", "h5-bytes"])
    if kind == "bytes":
        data = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "json" and suffix == ".keras":
        config = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
        data = _rewrite_zip(data, mutate_json(config, rng))
    with open(target, "wb") as handle:
        handle.write(data)
    if kind == "json" and suffix == ".h5":
        import h5py
        with h5py.File(target, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            f.attrs["model_config"] = json.dumps(mutate_json(config, rng)).encode()
    elif kind == "h5-bytes" and suffix == ".h5":
        kind = "bytes"
        data = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with open(target, "wb") as handle:
            handle.write(bytes(data))
    elif kind.startswith("h5-"):
        if suffix == ".keras":
            archive = zipfile.ZipFile(io.BytesIO(data))
            weights = os.path.join(scratch, "weights.h5")
            with open(weights, "wb") as handle:
                handle.write(archive.read("model.weights.h5"))
            _h5_mutation(weights, rng, kind[3:])
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as rebuilt:
                for info in archive.infolist():
                    content = archive.read(info.filename)
                    if info.filename == "model.weights.h5":
                        with open(weights, "rb") as handle:
                            content = handle.read()
                    rebuilt.writestr(info.filename, content)
            with open(target, "wb") as handle:
                handle.write(out.getvalue())
        else:
            _h5_mutation(target, rng, kind[3:])
    return f"{kind}{suffix}", target


def run(directory, cases, seed):
    rng = random.Random(seed)
    counts, failures = {}, []
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as scratch:
        case = 0
        while case < cases:
            try:
                kind, path = make_case(directory, rng, scratch)
            except Exception:  # a mutation h5py cannot write: draw another
                continue
            case += 1
            if os.environ.get("FUZZ_KEEP"):  # keep the case that is about to run
                import shutil
                shutil.copy(path, os.environ["FUZZ_KEEP"] + os.path.splitext(path)[1])
                print(case, kind, file=sys.stderr, flush=True)
            outcome = "loaded"
            signal.alarm(SECONDS_PER_CASE)
            try:
                model = minirnn.load_model(path)
                if case % 4 == 0:
                    outcome = "loaded+ran"
                    model(model.example_inputs(batch_size=2, timesteps=5))
            except Hang:
                outcome = "hang"
                failures.append((case, kind, "hang"))
            except ValueError:
                outcome = "ValueError" if outcome == "loaded" else "loaded, ValueError on run"
            except Exception as error:  # anything else is a failure of the contract
                outcome = "other exception"
                failures.append((case, kind, f"{type(error).__name__}: {error}",
                                 traceback.format_exc()[-1500:]))
            finally:
                signal.alarm(0)
            counts.setdefault(kind, {}).setdefault(outcome, 0)
            counts[kind][outcome] += 1
    return {"cases": cases, "seed": seed, "counts": counts, "failures": failures[:20],
            "failed": len(failures)}


if __name__ == "__main__":
    directory, cases, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(directory, cases, seed)))
