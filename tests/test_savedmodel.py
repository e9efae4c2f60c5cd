"""tf.keras 2.x SavedModel folders, read without TensorFlow.

Against tf-keras (fixtures written in one subprocess by tests/savedmodel_fixtures.py):
every layer's arrays equal its get_weights() in order, and the whole model's outputs
equal tf-keras' within 1e-6 (float32) or 1e-12 (float64). On hand-made bytes
(tests/savedmodel_bytes.py): the protocol buffer reader, the sorted string table
and the checkpoint bundle, their CRC-32C, and their refusals. Then refusals of
whole folders (truncated index, bad magic, offsets past a data file, a missing
shard, symbolic links, nesting and sizes) and a fuzz run over mutated folders.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import minirnn
from minirnn.files import bundle, protobuf, read, savedmodel
from minirnn.files.protobuf import Field, Message
from minirnn.files.safety import FileFormatError
from background import module_job
from tests import savedmodel_bytes as W
from tests.conftest import ATOL, RTOL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The fixtures, written by tf-keras in a child process that starts when collection
# ends and runs beside the other tests (tests/background.py); these tests come last.
FIXTURES = module_job("tests.savedmodel_fixtures", ["{folder}/savedmodels"], timeout=900,
                      kernels=False)  # tf-keras alone
pytestmark = pytest.mark.background(FIXTURES)


@pytest.fixture(scope="module")
def folders():
    """The fixture folder (written by the child; or the folder named by
    $SAVEDMODEL_FIXTURES, one tests.savedmodel_fixtures wrote before)."""
    reuse = os.environ.get("SAVEDMODEL_FIXTURES")
    if reuse and os.path.isfile(os.path.join(reuse, "manifest.json")):
        return reuse
    import importlib.util
    for module in ("tensorflow", "tf_keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: the SavedModel fixtures need it")
    result = FIXTURES.result()
    if result.returncode != 0:
        raise RuntimeError("tests.savedmodel_fixtures failed:\n" + result.stderr[-4000:])
    return os.path.join(FIXTURES.folder, "savedmodels")


def _manifest(folders):
    with open(os.path.join(folders, "manifest.json")) as handle:
        return json.load(handle)


NAMES = ["sm_text", "sm_sequential", "sm_gru", "sm_cells", "sm_conv_bn", "sm_two_io",
         "sm_float64", "sm_sharded"]


def _data(folders, name):
    data = np.load(os.path.join(folders, f"{name}.npz"))
    xs = [data[f"x{k}"] for k in range(len(data.files)) if f"x{k}" in data.files]
    ys = [data[f"y{k}"] for k in range(len(data.files)) if f"y{k}" in data.files]
    weights = {}
    for key in data.files:
        if key.startswith("w:"):
            _, layer, k = key.rsplit(":", 2)
            weights.setdefault(layer, {})[int(k)] = data[key]
    weights = {layer: [arrays[k] for k in range(len(arrays))]
               for layer, arrays in weights.items()}
    return xs, ys, weights


def _copy(folders, name, tmp_path):
    target = str(tmp_path / name)
    shutil.copytree(os.path.join(folders, name), target, symlinks=True)
    return target


# ---- against tf-keras ------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_weights_are_get_weights_in_order(folders, name):
    info = _manifest(folders)[name]
    _, _, want = _data(folders, name)
    saved = read(os.path.join(folders, name))
    assert saved.source == {"path": os.path.join(folders, name), "format": "savedmodel",
                            "keras_version": saved.source["keras_version"],
                            "semantics": "keras2"}
    assert saved.source["keras_version"].startswith("2.")
    for layer in info["layers"]:
        got = saved.weights[layer]
        assert len(got) == len(want.get(layer, [])), layer
        for k, (a, b) in enumerate(zip(got, want.get(layer, []))):
            assert a.dtype == b.dtype and a.shape == b.shape, (layer, k)
            np.testing.assert_array_equal(a, b, err_msg=f"{layer} weight {k}")


@pytest.mark.parametrize("name", NAMES)
def test_outputs_match_tf_keras(folders, name):
    dtype = _manifest(folders)[name]["dtype"]
    xs, ys, _ = _data(folders, name)
    model = minirnn.load_model(os.path.join(folders, name))
    assert model.source["format"] == "savedmodel" and model.semantics == "keras2"
    got = model(xs if len(xs) > 1 else xs[0])
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(ys)
    for k, (a, b) in enumerate(zip(got, ys)):
        assert a.shape == b.shape and a.dtype == b.dtype, (k, a.shape, b.shape)
        np.testing.assert_allclose(a, b, atol=ATOL[dtype], rtol=RTOL[dtype],
                                   err_msg=f"{name} output {k}")


def _graph(folder):
    variables = bundle.Bundle(os.path.join(folder, "variables", "variables"), folder)
    return variables, savedmodel._object_graph(variables, folder)


def test_variable_lists_and_structure_agree(folders):
    """Where a folder has the layers' "variables" lists, the order found from the
    layers' structure (the rule for folders without them) is the same."""
    compared = 0
    for name, info in _manifest(folders).items():
        if not info["traced"]:
            continue
        folder = os.path.join(folders, name)
        _, graph = _graph(folder)
        model = savedmodel._children(graph, 0, "the model", folder)
        for child, node in model.items():
            if not child.startswith("layer-"):
                continue
            listed = savedmodel.listed_variables(graph, node, child, folder)
            if listed is None:  # an InputLayer
                continue
            assert savedmodel.tracked_variables(graph, node, child, folder) == listed, \
                (name, child)
            compared += len(listed)
    assert compared > 40


def test_untraced_folders_have_no_lists(folders):
    """save_traces=False folders really exercise the other rule."""
    _, graph = _graph(os.path.join(folders, "sm_gru"))
    for child, node in savedmodel._children(graph, 0, "", "").items():
        if child.startswith("layer-"):
            assert savedmodel.listed_variables(graph, node, child, "") is None


def test_optimizer_slots_and_shards_are_in_the_fixtures(folders):
    variables, _ = _graph(os.path.join(folders, "sm_text"))
    assert any(key.startswith("optimizer/") for key in variables.keys())
    variables, _ = _graph(os.path.join(folders, "sm_sharded"))
    assert variables.shards > 3
    assert any(variables.entry(key)["slices"] for key in variables.keys())


def test_reader_never_imports_tensorflow_or_protobuf(folders):
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'google.protobuf', 'tf_keras', 'keras'):\n"
        "    sys.modules[name] = None\n"
        "import minirnn, numpy as np\n"
        f"model = minirnn.load_model({os.path.join(folders, 'sm_text')!r})\n"
        "print(model(model.example_inputs(2)).shape)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "(2, 3)"


def _move_metadata_into_saved_model(folder):
    """The layout of TensorFlow 2.0 to 2.4: no keras_metadata.pb; each Keras object's
    metadata is the user_object of its node in saved_model.pb's object graph."""
    data = open(os.path.join(folder, "keras_metadata.pb"), "rb").read()
    nodes = protobuf.parse(data, savedmodel._SAVED_METADATA, folder)["nodes"]
    layers = [n for n in nodes if n["node_path"].count(".") == 1]
    root = [n for n in nodes if n["node_path"] == "root"][0]

    def user_object(node):
        return W.field_bytes(4, W.field_bytes(1, node["identifier"]) +
                             W.field_bytes(3, node["metadata"]))

    objects = [W.field_bytes(1, W.field_varint(1, k + 1) +
                             W.field_bytes(2, n["node_path"].split(".")[1]))
               for k, n in enumerate(layers)]
    graph = W.field_bytes(1, b"".join(objects) + user_object(root))
    graph += b"".join(W.field_bytes(1, user_object(n)) for n in layers)
    meta_graph = W.field_bytes(2, b"\x0a\x03abc") + W.field_bytes(7, graph)
    saved = W.field_varint(1, 1) + W.field_bytes(2, meta_graph)
    open(os.path.join(folder, "saved_model.pb"), "wb").write(saved)
    os.remove(os.path.join(folder, "keras_metadata.pb"))


@pytest.mark.parametrize("name", ["sm_text", "sm_two_io"])
def test_tensorflow_24_layout_without_keras_metadata(folders, tmp_path, name):
    folder = _copy(folders, name, tmp_path)
    _move_metadata_into_saved_model(folder)
    xs, ys, _ = _data(folders, name)
    got = minirnn.load_model(folder)(xs if len(xs) > 1 else xs[0])
    for a, b in zip(got if isinstance(got, list) else [got], ys):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


# ---- the protocol buffer reader ------------------------------------------------------

INNER = Message("Inner", {1: Field("number", "int64"), 2: Field("text", "string")})
OUTER = Message("Outer", {
    1: Field("u", "uint64"), 2: Field("i64", "int64"), 3: Field("i32", "int32"),
    4: Field("flag", "bool"), 5: Field("f32", "fixed32"), 6: Field("f64", "fixed64"),
    7: Field("text", "string"), 8: Field("raw", "bytes"),
    9: Field("inner", "message", False, INNER), 10: Field("inners", "message", True, INNER),
    11: Field("numbers", "int64", True), 12: Field("maybe", "int64", default=None)})


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63, 2**64 - 1])
def test_varints(value):
    data = W.varint(value)
    assert protobuf.read_varint(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize("data, problem", [
    (b"\x80", "past the end"), (b"\xff" * 10 + b"\x01", "longer than"),
    (b"\xff" * 9 + b"\x02", "longer than 64 bits"), (b"", "past the end")])
def test_bad_varints(data, problem):
    with pytest.raises(ValueError, match=problem):
        protobuf.read_varint(data, 0, len(data))


def test_every_kind_of_field():
    inner = W.field_varint(1, -5) + W.field_bytes(2, "é")
    data = (W.field_varint(1, 2**64 - 1) + W.field_varint(2, -2**63) + W.field_varint(3, -7)
            + W.field_varint(4, 2) + W.field_fixed32(5, 0xDEADBEEF)
            + W.field_fixed64(6, 2**64 - 2) + W.field_bytes(7, "text")
            + W.field_bytes(8, b"\x00\xff") + W.field_bytes(9, inner)
            + W.field_bytes(10, inner) + W.field_bytes(10, b"")
            + W.field_varint(11, 3) + W.field_bytes(11, W.varint(4) + W.varint(-1))
            # unknown fields of every wire type are skipped
            + W.field_varint(99, 1) + W.field_bytes(98, b"xyz") + W.field_fixed32(97, 1)
            + W.field_fixed64(96, 1)
            + W.field_varint(3, 8))  # a field that is not repeated, again: the last counts
    got = protobuf.parse(data, OUTER, "file")
    assert got == {"u": 2**64 - 1, "i64": -2**63, "i32": 8, "flag": True, "f32": 0xDEADBEEF,
                   "f64": 2**64 - 2, "text": "text", "raw": b"\x00\xff",
                   "inner": {"number": -5, "text": "é"},
                   "inners": [{"number": -5, "text": "é"}, {"number": 0, "text": ""}],
                   "numbers": [3, 4, -1], "maybe": None}
    assert protobuf.parse(b"", OUTER, "file")["inner"] is None


@pytest.mark.parametrize("data, problem", [
    (W.field_bytes(7, b"abc")[:-1], "declares 3 bytes, but only 2 are left"),
    (W.tag(7, 2) + W.varint(2**62), "declares 4611686018427387904 bytes"),
    (W.field_bytes(9, W.field_bytes(2, b"abcdef")[:-2]), "declares 6 bytes"),
    (W.field_fixed32(5, 1)[:-1], "needs 4 bytes"),
    (W.field_fixed64(6, 1)[:-1], "needs 8 bytes"),
    (W.tag(5, 3), "is a group"), (W.tag(5, 4), "is a group"),
    (W.tag(5, 6) + b"\x00", "undefined wire type 6"), (W.tag(5, 7), "undefined wire type 7"),
    (W.field_varint(0, 1), "field number 0"),
    (W.field_varint(7, 1), "Outer.text has wire type 0, expected 2"),
    (W.field_bytes(1, b"\x01"), "Outer.u has wire type 2, expected 0"),
    (W.field_bytes(7, b"\xff\xfe"), "Outer.text is not UTF-8 text"),
    (W.field_bytes(11, b"\x80"), "Outer.numbers: a varint runs past"),
    (W.tag(1, 0) + b"\xff" * 11, "longer than"),
])
def test_protobuf_refusals(data, problem):
    with pytest.raises(FileFormatError, match=r"^file: the thing is not a valid Outer "
                                              r"protocol buffer: .*" + problem):
        protobuf.parse(data, OUTER, "file", "the thing")


def test_deeply_nested_messages_are_refused():
    node = Message("Node", {})
    node.fields[1] = Field("child", "message", False, node)
    data = b""
    for _ in range(protobuf.MAX_DEPTH - 1):
        data = W.field_bytes(1, data)
    assert protobuf.parse(data, node, "f") is not None
    for _ in range(2000):
        data = W.field_bytes(1, data)
    with pytest.raises(FileFormatError, match=f"nested deeper than {protobuf.MAX_DEPTH}"):
        protobuf.parse(data, node, "f")


def test_field_count_is_limited():
    data = W.field_varint(1, 1) * 1000
    assert protobuf.parse(data, OUTER, "f", max_fields=1000)["u"] == 1
    with pytest.raises(FileFormatError, match="too many fields"):
        protobuf.parse(data, OUTER, "f", max_fields=999)
    packed = W.field_bytes(11, b"\x01" * 1000)
    with pytest.raises(FileFormatError, match="too many fields"):
        protobuf.parse(packed, OUTER, "f", max_fields=500)


def test_random_bytes_decode_or_raise():
    rng = random.Random(3)
    good = W.field_bytes(10, W.field_varint(1, 300) + W.field_bytes(2, "abc")) * 3
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[:rng.randrange(len(data) + 1)]
        try:
            protobuf.parse(bytes(data), OUTER, "f")
        except FileFormatError:
            pass


# ---- CRC-32C ------------------------------------------------------------------------

def test_crc32c_known_values():
    assert bundle.crc32c(b"") == 0
    assert bundle.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert bundle.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert bundle.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert bundle.crc32c(bytes(range(32))) == 0x46DD794E
    for value in (0, 1, 0x12345678, 0xFFFFFFFF):
        assert bundle.unmask(bundle.mask(value)) == value
        assert bundle.mask(value) == W.mask(value)


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 10_000, 65_537, 300_001])
def test_crc32c_lanes_match_bit_by_bit(size):
    rng = np.random.default_rng(size)
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    cut = size // 3
    assert bundle.crc32c(data) == W.crc32c(data)
    assert bundle.crc32c(data[cut:], bundle.crc32c(data[:cut])) == bundle.crc32c(data)
    assert bundle.crc32c(data, 0x1234) == bundle.crc32c(data[cut:],
                                                         bundle.crc32c(data[:cut], 0x1234))


def test_crc32c_in_pieces(monkeypatch):
    data = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    whole = bundle.crc32c(data)
    monkeypatch.setattr(bundle, "_CHUNK", 9_999)
    assert bundle.crc32c(data) == whole


# ---- the sorted string table ------------------------------------------------------

def _entries(count=50):
    return [(f"key/{k:04d}/{'x' * (k % 7)}".encode(), f"value {k}".encode() * (k % 3))
            for k in range(count)]


@pytest.mark.parametrize("block_entries, restart_interval", [(8, 4), (1, 1), (100, 16),
                                                            (7, 3)])
def test_table_round_trip(block_entries, restart_interval):
    entries = _entries()
    data = W.table(entries, block_entries, restart_interval)
    assert [(k, bytes(v)) for k, v in bundle.read_table(data)] == entries


def test_empty_table():
    assert bundle.read_table(W.table([])) == []


def _block_table(contents, kind=0):
    """A table whose only data block has the given contents."""
    out = W.with_trailer(contents, kind)
    meta = W.block([])
    meta_handle = W.handle(len(out), len(meta))
    out += W.with_trailer(meta)
    index = W.block([(b"zzz", W.handle(0, len(contents)))], 1)
    index_handle = W.handle(len(out), len(index))
    out += W.with_trailer(index)
    footer = meta_handle + index_handle
    return out + footer + bytes(40 - len(footer)) + struct.pack("<Q", W.MAGIC)


@pytest.mark.parametrize("change, problem", [
    (lambda d: d[:-1], "does not end with the table magic"),
    (lambda d: d[:47], "shorter than the 48-byte footer"),
    (lambda d: d[:-8] + struct.pack("<Q", W.MAGIC ^ 1), "magic number"),
    (lambda d: d[:3] + bytes([d[3] ^ 0x10]) + d[4:], "fails its checksum"),
    (lambda d: d[:-48] + W.handle(0, 0) + W.handle(len(d), 10) + bytes(35)
     + d[-8:], "the index block .* lies outside"),
    (lambda d: d[:-48] + b"\xff" * 40 + d[-8:], "varint is longer"),
])
def test_table_refusals(change, problem):
    data = W.table(_entries(20), 4, 2)
    with pytest.raises(ValueError, match=problem):
        bundle.read_table(change(data))


@pytest.mark.parametrize("contents, problem", [
    (W.block([(b"b", b"1"), (b"a", b"2")]), "not sorted"),
    (W.block([(b"a", b"1"), (b"a", b"2")]), "not sorted"),
    (W.varint(5) + W.varint(1) + W.varint(0) + b"a" + struct.pack("<II", 0, 1),
     "shares 5 bytes of a 0-byte key"),
    (W.varint(0) + W.varint(9) + W.varint(0) + b"a" + struct.pack("<II", 0, 1),
     "runs past the end"),
    (struct.pack("<I", 1000), "1000 restart points"),
    (b"ab", "too short for its restart count"),
    (W.varint(0) + W.varint(1) + W.varint(0) + b"a" + struct.pack("<II", 50, 1),
     "restart point outside"),
])
def test_block_refusals(contents, problem):
    with pytest.raises(ValueError, match=problem):
        bundle.read_table(_block_table(contents))


def test_compressed_blocks_are_refused():
    with pytest.raises(ValueError, match="compressed"):
        bundle.read_table(_block_table(W.block([(b"a", b"1")]), kind=1))


def test_entry_count_is_limited():
    data = W.table(_entries(30))
    with pytest.raises(ValueError, match="more than 20 entries"):
        bundle.read_table(data, max_entries=20)


def test_every_cut_and_many_mutations_of_a_table():
    data = W.table(_entries(12), 4, 2)
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            bundle.read_table(data[:cut])
    rng = random.Random(5)
    for _ in range(2000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            bundle.read_table(bytes(mutated))
        except ValueError:
            pass


# ---- the checkpoint bundle ----------------------------------------------------------

def _write_bundle(folder, index, datas, prefix="variables"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, prefix + ".index"), "wb") as handle:
        handle.write(index)
    for k, data in enumerate(datas):
        name = bundle.data_filename(os.path.join(folder, prefix), k, len(datas))
        with open(name, "wb") as handle:
            handle.write(data)
    return bundle.Bundle(os.path.join(folder, prefix), folder)


def test_bundle_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"layer/{k}": rng.standard_normal((k % 4 + 1, 3)).astype("float32")
               for k in range(12)}
    tensors["double"] = rng.standard_normal((2, 2, 2))
    tensors["half"] = rng.standard_normal(5).astype("float16")
    tensors["scalar"] = np.float32(3.5).reshape(())
    tensors["empty"] = np.zeros((0, 4), "float32")
    tensors["words"] = [b"one", b"", b"three" * 2000]
    tensors["graph"] = [b"\x00\x01 bytes"]
    variables = _write_bundle(str(tmp_path), *W.bundle(tensors, shards=3))
    assert variables.shards == 3
    assert variables.keys() == sorted(tensors)
    for name, value in tensors.items():
        if isinstance(value, list):
            assert variables.strings(name) == value
        else:
            got = variables.tensor(name)
            assert got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_array_equal(got, value)


def test_big_endian_bundle(tmp_path):
    value = np.arange(6, dtype="float64").reshape(2, 3)
    data = value.astype(">f8").tobytes()
    record = W.entry(2, [2, 3], 0, 0, len(data), W.mask(W.crc32c(data)))
    index = W.table([(b"", W.header(1, endianness=1)), (b"x", record)])
    got = _write_bundle(str(tmp_path), index, [data]).tensor("x")
    assert got.dtype == np.float64 and got.dtype.isnative
    np.testing.assert_array_equal(got, value)


def _one_tensor(tmp_path, record, data=bytes(24), header=None):
    index = W.table([(b"", header or W.header()), (b"x", record)])
    return _write_bundle(str(tmp_path), index, [data])


@pytest.mark.parametrize("record, problem", [
    (W.entry(1, [2, 3], size=20), "declares 20 bytes, but a float32 tensor of shape"),
    (W.entry(1, [2, 3], offset=4, size=24), r"\(offset 4, 24 bytes\) lies past the end of "
                                             r"variables.data-00000-of-00001 \(24 bytes\)"),
    (W.entry(1, [6], offset=2**40, size=24), "lies past the end"),
    (W.entry(1, [6], offset=-8, size=24), "lies past the end"),
    (W.entry(1, [6], shard=3, size=24), "lies in data shard 3, but the bundle has 1"),
    (W.entry(1, [6], size=24, crc=12345), "fails its checksum"),
    (W.entry(14, [12], size=24), "dtype bfloat16, which minirnn does not read"),
    (W.entry(20, [], size=24), "dtype resource"),
    (W.entry(77, [], size=24), "dtype number 77"),
    (W.entry(1, [-1, 6], size=24), "has no valid shape"),
    (W.entry(1, [2**31, 2], size=24), "over the limit"),
    (W.field_bytes(2, b"\x12\x02\x08"), "not a valid BundleEntryProto"),
])
def test_entry_refusals(tmp_path, record, problem):
    variables = _one_tensor(tmp_path, record)
    with pytest.raises(FileFormatError, match=f"^{tmp_path}: .*{problem}"):
        variables.tensor("x")


@pytest.mark.parametrize("header, problem", [
    (W.header(0), "declares 0 data shards"), (W.header(100_000), "100000 data shards"),
    (W.header(endianness=5), "unknown endianness 5"),
    (W.header(min_consumer=2), "needs a reader of bundle version 2"),
])
def test_header_refusals(tmp_path, header, problem):
    with pytest.raises(FileFormatError, match=problem):
        _one_tensor(tmp_path, W.entry(1, [6], size=24), header=header)


def test_missing_header_and_missing_shard(tmp_path):
    index = W.table([(b"x", W.entry(1, [6], size=24))])
    with pytest.raises(FileFormatError, match="has no bundle header"):
        _write_bundle(str(tmp_path / "a"), index, [bytes(24)])
    index = W.table([(b"", W.header(2)), (b"x", W.entry(1, [6], size=24))])
    _put(str(tmp_path / "variables.data-00000-of-00002"), bytes(24))
    with pytest.raises(FileFormatError, match="variables.data-00001-of-00002 is missing"):
        _write_bundle(str(tmp_path), index, [])
    with pytest.raises(FileFormatError, match="variables.index is missing"):
        bundle.Bundle(str(tmp_path / "c" / "variables"), str(tmp_path))


def test_limits(tmp_path, monkeypatch):
    tensors = {"x": np.ones(1000, "float32"), "y": np.ones(1000, "float32")}
    index, datas = W.bundle(tensors)
    monkeypatch.setitem(bundle.LIMITS, "index_bytes", 100)
    with pytest.raises(FileFormatError, match="variables.index is .* bytes, over the limit"):
        _write_bundle(str(tmp_path / "a"), index, datas)
    monkeypatch.setitem(bundle.LIMITS, "index_bytes", 2**20)
    monkeypatch.setitem(bundle.safety.LIMITS, "weights_bytes", 6000)
    variables = _write_bundle(str(tmp_path / "b"), index, datas)
    variables.tensor("x")
    with pytest.raises(FileFormatError, match="add up to more than the limit of 6000"):
        variables.tensor("y")


def _sliced(tmp_path, value, boxes):
    """A bundle with ``value`` saved as the slices ``boxes`` ([(start, length|None)])."""
    entries, data = [(b"", W.header())], bytearray()
    for box in boxes:
        index = tuple(slice(s, s + n) if n is not None else slice(None) for s, n in box)
        part = np.ascontiguousarray(value[index]).tobytes()
        key = bundle.slice_key(b"x", [s if n is not None else 0 for s, n in box],
                               [n if n is not None else -1 for s, n in box])
        shape = value[index].shape
        entries.append((key, W.entry(1, shape, 0, len(data), len(part),
                                     W.mask(W.crc32c(part)))))
        data += part
    entries.append((b"x", W.entry(1, value.shape, slices=boxes)))
    return _write_bundle(str(tmp_path), W.table(sorted(entries)), [bytes(data)])


def test_sliced_tensor(tmp_path):
    value = np.arange(12, dtype="float32").reshape(4, 3)
    variables = _sliced(tmp_path, value, [[(0, 1), (0, None)], [(1, 3), (0, 2)],
                                          [(1, 3), (2, 1)]])
    np.testing.assert_array_equal(variables.tensor("x"), value)
    assert variables.keys() == ["x"]  # the slices' own keys are not tensor names


@pytest.mark.parametrize("boxes, problem", [
    ([[(0, 2), (0, 3)], [(1, 3), (0, 3)]], "hold 15 elements; its shape"),
    ([[(0, 2), (0, 3)], [(1, 2), (0, 3)]], "do not cover it exactly once"),
])
def test_slices_must_tile_the_tensor(tmp_path, boxes, problem):
    value = np.arange(12, dtype="float32").reshape(4, 3)
    with pytest.raises(FileFormatError, match=problem):
        _sliced(tmp_path, value, boxes).tensor("x")


@pytest.mark.parametrize("boxes, problem", [
    ([[(0, 4), (1, 3)]], r"slice 0 of tensor 'x' \(start 1, length 3\) lies outside"),
    ([[(0, 4), (-1, 3)]], "lies outside"),
    ([[(0, 4)]], "slice 0 of tensor 'x' has 1 dimensions; the tensor has 2"),
])
def test_slice_refusals(tmp_path, boxes, problem):
    variables = _one_tensor(tmp_path, W.entry(1, [4, 3], slices=boxes))
    with pytest.raises(FileFormatError, match=problem):
        variables.tensor("x")


def test_missing_slice(tmp_path):
    variables = _one_tensor(tmp_path, W.entry(1, [4, 3], slices=[[(0, 4), (0, 3)]]))
    with pytest.raises(FileFormatError, match="slice 0 of tensor 'x' is not in the checkpoint"):
        variables.tensor("x")


def test_slice_keys_are_tensorflows():
    # A key TensorFlow wrote (MaxShardSizePolicy), and the order its encoding keeps.
    assert bundle.slice_key(b"variables/0/.ATTRIBUTES/VARIABLE_VALUE", [0, 0], [5, 120]) == \
        b"\x00variables/0/.ATTRIBUTES/VARIABLE_VALUE\x00\x01\x01\x02\x80\x85\x80\xc0x"
    numbers = sorted({0, 1, -1, 63, 64, -64, -65, 8191, 8192, -8193, 2**40, -2**40,
                      2**63 - 1, -2**63} | set(range(-300, 300, 7)))
    codes = [bundle._ordered_signed(n) for n in numbers]
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    assert bundle._ordered_signed(-1) == b"\x7f" and bundle._ordered_signed(0) == b"\x80"
    assert bundle._ordered_string(b"a\x00b\xff") == b"a\x00\xffb\xff\x00\x00\x01"
    assert bundle._ordered_number(0) == b"\x00" and bundle._ordered_number(300) == \
        b"\x02\x01\x2c"


# ---- whole folders: refusals -------------------------------------------------------

def _bytes_of(path):
    with open(path, "rb") as handle:
        return handle.read()


def _put(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


def test_truncated_index(folders, tmp_path):
    folder = _copy(folders, "sm_text", tmp_path)
    index = os.path.join(folder, "variables", "variables.index")
    data = _bytes_of(index)
    for cut in (0, 10, 47, len(data) // 2, len(data) - 1):
        _put(index, data[:cut])
        with pytest.raises(FileFormatError, match=rf"^{folder}: variables/variables.index "
                                                  r"(is \d+ bytes, shorter|does not end)"):
            minirnn.load_model(folder)


def test_bad_magic(folders, tmp_path):
    folder = _copy(folders, "sm_text", tmp_path)
    index = os.path.join(folder, "variables", "variables.index")
    _put(index, _bytes_of(index)[:-1] + b"\x00")
    with pytest.raises(FileFormatError, match="does not end with the table magic number"):
        minirnn.load_model(folder)


def test_offsets_past_the_data_file(folders, tmp_path):
    folder = _copy(folders, "sm_text", tmp_path)
    shard = os.path.join(folder, "variables", "variables.data-00000-of-00001")
    _put(shard, _bytes_of(shard)[:100])
    with pytest.raises(FileFormatError, match=r"lies past the end of "
                                              r"variables/variables.data-00000-of-00001"):
        minirnn.load_model(folder)


def test_corrupt_data_fails_its_checksum(folders, tmp_path):
    folder = _copy(folders, "sm_conv_bn", tmp_path)
    shard = os.path.join(folder, "variables", "variables.data-00000-of-00001")
    data = bytearray(_bytes_of(shard))
    data[5] ^= 1
    _put(shard, bytes(data))
    with pytest.raises(FileFormatError, match="fails its checksum"):
        minirnn.load_model(folder)


def test_missing_shard(folders, tmp_path):
    folder = _copy(folders, "sm_sharded", tmp_path)
    variables = os.path.join(folder, "variables")
    shard = sorted(n for n in os.listdir(variables) if ".data-" in n)[2]
    os.remove(os.path.join(variables, shard))
    with pytest.raises(FileFormatError, match=f"the data file variables/{shard} is missing"):
        minirnn.load_model(folder)


@pytest.mark.parametrize("member", ["variables/variables.index", "keras_metadata.pb",
                                    "variables/variables.data-00000-of-00001",
                                    "saved_model.pb", "assets/vocab.txt", "variables"])
def test_symbolic_links_are_refused(folders, tmp_path, member):
    folder = _copy(folders, "sm_text", tmp_path)
    path = os.path.join(folder, member)
    if os.path.isdir(path):
        shutil.move(path, str(tmp_path / "elsewhere"))
        os.symlink(str(tmp_path / "elsewhere"), path)
    elif os.path.exists(path):
        shutil.move(path, str(tmp_path / "elsewhere"))
        os.symlink(str(tmp_path / "elsewhere"), path)
    else:
        os.symlink("/etc/passwd", path)
    with pytest.raises(FileFormatError, match=f"{member} is a symbolic link; refused"):
        minirnn.load_model(folder)


def _rewrite_metadata(folder, change):
    member = os.path.join(folder, "keras_metadata.pb")
    nodes = protobuf.parse(_bytes_of(member), savedmodel._SAVED_METADATA, folder)["nodes"]
    for node in nodes:
        change(node)
    _put(member, W.saved_metadata([(n["node_id"], n["node_path"], n["identifier"],
                                    n["metadata"]) for n in nodes]))


def test_lambda_in_metadata_is_refused(folders, tmp_path):
    folder = _copy(folders, "sm_conv_bn", tmp_path)

    def change(node):
        if node["node_path"] == "root":
            metadata = json.loads(node["metadata"])
            layers = metadata["model_config"]["config"]["layers"]
            layer = [lay for lay in layers if lay["class_name"] == "MaxPooling1D"][0]
            layer["class_name"] = "Lambda"
            layer["config"]["function"] = ["4wEAAAAAAAAA", None, None]
            node["metadata"] = json.dumps(metadata)
        elif json.loads(node["metadata"]).get("class_name") == "MaxPooling1D":
            node["metadata"] = node["metadata"].replace("MaxPooling1D", "Lambda")
    _rewrite_metadata(folder, change)
    with pytest.raises(ValueError, match="'Lambda', which is not supported: it runs Python"):
        minirnn.load_model(folder)


def test_subclassed_and_foreign_models_are_refused(folders, tmp_path):
    folder = _copy(folders, "sm_text", tmp_path)

    def subclassed(node):
        if node["node_path"] == "root":
            node["identifier"] = "_tf_keras_model"
            metadata = json.loads(node["metadata"])
            metadata["is_graph_network"] = False
            node["metadata"] = json.dumps(metadata)
    _rewrite_metadata(folder, subclassed)
    with pytest.raises(FileFormatError, match="subclassed Keras model"):
        minirnn.load_model(folder)

    def foreign(node):
        node["identifier"] = "_generic_user_object"
    _rewrite_metadata(folder, foreign)
    with pytest.raises(FileFormatError, match="not.* a Keras model"):
        minirnn.load_model(folder)


def test_class_names_must_agree(folders, tmp_path):
    folder = _copy(folders, "sm_text", tmp_path)

    def change(node):
        if node["node_path"] != "root" and '"class_name": "Dense"' in node["metadata"]:
            node["metadata"] = node["metadata"].replace('"class_name": "Dense"',
                                                        '"class_name": "Conv1D"', 1)
    _rewrite_metadata(folder, change)
    with pytest.raises(FileFormatError, match="is a Dense in the configuration but a Conv1D"):
        minirnn.load_model(folder)


def test_metadata_limits_and_nesting(folders, tmp_path, monkeypatch):
    folder = _copy(folders, "sm_text", tmp_path)
    monkeypatch.setitem(savedmodel.LIMITS, "metadata_bytes", 1000)
    with pytest.raises(FileFormatError, match=r"keras_metadata.pb is \d+ bytes, over the "
                                              r"limit of 1000"):
        minirnn.load_model(folder)
    monkeypatch.undo()
    member = os.path.join(folder, "keras_metadata.pb")
    deep = b""
    for _ in range(5000):  # SavedObject.version is a message: nested, but not read
        deep = W.field_bytes(6, deep)
    _put(member, _bytes_of(member) + W.field_bytes(1, deep))
    minirnn.load_model(folder)  # unknown nesting is skipped, not followed
    _put(member, W.field_bytes(1, W.field_bytes(3, "x" * 50) + W.field_varint(2, 1))[:-3])
    with pytest.raises(FileFormatError, match="keras_metadata.pb is not a valid "
                                              "SavedMetadata protocol buffer"):
        minirnn.load_model(folder)


def test_object_graph_without_variables(folders, tmp_path):
    """A layer whose variables the object graph does not reach is refused by the
    weights check (not silently given none)."""
    folder = _copy(folders, "sm_gru", tmp_path)
    variables = os.path.join(folder, "variables")
    reader = bundle.Bundle(os.path.join(variables, "variables"), folder)
    graph = protobuf.parse(reader.strings(savedmodel.GRAPH_KEY)[0], savedmodel._OBJECT_GRAPH,
                           folder)["nodes"]
    nodes = [([(c["node_id"], c["local_name"].replace("cell", "other"))
               for c in n["children"]], [(a["name"], a["checkpoint_key"])
                                         for a in n["attributes"]]) for n in graph]
    tensors = {key: reader.tensor(key) for key in reader.keys()
               if key != savedmodel.GRAPH_KEY}
    tensors[savedmodel.GRAPH_KEY] = [W.object_graph(nodes)]
    index, datas = W.bundle(tensors)
    _put(os.path.join(variables, "variables.index"), index)
    _put(os.path.join(variables, "variables.data-00000-of-00001"), datas[0])
    with pytest.raises(ValueError, match=r"layer 'gru[_0-9]*' \(GRU\): the configuration "
                                         r"needs 3 weight arrays"):
        minirnn.load_model(folder)


def test_fuzzed_folders_end_in_a_load_or_a_value_error(folders):
    """600 mutated SavedModel folders (bytes and cuts of the index, the data and the
    metadata; JSON fields; bundle entries, the header and the object graph rewritten
    with valid checksums; files removed or made links): each loads or raises
    ValueError."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-m", "tests.fuzz_model_files", folders, "600",
                             "20261207"], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report["counts"], indent=1, sort_keys=True))
    assert not report["failures"], report["failures"]
    kinds = {kind.split("/")[0] for kind in report["counts"]}
    assert kinds == set(__import__("tests.fuzz_model_files").fuzz_model_files.SAVEDMODEL_KINDS)
    assert sum(sum(v.values()) for v in report["counts"].values()) == 600
