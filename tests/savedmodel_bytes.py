"""Writers of the bytes a SavedModel folder holds, for tests and the fuzzer: the
protocol buffer wire format, LevelDB-style sorted string tables, checkpoint bundles.

Written from the format descriptions in minirnn/files/protobuf.py and bundle.py,
independently of the readers (the CRC here is computed bit by bit), so that a test
that writes with these and reads with minirnn checks the reader against the format
and not against itself.
"""

import struct

import numpy as np

# ---- protocol buffers ------------------------------------------------------------


def varint(value):
    """A varint; negative numbers as 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number, wire):
    return varint(number << 3 | wire)


def field_varint(number, value):
    return tag(number, 0) + varint(value)


def field_bytes(number, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return tag(number, 2) + varint(len(data)) + bytes(data)


def field_fixed32(number, value):
    return tag(number, 5) + struct.pack("<I", value)


def field_fixed64(number, value):
    return tag(number, 1) + struct.pack("<Q", value)


# ---- CRC-32C, bit by bit ----------------------------------------------------------

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ---- sorted string tables ---------------------------------------------------------

MAGIC = 0xDB4775248B80FB57


def block(entries, restart_interval=16):
    """One block: prefix-compressed entries, restart offsets, their count."""
    out, restarts, previous = bytearray(), [], b""
    for k, (key, value) in enumerate(entries):
        shared = 0
        if k % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + bytes(value)
        previous = key
    if not restarts:
        restarts = [0]
    for offset in restarts:
        out += struct.pack("<I", offset)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def with_trailer(contents, kind=0):
    return contents + bytes([kind]) + struct.pack("<I", mask(crc32c(contents + bytes([kind]))))


def handle(offset, size):
    return varint(offset) + varint(size)


def table(entries, block_entries=8, restart_interval=4):
    """A whole table of sorted (key bytes, value bytes) pairs, ``block_entries`` to a
    data block, then an empty meta-index block, the index block and the footer."""
    out, index = bytearray(), []
    for start in range(0, len(entries), block_entries):
        chunk = entries[start:start + block_entries]
        contents = block(chunk, restart_interval)
        index.append((chunk[-1][0], handle(len(out), len(contents))))
        out += with_trailer(contents)
    meta = block([])
    meta_handle = handle(len(out), len(meta))
    out += with_trailer(meta)
    contents = block(index, 1)
    index_handle = handle(len(out), len(contents))
    out += with_trailer(contents)
    footer = meta_handle + index_handle
    out += footer + bytes(40 - len(footer)) + struct.pack("<Q", MAGIC)
    return bytes(out)


# ---- checkpoint bundles -----------------------------------------------------------

DTYPES = {"float32": 1, "float64": 2, "int32": 3, "int64": 9, "float16": 19}


def header(num_shards=1, endianness=0, producer=1, min_consumer=0):
    version = field_varint(1, producer) + field_varint(2, min_consumer)
    return field_varint(1, num_shards) + field_varint(2, endianness) + field_bytes(3, version)


def shape(dims):
    return b"".join(field_bytes(2, field_varint(1, n)) for n in dims)


def entry(dtype, dims, shard=0, offset=0, size=0, crc=0, slices=()):
    """A BundleEntryProto; ``slices`` is a list of [(start, length or None), ...]."""
    out = field_varint(1, dtype) + field_bytes(2, shape(dims)) + field_varint(3, shard)
    out += field_varint(4, offset) + field_varint(5, size) + field_fixed32(6, crc)
    for extents in slices:
        spec = b""
        for start, length in extents:
            extent = field_varint(1, start)
            if length is not None:
                extent += field_varint(2, length)
            spec += field_bytes(1, extent)
        out += field_bytes(7, spec)
    return out


def string_tensor_bytes(values):
    """A string tensor's data: varint lengths, their masked CRC, the bytes; and the
    masked CRC of the whole for its entry."""
    lengths = b"".join(varint(len(v)) for v in values)
    summed = b"".join(struct.pack("<I", len(v)) for v in values)
    length_crc = struct.pack("<I", mask(crc32c(summed)))
    data = lengths + length_crc + b"".join(values)
    return data, mask(crc32c(summed + length_crc + b"".join(values)))


def bundle(tensors, shards=1):
    """(index bytes, [data bytes per shard]) of {name: array or [bytes, ...]}; tensors
    go to the shards in turn."""
    datas = [bytearray() for _ in range(shards)]
    entries = [(b"", header(shards))]
    for k, name in enumerate(sorted(tensors)):
        value = tensors[name]
        shard = k % shards
        offset = len(datas[shard])
        if isinstance(value, list):
            data, crc = string_tensor_bytes(value)
            record = entry(7, [len(value)] if len(value) != 1 else [], shard, offset,
                           len(data), crc)
        else:
            value = np.asarray(value)
            data = value.tobytes()  # C order
            record = entry(DTYPES[value.dtype.name], value.shape, shard, offset, len(data),
                           mask(crc32c(data)))
        datas[shard] += data
        entries.append((name.encode("utf-8") if isinstance(name, str) else name, record))
    entries.sort()
    return table(entries), [bytes(d) for d in datas]


# ---- object graphs and Keras metadata ----------------------------------------------

def object_graph(nodes):
    """A TrackableObjectGraph: nodes are ([(node_id, local_name)], [(name, key)])."""
    out = b""
    for children, attributes in nodes:
        node = b"".join(field_bytes(1, field_varint(1, i) + field_bytes(2, n))
                        for i, n in children)
        node += b"".join(field_bytes(2, field_bytes(1, n) + field_bytes(2, n) +
                                     field_bytes(3, k)) for n, k in attributes)
        out += field_bytes(1, node)
    return out


def saved_metadata(nodes):
    """A SavedMetadata: nodes are (node_id, node_path, identifier, metadata JSON)."""
    return b"".join(field_bytes(1, field_varint(2, i) + field_bytes(3, p) + field_bytes(4, d)
                                + field_bytes(5, m)) for i, p, d, m in nodes)
