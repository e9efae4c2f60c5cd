"""Packaging: a non-editable install puts the Keras side under minirnn's name only.

``reference/`` sits at the repository's top level; installed, it must be
``minirnn.reference`` (a top-level ``reference`` in site-packages would collide
with other distributions'), and the command must still find it.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "minirnn", "reference")
# A clean interpreter: only the install target, not an editable install of a checkout.
CLEAN = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
         "if not getattr(f, '__module__', '').startswith('__editable__')]; ")


def python(code, target, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", CLEAN + code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the sources installed with ``pip install --no-deps --target``."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is needed to build the package")
    base = tmp_path_factory.mktemp("install")
    source, target = base / "source", base / "site"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.egg-info")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy(path, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return base, target


def test_reference_is_installed_under_minirnn_only(installed):
    base, target = installed
    assert not (target / "reference").exists()
    assert (target / "minirnn" / "reference" / "cases.py").is_file()
    assert (target / "minirnn" / "cli" / "verify.py").is_file()
    done = python("import importlib.util, minirnn, minirnn.reference.cases; "
                  "assert importlib.util.find_spec('reference') is None; "
                  "print(minirnn.reference.cases.__file__)", target, base)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target / "minirnn" / "reference"))
    done = python("import reference", target, base)
    assert "ModuleNotFoundError: No module named 'reference'" in done.stderr


def test_installed_command_finds_the_keras_side(installed):
    base, target = installed
    keras = importlib.util.find_spec("tensorflow") and importlib.util.find_spec("keras")
    # verify needs the Keras side (reference.cases, keras_layers); the checkout's tests
    # run every command, this one proves the installed copy finds that side.
    argv = [["verify", "--cases", "2", "--seed", "1", "--dtype", "float32"]] if keras \
        else [["demo", "--no-keras"]]
    done = python("from minirnn.cli import main, keras_support; "
                  "print(keras_support.reference('cases').__name__); "
                  + "".join(f"assert main({a!r}) == 0; " for a in argv), target, base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.startswith("minirnn.reference.cases\n")
    if keras:
        assert "Result: 2 pass" in done.stdout
