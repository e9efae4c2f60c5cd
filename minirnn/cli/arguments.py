"""Argument types of the command line: each checks one value as argparse reads
it, so that a bad value is a usage error (exit 2) before any work starts.

May use: matplotlib.
"""

import argparse
import os
import zipfile

__all__ = ["non_negative_int", "positive_int", "output_file", "image_file", "image_formats",
           "input_file", "model_path", "add_model_arguments"]


def non_negative_int(text):
    """An integer >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {value}")
    return value


def positive_int(text):
    """An integer > 0 (a size, a count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value}")
    return value


# ---- paths -------------------------------------------------------------------
# Checked as the arguments are read, so that a bad path ends the command (exit 2,
# naming the path and the reason) before any work starts.

def _reason(error):
    return error.strerror or str(error)


def output_file(text):
    """A file the command will write: its folder must exist and be writable, and
    the path must not be a folder. Returns the path unchanged."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name; received ''")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: it is a folder")
    folder = os.path.dirname(text) or "."
    if not os.path.exists(folder):
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: the folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: {folder!r} is not a folder")
    target = text if os.path.exists(text) else folder
    if not os.access(target, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: permission denied on {target!r}")
    return text


def image_formats():
    """The file extensions the picture can be written as: matplotlib's own list
    where it is installed, otherwise the formats every recent matplotlib writes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except Exception:  # not installed, or broken: the command says so later
        return ("eps", "jpeg", "jpg", "pdf", "png", "ps", "raw", "rgba", "svg", "svgz",
                "tif", "tiff")
    return tuple(sorted(FigureCanvasAgg.get_supported_filetypes()))


def image_file(text):
    """A picture to write: an output file whose extension is a format matplotlib
    writes. A path without an extension gets ".png" (what matplotlib would write),
    so that the path returned is the file that will be written."""
    path = output_file(text)
    stem, extension = os.path.splitext(path)
    if not extension:
        return output_file(path + ".png")
    formats = image_formats()
    if extension[1:].lower() not in formats:
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: unknown picture format {extension!r}; expected one of "
            + ", ".join("." + f for f in formats))
    return path


def input_file(text):
    """A file the command will read: it must exist, be a file, and open for reading."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name; received ''")
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: it is a folder")
    try:
        with open(text, "rb"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: {_reason(error)}")
    return text


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_path(text):
    """A saved Keras model: a .keras file (a zip with config.json), its unzipped
    folder, a tf.keras SavedModel folder, an HDF5 (.h5) file, or a JSON architecture
    (with --weights). Only the container is checked here; what is inside is the
    loader's to judge."""
    if not text:
        raise argparse.ArgumentTypeError("expected a model file; received ''")
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: no such file or folder")
    if os.path.isdir(text):
        for marker in ("config.json", "saved_model.pb"):
            if os.path.isfile(os.path.join(text, marker)):
                input_file(os.path.join(text, marker))
                return text
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r}: a folder, but neither an unzipped .keras model (it has "
            "no config.json) nor a SavedModel (no saved_model.pb)")
    input_file(text)
    if text.lower().endswith(".json"):
        return text
    if zipfile.is_zipfile(text):
        try:
            with zipfile.ZipFile(text) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}: a broken zip ({error})")
        if "config.json" not in names:
            raise argparse.ArgumentTypeError(
                f"cannot read {text!r}: a zip, but not a .keras model (it has no config.json)")
        return text
    with open(text, "rb") as handle:
        signature = handle.read(len(HDF5_SIGNATURE))
    if signature != HDF5_SIGNATURE:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r}: not a saved Keras model (expected a .keras zip with "
            "config.json, its unzipped folder, or an HDF5 .h5 file)")
    return text


def add_model_arguments(parser):
    """PATH (a saved model) and --weights (the weights of a JSON architecture), as
    the commands on saved models take them."""
    parser.add_argument("path", metavar="PATH", type=model_path,
                        help="the model: .keras, its unzipped folder, .h5, a SavedModel "
                             "folder, or a JSON architecture with --weights")
    parser.add_argument("--weights", metavar="W.h5", type=input_file, default=None,
                        help="the weights file of a JSON architecture (PATH = model.json): "
                             "Keras 2 save_weights .h5 or Keras 3 .weights.h5")
