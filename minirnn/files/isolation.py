"""Read a file in a child process, so that a crash of the HDF5 library is an error.

The HDF5 C library trusts many of a file's internal pointers: a few corrupted bytes
(tests/fuzz_model_files.py found such files) can make it crash the whole process,
which no exception handler can catch. Where the platform can fork, the readers run
in a forked child; the parent receives the configuration as JSON and the arrays as
an ``.npz`` (read with allow_pickle=False), and turns a child that died, hung or
failed into a :class:`FileFormatError` naming the file. Elsewhere the readers run
in the calling process.
"""

import gc
import io
import json
import os
import select
import signal
import struct
import time

import numpy as np

from .safety import FileFormatError

__all__ = ["run_isolated", "SECONDS"]

SECONDS = 300  # a reader that takes longer is stopped: the file makes it hang


def run_isolated(reader, path):
    """``reader(path)`` -> SavedModel, in a forked child where possible."""
    if not hasattr(os, "fork"):
        return reader(path)
    import h5py  # noqa: F401 - imported once here, not again in every child
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send, and leave without running any cleanup
        gc.disable()  # a collection would touch, and so copy, every page of the parent
        status = 0
        try:
            os.close(read_end)
            try:
                message = _encode(reader(path))
            except FileFormatError as error:
                message = _encode_error(str(error))
            except BaseException as error:  # noqa: BLE001 - everything becomes a message
                message = _encode_error(f"{path}: cannot read the file "
                                        f"({type(error).__name__}: {error})")
            with os.fdopen(write_end, "wb") as out:
                out.write(message)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data = _receive(read_end, pid, path)
    finally:
        os.close(read_end)
    return _decode(data, path)


def _receive(fd, pid, path):
    chunks, deadline = [], time.monotonic() + SECONDS
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise FileFormatError(f"{path}: reading the file did not finish within "
                                  f"{SECONDS} s; stopped")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        raise FileFormatError(
            f"{path}: the file is corrupt: the HDF5 library crashed reading it (signal "
            f"{number}, {signal.Signals(number).name}); nothing was loaded")
    return b"".join(chunks)


def _encode(saved):
    names, arrays = [], {}
    for name, values in saved.weights.items():
        names.append([name, len(values)])
        for value in values:
            arrays[f"a{len(arrays)}"] = value
    header = json.dumps({"status": "ok", "config": saved.config, "source": saved.source,
                         "weights": names}).encode()
    body = io.BytesIO()
    np.savez(body, **arrays)
    return struct.pack("<Q", len(header)) + header + body.getvalue()


def _encode_error(message):
    header = json.dumps({"status": "error", "message": message}).encode()
    return struct.pack("<Q", len(header)) + header


def _decode(data, path):
    from . import SavedModel
    if len(data) < 8:
        raise FileFormatError(f"{path}: the reader stopped without a result")
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    if header["status"] != "ok":
        raise FileFormatError(header["message"])
    stored = np.load(io.BytesIO(data[8 + size:]), allow_pickle=False)
    weights, k = {}, 0
    for name, count in header["weights"]:
        weights[name] = [stored[f"a{k + i}"] for i in range(count)]
        k += count
    return SavedModel(header["config"], weights, header["source"])
