"""Record the bitwise self-test's results as TensorFlow computes them.

    python -m reference.bitwise_vectors
    ONEDNN_MAX_CPU_ISA=AVX2 python -m reference.bitwise_vectors

prints the SHA-256 digests that ``minirnn.bitwise.SELF_TEST_DIGESTS`` (oneDNN's
AVX-512 kernels) or ``SELF_TEST_DIGESTS_AVX2`` (its AVX2 kernels: an AVX2 CPU, or
an AVX-512 one with ONEDNN_MAX_CPU_ISA=AVX2) holds, computed by TensorFlow on this
machine from the self-test's inputs, and whether minirnn's own results
(``minirnn.bitwise.self_test_results``, in the model of the same kernels) have the
same bits.
"""

import os

import numpy as np

from minirnn import bitwise, exact


def tensorflow_results():
    """The self-test's parts as TensorFlow's CPU kernels compute them."""
    import tensorflow as tf

    values = np.concatenate([bitwise._sample_values(64, 12.0),
                             np.array([-95.0, -88.0, 20.0, 1e-40, -0.0], np.float32)])
    activations = [tf.math.tanh(values), tf.math.sigmoid(values), tf.nn.silu(values)]
    products = []
    for rows, K, N in bitwise.SELF_TEST_PRODUCTS:
        a = bitwise._sample_values(rows * K, 1.0, 1).reshape(rows, K)
        b = bitwise._sample_values(K * N, 1.0, 7).reshape(K, N)
        products.append(np.asarray(tf.matmul(a, b)).ravel())
    return {"activations": np.concatenate([np.asarray(a) for a in activations]),
            "products": np.concatenate(products)}


def main():
    kernels, reason = bitwise.onednn_kernels(bitwise._cpu_flags(), os.environ)
    if kernels is None:
        print(f"no modelled kernels here: {reason}")
        return
    exact.set_platform(exact.AVX2 if kernels == "AVX2" else exact.AVX512,
                       bitwise.tensorflow_threads(), bitwise._l2_bytes())
    name = "SELF_TEST_DIGESTS_AVX2" if kernels == "AVX2" else "SELF_TEST_DIGESTS"
    print(f"oneDNN kernels: {kernels} ({name})")
    ours = bitwise.self_test_results()
    for part, array in tensorflow_results().items():
        same = np.array_equal(array.view(np.int32), ours[part].view(np.int32))
        print(f'"{part}": "{bitwise._digest(array)}",  # minirnn identical: {same}')


if __name__ == "__main__":
    main()
