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
as it was when collection ends (tests may change it later). It also gets its own copy of the
kernels' Numba cache, made then too (unless its environment names a cache
directory): Numba's cache is not safe for processes that compile the same
functions at once, so the child reads what was compiled before the session and
writes only to its copy. So that a fresh checkout's children do not each compile
the kernels again, the pytest process compiles them first
(:func:`compile_the_kernels`), while the children that need none run.
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
        kernels: whether the child runs minirnn's kernels from its copy of this
            process's cache, so that it starts once they are compiled here (see
            :func:`run_one_by_one`); False for a child that runs none (Keras alone).
            A child whose ``env`` names its own cache (NUMBA_CACHE_DIR) never waits.
    """

    def __init__(self, code, args=(), env=None, cwd=ROOT, timeout=600, kernels=True):
        self.code, self.args, self.env, self.timeout = code, list(args), dict(env or {}), timeout
        self.kernels = kernels and "NUMBA_CACHE_DIR" not in self.env
        self.cwd = cwd
        self.folder = None
        self._command = self._environ = None
        self._process = None
        self._timed_out = self._stopped = False
        self._lock = threading.Lock()

    def prepare(self, environ):
        """Make the job's folder, its environment (``environ`` with the job's own
        variables) and its copy of the Numba cache; the child starts later. Done
        on the main thread when collection ends, before any test can change the
        environment or write to the cache."""
        with self._lock:
            if self.folder is not None:
                return
            self.folder = tempfile.mkdtemp(prefix="minirnn-test-")
            fill = lambda value: value.replace("{folder}", self.folder)  # noqa: E731
            env = dict(environ)
            for name, value in self.env.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = fill(value)
            if "NUMBA_CACHE_DIR" not in self.env:
                env["NUMBA_CACHE_DIR"] = _copy_of_the_cache(os.path.join(self.folder, "numba"),
                                                            environ)
            self._environ = env
            self._command = ([sys.executable, "-c", self.code, *map(fill, self.args)],
                             fill(self.cwd))

    def start(self):
        """Start the child (preparing it first if needed); never after stop()."""
        self.prepare(os.environ)
        with self._lock:
            if self._process is not None or self._stopped:
                return
            argv, cwd = self._command
            # Files, not pipes: nobody has to drain them while the child runs.
            with open(self._path("stdout"), "w") as out, open(self._path("stderr"), "w") as err:
                self._process = subprocess.Popen(argv, cwd=cwd, env=self._environ,
                                                 stdout=out, stderr=err)

    def wait(self):
        """Start the child if needed and wait for it, killing it after ``timeout``."""
        self.start()
        if self._process is None:  # stopped before it started
            return
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
        """Kill the child if it still runs and remove its folder (end of session);
        a job stopped before its start never starts."""
        with self._lock:
            self._stopped = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _path(self, name):
        return os.path.join(self.folder, name)


def compile_the_kernels():
    """Compile the recurrent layers' kernels in this process (each kind, both dtypes)
    before the children copy the cache: where the cache is cold (a fresh checkout),
    they would each compile them again, a minute or more apiece; where it is warm,
    this loads them in under a second. The tests need them anyway."""
    import numpy as np
    import minirnn
    for kind in (minirnn.LSTM, minirnn.GRU, minirnn.SimpleRNN):
        for dtype in ("float32", "float64"):
            kind(2, dtype=dtype, seed=0)(np.ones((2, 2, 3), dtype))


def module_job(module, args, env=None, timeout=600, kernels=True):
    """A Job that runs ``python -m module *args`` from the repository root (the
    checkout's ``reference`` and ``tests`` packages importable)."""
    code = (f"import runpy, sys; sys.path.insert(0, {ROOT!r}); "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    path = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")  # for its own children too
    return Job(code, args=args, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path,
                                     **(env or {})}, timeout=timeout, kernels=kernels)


def sources_cache(name):
    """A Numba cache folder for children that compile for another CPU, named after
    the digest of minirnn's compiled sources (the one its cache folders are stamped
    with), so that it is reused while they are unchanged and never holds kernels of
    other sources. Jobs that share one must run one at a time, as run_one_by_one
    runs them."""
    from minirnn import kernels
    digest = kernels._sources_digest(os.path.join(ROOT, "minirnn"))
    return os.path.join(tempfile.gettempdir(), f"minirnn-{name}-{digest}")


def run_one_by_one(jobs):
    """Run ``jobs`` in turn on a daemon thread (one child at a time, so that the
    pytest process keeps a core); returns the thread.

    The children that need no kernels of this process start at once; meanwhile this
    process compiles the kernels (:func:`compile_the_kernels`), and only then are
    the others prepared, each with a copy of the now warm cache. All of it happens
    here, before the first test: the environment the children get is the one at the
    end of collection."""
    environ = dict(os.environ)
    first = [job for job in jobs if not job.kernels]
    then = [job for job in jobs if job.kernels]
    for job in first:
        job.prepare(environ)
    ready = threading.Event()

    def run():
        for job in first:
            job.wait()
        ready.wait()
        for job in then:
            job.wait()
    thread = threading.Thread(target=run, name="background-jobs", daemon=True)
    thread.start()
    try:
        if then:
            compile_the_kernels()
    finally:
        for job in then:
            job.prepare(environ)
        ready.set()
    return thread


def _copy_of_the_cache(root, environ):
    """Copy minirnn's compiled kernels (where Numba finds them with ``environ``) to
    where Numba looks with NUMBA_CACHE_DIR=root; return root.

    Only files written since their module's source last changed are copied (older
    ones belong to code that no longer exists), each under a temporary name first,
    so that a failed copy never leaves a truncated file for the child to load."""
    from numba.core.caching import UserProvidedCacheLocator
    shared = environ.get("NUMBA_CACHE_DIR")
    for folder in ("minirnn", os.path.join("minirnn", "kernels"),
                   os.path.join("minirnn", "parallel")):
        package = os.path.join(ROOT, folder)
        subpath = UserProvidedCacheLocator.get_suitable_cache_subpath(
            os.path.join(package, "__init__.py"))
        source = os.path.join(shared, subpath) if shared else os.path.join(package, "__pycache__")
        target = os.path.join(root, subpath)
        os.makedirs(target, exist_ok=True)
        stamp = os.path.join(source, "minirnn-sources")  # see minirnn.kernels
        if os.path.exists(stamp):
            shutil.copy2(stamp, os.path.join(target, "minirnn-sources"))
        for path in glob.glob(os.path.join(source, "*.nb[ic]")):
            name = os.path.basename(path)
            module = os.path.join(package, name.split(".")[0] + ".py")
            partial = os.path.join(target, name + ".partial")
            try:
                if os.path.getmtime(path) < os.path.getmtime(module):
                    continue
                shutil.copy2(path, partial)
                os.replace(partial, os.path.join(target, name))
            except OSError:  # gone, or no room: the child compiles that function again
                if os.path.exists(partial):
                    os.remove(partial)
    return root
