"""The two implementations hold each other: compiled kernels against the readable
equations, and both activation tables against each other and against Keras."""

import itertools

import numpy as np
import pytest

import minirnn
from minirnn import activations, equations, kernels
from minirnn.parallel import handoff
from minirnn.layers import _NO_MASK, _NO_OUTPUTS, _NO_PANELS
from conftest import random_weights

KINDS = {"LSTM": {}, "GRU": {}, "GRU_v1": {"reset_after": False}, "SimpleRNN": {}}
# Kernel and equations compute the same expression in the same order; only the
# matrix products differ (one hoisted GEMM and per-step GEMMs versus per-step
# products), so they agree to a few ulp.
KERNEL_TOL = {"float32": 2e-6, "float64": 1e-13}


def pair(kind, dtype, M, D, seed=0, **config):
    base = "GRU" if kind == "GRU_v1" else kind
    weights = random_weights(base, D, M, config.get("use_bias", True),
                             kind != "GRU_v1", dtype, seed)
    layers = []
    for engine in ("numba", "numpy"):
        layer = getattr(minirnn, base)(M, dtype=dtype, engine=engine, **KINDS[kind], **config)
        layer.set_weights(weights)
        layers.append(layer)
    return layers


OPTIONS = [
    {},
    {"go_backwards": True},
    {"use_bias": False},
    {"zero_output_for_mask": True},
    {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    {"activation": "gelu", "recurrent_activation": "softsign"},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("options", range(len(OPTIONS)))
@pytest.mark.parametrize("masked", [False, True])
def test_kernels_match_equations(kind, dtype, options, masked):
    config = dict(OPTIONS[options], return_sequences=True, return_state=True)
    if kind == "SimpleRNN":
        config.pop("recurrent_activation", None)
    fast, readable = pair(kind, dtype, M=5, D=3, seed=options, **config)
    rng = np.random.default_rng(options)
    x = rng.normal(size=(4, 9, 3)).astype(dtype)
    mask = rng.random((4, 9)) < 0.6 if masked else None
    initial = [rng.normal(size=(4, 5)).astype(dtype)
               for _ in range(2 if kind == "LSTM" else 1)]
    for a, b in zip(fast(x, mask, initial), readable(x, mask, initial)):
        np.testing.assert_allclose(a, b, rtol=KERNEL_TOL[dtype], atol=KERNEL_TOL[dtype])


@pytest.mark.parametrize("kind", list(KINDS))
def test_kernel_chunked_projection(kind):
    """A sequence whose input projection spans several chunks, the last one partial."""
    B, D, M = 64, 3, 24
    gates = {"LSTM": 4, "GRU": 3, "GRU_v1": 3, "SimpleRNN": 1}[kind]
    steps = kernels.products._chunk_steps(B, 10 ** 6, max(D, gates * M))
    T = 2 * steps + 5  # two full chunks and a partial one
    assert kernels.products._chunk_steps(B, T, max(D, gates * M)) == steps
    fast, readable = pair(kind, "float64", M=M, D=D, return_sequences=True,
                          go_backwards=True)
    x = np.random.default_rng(1).normal(size=(B, T, D))
    np.testing.assert_allclose(fast(x), readable(x), rtol=1e-12, atol=1e-12)


def test_chunk_bound():
    """The scratch block of the hoisted projection stays near _CHUNK_ELEMENTS."""
    for B, T, width in itertools.product([1, 7, 64, 4096], [1, 100, 4000], [4, 512, 2048]):
        steps = kernels.products._chunk_steps(B, T, width)
        assert 1 <= steps <= T
        assert steps == 1 or steps * B * width <= kernels.products._CHUNK_ELEMENTS


VALUES = np.concatenate([np.linspace(-12, 12, 4801), [-1, -0.5, 0, 0.5, 1, -3, 3, 6, 30, -30,
                                                       90, -90, np.inf, -np.inf]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(activations.ELEMENTWISE))
def test_activation_tables_agree(name, dtype):
    """Scalar kernel activations against the NumPy ones, value by value."""
    x = VALUES.astype(dtype)
    with np.errstate(all="ignore"):
        readable = activations.get(name)(x)
    compiled = kernels.activate_array(activations.code_of(name), x)
    assert compiled.dtype == x.dtype
    tol = 1e-15 if dtype == "float64" else 4e-7
    np.testing.assert_allclose(compiled, readable, rtol=tol, atol=tol, equal_nan=True)
    nan = np.array([np.nan], dtype)
    with np.errstate(all="ignore"):
        expected = activations.get(name)(nan)  # NaN, or 0 for soft_shrink, hard_shrink
    assert np.array_equal(kernels.activate_array(activations.code_of(name), nan), expected,
                          equal_nan=True)
    assert np.isnan(expected[0]) == (name not in ("soft_shrink", "hard_shrink"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", activations.names())
def test_activations_match_keras(keras, name, dtype):
    x = VALUES[np.isfinite(VALUES)].astype(dtype).reshape(1, -1)
    theirs = keras.ops.convert_to_numpy(keras.activations.get(name)(x))
    with np.errstate(all="ignore"):
        ours = activations.get(name)(x)
    tol = 1e-15 if dtype == "float64" else 3e-7
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    if name in activations.ELEMENTWISE:
        compiled = kernels.activate_array(activations.code_of(name), x)
        np.testing.assert_allclose(compiled, theirs, rtol=tol, atol=tol)


def test_hard_sigmoid_is_keras3():
    """Keras 3: relu6(x + 3) / 6, not Keras 2's clip(0.2 x + 0.5, 0, 1)."""
    x = np.array([-3.0, -2.5, 0.0, 2.0, 3.0])
    np.testing.assert_allclose(activations.hard_sigmoid(x), [0, 1 / 12, 0.5, 5 / 6, 1])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_trace_matches_layer(kind, go_backwards):
    layer = getattr(minirnn, kind)(4, return_sequences=True, return_state=True,
                                   go_backwards=go_backwards, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 2))
    mask = rng.random((3, 7)) < 0.7
    outputs, *states = layer(x, mask)
    trace = layer.trace(x, mask)
    expected = {"LSTM": ["i", "f", "g", "o", "c", "h"], "GRU": ["z", "r", "hh", "h"],
                "SimpleRNN": ["h"]}[kind]
    assert list(trace) == expected
    for value in trace.values():
        assert value.shape == (3, 7, 4)
    np.testing.assert_allclose(trace["h"][:, -1], states[0], rtol=1e-13, atol=1e-13)
    if kind == "LSTM":
        np.testing.assert_allclose(trace["c"][:, -1], states[1], rtol=1e-13, atol=1e-13)
    # Where the step is used, the output is that step's h (processing order).
    used = mask[:, ::-1] if go_backwards else mask
    np.testing.assert_allclose(outputs[used], trace["h"][used], rtol=1e-13, atol=1e-13)
    if kind == "LSTM":
        # c' = f * c + i * g where the step is used; held where it is masked.
        previous = np.concatenate([np.zeros((3, 1, 4)), trace["c"][:, :-1]], axis=1)
        updated = trace["f"] * previous + trace["i"] * trace["g"]
        np.testing.assert_allclose(trace["c"], np.where(used[..., None], updated, previous),
                                   rtol=1e-13, atol=1e-13)
        for gate in "ifo":
            assert np.all((trace[gate] > 0) & (trace[gate] < 1))


def test_trace_equations_by_hand():
    """One LSTM step of the trace recomputed from the printed equations."""
    layer = minirnn.LSTM(3, dtype="float64", seed=1)
    x = np.random.default_rng(2).normal(size=(1, 2, 2))
    tr = layer.trace(x)
    W, U, b = layer.get_weights()
    h0 = tr["h"][:, 0]
    c0 = tr["c"][:, 0]
    z = x[:, 1] @ W + h0 @ U + b
    sig = lambda v: 1 / (1 + np.exp(-v))
    i, f, g, o = sig(z[:, :3]), sig(z[:, 3:6]), np.tanh(z[:, 6:9]), sig(z[:, 9:])
    c = f * c0 + i * g
    np.testing.assert_allclose(tr["c"][:, 1], c, rtol=1e-14)
    np.testing.assert_allclose(tr["h"][:, 1], o * np.tanh(c), rtol=1e-14)


def test_rowwise_activation_uses_equations():
    layer = minirnn.LSTM(4, activation="softmax", seed=0)
    assert not layer._use_kernels()
    out = layer(np.ones((2, 3, 2)))
    assert out.shape == (2, 4)


def test_equations_run_previous_output_starts_at_zero():
    step = lambda x, h: equations.SimpleRNNStep(h + x[:, :1])
    x = np.ones((1, 3, 1))
    outputs, states, _ = equations.run(step, x, [np.full((1, 1), 5.0)],
                                       mask=np.array([[False, True, False]]))
    np.testing.assert_array_equal(outputs[0, :, 0], [0, 6, 6])
    np.testing.assert_array_equal(states[0], [[6]])


@pytest.mark.parametrize("code", [kernels.TANH, kernels.SIGMOID])
def test_fma_form_of_tanh_and_sigmoid(code):
    """tanh_fma and sigmoid_fma (the one-pass rows' float32 activations): as close
    to the true function as Eigen's form, exactly +-1, 0 and 1 where saturated, NaN
    kept; and really another rounding (they differ from Eigen's bits somewhere).

    Bound: 6 ulp of the float64 value, Eigen's own worst on this grid (5.96 ulp,
    the sigmoid near 1e-30, where e = exp(x / 2)^2 doubles the error of the exp);
    the fused forms measured 4.45 (tanh) and 5.96."""
    x = np.concatenate([np.linspace(-110, 110, 200001), np.linspace(-9, 9, 200001),
                        np.linspace(-1e-3, 1e-3, 2001), -np.logspace(2.02, 38, 50),
                        np.logspace(1, 38, 50)]).astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        truth = np.tanh(x64) if code == kernels.TANH else 1 / (1 + np.exp(-x64))
    eigen, fused = x.copy(), x.copy()
    kernels.activate_block(code, eigen)
    kernels.activate_block(code, fused, True)
    ulp = np.spacing(np.maximum(np.abs(truth), np.finfo(np.float32).tiny).astype(np.float32))
    worst_eigen = np.max(np.abs(eigen - truth) / ulp)
    worst_fused = np.max(np.abs(fused - truth) / ulp)
    assert worst_eigen <= 6 and worst_fused <= 6, (worst_eigen, worst_fused)
    assert np.count_nonzero(fused != eigen) > 0
    special = np.array([np.nan, np.inf, -np.inf, 200, -200, 8.0177336, -1e30], np.float32)
    kernels.activate_block(code, special, True)
    assert np.isnan(special[0])
    expected = ([1, -1, 1, -1, 1, -1] if code == kernels.TANH
                else [1, 0, 1, 0, 1 / (1 + np.exp(-8.0177336)), 0])
    np.testing.assert_allclose(special[1:], expected, rtol=1e-7, atol=0)
    if code == kernels.TANH:
        assert special[3] == 1 and special[5] == 1  # exactly 1 from the bound on
    else:
        assert special[2] == 0 and special[6] == 0  # exactly 0 below -104


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M", [1, 3, 16, 37])
def test_fused_rows_match_gate_by_gate(dtype, M):
    """The one-pass steps used for Keras' default activations (_lstm_rows,
    _gru_rows) give the same bits as the gate-by-gate pass used for every other
    activation, with tanh and sigmoid in the fused multiply-add form they use; and
    follow Keras' mask rule, row by row. Rows: 0 and 2 unmasked, 1 masked; their xW
    rows start at ``first`` of a taller block, and outputs gets step 1 of 3."""
    rng = np.random.default_rng(M)
    tanh, sigmoid = kernels.TANH, kernels.SIGMOID
    B, first, step, t = 3, 2, 1, 0
    mask = np.array([[True], [False], [True]])

    def act(code, v):
        v = v.copy()
        kernels.activate_block(code, v, True)
        return v

    def rows(width):
        return rng.normal(scale=3, size=(B, width)).astype(dtype)
    z, bias = rows(4 * M), rng.normal(size=4 * M).astype(dtype)
    xw = rng.normal(scale=3, size=(first + B + 1, 4 * M)).astype(dtype)
    c0, h0, out0 = rows(M), rows(M), rows(M)
    for bias_first, zero_output in ((False, False), (True, True)):
        c, h, out = c0.copy(), h0.copy(), out0.copy()
        outputs = np.full((B, 3, M), 7, dtype)
        kernels.lstm._lstm_rows(z, xw, first, bias, c, h, out, outputs, step, mask, True, t,
                           zero_output, True, bias_first)
        for b in range(B):
            if not mask[b, t]:  # states kept; output kept, or zeroed
                np.testing.assert_array_equal(c[b], c0[b])
                np.testing.assert_array_equal(h[b], h0[b])
                np.testing.assert_array_equal(out[b], 0 * out0[b] if zero_output else out0[b])
            else:
                pre = (xw[first + b] + bias) + z[b] if bias_first else (xw[first + b] + z[b]) + bias
                i, f, g, o = (act(code, pre[k * M:(k + 1) * M])
                              for k, code in enumerate((sigmoid, sigmoid, tanh, sigmoid)))
                c_expected = f * c0[b] + i * g
                h_expected = o * act(tanh, c_expected)
                np.testing.assert_array_equal(c[b], c_expected)
                np.testing.assert_array_equal(h[b], h_expected)
                np.testing.assert_array_equal(out[b], h_expected)
            np.testing.assert_array_equal(outputs[b, step], out[b])
        assert np.all(outputs[:, [0, 2]] == 7)

    u = rows(3 * M)
    xw = rng.normal(scale=3, size=(first + B, 3 * M)).astype(dtype)
    input_bias, recurrent_bias = (rng.normal(size=3 * M).astype(dtype) for _ in range(2))
    for zero_output, return_sequences in ((False, True), (True, False)):
        h, out = h0.copy(), out0.copy()
        outputs = np.full((B, 3, M), 7, dtype)
        kernels.gru._gru_rows(u, xw, first, input_bias, recurrent_bias, h, out, outputs, step, mask,
                          True, t, zero_output, return_sequences)
        for b in range(B):
            if not mask[b, t]:
                np.testing.assert_array_equal(h[b], h0[b])
                np.testing.assert_array_equal(out[b], 0 * out0[b] if zero_output else out0[b])
            else:
                uu = u[b] + recurrent_bias
                pre = (xw[first + b] + input_bias)[:2 * M] + uu[:2 * M]
                zg, r = act(sigmoid, pre[:M]), act(sigmoid, pre[M:])
                hh = act(tanh, (xw[first + b, 2 * M:] + input_bias[2 * M:]) + r * uu[2 * M:])
                expected = zg * h0[b] + (np.array(1, dtype) - zg) * hh
                np.testing.assert_array_equal(h[b], expected)
                np.testing.assert_array_equal(out[b], expected)
        if return_sequences:
            np.testing.assert_array_equal(outputs[:, step], out)
        assert np.all(outputs[:, [0, 2]] == 7) and (return_sequences or np.all(outputs == 7))


def test_gate_loops_ask_for_wide_vectors():
    """The element-wise loops carry LLVM's "prefer-vector-width"="512" (see
    kernels.compiler._wide_vectors): without it LLVM keeps them to 256-bit vectors on
    recent Intel CPUs, about 1.5x slower."""
    from numba import njit
    # Compiled afresh: a function loaded from Numba's cache keeps no LLVM IR to read.
    fresh = njit(cache=False)(kernels.activate_block.py_func)
    values = np.zeros(4, np.float32)
    fresh(kernels.SIGMOID, values)
    assert '"prefer-vector-width"="512"' in fresh.inspect_llvm(fresh.signatures[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", ["lstm", "gru"])
def test_one_pass_rows_vectorise(row, dtype):
    """The one-pass steps must compile to vector code: one array passed to a
    helper inside the loop (Numba then counts its references per element) once
    left them scalar and the LSTM 10x slower, with every result still right."""
    import re
    from numba import njit
    M, B = 37, 3
    rng = np.random.default_rng(0)

    def array(*shape):
        return rng.standard_normal(shape).astype(dtype)
    mask = np.ones((B, 1), bool)
    if row == "lstm":
        fresh = njit(cache=False)(kernels.lstm._lstm_rows.py_func)
        fresh(array(B, 4 * M), array(B, 4 * M), 0, array(4 * M), array(B, M), array(B, M),
              array(B, M), array(B, 1, M), 0, mask, False, 0, False, True, False)
    else:
        fresh = njit(cache=False)(kernels.gru._gru_rows.py_func)
        fresh(array(B, 3 * M), array(B, 3 * M), 0, array(3 * M), array(3 * M), array(B, M),
              array(B, M), array(B, 1, M), 0, mask, False, 0, False, True)
    ir = fresh.inspect_llvm(fresh.signatures[0])
    kind = "float" if dtype == np.float32 else "double"
    assert re.search(rf"fdiv (?:[a-z]+ )*<\d+ x {kind}>", ir), "the row loop did not vectorise"
    # every array's data pointer (the fifth member Numba passes) marked noalias
    # (kernels.compiler._disjoint_arrays): no run-time overlap checks before the loop
    names = ("z", "xw", "bias", "c", "h", "output", "outputs") if row == "lstm" else \
        ("u", "xw", "input_bias", "recurrent_bias", "h", "output", "outputs")
    for name in names:
        assert re.search(rf"noalias[^,%]*%arg\.{name}\.4\b", ir), name


def _lstm_call(h, c, output, bias, x, w, u):
    none = _NO_PANELS["float32"]  # the layers' placeholders: no panels, mask or outputs
    kernels.lstm_sequence(x, w, u, bias, h, c, _NO_MASK, False, False, False, False, 1, 2,
                          _NO_OUTPUTS["float32"], output, False, False, none, none,
                          handoff.TABLE, handoff.NO_PLAN)


def test_sequence_kernels_refuse_overlapping_states():
    """The one-pass steps are compiled on the promise that the states, the output,
    the outputs (return_sequences) and the biases share no memory
    (_disjoint_arrays); the kernels check it first."""
    rng = np.random.default_rng(5)
    B, T, D, M = 2, 3, 3, 5
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    w = rng.standard_normal((D, 4 * M)).astype(np.float32)
    u = rng.standard_normal((M, 4 * M)).astype(np.float32)
    bias = rng.standard_normal(4 * M).astype(np.float32)
    fresh = lambda: np.zeros((B, M), np.float32)  # noqa: E731
    block = np.zeros((4 * B, M), np.float32)  # disjoint rows of one array are fine
    h, c, output = block[:B], block[B:2 * B], block[2 * B:3 * B]
    _lstm_call(h, c, output, bias, x, w, u)
    h2, c2, output2 = fresh(), fresh(), fresh()
    _lstm_call(h2, c2, output2, bias, x, w, u)
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(c, c2)
    np.testing.assert_array_equal(output, output2)
    shared = fresh()
    for args in [(shared, shared, fresh()), (shared, fresh(), shared),
                 (fresh(), shared, shared), (block[:B], block[1:B + 1], fresh())]:
        with pytest.raises(ValueError, match="must not share memory"):
            _lstm_call(*args, bias, x, w, u)
    flat = np.zeros(4 * M + B * M, np.float32)  # the bias running into h
    with pytest.raises(ValueError, match="must not share memory"):
        _lstm_call(flat[4 * M - 1:4 * M - 1 + B * M].reshape(B, M), fresh(), fresh(),
                   flat[:4 * M], x, w, u)
    none = _NO_PANELS["float32"]
    outputs = np.zeros((B, T, M), np.float32)  # return_sequences: every output apart too

    def inside_outputs(k):
        """A C-contiguous (B, M) array on the memory of outputs, from element k M on
        (C order as the layers' arrays: another layout would be another compile)."""
        return outputs.reshape(-1)[k * M:(k + B) * M].reshape(B, M)

    for target in ("h", "c", "output"):
        arrays = {"h": fresh(), "c": fresh(), "output": fresh(), target: inside_outputs(1)}
        with pytest.raises(ValueError, match="must not share memory"):
            kernels.lstm_sequence(x, w, u, bias, arrays["h"], arrays["c"], _NO_MASK, False,
                                  False, False, True, 1, 2, outputs, arrays["output"], False,
                                  False, none, none, handoff.TABLE, handoff.NO_PLAN)
    wg = rng.standard_normal((D, 3 * M)).astype(np.float32)
    ug = rng.standard_normal((M, 3 * M)).astype(np.float32)
    b_in, b_rec = (rng.standard_normal(3 * M).astype(np.float32) for _ in range(2))
    flat = np.zeros(3 * M + B * M, np.float32)  # the recurrent bias running into h
    for h, output, recurrent_bias, return_sequences in [
            (shared, shared, b_rec, False),
            (flat[3 * M - 1:3 * M - 1 + B * M].reshape(B, M), fresh(), flat[:3 * M], False),
            (inside_outputs(2), fresh(), b_rec, True), (fresh(), inside_outputs(0), b_rec, True)]:
        with pytest.raises(ValueError, match="must not share memory"):
            kernels.gru_sequence(x, wg, ug, np.zeros((1, 1), np.float32), b_in,
                                 recurrent_bias, True, h, _NO_MASK, False, False, False,
                                 return_sequences, 1, 2,
                                 outputs if return_sequences else _NO_OUTPUTS["float32"],
                                 output, False, *[none] * 3, handoff.TABLE, handoff.NO_PLAN)
