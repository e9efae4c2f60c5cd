"""Where the bitwise mode holds: the platform check behind ``bitwise=True``.

``bitwise=True`` (on LSTM, GRU, SimpleRNN, Bidirectional and from_keras) promises
float32 outputs and states identical bit for bit to Keras' on TensorFlow's CPU. That
is a promise about a platform, not only about equations: the summation order of
TensorFlow's matrix products is oneDNN's, chosen at run time from the CPU's
instruction set, and its tanh and sigmoid are the formulas of the Eigen version it
was built with (see :mod:`minirnn.exact`). :func:`bitwise_support` checks each
ingredient and says which one is missing:

- x86-64 Linux with the GNU C library (Eigen's scalar sigmoid calls its expf; the
  denormal flags are x86's);
- the kernels oneDNN picks for float32 products, each with its measured summation
  order (:mod:`minirnn.exact`): its avx512_core kernels on a CPU with AVX-512 (F,
  BW, VL, DQ) and FMA, its AVX2 kernels on a CPU with AVX2 and FMA but no AVX-512,
  or on an AVX-512 CPU where ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) caps oneDNN
  at AVX2, AVX2_VNNI or AVX2_VNNI_2. Other caps (AVX, SSE41: other kernels, no
  fused multiply-adds) and TF_ENABLE_ONEDNN_OPTS=0 (Eigen's products: another
  order for single rows and K > 768) are refused with what was measured;
- if TensorFlow is installed, a release measured to give TensorFlow 2.21's bits
  (:data:`SAME_BITS_TENSORFLOW`: 2.21 and 2.20, whose Eigen formulas and oneDNN 3.7
  are 2.21's); 2.16-2.19 were measured to differ in their tanh (and 2.16 in its
  sigmoid), Eigen's older formulas (:data:`DIFFERENT_TENSORFLOW`), and other releases
  are not measured (``reference/tf_versions.py`` measures a release);
- the compiled arithmetic of this machine reproduces recorded TensorFlow results
  for the kernels modelled: activations with their scalar tail, denormal flushing,
  and products across oneDNN's K blocks and tiles (``reference/bitwise_vectors.py``
  records them, one set per kernel family).

Only float32, and only the activations in :data:`ACTIVATIONS`, are modelled: the
others go through Eigen's exp, expm1, log1p, erf or pow, which minirnn computes
with other formulas.

May use: numpy, :mod:`minirnn.exact` and :mod:`minirnn.kernels`.
"""

import functools
import hashlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["bitwise_support", "bitwise_differences", "BitwiseSupport", "BitwiseUnsupportedError", "ACTIVATIONS",
           "MODELLED_TENSORFLOW", "SAME_BITS_TENSORFLOW", "DIFFERENT_TENSORFLOW",
           "onednn_kernels"]

MODELLED_TENSORFLOW = "2.21"
# TensorFlow releases (major.minor) measured to give 2.21's float32 bits: the same
# outputs, bit for bit, in 240 random LSTM, GRU, SimpleRNN, RNN(cell) and Bidirectional
# cases (batches 1-64, 1-40 steps, K across oneDNN's 384 and 768 blocks, masks, the
# modelled activations) and in 120 products and 18 activations of 200,005 values each,
# with oneDNN's AVX-512 kernels and (2.20) with ONEDNN_MAX_CPU_ISA=AVX2
# (reference/tf_versions.py, with Keras 3.15.1; benchmarks/results/<machine>/
# bitwise-tf-versions.md, bitwise-tf-versions-avx2.md).
SAME_BITS_TENSORFLOW = ("2.21", "2.20")
# Releases measured to give other bits, with what differs. Their products were
# identical to 2.21's (oneDNN 3.3-3.5); their tanh (and 2.16's sigmoid) are Eigen's
# older formulas, which minirnn does not model.
_OLD_TANH = ("Eigen's older tanh (a 13/6-degree rational function, not 2.21's 9/8): "
             "48% of 200,005 tanh values differ, by up to 8 ulp; products and the other "
             "activations identical")
DIFFERENT_TENSORFLOW = {
    "2.19": _OLD_TANH + "; 110 of 240 layer cases identical",
    "2.18": _OLD_TANH + "; 110 of 240 layer cases identical",
    "2.17": _OLD_TANH + "; 110 of 240 layer cases identical",
    "2.16": ("Eigen's older tanh (48% of tanh values differ, by up to 8 ulp) and sigmoid "
             "(43% of sigmoid and silu values, up to 6 ulp); products and the other "
             "activations identical; 60 of 240 layer cases identical"),
}
# Activations whose TensorFlow float32 result minirnn reproduces bit for bit
# (each measured on 200,000 values, the sigmoid's scalar path on 280,000 more).
ACTIVATIONS = ("linear", "tanh", "sigmoid", "hard_sigmoid", "relu", "relu6", "leaky_relu",
               "softsign", "soft_shrink", "silu", "swish", "squareplus", "tanh_shrink",
               "hard_tanh", "hard_shrink", "hard_silu", "hard_swish", "sparse_sigmoid")
_L2_FALLBACK = 1 << 18  # bytes, where the L2 size cannot be read: conservative


def _l2_bytes():
    """The per-core L2 cache size from sysfs (Linux), or a conservative fallback."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            with open(os.path.join(base, index, "level")) as handle:
                if handle.read().strip() != "2":
                    continue
            with open(os.path.join(base, index, "size")) as handle:
                text = handle.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            return int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return _L2_FALLBACK


# Single-row products whose operands, (K + K N) float32 numbers, reach this many may be
# split between threads (unmodelled_product): the L2 cache size, in floats.
SINGLE_ROW_SPLIT = _l2_bytes() // 4
_CPU_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq", "fma")
_AVX2_FLAGS = ("avx2", "fma")
# ONEDNN_MAX_CPU_ISA values (oneDNN reads them without regard to case) measured to
# give the AVX2 kernels' bits, and those measured to leave the avx512_core kernels
# (with float32 products they pick the same sgemm); "ALL" is oneDNN's default.
_AVX2_CAPS = ("AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
_AVX512_CAPS = ("ALL", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16",
                "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")
_OTHER_KERNEL_CAPS = ("SSE41", "AVX")
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel",
                             "tf-nightly", "tf-nightly-cpu")
# SHA-256 of the self-test results as TensorFlow 2.21 computes them, per kernel
# family of oneDNN (reference/bitwise_vectors.py prints them): on an AVX-512 CPU,
# and on the same CPU with ONEDNN_MAX_CPU_ISA=AVX2. The activations are Eigen's,
# compiled into TensorFlow: the same on both.
SELF_TEST_DIGESTS = {
    "activations": "8b39c2d36b8e4586c440b6ced4714666f08bfe26241a429542811fad8f1b40a8",
    "products": "1515ae9b64e89d49a8d32b5517306321f7cee8b46eb3ab8633f3adfdaa9a5070",
}
SELF_TEST_DIGESTS_AVX2 = {
    "activations": "8b39c2d36b8e4586c440b6ced4714666f08bfe26241a429542811fad8f1b40a8",
    "products": "f7fd19f49be230f411ee4128f4bd5b18b5bbc2b871d1bb642f299b73b2850602",
}


class BitwiseUnsupportedError(RuntimeError):
    """bitwise=True was asked for on a platform the bitwise mode does not model."""


@dataclass(frozen=True)
class BitwiseSupport:
    """Result of :func:`bitwise_support`; true when the platform is modelled.

    Attributes:
        supported: whether bitwise=True can promise identical bits here.
        reason: why not (empty when supported).
        details: what was checked and found, name -> description.
    """

    supported: bool
    reason: str = ""
    details: dict = field(default_factory=dict)

    def __bool__(self):
        return self.supported

    def __str__(self):
        lines = ["bitwise mode: " + ("supported" if self.supported
                                     else f"not supported: {self.reason}")]
        lines += [f"  {name}: {value}" for name, value in self.details.items()]
        return "\n".join(lines)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _installed_tensorflow():
    for name in _TENSORFLOW_DISTRIBUTIONS:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def _sample_values(n, scale, offset=0):
    """Deterministic float32 values, not dyadic (so sums depend on their order)."""
    k = np.arange(n, dtype=np.int64) + offset
    return (((k * 7919) % 4001 - 2000) / (2000.0 / scale)).astype(np.float32)


SELF_TEST_PRODUCTS = ((2, 400, 5), (1, 400, 5), (3, 1000, 3), (7, 300, 20))


def self_test_results():
    """The self-test's outputs, as {part: float32 array}, computed by minirnn.exact.

    activations: sigmoid and tanh of 69 values (a tail of 5 on the scalar path) plus
    inputs whose results are denormal; products: (2, 400) @ (400, 5), oneDNN's two
    blocks, and (1, 400) @ (400, 5), one chain, and (3, 1000) @ (1000, 3), and
    (7, 300) @ (300, 20) (on AVX2 every tile code: 16 and 8 columns, 6 rows and 1).
    The products follow the platform model set (minirnn.exact.set_platform).
    """
    from . import exact, kernels

    values = np.concatenate([_sample_values(64, 12.0),
                             np.array([-95.0, -88.0, 20.0, 1e-40, -0.0], np.float32)])
    parts = {}
    with exact.flush_denormals():
        outputs = []
        for code in (1, 2, 13):  # tanh, sigmoid, silu
            out = values.copy()
            kernels.activate_gate(code, out, 0, out.size, True)
            outputs.append(out)
        parts["activations"] = np.concatenate(outputs)
        products = []
        for rows, K, N in SELF_TEST_PRODUCTS:
            a = _sample_values(rows * K, 1.0, 1).reshape(rows, K)
            b = _sample_values(K * N, 1.0, 7).reshape(K, N)
            out = np.empty((rows, N), np.float32)
            exact.matmul(a, b, out, rows)
            products.append(out.ravel())
        parts["products"] = np.concatenate(products)
    return parts


def bitwise_differences(ours, reference):
    """(elements whose float32 bits differ, elements compared) over lists of arrays.

    Bits, not values: -0.0 differs from 0.0 and every NaN payload counts. Arrays of
    different shapes count as wholly different.
    """
    differing = total = 0
    for a, b in zip(ours, reference):
        a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
        total += b.size
        if a.shape != b.shape:
            differing += b.size
            continue
        differing += int(np.count_nonzero(a.view(np.int32) != b.view(np.int32)))
    return differing, total


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()


def onednn_kernels(flags, environ, details=None):
    """The oneDNN kernel family TensorFlow's float32 products run on, if modelled.

    Args:
        flags: the CPU's flags (as /proc/cpuinfo lists them).
        environ: the environment (ONEDNN_MAX_CPU_ISA and DNNL_MAX_CPU_ISA are read).
        details: a dict to add what was found to, or None.

    Returns:
        ("AVX-512" or "AVX2", "") when modelled, else (None, the reason).
    """
    details = {} if details is None else details
    avx512 = all(flag in flags for flag in _CPU_FLAGS)
    avx2 = all(flag in flags for flag in _AVX2_FLAGS)
    if avx512:
        details["CPU"] = "AVX-512 (F, BW, VL, DQ) and FMA"
    elif avx2:
        details["CPU"] = "AVX2 and FMA, no AVX-512"
    else:
        missing = [flag for flag in _AVX2_FLAGS if flag not in flags]
        details["CPU"] = f"lacks {', '.join(missing)}"
        return None, ("oneDNN's summation order was measured with its AVX-512 and its "
                      f"AVX2 kernels (with FMA); this CPU lacks {', '.join(missing)}.")
    kernels = "AVX-512" if avx512 else "AVX2"
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = environ.get(variable, "")
        if not value:
            continue
        details[variable] = value
        cap = value.upper()
        if cap in _AVX2_CAPS:
            kernels = "AVX2"
        elif cap in _OTHER_KERNEL_CAPS:
            return None, (f"{variable}={value} makes oneDNN use other kernels, which sum "
                          "in another order (measured: 1-2 of 150 random products "
                          "identical to either modelled order; no fused multiply-adds).")
        elif cap not in _AVX512_CAPS:
            return None, (f"{variable}={value} is not a value whose kernels were "
                          f"measured (modelled: {', '.join(_AVX2_CAPS + _AVX512_CAPS)}).")
        break  # oneDNN reads ONEDNN_MAX_CPU_ISA first
    details["oneDNN kernels"] = kernels + (" (capped)" if avx512 and kernels == "AVX2"
                                           else "")
    return kernels, ""


def tensorflow_release_reason(name, version):
    """Why the installed TensorFlow ``version`` (of distribution ``name``) is refused,
    or "" for a release measured to give TensorFlow 2.21's bits."""
    release = ".".join(version.split(".")[:2])
    if release in SAME_BITS_TENSORFLOW:
        return ""
    same = ", ".join(SAME_BITS_TENSORFLOW)
    if release in DIFFERENT_TENSORFLOW:
        return (f"{name} {version} is installed; measured, its float32 results differ from "
                f"TensorFlow {MODELLED_TENSORFLOW}'s, which the mode models: "
                f"{DIFFERENT_TENSORFLOW[release]}. Releases measured to give "
                f"{MODELLED_TENSORFLOW}'s bits: {same}.")
    return (f"{name} {version} is installed; the mode models TensorFlow "
            f"{MODELLED_TENSORFLOW} (its Eigen formulas and build flags) and releases "
            f"measured to give its bits ({same}); {release} was not measured "
            f"(measured to differ: {', '.join(sorted(DIFFERENT_TENSORFLOW))}; "
            "reference/tf_versions.py measures a release).")


@functools.lru_cache(maxsize=None)
def _support():
    details = {}
    machine, system = platform.machine(), sys.platform
    details["platform"] = f"{system} {machine}"
    if system != "linux" or machine.lower() not in ("x86_64", "amd64"):
        return BitwiseSupport(False, f"the mode models x86-64 Linux; this is {system} "
                              f"{machine}.", details)
    libc, libc_version = platform.libc_ver()
    details["C library"] = f"{libc} {libc_version}".strip()
    if libc != "glibc":
        return BitwiseSupport(False, "the mode models the GNU C library's expf; this "
                              f"system's C library is {libc or 'unknown'}.", details)
    kernels, reason = onednn_kernels(_cpu_flags(), os.environ, details)
    if kernels is None:
        return BitwiseSupport(False, reason, details)
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")
    if value.lower() in ("0", "false", "off", "no"):
        details["TF_ENABLE_ONEDNN_OPTS"] = value
        return BitwiseSupport(False, f"TF_ENABLE_ONEDNN_OPTS={value} sends TensorFlow's "
                              "products through Eigen, which sums in another order "
                              "(measured, TensorFlow 2.21 on AVX-512: products of a "
                              "single row, and of more than 768 terms, differ from "
                              "oneDNN's in 29-100% of their elements; those of 2 or "
                              "more rows and K <= 768 were identical).", details)
    numba_cpu = os.environ.get("NUMBA_CPU_NAME", "")
    if numba_cpu:
        features = os.environ.get("NUMBA_CPU_FEATURES", "") or "those of the name"
        details["Numba CPU"] = f"{numba_cpu} (features: {features}); the bits do not "\
            "depend on it (each operation is one IEEE rounding)"
    name, version = _installed_tensorflow()
    if name is None:
        details["TensorFlow"] = (f"not installed (the mode models {MODELLED_TENSORFLOW}; "
                                 "results are compared with it where it is installed)")
    else:
        details["TensorFlow"] = f"{name} {version}"
        reason = tensorflow_release_reason(name, version)
        if reason:
            return BitwiseSupport(False, reason, details)
    from . import exact
    exact.set_platform(exact.AVX2 if kernels == "AVX2" else exact.AVX512,
                       tensorflow_threads(), _l2_bytes())
    digests = SELF_TEST_DIGESTS_AVX2 if kernels == "AVX2" else SELF_TEST_DIGESTS
    try:
        parts = self_test_results()
    except Exception as error:  # noqa: BLE001 - any failure means "not supported"
        return BitwiseSupport(False, f"the self-test could not run ({error}).", details)
    failed = [part for part, array in parts.items()
              if _digest(array) != digests[part]]
    details["self-test"] = "failed: " + ", ".join(failed) if failed else \
        "passed (activations, products)"
    if failed:
        return BitwiseSupport(False, "this machine's compiled arithmetic does not "
                              f"reproduce TensorFlow's recorded {' and '.join(failed)}.",
                              details)
    return BitwiseSupport(True, "", details)


def bitwise_support(refresh=False):
    """Whether this platform is one the bitwise mode models, and when not, why.

    Args:
        refresh: check again (the result is cached; environment variables such as
            ONEDNN_MAX_CPU_ISA are read at the check).

    Returns:
        BitwiseSupport: true when supported; ``reason`` says why not, ``details``
        what was found. ``print()`` it for a report.
    """
    if refresh:
        _support.cache_clear()
    return _support()


def tensorflow_threads():
    """The number of threads TensorFlow runs one operation on, in this process.

    TensorFlow's setting where it is imported and set
    (tf.config.threading.set_intra_op_parallelism_threads), else the variable
    TF_NUM_INTRAOP_THREADS, else its default: every CPU this process may use.
    """
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        try:
            threads = tensorflow.config.threading.get_intra_op_parallelism_threads()
        except Exception:  # noqa: BLE001 - a partial import: fall back to the default
            threads = 0
        if threads > 0:
            return threads
    try:
        threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
    except ValueError:
        threads = 0
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def unmodelled_product(batch, K, N, threads):
    """Why the summation order of a (batch x K) @ (K x N) product is not modelled, or
    None when it is.

    These cases are not, all measured against TensorFlow 2.21:

    - one output column (N = 1) and several rows: oneDNN's matrix-vector kernel,
      whose order is not a sequential chain (K = 1 is a single product, exact);
    - one row (batch 1) and more than one thread: oneDNN then splits K between
      threads and adds the parts once the operands outgrow the L2 cache. Measured
      with a 1 MiB L2, 2 and 16 threads: the first split products had K (N + 1) of
      about 264,750 floats for N = 2, 4, 16 and 64 (K = 88,255, 52,953, 15,574, 4,073)
      and 266,560 for (1 x 320) @ (320 x 832); none below 2^18 = 262,144 floats (the
      L2 size) was split. Products with K (N + 1) at or above the L2 size, in floats,
      are refused;
    - on AVX2 (minirnn.exact's AVX2 model), products large in both rows and
      columns (1/batch + 1/N < 0.0038), which oneDNN sends to its copying kernels.
    """
    if batch >= 2 and N == 1 and K > 1:
        return (f"a ({batch} x {K}) @ ({K} x 1) product goes through oneDNN's "
                "matrix-vector kernel, whose summation order minirnn does not model "
                "(a layer with units=1, or implementation=1 and units=1)")
    from . import exact
    if exact._PLATFORM_CELLS[0] == exact.AVX2 and batch >= 2 and N >= 1 and \
            1.0 / N + 1.0 / batch < 0.0038:
        return (f"on AVX2, oneDNN sums a ({batch} x {K}) @ ({K} x {N}) product, large in "
                "both rows and columns (1/rows + 1/columns < 0.0038), with its copying "
                "kernels, whose order minirnn does not model (measured: 1% of the "
                "elements of (600 x 64) @ (64 x 600) differ); use a smaller batch")
    if batch == 1 and threads > 1 and K * (N + 1) >= SINGLE_ROW_SPLIT:
        return (f"with a batch of 1 and TensorFlow on {threads} threads, oneDNN may split "
                f"the (1 x {K}) @ ({K} x {N}) product between threads, by a rule minirnn "
                f"does not model (operands of K (N + 1) >= {SINGLE_ROW_SPLIT:,} floats, "
                "the L2 cache); use a batch of 2 or more, or run TensorFlow on one thread "
                "(tf.config.threading.set_intra_op_parallelism_threads(1))")
    return None


def check_products(batch, products, where):
    """Raise BitwiseUnsupportedError if any (K, N) product's order is not modelled.

    Args:
        batch: rows of each product (the layer's batch size).
        products: (K, N) of every weight product per step.
        where: the layer, for the message.
    """
    from . import exact
    threads = tensorflow_threads()
    # On AVX2 the tiles of a product depend on how oneDNN shares it between threads,
    # and on its columns (implementation=1: one product per gate, which the kernels
    # compute side by side).
    widths = {N for K, N in products}
    exact.set_platform(threads=threads, columns=widths.pop() if len(widths) == 1 else 0)
    for K, N in products:
        reason = unmodelled_product(batch, K, N, threads)
        if reason:
            raise BitwiseUnsupportedError(f"{where}: {reason}.")


def require(where):
    """Raise BitwiseUnsupportedError naming ``where`` unless the platform is modelled."""
    support = bitwise_support()
    if not support:
        raise BitwiseUnsupportedError(
            f"{where}: bitwise=True cannot promise Keras' bits on this platform: "
            f"{support.reason} Use the default mode (agreement within float32 rounding), "
            "or see minirnn.bitwise_support().")
