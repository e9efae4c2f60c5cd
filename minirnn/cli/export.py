"""minirnn export: write a saved model as an ONNX file, checked against minirnn first.

The model is loaded with minirnn.load_model (no TensorFlow), written as ONNX graph by
:func:`minirnn.bridge.onnx.to_onnx`, and run in ONNX Runtime on example inputs before
the file is written: a model or setting that cannot be exported exactly is refused
with the layer, its class and the reason (exit 2), and nothing is written.

May use: :mod:`minirnn.bridge.onnx` and its own modules.
"""

from . import models
from .arguments import add_model_arguments, output_file
from .common import OK, CommandError

__all__ = ["add_parser", "run"]

EXPORT_HINT = 'pip install "minirnn[export]"'


def _opset(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; received {text!r}") from None
    if not 14 <= value <= 21:
        raise argparse.ArgumentTypeError(f"the opset must be from 14 to 21; received {value}")
    return value


def run(args):
    from ..bridge import onnx as bridge
    model = models.load(args.path, weights=args.weights)
    try:
        proto = bridge.to_onnx(model, args.output, opset=args.opset)
    except ImportError as error:
        raise CommandError(f"{error}") from None
    except ValueError as error:  # refused, or the check failed: nothing written
        raise CommandError(f"cannot export {args.path!r}: {error}") from None
    except OSError as error:
        raise CommandError(f"cannot write {args.output!r}: {error.strerror or error}") \
            from None
    recurrent = sorted({node.op_type for node in proto.graph.node
                        if node.op_type in ("LSTM", "GRU", "RNN", "Scan")})
    print(f"minirnn export: wrote {args.output} (opset {proto.opset_import[0].version}; "
          f"inputs {', '.join(i.name for i in proto.graph.input)}; outputs "
          f"{', '.join(o.name for o in proto.graph.output)}; recurrent operators: "
          f"{', '.join(recurrent) or 'none'}), checked in ONNX Runtime against minirnn "
          "on example inputs.")
    return OK


def add_parser(commands):
    parser = commands.add_parser(
        "export", help="write a saved model as an ONNX file (checked in ONNX Runtime)",
        description="Load a saved Keras model with minirnn.load_model (no TensorFlow) and "
                    "write it as an ONNX graph: recurrent layers as ONNX LSTM/GRU/RNN "
                    "nodes, or a Scan of their step (masks, float64, other activations). "
                    "ONNX Runtime runs the graph on example inputs and it must match "
                    "minirnn (1e-6 abs + 1e-6 rel in float32, 1e-12 in float64) before the "
                    f"file is written. Needs: {EXPORT_HINT}.")
    add_model_arguments(parser)
    parser.add_argument("output", metavar="OUT.onnx", type=output_file,
                        help="the ONNX file to write")
    parser.add_argument("--opset", type=_opset, default=None,
                        help="the ONNX opset (14 to 21; default 17)")
    parser.set_defaults(run=run)
