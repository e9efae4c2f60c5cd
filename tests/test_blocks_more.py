"""The activation and convolution blocks against Keras 3's layers, in process.

Each case builds the Keras 3 layer (TensorFlow backend), gives it random weights that
differ per channel, reads its own get_config() back as a file would hold it (JSON),
builds the minirnn block from that configuration and compares the two outputs
within 1e-6 (float32) or 1e-12 (float64), on several shapes (a batch of one, one
step, odd sizes). The mask each block hands on is held against the mask Keras
attaches to its output, and Keras 2 semantics against tf-keras where the two differ.
"""

import json

import numpy as np
import pytest

from conftest import assert_close
from minirnn import activation_blocks, convolution

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BLOCKS = {**activation_blocks.BLOCKS, **convolution.BLOCKS}
DTYPES = ["float32", "float64"]


def _config(layer):
    """The layer's configuration as a file holds it (Keras 2 writes NumPy numbers as
    JSON numbers)."""
    return json.loads(json.dumps(layer.get_config(), default=lambda v: v.tolist()))


def _keras_layer(keras, name, config, dtype):
    if name == "ThresholdedReLU":
        from keras.src.legacy.layers import ThresholdedReLU
        return ThresholdedReLU(**config, dtype=dtype)
    return getattr(keras.layers, name)(**config, dtype=dtype)


def _inputs(shape, dtype, seed=0):
    """Normal numbers times two, with exact zeros and exact 0.4s (a threshold of
    some cases) where there is room."""
    rng = np.random.default_rng(seed)
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1)
    flat[::7] = 0
    flat[3::11] = 0.4
    return x


def _randomise(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype)
                       for w in layer.get_weights()])


def compare(keras, name, config, shape, dtype, mask=None):
    """Keras' layer and the minirnn block on one input; returns the block."""
    x = _inputs(shape, dtype)
    layer = _keras_layer(keras, name, config, dtype)
    layer(x)  # builds it
    _randomise(layer)
    want = layer(x) if mask is None else layer(x, mask=mask)
    want = np.asarray(want)
    block = BLOCKS[name]("layer", _config(layer), dtype)
    weights = [np.asarray(w) for w in layer.get_weights()]
    expected = block.weight_shapes(shape)
    assert len(expected) == len(weights)
    for w, s in zip(weights, expected):
        assert all(e is None or e == n for e, n in zip(s, w.shape)), (s, w.shape)
    block.set_weights(weights)
    got = block(x) if mask is None else block(x, mask)
    assert got.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    assert tuple(block.output_shape(shape)) == want.shape
    assert_close(got, want, dtype)
    return block


# ---- activation layers ----------------------------------------------------------

ACTIVATIONS = [
    ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.1}),
    ("LeakyReLU", {"negative_slope": 2.5}), ("LeakyReLU", {"negative_slope": 0.0}),
    ("ReLU", {}), ("ReLU", {"max_value": 6.0}), ("ReLU", {"negative_slope": 0.1}),
    ("ReLU", {"max_value": 1.5, "negative_slope": 0.2}), ("ReLU", {"threshold": 0.4}),
    ("ReLU", {"threshold": 0.4, "negative_slope": 0.3, "max_value": 1.2}),
    ("ReLU", {"threshold": 0.5, "negative_slope": 0.1}), ("ReLU", {"max_value": 0.0}),
    ("ELU", {}), ("ELU", {"alpha": 0.3}), ("ELU", {"alpha": -1.7}),
    ("Softmax", {}), ("Softmax", {"axis": 1}), ("Softmax", {"axis": [1, 2]}),
    ("Softmax", {"axis": [-1]}), ("Softmax", {"axis": 0}),
    ("UnitNormalization", {}), ("UnitNormalization", {"axis": 1}),
    ("UnitNormalization", {"axis": [1, 2]}),
    ("PReLU", {}), ("PReLU", {"shared_axes": [1]}), ("PReLU", {"shared_axes": [1, 2]}),
    ("PReLU", {"shared_axes": 2}),
    ("ThresholdedReLU", {}), ("ThresholdedReLU", {"theta": 0.4}),
    ("ThresholdedReLU", {"theta": 0.0}),
]
SHAPES = [(1, 1, 1), (1, 5, 3), (3, 1, 4), (4, 7, 5)]


def _id(case):
    return case[0] + "-" + "-".join(f"{k}={v}" for k, v in case[1].items())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", ACTIVATIONS, ids=_id)
def test_activation_layers(keras, case, shape, dtype):
    compare(keras, *case, shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,config", [("Softmax", {}), ("UnitNormalization", {}),
                                         ("PReLU", {}), ("ReLU", {"max_value": 3.0})])
def test_activation_layers_on_other_ranks(keras, name, config, dtype):
    for shape in [(3, 4), (2, 3, 4, 5), (1, 2)]:
        compare(keras, name, config, shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unit_normalization_of_zero_and_tiny_vectors(keras, dtype):
    x = np.zeros((3, 2, 4), dtype)
    x[1] = 1e-7
    x[2, 0] = 1e-30 if dtype == "float64" else 1e-20
    layer = keras.layers.UnitNormalization(dtype=dtype)
    block = BLOCKS["UnitNormalization"]("n", _config(layer), dtype)
    assert_close(block(x), np.asarray(layer(x)), dtype)


MASKS = {
    "full": lambda B, T, C: np.random.default_rng(3).random((B, T, C)) > 0.3,
    "steps": lambda B, T, C: np.random.default_rng(4).random((B, T, 1)) > 0.3,
    "features": lambda B, T, C: np.random.default_rng(5).random((B, 1, C)) > 0.3,
    "row": lambda B, T, C: np.random.default_rng(6).random((C,)) > 0.3,
    "float": lambda B, T, C: np.random.default_rng(7).random((B, T, C)).astype("float32"),
    "all_masked": lambda B, T, C: np.zeros((B, T, C), bool),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, [1, 2]], ids=str)
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 4), (2, 1, 6)],
                         ids=lambda s: "x".join(map(str, s)))
def test_softmax_mask(keras, shape, mask, axis, dtype):
    m = MASKS[mask](*shape)
    block = compare(keras, "Softmax", {"axis": axis}, shape, dtype, mask=m)
    assert block.compute_mask(None, m) is m


def test_softmax_reads_the_implicit_mask_of_its_input(keras):
    """A (batch, steps) mask on (batch, steps, features) inputs: Keras 3 checks the
    shapes aligned from the last dimension and raises; so does minirnn."""
    x = _inputs((2, 5, 3), "float32")
    x[1, 3:] = 0
    masked = keras.layers.Masking()(x)
    with pytest.raises(ValueError, match="broadcastable"):
        keras.layers.Softmax()(masked)
    block = BLOCKS["Softmax"]("s", {"axis": -1}, "float32")
    mask = np.any(x != 0, axis=-1)
    with pytest.raises(ValueError, match="broadcastable"):
        block(x, mask)
    # a (batch, steps) mask fits (batch, steps) inputs
    scores = x[:, :, 0]
    want = keras.layers.Softmax()(scores, mask=mask)
    assert_close(block(scores, mask), np.asarray(want), "float32")


# ---- padding, cropping, up-sampling ---------------------------------------------

RESHAPING = [
    ("ZeroPadding1D", {}), ("ZeroPadding1D", {"padding": 3}),
    ("ZeroPadding1D", {"padding": (2, 0)}), ("ZeroPadding1D", {"padding": (0, 1)}),
    ("ZeroPadding1D", {"padding": (1, 2), "data_format": "channels_first"}),
    ("Cropping1D", {}), ("Cropping1D", {"cropping": (0, 2)}),
    ("Cropping1D", {"cropping": (2, 0)}), ("Cropping1D", {"cropping": (0, 0)}),
    ("UpSampling1D", {}), ("UpSampling1D", {"size": 1}), ("UpSampling1D", {"size": 3}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 3), (3, 4, 1), (2, 9, 4)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", RESHAPING, ids=_id)
def test_padding_cropping_upsampling(keras, case, shape, dtype):
    name, config = case
    if name == "Cropping1D" and sum(config.get("cropping", (1, 1))) >= shape[1]:
        block = BLOCKS[name]("c", json.loads(json.dumps(config)), dtype)
        with pytest.raises(ValueError, match="cropping"):
            block(_inputs(shape, dtype))
        with pytest.raises(ValueError, match="cropping"):
            block.output_shape(shape)
        return
    compare(keras, name, config, shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 2), (1, 4, 2, 3)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", [{}, {"padding": 2}, {"padding": (1, 2)},
                                    {"padding": ((0, 1), (2, 0))},
                                    {"padding": ((1, 0), (0, 3)),
                                     "data_format": "channels_first"}], ids=str)
def test_zero_padding_2d(keras, config, shape, dtype):
    compare(keras, "ZeroPadding2D", config, shape, dtype)


def test_output_shapes_with_unknown_sizes():
    make = lambda name, config: BLOCKS[name]("b", config, "float32")  # noqa: E731
    assert make("ZeroPadding1D", {"padding": [1, 2]}).output_shape((None, None, 3)) == \
        (None, None, 3)
    assert make("UpSampling1D", {"size": 3}).output_shape((None, 4, 3)) == (None, 12, 3)
    assert make("Cropping1D", {"cropping": [1, 2]}).output_shape((None, None, 3)) == \
        (None, None, 3)
    assert make("Conv2D", {"filters": 4, "kernel_size": [3, 3], "padding": "same",
                           "strides": [2, 1]}).output_shape((None, None, 7, 2)) == \
        (None, None, 7, 4)
    assert make("MaxPooling2D", {"pool_size": [2, 2]}).output_shape((None, 9, None, 2)) \
        == (None, 4, None, 2)
    assert make("SeparableConv1D", {"filters": 2, "kernel_size": 3}).output_shape(
        (None, None, 5)) == (None, None, 2)
    assert make("SeparableConv1D", {"filters": 2, "kernel_size": 3}).weight_shapes(
        (None, None, 5)) == [(3, 5, 1), (1, 5, 2), (2,)]


# ---- convolutions ----------------------------------------------------------------

SEPARABLE = [
    {"filters": 3, "kernel_size": 1},
    {"filters": 4, "kernel_size": 3},
    {"filters": 2, "kernel_size": 3, "padding": "same", "depth_multiplier": 2},
    {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same"},
    {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "activation": "relu"},
    {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "strides": 2, "padding": "same"},
    {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "strides": 3},
    {"filters": 5, "kernel_size": 2, "use_bias": False, "depth_multiplier": 3},
    {"filters": 2, "kernel_size": 2, "data_format": "channels_first"},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 3), (3, 5, 2), (2, 12, 5)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", SEPARABLE, ids=str)
def test_separable_conv1d(keras, config, shape, dtype):
    _compare_or_both_refuse(keras, "SeparableConv1D", config, shape, dtype)


def _compare_or_both_refuse(keras, name, config, shape, dtype):
    """Where a "valid" window does not fit the input, minirnn raises a ValueError
    (TensorFlow's CPU pooling may even crash there, so Keras is not asked)."""
    spatial = shape[2:] if config.get("data_format") == "channels_first" else shape[1:-1]
    size = config.get("kernel_size", config.get("pool_size", 2))
    dilation = config.get("dilation_rate", 1)
    spans = [(k - 1) * d + 1 for k, d in zip(*(np.broadcast_to(v, len(spatial))
                                                for v in (size, dilation)))]
    if config.get("padding", "valid") == "valid" and any(
            n < span for n, span in zip(spatial, spans)):
        block = BLOCKS[name]("b", json.loads(json.dumps(config)), dtype)
        block.set_weights([np.zeros([n or 1 for n in s]) for s in block.weight_shapes(shape)])
        with pytest.raises(ValueError, match="too small"):
            block(_inputs(shape, dtype))
        return
    compare(keras, name, config, shape, dtype)


CONV2D = [
    {"filters": 3, "kernel_size": 3},
    {"filters": 4, "kernel_size": (1, 2), "padding": "same"},
    {"filters": 2, "kernel_size": (2, 3), "strides": (2, 1), "padding": "same",
     "activation": "tanh"},
    {"filters": 3, "kernel_size": 3, "strides": 2},
    {"filters": 2, "kernel_size": (3, 2), "dilation_rate": (2, 1), "padding": "same"},
    {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "use_bias": False},
    {"filters": 3, "kernel_size": 3, "padding": "same", "data_format": "channels_first"},
]
SHAPES_2D = [(1, 1, 1, 1), (1, 5, 6, 1), (2, 7, 4, 3), (3, 4, 9, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", CONV2D, ids=str)
def test_conv2d(keras, config, shape, dtype):
    if config.get("data_format") == "channels_first" and dtype == "float64":
        pytest.skip("TensorFlow's CPU Conv2D takes NCHW inputs in float32 only")
    _compare_or_both_refuse(keras, "Conv2D", config, shape, dtype)


def test_conv2d_of_a_realistic_size(keras):
    """A CRNN's first layers: 32 x 100 images, 3 x 3 kernels, 16 then 32 channels.
    Sums of 144 and 288 products cancel to small outputs, where any float32 order
    of summation errs by more than 1e-6: minirnn's error against the exact (float64)
    result is held to TensorFlow's own, and the two within 1e-6 of the largest
    output."""
    for C, F in [(1, 16), (16, 32)]:
        shape = (4, 32, 100, C)
        x = _inputs(shape, "float32")
        layer = keras.layers.Conv2D(F, 3, padding="same")
        layer(x)
        _randomise(layer)
        want = np.asarray(layer(x))
        weights = layer.get_weights()
        got = BLOCKS["Conv2D"]("c", _config(layer), "float32")
        got.set_weights(weights)
        got = got(x)
        exact = BLOCKS["Conv2D"]("c", _config(layer), "float64")
        exact.set_weights(weights)
        exact = exact(x.astype("float64"))
        assert np.max(np.abs(got - exact)) <= 2 * np.max(np.abs(want - exact)) + 1e-7
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.max(np.abs(want)))


POOLING = [
    {"pool_size": 2}, {"pool_size": 3}, {"pool_size": (2, 3), "strides": (1, 2)},
    {"pool_size": 2, "padding": "same"}, {"pool_size": (3, 2), "strides": 2, "padding": "same"},
    {"pool_size": (1, 2), "strides": (1, 1)},
    {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", POOLING, ids=str)
@pytest.mark.parametrize("name", ["MaxPooling2D", "AveragePooling2D"])
def test_pooling_2d(keras, name, config, shape, dtype):
    _compare_or_both_refuse(keras, name, config, shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES_2D, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("config", [{}, {"keepdims": True}, {"data_format": "channels_first"},
                                    {"data_format": "channels_first", "keepdims": True}],
                         ids=str)
@pytest.mark.parametrize("name", ["GlobalMaxPooling2D", "GlobalAveragePooling2D"])
def test_global_pooling_2d(keras, name, config, shape, dtype):
    compare(keras, name, config, shape, dtype)


# ---- masks -----------------------------------------------------------------------

MASK_CASES = [
    ("LeakyReLU", {}), ("ReLU", {}), ("PReLU", {"shared_axes": [1]}), ("ELU", {}),
    ("Softmax", {"axis": 1}), ("ThresholdedReLU", {}), ("UnitNormalization", {}),
    ("ZeroPadding1D", {}), ("Cropping1D", {}), ("UpSampling1D", {}),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2}),
]


@pytest.mark.parametrize("case", MASK_CASES, ids=_id)
def test_mask_rule_is_keras(keras, case):
    """The mask on Keras' output (after a Masking layer) is the one minirnn hands on.
    The Softmax case has steps == features, the one shape its implicit mask fits."""
    from keras.src.backend import get_keras_mask
    name, config = case
    x = _inputs((4, 4, 4), "float32")
    x[1, 2:] = 0
    x[2, :1] = 0
    masked = keras.layers.Masking()(x)
    mask = np.asarray(get_keras_mask(masked))
    layer = _keras_layer(keras, name, config, "float32")
    y = layer(masked)
    want = get_keras_mask(y)
    block = BLOCKS[name]("b", _config(layer), "float32")
    got = block.compute_mask(x, mask)
    if want is None:
        assert got is None and block.mask_rule == "drops"
    else:
        np.testing.assert_array_equal(got, np.asarray(want))
    if name == "Softmax":
        block.set_weights([])
        assert_close(block(x, mask), np.asarray(y), "float32")


@pytest.mark.parametrize("name,config,shape", [
    ("Conv2D", {"filters": 2, "kernel_size": 2}, (2, 3, 4, 2)),
    ("MaxPooling2D", {}, (2, 4, 4, 2)), ("AveragePooling2D", {"pool_size": 2}, (2, 4, 4, 2)),
    ("ZeroPadding2D", {}, (2, 4, 4, 2)), ("GlobalMaxPooling2D", {}, (2, 4, 4, 2)),
    ("GlobalAveragePooling2D", {}, (2, 4, 4, 2))])
def test_mask_rule_of_2d_layers(keras, name, config, shape):
    from keras.src.backend import get_keras_mask
    x = _inputs(shape, "float32")
    x[0, 1] = 0
    layer = _keras_layer(keras, name, config, "float32")
    y = layer(keras.layers.Masking()(x))
    assert get_keras_mask(y) is None
    block = BLOCKS[name]("b", _config(layer), "float32")
    assert block.compute_mask(x, np.any(x != 0, axis=-1)) is None


# ---- Keras 2 semantics ------------------------------------------------------------

@pytest.fixture(scope="module")
def tf_keras(keras):
    return pytest.importorskip("tf_keras")


def compare_keras2(tf_keras, name, kwargs, x, mask=None):
    dtype = x.dtype.name
    layer = getattr(tf_keras.layers, name)(**kwargs, dtype=dtype)
    layer(x)
    _randomise(layer)
    want = np.asarray(layer(x) if mask is None else layer(x, mask=mask))
    block = BLOCKS[name]("b", _config(layer), dtype, "keras2")
    block.set_weights([np.asarray(w) for w in layer.get_weights()])
    got = block(x) if mask is None else block(x, np.asarray(mask))
    assert got.shape == want.shape
    assert_close(got, want, dtype)
    return block


KERAS2 = [
    ("LeakyReLU", {"alpha": 0.1}), ("LeakyReLU", {"alpha": -0.2}), ("LeakyReLU", {}),
    ("ReLU", {"threshold": 0.4, "negative_slope": 0.2, "max_value": 2.0}),
    ("ReLU", {"threshold": 0.4}), ("ELU", {"alpha": 0.7}), ("ThresholdedReLU", {"theta": 0.4}),
    ("PReLU", {"shared_axes": [1]}), ("Softmax", {"axis": [1, 2]}),
    ("UnitNormalization", {"axis": [1, 2]}),
    ("ZeroPadding1D", {"padding": (2, 1)}), ("Cropping1D", {"cropping": (1, 2)}),
    ("UpSampling1D", {"size": 2}),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 3, "padding": "causal",
                         "dilation_rate": 2, "depth_multiplier": 2}),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same"}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", KERAS2, ids=_id)
def test_keras2_layers(tf_keras, case, dtype):
    compare_keras2(tf_keras, *case, _inputs((3, 6, 4), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,config,shape", [
    ("Conv2D", {"filters": 3, "kernel_size": (2, 3), "padding": "same", "strides": (2, 1)},
     (2, 5, 6, 2)),
    ("MaxPooling2D", {"pool_size": 2, "padding": "same"}, (2, 5, 3, 2)),
    ("AveragePooling2D", {"pool_size": (3, 2), "strides": 1}, (2, 5, 3, 2)),
    ("ZeroPadding2D", {"padding": ((1, 0), (2, 1))}, (1, 3, 3, 2)),
    ("GlobalAveragePooling2D", {"keepdims": True}, (2, 3, 4, 2)),
    ("GlobalMaxPooling2D", {}, (2, 3, 4, 2))])
def test_keras2_2d_layers(tf_keras, name, config, shape, dtype):
    compare_keras2(tf_keras, name, config, _inputs(shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("robust", [False, True])
def test_keras2_softmax_mask(tf_keras, dtype, robust):
    """Keras 2 adds (1 - m) * -1e9 (or, robust, puts -1e9 in) and leaves the masked
    outputs as they come: an all-masked row is not zeroed, as Keras 3 zeroes it."""
    x = _inputs((3, 4, 5), dtype)
    mask = np.random.default_rng(2).random((3, 4, 5)) > 0.4
    mask[0] = False
    kwargs = {"robust_masking": True} if robust else {}
    import tensorflow as tf
    compare_keras2(tf_keras, "Softmax", kwargs, x, tf.constant(mask))
    block = BLOCKS["Softmax"]("s", {"axis": -1}, dtype, "keras3")
    assert np.all(block(x, mask)[0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras2_unit_normalization_of_tiny_vectors(tf_keras, keras, dtype):
    x = np.zeros((3, 2, 4), dtype)
    x[1] = 1e-7
    x[2, 0] = 1e-4
    compare_keras2(tf_keras, "UnitNormalization", {}, x)
    ours3 = BLOCKS["UnitNormalization"]("n", {"axis": -1}, dtype)
    assert_close(ours3(x), np.asarray(keras.layers.UnitNormalization(dtype=dtype)(x)), dtype)


# ---- refused configurations ----------------------------------------------------------

BAD = [
    ("LeakyReLU", {"negative_slope": -0.1}, "negative_slope"),
    ("LeakyReLU", {"negative_slope": "0.1"}, "negative_slope"),
    ("LeakyReLU", {"alpha": None}, "alpha"),
    ("ReLU", {"max_value": -1.0}, "max_value"),
    ("ReLU", {"threshold": None}, "threshold"),
    ("ReLU", {"negative_slope": True}, "negative_slope"),
    ("ReLU", {"negative_slope": float("nan")}, "negative_slope"),
    ("ELU", {"alpha": "1"}, "alpha"),
    ("ELU", {"alpha": float("inf")}, "alpha"),
    ("Softmax", {"axis": 1.5}, "axis"),
    ("Softmax", {"axis": []}, "axis"),
    ("Softmax", {"axis": [1, True]}, "axis"),
    ("Softmax", {"robust_masking": 1}, "robust_masking"),
    ("ThresholdedReLU", {"theta": -1}, "theta"),
    ("UnitNormalization", {"axis": "x"}, "axis"),
    ("PReLU", {"shared_axes": [0]}, "shared_axes"),
    ("PReLU", {"shared_axes": "1"}, "shared_axes"),
    ("ZeroPadding1D", {"padding": -1}, "padding"),
    ("ZeroPadding1D", {"padding": [1, 2, 3]}, "padding"),
    ("ZeroPadding1D", {"padding": 2**30}, "padding"),
    ("ZeroPadding1D", {"data_format": "NWC"}, "data_format"),
    ("Cropping1D", {"cropping": [-1, 0]}, "cropping"),
    ("Cropping1D", {"cropping": "1"}, "cropping"),
    ("UpSampling1D", {"size": 0}, "size"),
    ("UpSampling1D", {"size": 2**30}, "size"),
    ("UpSampling1D", {"size": 1.5}, "size"),
    ("ZeroPadding2D", {"padding": [[1], [2]]}, "padding"),
    ("ZeroPadding2D", {"padding": [[1, 2], [3, -1]]}, "padding"),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 3, "depth_multiplier": 0},
     "depth_multiplier"),
    ("SeparableConv1D", {"filters": 2}, "kernel_size"),
    ("SeparableConv1D", {"filters": 0, "kernel_size": 2}, "filters"),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "padding": "full"}, "padding"),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "strides": 0}, "strides"),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "use_bias": "yes"}, "use_bias"),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "activation": "nope"}, "nope"),
    ("Conv2D", {"filters": 2, "kernel_size": [3]}, "kernel_size"),
    ("Conv2D", {"filters": 2, "kernel_size": [3, 0]}, "kernel_size"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "groups": 2}, "groups"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
     "dilation_rate"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "causal"}, "padding"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "data_format": "NCHW"}, "data_format"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "strides": [1, 2**30]}, "strides"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "lora_rank": 4}, "LoRA"),
    ("MaxPooling2D", {"pool_size": [0, 2]}, "pool_size"),
    ("MaxPooling2D", {"strides": [1]}, "strides"),
    ("AveragePooling2D", {"padding": "full"}, "padding"),
    ("GlobalMaxPooling2D", {"keepdims": "yes"}, "keepdims"),
    ("GlobalAveragePooling2D", {"data_format": 1}, "data_format"),
]


@pytest.mark.parametrize("name,config,key", BAD, ids=lambda v: str(v)[:40])
def test_bad_configurations_are_refused(name, config, key):
    with pytest.raises(ValueError, match=key) as error:
        BLOCKS[name]("bad", config, "float32")
    assert "'bad'" in str(error.value) and name in str(error.value)


def test_bad_shapes_are_refused():
    prelu = BLOCKS["PReLU"]("p", {"shared_axes": [3]}, "float32")
    with pytest.raises(ValueError, match="shared_axes"):
        prelu.weight_shapes((None, 4, 3))
    softmax = BLOCKS["Softmax"]("s", {"axis": 3}, "float32")
    with pytest.raises(ValueError, match="axis"):
        softmax(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="broadcastable"):
        BLOCKS["Softmax"]("s", {}, "float32")(np.zeros((2, 3)), np.ones((1, 2, 3), bool))
    unit = BLOCKS["UnitNormalization"]("u", {"axis": [1, -2]}, "float32")
    with pytest.raises(ValueError, match="twice"):
        unit(np.zeros((2, 3, 4)))
    for name, config in [("ZeroPadding1D", {}), ("Cropping1D", {}), ("UpSampling1D", {}),
                         ("ZeroPadding2D", {}), ("MaxPooling2D", {}),
                         ("GlobalMaxPooling2D", {}),
                         ("Conv2D", {"filters": 1, "kernel_size": 1})]:
        block = BLOCKS[name]("b", config, "float32")
        block.set_weights([np.zeros([n or 1 for n in s])
                           for s in block.weight_shapes((2, 3, 4, 1))])
        with pytest.raises(ValueError, match="rank"):
            block(np.zeros((2, 3)))
    pool = BLOCKS["AveragePooling2D"]("a", {"pool_size": 3}, "float32")
    with pytest.raises(ValueError, match="too small"):
        pool(np.zeros((1, 2, 5, 1)))
