"""What a trace shows, in words and in pictures.

:func:`describe_trace` names every array of ``layer.trace(x)`` and gives its
equation, so that a printout or a figure can say what it shows. It needs nothing
beyond the standard library.

:func:`plot_trace` draws a trace: one heatmap per gate (time across, units down)
and the curves of the states (c and h), each panel titled with its equation.
Matplotlib is optional (``pip install "minirnn[plot]"``) and imported only here,
inside the function, with the non-interactive Agg canvas: no window, no global
backend change.

May use: matplotlib.
"""

import importlib
import re
from collections import namedtuple

__all__ = ["TraceEntry", "describe_trace", "activation_range", "plot_trace",
           "matplotlib_available"]

# One array of a trace.
#   name      its key in layer.trace(): "i", "f", "g", "o", "c", "h", "z", "r", "hh"
#   meaning   what it is, in a few words
#   equation  how it is computed at step t, in Keras' weight layout (plain text)
#   function  the activation applied last ("sigmoid", "tanh", ...), or None for a
#             state that is a combination of other values (LSTM c and h, GRU h)
#   heatmap   drawn as a heatmap (gates) rather than as curves (states)
TraceEntry = namedtuple("TraceEntry", "name meaning equation function heatmap")

# Output ranges of the bounded activations; a gate near either end is "saturated".
_RANGES = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "sparse_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
}


def activation_range(name):
    """(low, high) output range of a bounded activation, or None if unbounded."""
    return _RANGES.get(name)


def _product(gate, use_bias, suffix=None):
    """'x_t W_i + h_{t-1} U_i + b_i': a gate's pre-activation, Keras layout."""
    suffix = gate if suffix is None else suffix
    terms = [f"x_t W_{suffix}", f"h_{{t-1}} U_{suffix}"]
    if use_bias:
        terms.append(f"b_{suffix}")
    return " + ".join(terms)


def _lstm_entries(layer):
    phi, sigma, bias = layer.activation, layer.recurrent_activation, layer.use_bias
    return [
        TraceEntry("i", "input gate: how much of g_t is written",
                   f"i_t = {sigma}({_product('i', bias)})", sigma, True),
        TraceEntry("f", "forget gate: how much of c_{t-1} is kept",
                   f"f_t = {sigma}({_product('f', bias)})", sigma, True),
        TraceEntry("g", "candidate cell values (Keras' 'c' block)",
                   f"g_t = {phi}({_product('g', bias)})", phi, True),
        TraceEntry("o", "output gate: how much of the cell is shown",
                   f"o_t = {sigma}({_product('o', bias)})", sigma, True),
        TraceEntry("c", "cell state: the long-term memory",
                   "c_t = f_t * c_{t-1} + i_t * g_t", None, False),
        TraceEntry("h", "hidden state = the output",
                   f"h_t = o_t * {phi}(c_t)", None, False),
    ]


def _gru_entries(layer):
    phi, sigma, bias = layer.activation, layer.recurrent_activation, layer.use_bias
    if layer.reset_after:
        # Two bias rows: b (bias[0], added to x W) and b' (bias[1], added to h U).
        def gate(name):
            terms = [f"x_t W_{name}", f"h_{{t-1}} U_{name}"]
            if bias:
                terms += [f"b_{name}", f"b'_{name}"]
            return " + ".join(terms)
        inside = "x_t W_h" + (" + b_h" if bias else "")
        recurrent = "h_{t-1} U_h" + (" + b'_h" if bias else "")
        candidate = f"hh_t = {phi}({inside} + r_t * ({recurrent}))"
        reset_meaning = "reset gate: scales h_{t-1} U_h in the candidate"
    else:
        def gate(name):
            return _product(name, bias)
        candidate = (f"hh_t = {phi}(x_t W_h + (r_t * h_{{t-1}}) U_h"
                     + (" + b_h)" if bias else ")"))
        reset_meaning = "reset gate: how much of h_{t-1} the candidate sees"
    return [
        TraceEntry("z", "update gate: how much of h_{t-1} is kept",
                   f"z_t = {sigma}({gate('z')})", sigma, True),
        TraceEntry("r", reset_meaning, f"r_t = {sigma}({gate('r')})", sigma, True),
        TraceEntry("hh", "candidate hidden state", candidate, phi, True),
        TraceEntry("h", "hidden state = the output",
                   "h_t = z_t * h_{t-1} + (1 - z_t) * hh_t", None, False),
    ]


def _simple_rnn_entries(layer):
    terms = "x_t W + h_{t-1} U" + (" + b" if layer.use_bias else "")
    return [TraceEntry("h", "hidden state = the output",
                       f"h_t = {layer.activation}({terms})", layer.activation, True)]


def describe_trace(layer):
    """A :class:`TraceEntry` for every array of ``layer.trace()``, in its order.

    ``layer`` is a minirnn LSTM, GRU or SimpleRNN (for a Bidirectional, describe
    its ``forward_layer`` and ``backward_layer``).
    """
    describers = {"LSTM": _lstm_entries, "GRU": _gru_entries,
                  "SimpleRNN": _simple_rnn_entries}
    # By the classes it derives from: a saved Keras 2 model's layers are subclasses.
    for cls in type(layer).__mro__:
        if cls.__name__ in describers:
            return describers[cls.__name__](layer)
    raise TypeError(
        f"`layer` must be a minirnn LSTM, GRU or SimpleRNN; received {type(layer).__name__}.")


def matplotlib_available():
    """Whether matplotlib can be imported (the ``plot`` extra)."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


# ---- drawing -----------------------------------------------------------------

_MAX_ANNOTATED_STEPS = 16   # write each value in its heatmap cell up to this many
_MAX_ANNOTATED_UNITS = 16   # timesteps and units
_MAX_CURVES = 8              # state panels draw at most this many units


def _math(equation):
    """The plain-text equation as matplotlib mathtext: 'sigmoid(x_t W_i ...)' ->
    '$\\mathrm{sigmoid}(x_t W_i ...)$', with * as the element-wise product."""
    text = re.sub(r"\b([a-z][a-z0-9_]{2,})\(",
                  lambda m: r"\mathrm{" + m.group(1).replace("_", r"\_") + "}(", equation)
    text = text.replace("hh_t", r"\tilde{h}_t").replace(" * ", r" \odot ")
    return f"${text}$"


def _math_words(meaning):
    """Set the symbols (c_{t-1}, g_t, U_h ...) of a plain sentence in mathtext."""
    return re.sub(r"\b([A-Za-z]+_(?:\{[^}]*\}|[A-Za-z0-9]+))", r"$\1$", meaning)


def _title(entry):
    """A panel title: the equation, then what it is; plain text if mathtext fails."""
    from matplotlib.mathtext import MathTextParser

    title = f"{_math(entry.equation)}\n{_math_words(entry.meaning)}"
    try:
        parser = MathTextParser("path")
        for piece in re.findall(r"\$[^$]*\$", title):
            parser.parse(piece)
    except ValueError:
        return f"{entry.equation}\n{entry.meaning}"
    return title


def _color_scale(entry, values):
    """(colormap, vmin, vmax) for a heatmap: the activation's range when bounded."""
    bounds = activation_range(entry.function)
    if bounds is None:
        low, high = float(values.min()), float(values.max())
        if low < 0 < high:
            bound = max(-low, high)
            bounds = (-bound, bound)
        else:
            bounds = (low, high if high > low else low + 1.0)
    low, high = bounds
    colormap = "RdBu_r" if low < 0 < high else "viridis"
    return colormap, low, high


def _time_axis(ax, steps, go_backwards):
    ax.set_xlabel("step t (processing order: last input first)" if go_backwards
                  else "timestep t")
    if steps <= 24:
        ax.set_xticks(range(steps))


def _draw_heatmap(fig, ax, entry, values, go_backwards):
    """values: (T, M) for one sequence; drawn with units down and time across."""
    colormap, low, high = _color_scale(entry, values)
    image = ax.imshow(values.T, aspect="auto", cmap=colormap, vmin=low, vmax=high,
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    steps, units = values.shape
    if steps <= _MAX_ANNOTATED_STEPS and units <= _MAX_ANNOTATED_UNITS:
        middle = (low + high) / 2
        span = (high - low) or 1.0
        for t in range(steps):
            for m in range(units):
                v = values[t, m]
                # Dark text on light cells, light text on dark ones.
                if colormap == "viridis":
                    dark_cell = v < low + 0.6 * span
                else:
                    dark_cell = abs(v - middle) > 0.3 * span
                ax.text(t, m, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark_cell else "black")
    _time_axis(ax, steps, go_backwards)
    ax.set_ylabel("unit")
    if units <= 24:
        ax.set_yticks(range(units))
    ax.set_title(_title(entry), fontsize=10, loc="left")


def _draw_curves(ax, entry, values, go_backwards):
    """values: (T, M); one line per unit, the first few units only."""
    steps, units = values.shape
    shown = min(units, _MAX_CURVES)
    for m in range(shown):
        ax.plot(range(steps), values[:, m], marker="o", markersize=3.5, linewidth=1.5,
                label=f"unit {m}")
    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
    ax.grid(True, alpha=0.3)
    _time_axis(ax, steps, go_backwards)
    ax.set_ylabel(_math(f"{entry.name}_t"))
    ax.legend(fontsize=7, loc="best", ncol=2 if shown > 4 else 1)
    extra = f" (units 0-{shown - 1} of {units})" if shown < units else ""
    ax.set_title(_title(entry) + extra, fontsize=10, loc="left")


def _panels(entries):
    """(kind, entry) pairs: heatmaps for the gates, then curves for the states.

    A SimpleRNN has no gates: its h is both a heatmap (the activation's output)
    and a set of curves.
    """
    panels = [("heatmap", e) for e in entries if e.heatmap]
    panels += [("curves", e) for e in entries if not e.heatmap]
    if len(entries) == 1:
        panels.append(("curves", entries[0]))
    return panels


def plot_trace(trace, layer, path, title=None, sample=0):
    """Draw ``trace`` (from ``layer.trace(x)``) for one sequence; write a PNG.

    Args:
        trace: dict of (B, T, units) arrays, as returned by ``layer.trace``.
        layer: the minirnn LSTM, GRU or SimpleRNN that made it (for the equations).
        path: where to write the image (PNG by default; the suffix picks the format).
        title: a title for the whole figure.
        sample: which sequence of the batch to draw.

    Returns:
        ``path``.

    Raises:
        ImportError: matplotlib is not installed (``pip install "minirnn[plot]"``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            'Plotting needs matplotlib: pip install "minirnn[plot]"') from error

    panels = _panels(describe_trace(layer))
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    fig = Figure(figsize=(6.4 * columns, 3.4 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (kind, entry) in zip(axes, panels):
        values = trace[entry.name][sample]
        if kind == "heatmap":
            _draw_heatmap(fig, ax, entry, values, layer.go_backwards)
        else:
            _draw_curves(ax, entry, values, layer.go_backwards)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.savefig(path, dpi=110)
    return path
