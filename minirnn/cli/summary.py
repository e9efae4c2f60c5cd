"""minirnn summary: what a saved model holds, read without TensorFlow: its layers
(class, output shape, parameters, what each reads), its inputs and outputs, and
whose numbers it gives (Keras 2 or Keras 3 semantics).

May use: its own modules.
"""

from . import models
from .arguments import add_model_arguments
from .common import OK

__all__ = ["add_parser", "run"]


def _input_line(spec):
    shape = "(" + ", ".join("None" if n is None else str(n) for n in spec["shape"]) + ")"
    notes = []
    if spec["int_high"] is not None:
        notes.append(f"integers below {spec['int_high']} (Embedding)")
    if spec["mask_zero"]:
        notes.append("0 = padding (mask_zero)")
    if spec["mask_value"] is not None:
        notes.append(f"steps equal to {spec['mask_value']} are masked (Masking)")
    return f"  {spec['name']}: {shape} {spec['dtype']}" + (f"; {'; '.join(notes)}" if notes
                                                            else "")


def run(args):
    model = models.load(args.path, weights=args.weights)
    model.summary(print_fn=print)
    print()
    print("Inputs:")
    for spec in model.input_specs:
        print(_input_line(spec))
    print(f"Outputs: {', '.join(model.output_names)}")
    recurrent = [name for name, _ in models.recurrent_layers(model)]
    if recurrent:
        print(f"Recurrent layers (minirnn trace --model {args.path} --layer NAME): "
              f"{', '.join(recurrent)}")
    return OK


def add_parser(commands):
    parser = commands.add_parser(
        "summary", help="the layers, inputs and outputs of a saved model (no TensorFlow)",
        description="Read a saved Keras model (.keras file or folder, legacy .h5 "
                    "full-model file, tf.keras SavedModel folder, or JSON architecture "
                    "with its weights) with minirnn.load_model and print its layers, "
                    "inputs, outputs and semantics. Nothing in the file is executed.")
    add_model_arguments(parser)
    parser.set_defaults(run=run)
