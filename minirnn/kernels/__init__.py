"""Numba-compiled sequence kernels: the fast path.

Each kernel runs a whole sequence compiled, and computes what the matching step in
:mod:`minirnn.equations` computes, in the same order of floating-point operations
(so float64 results agree with Keras to machine precision):

1. The input projection ``x @ W`` is hoisted out of the time loop: the inputs of a
   chunk of timesteps are gathered time-major into one (steps * B, D) block and
   projected with one matrix product. Chunks keep the scratch memory bounded by
   ``_CHUNK_ELEMENTS`` whatever T is.
2. One recurrent matrix product ``h @ U`` per step for all gates together (the
   GRU without reset_after needs a second, ``(r * h) @ U_h``).
3. One pass per step over the gate pre-activations of every batch row: bias,
   activations, state update, mask, output write. With Keras' default activations
   (tanh and sigmoid) each unit's gates and states are computed together in one
   loop, one call per step (``_lstm_rows``, ``_gru_rows``), with the activations'
   fused multiply-add form; other activations go row by row and gate block by gate
   block, with Eigen's. The element-wise loops are compiled with the CPU's widest
   vectors (``_wide_vectors``).

Masks and go_backwards are handled inside. The matrix products use the weights
packed once by the layer (:mod:`minirnn.gemm`), or in the bitwise mode
:mod:`minirnn.exact`; a caller that passes no panels gets Numba's ``np.dot``
(SciPy's BLAS). The callers (:mod:`minirnn.layers`) check every shape and
dtype before calling, with messages naming the argument; the kernels check the
shapes again and raise ValueError rather than index out of bounds. They release
the GIL, so a layer can run slices of its batch on several threads (every row of
a batch is independent).

Activations are passed as integer codes (see ``minirnn.activations.ELEMENTWISE``).

The parts, by cell and by job:

- :mod:`~minirnn.kernels.lstm`, :mod:`~minirnn.kernels.gru`,
  :mod:`~minirnn.kernels.simple_rnn`: each cell's sequence kernel, its steps and
  its one-pass step;
- :mod:`~minirnn.kernels.activations`: the compiled activations and gate passes;
- :mod:`~minirnn.kernels.products`: the matrix products and the input projection;
- :mod:`~minirnn.kernels.operands`: the kernels' own checks of their operands;
- :mod:`~minirnn.kernels.sharing`, :mod:`~minirnn.kernels.jobs`: a call's batch
  shared with a worker thread (see :mod:`minirnn.parallel`);
- :mod:`~minirnn.kernels.compiler`: what the kernels tell LLVM.

This package settles Numba's cache directory before anything imports Numba
(:func:`_ensure_cache_dir`), then imports its parts. Its names are the ones the
layers use.

May use: numpy, numba, llvmlite, :mod:`minirnn.gemm`, :mod:`minirnn.exact` and
:mod:`minirnn.parallel.handoff`; never the layers.
"""

import glob
import hashlib
import os
import sys
import tempfile


def _ensure_cache_dir(package_dir=None):
    """Use a writable Numba cache even when the package's folders are read-only.

    Numba caches compiled functions in ``__pycache__`` beside their modules: in
    ``minirnn/``, ``minirnn/kernels/`` and ``minirnn/parallel/``. Where one of those is
    not writable (a read-only install) and NUMBA_CACHE_DIR is not set, point Numba
    at ``$XDG_CACHE_HOME/minirnn-numba`` (default ``~/.cache``), or at the system's
    temporary directory as a last resort. ``package_dir`` (a test's) replaces the
    package's folders. Returns the directory chosen, or None.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = [package_dir] if package_dir else [
        package, os.path.join(package, "kernels"), os.path.join(package, "parallel")]
    try:
        for folder in folders:
            probe = os.path.join(folder, "__pycache__")
            os.makedirs(probe, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=probe):
                pass
        return None
    except OSError:
        pass
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    for fallback in (os.path.join(home_cache, "minirnn-numba"),
                     os.path.join(tempfile.gettempdir(), "minirnn-numba")):
        try:
            os.makedirs(fallback, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=fallback):
                pass
        except OSError:
            continue
        os.environ["NUMBA_CACHE_DIR"] = fallback
        if "numba" in sys.modules:  # imported earlier: make it read the variable again
            sys.modules["numba"].core.config.reload_config()
        return fallback
    return None


# The modules with compiled functions, whose caches the source stamp covers.
_COMPILED = ("exact.py", "gemm.py", "kernels/*.py", "parallel/*.py")
STAMP = "minirnn-sources"  # in each cache folder: the digest of the sources it was made from


def _sources_digest(package):
    """A digest of the sources of every module with compiled functions."""
    digest = hashlib.sha256()
    for pattern in _COMPILED:
        for path in sorted(glob.glob(os.path.join(package, pattern))):
            digest.update(os.path.relpath(path, package).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:20]


def _drop_stale_cache():
    """Empty Numba's cache of minirnn where it was made from other sources.

    Numba checks a cached function against its own file only: a kernel in lstm.py,
    cached with an inlined copy of a function of products.py or exact.py, would keep
    that old copy after products.py changed, and compute the old arithmetic (in the
    bitwise mode, other bits). So each cache folder of the package carries a stamp of
    all the compiled modules' sources (``STAMP``); where it differs (or is missing),
    the folder's cached functions are removed before anything loads them, and the
    stamp is written anew. Folders that cannot be written are left as they are."""
    from numba.core.caching import UserProvidedCacheLocator

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = _sources_digest(package)
    shared = os.environ.get("NUMBA_CACHE_DIR")
    for folder in (package, os.path.join(package, "kernels"), os.path.join(package, "parallel")):
        cache = os.path.join(shared, UserProvidedCacheLocator.get_suitable_cache_subpath(
            os.path.join(folder, "__init__.py"))) if shared else os.path.join(folder, "__pycache__")
        stamp = os.path.join(cache, STAMP)
        try:
            with open(stamp) as handle:
                if handle.read() == digest:
                    continue
        except OSError:
            pass
        try:
            for path in glob.glob(os.path.join(cache, "*.nb[ic]")):
                os.remove(path)
            os.makedirs(cache, exist_ok=True)  # a new cache: stamped before Numba fills it
            with open(stamp, "w") as handle:
                handle.write(digest)
        except OSError:
            continue  # not ours to clean (read-only): Numba's own checks only


_ensure_cache_dir()

# The imports below come after the cache directory is settled.
from numba.core.registry import cpu_target  # noqa: E402

_drop_stale_cache()

from .activations import (KERAS2_HARD_SIGMOID, SIGMOID, TANH, activate, activate_array,  # noqa: E402
                          activate_block, activate_gate, activate_scalar_path,
                          activate_vector_path)
from .gru import gru_sequence  # noqa: E402
from .jobs import JOB_KINDS, job_address  # noqa: E402
from .lstm import lstm_sequence  # noqa: E402
from .simple_rnn import simple_rnn_sequence  # noqa: E402

__all__ = ["lstm_sequence", "gru_sequence", "simple_rnn_sequence", "JOB_KINDS", "job_address",
           "activate", "activate_array", "activate_block", "activate_gate",
           "activate_scalar_path", "activate_vector_path", "KERAS2_HARD_SIGMOID", "TANH",
           "SIGMOID"]

# Numba loads its NumPy typing and lowering registries on the first compiled call
# (about 0.2-0.5 s), even when every kernel comes from the cache. Loading them here,
# at import, keeps that one-off cost out of the first call of a layer.
cpu_target.target_context.refresh()
