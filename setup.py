"""Which packages are installed, and where. The metadata is in setup.cfg.

The Keras side of the project, ``reference/`` at the repository's top level, is
installed as ``minirnn.reference``: a top-level ``reference`` in site-packages
would collide with any other distribution's. In a source checkout it stays
importable as ``reference``; ``minirnn.cli.keras_support.reference`` finds
whichever is there.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["minirnn", "minirnn.*"]) + ["minirnn.reference"],
    package_dir={"minirnn.reference": "reference"},
)
