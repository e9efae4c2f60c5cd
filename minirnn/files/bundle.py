"""TensorFlow checkpoint bundles: ``<prefix>.index`` and ``<prefix>.data-NNNNN-of-MMMMM``.

A SavedModel keeps its variables in such a bundle (``variables/variables.index``
and ``variables/variables.data-00000-of-00001``). This module reads one without
TensorFlow.

The index is a *sorted string table* in LevelDB's format, which TensorFlow copied:

- The file ends with a 48-byte footer: the block handles of the meta-index block and
  of the index block (a handle is two varints, offset and size), zero padding up to
  40 bytes, then the magic number 0xdb4775248b80fb57 as 8 little-endian bytes.
- A block is followed by a 5-byte trailer: its compression (0 = none; TensorFlow
  writes bundle indexes uncompressed) and the masked CRC-32C of the block and that
  type byte. The mask is ``((crc >> 15 | crc << 17) + 0xa282ead8) mod 2**32``.
- A block holds entries, then ``num_restarts`` little-endian uint32 offsets of the
  *restart points* and that number as a last uint32. Each entry is three varints
  (``shared``, ``non_shared``, ``value_length``), the ``non_shared`` bytes of its key
  and its value; the key is the first ``shared`` bytes of the previous key followed
  by those bytes (``shared`` is 0 at a restart point).
- The index block maps a key at or after the last key of each data block to that
  block's handle; the data blocks, in that order, hold the entries, keys sorted.

In a bundle the key "" holds a ``BundleHeaderProto`` (number of data shards,
endianness, version); every other key is a tensor's name and holds a
``BundleEntryProto``: dtype, shape, shard, offset and size in that shard's data
file, and the masked CRC-32C of those bytes. A numeric tensor is stored as its raw
bytes in C order; a string tensor as the varint64 lengths of its elements, the
masked CRC-32C of those lengths (as uint32s), then the elements' bytes. A tensor
saved in slices (TensorFlow cuts variables larger than a shard when a save sets a
maximum shard size) has no bytes of its own: its entry lists the slices' extents,
and each slice is a tensor of its own under the key :func:`slice_key` builds.

Every length, offset and count is checked before it is used, block and tensor
checksums are verified, and every problem raises
:class:`~minirnn.files.safety.FileFormatError` naming the file (a ValueError from
:func:`read_table`, which is given bytes; :class:`Bundle` adds the file).

May use: numpy and its own modules.
"""

import math
import os
import struct

import numpy as np

from . import protobuf, safety
from .protobuf import Field, Message
from .safety import fail

__all__ = ["Bundle", "read_table", "crc32c", "mask", "unmask", "slice_key", "data_filename",
           "LIMITS", "MAGIC"]

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5

LIMITS = {
    "index_bytes": 256 * 2**20,   # the .index file
    "entries": 1_000_000,         # keys in the index
    "key_bytes": 64 * 2**10,      # one key
    "shards": 10_000,             # data files
    "string_bytes": 256 * 2**20,  # one string tensor (the object graph is one)
    "slices": 100_000,            # slices of one partitioned tensor
}

# ---- CRC-32C (Castagnoli), as LevelDB and TensorFlow use it -----------------------

_POLY = 0x82F63B78  # the Castagnoli polynomial, bit-reversed


def _make_table():
    table = np.zeros(256, np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY if crc & 1 else 0)
        table[byte] = crc
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]
_SMALL = 4096  # shorter inputs are checksummed byte by byte
_CHUNK = 64 * 2**20  # longer ones a piece at a time


def crc32c(data, crc=0):
    """The CRC-32C of ``data`` (bytes-like), continuing from ``crc`` (the CRC of the
    bytes before, 0 for none), like TensorFlow's crc32c::Extend.

    Long inputs are cut into equal *lanes* that NumPy checksums side by side (one
    byte of every lane per step); the lanes' registers are then joined in order.
    That works because the CRC register is linear over GF(2): the register after
    ``A + B`` is the register after ``A`` moved through ``len(B)`` zero bytes, XOR
    the register after ``B`` started from zero. Starting from the register ``r``
    is the same as starting from zero with ``r`` XORed into the first 4 bytes."""
    data = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else \
        data.reshape(-1).view(np.uint8)
    if len(data) > _CHUNK:  # in pieces, so that the copy below stays small
        for start in range(0, len(data), _CHUNK):
            crc = crc32c(data[start:start + _CHUNK], crc)
        return crc
    register = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
    if len(data) < _SMALL:
        table = _TABLE_LIST
        for byte in data.tobytes():
            register = (register >> 8) ^ table[(register ^ byte) & 0xFF]
        return register ^ 0xFFFFFFFF
    lane = max(64, math.isqrt(len(data) // 64))
    lanes = -(-len(data) // lane)
    padding = lanes * lane - len(data)
    padded = np.zeros(lanes * lane, np.uint8)  # zeros in front leave a zero register
    padded[padding:] = data
    padded[padding:padding + 4] ^= np.frombuffer(struct.pack("<I", register), np.uint8)
    matrix = padded.reshape(lanes, lane)
    registers = np.zeros(lanes, np.uint32)
    for start in range(0, lane, 256):  # byte i of every lane, 256 columns at a time
        for row in np.ascontiguousarray(matrix[:, start:start + 256].T):
            registers = (registers >> 8) ^ _TABLE[(registers ^ row) & 0xFF]
    shift = _zero_shift(lane)
    joined = 0
    for value in registers.tolist():
        joined = (shift[0][joined & 0xFF] ^ shift[1][(joined >> 8) & 0xFF] ^
                  shift[2][(joined >> 16) & 0xFF] ^ shift[3][joined >> 24]) ^ value
    return joined ^ 0xFFFFFFFF


def _zero_shift(count):
    """Four 256-entry tables: register -> the register after ``count`` zero bytes,
    one table per byte of the register (the map is linear, so the four parts XOR)."""
    basis = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
    for _ in range(count):
        basis = (basis >> 8) ^ _TABLE[basis & 0xFF]
    values = np.arange(256)
    tables = []
    for part in range(4):
        table = np.zeros(256, np.uint32)
        for bit in range(8):
            table ^= np.where(values & (1 << bit), basis[8 * part + bit], np.uint32(0))
        tables.append(table.tolist())
    return tables


def mask(crc):
    """LevelDB's masked CRC, stored so that a CRC of bytes holding CRCs stays useful."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def unmask(masked):
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ---- the sorted string table -----------------------------------------------------

def _varint(data, pos, end, what):
    try:
        return protobuf.read_varint(data, pos, end)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None


def _handle(data, pos, end, what):
    """A block handle: (offset, size, position after it)."""
    offset, pos = _varint(data, pos, end, what)
    size, pos = _varint(data, pos, end, what)
    return offset, size, pos


def _block(data, offset, size, limit, what):
    """The contents of the block at ``offset`` (its trailer checked), as a memoryview."""
    if offset > limit or size > limit - offset or TRAILER_SIZE > limit - offset - size:
        raise ValueError(f"{what} (offset {offset}, {size} bytes) lies outside the file's "
                         f"{limit} bytes of blocks")
    kind = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    actual = crc32c(data[offset:offset + size + 1])
    if unmask(stored) != actual:
        raise ValueError(f"{what} fails its checksum (stored {unmask(stored):#010x}, "
                         f"computed {actual:#010x})")
    if kind != 0:
        raise ValueError(f"{what} is compressed (type {kind}); TensorFlow writes "
                         "checkpoint indexes uncompressed, and minirnn reads only those")
    return data[offset:offset + size]


class _TooMany(ValueError):
    """More entries than the caller allows."""


def _entries(block, what, max_entries):
    """The (key, value) pairs of one block, keys rebuilt from their shared prefixes;
    _TooMany past ``max_entries``."""
    size = len(block)
    if size < 4:
        raise ValueError(f"{what} is {size} bytes, too short for its restart count")
    restarts = struct.unpack_from("<I", block, size - 4)[0]
    if restarts > (size - 4) // 4:
        raise ValueError(f"{what} declares {restarts} restart points, more than fit in it")
    end = size - 4 - 4 * restarts
    points = set(struct.unpack_from(f"<{restarts}I", block, end)) if restarts else set()
    if any(point >= max(end, 1) for point in points):
        raise ValueError(f"{what} has a restart point outside its entries")
    entries, key, pos = [], b"", 0
    while pos < end:
        if len(entries) >= max_entries:
            raise _TooMany(f"{what} holds more than {max_entries} entries")
        start = pos
        shared, pos = _varint(block, pos, end, what)
        unshared, pos = _varint(block, pos, end, what)
        length, pos = _varint(block, pos, end, what)
        if shared > len(key):
            raise ValueError(f"{what}: an entry shares {shared} bytes of a {len(key)}-byte key")
        if start in points and shared:
            raise ValueError(f"{what}: the entry at a restart point shares a key prefix")
        if unshared > end - pos or length > end - pos - unshared:
            raise ValueError(f"{what}: an entry runs past the end of the block")
        if shared + unshared > LIMITS["key_bytes"]:
            raise ValueError(f"{what}: a key is longer than {LIMITS['key_bytes']} bytes")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def read_table(data, what="the table", max_entries=None):
    """Every (key, value) of a sorted string table held in ``data``, in key order.

    Keys are bytes; values are memoryviews into ``data``. Raises ValueError with the
    problem (the caller adds the file)."""
    max_entries = LIMITS["entries"] if max_entries is None else max_entries
    data = memoryview(data).cast("B")
    if len(data) < FOOTER_SIZE:
        raise ValueError(f"{what} is {len(data)} bytes, shorter than the "
                         f"{FOOTER_SIZE}-byte footer of a table")
    footer = len(data) - FOOTER_SIZE
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != MAGIC:
        raise ValueError(f"{what} does not end with the table magic number (found "
                         f"{magic:#018x}, expected {MAGIC:#018x}): not a checkpoint "
                         "index, or truncated")
    _, _, pos = _handle(data, footer, len(data) - 8, f"{what}: the footer")
    index_offset, index_size, _ = _handle(data, pos, len(data) - 8, f"{what}: the footer")
    index = _block(data, index_offset, index_size, footer, f"{what}: the index block")
    entries, previous, seen = [], None, set()
    try:
        blocks = _entries(index, f"{what}: the index block", max_entries)
    except _TooMany:
        raise ValueError(f"{what} holds more than {max_entries} blocks") from None
    for _, handle in blocks:
        offset, size, end = _handle(handle, 0, len(handle), f"{what}: a block handle")
        if (offset, size) in seen:
            raise ValueError(f"{what}: the index lists the block at {offset} twice")
        seen.add((offset, size))
        where = f"{what}: the data block at byte {offset}"
        block = _block(data, offset, size, footer, where)
        try:
            pairs = _entries(block, where, max_entries - len(entries))
        except _TooMany:
            raise ValueError(f"{what} holds more than {max_entries} entries") from None
        for key, value in pairs:
            if previous is not None and key <= previous:
                raise ValueError(f"{what}: the keys are not sorted ({previous[:60]!r} "
                                 f"before {key[:60]!r})")
            previous = key
            entries.append((key, value))
    return entries


# ---- the bundle ------------------------------------------------------------------

_VERSION = Message("VersionDef", {1: Field("producer", "int32"),
                                  2: Field("min_consumer", "int32"),
                                  3: Field("bad_consumers", "int32", True)})
_HEADER = Message("BundleHeaderProto", {1: Field("num_shards", "int32"),
                                        2: Field("endianness", "enum"),
                                        3: Field("version", "message", False, _VERSION)})
_DIM = Message("TensorShapeProto.Dim", {1: Field("size", "int64"), 2: Field("name", "string")})
_SHAPE = Message("TensorShapeProto", {2: Field("dim", "message", True, _DIM),
                                      3: Field("unknown_rank", "bool")})
_EXTENT = Message("TensorSliceProto.Extent", {1: Field("start", "int64"),
                                              2: Field("length", "int64", default=None)})
_SLICE = Message("TensorSliceProto", {1: Field("extent", "message", True, _EXTENT)})
_ENTRY = Message("BundleEntryProto", {1: Field("dtype", "enum"),
                                      2: Field("shape", "message", False, _SHAPE),
                                      3: Field("shard_id", "int32"),
                                      4: Field("offset", "int64"),
                                      5: Field("size", "int64"),
                                      6: Field("crc32c", "fixed32"),
                                      7: Field("slices", "message", True, _SLICE)})

# TensorFlow's DataType numbers -> NumPy dtypes (little-endian); 7 is DT_STRING.
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
          9: "int64", 10: "bool", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}
DT_STRING = 7
_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128",
                20: "resource", 21: "variant"}


def _ordered_number(value):
    """TensorFlow's OrderedCode of an unsigned number: its length in bytes, then the
    number, big-endian, in as few bytes as it needs (0 is the single byte 0)."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def _ordered_signed(value):
    """OrderedCode of a signed number: n bytes of two's complement in which the n top
    bits are flipped, n the fewest bytes whose 7n bits hold the number and its sign
    (so that the bytes sort like the numbers)."""
    magnitude = ~value if value < 0 else value
    size = max(1, -(-(magnitude.bit_length() + 1) // 7))
    header = ((1 << size) - 1) << (7 * size)
    return ((value & ((1 << 8 * size) - 1)) ^ header).to_bytes(size, "big")


def _ordered_string(data):
    """OrderedCode of bytes: 0x00 and 0xff escaped as 00 ff and ff 00, then 00 01."""
    body = bytearray()
    for byte in data:
        body += b"\x00\xff" if byte == 0 else b"\xff\x00" if byte == 0xFF else bytes([byte])
    return bytes(body) + b"\x00\x01"


def slice_key(key, starts, lengths):
    """The key of one slice of the tensor keyed ``key`` (bytes): OrderedCode of 0, the
    key, the rank, then each dimension's start and length (-1: the whole dimension)."""
    parts = [_ordered_number(0), _ordered_string(key), _ordered_number(len(starts))]
    for start, length in zip(starts, lengths):
        parts += [_ordered_signed(start), _ordered_signed(length)]
    return b"".join(parts)


def data_filename(prefix, shard, shards):
    """TensorFlow's name of a data file: <prefix>.data-00000-of-00001."""
    return f"{prefix}.data-{shard:05d}-of-{shards:05d}"


class Bundle:
    """A checkpoint bundle, its index read and checked; tensors are read on demand.

    ``prefix`` is the path without ``.index`` (``<folder>/variables/variables``);
    ``path`` names the model in errors."""

    def __init__(self, prefix, path):
        self.prefix, self.path = prefix, path
        index = prefix + ".index"
        self._index_name = os.path.relpath(index, path) if os.path.isdir(path) else index
        data = _read_small(index, LIMITS["index_bytes"], path, self._index_name)
        try:
            entries = read_table(data, self._index_name)
        except ValueError as error:
            raise fail(path, str(error)) from None
        if not entries or entries[0][0] != b"":
            raise fail(path, f"{self._index_name} has no bundle header (the entry with the "
                       "empty key)")
        header = protobuf.parse(entries[0][1], _HEADER, path,
                                f"the bundle header in {self._index_name}")
        self.shards = header["num_shards"]
        if not 1 <= self.shards <= LIMITS["shards"]:
            raise fail(path, f"{self._index_name} declares {self.shards} data shards; "
                       f"expected 1 to {LIMITS['shards']}")
        if header["endianness"] not in (0, 1):
            raise fail(path, f"{self._index_name} declares the unknown endianness "
                       f"{header['endianness']}")
        self.big_endian = header["endianness"] == 1
        version = header["version"] or {"producer": 0, "min_consumer": 0}
        if version["min_consumer"] > 1:
            raise fail(path, f"{self._index_name} needs a reader of bundle version "
                       f"{version['min_consumer']} or later; minirnn reads version 1")
        self._entries = dict(entries[1:])  # bytes -> BundleEntryProto bytes
        self._sizes = {}
        for shard in range(self.shards):
            name = data_filename(prefix, shard, self.shards)
            self._sizes[shard] = _file_size(name, path, "the data file " + self._relative(name))
        self.bytes_read = 0

    def _relative(self, name):
        return os.path.relpath(name, self.path) if os.path.isdir(self.path) else name

    def keys(self):
        """The names of the tensors in the bundle, sorted (not the keys of slices,
        which start with a zero byte)."""
        return [key.decode("utf-8", "replace") for key in self._entries
                if not key.startswith(b"\x00")]

    def __contains__(self, name):
        return name.encode("utf-8") in self._entries

    def entry(self, name):
        """The BundleEntryProto of tensor ``name`` as a dict, checked: {"dtype",
        "shape" (a tuple), "shard_id", "offset", "size", "crc32c", "slices"}; the bytes
        of a tensor that is not sliced lie inside its data file."""
        return self._entry(name.encode("utf-8"), f"tensor {name!r}")

    def tensor(self, name):
        """A numeric tensor as a NumPy array in the machine's byte order."""
        return self._tensor(name.encode("utf-8"), f"tensor {name!r}")

    def strings(self, name):
        """A string tensor: the list of its elements (bytes), in C order."""
        label = f"tensor {name!r}"
        entry = self._entry(name.encode("utf-8"), label)
        if entry["dtype"] != DT_STRING:
            raise fail(self.path, f"{label} holds numbers, not strings")
        if entry["size"] > LIMITS["string_bytes"]:
            raise fail(self.path, f"{label} is {entry['size']} bytes, over the limit "
                       f"of {LIMITS['string_bytes']} for a string tensor")
        buffer = memoryview(self._bytes(entry, label))
        count, end, pos = math.prod(entry["shape"]), len(buffer), 0
        if count > end:
            raise fail(self.path, f"{label} (strings) has {count} elements in {end} bytes")
        order = ">" if self.big_endian else "<"
        lengths, checked = [], bytearray()  # checked: the lengths as TensorFlow sums them
        for _ in range(count):
            try:
                length, pos = protobuf.read_varint(buffer, pos, end)
            except ValueError as error:
                raise fail(self.path, f"{label} (strings): {error}") from None
            lengths.append(length)
            checked += struct.pack(order + ("I" if length <= 0xFFFFFFFF else "Q"), length)
        if end - pos < 4:
            raise fail(self.path, f"{label} (strings) ends inside its length checksum")
        if unmask(struct.unpack_from(order + "I", buffer, pos)[0]) != crc32c(checked):
            raise fail(self.path, f"{label} (strings) fails the checksum of its lengths")
        checked += buffer[pos:pos + 4]
        pos += 4
        if sum(lengths) != end - pos:
            raise fail(self.path, f"{label} (strings): its elements declare "
                       f"{sum(lengths)} bytes, and {end - pos} follow their lengths")
        self._check_crc(crc32c(buffer[pos:], crc32c(checked)), entry, label)
        values = []
        for length in lengths:
            values.append(bytes(buffer[pos:pos + length]))
            pos += length
        return values

    def _entry(self, key, label):
        raw = self._entries.get(key)
        if raw is None:
            raise fail(self.path, f"the checkpoint has no {label}")
        where = f"the entry of {label} in {self._index_name}"
        entry = protobuf.parse(raw, _ENTRY, self.path, where)
        shape = entry["shape"] or {"dim": [], "unknown_rank": False}
        dims = tuple(dim["size"] for dim in shape["dim"])
        if shape["unknown_rank"] or any(n < 0 for n in dims) or len(dims) > 32:
            raise fail(self.path, f"{where} has no valid shape {list(dims)}")
        entry["shape"] = dims
        dtype = entry["dtype"]
        if dtype not in DTYPES and dtype != DT_STRING:
            name = _DTYPE_NAMES.get(dtype, f"number {dtype}")
            raise fail(self.path, f"{label} has dtype {name}, which minirnn does not "
                       "read")
        count = math.prod(dims)
        if count > safety.LIMITS["dataset_elements"]:
            raise fail(self.path, f"{label} has {count} elements, over the limit of "
                       f"{safety.LIMITS['dataset_elements']}")
        if entry["slices"]:
            if dtype == DT_STRING:
                raise fail(self.path, f"{label} holds strings saved in slices; only numeric "
                           "tensors are")
            if len(entry["slices"]) > LIMITS["slices"]:
                raise fail(self.path, f"{label} is saved in {len(entry['slices'])} slices, "
                           f"over the limit of {LIMITS['slices']}")
            return entry  # its bytes are in the slices' own entries
        if dtype != DT_STRING:
            expected = count * np.dtype(DTYPES[dtype]).itemsize
            if entry["size"] != expected:
                raise fail(self.path, f"{where} declares {entry['size']} bytes, but a "
                           f"{DTYPES[dtype]} tensor of shape {list(dims)} holds {expected}")
        shard = entry["shard_id"]
        if shard not in self._sizes:
            raise fail(self.path, f"{label} lies in data shard {shard}, but the bundle "
                       f"has {self.shards}")
        offset, size, limit = entry["offset"], entry["size"], self._sizes[shard]
        if offset < 0 or size < 0 or offset > limit or size > limit - offset:
            name = self._relative(data_filename(self.prefix, shard, self.shards))
            raise fail(self.path, f"{label} (offset {offset}, {size} bytes) lies past "
                       f"the end of {name} ({limit} bytes)")
        return entry

    def _tensor(self, key, label):
        entry = self._entry(key, label)
        if entry["dtype"] == DT_STRING:
            raise fail(self.path, f"{label} holds strings, not numbers")
        if entry["slices"]:
            return self._assemble(key, entry, label)
        buffer = self._bytes(entry, label)
        self._check_crc(crc32c(buffer), entry, label)
        dtype = np.dtype(DTYPES[entry["dtype"]])
        if self.big_endian:
            dtype = dtype.newbyteorder(">")
        array = np.frombuffer(buffer, dtype).reshape(entry["shape"])
        if self.big_endian:
            array = array.astype(dtype.newbyteorder("="))
        return array

    def _assemble(self, key, entry, label):
        """A tensor saved in slices (boxes of the full tensor, each under a key of its
        own, see :func:`slice_key`), put together; every element must come from
        exactly one slice. Every slice's entry is checked (which puts its bytes inside
        a data file) before the tensor is allocated."""
        shape = entry["shape"]
        parts = []
        for number, spec in enumerate(entry["slices"]):
            where = f"slice {number} of {label}"
            if len(spec["extent"]) != len(shape):
                raise fail(self.path, f"{where} has {len(spec['extent'])} dimensions; the "
                           f"tensor has {len(shape)}")
            box, starts, lengths = [], [], []
            for size, extent in zip(shape, spec["extent"]):
                start, length = extent["start"], extent["length"]
                coded = length
                if length is None:  # the whole dimension
                    start, length, coded = 0, size, -1
                if start < 0 or length < 0 or start > size or length > size - start:
                    raise fail(self.path, f"{where} (start {start}, length {length}) lies "
                               f"outside the tensor's shape {list(shape)}")
                box.append(slice(start, start + length))
                starts.append(start)
                lengths.append(coded)
            part_key = slice_key(key, starts, lengths)
            if part_key not in self._entries:
                raise fail(self.path, f"{where} is not in the checkpoint")
            part = self._entry(part_key, where)
            expected = tuple(b.stop - b.start for b in box)
            if part["slices"] or part["dtype"] != entry["dtype"] or part["shape"] != expected:
                raise fail(self.path, f"{where} is not a {DTYPES[entry['dtype']]} tensor of "
                           f"shape {list(expected)}")
            parts.append((tuple(box), part_key, where))
        total = sum(math.prod(b.stop - b.start for b in box) for box, _, _ in parts)
        if total != math.prod(shape):
            raise fail(self.path, f"the slices of {label} hold {total} elements; its shape "
                       f"{list(shape)} has {math.prod(shape)}")
        array = np.zeros(shape, DTYPES[entry["dtype"]])
        covered = np.zeros(shape, np.uint8)
        for box, part_key, where in parts:
            array[box] = self._tensor(part_key, where)
            covered[box] += 1
        if covered.size and (covered.min() != 1 or covered.max() != 1):
            raise fail(self.path, f"the slices of {label} do not cover it exactly once")
        return array

    def _bytes(self, entry, label):
        size = entry["size"]
        if self.bytes_read + size > safety.LIMITS["weights_bytes"]:
            raise fail(self.path, "the checkpoint's tensors add up to more than the limit of "
                       f"{safety.LIMITS['weights_bytes']} bytes")
        name = data_filename(self.prefix, entry["shard_id"], self.shards)
        buffer = bytearray(size)
        try:
            with open(name, "rb") as handle:
                handle.seek(entry["offset"])
                got = handle.readinto(buffer)
        except OSError as error:
            raise fail(self.path, f"cannot read {self._relative(name)} ({error})") from None
        if got != size:
            raise fail(self.path, f"{self._relative(name)} ended before the {size} bytes of "
                       f"{label}")
        self.bytes_read += size
        return buffer

    def _check_crc(self, actual, entry, label):
        if unmask(entry["crc32c"]) != actual:
            raise fail(self.path, f"{label} fails its checksum (stored "
                       f"{unmask(entry['crc32c']):#010x}, computed {actual:#010x}): the data "
                       "file is corrupt")


def _file_size(name, path, shown):
    """The size of a regular file (not a link), or FileFormatError."""
    if os.path.islink(name):
        raise fail(path, f"{shown} is a symbolic link; refused")
    if not os.path.isfile(name):
        raise fail(path, f"{shown} is missing")
    return os.path.getsize(name)


def _read_small(name, limit, path, shown):
    """A whole file of at most ``limit`` bytes (not a link), or FileFormatError."""
    _file_size(name, path, shown)
    return safety.read_file(name, limit, path, shown)
