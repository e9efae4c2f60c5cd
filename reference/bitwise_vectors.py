"""Record the bitwise self-test's results as TensorFlow computes them.

    python -m reference.bitwise_vectors

prints the SHA-256 digests that ``minirnn.bitwise.SELF_TEST_DIGESTS`` holds, computed
by TensorFlow on this machine from the self-test's inputs, and whether minirnn's own
results (``minirnn.bitwise.self_test_results``) have the same bits.
"""

import numpy as np

from minirnn import bitwise


def tensorflow_results():
    """The self-test's parts as TensorFlow's CPU kernels compute them."""
    import tensorflow as tf

    values = np.concatenate([bitwise._sample_values(64, 12.0),
                             np.array([-95.0, -88.0, 20.0, 1e-40, -0.0], np.float32)])
    activations = [tf.math.tanh(values), tf.math.sigmoid(values), tf.nn.silu(values)]
    products = []
    for rows, K, N in ((2, 400, 5), (1, 400, 5), (3, 1000, 3)):
        a = bitwise._sample_values(rows * K, 1.0, 1).reshape(rows, K)
        b = bitwise._sample_values(K * N, 1.0, 7).reshape(K, N)
        products.append(np.asarray(tf.matmul(a, b)).ravel())
    return {"activations": np.concatenate([np.asarray(a) for a in activations]),
            "products": np.concatenate(products)}


def main():
    ours = bitwise.self_test_results()
    for part, array in tensorflow_results().items():
        same = np.array_equal(array.view(np.int32), ours[part].view(np.int32))
        print(f'"{part}": "{bitwise._digest(array)}",  # minirnn identical: {same}')


if __name__ == "__main__":
    main()
