"""What the kernels tell the compiler: vector width, no aliasing, float types.

- :func:`_wide_vectors` lets LLVM use the CPU's widest vectors in a function;
- :func:`_disjoint_arrays` promises LLVM that a function's arrays share no memory;
- :func:`typed` writes a constant in its argument's float type, so that float32
  arithmetic stays float32.

May use: numpy, numba and llvmlite.
"""

import numpy as np
from numba import types
from numba.extending import intrinsic, overload
from llvmlite import ir


@intrinsic
def _wide_vectors(typingctx):
    """Let the compiler vectorise the calling function's loops with the CPU's widest
    vectors.

    LLVM's tuning for recent Intel CPUs (Skylake-X to Emerald Rapids) keeps loops it
    vectorises to 256 bits, even with AVX-512, to avoid the clock drop that wide
    vectors once cost. For the gate passes here 512-bit vectors are about 1.5x
    faster (measured on a Xeon Emerald Rapids), so each function with a hot
    element-wise loop calls this first: it marks the function with LLVM's
    ``"prefer-vector-width"="512"``. On a CPU without AVX-512 the attribute changes
    nothing; each element's arithmetic is the same at any width.
    """
    def codegen(context, builder, signature, args):
        # llvmlite's attribute set names the attributes it knows; this one is a
        # string attribute, which LLVM reads from the function's definition.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _disjoint_arrays(typingctx):
    """Tell the compiler that the calling function's array arguments share no memory,
    so that it needs no run-time overlap checks before a vectorised loop (LLVM's
    ``noalias`` on each pointer to array data).

    Only for the one-pass steps, whose caller passes whole (B, .) arrays and checks
    that the states, output, outputs (return_sequences) and biases do not overlap
    (``_overlap``; the two GRU biases may be one array: both are only read): with
    overlapping arrays this promise would make the results silently wrong. Measured
    on a Xeon (Emerald Rapids): an LSTM row 14% faster at M = 128, 19% at M = 64.
    """
    def codegen(context, builder, signature, args):
        for argument in builder.function.args:
            pointer = argument.type
            if isinstance(pointer, ir.PointerType) and not pointer.is_opaque \
                    and isinstance(pointer.pointee, (ir.FloatType, ir.DoubleType)):
                argument.add_attribute("noalias")
        return context.get_dummy_value()
    return types.none(), codegen


def typed(x, value):
    """``value`` as a scalar of x's floating type.

    Python float literals are float64 in Numba and would silently promote float32
    arithmetic to float64; every constant in a kernel goes through this, so float32
    activations are computed in float32 (overflowing where TensorFlow's do).
    """
    return value


@overload(typed)
def _typed_overload(x, value):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)
