"""The Keras side of minirnn: build Keras layers for a configuration and run them.

Kept apart from the ``minirnn`` package, which never imports TensorFlow or Keras.
Used by the tests, by ``minirnn verify`` / ``minirnn demo`` / ``minirnn shapes``, and
by the benchmarks.
"""
