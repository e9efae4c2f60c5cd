"""Child processes that run beside the rest of the test suite.

A few tests run a fresh Python process that compiles the kernels for another
CPU, imports torch and Keras, or walks hundreds of layer changes: tens of seconds
each, nearly all on one core. The pytest process itself runs on one core too. So
the tests that read such a child are marked ``@pytest.mark.background(job)``, and
``conftest.py`` moves them to the end of the session and starts their children
one after the other (:func:`run_one_by_one`) as soon as collection ends: the
children run on a second core while the other tests run on the first, and by the
time their tests come up most results are waiting. A test run on its own (or
whose job has not started yet) still works: ``result()`` starts the child.

A job must not depend on anything the other tests change (files, environment
variables): it gets its own scratch folder, ``job.folder``, and the environment
at the time it starts. It also gets its own copy of the kernels' Numba cache
(unless its environment names a cache directory): Numba's cache is not safe for
processes that compile the same functions at once, so the child reads what the
suite has compiled so far and writes only to its copy.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Job:
    """``python -c code *args``, started at most once, its output kept in files.

    Args:
        code: the child's program; ``{folder}`` in ``args``, ``env`` values and
            ``cwd`` is replaced by the job's scratch folder.
        args: extra command-line arguments.
        env: variables added to the environment; None removes one.
        cwd: the child's working directory (default: the repository root).
        timeout: seconds the child may take from its start; then it is killed.
    """

    def __init__(self, code, args=(), env=None, cwd=ROOT, timeout=600):
        self.code, self.args, self.env, self.timeout = code, list(args), dict(env or {}), timeout
        self.cwd = cwd
        self.folder = None
        self._process = None
        self._timed_out = False
        self._lock = threading.Lock()

    def start(self):
        with self._lock:
            if self._process is not None:
                return
            self.folder = tempfile.mkdtemp(prefix="minirnn-test-")
            fill = lambda value: value.replace("{folder}", self.folder)  # noqa: E731
            env = dict(os.environ)
            for name, value in self.env.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = fill(value)
            if "NUMBA_CACHE_DIR" not in self.env:
                env["NUMBA_CACHE_DIR"] = _copy_of_the_cache(os.path.join(self.folder, "numba"))
            # Files, not pipes: nobody has to drain them while the child runs.
            with open(self._path("stdout"), "w") as out, open(self._path("stderr"), "w") as err:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", self.code, *map(fill, self.args)],
                    cwd=fill(self.cwd), env=env, stdout=out, stderr=err)

    def wait(self):
        """Start the child if needed and wait for it, killing it after ``timeout``."""
        self.start()
        try:
            self._process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self._process.kill()
            self._process.wait()

    def result(self):
        """The finished child, as ``subprocess.run`` returns it (returncode, stdout,
        stderr); raises subprocess.TimeoutExpired if it ran out of time."""
        self.wait()
        if self._timed_out:
            raise subprocess.TimeoutExpired(self._process.args, self.timeout)
        with open(self._path("stdout")) as out, open(self._path("stderr")) as err:
            return subprocess.CompletedProcess(self._process.args, self._process.returncode,
                                               out.read(), err.read())

    def stop(self):
        """Kill the child if it still runs and remove its folder (end of session)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _path(self, name):
        return os.path.join(self.folder, name)


def run_one_by_one(jobs):
    """Run ``jobs`` in turn on a daemon thread (one child at a time, so that the
    pytest process keeps a core); returns the thread."""
    def run():
        for job in jobs:
            job.wait()
    thread = threading.Thread(target=run, name="background-jobs", daemon=True)
    thread.start()
    return thread


def _copy_of_the_cache(root):
    """Copy the compiled kernels of minirnn (as Numba finds them in this process's
    environment) to where Numba looks with NUMBA_CACHE_DIR=root; return root."""
    from numba.core.caching import UserProvidedCacheLocator
    package = os.path.join(ROOT, "minirnn")
    subpath = UserProvidedCacheLocator.get_suitable_cache_subpath(
        os.path.join(package, "kernels.py"))
    shared = os.environ.get("NUMBA_CACHE_DIR")
    source = os.path.join(shared, subpath) if shared else os.path.join(package, "__pycache__")
    target = os.path.join(root, subpath)
    os.makedirs(target, exist_ok=True)
    # Data before indexes: an index copied last never names data that is missing.
    for pattern in ("*.nbc", "*.nbi"):
        for path in glob.glob(os.path.join(source, pattern)):
            try:
                shutil.copy2(path, target)
            except OSError:  # replaced while copied: the child compiles it again
                pass
    return root
