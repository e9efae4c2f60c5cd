"""Layers changed after construction: every public attribute, every layer.

The rule (docs/layers.md, "Changing a layer after construction"): an assignment is checked
when it happens. A consistent new value makes the layer compute exactly what a
freshly built layer with the same attributes and weights computes; an inconsistent
one raises ValueError or TypeError naming the attribute and leaves the layer as it
was. The cases that used to crash the process run in a child process, so a crash
fails a test instead of killing the suite.
"""

import subprocess
import sys
import textwrap
from pathlib import Path
from types import FunctionType

import numpy as np
import pytest

import minirnn
from minirnn import kernels
from background import Job

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 5, 3)).astype(np.float32)
MASK = np.array([[1, 1, 0, 1, 1], [0, 1, 1, 1, 0]], bool)
BITWISE = bool(minirnn.bitwise_support())

KINDS = {
    "LSTM": lambda **kw: minirnn.LSTM(4, seed=1, **kw),
    "GRU": lambda **kw: minirnn.GRU(4, seed=1, **kw),
    "GRU_v1": lambda **kw: minirnn.GRU(4, seed=1, reset_after=False, **kw),
    "SimpleRNN": lambda **kw: minirnn.SimpleRNN(4, seed=1, **kw),
}


def random_weights(layer, input_dim=3, rng=RNG):
    """Weights that differ per gate, with non-zero biases."""
    return [rng.uniform(-0.6, 0.6, shape) for shape in layer._weight_shapes(input_dim)]


def built(kind, rng=RNG, **kwargs):
    layer = KINDS[kind](**kwargs)
    layer.set_weights(random_weights(layer, rng=rng))
    return layer


def twin(layer):
    """A layer built afresh from ``layer``'s attributes, weights and states."""
    fresh = type(layer)(**layer.get_config())
    if layer.built:
        fresh.set_weights(layer.get_weights())
    if layer.states is not None:
        fresh.states = [s.copy() for s in layer.states]
    return fresh


def run(layer, x=X, mask=MASK):
    """The layer's result on x with a mask, as a list of arrays."""
    result = layer(x, mask=mask)
    return [np.asarray(r) for r in (result if isinstance(result, list) else [result])]


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


def assert_matches_twin(layer, x=X, mask=MASK):
    expected = run(twin(layer), x, mask)
    assert_same(run(layer, x, mask), expected)


# ---- consistent changes: the next call equals a freshly built twin ---------------

def _new_units(layer):
    layer.units = 5


def _new_use_bias(layer):
    layer.use_bias = not layer.use_bias


def _new_seed(layer):
    layer.seed = 7


def _unit_forget_bias(layer):
    layer.unit_forget_bias = False


# Attributes that the weights fix: changed on a layer that has none yet.
UNBUILT_CHANGES = {
    "units": _new_units, "use_bias": _new_use_bias, "seed": _new_seed,
}

CHANGES = {
    "activation": ("activation", "relu"),
    "activation_none": ("activation", None),
    "recurrent_activation": ("recurrent_activation", "hard_sigmoid"),
    "return_sequences": ("return_sequences", True),
    "return_state": ("return_state", True),
    "go_backwards": ("go_backwards", True),
    "stateful": ("stateful", True),
    "zero_output_for_mask": ("zero_output_for_mask", True),
    "unroll": ("unroll", True),
    "dtype": ("dtype", "float64"),
    "dtype_numpy": ("dtype", np.float64),
    "dropout": ("dropout", 0.25),
    "recurrent_dropout": ("recurrent_dropout", 0.25),
    "implementation": ("implementation", 1),
    "use_cudnn": ("use_cudnn", False),
    "engine": ("engine", "numpy"),
    "kernel": ("kernel", lambda layer: RNG.uniform(-1, 1, layer.kernel.shape)),
    "kernel_float64": ("kernel", lambda layer: layer.kernel.astype(np.float64) * 1.5),
    "kernel_list": ("kernel", lambda layer: (layer.kernel * -1).tolist()),
    "recurrent_kernel": ("recurrent_kernel",
                         lambda layer: RNG.uniform(-1, 1, layer.recurrent_kernel.shape)),
    "bias": ("bias", lambda layer: layer.bias + 0.5),
}


# Changes that need not alter the result (training-only, or rounding only).
SAME_RESULT_ALLOWED = {"dropout", "unroll", "use_cudnn", "engine", "implementation",
                       "recurrent_dropout", "stateful"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("change", CHANGES)
def test_consistent_change_matches_a_fresh_layer(kind, change):
    layer = built(kind)
    before = run(layer)  # called once before the change, as a user would
    name, value = CHANGES[change]
    if kind == "SimpleRNN" and name == "recurrent_activation":
        pytest.skip("a SimpleRNN has no recurrent activation (refusal tested below)")
    setattr(layer, name, value(layer) if isinstance(value, FunctionType) else value)
    if name in ("return_sequences", "go_backwards", "implementation", "engine"):
        assert getattr(layer, name) == value
    expected = run(twin(layer))
    after = run(layer)
    assert_same(after, expected)
    if name not in SAME_RESULT_ALLOWED:
        assert len(after) != len(before) or any(
            a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b)
            for a, b in zip(after, before)), f"assigning {name} did not change the result"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("change", UNBUILT_CHANGES)
def test_structural_change_before_weights(kind, change):
    layer = KINDS[kind]()
    UNBUILT_CHANGES[change](layer)
    expected = run(twin(layer))
    assert_same(run(layer), expected)


def test_unit_forget_bias_before_weights():
    layer = KINDS["LSTM"]()
    layer.unit_forget_bias = False
    assert_same(run(layer), run(twin(layer)))
    assert np.all(layer.bias == 0)


@pytest.mark.parametrize("kind", ["GRU", "GRU_v1"])
def test_reset_after_without_bias(kind):
    """Without a bias, the weights do not fix reset_after: it may change."""
    layer = built(kind, use_bias=False)
    before = run(layer)
    layer.reset_after = not layer.reset_after
    after = run(layer)
    assert_same(after, run(twin(layer)))
    assert not np.array_equal(after[0], before[0])


def test_weights_assigned_together_and_input_dim_follows_kernel():
    layer = built("LSTM")
    layer.kernel = RNG.uniform(-1, 1, (7, 16))  # another input size
    assert layer.input_dim == 7
    x = RNG.standard_normal((2, 5, 7))
    assert_same(run(layer, x), run(twin(layer), x))


@pytest.mark.parametrize("kind", KINDS)
def test_states_assigned_are_used(kind):
    layer = built(kind, stateful=True)
    run(layer)
    layer.states = [RNG.standard_normal((2, 4)) for _ in layer.states]  # float64 in
    assert all(s.dtype == np.float32 for s in layer.states)
    expected = run(twin(layer))
    assert_same(run(layer), expected)
    layer.states = None
    fresh = built(kind, stateful=True)
    fresh.set_weights(layer.get_weights())
    assert_same(run(layer), run(fresh))


@pytest.mark.parametrize("kind", KINDS)
def test_bitwise_switched_on_later(kind):
    if not BITWISE:
        pytest.skip(str(minirnn.bitwise_support()))
    layer = built(kind)
    layer.bitwise = True
    assert_same(run(layer), run(twin(layer)))


def test_bias_change_reaches_every_path():
    """The kernels, the equations and trace all see an assigned bias."""
    layer = built("GRU")
    layer.bias = layer.bias + 0.5
    fresh = minirnn.GRU(4)
    fresh.set_weights(layer.get_weights())
    assert_same(run(layer), run(fresh))
    layer.engine = "numpy"
    fresh.engine = "numpy"
    assert_same(run(layer), run(fresh))
    np.testing.assert_array_equal(layer.trace(X)["h"], fresh.trace(X)["h"])


# ---- inconsistent changes: refused, naming the attribute, nothing changed --------

BAD = [
    ("units", 0, ValueError), ("units", -3, ValueError), ("units", 2.5, TypeError),
    ("units", True, TypeError), ("units", "4", TypeError),
    ("units", 5, ValueError),                      # the weights have 4 units
    ("units", 1_000_000, ValueError),
    ("activation", "bogus", ValueError), ("activation", 3, TypeError),
    ("activation", np.tanh, TypeError), ("activation", "glu", ValueError),
    ("recurrent_activation", "bogus", ValueError),
    ("use_bias", False, ValueError),               # the weights have a bias
    ("use_bias", "no", TypeError),
    ("return_sequences", 1, TypeError), ("return_state", None, TypeError),
    ("go_backwards", "yes", TypeError), ("stateful", 0, TypeError),
    ("zero_output_for_mask", [], TypeError), ("unroll", 2, TypeError),
    ("dtype", "float16", ValueError), ("dtype", "int32", ValueError),
    ("dtype", object(), ValueError),
    ("dropout", 1.5, ValueError), ("recurrent_dropout", -0.1, ValueError),
    ("dropout", "x", TypeError),
    ("implementation", 3, ValueError), ("implementation", True, ValueError),
    ("use_cudnn", "yes", ValueError),
    ("seed", -1, ValueError), ("seed", 1.5, TypeError),
    ("engine", "torch", ValueError), ("engine", None, ValueError),
    ("bitwise", "on", TypeError),
    ("kernel", lambda layer: np.zeros((3, layer.kernel.shape[1] + 1)), ValueError),
    ("kernel", np.zeros((3, 4, 4)), ValueError),
    ("kernel", np.zeros((0, 16)), ValueError), ("kernel", None, ValueError),
    ("kernel", [["a"]], TypeError), ("kernel", object(), TypeError),
    ("recurrent_kernel", lambda layer: np.zeros((5, layer.kernel.shape[1])), ValueError),
    ("recurrent_kernel", lambda layer: np.zeros((4, layer.kernel.shape[1] - 1)), ValueError),
    ("recurrent_kernel", None, ValueError),
    ("bias", np.zeros(3), ValueError), ("bias", None, ValueError),
    ("bias", np.zeros((2, 2, 2)), ValueError),
    ("states", [np.zeros((2, 5))] * 2, ValueError), ("states", np.zeros((2, 4)), ValueError),
    ("states", [np.zeros((2, 4))] * 3, ValueError),
    ("states", [["ab"]] * 2, (ValueError, TypeError)),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, value, error", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in
                                                        enumerate(BAD)])
def test_inconsistent_change_is_refused(kind, name, value, error):
    layer = built(kind, stateful=(name == "states"))
    if kind == "SimpleRNN" and name == "recurrent_activation":
        pytest.skip("tested separately")
    value = value(layer) if isinstance(value, FunctionType) else value
    before = run(layer)
    config = layer.get_config()
    weights = layer.get_weights()
    states = None if layer.states is None else [s.copy() for s in layer.states]
    with pytest.raises(error) as caught:
        setattr(layer, name, value)
    assert f"`{name}`" in str(caught.value) or f"`{name} (" in str(caught.value)
    assert layer.get_config() == config
    assert_same(layer.get_weights(), weights)
    if states is not None:
        assert_same(list(layer.states), states)
        layer.reset_state()
    layer_after = run(layer)
    if not layer.stateful:
        assert_same(layer_after, before)


def test_simple_rnn_recurrent_activation_is_refused():
    layer = built("SimpleRNN")
    with pytest.raises(ValueError, match=r"`recurrent_activation`: a SimpleRNN has no gates"):
        layer.recurrent_activation = "relu"
    assert layer.recurrent_activation == "sigmoid"


@pytest.mark.parametrize("kind", ["GRU", "GRU_v1"])
def test_reset_after_is_fixed_by_the_bias(kind):
    layer = built(kind)
    before = run(layer)
    with pytest.raises(ValueError, match=r"`reset_after` cannot be .*`bias` has shape"):
        layer.reset_after = not layer.reset_after
    assert_same(run(layer), before)


def test_use_bias_true_without_bias_is_refused_and_get_weights_works():
    layer = built("LSTM", use_bias=False)
    with pytest.raises(ValueError, match=r"`use_bias` cannot be True on this layer"):
        layer.use_bias = True
    assert len(layer.get_weights()) == 2


def test_bias_on_a_layer_without_bias_is_refused():
    layer = built("LSTM", use_bias=False)
    with pytest.raises(ValueError, match=r"`bias` does not fit this LSTM\(units=4, "
                                         r"use_bias=False\): `bias` must have no value"):
        layer.bias = np.zeros(16)


def test_weights_alone_on_an_unbuilt_layer_are_refused():
    layer = KINDS["LSTM"]()
    with pytest.raises(ValueError, match=r"`kernel`: LSTM's weights go together"):
        layer.kernel = np.zeros((3, 16))
    assert not layer.built


@pytest.mark.parametrize("kind", KINDS)
def test_weights_are_read_only(kind):
    """In-place changes would bypass the checks and the derived arrays: refused."""
    layer = built(kind, stateful=True)
    run(layer)
    for array in (layer.kernel, layer.recurrent_kernel, layer.bias, *layer.states):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    for array in layer.get_weights():  # copies are the user's own
        array[0] = 1




@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_stored_states_are_the_layers_own(kind, return_state, engine):
    """A stateful layer's stored states are read-only and share no memory with
    anything a call returned, nor with the states stored before the call."""
    layer = built(kind, stateful=True, return_state=return_state, return_sequences=True,
                  engine=engine)
    first = run(layer)
    before = [s.copy() for s in layer.states]
    held = layer.states
    second = run(layer)
    for old, kept in zip(before, held):
        np.testing.assert_array_equal(old, kept)  # the next call left them alone
    stored = [s.copy() for s in layer.states]
    for array in layer.states:
        assert not array.flags.writeable
        for returned in first + second:
            assert not np.shares_memory(array, returned)
    for returned in second:  # the user's own arrays
        returned[...] = 7
    for kept, copy in zip(layer.states, stored):
        np.testing.assert_array_equal(kept, copy)
    assert layer.states[0].dtype == np.dtype(layer.dtype)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, value", [("dtype", "float64"), ("engine", "numpy"),
                                         ("activation", "gelu")])
def test_bitwise_settings_refused_after_construction(kind, name, value):
    if not BITWISE:
        pytest.skip(str(minirnn.bitwise_support()))
    layer = built(kind, bitwise=True)
    with pytest.raises(ValueError, match=rf"bitwise=True\).*`{name}`"):
        setattr(layer, name, value)
    assert getattr(layer, name) != value


def test_units_change_on_an_unbuilt_stateful_layer_with_states_is_refused():
    layer = KINDS["GRU"](stateful=True)
    layer.states = [np.zeros((2, 4))]
    with pytest.raises(ValueError, match=r"`units` does not fit this layer's stored `states`"):
        layer.units = 5
    assert layer.units == 4


# ---- Bidirectional -----------------------------------------------------------------

def bidirectional(**kwargs):
    return minirnn.Bidirectional(built("LSTM", return_sequences=True), **kwargs)


def bi_twin(bi):
    fresh = minirnn.Bidirectional(twin(bi.forward_layer), merge_mode=bi.merge_mode,
                                  backward_layer=twin(bi.backward_layer), dtype=bi.dtype)
    return fresh


@pytest.mark.parametrize("name, value", [
    ("merge_mode", "sum"), ("merge_mode", None), ("merge_mode", "ave"),
    ("dtype", "float64"), ("return_sequences", False), ("return_state", True),
    ("stateful", True),
])
def test_bidirectional_consistent_changes(name, value):
    bi = bidirectional()
    before = run(bi)
    setattr(bi, name, value)
    assert getattr(bi, name) == value
    if name == "return_sequences":
        assert bi.forward_layer.zero_output_for_mask is value
        assert bi.backward_layer.zero_output_for_mask is value
    after = run(bi)
    if bi.stateful:
        bi.reset_state()
    assert_same(after, run(bi_twin(bi)))
    assert name == "stateful" or len(after) != len(before) or any(
        a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b)
        for a, b in zip(after, before))


def test_bidirectional_bitwise_both_or_neither():
    bi = bidirectional()
    if BITWISE:
        bi.bitwise = True
        assert bi.forward_layer.bitwise and bi.backward_layer.bitwise
        assert_same(run(bi), run(bi_twin(bi)))
    bi = bidirectional()
    bi.backward_layer.activation = "gelu"  # not modelled: the backward layer refuses
    with pytest.raises((ValueError, RuntimeError)):
        bi.bitwise = True
    assert not bi.forward_layer.bitwise and not bi.backward_layer.bitwise


@pytest.mark.parametrize("name, value, error, pattern", [
    ("merge_mode", "bogus", ValueError, r"`merge_mode` must be one of"),
    ("dtype", "float16", ValueError, r"`dtype` must be 'float32' or 'float64'"),
    ("forward_layer", "lstm", TypeError, r"`forward_layer` must be a minirnn LSTM"),
    ("backward_layer", None, TypeError, r"`backward_layer` must be a minirnn LSTM"),
    ("backward_layer", minirnn.LSTM(3, return_sequences=True), ValueError,
     r"must have different `go_backwards`"),
    ("backward_layer", minirnn.LSTM(3, go_backwards=True), ValueError,
     r"same return_sequences"),
    ("return_sequences", "yes", TypeError, r"`return_sequences` must be True or False"),
])
def test_bidirectional_inconsistent_changes(name, value, error, pattern):
    bi = bidirectional()
    before = run(bi)
    with pytest.raises(error, match=pattern):
        setattr(bi, name, value)
    assert_same(run(bi), before)


def test_bidirectional_sum_needs_equal_units():
    bi = minirnn.Bidirectional(built("LSTM"), backward_layer=minirnn.GRU(5, go_backwards=True))
    with pytest.raises(ValueError, match=r"merge_mode='sum' adds or multiplies"):
        bi.merge_mode = "sum"
    assert bi.merge_mode == "concat"


@pytest.mark.parametrize("name, value, pattern", [
    ("go_backwards", False, r"must have different `go_backwards`"),
    ("return_sequences", False, r"same return_sequences"),
    ("zero_output_for_mask", False, r"`zero_output_for_mask` must equal"),
    ("dtype", "float64", r"must have dtype 'float32'"),
])
def test_bidirectional_checks_its_layers_at_each_call(name, value, pattern):
    """The two layers can be changed through their own references: each call
    checks that they still make a pair."""
    bi = bidirectional()
    setattr(bi.backward_layer, name, value)
    with pytest.raises(ValueError, match=pattern):
        bi(X)
    with pytest.raises(ValueError, match=pattern):
        bi.trace(X)


def test_bidirectional_refusal_leaves_no_partial_state():
    """A stateful pair whose backward products the bitwise mode cannot model: the
    call is refused before the forward layer runs and stores its states."""
    if not BITWISE:
        pytest.skip(str(minirnn.bitwise_support()))
    forward = minirnn.SimpleRNN(3, stateful=True, bitwise=True, seed=0)
    backward = minirnn.SimpleRNN(1, stateful=True, bitwise=True, go_backwards=True, seed=1)
    bi = minirnn.Bidirectional(forward, backward_layer=backward)
    with pytest.raises(minirnn.BitwiseUnsupportedError, match=r"\(2 x 3\) @ \(3 x 1\)"):
        bi(X)
    assert bi.forward_layer.states is None and bi.backward_layer.states is None


# ---- crash-prone cases in a child process -------------------------------------------

CRASHERS = """
import numpy as np, minirnn
from minirnn import kernels, exact
x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)

def refused(label, action):
    try:
        action()
    except (ValueError, TypeError, RuntimeError) as error:
        # The compiled code's own checks raise ValueError; a TypeError there would
        # mean the call never reached them (a wrong signature).
        print("refused", label, "ValueError" if isinstance(error, ValueError)
              else type(error).__name__)
    else:
        print("accepted", label)

def assign(layer, name, value):
    return lambda: setattr(layer, name, value)

for bitwise in ({bitwise_modes}):
    for cls in (minirnn.LSTM, minirnn.GRU, minirnn.SimpleRNN):
        layer = cls(4, bitwise=bitwise, seed=0)
        layer(x)
        width = layer.kernel.shape[1]
        refused("units", assign(layer, "units", 1_000_000))
        refused("units-small", assign(layer, "units", 1))
        refused("recurrent_kernel", assign(layer, "recurrent_kernel", np.zeros((40, width))))
        refused("recurrent_kernel-small", assign(layer, "recurrent_kernel", np.zeros((1, 4))))
        refused("kernel", assign(layer, "kernel", np.zeros((3, 1))))
        refused("bias", assign(layer, "bias", np.zeros(1)))
        layer(x)
        if cls is minirnn.GRU:
            refused("reset_after", assign(layer, "reset_after", False))
            layer(x)

# The compiled kernels check their operands themselves (ValueError, not a crash).
from minirnn import gemm
from minirnn.parallel import handoff
h = np.zeros((2, 4), np.float32); c = np.zeros((2, 4), np.float32)
out = np.zeros((2, 4), np.float32); outs = np.zeros((1, 1, 1), np.float32)
no_mask = np.ones((1, 1), bool)
none = np.zeros((0, 1, gemm.PANEL), np.float32)
w, u, b = (np.zeros((3, 16), np.float32), np.zeros((4, 16), np.float32),
           np.zeros(16, np.float32))
handoff_none = (handoff.TABLE, handoff.NO_PLAN)
refused("kernel-lstm-bias", lambda: kernels.lstm_sequence(
    x, w, u, b[:3], h, c, no_mask, False, False, False, False, 1, 2, outs, out, False, False,
    none, none, *handoff_none))
refused("kernel-lstm-recurrent", lambda: kernels.lstm_sequence(
    x, w, np.zeros((40, 16), np.float32), b, h, c, no_mask, False, False, False, False, 1, 2,
    outs, out, False, False, none, none, *handoff_none))
refused("kernel-lstm-outputs", lambda: kernels.lstm_sequence(
    x, w, u, b, h, c, no_mask, False, False, False, True, 1, 2, outs, out, False, False,
    none, none, *handoff_none))
refused("kernel-lstm-mask", lambda: kernels.lstm_sequence(
    x, w, u, b, h, c, no_mask, True, False, False, False, 1, 2, outs, out, False, False,
    none, none, *handoff_none))
refused("kernel-lstm-panels", lambda: kernels.lstm_sequence(
    x, w, u, b, h, c, no_mask, False, False, False, False, 1, 2, outs, out, False, False,
    gemm.pack(w), gemm.pack(np.zeros((40, 16), np.float32)), *handoff_none))
refused("kernel-lstm-panels-dtype", lambda: kernels.lstm_sequence(
    x, w, u, b, h, c, no_mask, False, False, False, False, 1, 2, outs, out, False, False,
    gemm.pack(w.astype(np.float64)), gemm.pack(u.astype(np.float64)), *handoff_none))
refused("kernel-lstm-panels-rows", lambda: kernels.lstm_sequence(
    x, w, u, b, h, c, no_mask, False, False, False, False, 1, 2, outs, out, False, False,
    gemm.pack(np.zeros((5, 16), np.float32)), gemm.pack(u), *handoff_none))
refused("kernel-gru-bias", lambda: kernels.gru_sequence(
    x, np.zeros((3, 12), np.float32), np.zeros((4, 12), np.float32),
    np.zeros((1, 1), np.float32), np.zeros(2, np.float32), np.zeros(12, np.float32), True,
    h, no_mask, False, False, False, False, 1, 2, outs, out, False, none, none, none, *handoff_none))
refused("kernel-gru-u_h", lambda: kernels.gru_sequence(
    x, np.zeros((3, 12), np.float32), np.zeros((4, 8), np.float32),
    np.zeros((1, 1), np.float32), np.zeros(12, np.float32), np.zeros(12, np.float32), False,
    h, no_mask, False, False, False, False, 1, 2, outs, out, False, none, none, none, *handoff_none))
refused("kernel-simple-bias", lambda: kernels.simple_rnn_sequence(
    x, np.zeros((3, 4), np.float32), np.zeros((4, 4), np.float32), np.zeros(1, np.float32),
    h, no_mask, False, False, False, False, 1, outs, out, False, none, none, *handoff_none))
refused("exact-matmul", lambda: exact.matmul(
    np.zeros((2, 5), np.float32), np.zeros((3, 4), np.float32),
    np.zeros((2, 4), np.float32), 2))
refused("exact-matmul-out", lambda: exact.matmul(
    np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32),
    np.zeros((1, 4), np.float32), 2))
refused("gemm-matmul", lambda: gemm.matmul(
    np.zeros((2, 5), np.float32), gemm.pack(np.zeros((3, 4), np.float32)),
    np.zeros((2, 32), np.float32)))
refused("gemm-matmul-out", lambda: gemm.matmul(
    np.zeros((2, 3), np.float32), gemm.pack(np.zeros((3, 40), np.float32)),
    np.zeros((2, 40), np.float32)))
refused("gemm-matmul-strides", lambda: gemm.matmul(
    np.zeros((2, 6), np.float32)[:, ::2], gemm.pack(np.zeros((3, 4), np.float32)),
    np.zeros((2, 32), np.float32)))
print("done")
"""


# Child processes that start when collection ends (tests/background.py).
CRASHING = Job(textwrap.dedent(CRASHERS.format(
    bitwise_modes="False, True" if BITWISE else "False,")))


@pytest.mark.background(CRASHING)
def test_crash_prone_changes_in_a_child_process():
    """The changes that used to end in a segmentation fault, garbage or a raw Numba
    error: each is refused, and the process lives to print "done"."""
    result = CRASHING.result()
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "done"
    accepted = [line for line in lines if line.startswith("accepted")]
    assert not accepted, accepted
    expected = 2 * 19 if BITWISE else 19
    refusals = [line for line in lines if line.startswith("refused")]
    assert len(refusals) == expected + 15
    compiled = [line for line in refusals if line.split()[1].startswith(("kernel-", "exact-",
                                                                         "gemm-"))]
    assert len(compiled) == 15 and all(line.endswith("ValueError") for line in compiled), \
        compiled


# ---- random walks of changes and calls ------------------------------------------------

WALKS = """
import sys
import numpy as np, minirnn
sys.path.insert(0, "tests")
from test_attributes import random_walk
counts = random_walk(seed=int(sys.argv[1]), walks=int(sys.argv[2]))
print(counts)
"""


WALKING = Job(WALKS, args=["0", "400"], timeout=900)


@pytest.mark.background(WALKING)
def test_random_walks_of_changes_and_calls():
    """Random sequences of assignments (good and bad values) and calls, every layer:
    each call matches a freshly built twin or raises a clear error (in a child
    process: a crash fails this test)."""
    result = WALKING.result()
    assert result.returncode == 0, result.stderr[-3000:]
    counts = eval(result.stdout.strip().splitlines()[-1], {})  # a dict literal we printed
    assert counts["calls_matching_twin"] > 1000
    assert counts["assignments_refused"] > 300
    assert counts["assignments_accepted"] > 1000


_POOL = {
    "units": [3, 4, 5, 0, "x"],
    "activation": ["tanh", "relu", "gelu", "bogus", None],
    "recurrent_activation": ["sigmoid", "hard_sigmoid", "bogus"],
    "use_bias": [True, False, 1],
    "return_sequences": [True, False],
    "return_state": [True, False],
    "go_backwards": [True, False],
    "stateful": [True, False],
    "zero_output_for_mask": [True, False],
    "dtype": ["float32", "float64", "float16"],
    "implementation": [1, 2, 3],
    "recurrent_dropout": [0.0, 0.5],
    "engine": ["numba", "numpy", "torch"],
    "bitwise": [True, False],
    "reset_after": [True, False],
    "kernel": ["same", "wrong", "other_dim"],
    "recurrent_kernel": ["same", "wrong"],
    "bias": ["same", "wrong", None],
    "states": ["same", "wrong", None],
}


def _draw_value(rng, layer, name):
    value = _POOL[name][rng.integers(len(_POOL[name]))]
    width = layer._gates * layer.units
    if name == "kernel":
        rows = layer.input_dim or 3
        shapes = {"same": (rows, width), "wrong": (rows, width + 1),
                  "other_dim": (rows % 4 + 2, width)}
        return rng.uniform(-1, 1, shapes[value])
    if name == "recurrent_kernel":
        return rng.uniform(-1, 1, (layer.units + (value == "wrong"), width))
    if name == "bias" and value is not None:
        shape = layer._bias_shape() if value == "same" else (width + 2,)
        return rng.uniform(-1, 1, shape)
    if name == "states" and value is not None:
        batch = 2 if value == "same" else 3
        return [rng.standard_normal((batch, layer.units)) for _ in layer._state_names]
    return value


def random_walk(seed=0, walks=150, steps=10):
    """Counts of what happened over ``walks`` random walks of ``steps`` actions."""
    rng = np.random.default_rng(seed)
    counts = {"calls_matching_twin": 0, "calls_refused": 0, "assignments_accepted": 0,
              "assignments_refused": 0}
    clear = (ValueError, TypeError, minirnn.BitwiseUnsupportedError)
    for _ in range(walks):
        kind = list(KINDS)[rng.integers(len(KINDS))]
        layer = built(kind, rng) if rng.random() < 0.8 else KINDS[kind]()
        for _ in range(steps):
            if rng.random() < 0.35:
                x = rng.standard_normal((2, 5, layer.input_dim or 3))
                mask = rng.random((2, 5)) < 0.8 if rng.random() < 0.5 else None
                try:
                    expected = run(twin(layer), x, mask)
                except clear:
                    expected = None
                try:
                    got = run(layer, x, mask)
                except clear:
                    assert expected is None, "the layer refused what its twin computed"
                    counts["calls_refused"] += 1
                    continue
                assert expected is not None, "the layer computed what its twin refused"
                assert_same(got, expected)
                counts["calls_matching_twin"] += 1
                continue
            names = [n for n in _POOL if n in layer._checks]
            name = names[rng.integers(len(names))]
            value = _draw_value(rng, layer, name)
            try:
                setattr(layer, name, value)
            except clear as error:
                assert f"`{name}" in str(error) or "bitwise=True" in str(error), str(error)
                counts["assignments_refused"] += 1
            else:
                counts["assignments_accepted"] += 1
    return counts
