"""Bad input: a ValueError or TypeError naming the argument, the expected and the
received value, raised in Python before any compiled kernel runs."""

import numpy as np
import pytest

import minirnn


def layer(kind="LSTM", **kwargs):
    return getattr(minirnn, kind)(3, seed=0, **kwargs)


X = np.zeros((2, 4, 5))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("x, error, pattern", [
    (np.zeros((4, 5)), ValueError, r"`x` must be 3-D .* received shape \(4, 5\)"),
    (np.zeros((1, 2, 4, 5)), ValueError, r"`x` must be 3-D .* received shape \(1, 2, 4, 5\)"),
    (np.zeros((0, 4, 5)), ValueError, r"`x` must have at least one .* received shape \(0, 4, 5\)"),
    (np.zeros((2, 0, 5)), ValueError, r"`x` .* received shape \(2, 0, 5\)"),
    (np.array([[["a", "b"]]]), TypeError, r"`x` must hold real numbers; .* dtype <U1"),
    (np.zeros((1, 2, 2), complex), TypeError, r"`x` must hold real numbers; .* complex128"),
    ([[[1.0, 2.0], [3.0]]], TypeError, r"`x` must be a numeric array"),
    ("hello", TypeError, r"`x` must hold real numbers"),
])
def test_bad_x(kind, x, error, pattern):
    with pytest.raises(error, match=pattern):
        layer(kind)(x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_wrong_feature_size(kind):
    built = layer(kind)
    built(X)
    with pytest.raises(ValueError, match=r"`x` must have 5 features .* received shape \(2, 4, 6\)"):
        built(np.zeros((2, 4, 6)))


@pytest.mark.parametrize("units, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                          ("8", TypeError), (True, TypeError), (None, TypeError)])
def test_bad_units(units, error):
    with pytest.raises(error, match=rf"`units` must be a positive integer; received {units!r}"):
        minirnn.GRU(units)


@pytest.mark.parametrize("argument", ["activation", "recurrent_activation"])
def test_unknown_activation(argument):
    with pytest.raises(ValueError, match=rf"Unknown `{argument}`: expected one of .*'tanh'.*; "
                                         r"received 'tanhh'"):
        minirnn.LSTM(3, **{argument: "tanhh"})
    with pytest.raises(TypeError, match=rf"`{argument}` must be the name"):
        minirnn.LSTM(3, **{argument: np.tanh})


@pytest.mark.parametrize("name", ["glu", "threshold"])
def test_refused_activation(name):
    with pytest.raises(ValueError, match=rf"`activation`='{name}' cannot be used"):
        minirnn.SimpleRNN(3, activation=name)


@pytest.mark.parametrize("dtype", ["float16", "int32", "mixed_float16", "bfloat16", "f", 3])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"`dtype` must be 'float32' or 'float64'; received"):
        minirnn.LSTM(3, dtype=dtype)


@pytest.mark.parametrize("argument", ["return_sequences", "return_state", "go_backwards",
                                      "stateful", "zero_output_for_mask", "use_bias", "unroll"])
def test_bad_flag(argument):
    with pytest.raises(TypeError, match=rf"`{argument}` must be True or False; received 'yes'"):
        minirnn.GRU(3, **{argument: "yes"})


def test_unknown_keyword():
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['return_sequence'\]"):
        minirnn.LSTM(3, return_sequence=True)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"dropout": 1.5}, r"`dropout` must be in \[0, 1\]; received 1.5"),
    ({"recurrent_dropout": "a"}, r"`recurrent_dropout` must be a float"),
    ({"implementation": 3}, r"`implementation` must be 1 or 2; received 3"),
    ({"use_cudnn": "yes"}, r"`use_cudnn` must be 'auto', True or False"),
    ({"engine": "cuda"}, r"`engine` must be one of \('numba', 'numpy'\); received 'cuda'"),
    ({"seed": 1.5}, r"`seed` must be an integer or None; received 1.5"),
])
def test_bad_options(kwargs, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        minirnn.LSTM(3, **kwargs)


@pytest.mark.parametrize("kind, weights, pattern", [
    ("LSTM", [np.zeros((5, 12)), np.zeros((3, 12))],
     r"must hold 3 arrays; received 2"),
    ("LSTM", [np.zeros((5, 12)), np.zeros((3, 12)), np.zeros(12), np.zeros(1)],
     r"must hold 3 arrays; received 4"),
    ("LSTM", [np.zeros((5, 9)), np.zeros((3, 12)), np.zeros(12)],
     r"`weights\[0\]` \(kernel\) must have shape \(5, 12\); received \(5, 9\)"),
    ("LSTM", [np.zeros((5, 12)), np.zeros((3, 3)), np.zeros(12)],
     r"`weights\[1\]` \(recurrent_kernel\) must have shape \(3, 12\); received \(3, 3\)"),
    ("LSTM", [np.zeros((5, 12)), np.zeros((3, 12)), np.zeros(9)],
     r"`weights\[2\]` \(bias\) must have shape \(12,\); received \(9,\)"),
    ("GRU", [np.zeros((5, 9)), np.zeros((3, 9)), np.zeros(9)],
     r"`weights\[2\]` \(bias\) must have shape \(2, 9\); received \(9,\)"),
    ("SimpleRNN", [np.zeros(5), np.zeros((3, 3)), np.zeros(3)],
     r"`weights\[0\]` \(kernel\) must have shape"),
    ("SimpleRNN", [np.zeros((5, 3)), np.zeros((3, 3)), np.array(["a", "b", "c"])],
     r"`weights\[2\] \(bias\)` must hold real numbers"),
])
def test_bad_weights(kind, weights, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        layer(kind).set_weights(weights)


def test_weights_must_match_built_input_size():
    built = layer("LSTM")
    built(X)
    with pytest.raises(ValueError, match=r"kernel\) must have shape \(5, 12\) for this built"):
        built.set_weights([np.zeros((4, 12)), np.zeros((3, 12)), np.zeros(12)])


def test_weights_not_a_list():
    with pytest.raises(TypeError, match=r"`weights` must be a list"):
        layer().set_weights(np.zeros((5, 12)))


@pytest.mark.parametrize("mask, error, pattern", [
    (np.ones((2, 3), bool), ValueError, r"`mask` must have shape \(batch, timesteps\) = "
                                        r"\(2, 4\); received \(2, 3\)"),
    (np.ones((2, 4, 1), bool), ValueError, r"received \(2, 4, 1\)"),
    (np.array([["a"] * 4] * 2), TypeError, r"`mask` must hold real numbers"),
])
def test_bad_mask(mask, error, pattern):
    with pytest.raises(error, match=pattern):
        layer()(X, mask=mask)


@pytest.mark.parametrize("kind, state, pattern", [
    ("LSTM", [np.zeros((2, 3))], r"must be a list of 2 array\(s\) \['h', 'c'\].*received 1 arrays"),
    ("LSTM", np.zeros((2, 3)), r"received ndarray"),
    ("GRU", [np.zeros((2, 3)), np.zeros((2, 3))], r"list of 1 array\(s\) \['h'\].*received 2"),
    ("GRU", [np.zeros((3, 3))], r"`initial_state` \(h\) must have shape \(batch, units\) = "
                                r"\(2, 3\); received \(3, 3\)"),
    ("LSTM", [np.zeros((2, 3)), np.zeros((2, 4))], r"`initial_state` \(c\) must have shape"),
    ("SimpleRNN", np.array([["x"] * 3] * 2), r"`initial_state \(h\)` must hold real numbers"),
])
def test_bad_initial_state(kind, state, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        layer(kind)(X, initial_state=state)


def test_stateful_batch_size_change():
    stateful = layer("GRU", stateful=True)
    stateful(X)
    with pytest.raises(ValueError, match=r"stateful: `x` must keep the batch size 2 .*"
                                         r"received batch size 3"):
        stateful(np.zeros((3, 4, 5)))
    stateful.reset_state()
    with pytest.raises(ValueError, match=r"batch size 2"):
        stateful(np.zeros((1, 4, 5)))


def test_bidirectional_errors():
    with pytest.raises(ValueError, match=r"`merge_mode` must be one of .* received 'max'"):
        minirnn.Bidirectional(layer(), merge_mode="max")
    with pytest.raises(TypeError, match=r"`layer` must be a minirnn LSTM, GRU or SimpleRNN; "
                                        r"received str"):
        minirnn.Bidirectional("lstm")
    with pytest.raises(ValueError, match=r"different `go_backwards`"):
        minirnn.Bidirectional(layer(go_backwards=True))
    with pytest.raises(ValueError, match=r"same return_sequences .* expected False; received True"):
        minirnn.Bidirectional(layer(), backward_layer=layer(go_backwards=True,
                                                            return_sequences=True))
    with pytest.raises(TypeError, match=r"`backward_layer` must be"):
        minirnn.Bidirectional(layer(), backward_layer=3)
    bi = minirnn.Bidirectional(layer())
    with pytest.raises(ValueError, match=r"must hold 4 arrays .* received 2"):
        bi(X, initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(ValueError, match=r"must hold 6 arrays"):
        bi.set_weights([np.zeros((5, 12))] * 3)
    with pytest.raises(ValueError, match=r"`x` must be 3-D"):
        bi(np.zeros((2, 5)))


def test_validation_happens_before_the_kernel_and_changes_nothing():
    """A stateful layer keeps its states when a call is refused."""
    stateful = layer("LSTM", stateful=True)
    stateful(X)
    before = [s.copy() for s in stateful.states]
    with pytest.raises(ValueError):
        stateful(X, mask=np.ones((2, 5), bool))
    for a, b in zip(before, stateful.states):
        np.testing.assert_array_equal(a, b)


def test_from_keras_refuses_non_layers():
    pytest.importorskip("keras")
    with pytest.raises(TypeError, match=r"`layer` must be a Keras 3 layer; received int"):
        minirnn.from_keras(3)


@pytest.mark.parametrize("kind, states, pattern", [
    ("LSTM", [np.zeros((2, 3), np.float32), np.zeros((2, 1), np.float32)],
     r"`states` \(c\) must have shape \(batch, units\) = \(2, 3\); received \(2, 1\)"),
    ("LSTM", [np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)],
     r"`states` \(c\) must have shape .* received \(1, 3\)"),
    ("LSTM", [np.zeros((2, 3), np.float32)], r"`states` of this stateful LSTM must be a list of 2"),
    ("GRU", [np.zeros((2, 5), np.float32)], r"`states` \(h\) must have shape .* received \(2, 5\)"),
    ("GRU", [np.array([["a"] * 3] * 2)], r"`states \(h\)` must hold real numbers"),
])
def test_bad_stored_states(kind, states, pattern):
    """A stateful layer's public ``states`` are checked when assigned, and a refused
    assignment leaves the stored states as they were."""
    stateful = layer(kind, stateful=True)
    stateful(X[:, :, :5])
    before = [s.copy() for s in stateful.states]
    with pytest.raises((ValueError, TypeError), match=pattern):
        stateful.states = states
    for a, b in zip(before, stateful.states, strict=True):
        np.testing.assert_array_equal(a, b)
    stateful(X)


def test_stored_states_of_another_dtype_are_cast():
    stateful = layer("GRU", stateful=True, dtype="float32")
    stateful(X)
    stateful.states = [np.ones((2, 3))]  # float64 given to a float32 layer
    assert stateful(X).dtype == np.float32


def test_more_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer or None; "
                                         r"received -1"):
        minirnn.LSTM(3, seed=-1)
    with pytest.raises(TypeError, match=r"SimpleRNN got unexpected keyword argument\(s\) "
                                        r"\['recurrent_activation'\]"):
        minirnn.SimpleRNN(3, recurrent_activation="relu")
    with pytest.raises(ValueError, match=r"kernel\) must have at least one row"):
        minirnn.LSTM(3).set_weights([np.zeros((0, 12)), np.zeros((3, 12)), np.zeros(12)])


def test_bidirectional_mismatched_layers():
    with pytest.raises(ValueError, match=r"merge_mode='sum' .* must have 3 units like `layer`; "
                                         r"received 4"):
        minirnn.Bidirectional(layer(), merge_mode="sum",
                              backward_layer=minirnn.GRU(4, go_backwards=True))
    mixed = minirnn.Bidirectional(layer(), backward_layer=minirnn.GRU(3, go_backwards=True))
    with pytest.raises(ValueError, match=r"different numbers of states"):
        mixed(X, initial_state=[np.zeros((2, 3))] * 3)
    with pytest.raises(ValueError, match=r"must hold 3 arrays"):
        mixed.trace(X, initial_state=[np.zeros((2, 3))] * 2)
