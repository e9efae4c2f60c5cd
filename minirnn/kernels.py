"""Numba-compiled sequence kernels: the fast path.

Each kernel runs a whole sequence compiled, and computes what the matching step in
:mod:`minirnn.equations` computes, in the same order of floating-point operations
(so float64 results agree with Keras to machine precision):

1. The input projection ``x @ W`` is hoisted out of the time loop: the inputs of a
   chunk of timesteps are gathered time-major into one (steps * B, D) block and
   projected with one matrix product. Chunks keep the scratch memory bounded by
   ``_CHUNK_ELEMENTS`` whatever T is.
2. One recurrent matrix product ``h @ U`` per step for all gates together (the
   GRU without reset_after needs a second, ``(r * h) @ U_h``).
3. One fused pass per step over the gate pre-activations: bias, activations,
   state update, mask, output write; no temporaries.

Masks and go_backwards are handled inside. Matrix products go through Numba's
``np.dot`` (SciPy's BLAS). Arguments are not validated here: callers
(:mod:`minirnn.layers`) check every shape and dtype before calling, because an
out-of-bounds index in compiled code is not caught.

Activations are passed as integer codes (see ``minirnn.activations.ELEMENTWISE``).
"""

import math
import os
import sys
import tempfile

import numpy as np


def _ensure_cache_dir(package_dir=None):
    """Use a writable Numba cache even when the package directory is read-only.

    Numba caches compiled kernels in ``__pycache__`` beside this file. Where that is
    not writable (a read-only install) and NUMBA_CACHE_DIR is not set, point Numba
    at ``$XDG_CACHE_HOME/minirnn-numba`` (default ``~/.cache``), or at the system's
    temporary directory as a last resort. Returns the directory chosen, or None.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = package_dir or os.path.dirname(os.path.abspath(__file__))
    try:
        probe = os.path.join(here, "__pycache__")
        os.makedirs(probe, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=probe):
            pass
        return None
    except OSError:
        pass
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    for fallback in (os.path.join(home_cache, "minirnn-numba"),
                     os.path.join(tempfile.gettempdir(), "minirnn-numba")):
        try:
            os.makedirs(fallback, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=fallback):
                pass
        except OSError:
            continue
        os.environ["NUMBA_CACHE_DIR"] = fallback
        if "numba" in sys.modules:  # imported earlier: make it read the variable again
            sys.modules["numba"].core.config.reload_config()
        return fallback
    return None


_ensure_cache_dir()

from numba import njit, types  # noqa: E402  (after the cache directory is settled)
from numba.extending import overload  # noqa: E402

# Scratch for the hoisted input projection, in elements: about 4 MiB in float32.
_CHUNK_ELEMENTS = 1 << 20

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_LEAKY_RELU_ALPHA = float(np.float32(0.2))  # as TensorFlow: see minirnn.activations
_GELU_SQRT_HALF = float(np.float32(0.7071067811865476))


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


@njit(cache=True)
def _softplus(x):
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(cache=True)
def _sigmoid(x):
    one = typed(x, 1.0)
    if x >= 0:
        return one / (one + math.exp(-x))
    e = math.exp(x)
    return e / (one + e)


@njit(cache=True)
def _hard_sigmoid(x):
    zero, three, six = typed(x, 0.0), typed(x, 3.0), typed(x, 6.0)
    return min(max(x + three, zero), six) / six


@njit(cache=True)
def activate(code, x):
    """Element-wise Keras 3 activation number ``code`` (see minirnn.activations).

    Computed in the type of x (float32 or float64). NaN propagates.
    """
    zero, half, one = typed(x, 0.0), typed(x, 0.5), typed(x, 1.0)
    if code == 1:
        return math.tanh(x)
    if code == 2:
        return _sigmoid(x)
    if code == 0:
        return x
    if code == 3:
        return _hard_sigmoid(x)
    if code == 4:
        return zero if x < zero else x
    if code == 5:
        six = typed(x, 6.0)
        return zero if x < zero else (six if x > six else x)
    if code == 6:
        return typed(x, _LEAKY_RELU_ALPHA) * x if x < zero else x
    if code == 7:
        return x if x > zero else math.expm1(x)
    if code == 8:
        scale, alpha = typed(x, _SELU_SCALE), typed(x, _SELU_ALPHA)
        return scale * (x if x > zero else alpha * math.expm1(x))
    if code == 9:
        return _softplus(x)
    if code == 10:
        return x / (one + abs(x))
    if code == 11:
        if x > half:
            return x - half
        if x < -half:
            return x + half
        return zero if x == x else x
    if code == 12:
        if x <= -one:
            return zero
        if x < one:
            return typed(x, 0.25) * ((x + one) * (x + one))
        return x
    if code == 13:
        return x * _sigmoid(x)
    if code == 14:
        return (x + math.sqrt(x * x + typed(x, 4.0))) / typed(x, 2.0)
    if code == 15:
        return half * x * math.erfc(-x * typed(x, _GELU_SQRT_HALF))
    if code == 16:
        return max(x, zero) + math.expm1(min(x, zero))
    if code == 17:
        return x - math.tanh(x)
    if code == 18:
        return -one if x < -one else (one if x > one else x)
    if code == 19:
        return x if abs(x) > half else (zero if x == x else x)
    if code == 20:
        return math.exp(x)
    if code == 21:
        return x * _hard_sigmoid(x)
    if code == 22:
        return x * math.tanh(_softplus(x))
    if code == 23:
        return -_softplus(-x)
    if code == 24:
        if x <= -one:
            return zero
        if x >= one:
            return one
        return half * (x + one)
    return x * typed(x, math.nan)


@njit(cache=True)
def activate_array(code, values):
    """Apply activation ``code`` to a copy of a 1-D or N-D array (for tests)."""
    out = np.empty_like(values)
    flat_in = values.ravel()
    flat_out = out.ravel()
    for k in range(flat_in.size):
        flat_out[k] = activate(code, flat_in[k])
    return out


@njit(cache=True)
def _chunk_steps(B, T, width):
    return max(1, min(T, _CHUNK_ELEMENTS // max(1, B * width)))


@njit(cache=True)
def _project_chunk(x, kernel, s0, n, go_backwards, scratch):
    """x @ W for processing steps s0 .. s0+n-1, time-major: row s*B + b."""
    B, T, D = x.shape
    for s in range(n):
        t = T - 1 - (s0 + s) if go_backwards else s0 + s
        for b in range(B):
            for d in range(D):
                scratch[s * B + b, d] = x[b, t, d]
    return np.dot(scratch[: n * B], kernel)


@njit(cache=True)
def lstm_sequence(x, kernel, recurrent_kernel, bias, h, c, mask, use_mask, go_backwards,
                  zero_output_for_mask, return_sequences, act, rec_act, outputs, output):
    """Run an LSTM over x (B, T, D); see equations.lstm_step for the maths.

    h, c (B, M): initial states, overwritten with the final states.
    output (B, M): the last output, starts as zeros (Keras' "previous output").
    outputs (B, T, M): every output when return_sequences, else unused.
    mask (B, T) bool, read when use_mask. bias (4M,): zeros when the layer has none.
    """
    B, T, D = x.shape
    M = h.shape[1]
    steps = _chunk_steps(B, T, max(D, 4 * M))
    scratch = np.empty((steps * B, D), x.dtype)
    hu = np.empty((B, 4 * M), x.dtype)
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        xw = _project_chunk(x, kernel, s0, n, go_backwards, scratch)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            np.dot(h, recurrent_kernel, hu)
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    row = s * B + b
                    for j in range(M):
                        z_i = xw[row, j] + hu[b, j] + bias[j]
                        z_f = xw[row, M + j] + hu[b, M + j] + bias[M + j]
                        z_g = xw[row, 2 * M + j] + hu[b, 2 * M + j] + bias[2 * M + j]
                        z_o = xw[row, 3 * M + j] + hu[b, 3 * M + j] + bias[3 * M + j]
                        i = activate(rec_act, z_i)
                        f = activate(rec_act, z_f)
                        g = activate(act, z_g)
                        o = activate(rec_act, z_o)
                        c_new = f * c[b, j] + i * g
                        c[b, j] = c_new
                        h_new = o * activate(act, c_new)
                        h[b, j] = h_new
                        output[b, j] = h_new
                if return_sequences:
                    outputs[b, step, :] = output[b, :]


@njit(cache=True)
def gru_sequence(x, kernel, recurrent_kernel, recurrent_kernel_h, input_bias, recurrent_bias,
                 reset_after, h, mask, use_mask, go_backwards, zero_output_for_mask,
                 return_sequences, act, rec_act, outputs, output):
    """Run a GRU over x (B, T, D); see equations.gru_step for the maths.

    reset_after=True: recurrent_kernel is U (M, 3M), recurrent_kernel_h unused,
    input_bias = b[0], recurrent_bias = b[1].
    reset_after=False: recurrent_kernel is U[:, :2M], recurrent_kernel_h is U[:, 2M:],
    input_bias = b, recurrent_bias unused.
    Biases are zeros when the layer has none. Other arguments as lstm_sequence.
    """
    B, T, D = x.shape
    M = h.shape[1]
    one = typed(h[0, 0], 1.0)
    steps = _chunk_steps(B, T, max(D, 3 * M))
    scratch = np.empty((steps * B, D), x.dtype)
    hu = np.empty((B, recurrent_kernel.shape[1]), x.dtype)
    z = np.empty((B, M), x.dtype)
    rh = np.empty((B, M), x.dtype)
    rhu = np.empty((B, M), x.dtype)
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        xw = _project_chunk(x, kernel, s0, n, go_backwards, scratch)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            np.dot(h, recurrent_kernel, hu)
            if not reset_after:
                # z and r first; the candidate needs (r * h) @ U_h.
                for b in range(B):
                    row = s * B + b
                    for j in range(M):
                        x_z = xw[row, j] + input_bias[j]
                        x_r = xw[row, M + j] + input_bias[M + j]
                        z[b, j] = activate(rec_act, x_z + hu[b, j])
                        r = activate(rec_act, x_r + hu[b, M + j])
                        rh[b, j] = r * h[b, j]
                np.dot(rh, recurrent_kernel_h, rhu)
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    row = s * B + b
                    for j in range(M):
                        x_h = xw[row, 2 * M + j] + input_bias[2 * M + j]
                        if reset_after:
                            x_z = xw[row, j] + input_bias[j]
                            x_r = xw[row, M + j] + input_bias[M + j]
                            u_z = hu[b, j] + recurrent_bias[j]
                            u_r = hu[b, M + j] + recurrent_bias[M + j]
                            u_h = hu[b, 2 * M + j] + recurrent_bias[2 * M + j]
                            zj = activate(rec_act, x_z + u_z)
                            r = activate(rec_act, x_r + u_r)
                            hh = activate(act, x_h + r * u_h)
                        else:
                            zj = z[b, j]
                            hh = activate(act, x_h + rhu[b, j])
                        h_new = zj * h[b, j] + (one - zj) * hh
                        h[b, j] = h_new
                        output[b, j] = h_new
                if return_sequences:
                    outputs[b, step, :] = output[b, :]


@njit(cache=True)
def simple_rnn_sequence(x, kernel, recurrent_kernel, bias, h, mask, use_mask, go_backwards,
                        zero_output_for_mask, return_sequences, act, outputs, output):
    """Run a SimpleRNN over x (B, T, D); see equations.simple_rnn_step for the maths.

    Arguments as lstm_sequence; bias (M,) is zeros when the layer has none.
    """
    B, T, D = x.shape
    M = h.shape[1]
    steps = _chunk_steps(B, T, max(D, M))
    scratch = np.empty((steps * B, D), x.dtype)
    hu = np.empty((B, M), x.dtype)
    for s0 in range(0, T, steps):
        n = min(steps, T - s0)
        xw = _project_chunk(x, kernel, s0, n, go_backwards, scratch)
        for s in range(n):
            step = s0 + s
            t = T - 1 - step if go_backwards else step
            np.dot(h, recurrent_kernel, hu)
            for b in range(B):
                if use_mask and not mask[b, t]:
                    if zero_output_for_mask:
                        output[b, :] = 0
                else:
                    row = s * B + b
                    for j in range(M):
                        h_new = activate(act, (xw[row, j] + bias[j]) + hu[b, j])
                        h[b, j] = h_new
                        output[b, j] = h_new
                if return_sequences:
                    outputs[b, step, :] = output[b, :]
