"""minirnn against Keras 3 (TensorFlow backend, eager call), argument by argument.

Every case uses random weights that differ per gate and non-zero biases
(reference.keras_layers.random_weights), converts the Keras layer with
minirnn.from_keras, runs both on the same inputs and compares every returned array
within the tolerances of reference.cases.TOLERANCES: float64 1e-12, float32
1e-6 absolute plus 1e-6 relative. The configurations here are well conditioned, so
each must pass outright (status "pass", never "ill-conditioned").
"""

import itertools

import numpy as np
import pytest

import minirnn
from conftest import assert_close, case, random_weights, reference

KINDS = ["LSTM", "GRU", "GRU_v1", "SimpleRNN"]
DTYPES = ["float32", "float64"]
SHAPES = [(1, 1, 1, 1), (1, 8, 2, 3), (1, 1, 5, 4), (4, 1, 3, 2), (3, 5, 7, 1),
          (5, 13, 3, 8), (2, 17, 9, 33)]


def check(**overrides):
    run_case = reference("cases").run_case
    c = case(**overrides)
    result = run_case(c)
    assert result["status"] == "pass", (result, c)
    return result


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes(keras, kind, dtype, shape):
    B, T, D, M = shape
    check(kind=kind, dtype=dtype, B=B, T=T, D=D, M=M, return_sequences=True,
          return_state=True)


ARGUMENTS = {
    "plain": {},
    "return_sequences": {"return_sequences": True},
    "return_state": {"return_state": True},
    "both": {"return_sequences": True, "return_state": True},
    "go_backwards": {"go_backwards": True, "return_sequences": True, "return_state": True},
    "no_bias": {"use_bias": False, "return_sequences": True},
    "initial_state": {"initial_state": True, "return_state": True, "return_sequences": True},
    "stateful": {"stateful": True, "return_sequences": True, "return_state": True},
    "stateful_initial": {"stateful": True, "initial_state": True, "return_state": True},
    "mask_random": {"mask": "random", "return_sequences": True, "return_state": True},
    "mask_leading_initial": {"mask": "leading", "initial_state": True,
                             "return_sequences": True, "return_state": True},
    "mask_trailing": {"mask": "trailing", "return_state": True},
    "mask_row_off": {"mask": "row_off", "initial_state": True, "return_state": True},
    "mask_zero_output": {"mask": "random", "zero_output_for_mask": True,
                         "return_sequences": True, "return_state": True},
    "mask_zero_output_last": {"mask": "trailing", "zero_output_for_mask": True,
                              "return_state": True},
    "mask_backwards": {"mask": "leading", "go_backwards": True, "return_sequences": True,
                       "initial_state": True},
    "mask_stateful": {"mask": "random", "stateful": True, "return_state": True},
    "rnn_cell": {"wrapper": "cell", "return_sequences": True, "return_state": True,
                 "mask": "random"},
    # dropout, recurrent_dropout, unroll=True and implementation=1 in Keras
    "inference_only": {"inference_only": True, "return_sequences": True,
                       "return_state": True, "mask": "random", "zero_output_for_mask": True},
    "inference_only_cell": {"inference_only": True, "wrapper": "cell", "mask": "trailing",
                            "return_state": True},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("argument", list(ARGUMENTS))
def test_arguments(keras, kind, dtype, argument):
    check(kind=kind, dtype=dtype, **ARGUMENTS[argument])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("options", ["last", "sequences+states", "mask+initial_state",
                                     "stateful"])
def test_bidirectional(keras, kind, dtype, merge_mode, options):
    settings = {
        "last": {},
        "sequences+states": {"return_sequences": True, "return_state": True},
        "mask+initial_state": {"return_sequences": True, "return_state": True,
                               "mask": "random", "initial_state": True},
        "stateful": {"stateful": True, "return_state": True, "mask": "trailing"},
    }[options]
    check(kind=kind, dtype=dtype, wrapper="bidirectional", merge_mode=merge_mode, **settings)


ACTIVATIONS = minirnn.activations.names()
# Activations whose range lets the recurrence explode or amplify rounding even over
# four steps with these weights: exponential grows without bound, log_softmax makes
# gates negative (so |f| or |1 - z| exceeds 1). For them the comparison may end
# "ill-conditioned" (see reference.cases.run_case); every other name must pass.
EXPLOSIVE = {"exponential", "log_softmax"}


def check_activation(**overrides):
    run_case = reference("cases").run_case
    c = case(**overrides)
    result = run_case(c)
    name = {c["activation"], c["recurrent_activation"]} - {"tanh", "sigmoid"}
    allowed = ("pass", "ill-conditioned") if name & EXPLOSIVE else ("pass",)
    assert result["status"] in allowed, (result, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1", "SimpleRNN"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(keras, kind, dtype, name):
    check_activation(kind=kind, dtype=dtype, activation=name, T=4, return_sequences=True,
                     return_state=True, seed=11)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "GRU_v1"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_recurrent_activation(keras, kind, dtype, name):
    check_activation(kind=kind, dtype=dtype, recurrent_activation=name, T=4,
                     return_sequences=True, return_state=True, seed=12)


def _keras_layer(keras, kind, M, dtype, **kwargs):
    if kind == "GRU_v1":
        return keras.layers.GRU(M, reset_after=False, dtype=dtype, **kwargs)
    return getattr(keras.layers, kind)(M, dtype=dtype, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_set_weights_path(keras, kind, dtype):
    """The constructor + set_weights path (no from_keras) gives Keras' results too."""
    B, T, D, M = 2, 7, 3, 4
    base = "GRU" if kind == "GRU_v1" else kind
    weights = random_weights(base, D, M, reset_after=kind != "GRU_v1", dtype=dtype, seed=3)
    theirs = _keras_layer(keras, kind, M, dtype, return_sequences=True, return_state=True)
    theirs.build((None, T, D))
    theirs.set_weights(weights)
    extra = {"reset_after": False} if kind == "GRU_v1" else {}
    ours = getattr(minirnn, base)(M, return_sequences=True, return_state=True, dtype=dtype,
                                  **extra)
    ours.set_weights(weights)
    x = np.random.default_rng(1).normal(size=(B, T, D)).astype(dtype)
    for a, b in zip(ours(x), theirs(x)):
        assert a.dtype == np.dtype(dtype)
        assert_close(a, keras.ops.convert_to_numpy(b), dtype)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_model_predict(keras, kind):
    """The seed notebook's way of calling Keras: a functional Model and predict()."""
    keras_layers = reference("keras_layers")
    T, D, M = 8, 2, 3
    weights = random_weights(kind, D, M, dtype="float32", seed=5)
    layer = keras_layers.build_layer({"kind": kind, "units": M, "return_state": True,
                                      "return_sequences": True}, D, weights=weights)
    x = np.random.default_rng(2).normal(size=(1, T, D)).astype("float32")
    theirs = keras_layers.predict(layer, x, D, T)
    ours = minirnn.from_keras(layer)(x)
    assert len(ours) == len(theirs) == (3 if kind == "LSTM" else 2)
    for a, b in zip(ours, theirs):
        assert_close(a, b, "float32")


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_and_inf_propagate_as_in_keras(keras, kind, masked):
    """NaN and infinities in the input are not errors: they flow as in Keras, and a
    masked step's input is not used at all (Keras selects, it does not multiply)."""
    cases, keras_layers = reference("cases"), reference("keras_layers")
    c = case(kind=kind, return_sequences=True, return_state=True)
    weights, calls = cases.make_data(c)
    x = calls[0]["x"]
    x[0, 2, 1] = np.nan
    x[1, 3, 0] = np.inf
    x[2, 1, :] = -np.inf
    mask = np.ones((c["B"], c["T"]), bool)
    if masked:
        mask[0, 2] = mask[1, 3] = mask[2, 1] = False
    layer = cases.keras_layer(c, weights)
    ours = minirnn.from_keras(layer)(x, mask=mask)
    theirs = keras_layers.run(layer, x, mask)
    for a, b in zip(ours, theirs):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert_close(a, b, "float64")
    assert np.isnan(ours[0]).any() != masked


def test_bidirectional_backward_layer(keras):
    """A separately configured backward layer (another cell kind and size even)."""
    keras_layers = reference("keras_layers")
    D, T, B = 3, 6, 2
    fwd = keras_layers.build_layer({"kind": "LSTM", "units": 4, "return_sequences": True,
                                    "return_state": True}, D,
                                   weights=random_weights("LSTM", D, 4, seed=1))
    bwd = keras_layers.build_layer({"kind": "GRU", "units": 4, "return_sequences": True,
                                    "return_state": True, "go_backwards": True,
                                    "activation": "relu"}, D,
                                   weights=random_weights("GRU", D, 4, seed=2))
    layer = keras.layers.Bidirectional(fwd, backward_layer=bwd, merge_mode="sum")
    layer.build((None, T, D))
    layer.set_weights(random_weights("LSTM", D, 4, seed=1) + random_weights("GRU", D, 4, seed=2))
    ours = minirnn.from_keras(layer)
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    mask = np.random.default_rng(1).random((B, T)) < 0.7
    theirs = keras_layers.run(layer, x, mask)
    mine = ours(x, mask=mask)
    assert len(mine) == len(theirs) == 4  # output, fwd h, fwd c, bwd h
    for a, b in zip(mine, theirs):
        assert_close(a, b, "float32")


def test_bidirectional_wrapper_dtype(keras):
    """Keras' Bidirectional defaults to the float32 policy around float64 layers."""
    keras_layers = reference("keras_layers")
    config = {"kind": "GRU", "units": 3, "return_sequences": True, "dtype": "float64"}
    inner = keras_layers.build_layer(config, 2)
    layer = keras.layers.Bidirectional(inner)
    layer.build((None, 5, 2))
    layer.set_weights(random_weights("GRU", 2, 3, seed=1) + random_weights("GRU", 2, 3, seed=2))
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    ours, theirs = minirnn.from_keras(layer)(x), keras_layers.run(layer, x)[0]
    assert ours.dtype == theirs.dtype == np.float32
    assert_close(ours, theirs, "float32")


def test_stateful_sequence_of_calls_and_reset(keras):
    """Three calls, a reset, a call: states carry per batch row exactly as in Keras."""
    keras_layers = reference("keras_layers")
    weights = random_weights("LSTM", 3, 4, seed=9)
    layer = keras_layers.build_layer({"kind": "LSTM", "units": 4, "stateful": True,
                                      "return_state": True}, 3, batch_size=2, weights=weights)
    ours = minirnn.from_keras(layer)
    rng = np.random.default_rng(4)
    for call in range(5):
        if call == 3:
            layer.reset_states()
            ours.reset_states()
        x = rng.normal(size=(2, 5, 3)).astype("float32")
        for a, b in zip(ours(x), keras_layers.run(layer, x)):
            assert_close(a, b, "float32")


def test_from_keras_copies_stateful_states(keras):
    keras_layers = reference("keras_layers")
    layer = keras_layers.build_layer({"kind": "GRU", "units": 3, "stateful": True}, 2,
                                     batch_size=2, weights=random_weights("GRU", 2, 3, seed=1))
    rng = np.random.default_rng(0)
    keras_layers.run(layer, rng.normal(size=(2, 4, 2)).astype("float32"))
    ours = minirnn.from_keras(layer)  # after a call: the states are not zero
    x = rng.normal(size=(2, 4, 2)).astype("float32")
    assert_close(ours(x), keras_layers.run(layer, x)[0], "float32")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_backends_semantics_leading_masked_steps(keras, kind):
    """TensorFlow backend: leading masked steps output zeros, the state keeps h0."""
    c = case(kind=kind, return_sequences=True, return_state=True)
    M = c["M"]
    ours = getattr(minirnn, kind)(M, return_sequences=True, return_state=True, dtype="float64")
    ours.set_weights(random_weights(kind, c["D"], M))
    x = np.random.default_rng(0).normal(size=(1, 4, c["D"]))
    h0 = [np.full((1, M), 0.5)] * (2 if kind == "LSTM" else 1)
    mask = np.array([[False, False, True, True]])
    result = ours(x, mask=mask, initial_state=h0)
    assert np.all(result[0][:, :2] == 0)
    masked_all = ours(x, mask=np.zeros((1, 4), bool), initial_state=h0)
    assert np.all(masked_all[0] == 0) and np.all(masked_all[1] == 0.5)


@pytest.mark.parametrize("rows", list(itertools.product([1, 8], [1, 7])))
def test_large_inner_sizes(keras, rows):
    """D and M above the sizes of the grid, including a chunked input projection."""
    B, M = rows
    check(kind="LSTM", dtype="float32", B=B, T=9, D=130, M=M * 20, return_sequences=True,
          return_state=True, mask="random")


def test_keras_unrolled_go_backwards_mask_zeroing(keras):
    """Keras' unroll=True path zeroes masked outputs with the mask in input order
    although go_backwards outputs are in processing order; minirnn (and Keras'
    while-loop path) zero the processed step's output. Pinned here so a change in
    Keras is noticed; from_keras warns about such layers."""
    keras_layers = reference("keras_layers")
    weights = random_weights("LSTM", 2, 3, seed=1)
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    config = {"kind": "LSTM", "units": 3, "return_sequences": True, "go_backwards": True,
              "zero_output_for_mask": True, "dtype": "float64"}
    unrolled = keras_layers.build_layer({**config, "unroll": True}, 2, weights=weights)
    looped = keras_layers.build_layer(config, 2, weights=weights)
    with pytest.warns(UserWarning, match=r"unrolled loop zeroes the outputs"):
        ours = minirnn.from_keras(unrolled)
    assert_close(ours(x, mask=mask), keras_layers.run(looped, x, mask)[0], "float64")
    held = minirnn.LSTM(3, return_sequences=True, go_backwards=True, dtype="float64")
    held.set_weights(weights)
    keras_unrolled = keras_layers.run(unrolled, x, mask)[0]
    assert_close(keras_unrolled, np.where(mask[:, :, None], held(x, mask=mask), 0), "float64")
    assert np.abs(keras_unrolled - ours(x, mask=mask)).max() > 0.01
