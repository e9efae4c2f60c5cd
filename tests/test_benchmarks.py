"""Smoke tests of the benchmark harness (benchmarks/): fast, no full grid."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, ROOT)

from benchmarks import cases, engines, report, system  # noqa: E402
from background import Job  # noqa: E402


# ``python -m benchmarks`` in a child process that starts when collection ends
# (tests/background.py).
BENCHMARKS = "import runpy; runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)"

# keras-cudnn on Keras' torch backend: KERAS_BACKEND must reach the engine processes.
SMOKE = Job(BENCHMARKS, args=[
    "--engines", "minirnn,gemm-floor,torch-cudnn,keras-cudnn", "--cells", "LSTM",
    "--sizes", "1x8x2x3", "--dtype", "float32", "--repeat-seconds", "0.05",
    "--min-samples", "3", "--out", "{folder}", "--name", "smoke"],
    env={"KERAS_BACKEND": "torch"}, timeout=180)


@pytest.mark.background(SMOKE)
def test_harness_end_to_end_on_the_seed_size():
    """minirnn + GEMM floor (+ the torch-cudnn probe) at 1x8x2x3 write JSON and Markdown."""
    done = SMOKE.result()
    assert done.returncode == 0, done.stderr[-2000:]
    folder = Path(SMOKE.folder) / system.machine_name()
    results = json.loads((folder / "smoke.json").read_text())
    markdown = (folder / "smoke.md").read_text()

    assert results["command"].startswith("python -m benchmarks --engines minirnn")
    assert results["command"] in markdown
    assert results["machine"]["cpu_model"]
    assert "versions" in results["machine"] and "thread_env" in results["machine"]

    runs = {run["engine"]: run for run in results["runs"]}
    (record,) = runs["minirnn"]["cases"]
    assert record["size"] == [1, 8, 2, 3]
    assert record["status"] == "ok"
    assert record["check"]["passed"] is True
    assert 0 <= record["check"]["max_abs_diff"] < cases.TOLERANCE["float32"]
    assert record["timing"]["median_s"] > 0
    assert record["timing"]["q1_s"] <= record["timing"]["median_s"] <= record["timing"]["q3_s"]
    assert runs["minirnn"]["processes"][0]["threads"]["env"] is not None

    (floor,) = runs["gemm-floor"]["cases"]
    assert floor["status"] == "ok" and floor["check"] is None
    assert floor["info"]["blas"]

    gpu = runs["torch-cudnn"]
    if gpu["status"] == "skipped":  # no CUDA GPU (or no torch): a reason, never a zero
        assert gpu["reason"]
        assert "## Skipped engines" in markdown and "torch-cudnn" in markdown
        assert all("timing" not in case for case in gpu["cases"])

    keras_gpu = runs["keras-cudnn"]
    if keras_gpu["status"] == "skipped":
        assert keras_gpu["reason"]
        if importlib.util.find_spec("torch") and importlib.util.find_spec("keras"):
            assert "Keras' torch backend" in keras_gpu["reason"], keras_gpu["reason"]
    assert results["machine"]["thread_env"].get("KERAS_BACKEND") == "torch"
    assert isinstance(results["machine"]["gpus"], list)

    assert ("| (B, T, D, M) | minirnn | gemm-floor | keras-cudnn | torch-cudnn |"
            in markdown)
    assert "| 1x8x2x3 |" in markdown


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_torch_weight_mapping_matches_minirnn(cell, return_sequences):
    """Keras-layout weights mapped to torch's layout give minirnn's float64 output."""
    pytest.importorskip("torch")
    weights, x = cases.make_case(cell, (3, 7, 5, 4), seed=1)
    expected = cases.reference_output(cell, weights, x, return_sequences)
    (variant,) = engines.torch_engine(cell, weights, x, return_sequences, "float64",
                                      device="cpu")
    got = variant.fetch(variant.run())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_torch_weight_layout_shapes_and_gru_reorder():
    """GRU: Keras z, r, h column blocks become torch r, z, n row blocks."""
    M, D = 2, 3
    kernel = np.repeat(np.array([[0.0, 0, 1, 1, 2, 2]]), D, axis=0)  # z=0, r=1, h=2
    bias = np.array([[10.0, 10, 11, 11, 12, 12], [20.0, 20, 21, 21, 22, 22]])
    params = engines.torch_weights("GRU", [kernel, np.zeros((M, 3 * M)), bias])
    assert params["weight_ih_l0"].shape == (3 * M, D)
    np.testing.assert_array_equal(params["weight_ih_l0"][:, 0], [1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(params["bias_ih_l0"], [11, 11, 10, 10, 12, 12])
    np.testing.assert_array_equal(params["bias_hh_l0"], [21, 21, 20, 20, 22, 22])


def test_parse_sizes_and_machine_name():
    assert cases.parse_sizes("1x8x2x3, 32x100x128x128") == [(1, 8, 2, 3), (32, 100, 128, 128)]
    for bad in ("1x8x2", "1x8x2x0", "axbxcxd", ""):
        with pytest.raises(ValueError):
            cases.parse_sizes(bad)
    name = system.machine_name()
    assert name and all(c.isalnum() or c == "-" for c in name)
    assert name.endswith(f"-{system.core_count()}c")


def test_report_marks_a_wrong_answer_failed():
    """A fast engine whose output missed the reference is FAILED, not the best peer."""
    fast_wrong = {"status": "FAILED", "timing": {"median_s": 1e-6},
                  "check": {"passed": False, "max_abs_diff": 0.3}}
    slow_right = {"status": "ok", "timing": {"median_s": 1e-3}, "check": {"passed": True}}
    mine = {"status": "ok", "timing": {"median_s": 2e-3}, "check": {"passed": True}}
    row = {"minirnn": mine, "torch": fast_wrong, "keras-function": slow_right}
    assert report.cell_text(fast_wrong) == "FAILED (3.0e-01)"
    assert report.best_peer(row) == ("keras-function", 1e-3)
    assert report.ratios(row)[0] == "2.00 (keras-function)"


def test_gpu_code_paths_run_on_the_cpu():
    """keras-cudnn's and torch-cudnn's code (TF32 off, device sync) run with a CPU device."""
    weights, x = cases.make_case("GRU", (2, 5, 3, 4))
    expected = cases.reference_output("GRU", weights, x, True)
    if importlib.util.find_spec("tensorflow") is not None:
        (variant,) = engines.keras_cudnn_engine("GRU", weights, x, True, "float32",
                                                device="/CPU:0")
        np.testing.assert_allclose(variant.fetch(variant.run()), expected, atol=1e-5)
    if importlib.util.find_spec("torch") is not None:
        (variant,) = engines.torch_cudnn_engine("GRU", weights, x, True, "float32",
                                                device="cpu")
        np.testing.assert_allclose(variant.fetch(variant.run()), expected, atol=1e-5)
        import torch
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False


_KERAS_TORCH_SCRIPT = r"""
import json, os, sys
sys.modules["tensorflow"] = None  # TensorFlow not importable: keras-cudnn must pick torch
from benchmarks import cases, engines, worker
assert engines.keras_cudnn_backend() == "torch"
worker.probe("keras-cudnn")  # the skip reason where no CUDA GPU is visible (JSON line)
folder = sys.argv[1]
for cell in ("LSTM", "GRU"):
    for dtype in ("float32", "float64"):
        case = os.path.join(folder, f"{cell}.npz")
        cases.write_case(case, cell, (3, 7, 5, 4), True, seed=2)
        job = {"engine": "keras-cudnn", "options": {"device": "cpu"}, "cell": cell,
               "dtype": dtype, "return_sequences": True, "tolerance": cases.TOLERANCE[dtype],
               "timing": {"repeat_seconds": 0.01, "min_samples": 3},
               "cases": [{"size": [3, 7, 5, 4], "npz": case}]}
        paths = [os.path.join(folder, f"{cell}-{dtype}.{kind}.json") for kind in ("job", "result")]
        with open(paths[0], "w") as handle:
            json.dump(job, handle)
        worker.run_job(*paths)
        with open(paths[1]) as handle:
            print(json.dumps(json.load(handle)))
print(json.dumps({"tensorflow_imported": sys.modules.get("tensorflow") is not None,
                  "KERAS_BACKEND": os.environ.get("KERAS_BACKEND")}))
"""


def test_keras_cudnn_torch_backend_on_the_cpu(tmp_path):
    """keras-cudnn on Keras' torch backend (TensorFlow hidden), device "cpu": the worker
    checks it against minirnn's float64 reference and times it; no TensorFlow import;
    the probe says why it is skipped without a CUDA GPU. One subprocess for all of it."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", _KERAS_TORCH_SCRIPT, str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    probe, *results, last = lines
    assert last == {"tensorflow_imported": False, "KERAS_BACKEND": "torch"}
    import torch
    if not torch.cuda.is_available():
        assert probe["skip"].startswith("no CUDA GPU visible to torch"), probe
    assert len(results) == 4
    for result in results:
        (record,) = result["cases"]
        assert record["status"] == "ok", record
        assert record["check"]["passed"], record["check"]
        assert record["timing"]["median_s"] > 0
        info = record["info"]
        assert info["backend"] == "torch" and info["device"] == "cpu"
        assert info["rnn_path"] == "Keras' torch loop" and info["tf32"] is False
        assert info["tensorflow_imported"] is False
        if result["dtype"] == "float64":
            assert record["check"]["max_abs_diff"] < 1e-12


def test_keras_torch_path_tracing_names_what_ran():
    """The cuDNN/fallback trace of keras-cudnn's torch path: a cuDNN call that raised
    (Keras then silently runs its loop) is noticed, and the module is restored."""
    import types

    def cudnn(*args):
        raise RuntimeError("CUDNN_STATUS_NOT_SUPPORTED")

    def fallback(*args):
        return "out"

    def lstm():  # what keras.src.backend.torch.rnn.lstm does, in short
        try:
            return module._cudnn_lstm()
        except Exception:
            return module._fallback_lstm()
    module = types.SimpleNamespace(_cudnn_lstm=cudnn, _fallback_lstm=fallback)
    result, seen = engines._traced_rnn_call(module, "LSTM", lstm)
    assert result == "out"
    assert seen == {"cudnn": 0, "fallback": 1,
                    "cudnn_error": "RuntimeError: CUDNN_STATUS_NOT_SUPPORTED"}
    assert module._cudnn_lstm is cudnn and module._fallback_lstm is fallback


def test_report_names_the_gpu_and_what_the_gpu_engines_ran(tmp_path, monkeypatch):
    """nvidia-smi's GPUs go into the machine record and the header; each GPU engine's
    process adds its device, CUDA, cuDNN and code path."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.86.15, 143771, 9.0, GPU-0123'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus = system.gpu_info()
    assert gpus == [{"name": "NVIDIA H200", "driver": "570.86.15", "memory_mib": 143771,
                     "compute_capability": "9.0"}]
    assert report._gpu_lines({"gpus": gpus}) == [
        "- GPU: NVIDIA H200, 140 GiB, compute capability 9.0, driver 570.86.15"]
    info = {"backend": "torch", "keras": "3.15.1", "torch": "2.11.0", "device": "cuda",
            "device_name": "NVIDIA H200", "compute_capability": "9.0", "cuda_version": "13.0",
            "cudnn_version": 91900, "rnn_path": "cuDNN", "cudnn_acceptable": True,
            "tf32": False}
    results = {"runs": [
        {"engine": "keras-cudnn", "cell": "GRU", "dtype": "float64", "mode": "sequence",
         "cases": [{"size": [1, 8, 2, 3], "status": "ok", "info": info}]},
        {"engine": "minirnn", "cell": "GRU", "dtype": "float64", "mode": "sequence",
         "cases": [{"size": [1, 8, 2, 3], "status": "ok", "info": {"engine": "numba"}}]}]}
    (line,) = report.gpu_engine_lines(results)
    assert line == ("- keras-cudnn (GRU, float64): Keras 3.15.1 on the torch backend; torch "
                    "2.11.0; NVIDIA H200 (compute capability 9.0); CUDA 13.0; cuDNN 91900; "
                    "ran cuDNN; torch.backends.cudnn.is_acceptable(input) True; TF32 off")


# ---- ONNX Runtime, OpenVINO and the streaming case -----------------------------------

def _gru_case(size, reset_after, seed=3):
    """A GRU case in either bias layout: random per-gate weights, non-zero biases."""
    weights, x = cases.make_case("GRU", size, seed=seed)
    if not reset_after:
        rng = np.random.default_rng(seed)
        weights[2] = rng.uniform(-0.5, 0.5, size=weights[2].shape[1])
    return weights, x


def _reference(cell, weights, x, return_sequences, reset_after=True):
    import minirnn
    options = {} if cell == "LSTM" else {"reset_after": reset_after}
    layer = getattr(minirnn, cell)(weights[1].shape[0], return_sequences=return_sequences,
                                   dtype="float64", engine="numpy", **options)
    layer.set_weights(weights)
    return np.asarray(layer(x), dtype=np.float64)


# cell, GRU reset_after, (B, T, D, M): batch 1 and odd sizes.
ONNX_CASES = [("LSTM", None, (1, 7, 5, 3)), ("LSTM", None, (3, 4, 1, 5)),
              ("GRU", True, (1, 7, 5, 3)), ("GRU", True, (3, 4, 1, 5)),
              ("GRU", False, (1, 7, 5, 3)), ("GRU", False, (3, 4, 1, 5))]


def _onnx_case(cell, reset_after, size):
    if cell == "LSTM":
        return cases.make_case(cell, size, seed=3)
    return _gru_case(size, reset_after)


def test_onnx_weight_layout_reorders_the_gate_blocks():
    """Keras LSTM i, f, c, o -> ONNX i, o, f, c; GRU z, r, h kept; B = [Wb, Rb]."""
    from benchmarks import onnx_engines
    M, D = 2, 3
    labels = np.repeat(np.arange(4.0), M)                      # gate k's columns hold k
    kernel = np.tile(labels, (D, 1))
    arrays, attributes = onnx_engines.onnx_weights(
        "LSTM", [kernel, 10 + np.tile(labels, (M, 1)), 20 + labels])
    assert arrays["W"].shape == (1, 4 * M, D) and arrays["R"].shape == (1, 4 * M, M)
    np.testing.assert_array_equal(arrays["W"][0, :, 0], np.repeat([0.0, 3, 1, 2], M))
    np.testing.assert_array_equal(arrays["R"][0, :, 0], 10 + np.repeat([0.0, 3, 1, 2], M))
    np.testing.assert_array_equal(arrays["B"][0], np.concatenate(
        [20 + np.repeat([0.0, 3, 1, 2], M), np.zeros(4 * M)]))
    assert attributes == {}

    labels = np.repeat(np.arange(3.0), M)
    kernel = np.tile(labels, (D, 1))
    bias = np.stack([10 + labels, 20 + labels])
    arrays, attributes = onnx_engines.onnx_weights("GRU", [kernel, kernel[:M], bias])
    np.testing.assert_array_equal(arrays["W"][0, :, 0], labels)
    np.testing.assert_array_equal(arrays["B"][0], np.concatenate([10 + labels, 20 + labels]))
    assert attributes == {"linear_before_reset": 1}
    arrays, attributes = onnx_engines.onnx_weights("GRU", [kernel, kernel[:M], 10 + labels])
    np.testing.assert_array_equal(arrays["B"][0], np.concatenate([10 + labels,
                                                                  np.zeros(3 * M)]))
    assert attributes == {"linear_before_reset": 0}
    with pytest.raises(ValueError, match="GRU bias must be"):
        onnx_engines.onnx_weights("GRU", [kernel, kernel[:M], np.zeros((3, 3 * M))])


@pytest.mark.parametrize("cell, reset_after, size", ONNX_CASES)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_onnx_mapping_matches_minirnn_in_onnxruntime(cell, reset_after, size,
                                                     return_sequences):
    """The one-node ONNX model run by ONNX Runtime gives minirnn's float64 equations."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from benchmarks import onnx_engines
    weights, x = _onnx_case(cell, reset_after, size)
    expected = _reference(cell, weights, x, return_sequences, reset_after)
    (variant,) = onnx_engines.onnxruntime_engine(cell, weights, x, return_sequences, "float32")
    got = variant.fetch(variant.run())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("cell, reset_after, size", ONNX_CASES[::2])
@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_onnx_streaming_carries_the_states(cell, reset_after, size, engine):
    """T=1 calls with initial_h / initial_c from the previous call give the whole sequence."""
    pytest.importorskip("onnx")
    pytest.importorskip(engine)
    from benchmarks import onnx_engines
    weights, x = _onnx_case(cell, reset_after, size)
    expected = _reference(cell, weights, x, True, reset_after)
    stream = getattr(onnx_engines, f"{engine}_stream")
    (variant,) = stream(cell, weights, x, "float32")
    np.testing.assert_allclose(variant.fetch(variant.check_run()), expected, rtol=0, atol=2e-6)
    first = np.asarray(variant.run())
    assert first.shape == (1, size[0], size[3])  # one step: Y_h


@pytest.mark.parametrize("cell, reset_after, size", ONNX_CASES[:3])
def test_openvino_runs_the_same_model_at_f32(cell, reset_after, size):
    """OpenVINO keeps f32 (not the bf16 default of CPUs with AMX / AVX512_BF16)."""
    pytest.importorskip("onnx")
    pytest.importorskip("openvino")
    from benchmarks import onnx_engines
    weights, x = _onnx_case(cell, reset_after, size)
    expected = _reference(cell, weights, x, True, reset_after)
    (variant,) = onnx_engines.openvino_engine(cell, weights, x, True, "float32")
    np.testing.assert_allclose(variant.fetch(variant.run()), expected, rtol=0, atol=2e-6)
    assert variant.info["properties"]["INFERENCE_PRECISION_HINT"] == "f32"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_onnx_engines_skip_float64_with_the_reason(engine):
    pytest.importorskip("onnx")
    pytest.importorskip(engine)
    from benchmarks import onnx_engines
    from benchmarks.base import Unsupported
    weights, x = cases.make_case("GRU", (1, 3, 2, 3))
    with pytest.raises(Unsupported, match="float64"):
        getattr(onnx_engines, f"{engine}_engine")("GRU", weights, x, True, "float64")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_minirnn_and_torch_streaming_match_the_sequence(cell):
    """A stateful minirnn layer (and torch with its states) stepped T times = the sequence."""
    weights, x = cases.make_case(cell, (2, 6, 3, 4), seed=2)
    expected = cases.reference_output(cell, weights, x, True)
    builders = [engines.minirnn_stream]
    if importlib.util.find_spec("torch") is not None:
        builders.append(engines.torch_stream)
    for build in builders:
        (variant,) = build(cell, weights, x, "float64")
        np.testing.assert_allclose(variant.fetch(variant.check_run()), expected,
                                   rtol=0, atol=1e-12)
        for _ in range(8):  # past the end of the stream: wraps round, states carried on
            variant.run()


def test_streaming_sizes_need_one_timestep():
    from benchmarks import streaming
    assert streaming.sequence_size((32, 1, 128, 128), 50) == (32, 50, 128, 128)
    with pytest.raises(ValueError, match="T=1"):
        streaming.sequence_size((32, 2, 128, 128))
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--stream-sizes", "1x2x3x4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "T=1" in done.stderr


def test_new_engines_end_to_end_with_one_thread(tmp_path):
    """onnxruntime and openvino through the harness (--threads 1), sequence and streaming."""
    pytest.importorskip("onnx")
    wanted = [name for name in ("onnxruntime", "openvino")
              if importlib.util.find_spec(name) is not None]
    if not wanted:
        pytest.skip("neither onnxruntime nor openvino is installed")
    argv = ["--engines", ",".join(wanted), "--cells", "LSTM", "--sizes", "1x8x2x3",
            "--stream-sizes", "2x1x3x4", "--stream-steps", "5", "--dtype", "float32",
            "--repeat-seconds", "0.02", "--min-samples", "3", "--threads", "1",
            "--out", str(tmp_path), "--name", "smoke"]
    done = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / system.machine_name()
    results = json.loads((folder / "smoke.json").read_text())
    markdown = (folder / "smoke.md").read_text()
    runs = {(run["engine"], run["mode"]): run for run in results["runs"]}
    for name in wanted:
        for mode, size in (("sequence", [1, 8, 2, 3]), ("streaming", [2, 1, 3, 4])):
            (record,) = runs[name, mode]["cases"]
            assert record["size"] == size
            assert record["status"] == "ok", record
            assert record["check"]["passed"] is True
            assert record["timing"]["median_s"] > 0
            threads = runs[name, mode]["processes"][0]["threads"]
            assert {str(value) for value in threads["engine"].values()} == {"1"}
    assert "streaming: one timestep per call" in markdown
    assert "Threads: every engine's pools capped at 1" in markdown


# The model is saved by the child itself, then timed by ``python -m benchmarks``.
MODEL_MODE = Job("""
import os, runpy, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                          keras.layers.GRU(2)])
path = os.path.join(sys.argv[1], "small.keras")
model.save(path)
sys.argv[1:2] = ["--model", path]
runpy.run_module("benchmarks", run_name="__main__", alter_sys=True)
""", args=["{folder}", "--engines", "minirnn,keras-function", "--batch", "2",
           "--timesteps", "5", "--repeat-seconds", "0.05", "--min-samples", "3"], timeout=300)


@pytest.mark.skipif(not (importlib.util.find_spec("tensorflow") and
                         importlib.util.find_spec("keras")), reason="needs TensorFlow and Keras")
@pytest.mark.background(MODEL_MODE)
def test_model_mode_times_a_saved_model():
    """python -m benchmarks --model: minirnn and Keras' tf.function on a user's model,
    each in its own process, outputs checked against minirnn's float64 run."""
    done = MODEL_MODE.result()
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| minirnn") or line.startswith("| keras")}
    assert set(rows) == {"minirnn", "keras-function"}
    assert "Model.predict" in rows["minirnn"] and "1.00x" in rows["minirnn"]
    assert "tf.function" in rows["keras-function"] and "FAILED" not in done.stdout
    assert "keras3 semantics; Keras side: Keras 3" in done.stdout


def test_model_mode_table_marks_failures_and_skips():
    from benchmarks import model
    timing = {"median_s": 2e-3, "iqr_s": 1e-4}
    results = {"model": "m.keras", "source": {"format": "keras", "semantics": "keras3"},
               "inputs": [["x", [2, 5, 3], "float32"]], "keras": "keras", "dtype": "float32",
               "engines": [
                   {"engine": "minirnn", "status": "ok", "variants": [
                       {"name": "Model.predict", "timing": {**timing, "median_s": 1e-3},
                        "check": {"passed": True, "max_abs_diff": 1e-8}}]},
                   {"engine": "keras-predict", "status": "skipped",
                    "reason": "ModuleNotFoundError: keras", "variants": []},
                   {"engine": "keras-function", "status": "ok", "variants": [
                       {"name": "tf.function", "timing": timing,
                        "check": {"passed": False, "max_abs_diff": 0.5}}]}]}
    text = model.table(results)
    assert "| keras-predict | SKIPPED: ModuleNotFoundError: keras |" in text
    assert "| keras-function | tf.function | 2,000 | 100 | 5.0e-01 FAILED | 2.00x |" in text


def test_best_of_rounds_keeps_each_sizes_lowest_median():
    from benchmarks.runner import best_of_rounds

    def run(*medians, passed=True):
        return {"engine": "minirnn", "status": "ok", "processes": [{"round": medians}],
                "cases": [{"size": [1, 1, 1, i + 1], "status": "ok",
                           "timing": {"median_s": m}, "check": {"passed": passed}}
                          for i, m in enumerate(medians)]}
    merged = best_of_rounds([run(3.0, 1.0), run(2.0, 4.0)])
    assert [c["timing"]["median_s"] for c in merged["cases"]] == [2.0, 1.0]
    assert [c["round_medians_s"] for c in merged["cases"]] == [[3.0, 2.0], [1.0, 4.0]]
    assert len(merged["processes"]) == 2
    # a failed check in any round is what the figure reports
    merged = best_of_rounds([run(3.0, 1.0), run(2.0, 4.0, passed=False)])
    assert not merged["cases"][0]["check"]["passed"]
    assert best_of_rounds([run(1.0)])["cases"][0]["timing"]["median_s"] == 1.0
