"""Mutated model files: every case must end in a clean load or a ValueError.

    python -m tests.fuzz_model_files DIR CASES SEED

Run by tests/test_files.py and tests/test_savedmodel.py in a subprocess, so that a
crash inside a file reader fails the test instead of killing pytest. Mutations, in
turn, of valid fixture files from DIR (.keras zips and .h5 files; those of BASES that
DIR holds, the layers around recurrent ones included), of JSON architectures with
their weights files (PAIRS) and of the tf.keras SavedModel folders in DIR
(SAVEDMODEL_BASES):

- bytes: 1 to 16 random bytes overwritten (in a .keras file, also inside its
  model.weights.h5, re-zipped so that the zip's checksums hold), or the file
  truncated anywhere;
- JSON: one field of the configuration deleted or replaced by another type, an
  extreme number, a long string, a deep nesting, or a class name;
- HDF5 attributes: layer_names / weight_names shuffled, cut, renamed or retyped;
  keras_version and model_config replaced;
- HDF5 shapes: one weight dataset replaced by one of another shape or dtype;
- JSON + weights: the JSON mutated as a configuration, bytes of either file
  overwritten or cut, the weights file's attributes or shapes as above;
- SavedModel folders (tests/savedmodel_fixtures.py): bytes overwritten in, or a cut
  of, variables.index, a data shard or keras_metadata.pb; a JSON field of the
  model's or a layer's Keras metadata; one field of one BundleEntryProto or of the
  bundle header, or one reference or key of the checkpoint's object graph, rewritten
  with valid checksums (so that the reader's later checks are reached too); a file
  removed or replaced by a symbolic link.

A loaded model is also run on a small valid input (ValueError allowed there too).
Prints one JSON line: the counts per mutation and outcome, and any failures.
"""

import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import traceback
import zipfile

import numpy as np

import minirnn

BASES = ["text_bilstm.keras", "merges.h5", "k2_hard.h5", "cells.keras", "seq2seq.h5",
         "k2_cudnn.h5", "timeseries_bn.keras", "tagging.h5"]
BASES += ["layers_crnn.keras", "k2_layers_text.h5", "attention_text.keras", "mha_masks.h5",
          "k2_attention_seq2seq.h5", "k2_layers_crnn.h5"]  # the layers around RNNs
SAVEDMODEL_BASES = ["sm_text", "sm_cells", "sm_conv_bn", "sm_two_io", "sm_sharded",
                    "sm_sequential"]
# JSON architectures with their weights files (<name>.json, <name>.weights.h5).
PAIRS = ["text_bilstm", "k2_bidir", "attention_text", "k2_layers_text"]
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
    """(mutation kind, path of the mutated file or folder)."""
    files = [b for b in BASES if os.path.isfile(os.path.join(directory, b))]
    folders = [b for b in SAVEDMODEL_BASES if os.path.isdir(os.path.join(directory, b))]
    pairs = [b for b in PAIRS if os.path.isfile(os.path.join(directory, b + ".json"))]
    base = rng.choice(files + folders + pairs)
    if base in folders:
        return savedmodel_case(os.path.join(directory, base), rng, scratch)
    if base in pairs:
        return pair_case(directory, base, rng, scratch)
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


# ---- JSON architectures with their weights -------------------------------------------

def pair_case(directory, base, rng, scratch):
    """A mutated copy of <base>.json and <base>.weights.h5: (kind, (json, weights))."""
    config = os.path.join(scratch, "case.json")
    weights = os.path.join(scratch, "case.weights.h5")
    shutil.copy(os.path.join(directory, base + ".json"), config)
    shutil.copy(os.path.join(directory, base + ".weights.h5"), weights)
    kind = rng.choice(["json", "bytes", "truncate", "h5-attributes", "h5-shapes"])
    if kind == "json":
        with open(config) as handle:
            mutated = mutate_json(json.load(handle), rng)
        with open(config, "w") as handle:
            json.dump(mutated, handle)
    elif kind in ("bytes", "truncate"):
        member = rng.choice([config, weights])
        data = bytearray(open(member, "rb").read())
        if kind == "bytes":
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = data[:rng.randrange(len(data) + 1)]
        open(member, "wb").write(bytes(data))
    else:
        _h5_mutation(weights, rng, kind[3:])
    return f"{kind}/json+weights", (config, weights)


# ---- SavedModel folders ---------------------------------------------------------------

SAVEDMODEL_KINDS = ["bytes", "truncate", "json", "entry", "graph", "files"]


def savedmodel_case(source, rng, scratch):
    """A mutated copy of the SavedModel folder ``source``: (kind, its path)."""
    target = os.path.join(scratch, "case_savedmodel")
    if os.path.lexists(target):
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    kind = rng.choice(SAVEDMODEL_KINDS)
    variables = os.path.join(target, "variables")
    if kind in ("bytes", "truncate"):
        shards = sorted(n for n in os.listdir(variables) if ".data-" in n)
        name = rng.choice(["variables/variables.index", "keras_metadata.pb",
                           "variables/" + rng.choice(shards)])
        member = os.path.join(target, name)
        data = bytearray(open(member, "rb").read())
        if kind == "bytes" and data:
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = data[:rng.randrange(len(data) + 1)]
        open(member, "wb").write(bytes(data))
    elif kind == "json":
        _mutate_metadata(target, rng)
    elif kind == "entry":
        _mutate_entry(variables, rng)
    elif kind == "graph":
        _mutate_graph(variables, rng)
    else:
        _mutate_files(target, rng)
    return f"{kind}/savedmodel", target


def _mutate_metadata(target, rng):
    """One JSON field of the model's or of a layer's metadata, re-encoded."""
    from minirnn.files import protobuf, savedmodel
    from tests import savedmodel_bytes as W
    member = os.path.join(target, "keras_metadata.pb")
    nodes = protobuf.parse(open(member, "rb").read(), savedmodel._SAVED_METADATA, member)
    nodes = nodes["nodes"]
    node = nodes[0] if rng.random() < 0.5 else rng.choice(nodes)
    metadata = json.loads(node["metadata"])
    if node["node_path"] == "root" and rng.random() < 0.8:
        metadata["model_config"] = mutate_json(metadata["model_config"], rng)
    else:
        metadata = mutate_json(metadata, rng)
    node["metadata"] = json.dumps(metadata)
    open(member, "wb").write(W.saved_metadata(
        [(n["node_id"], n["node_path"], n["identifier"], n["metadata"]) for n in nodes]))


def _read_index(variables):
    from minirnn.files import bundle
    data = open(os.path.join(variables, "variables.index"), "rb").read()
    return [(bytes(k), bytes(v)) for k, v in bundle.read_table(data)]


def _write_index(variables, entries):
    from tests import savedmodel_bytes as W
    open(os.path.join(variables, "variables.index"), "wb").write(W.table(sorted(entries)))


def _encode_entry(entry):
    from tests import savedmodel_bytes as W
    dims = [d["size"] for d in entry["shape"]["dim"]] if entry["shape"] else []
    slices = [[(e["start"], e["length"]) for e in spec["extent"]] for spec in entry["slices"]]
    return W.entry(entry["dtype"], dims, entry["shard_id"], entry["offset"], entry["size"],
                   entry["crc32c"], slices)


def _mutate_entry(variables, rng):
    """One field of one BundleEntryProto (or of the header), or an entry removed."""
    from minirnn.files import bundle, protobuf
    from tests import savedmodel_bytes as W
    entries = _read_index(variables)
    k = rng.randrange(len(entries))
    key, value = entries[k]
    if key == b"":
        header = protobuf.parse(value, bundle._HEADER, "index")
        field = rng.choice(["num_shards", "endianness", "min_consumer", "remove"])
        if field == "remove":
            del entries[k]
        else:
            number = rng.choice([0, 1, 2, 3, 5, 100000, -1, 2**31 - 1])
            shards = number if field == "num_shards" else header["num_shards"]
            endianness = number if field == "endianness" else header["endianness"]
            entries[k] = (key, W.header(shards, endianness,
                                        min_consumer=number if field == "min_consumer" else 0))
        _write_index(variables, entries)
        return
    entry = protobuf.parse(value, bundle._ENTRY, "index")
    field = rng.choice(["dtype", "shape", "shard_id", "offset", "size", "crc32c", "slices",
                        "remove", "key"])
    if field == "remove":
        del entries[k]
    elif field == "key":
        entries[k] = (key + b"x", value)
    else:
        if field == "dtype":
            entry["dtype"] = rng.choice([0, 1, 2, 3, 7, 9, 10, 14, 19, 20, 21, 99])
        elif field == "shape":
            dims = [d["size"] for d in entry["shape"]["dim"]] if entry["shape"] else []
            choice = rng.randrange(4)
            if choice == 0 and dims:
                dims[rng.randrange(len(dims))] += rng.choice([-1, 1, -10, 2**40])
            elif choice == 1:
                dims.append(rng.choice([1, 2, 0]))
            elif choice == 2:
                dims = dims[1:]
            else:
                dims = [rng.choice([-1, 0, 2**31, 2**62])] * max(len(dims), 1)
            entry["shape"] = {"dim": [{"size": n} for n in dims]}
        elif field == "slices":
            dims = [d["size"] for d in entry["shape"]["dim"]] if entry["shape"] else [1]
            entry["slices"] = [{"extent": [{"start": rng.choice([0, 1, -1]),
                                            "length": rng.choice([None, 0, 1, n, n + 1])}
                                           for n in dims]}
                               for _ in range(rng.randint(1, 3))]
        else:
            entry[field] = entry[field] + rng.choice([1, -1, 4, 1000, 2**40, -2**40]) \
                if field != "crc32c" else rng.randrange(2**32)
            if field == "crc32c":
                entry[field] &= 0xFFFFFFFF
        entries[k] = (key, _encode_entry(entry))
    _write_index(variables, entries)


def _mutate_graph(variables, rng):
    """One child reference, local name or checkpoint key of the object graph, the
    graph written again (appended to shard 0, its entry pointed there)."""
    from minirnn.files import bundle, protobuf, savedmodel
    from tests import savedmodel_bytes as W
    reader = bundle.Bundle(os.path.join(variables, "variables"), variables)
    graph = protobuf.parse(reader.strings(savedmodel.GRAPH_KEY)[0],
                           savedmodel._OBJECT_GRAPH, "graph")["nodes"]
    keys = reader.keys()
    nodes = [([(c["node_id"], c["local_name"]) for c in n["children"]],
              [(a["name"], a["checkpoint_key"]) for a in n["attributes"]]) for n in graph]
    with_children = [k for k, n in enumerate(nodes) if n[0]]
    with_keys = [k for k, n in enumerate(nodes) if n[1]]
    choice = rng.randrange(6)
    if choice < 3 or not with_keys:
        k = rng.choice(with_children)
        children = nodes[k][0]
        c = rng.randrange(len(children))
        node_id, name = children[c]
        if choice == 0:
            children[c] = (rng.choice([0, k, -1, len(nodes), 2**31 - 1,
                                       rng.randrange(len(nodes))]), name)
        elif choice == 1:
            children[c] = (node_id, rng.choice(["variables", "0", "1", "7", "00", "-1", "x",
                                                "cell", "layer-0", "9" * 12, ""]))
        else:
            del children[c]
    else:
        k = rng.choice(with_keys)
        attributes = nodes[k][1]
        name, key = attributes[0]
        if choice == 3:
            attributes[0] = (name, rng.choice(keys + ["missing", savedmodel.GRAPH_KEY]))
        elif choice == 4:
            attributes[0] = ("OTHER", key)
        else:
            attributes.append((name, rng.choice(keys)))
    data, crc = W.string_tensor_bytes([W.object_graph(nodes)])
    shard = bundle.data_filename(os.path.join(variables, "variables"), 0, reader.shards)
    offset = os.path.getsize(shard)
    with open(shard, "ab") as handle:
        handle.write(data)
    entries = _read_index(variables)
    for n, (key, value) in enumerate(entries):
        if key == savedmodel.GRAPH_KEY.encode():
            entries[n] = (key, W.entry(7, [], 0, offset, len(data), crc))
    _write_index(variables, entries)


def _mutate_files(target, rng):
    """A file removed, or replaced by a symbolic link to itself, or a link added."""
    variables = os.path.join(target, "variables")
    members = ["saved_model.pb", "keras_metadata.pb", "variables/variables.index"] + \
        ["variables/" + n for n in sorted(os.listdir(variables)) if ".data-" in n]
    member = os.path.join(target, rng.choice(members))
    choice = rng.randrange(3)
    if choice == 0:
        os.remove(member)
    elif choice == 1:
        moved = member + ".moved"
        os.rename(member, moved)
        os.symlink(moved, member)
    else:
        os.makedirs(os.path.join(target, "assets"), exist_ok=True)
        os.symlink("/etc/passwd", os.path.join(target, "assets", "vocabulary.txt"))


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
            if os.environ.get("FUZZ_KEEP") and isinstance(path, tuple):
                for member in path:
                    shutil.copy(member, os.environ["FUZZ_KEEP"] + os.path.basename(member))
                print(case, kind, file=sys.stderr, flush=True)
            elif os.environ.get("FUZZ_KEEP"):  # keep the case that is about to run
                keep = os.environ["FUZZ_KEEP"] + os.path.splitext(path)[1]
                if os.path.isdir(path):
                    if os.path.lexists(keep):
                        shutil.rmtree(keep)
                    shutil.copytree(path, keep, symlinks=True)
                else:
                    shutil.copy(path, keep)
                print(case, kind, file=sys.stderr, flush=True)
            outcome = "loaded"
            signal.alarm(SECONDS_PER_CASE)
            try:
                model = minirnn.load_model(*path) if isinstance(path, tuple) else \
                    minirnn.load_model(path)
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
