"""Packaging: a non-editable install puts the Keras side under minirnn's name only.

``reference/`` sits at the repository's top level; installed, it must be
``minirnn.reference`` (a top-level ``reference`` in site-packages would collide
with other distributions'), and the command must still find it.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from background import Job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "minirnn", "reference")
# A clean interpreter: only the install target, not an editable install of a checkout.
CLEAN = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
         "if not getattr(f, '__module__', '').startswith('__editable__')]; ")


def python(code, target, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", CLEAN + code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def install_and_run(base):
    """The child's work: copy the sources to ``base``/source, install them with ``pip
    install --no-deps --target`` into ``base``/site, run the installed copy, and
    write what each run gave to ``base``/runs.json (the installed copy compiles its
    kernels anew, about half a minute: so this runs beside the other tests)."""
    source, target = os.path.join(base, "source"), os.path.join(base, "site")
    os.makedirs(source)
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.egg-info")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(source, name), ignore=ignore)
        elif os.path.exists(path):
            shutil.copy(path, os.path.join(source, name))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", target,
                           source], capture_output=True, text=True, timeout=600)
    runs = {"pip": {"returncode": done.returncode, "stdout": done.stdout,
                    "stderr": done.stderr}, "target": target}
    if done.returncode == 0:
        runs["where"] = python("import importlib.util, minirnn, minirnn.reference.cases; "
                               "assert importlib.util.find_spec('reference') is None; "
                               "print(minirnn.reference.cases.__file__)", target, base)
        runs["top_level"] = python("import reference", target, base)
        # verify needs the Keras side (reference.cases, keras_layers); the checkout's
        # tests run every command, this proves the installed copy finds that side.
        argv = [["verify", "--cases", "2", "--seed", "1", "--dtype", "float32"]] \
            if KERAS else [["demo", "--no-keras"]]
        runs["command"] = python("from minirnn.cli import main, keras_support; "
                                 "print(keras_support.reference('cases').__name__); "
                                 + "".join(f"assert main({a!r}) == 0; " for a in argv),
                                 target, base)
    with open(os.path.join(base, "runs.json"), "w") as handle:
        json.dump(runs, handle)


KERAS = bool(importlib.util.find_spec("tensorflow") and importlib.util.find_spec("keras"))
# Runs in a child process that starts when collection ends, beside the other tests
# (tests/background.py); the tests below come last and read what it wrote.
INSTALLED = Job(f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                "import test_packaging; test_packaging.install_and_run(sys.argv[1])",
                args=["{folder}/install"], timeout=900,
                kernels=False)  # the installed copy compiles its own
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                 reason="setuptools is needed to build the package"),
              pytest.mark.background(INSTALLED)]


@pytest.fixture(scope="module")
def installed():
    """(base folder, install target, what each run of the installed copy gave)."""
    result = INSTALLED.result()
    assert result.returncode == 0, result.stderr[-3000:]
    base = os.path.join(INSTALLED.folder, "install")
    with open(os.path.join(base, "runs.json")) as handle:
        runs = json.load(handle)
    assert runs["pip"]["returncode"] == 0, runs["pip"]["stderr"]
    return base, runs["target"], runs


def test_reference_is_installed_under_minirnn_only(installed):
    base, target, runs = installed
    assert not os.path.exists(os.path.join(target, "reference"))
    assert os.path.isfile(os.path.join(target, "minirnn", "reference", "cases.py"))
    assert os.path.isfile(os.path.join(target, "minirnn", "cli", "verify.py"))
    done = runs["where"]
    assert done["returncode"] == 0, done["stderr"]
    assert done["stdout"].strip().startswith(os.path.join(target, "minirnn", "reference"))
    assert "ModuleNotFoundError: No module named 'reference'" in runs["top_level"]["stderr"]


def test_installed_command_finds_the_keras_side(installed):
    done = installed[2]["command"]
    assert done["returncode"] == 0, done["stdout"][-3000:] + done["stderr"][-3000:]
    assert done["stdout"].startswith("minirnn.reference.cases\n")
    if KERAS:
        assert "Result: 2 pass" in done["stdout"]
