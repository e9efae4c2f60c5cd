"""minirnn predict: run a saved model on arrays from a file, without TensorFlow."""

import numpy as np

from . import models
from .arguments import add_model_arguments, input_file, output_file, positive_int
from .common import OK, CommandError
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


def run(args):
    model = models.load(args.path, weights=args.weights)
    arrays = models.read_inputs(args.input, model)
    models.check_inputs(model, arrays, args.input)
    x = arrays if len(arrays) > 1 else arrays[0]
    result = models.run_model(lambda: model.predict(x, batch_size=args.batch_size),
                              args.input)
    outputs = models.outputs_list(result)
    print(f"minirnn predict: {args.path} on {args.input} "
          f"({models.describe_inputs(model, arrays)})")
    rows = [[name, format_shape(a.shape), str(a.dtype)]
            for name, a in zip(model.output_names, outputs)]
    print(format_table(["output", "shape", "dtype"], rows))
    if args.output:
        write_outputs(args.output, model.output_names, outputs)
        print(f"Wrote {args.output}: one array per output, by name "
              f"({', '.join(model.output_names)}).")
    return OK


def add_parser(commands):
    parser = commands.add_parser(
        "predict", help="run a saved model on arrays from a .npy / .npz file",
        description="Load a saved Keras model with minirnn.load_model (no TensorFlow), "
                    "run it on the arrays of a .npy file (one input) or an .npz file (one "
                    "array per input, by input name or in order), and print the outputs' "
                    "shapes or write them to an .npz file (one array per output name).")
    add_model_arguments(parser)
    parser.add_argument("--input", metavar="X", type=input_file, required=True,
                        help="X.npy (one input) or X.npz (arrays by input name, or in order)")
    parser.add_argument("--output", metavar="Y.npz", type=output_file,
                        help="write the outputs here (an .npz archive, arrays by output "
                             "name); without it the shapes are printed")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="run the samples in slices of this many (default: all at once)")
    parser.set_defaults(run=run)
