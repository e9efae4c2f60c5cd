"""minirnn predict: run a saved model on arrays from a file, without TensorFlow.

Inputs larger than memory: with ``--batch-size`` a .npy input is memory-mapped and
run batch by batch (a progress bar on a terminal), and each batch's outputs go
straight into memory-mapped .npy files, so that memory stays that of one batch
whatever the number of samples. Where the outputs go (``--output``): ``Y.npy``
(a model with one output), a folder (``<output name>.npy`` per output), or any
other name, an .npz archive of one array per output name (written as .npy files
next to it, then zipped).

With ``--stream`` the model runs stateful (minirnn.load_model(..., stateful=True))
on a long input read chunk by chunk of time steps from a memory-mapped .npy file,
and each chunk's outputs go straight to a memory-mapped .npy file, so that memory
stays the size of one chunk whatever the length of the input.

May use: numpy and its own modules.
"""

import argparse
import os
import shutil
import tempfile
import time
import zipfile

import numpy as np

from . import limits, models
from .arguments import add_model_arguments, input_file, output_file, positive_int
from .common import OK, CommandError
from .progress import ProgressBar
from .tables import format_shape, format_table

__all__ = ["add_parser", "run", "write_outputs"]


def write_outputs(path, names, arrays):
    """Write the outputs to ``path`` exactly (an .npz archive, one array per output
    name; np.savez would add '.npz' to a name without it)."""
    try:
        with open(path, "wb") as handle:
            np.savez(handle, **dict(zip(names, arrays)))
    except OSError as error:
        raise CommandError(f"cannot write {path!r}: {error.strerror or error}")


def output_target(text):
    """--output: Y.npy, a folder (an existing one, or a name ending in a separator,
    made when written), or any other file name (an .npz archive)."""
    if text and (os.path.isdir(text) or text.endswith(("/", os.sep))):
        parent = os.path.dirname(os.path.normpath(text)) or "."
        if not os.path.isdir(parent):
            raise argparse.ArgumentTypeError(
                f"cannot write {text!r}: the folder {parent!r} does not exist")
        return text
    return output_file(text)


def _layout(path, names):
    """How the outputs are written to ``path``: "npy" (one output), "folder" or "npz"."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        return "folder"
    if path.lower().endswith(".npy"):
        if len(names) != 1:
            raise CommandError(f"--output {path!r} is one .npy file, but the model has "
                               f"{len(names)} outputs {names}: name a folder (one .npy per "
                               "output) or an .npz archive")
        return "npy"
    return "npz"


def _save(path, names, arrays):
    """Write whole outputs where --output says (see :func:`_layout`)."""
    layout = _layout(path, names)
    if layout == "npz":
        return write_outputs(path, names, arrays)
    try:
        if layout == "npy":
            np.save(path, arrays[0])
            return
        os.makedirs(path, exist_ok=True)
        for name, array in zip(names, arrays):
            np.save(os.path.join(path, f"{name}.npy"), array)
    except OSError as error:
        raise CommandError(f"cannot write {path!r}: {error.strerror or error}")


def _written(path, names):
    layout = _layout(path, names)
    if layout == "npy":
        return f"Wrote {path}: the output {names[0]!r}."
    if layout == "folder":
        return (f"Wrote {path}: one .npy per output "
                f"({', '.join(name + '.npy' for name in names)}).")
    return f"Wrote {path}: one array per output, by name ({', '.join(names)})."


def run(args):
    if args.stream:
        return run_stream(args)
    model = models.load(args.path, weights=args.weights)
    if args.batch_size is not None and args.input.lower().endswith(".npy"):
        return run_batches(args, model)
    if args.input.lower().endswith(".npy") and os.path.getsize(args.input) > \
            limits.memory_budget()[0]:
        raise CommandError(f"cannot read {args.input!r} into memory ("
                           f"{limits.human_bytes(os.path.getsize(args.input))}, more than "
                           f"{limits.memory_budget()[1]}): with --batch-size, predict reads "
                           "a .npy memory-mapped, one batch at a time")
    arrays = models.read_inputs(args.input, model)
    models.check_inputs(model, arrays, args.input)
    x = arrays if len(arrays) > 1 else arrays[0]
    result = models.run_model(lambda: model.predict(x, batch_size=args.batch_size),
                              args.input)
    outputs = models.outputs_list(result)
    print(f"minirnn predict: {args.path} on {args.input} "
          f"({models.describe_inputs(model, arrays)})")
    print(_outputs_table(model.output_names, [(a.shape, a.dtype) for a in outputs]))
    if args.output:
        _save(args.output, model.output_names, outputs)
        print(_written(args.output, model.output_names))
    return OK


def run_batches(args, model):
    """predict --batch-size on a .npy input: memory-mapped, run --batch-size samples
    at a time, each batch's outputs written into memory-mapped .npy files at once
    (zipped into the --output archive at the end for an .npz); a progress bar on
    a terminal."""
    if model.stateful:
        raise CommandError(f"{args.path!r} is a stateful model: its calls continue the "
                           "same sequences, so --batch-size cannot slice them (--stream "
                           "runs it on slices of time steps)")
    x = _mapped_input(args.input, model, "--batch-size with a .npy input")
    models.check_inputs(model, [x], args.input)
    names = model.output_names
    layout = _layout(args.output, names) if args.output else None
    if layout == "folder":
        files = [os.path.join(args.output, f"{name}.npy") for name in names]
    elif layout == "npy":
        files = [args.output]
    folder = None
    if layout == "npz":
        folder = tempfile.mkdtemp(prefix="minirnn-predict-", dir=os.path.dirname(
            os.path.abspath(args.output)))
        files = [os.path.join(folder, f"{k}.npy") for k in range(len(names))]
    try:
        if layout == "folder":
            os.makedirs(args.output, exist_ok=True)
        shapes, batches = _run_batches(model, x, args, files if layout else None)
        print(f"minirnn predict: {args.path} on {args.input} "
              f"({models.describe_inputs(model, [x])}, memory-mapped), {batches} batches "
              f"of up to {args.batch_size}")
        print(_outputs_table(names, shapes))
        if layout == "npz":
            _zip_arrays(args.output, names, files)
        if layout:
            print(_written(args.output, names))
    except OSError as error:
        raise CommandError(f"cannot write {args.output!r}: {error.strerror or error}")
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return OK


def _run_batches(model, x, args, files):
    """Every batch; returns ((shape, dtype) of each output, the number of batches).
    With ``files``, the outputs go into them, memory-mapped, batch by batch."""
    n, size = x.shape[0], args.batch_size
    bar = ProgressBar(n)
    targets, shapes, batches, start_time = None, None, 0, time.perf_counter()
    try:
        for start in range(0, n, size):
            batch = np.ascontiguousarray(x[start:start + size])
            outputs = models.outputs_list(models.run_model(lambda: model(batch),
                                                           args.input))
            if shapes is None:
                shapes = [((n, *y.shape[1:]), y.dtype) for y in outputs]
                if files is not None:
                    targets = [np.lib.format.open_memmap(file, mode="w+", dtype=dtype,
                                                         shape=shape)
                               for file, (shape, dtype) in zip(files, shapes)]
            if targets is not None:
                for target, y in zip(targets, outputs):
                    target[start:start + y.shape[0]] = y
            batches += 1
            done = min(start + size, n)
            rate = done / max(time.perf_counter() - start_time, 1e-9)
            bar.update(done, f"{rate:,.0f} samples/s")
        if targets is not None:
            for target in targets:
                target.flush()
    finally:
        bar.close()
        del targets  # closes the memory maps
    return shapes, batches


def _outputs_table(names, shapes):
    """Each output's name, shape and dtype, as a table."""
    rows = [[name, format_shape(shape), str(dtype)]
            for name, (shape, dtype) in zip(names, shapes)]
    return format_table(["output", "shape", "dtype"], rows)


def _mapped_input(path, model, how="--stream"):
    """The one input of ``model``, memory-mapped from a .npy file."""
    if len(model.input_names) != 1:
        raise CommandError(f"{how} reads one .npy file; the model has "
                           f"{len(model.input_names)} inputs {model.input_names}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise CommandError(f"cannot read {path!r} as a .npy file: {type(error).__name__}: "
                           f"{error}")
    if not isinstance(array, np.ndarray):
        array.close()
        raise CommandError(f"{how} reads a .npy file (memory-mapped); {path!r} is an "
                           ".npz archive: save its array with np.save")
    return array


def run_stream(args):
    """predict --stream: the stateful model on chunks of ``args.chunk`` time steps of
    the memory-mapped input; outputs with a time axis are written chunk by chunk
    into memory-mapped .npy files (zipped, uncompressed, into the --output archive
    at the end), the others (one value per sequence) are the last chunk's."""
    if args.batch_size is not None:
        raise CommandError("--batch-size does not go with --stream: the stateful model "
                           "continues every sequence of the input at each chunk")
    if args.output and _layout(args.output, ["output"]) != "npz":
        raise CommandError("--stream writes an .npz archive: --output must name one "
                           "(not a .npy file or a folder)")
    model = models.load(args.path, weights=args.weights, stateful=True)
    x = _mapped_input(args.input, model)
    models.check_inputs(model, [x], args.input, any_length=True)
    if not model._stream.input_timed[0]:
        raise CommandError(f"the model's input {model.input_names[0]!r} has no time axis "
                           "to stream (a sequence is (batch, timesteps, ...), or "
                           "(batch, timesteps) of integers for an Embedding)")
    if x.shape[1] == 0:
        raise CommandError(f"--input {args.input}: no time steps to stream (shape "
                           f"{tuple(x.shape)})")
    steps = model.input_specs[0]["shape"][1]
    if steps is not None:  # a model built for slices of a fixed length (Keras' stateful)
        if x.shape[1] % steps:
            raise CommandError(f"--input {args.input}: the model takes slices of exactly "
                               f"{steps} time steps, so the input's {x.shape[1]} must be a "
                               f"multiple of {steps}")
        args.chunk = steps  # each call one slice of that length, as the model says
    names, timed = model.output_names, model._stream.output_timed
    folder = tempfile.mkdtemp(prefix="minirnn-stream-", dir=os.path.dirname(
        os.path.abspath(args.output)) if args.output else None)
    try:
        written, shapes, chunks = _stream_chunks(model, x, args, folder, names, timed)
        print(f"minirnn predict --stream: {args.path} on {args.input} "
              f"({models.describe_inputs(model, [x])}), {chunks} chunks of up to "
              f"{args.chunk} steps")
        print(_outputs_table(names, shapes))
        if args.output:
            _zip_arrays(args.output, names, written)
            print(f"Wrote {args.output}: one array per output, by name "
                  f"({', '.join(names)}).")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return OK


def _stream_chunks(model, x, args, folder, names, timed):
    """Run every chunk; returns (the .npy file of each output, (shape, dtype) of each
    output, the number of chunks)."""
    T = x.shape[1]
    files = [os.path.join(folder, f"{k}.npy") for k in range(len(names))]
    targets, shapes, chunks = [None] * len(names), [None] * len(names), 0
    for start in range(0, T, args.chunk):
        chunk = np.ascontiguousarray(x[:, start:start + args.chunk])
        outputs = models.outputs_list(models.run_model(lambda: model(chunk), args.input))
        chunks += 1
        for k, y in enumerate(outputs):
            if not timed[k]:  # one value per sequence: the one after the latest step
                targets[k], shapes[k] = y, (y.shape, y.dtype)
                continue
            if shapes[k] is None:
                shapes[k] = ((y.shape[0], T, *y.shape[2:]), y.dtype)
                if args.output:
                    targets[k] = np.lib.format.open_memmap(files[k], mode="w+",
                                                           dtype=y.dtype, shape=shapes[k][0])
            if args.output:
                targets[k][:, start:start + y.shape[1]] = y
    if args.output:
        for k, target in enumerate(targets):
            if timed[k]:
                target.flush()
            else:
                np.save(files[k], target)
    targets.clear()  # closes the memory maps before the files are zipped
    return files, shapes, chunks


def _zip_arrays(path, names, files):
    """An .npz archive (uncompressed, as np.savez writes) of the .npy files, each
    copied in pieces."""
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, file in zip(names, files):
                archive.write(file, arcname=f"{name}.npy")
    except OSError as error:
        raise CommandError(f"cannot write {path!r}: {error.strerror or error}")


def add_parser(commands):
    parser = commands.add_parser(
        "predict", help="run a saved model on arrays from a .npy / .npz file",
        description="Load a saved Keras model with minirnn.load_model (no TensorFlow), "
                    "run it on the arrays of a .npy file (one input) or an .npz file (one "
                    "array per input, by input name or in order), and print the outputs' "
                    "shapes or write them (--output). With --batch-size a .npy input may "
                    "be larger than memory: it is memory-mapped and run batch by batch, "
                    "with a progress bar on a terminal, each batch's outputs written as "
                    "they come.")
    add_model_arguments(parser)
    parser.add_argument("--input", metavar="X", type=input_file, required=True,
                        help="X.npy (one input) or X.npz (arrays by input name, or in order)")
    parser.add_argument("--output", metavar="Y", type=output_target,
                        help="write the outputs here: Y.npy (a model with one output), a "
                             "folder (DIR/ or an existing one: one <output name>.npy per "
                             "output), or any other name: an .npz archive, arrays by "
                             "output name; without it the shapes are printed")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="run the samples in slices of this many (default: all at "
                             "once); a .npy input is then memory-mapped and its outputs "
                             "written batch by batch, so it may be larger than memory")
    parser.add_argument("--stream", action="store_true",
                        help="run the model stateful on a long input, --chunk time steps "
                             "per call: the .npy input is memory-mapped and read chunk by "
                             "chunk, the outputs written as they come, so memory stays "
                             "that of one chunk; the outputs equal those of the whole "
                             "sequence at once. Needs one input, in a .npy file, and "
                             "layers that are causal in time (a layer that needs the "
                             "whole sequence is refused, named)")
    parser.add_argument("--chunk", metavar="STEPS", type=positive_int, default=256,
                        help="with --stream: time steps per call (default: 256)")
    parser.set_defaults(run=run)
