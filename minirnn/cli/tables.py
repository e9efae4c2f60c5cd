"""Plain-text output: tables, shapes, short numbers, JSON-safe values.

May use: its own modules.
"""

import json
import math

from .common import CommandError

__all__ = ["format_table", "format_shape", "sci", "as_list", "call_text", "json_safe",
           "write_json"]


def format_table(headers, rows, align=None, indent="  "):
    """A plain-text table: a header line, a rule, one line per row.

    ``align`` is a string of "l" / "r", one letter per column (default: all left).
    """
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    align = align or "l" * len(headers)

    def line(cells):
        parts = [cell.rjust(w) if a == "r" else cell.ljust(w)
                 for cell, w, a in zip(cells, widths, align)]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def format_shape(shape):
    """'(1, 8, 3)', '(3,)': a shape as Python writes a tuple."""
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def sci(value):
    """A float error in short scientific notation ('0' when exactly zero)."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return "0" if value == 0 else f"{value:.1e}"


def as_list(result):
    """A layer's result as a list of arrays (one array when return_state=False)."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def call_text(kind, units, arguments):
    """'LSTM(3, return_state=True)': how the layer is created."""
    args = [str(units)] + [f"{k}={v!r}" for k, v in arguments.items()]
    return f"{kind}({', '.join(args)})"


def json_safe(value):
    """Replace non-finite floats (not valid JSON) by the strings 'inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, value):
    """Write ``value`` (made JSON-safe) to ``path``; CommandError if that fails."""
    try:
        with open(path, "w") as handle:
            json.dump(json_safe(value), handle, indent=1)
    except OSError as error:  # the folder went away, the disk is full, ...
        raise CommandError(f"cannot write {path!r}: {error.strerror or error}")
