"""The textbook: one readable NumPy step per cell, in Keras' weight layout.

Each function takes one timestep of input ``x`` (B, D) and the previous state, and
returns the gates and the new state, written exactly as Keras 3 (implementation 2,
the default) orders the arithmetic, so that in float64 the result agrees with Keras
to machine precision. Notation: ``@`` is the matrix product, ``*`` is element-wise,
sigma is the recurrent activation (sigmoid by default), phi the activation (tanh by
default), M the number of units. Weight columns are split in blocks of M, in Keras'
gate order.

:func:`run` drives any step over a whole sequence with Keras' masking and
go_backwards rules. It is the second opinion on the compiled kernels in
:mod:`minirnn.kernels` and the source of ``layer.trace``.

May use: numpy.
"""

from collections import namedtuple

import numpy as np

LSTMStep = namedtuple("LSTMStep", "i f g o c h")
GRUStep = namedtuple("GRUStep", "z r hh h")
SimpleRNNStep = namedtuple("SimpleRNNStep", "h")


def lstm_step(x, h, c, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gate).

    Keras layout: kernel W (D, 4M), recurrent_kernel U (M, 4M), bias b (4M,), gate
    blocks in the order i, f, g (Keras calls it c), o::

        z = (x @ W + h @ U) + b              split into z_i, z_f, z_g, z_o
        i = sigma(z_i)                       input gate
        f = sigma(z_f)                       forget gate
        g = phi(z_g)                         candidate cell
        o = sigma(z_o)                       output gate
        c' = f * c + i * g
        h' = o * phi(c')

    Args:
        x: input at this step, (B, D).
        h, c: hidden and cell state, (B, M) each.
        kernel, recurrent_kernel: W (D, 4M) and U (M, 4M).
        bias: b (4M,), or None when the layer has ``use_bias=False``.
        activation, recurrent_activation: phi and sigma, NumPy functions.

    Returns:
        LSTMStep(i, f, g, o, c, h), each (B, M).
    """
    z = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        z = z + bias
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
    i = recurrent_activation(z_i)
    f = recurrent_activation(z_f)
    g = activation(z_g)
    o = recurrent_activation(z_o)
    c = f * c + i * g
    h = o * activation(c)
    return LSTMStep(i, f, g, o, c, h)


def gru_step(x, h, kernel, recurrent_kernel, bias, activation, recurrent_activation,
             reset_after=True):
    """One GRU step (Cho et al. 2014), in either of Keras' two variants.

    Keras layout: kernel W (D, 3M), recurrent_kernel U (M, 3M), gate blocks in the
    order z (update), r (reset), h (candidate).

    reset_after=True (Keras' default, cuDNN-compatible, "linear before reset"):
    bias (2, 3M), row 0 added to the input projection, row 1 to the recurrent one::

        x_z, x_r, x_h = x @ W + b[0]
        u_z, u_r, u_h = h @ U + b[1]
        z  = sigma(x_z + u_z)
        r  = sigma(x_r + u_r)
        hh = phi(x_h + r * u_h)              reset applied after the product
        h' = z * h + (1 - z) * hh

    reset_after=False (the original paper, TF1-era models): bias (3M,)::

        x_z, x_r, x_h = x @ W + b
        z  = sigma(x_z + h @ U_z)
        r  = sigma(x_r + h @ U_r)
        hh = phi(x_h + (r * h) @ U_h)        reset applied before the product
        h' = z * h + (1 - z) * hh

    Args:
        x: input at this step, (B, D).
        h: hidden state, (B, M).
        kernel, recurrent_kernel: W (D, 3M) and U (M, 3M).
        bias: (2, 3M) with reset_after, else (3M,); None without bias.
        activation, recurrent_activation: phi and sigma, NumPy functions.
        reset_after: which variant.

    Returns:
        GRUStep(z, r, hh, h), each (B, M).
    """
    M = h.shape[-1]
    x_proj = x @ kernel
    if bias is not None:
        x_proj = x_proj + (bias[0] if reset_after else bias)
    x_z, x_r, x_h = np.split(x_proj, 3, axis=-1)
    if reset_after:
        u = h @ recurrent_kernel
        if bias is not None:
            u = u + bias[1]
        u_z, u_r, u_h = np.split(u, 3, axis=-1)
        z = recurrent_activation(x_z + u_z)
        r = recurrent_activation(x_r + u_r)
        hh = activation(x_h + r * u_h)
    else:
        u = h @ recurrent_kernel[:, : 2 * M]
        u_z, u_r = np.split(u, 2, axis=-1)
        z = recurrent_activation(x_z + u_z)
        r = recurrent_activation(x_r + u_r)
        hh = activation(x_h + (r * h) @ recurrent_kernel[:, 2 * M:])
    h = z * h + (1 - z) * hh
    return GRUStep(z, r, hh, h)


def simple_rnn_step(x, h, kernel, recurrent_kernel, bias, activation):
    """One Elman RNN step.

    Keras layout: kernel W (D, M), recurrent_kernel U (M, M), bias b (M,)::

        h' = phi((x @ W + b) + h @ U)

    Returns:
        SimpleRNNStep(h), (B, M).
    """
    z = x @ kernel
    if bias is not None:
        z = z + bias
    return SimpleRNNStep(activation(z + h @ recurrent_kernel))


def run(step, x, states, mask=None, go_backwards=False, zero_output_for_mask=False,
        record=False):
    """Run a step function over a sequence with Keras' (TensorFlow backend) rules.

    ``step(x_t, *states)`` returns a named tuple whose last one or two fields are the
    new states (h, or c and h for the LSTM), and whose field ``h`` is the output.

    - go_backwards: steps run from the last input to the first, and the outputs are
      kept in processing order (``outputs[:, 0]`` comes from the last input step).
    - mask (B, T), True = keep: at a masked step every state is held, and the output
      is the previous step's output (zeros before the first step, even with a
      non-zero initial state), or zeros with ``zero_output_for_mask``.

    Args:
        step: a function ``step(x_t, *states) -> named tuple``.
        x: (B, T, D).
        states: list of initial states, in Keras order ([h] or [h, c]), (B, M) each.
        mask: (B, T) bool or None.
        go_backwards: process the sequence in reverse.
        zero_output_for_mask: output zeros at masked steps.
        record: also return every field of every step, states held where masked.

    Returns:
        (outputs (B, T, M), final states list, trace dict or None).
    """
    B, T, _ = x.shape
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    state_names = ("h", "c") if len(states) == 2 else ("h",)
    states = dict(zip(state_names, states))
    output = np.zeros_like(states["h"])
    outputs = []
    trace = {} if record else None
    for t in order:
        new = step(x[:, t, :], *(states[n] for n in state_names))._asdict()
        keep = np.ones((B, 1), bool) if mask is None else mask[:, t, None]
        for n in state_names:
            new[n] = np.where(keep, new[n], states[n])
            states[n] = new[n]
        if zero_output_for_mask:
            output = np.where(keep, new["h"], np.zeros_like(output))
        else:
            output = np.where(keep, new["h"], output)
        outputs.append(output)
        if record:
            for name, value in new.items():
                trace.setdefault(name, []).append(value)
    outputs = np.stack(outputs, axis=1)
    if record:
        trace = {name: np.stack(values, axis=1) for name, values in trace.items()}
    return outputs, [states[n] for n in state_names], trace
