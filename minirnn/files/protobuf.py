"""A small reader of the protocol buffer wire format, for the few messages in a
TensorFlow SavedModel folder that minirnn needs.

The wire format: a message is a sequence of fields, each a *tag* then a value. The
tag is a varint holding ``field_number << 3 | wire_type``; the wire type says how
the value is stored:

- 0, varint: 7 bits a byte, least significant group first, the high bit set on
  every byte but the last; at most 10 bytes (64 bits). Negative int32 and int64
  values are written as 10-byte two's complement varints;
- 1, fixed64: 8 bytes, little-endian;
- 2, length-delimited: a varint length, then that many bytes (strings, bytes,
  nested messages, packed repeated numbers);
- 5, fixed32: 4 bytes, little-endian;
- 3 and 4 (start and end of a group) are a proto2 relic that none of the messages
  read here use; they are refused, as are the undefined wire types 6 and 7.

Fields may come in any order; a field that is not repeated and appears twice keeps
its last value; fields this reader does not know are skipped (their bytes must
still be well formed). Nothing here trusts the bytes: every length is checked
against what is left of its message, varints longer than 10 bytes are refused, the
nesting of messages is limited (:data:`MAX_DEPTH`), and so is the number of fields
one call decodes (:data:`MAX_FIELDS`), so that a hostile file can neither read out
of bounds nor make the parser recurse or loop without end. Every problem raises
:class:`~minirnn.files.safety.FileFormatError` naming the file and the message.

A message type is described by a :class:`Message`: field number -> :class:`Field`
(name, kind, repeated, and for kind "message" the nested :class:`Message`).

May use: its own modules.
"""

import struct
from collections import namedtuple

from .safety import fail

__all__ = ["Field", "Message", "parse", "read_varint", "MAX_DEPTH", "MAX_FIELDS"]

MAX_DEPTH = 32             # messages inside messages
MAX_FIELDS = 10_000_000    # fields decoded by one call of parse(): bounds time and memory

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5

# kind -> the wire type its values use (packed repeated numbers use LENGTH too).
_WIRE = {"uint64": VARINT, "int64": VARINT, "int32": VARINT, "enum": VARINT,
         "bool": VARINT, "fixed64": FIXED64, "fixed32": FIXED32, "string": LENGTH,
         "bytes": LENGTH, "message": LENGTH}
_DEFAULT = {"uint64": 0, "int64": 0, "int32": 0, "enum": 0, "bool": False, "fixed64": 0,
            "fixed32": 0, "string": "", "bytes": b"", "message": None}

_KIND_DEFAULT = object()
Field = namedtuple("Field", "name kind repeated message default",
                   defaults=(False, None, _KIND_DEFAULT))
Field.__doc__ = """One field of a message type: ``kind`` is one of uint64, int64, int32,
enum, bool, fixed32, fixed64, string, bytes, message (then ``message`` is its type);
``default`` is its value when absent (the kind's zero unless given: None tells an
absent field from one written as zero)."""


class Message:
    """A message type: its name (for error messages) and {field number: Field}."""

    def __init__(self, name, fields):
        self.name = name
        self.fields = dict(fields)
        for spec in self.fields.values():
            if spec.kind not in _WIRE:
                raise ValueError(f"{name}.{spec.name}: unknown kind {spec.kind!r}")
            if spec.kind == "message" and spec.message is None:
                raise ValueError(f"{name}.{spec.name}: a message field needs its type")

    def __repr__(self):
        return f"Message({self.name!r})"


def read_varint(data, pos, end):
    """(value, new position) of the varint at ``data[pos:end]``, or raise ValueError.

    At most 10 bytes; the tenth may only hold the 64th bit."""
    value = shift = 0
    for count in range(10):
        if pos >= end:
            raise ValueError("a varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        if count == 9 and byte > 1:
            raise ValueError("a varint is longer than 64 bits")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("a varint is longer than 10 bytes")


def _signed(value, bits):
    """Two's complement of the low ``bits`` bits of a decoded varint."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(kind, value):
    if kind == "int64":
        return _signed(value, 64)
    if kind in ("int32", "enum"):
        return _signed(value, 32)
    if kind == "bool":
        return value != 0
    return value


class _Budget:
    """The number of fields one parse may still decode."""

    def __init__(self, limit):
        self.left = limit


def parse(data, message, path, what=None, *, max_depth=MAX_DEPTH, max_fields=MAX_FIELDS):
    """Decode ``data`` (bytes-like) as a ``message`` into a dict {field name: value}.

    Absent fields get their default (0, False, "", b"", None for a message, [] when
    repeated). ``what`` names the bytes in errors; ``path`` is the file. Raises
    FileFormatError."""
    what = "the bytes" if what is None else what
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    try:
        return _parse(view, 0, len(view), message, 1, max_depth, _Budget(max_fields))
    except _Problem as problem:
        raise fail(path, f"{what} is not a valid {message.name} protocol buffer: "
                   f"{problem.args[0]}") from None


class _Problem(Exception):
    """A problem found at some depth, reported once by parse()."""


def _parse(data, start, end, message, depth, max_depth, budget):
    if depth > max_depth:
        raise _Problem(f"messages are nested deeper than {max_depth} levels")
    result = {}
    for spec in message.fields.values():
        if spec.repeated:
            result[spec.name] = []
        else:
            result[spec.name] = _DEFAULT[spec.kind] if spec.default is _KIND_DEFAULT \
                else spec.default
    pos = start
    while pos < end:
        budget.left -= 1
        if budget.left < 0:
            raise _Problem("it holds too many fields")
        try:
            tag, pos = read_varint(data, pos, end)
        except ValueError as error:
            raise _Problem(f"{error} (a field's tag at byte {pos})") from None
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Problem(f"field number 0 at byte {pos}")
        value, pos = _value(data, pos, end, wire, number)
        spec = message.fields.get(number)
        if spec is None:
            continue  # a field this reader does not need
        where = f"{message.name}.{spec.name}"
        if wire == LENGTH and spec.repeated and _WIRE[spec.kind] != LENGTH:
            result[spec.name].extend(_packed(data, value, spec, where, budget))
            continue
        if wire != _WIRE[spec.kind]:
            raise _Problem(f"{where} has wire type {wire}, expected {_WIRE[spec.kind]}")
        if spec.kind == "message":
            value = _parse(data, value[0], value[1], spec.message, depth + 1, max_depth,
                           budget)
        elif spec.kind == "string":
            try:
                value = bytes(data[value[0]:value[1]]).decode("utf-8")
            except UnicodeDecodeError:
                raise _Problem(f"{where} is not UTF-8 text") from None
        elif spec.kind == "bytes":
            value = bytes(data[value[0]:value[1]])
        else:
            value = _scalar(spec.kind, value)
        if spec.repeated:
            result[spec.name].append(value)
        else:
            result[spec.name] = value
    return result


def _value(data, pos, end, wire, number):
    """(value, new position): an int, or (start, end) of a length-delimited value."""
    try:
        if wire == VARINT:
            return read_varint(data, pos, end)
        if wire == LENGTH:
            length, pos = read_varint(data, pos, end)
            if length > end - pos:
                raise ValueError(f"field {number} declares {length} bytes, but only "
                                 f"{end - pos} are left in its message")
            return (pos, pos + length), pos + length
        if wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if size > end - pos:
                raise ValueError(f"field {number} needs {size} bytes, but only {end - pos} "
                                 "are left in its message")
            value = struct.unpack_from("<Q" if size == 8 else "<I", data, pos)[0]
            return value, pos + size
    except ValueError as error:
        raise _Problem(f"{error} (byte {pos})") from None
    if wire in (START_GROUP, END_GROUP):
        raise _Problem(f"field {number} is a group (wire type {wire}), which these "
                       "messages never use")
    raise _Problem(f"field {number} has the undefined wire type {wire} (byte {pos})")


def _packed(data, span, spec, where, budget):
    """The numbers of a packed repeated field."""
    pos, end = span
    values = []
    wire = _WIRE[spec.kind]
    while pos < end:
        budget.left -= 1
        if budget.left < 0:
            raise _Problem("it holds too many fields")
        if wire == VARINT:
            try:
                value, pos = read_varint(data, pos, end)
            except ValueError as error:
                raise _Problem(f"{where}: {error}") from None
        else:
            size = 8 if wire == FIXED64 else 4
            if size > end - pos:
                raise _Problem(f"{where}: a packed value runs past its field")
            value = struct.unpack_from("<Q" if size == 8 else "<I", data, pos)[0]
            pos += size
        values.append(_scalar(spec.kind, value))
    return values
