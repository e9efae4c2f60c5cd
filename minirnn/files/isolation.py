"""Read a file in a child process, so that a crash of the HDF5 library is an error.

The HDF5 C library trusts many of a file's internal pointers: a few corrupted bytes
(tests/fuzz_model_files.py found such files) can make it crash the whole process,
which no exception handler can catch. Where the platform can fork, the readers run
in a forked child; the parent receives the configuration as JSON and the arrays as
raw bytes described by that JSON (dtype and shape; nothing is unpickled), and turns
a child that died, hung or failed into a :class:`FileFormatError` naming the file.
Elsewhere the readers run in the calling process.

May use: numpy, h5py, :mod:`minirnn.files` and its own modules.
"""

import gc
import json
import os
import select
import signal
import struct
import tempfile
import time
import warnings

import numpy as np

from .safety import FileFormatError

__all__ = ["run_isolated", "SECONDS"]

SECONDS = 300  # a reader that takes longer is stopped: the file makes it hang


def run_isolated(reader, path):
    """``reader(path)`` -> SavedModel, in a forked child where possible.

    The child writes its result into an unnamed temporary file (arrays can be large;
    a pipe would pass them 64 KB at a time) and closes a pipe by exiting, which the
    parent waits for with a time limit."""
    if not hasattr(os, "fork"):
        return reader(path)
    import h5py  # imported once here, not again in every child
    with tempfile.TemporaryFile() as result:
        read_end, write_end = os.pipe()
        # Hold h5py's global lock while forking, so that no other thread of this
        # process can own it in the child (where that thread does not exist).
        with h5py._objects.phil, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # the child: read, write, and leave without running any cleanup
            gc.disable()  # a collection would touch, and so copy, every page of the parent
            status = 0
            try:
                os.close(read_end)
                try:
                    message = _encode(reader(path))
                except FileFormatError as error:
                    message = _encode_error(str(error))
                except BaseException as error:  # noqa: BLE001 - all become messages
                    message = _encode_error(f"{path}: cannot read the file "
                                            f"({type(error).__name__}: {error})")
                _write_all(result.fileno(), message)
            except BaseException:  # noqa: BLE001
                status = 1
            finally:
                os._exit(status)
        os.close(write_end)
        try:
            _wait(read_end, pid, path)
        finally:
            os.close(read_end)
        size = os.fstat(result.fileno()).st_size
        data = np.empty(size, np.uint8)  # aligned, so the arrays in it are too
        result.seek(0)
        if result.readinto(data) != size:
            raise FileFormatError(f"{path}: the reader's result was cut short")
    return _decode(data, path)


def _wait(fd, pid, path):
    """Wait for the child to exit (its end of the pipe closes), at most SECONDS."""
    deadline = time.monotonic() + SECONDS
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise FileFormatError(f"{path}: reading the file did not finish within "
                                  f"{SECONDS} s; stopped")
        if not os.read(fd, 4096):
            break
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        raise FileFormatError(
            f"{path}: the file is corrupt: the HDF5 library crashed reading it (signal "
            f"{number}, {signal.Signals(number).name}); nothing was loaded")


def _encode(saved):
    """[8-byte header length][JSON header][raw array bytes, in order]: the header
    holds the configuration, the source and each array's dtype and shape."""
    names, chunks = [], []
    for name, values in saved.weights.items():
        specs = []
        for value in values:
            shape = list(np.shape(value))  # ascontiguousarray makes a 0-d array 1-d
            value = np.ascontiguousarray(value)
            specs.append([value.dtype.str, shape])
            chunks.append(memoryview(value).cast("B"))
        names.append([name, specs])
    header = json.dumps({"status": "ok", "config": saved.config, "source": saved.source,
                         "weights": names}).encode()
    parts, offset = [struct.pack("<Q", len(header)), header], 8 + len(header)
    for chunk in chunks:  # each array starts at a multiple of 64 bytes
        padding = -offset % _ALIGN
        parts += [bytes(padding), chunk]
        offset += padding + len(chunk)
    return parts


def _encode_error(message):
    header = json.dumps({"status": "error", "message": message}).encode()
    return [struct.pack("<Q", len(header)), header]


def _write_all(fd, parts):
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


_ALIGN = 64
_DTYPES = {np.dtype(t).str for t in ("float16", "float32", "float64", "int8", "int16",
                                     "int32", "int64", "uint8", "uint16", "uint32",
                                     "uint64", "bool", ">f4", ">f8", ">f2", ">i4", ">i8")}


def _decode(data, path):
    from . import SavedModel
    if len(data) < 8:
        raise FileFormatError(f"{path}: the reader stopped without a result")
    size = struct.unpack("<Q", data[:8].tobytes())[0]
    header = json.loads(data[8:8 + size].tobytes())
    if header["status"] != "ok":
        raise FileFormatError(header["message"])
    weights, offset = {}, 8 + size
    for name, specs in header["weights"]:
        arrays = []
        for dtype, shape in specs:
            if dtype not in _DTYPES:
                raise FileFormatError(f"{path}: unexpected weight dtype {dtype}")
            count = int(np.prod(shape, dtype=np.int64))
            offset += -offset % _ALIGN
            array = np.frombuffer(data, dtype, count, offset).reshape(shape)
            offset += array.nbytes
            arrays.append(array)
        weights[name] = arrays
    return SavedModel(header["config"], weights, header["source"])
