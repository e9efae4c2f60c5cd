"""bitwise=True on oneDNN's AVX2 kernels, against Keras run on the same kernels.

The AVX2 platform is simulated on this machine, as oneDNN allows: one child process
runs with ONEDNN_MAX_CPU_ISA=AVX2 (TensorFlow's products then take the kernels an
AVX2 CPU gets) and with Numba told the CPU is a Haswell (NUMBA_CPU_NAME=haswell,
no features: minirnn's kernels compiled without AVX-512), with a Numba cache named
after minirnn's sources (never a cache written by other sources), which test_gemm's
Haswell child reuses. In it minirnn.bitwise_support() must pick the AVX2 model, and held-out
style random configurations, masks, go_backwards, Bidirectional, stateful streams,
implementation=1, products shared between TensorFlow's threads and a whole saved
model must give Keras' bits. Bits, never allclose.

The model's own parts (tiles, thread shares, K blocks) are checked here against
the numbers measured from TensorFlow (minirnn.exact's notes) without TensorFlow.
"""

import importlib.util
import os
import textwrap

import numpy as np
import pytest

from background import Job, sources_cache
from minirnn import bitwise, exact

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent(r"""
    import json, os, sys, tempfile
    import numpy as np
    import minirnn
    from minirnn import bitwise, exact
    support = minirnn.bitwise_support()
    report = {"support": str(support), "kernels": support.details.get("oneDNN kernels"),
              "model": exact.platform_model()[0], "failures": [], "cases": 0}
    if not support:
        print(json.dumps(report)); sys.exit(0)
    from minirnn.cli.keras_support import reference
    cases = reference("cases")
    base = {"kind": "LSTM", "wrapper": "none", "merge_mode": "concat", "dtype": "float32",
            "B": 3, "T": 6, "D": 4, "M": 5, "activation": "tanh",
            "recurrent_activation": "sigmoid", "use_bias": True, "return_sequences": True,
            "return_state": True, "go_backwards": False, "stateful": False,
            "zero_output_for_mask": False, "mask": "none", "initial_state": False,
            "inference_only": False, "seed": 7}
    chosen = [
        # every tile code: 7 rows = 6 + 1, 9 = 6 + 3, 11 = 6 + 5; 20 = 16 + 4 columns
        dict(B=7, T=4, D=13, M=5), dict(kind="GRU", B=9, T=3, D=30, M=6),
        dict(kind="SimpleRNN", B=11, T=5, D=9, M=24),
        # two and three K blocks of 256 (D = 300, 600), odd and even block sizes
        dict(B=5, T=2, D=300, M=7), dict(kind="GRU_v1", B=4, T=2, D=600, M=3),
        # a batch of one: one chain (oneDNN's matrix-vector kernel)
        dict(B=1, T=4, D=300, M=9),
        # masks, go_backwards, initial and stateful states, no bias
        dict(mask="random", go_backwards=True, B=8, M=9),
        dict(kind="GRU", mask="leading", stateful=True, B=10, M=17),
        dict(initial_state=True, use_bias=False, B=13, M=3),
        # implementation=1 (one product per gate: tiles of their own)
        dict(inference_only=True, B=9, T=2, D=40, M=5),
        dict(kind="GRU_v1", inference_only=True, B=7, T=2, D=20, M=11),
        # Bidirectional, each merge mode; RNN(cell)
        dict(wrapper="bidirectional", merge_mode="concat", B=7, M=10),
        dict(kind="GRU", wrapper="bidirectional", merge_mode="ave", stateful=True, B=5, M=6),
        dict(kind="SimpleRNN", wrapper="bidirectional", merge_mode="mul", B=3, M=4),
        dict(wrapper="cell", B=6, D=9, M=8),
        # batches over 48 (oneDNN's blocks of 48 rows) and over 72 (halved); a
        # product large enough for TensorFlow's two threads (rows shared between them)
        dict(B=50, T=2, D=16, M=12), dict(kind="GRU", B=80, T=2, D=8, M=5),
        dict(B=100, T=1, D=300, M=300, return_state=False),
    ]
    runs = [dict(base, **c) for c in chosen]
    rng = np.random.default_rng(2607)  # held out: not the seed of the other tests
    runs += [cases.random_bitwise_case(rng) for _ in range(int(sys.argv[1]))]
    for c in runs:
        try:
            result = cases.run_bitwise_case(c)
        except Exception as error:
            result = {"identical": False, "error": f"{type(error).__name__}: {error}"}
        report["cases"] += 1
        if not result["identical"]:
            report["failures"].append([cases.describe(c), result])
    # a whole saved model
    import keras
    x = np.random.default_rng(3).standard_normal((7, 6, 5)).astype(np.float32)
    inputs = keras.Input((6, 5))
    h = keras.layers.Bidirectional(keras.layers.LSTM(9, return_sequences=True))(inputs)
    h = keras.layers.GRU(20, return_sequences=True)(h)
    outputs = keras.layers.SimpleRNN(6)(h)
    model = keras.Model(inputs, outputs)
    path = os.path.join(tempfile.mkdtemp(), "avx2.keras")
    model.save(path)
    theirs = np.asarray(model(x))
    ours = np.asarray(minirnn.load_model(path, bitwise=True)(x))
    differing, total = bitwise.bitwise_differences([ours], [theirs])
    report["cases"] += 1
    if differing or not total:
        report["failures"].append(["saved model", {"differing": differing, "total": total}])
    print(json.dumps(report))
""")


# The child starts when collection ends and runs beside the other tests
# (tests/background.py); the tests that read it come last. Its Numba cache, compiled
# for a Haswell, is the one test_gemm's Haswell child uses after it.
AVX2_CHILD = Job(CHILD, args=["8"], env={
    "ONEDNN_MAX_CPU_ISA": "AVX2", "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
    "NUMBA_CACHE_DIR": sources_cache("haswell"), "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONPATH": ROOT, "DNNL_MAX_CPU_ISA": None, "TF_ENABLE_ONEDNN_OPTS": None})


def reads_the_child(test):
    """The marks of a test that reads AVX2_CHILD (skipped ones never start it)."""
    for mark in (pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None
                                    or importlib.util.find_spec("keras") is None,
                                    reason="Keras is not installed"),
                 pytest.mark.skipif(not all(flag in bitwise._cpu_flags()
                                            for flag in ("avx2", "fma")),
                                    reason="the AVX2 platform is simulated on a CPU with AVX2 "
                                           "and FMA"),
                 pytest.mark.background(AVX2_CHILD)):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def avx2_child():
    result = AVX2_CHILD.result()
    assert result.returncode == 0, result.stderr[-3000:]
    import json
    return json.loads(result.stdout.strip().splitlines()[-1])


@reads_the_child
def test_simulated_avx2_platform_is_modelled(avx2_child):
    assert avx2_child["kernels"] == "AVX2 (capped)", avx2_child["support"]
    assert avx2_child["model"] == exact.AVX2


@reads_the_child
def test_simulated_avx2_cases_identical(avx2_child):
    """18 chosen configurations, 8 random ones and a saved model: Keras' bits."""
    if not avx2_child["kernels"]:
        pytest.skip(avx2_child["support"])
    assert avx2_child["cases"] == 27
    assert avx2_child["failures"] == []


# ---- the model's parts, without TensorFlow ------------------------------------------

def test_avx2_tiles():
    """Rows in tiles of 6 and a last one of 1-5; columns in 16s, the last 9-15 in a
    16 tile, the last 1-8 in an 8 tile; rows in blocks of 48 (halved over 72)."""
    rows, columns, threads = exact.avx2_tiles(9, 10, 20)
    assert threads == 1
    assert list(rows) == [6] * 6 + [3] * 3
    assert list(columns) == [16] * 16 + [8] * 4
    rows, columns, _ = exact.avx2_tiles(80, 10, 25)
    assert list(columns) == [16] * 25
    assert list(rows) == [6] * 36 + [4] * 4 + [6] * 36 + [4] * 4  # 80 > 72: two of 40
    rows, _, _ = exact.avx2_tiles(100, 10, 5)
    assert list(rows) == [6] * 48 + [6] * 48 + [4] * 4  # 100 >= 96: 48, then 52


def test_avx2_threads():
    """TensorFlow runs a product on one thread below 1.01 L2 (operands and result);
    above, oneDNN shares rows between threads when there are more than 48."""
    l2 = 2 << 20
    assert exact.avx2_tiles(100, 300, 1200, threads=2, l2_bytes=l2)[2] == 1
    rows, _, threads = exact.avx2_tiles(260, 1000, 2000, threads=4, l2_bytes=l2)
    assert threads == 4
    assert rows.size == 260


def test_avx2_products_and_blocks():
    """Against values measured from TensorFlow: the two-accumulator order of a 2-row
    tile, and the K blocks of 256."""
    assert exact.k_blocks(256, exact.ONEDNN_AVX2_K_BLOCK) == [(0, 256)]
    assert exact.k_blocks(257, exact.ONEDNN_AVX2_K_BLOCK) == [(0, 129), (129, 257)]
    assert exact.k_blocks(600, exact.ONEDNN_AVX2_K_BLOCK) == [(0, 256), (256, 428),
                                                              (428, 600)]
    a = np.array([[1.0, 2.0 ** -24, 2.0 ** -24], [1.0, 2.0 ** -24, 2.0 ** -24]], np.float32)
    b = np.ones((3, 1), np.float32)
    previous = exact.platform_model()
    try:
        exact.set_platform(exact.AVX2)
        b2 = np.ones((3, 2), np.float32)
        # 2 rows: (1 + 2^-24 [odd k]) rounds to 1, then + 2^-24 rounds to 1 again
        assert np.all(exact.product(a, b2) == 1.0)
        exact.set_platform(exact.AVX512)
        # one chain: 1 + 2^-24 = 1 (ties to even), + 2^-24 = 1: the same here, so
        # check a case the orders split: 2^-24 + 2^-24 first (the odd accumulator)
        c = np.array([[2.0 ** -24, 1.0, 2.0 ** -24, 0.0]] * 2, np.float32)
        b4 = np.ones((4, 2), np.float32)
        chain = exact.product(c, b4)
        exact.set_platform(exact.AVX2)
        pair = exact.product(c, b4)  # even: 2^-24 + 2^-24 = 2^-23; odd: 1 + 0 = 1
        assert np.all(pair == np.float32(1.0 + 2.0 ** -23))
        assert np.all(chain == 1.0)  # 2^-24 + 1 = 1, + 2^-24 = 1
        assert np.all(exact.product(c[:1], b4) == 1.0)  # one row: one chain
    finally:
        exact.set_platform(*previous)
    with pytest.raises(ValueError, match="columns_per_product"):
        exact.product(a, b, columns_per_product=2)


@pytest.mark.parametrize("value, kernels", [
    ("AVX2", "AVX2"), ("avx2_vnni", "AVX2"), ("AVX2_VNNI_2", "AVX2"),
    ("AVX512_CORE", "AVX-512"), ("AVX512_CORE_AMX", "AVX-512"), ("ALL", "AVX-512")])
def test_onednn_caps(value, kernels):
    flags = set(bitwise._CPU_FLAGS) | {"avx2"}
    assert bitwise.onednn_kernels(flags, {"ONEDNN_MAX_CPU_ISA": value})[0] == kernels


@pytest.mark.parametrize("value", ["AVX", "SSE41", "AVX10_2_512", "nonsense"])
def test_onednn_caps_refused(value):
    flags = set(bitwise._CPU_FLAGS) | {"avx2"}
    kernels, reason = bitwise.onednn_kernels(flags, {"ONEDNN_MAX_CPU_ISA": value})
    assert kernels is None and f"ONEDNN_MAX_CPU_ISA={value}" in reason


def test_avx2_cpu_without_avx512():
    assert bitwise.onednn_kernels({"avx2", "fma"}, {})[0] == "AVX2"
    assert bitwise.onednn_kernels({"avx2", "fma"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})[0] \
        == "AVX2"  # a cap above the CPU changes nothing
    kernels, reason = bitwise.onednn_kernels({"avx2"}, {})
    assert kernels is None and "lacks fma" in reason


def test_copying_kernels_refused_on_avx2():
    previous = exact.platform_model()
    try:
        exact.set_platform(exact.AVX2)
        assert "copying kernels" in bitwise.unmodelled_product(600, 64, 600, 1)
        assert bitwise.unmodelled_product(263, 64, 600, 1) is None
        exact.set_platform(exact.AVX512)
        assert bitwise.unmodelled_product(600, 64, 600, 1) is None
    finally:
        exact.set_platform(*previous)
