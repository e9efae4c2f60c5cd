"""Benchmark cases: sizes, the default grids, weights, inputs and reference outputs.

A case is one cell ("LSTM" or "GRU") at one size (B, T, D, M): batch, timesteps,
input features, units. Its weights (Keras layout and gate order) and input are
drawn from a seed derived from the case, so every engine and every run sees the
same numbers, and are rounded to float32 so that the float32 and float64 runs
start from exactly the same values. The reference output is minirnn's readable
NumPy path (``engine="numpy"``) in float64: the second opinion that the fast
kernels are themselves held against.
"""

import numpy as np

CELLS = ("LSTM", "GRU")
GATES = {"LSTM": 4, "GRU": 3}

SEED_SIZE = (1, 8, 2, 3)
# (B, T, D, M): the seed notebook's size, a small model, a mid-size batch, a large
# layer, a long sequence.
FULL_SIZES = (
    (1, 8, 2, 3),
    (1, 100, 32, 64),
    (32, 100, 128, 128),
    (64, 100, 256, 512),
    (8, 1000, 64, 128),
)
QUICK_SIZES = FULL_SIZES[:3]

# Largest absolute difference from the float64 reference that still counts as a
# correct answer. Every output of these layers is an h, and |h| < 1 (h is a
# sigmoid gate times a tanh, or a convex mix of tanh values), so an absolute
# tolerance is meaningful. float32: one rounding is ~6e-8 at 1.0; a long
# recurrence accumulates a few hundred of those at most, so 1e-4 leaves a wide
# margin for honest float32 arithmetic (oneDNN's, MKL's or cuDNN's summation
# order included) while a swapped gate, a missing bias or TF32 matrix products
# (10-bit mantissa, errors ~1e-3) are far above it. float64: Keras and minirnn
# agree to ~1e-15; 1e-9 still catches any float32 step hidden inside a float64
# engine.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def parse_sizes(text):
    """"1x8x2x3,32x100x128x128" -> [(1, 8, 2, 3), (32, 100, 128, 128)].

    Raises ValueError with the offending item for anything else.
    """
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.lower().split("x")
        try:
            size = tuple(int(part) for part in parts)
        except ValueError:
            size = ()
        if len(size) != 4 or min(size) < 1:
            raise ValueError(
                f"size {item!r} must be BxTxDxM with four positive integers, "
                "e.g. 32x100x128x128")
        sizes.append(size)
    if not sizes:
        raise ValueError(f"no sizes in {text!r}")
    return sizes


def size_label(size):
    """(1, 8, 2, 3) -> "1x8x2x3"."""
    return "x".join(str(n) for n in size)


def flops(cell, size):
    """Floating-point operations of the matrix products alone: 2*G*M*(D+M)*B*T."""
    B, T, D, M = size
    return 2 * GATES[cell] * M * (D + M) * B * T


def make_case(cell, size, seed=0):
    """Weights [kernel, recurrent_kernel, bias] (Keras layout) and input x, float64.

    kernel ~ N(0, 1/D), recurrent_kernel ~ N(0, 1/M), bias ~ U(-0.5, 0.5), x ~
    N(0, 1): pre-activations of order one, so the gates are neither saturated
    nor linear, and every gate block differs (a swapped gate order shows). The
    GRU bias is Keras' reset_after=True layout, (2, 3M): input row, recurrent row.
    All values are rounded to float32.
    """
    B, T, D, M = size
    width = GATES[cell] * M
    rng = np.random.default_rng([seed, GATES[cell], B, T, D, M])
    kernel = rng.normal(0.0, 1.0 / np.sqrt(D), size=(D, width))
    recurrent_kernel = rng.normal(0.0, 1.0 / np.sqrt(M), size=(M, width))
    bias_shape = (2, width) if cell == "GRU" else (width,)
    bias = rng.uniform(-0.5, 0.5, size=bias_shape)
    x = rng.normal(0.0, 1.0, size=(B, T, D))

    def f32(a):
        return a.astype(np.float32).astype(np.float64)
    return [f32(kernel), f32(recurrent_kernel), f32(bias)], f32(x)


def reference_output(cell, weights, x, return_sequences):
    """minirnn's NumPy equations in float64: the answer every engine is held to."""
    import minirnn
    layer = getattr(minirnn, cell)(weights[1].shape[0], return_sequences=return_sequences,
                                   dtype="float64", engine="numpy")
    layer.set_weights(weights)
    return np.asarray(layer(x), dtype=np.float64)


def write_case(path, cell, size, return_sequences, seed=0):
    """Save weights, input and reference output of a case to an .npz file."""
    weights, x = make_case(cell, size, seed)
    reference = reference_output(cell, weights, x, return_sequences)
    np.savez(path, kernel=weights[0], recurrent_kernel=weights[1], bias=weights[2], x=x,
             reference=reference)
    return path


def read_case(path):
    """(weights list, x, reference) from an .npz written by :func:`write_case`."""
    with np.load(path) as data:
        weights = [data["kernel"], data["recurrent_kernel"], data["bias"]]
        return weights, data["x"], data["reference"]
