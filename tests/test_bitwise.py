"""bitwise=True against Keras 3 (TensorFlow backend, CPU): identical float32 bits.

Comparisons are of the bits (minirnn.bitwise.bitwise_differences views float32 as
int32), never allclose: one differing element anywhere fails. The grid covers
B * units both multiples of 8 and not (the scalar tail of TensorFlow's
activations), inner sizes D and units on both sides of oneDNN's 384 block (and
three blocks), masks, go_backwards, initial and stateful states, every
Bidirectional merge mode, both GRU variants, SimpleRNN, RNN(cell), implementation=1,
the modelled activations, model.predict and denormal results. The equality tests
skip, with the reason, where minirnn.bitwise_support() says the platform is not
modelled; the tests of the platform check and of the refusals run everywhere.
"""

import numpy as np
import pytest

import minirnn
from conftest import case, reference
from minirnn import bitwise, exact, kernels

SUPPORT = bitwise.bitwise_support()
needs_platform = pytest.mark.skipif(not SUPPORT, reason=f"bitwise mode: {SUPPORT.reason}")
KINDS = ["LSTM", "GRU", "GRU_v1", "SimpleRNN"]


def check(**overrides):
    run_bitwise_case = reference("cases").run_bitwise_case
    c = case(**{"dtype": "float32", **overrides})
    result = run_bitwise_case(c)
    assert result["identical"], (result, c)
    assert result["total"] > 0
    return result


# ---- equality with Keras -----------------------------------------------------------

# (B, T, D, M): B*M = 1, 3, 35, 8 (no scalar tail), 15, 18; D or M = 384, 400 (two
# blocks), 777 (three blocks); a batch of one with D = 500 (one chain).
SHAPES = [(1, 1, 1, 1), (1, 8, 2, 3), (5, 4, 3, 7), (4, 6, 3, 2), (3, 5, 7, 5),
          (2, 3, 384, 9), (5, 3, 400, 9), (3, 2, 777, 6), (2, 3, 13, 385), (1, 3, 500, 3)]


@needs_platform
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes(keras, kind, shape):
    B, T, D, M = shape
    if kind == "SimpleRNN" and M == 1 and B > 1 and D > 1:
        pytest.skip("a matrix-vector product: refused, see test_matrix_vector_refused")
    check(kind=kind, B=B, T=T, D=D, M=M, return_sequences=True, return_state=True)


ARGUMENTS = {
    "last": {},
    "go_backwards": {"go_backwards": True, "return_sequences": True, "return_state": True},
    "no_bias": {"use_bias": False, "return_sequences": True},
    "initial_state": {"initial_state": True, "return_state": True},
    "stateful": {"stateful": True, "return_sequences": True, "return_state": True},
    "mask_random": {"mask": "random", "return_sequences": True, "return_state": True},
    "mask_leading_backwards": {"mask": "leading", "go_backwards": True,
                               "initial_state": True, "return_sequences": True},
    "mask_row_off": {"mask": "row_off", "initial_state": True, "return_state": True},
    "mask_zero_output": {"mask": "trailing", "zero_output_for_mask": True,
                         "return_sequences": True, "return_state": True},
    "rnn_cell": {"wrapper": "cell", "mask": "random", "return_state": True},
    # dropout, recurrent_dropout (so implementation=1) and unroll=True in Keras
    "inference_only": {"inference_only": True, "mask": "random", "return_sequences": True,
                       "return_state": True},
}


@needs_platform
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("argument", list(ARGUMENTS))
@pytest.mark.parametrize("size", ["small", "wide"])
def test_arguments(keras, kind, argument, size):
    B, T, D, M = (3, 6, 4, 5) if size == "small" else (3, 3, 390, 11)
    check(kind=kind, B=B, T=T, D=D, M=M, **ARGUMENTS[argument])


@needs_platform
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional(keras, kind, merge_mode):
    check(kind=kind, wrapper="bidirectional", merge_mode=merge_mode, B=3, T=5, D=6, M=7,
          mask="random", initial_state=True, return_sequences=True, return_state=True)


@needs_platform
@pytest.mark.parametrize("merge_mode", ["sum", "concat"])
def test_bidirectional_stateful_wide(keras, merge_mode):
    check(kind="LSTM", wrapper="bidirectional", merge_mode=merge_mode, B=2, T=3, D=400,
          M=5, stateful=True, return_state=True)


@needs_platform
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("name", bitwise.ACTIVATIONS)
def test_activation(keras, kind, name):
    check(kind=kind, activation=name, B=3, T=4, D=3, M=5, return_sequences=True,
          return_state=True, seed=11)


@needs_platform
@pytest.mark.parametrize("kind", ["LSTM", "GRU_v1"])
@pytest.mark.parametrize("name", bitwise.ACTIVATIONS)
def test_recurrent_activation(keras, kind, name):
    check(kind=kind, recurrent_activation=name, B=3, T=4, D=3, M=5, return_sequences=True,
          return_state=True, seed=12)


@needs_platform
@pytest.mark.parametrize("kind", KINDS)
def test_model_predict(keras, kind):
    """Keras' graph path (model.predict in a tf.function) gives the same bits where
    TensorFlow's graph optimiser keeps the layer's order of operations (docs/exactness.md
    lists where it does not): LSTM and GRU with their default activations, and
    SimpleRNN without bias."""
    run_bitwise_case = reference("cases").run_bitwise_case
    result = run_bitwise_case(case(kind=kind, dtype="float32", B=5, T=7, D=9, M=3,
                                   use_bias=kind != "SimpleRNN", return_sequences=True),
                              predict=True)
    assert result["identical"], result


@needs_platform
def test_keras_predict_reorders_simple_rnn_bias(keras):
    """Pins a TensorFlow behaviour: in model.predict, the graph optimiser's remapper
    turns SimpleRNN's (x W + b) + h U into (x W + h U) + b, so Keras' own eager and
    predict results differ; the bitwise mode reproduces the eager call."""
    cases = reference("cases")
    bitwise_differences, keras_layer = cases.bitwise_differences, cases.keras_layer
    make_data, run_calls = cases.make_data, cases.run_calls
    predict = reference("keras_layers").predict
    c = case(kind="SimpleRNN", dtype="float32", B=5, T=7, D=9, M=3, return_sequences=True)
    weights, calls = make_data(c)
    layer = keras_layer(c, weights)
    x = calls[0]["x"].astype(np.float32)
    eager = run_calls(layer, calls, "float32")[0]
    graph = predict(layer, x, c["D"])
    ours = minirnn.from_keras(layer, bitwise=True)(x)
    assert bitwise_differences(graph, eager)[0] > 0
    assert bitwise_differences([ours], eager)[0] == 0


@needs_platform
def test_denormal_results_are_flushed(keras):
    """TensorFlow flushes denormals to zero; so do the bitwise mode and the default
    mode's compiled kernels."""
    layer = keras.layers.SimpleRNN(3, activation="sigmoid", return_sequences=True)
    layer.build((None, None, 2))
    layer.set_weights([np.array([[0.5, -0.25, 1.0], [0.1, 0.2, -0.3]], np.float32),
                       np.array([[0.1, 0.2, 0.3], [0.2, -0.1, 0.0], [0.3, 0.1, -0.2]],
                                np.float32),
                       np.array([-95.0, -88.0, 0.5], np.float32)])
    x = np.zeros((2, 3, 2), np.float32)
    theirs = np.asarray(layer(x))
    ours = minirnn.from_keras(layer, bitwise=True)(x)
    default = minirnn.from_keras(layer)(x)
    assert theirs[0, 0, 0] == 0 and theirs[0, 0, 1] == 0
    assert np.array_equal(ours.view(np.int32), theirs.view(np.int32))
    assert default[0, 0, 0] == 0 and default[0, 0, 1] == 0


@needs_platform
@pytest.mark.parametrize("kind", KINDS)
def test_signed_zero_without_bias(keras, kind):
    """Without a bias Keras adds nothing, so a -0 sum stays -0 (minirnn adds -0.0)."""
    keras_layer = reference("cases").keras_layer
    c = case(kind=kind, dtype="float32", use_bias=False, B=1, T=2, D=1, M=2,
             return_sequences=True)
    weights = [np.full(w, 1e-20) for w in ((1, 2 * {"LSTM": 4, "SimpleRNN": 1}.get(kind, 3)),
                                          (2, 2 * {"LSTM": 4, "SimpleRNN": 1}.get(kind, 3)))]
    layer = keras_layer(c, weights)
    x = np.full((1, 2, 1), -1e-20, np.float32)
    h0 = [np.full((1, 2), -1e-20, np.float32) for _ in range(2 if kind == "LSTM" else 1)]
    theirs = np.asarray(layer(x, initial_state=h0))
    ours = minirnn.from_keras(layer, bitwise=True)(x, initial_state=h0)
    assert np.array_equal(ours.view(np.int32), theirs.view(np.int32)), (ours, theirs)


@needs_platform
def test_default_mode_differs_where_bitwise_agrees(keras):
    """The test can fail: the default kernels differ in the last bits here."""
    cases = reference("cases")
    bitwise_differences, keras_layer = cases.bitwise_differences, cases.keras_layer
    make_data, run_calls = cases.make_data, cases.run_calls
    c = case(kind="LSTM", dtype="float32", B=5, T=10, D=400, M=9, return_sequences=True,
             return_state=True)
    weights, calls = make_data(c)
    layer = keras_layer(c, weights)
    theirs = run_calls(layer, calls, "float32")[0]
    default = run_calls(minirnn.from_keras(layer), calls, "float32")[0]
    exact_ = run_calls(minirnn.from_keras(layer, bitwise=True), calls, "float32")[0]
    assert bitwise_differences(default, theirs)[0] > 0
    assert bitwise_differences(exact_, theirs)[0] == 0


@needs_platform
def test_layer_api_without_from_keras(keras):
    """Constructor + set_weights with bitwise=True, and Bidirectional(bitwise=True)."""
    random_weights = reference("keras_layers").random_weights
    rng = np.random.default_rng(3)
    weights = random_weights(rng, "GRU", 4, 6, dtype="float32")
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    k = keras.layers.GRU(6, return_sequences=True)
    k.build((None, None, 4))
    k.set_weights(weights)
    ours = minirnn.GRU(6, return_sequences=True, bitwise=True)
    ours.set_weights(weights)
    assert np.array_equal(ours(x).view(np.int32), np.asarray(k(x)).view(np.int32))
    kb = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True),
                                    merge_mode="ave")
    kb.build((None, None, 4))
    kb.set_weights(weights + random_weights(rng, "GRU", 4, 6, dtype="float32"))
    forward = minirnn.GRU(6, return_sequences=True)
    ob = minirnn.Bidirectional(forward, merge_mode="ave", bitwise=True)
    ob.set_weights(kb.get_weights())
    assert ob.bitwise and ob.forward_layer.bitwise and ob.backward_layer.bitwise
    assert np.array_equal(ob(x).view(np.int32), np.asarray(kb(x)).view(np.int32))


@needs_platform
def test_random_cases(keras):
    """40 random float32 configurations (minirnn verify --bitwise's generator)."""
    cases = reference("cases")
    describe, random_bitwise_case = cases.describe, cases.random_bitwise_case
    run_bitwise_case = cases.run_bitwise_case
    rng = np.random.default_rng(2026)
    for _ in range(40):
        c = random_bitwise_case(rng)
        result = run_bitwise_case(c)
        assert result["identical"], (result, describe(c))


SPECIALS = np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, -1e-40, 1e-40, -1e-45, -2e-38,
                     -3.0, 3.0, -0.5, 0.5, -1.0, 1.0, 6.0, -6.0, 7.0, -90.0, -104.5, 20.0],
                    np.float32)


@needs_platform
@pytest.mark.parametrize("name", bitwise.ACTIVATIONS)
def test_activation_special_values(keras, name):
    """Signed zeros, denormals, NaN, infinities and saturation at a vector position
    and in scalar tails of length 1 and 5, against TensorFlow's activation."""
    code = minirnn.activations.code_of(name)
    function = keras.activations.get(name)
    for value in SPECIALS:
        for n in (16, 13, 9, 1):
            x = np.linspace(-2, 2, n).astype(np.float32)
            x[3 if n == 16 else n - 1] = value
            theirs = np.asarray(function(keras.ops.convert_to_tensor(x)))
            ours = x.copy()
            with exact.flush_denormals():
                kernels.activate_gate(code, ours, 0, n, True)
            assert np.array_equal(ours.view(np.int32), theirs.view(np.int32)), (value, n)


# ---- the parts --------------------------------------------------------------------

def test_k_blocks():
    """oneDNN's split of K for multi-row products, as measured (minirnn.exact)."""
    assert exact.k_blocks(1) == [(0, 1)]
    assert exact.k_blocks(384) == [(0, 384)]
    assert exact.k_blocks(385) == [(0, 193), (193, 385)]
    assert exact.k_blocks(768) == [(0, 384), (384, 768)]
    assert exact.k_blocks(1000) == [(0, 384), (384, 692), (692, 1000)]
    assert exact.k_blocks(2048) == [(0, 384), (384, 768), (768, 1152), (1152, 1536),
                                    (1536, 1792), (1792, 2048)]
    for K in range(1, 3000, 7):
        blocks = exact.k_blocks(K)
        assert blocks[0][0] == 0 and blocks[-1][1] == K
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert all(0 < k1 - k0 <= 384 for k0, k1 in blocks)
        assert list(exact._k_bounds(K, False)) == [k0 for k0, _ in blocks] + [K]
        assert list(exact._k_bounds(K, True)) == [0, K]


def test_matmul_order():
    """exact.matmul is the FMA chain per block, blocks added left to right; it
    differs from BLAS in the last bits (so order matters in these data)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 800)).astype(np.float32)
    b = rng.normal(size=(800, 5)).astype(np.float32)
    out = exact.product(a, b)
    expected = np.zeros((3, 5), np.float32)
    for k0, k1 in exact.k_blocks(800):
        part = np.zeros((3, 5), np.float32)
        for k in range(k0, k1):  # fma in float64: exact product, one rounding
            part = (a[:, k, None].astype(np.float64) * b[k].astype(np.float64)
                    + part).astype(np.float32)
        expected = expected + part
    assert np.count_nonzero(out != expected) <= 1  # float64 fma may double-round
    assert np.count_nonzero(out != (a @ b)) > 0
    single = exact.product(a[:1], b)
    assert np.count_nonzero(single != out[:1]) > 0  # one row: one chain, not blocks
    stacked = exact.product(np.concatenate([a[:1], a[:1]]), b, rows_per_product=1)
    assert np.array_equal(stacked, np.concatenate([single, single]))


@pytest.mark.parametrize("args, match", [
    ((np.ones((3, 10)), np.ones((4, 5))), r"\(R, K\) and \(K, N\) matrices; received "
                                          r"shapes \(3, 10\) and \(4, 5\)"),
    ((np.ones(3), np.ones((3, 2))), r"received shapes \(3,\) and \(3, 2\)"),
    ((np.ones((4, 3)), np.ones((3, 2)), 3), r"positive divisor of a's 4 rows; received 3"),
    ((np.ones((4, 3)), np.ones((3, 2)), 0), r"received 0"),
])
def test_product_checks_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        exact.product(*args)


def test_scalar_tail_of_activations():
    """Only the last B*M mod 8 elements of a gate tensor take the scalar sigmoid."""
    values = np.array([-9, -7, -5, -2, 0, 2, 5, 7, -3, -1, 1, -6, 4], np.float32)
    vector = values.copy()
    kernels.activate_block(2, vector)
    tail = values.copy()
    kernels.activate_gate(2, tail, 0, 13, True)
    assert np.array_equal(tail[:8], vector[:8])
    scalar = np.array([kernels.activate_scalar_path(2, v, False) for v in values[8:]],
                      np.float32)
    assert np.array_equal(tail[8:], scalar)
    assert np.count_nonzero(scalar != vector[8:]) > 0  # the two formulas differ here
    default = values.copy()
    kernels.activate_gate(2, default, 0, 13, False)
    assert np.array_equal(default, vector)


def test_flush_denormals_restores_flags():
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("FTZ and DAZ are x86 flags")
    before = exact._get_mxcsr()
    tiny = np.float32(1e-20)
    with exact.flush_denormals():
        assert exact._get_mxcsr() & 0x8040 == 0x8040
        assert kernels.activate_array(0, np.array([tiny * tiny]))[0] == 0
    assert exact._get_mxcsr() == before
    assert np.array([tiny])[0] * tiny > 0


def test_self_test_digests():
    parts = bitwise.self_test_results()
    assert set(parts) == set(bitwise.SELF_TEST_DIGESTS)
    if SUPPORT:
        for part, array in parts.items():
            assert bitwise._digest(array) == bitwise.SELF_TEST_DIGESTS[part]


# ---- the platform check and the refusals -------------------------------------------

@pytest.fixture
def fresh_support():
    """Check the platform afresh in the test, and again (lazily) after it; the
    products' platform model (which a check sets) is put back afterwards."""
    previous = exact.platform_model()
    bitwise._support.cache_clear()
    yield
    bitwise._support.cache_clear()
    exact.set_platform(*previous)


@pytest.mark.parametrize("variable, value, reason", [
    ("ONEDNN_MAX_CPU_ISA", "AVX", r"ONEDNN_MAX_CPU_ISA=AVX makes oneDNN use other kernels"),
    ("ONEDNN_MAX_CPU_ISA", "AVX10_2_512", r"not a value whose kernels were measured"),
    ("DNNL_MAX_CPU_ISA", "SSE41", r"DNNL_MAX_CPU_ISA=SSE41"),
    ("TF_ENABLE_ONEDNN_OPTS", "0", r"TF_ENABLE_ONEDNN_OPTS=0 sends TensorFlow's products "
                                   r"through Eigen"),
])
def test_support_refuses_other_kernels(monkeypatch, fresh_support, variable, value, reason):
    monkeypatch.setattr(bitwise.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(bitwise.sys, "platform", "linux")
    monkeypatch.setattr(bitwise.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(bitwise, "_cpu_flags", lambda: set(bitwise._CPU_FLAGS))
    monkeypatch.setenv(variable, value)
    support = bitwise.bitwise_support(refresh=True)
    assert not support and not bool(support)
    import re
    assert re.search(reason, support.reason), support.reason
    assert "not supported" in str(support)


@pytest.mark.parametrize("patch, reason", [
    ({"machine": "aarch64"}, r"models x86-64 Linux; this is linux aarch64"),
    ({"libc": ("", "")}, r"C library is unknown"),
    ({"flags": {"avx2"}}, r"AVX-512 and its AVX2 kernels \(with FMA\); this CPU lacks fma"),
    ({"flags": {"sse4_2"}}, r"this CPU lacks avx2, fma"),
    ({"tensorflow": ("tensorflow", "2.18.0")}, r"tensorflow 2.18.0 is installed; measured, "
                                               r"its float32 results differ from TensorFlow "
                                               r"2.21's.*older tanh"),
    ({"tensorflow": ("tensorflow", "2.22.0")}, r"tensorflow 2.22.0 is installed; the mode "
                                               r"models TensorFlow 2.21.*2.22 was not measured"),
    ({"digest": "0" * 64}, r"does not reproduce TensorFlow's recorded products"),
])
def test_support_reasons(monkeypatch, fresh_support, patch, reason):
    import re
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setattr(bitwise.sys, "platform", "linux")
    monkeypatch.setattr(bitwise.platform, "machine", lambda: patch.get("machine", "x86_64"))
    monkeypatch.setattr(bitwise.platform, "libc_ver", lambda: patch.get("libc", ("glibc", "2.36")))
    monkeypatch.setattr(bitwise, "_cpu_flags",
                        lambda: patch.get("flags", set(bitwise._CPU_FLAGS)))
    monkeypatch.setattr(bitwise, "_installed_tensorflow",
                        lambda: patch.get("tensorflow", ("tensorflow-cpu", "2.21.0")))
    if "digest" in patch:
        monkeypatch.setitem(bitwise.SELF_TEST_DIGESTS, "products", patch["digest"])
    elif not SUPPORT:
        pytest.skip(f"the self-test needs a modelled platform: {SUPPORT.reason}")
    support = bitwise.bitwise_support(refresh=True)
    assert not support
    assert re.search(reason, support.reason), support.reason


# Measured with reference/tf_versions.py (benchmarks/results/*/bitwise-tf-versions.md):
# 240 layer cases and 138 probes identical to 2.21's bits, or what differs.
SAME_RELEASES = ["2.21.0", "2.20.0", "2.20.1", "2.21.0rc1"]
DIFFERENT_RELEASES = {"2.19.1": r"older tanh", "2.18.1": r"older tanh",
                      "2.17.1": r"older tanh", "2.16.2": r"older tanh.*and sigmoid"}
UNMEASURED_RELEASES = ["2.15.1", "2.22.0", "3.0.0"]


@pytest.mark.parametrize("version", SAME_RELEASES)
def test_tensorflow_releases_measured_same(version):
    assert bitwise.tensorflow_release_reason("tensorflow-cpu", version) == ""


@pytest.mark.parametrize("version, what", list(DIFFERENT_RELEASES.items()))
def test_tensorflow_releases_measured_different(version, what):
    import re
    reason = bitwise.tensorflow_release_reason("tensorflow-cpu", version)
    assert reason.startswith(f"tensorflow-cpu {version} is installed; measured, its float32 "
                             "results differ from TensorFlow 2.21's"), reason
    assert re.search(what, reason), reason
    assert "products and the other activations identical" in reason
    assert "measured to give 2.21's bits: 2.21, 2.20." in reason


@pytest.mark.parametrize("version", UNMEASURED_RELEASES)
def test_tensorflow_releases_not_measured(version):
    release = ".".join(version.split(".")[:2])
    reason = bitwise.tensorflow_release_reason("tensorflow", version)
    assert f"{release} was not measured" in reason, reason
    assert "measured to give its bits (2.21, 2.20)" in reason
    assert "measured to differ: 2.16, 2.17, 2.18, 2.19" in reason


@pytest.mark.parametrize("version", SAME_RELEASES + list(DIFFERENT_RELEASES)
                         + UNMEASURED_RELEASES)
def test_support_by_tensorflow_release(monkeypatch, fresh_support, version):
    """bitwise_support() as a whole, with the installed TensorFlow's version mocked as
    the platform facts are in test_support_reasons."""
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(bitwise.sys, "platform", "linux")
    monkeypatch.setattr(bitwise.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(bitwise.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(bitwise, "_cpu_flags", lambda: set(bitwise._CPU_FLAGS))
    monkeypatch.setattr(bitwise, "_installed_tensorflow", lambda: ("tensorflow-cpu", version))
    same = version in SAME_RELEASES
    if same and not SUPPORT:
        pytest.skip(f"the self-test needs a modelled platform: {SUPPORT.reason}")
    support = bitwise.bitwise_support(refresh=True)
    assert support.details["TensorFlow"] == f"tensorflow-cpu {version}"
    if same:
        assert support, support.reason
    else:
        assert not support
        assert support.reason == bitwise.tensorflow_release_reason("tensorflow-cpu", version)
        assert "self-test" not in support.details  # refused before the self-test


def test_tf_versions_script_activations():
    """reference/tf_versions.py runs without minirnn, so it keeps its own copy of the
    modelled activations: the same list."""
    assert reference("tf_versions").ACTIVATIONS == bitwise.ACTIVATIONS


def test_unsupported_platform_raises(monkeypatch, fresh_support):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
    bitwise.bitwise_support(refresh=True)
    for make in (lambda: minirnn.LSTM(3, bitwise=True),
                 lambda: minirnn.SimpleRNN(3, bitwise=True),
                 lambda: minirnn.Bidirectional(minirnn.GRU(3), bitwise=True)):
        with pytest.raises(minirnn.BitwiseUnsupportedError,
                           match=r"bitwise=True cannot promise Keras' bits on this platform"):
            make()
    assert issubclass(minirnn.BitwiseUnsupportedError, RuntimeError)
    minirnn.LSTM(3)  # the default mode is unaffected


@needs_platform
@pytest.mark.parametrize("make, match", [
    (lambda: minirnn.LSTM(3, bitwise=True, dtype="float64"),
     r"`dtype` must be 'float32'; received 'float64'"),
    (lambda: minirnn.GRU(3, bitwise=True, engine="numpy"),
     r"`engine` must be 'numba'; received 'numpy'"),
    (lambda: minirnn.LSTM(3, bitwise=True, activation="elu"),
     r"`activation` must be one of .*received 'elu'"),
    (lambda: minirnn.GRU(3, bitwise=True, recurrent_activation="softmax"),
     r"`recurrent_activation` must be one of .*received 'softmax'"),
    (lambda: minirnn.Bidirectional(minirnn.LSTM(3), bitwise=True, dtype="float64"),
     r"`dtype` must be 'float32' or None; received 'float64'"),
    (lambda: minirnn.Bidirectional(minirnn.LSTM(3, bitwise=True),
                                   backward_layer=minirnn.LSTM(3, go_backwards=True)),
     r"`backward_layer` must have the same bitwise as `layer`: expected True; received "
     r"False"),
])
def test_bitwise_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@needs_platform
def test_settings_changed_after_construction_are_checked():
    """Refused when assigned (the layer keeps its settings), not at the next call."""
    layer = minirnn.LSTM(3, bitwise=True, seed=0)
    with pytest.raises(ValueError, match=r"`engine` must be 'numba'; received 'numpy'"):
        layer.engine = "numpy"
    assert layer.engine == "numba"
    with pytest.raises(ValueError, match=r"received 'elu'"):
        layer.activation = "elu"
    assert layer.activation == "tanh"
    layer(np.ones((2, 3, 2), np.float32))
    plain = minirnn.LSTM(3, seed=0)
    plain.bitwise = True  # switched on after construction: checked too
    with pytest.raises(ValueError, match=r"`dtype` must be 'float32'"):
        plain.dtype = "float64"
    assert plain.dtype == "float32"
    float64 = minirnn.LSTM(3, seed=0, dtype="float64")
    with pytest.raises(ValueError, match=r"`dtype` must be 'float32'"):
        float64.bitwise = True
    assert float64.bitwise is False


def test_bitwise_type_error():
    with pytest.raises(TypeError, match=r"`bitwise` must be True or False; received 1"):
        minirnn.LSTM(3, bitwise=1)
    with pytest.raises(TypeError, match=r"`bitwise` must be True or False; received 'yes'"):
        minirnn.Bidirectional(minirnn.LSTM(3), bitwise="yes")


@needs_platform
def test_matrix_vector_refused():
    layer = minirnn.SimpleRNN(1, bitwise=True, seed=0)
    with pytest.raises(minirnn.BitwiseUnsupportedError,
                       match=r"\(3 x 4\) @ \(4 x 1\) product goes through oneDNN's "
                             r"matrix-vector kernel"):
        layer(np.ones((3, 2, 4), np.float32))
    layer(np.ones((1, 2, 4), np.float32))  # one row: a chain, modelled
    minirnn.SimpleRNN(1, bitwise=True, seed=0)(np.ones((3, 2, 1), np.float32))  # K = 1
    with pytest.raises(minirnn.BitwiseUnsupportedError, match=r"\(2 x 3\) @ \(3 x 1\)"):
        minirnn.LSTM(1, bitwise=True, implementation=1)(np.ones((2, 2, 3), np.float32))


@needs_platform
def test_single_row_products_depend_on_threads(monkeypatch):
    layer = minirnn.LSTM(160, bitwise=True, seed=0)  # (1 x 410) @ (410 x 640)
    x = np.ones((1, 2, 410), np.float32)
    monkeypatch.setattr(bitwise, "tensorflow_threads", lambda: 2)
    monkeypatch.setattr(bitwise, "SINGLE_ROW_SPLIT", 1 << 18)  # a 1 MiB L2, as measured
    with pytest.raises(minirnn.BitwiseUnsupportedError,
                       match=r"batch of 1 and TensorFlow on 2 threads, oneDNN may split the "
                             r"\(1 x 410\) @ \(410 x 640\) product"):
        layer(x)
    layer(np.ones((2, 2, 410), np.float32))  # two rows: blocks, thread-independent
    monkeypatch.setattr(bitwise, "tensorflow_threads", lambda: 1)
    layer(x)
    # K (N + 1) against 2^18 = 262,144: the first splits measured were just above
    assert bitwise.unmodelled_product(1, 320, 818, 2) is None     # 262,080
    assert bitwise.unmodelled_product(1, 320, 832, 2)             # 266,560, split
    assert bitwise.unmodelled_product(1, 88255, 2, 2)             # 264,765, split
    assert bitwise.unmodelled_product(1, 4073, 64, 2)             # 264,745, split
    assert bitwise.unmodelled_product(1, 4073, 64, 1) is None     # one thread: a chain


def test_l2_size_is_read():
    assert bitwise._l2_bytes() >= 1 << 16
    assert bitwise.SINGLE_ROW_SPLIT == bitwise._l2_bytes() // 4


def test_tensorflow_threads(monkeypatch):
    monkeypatch.delitem(bitwise.sys.modules, "tensorflow", raising=False)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert bitwise.tensorflow_threads() == 3
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert bitwise.tensorflow_threads() == len(bitwise.os.sched_getaffinity(0))


def test_config_and_copies_keep_bitwise():
    if not SUPPORT:
        pytest.skip(f"bitwise mode: {SUPPORT.reason}")
    layer = minirnn.LSTM(3, bitwise=True, seed=1)
    assert layer.get_config()["bitwise"] is True
    assert "bitwise=True" in repr(layer)
    both = minirnn.Bidirectional(layer)
    assert both.bitwise and both.backward_layer.bitwise
    off = minirnn.Bidirectional(layer, bitwise=False)
    assert not off.forward_layer.bitwise and layer.bitwise
