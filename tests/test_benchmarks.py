"""Smoke tests of the benchmark harness (benchmarks/): fast, no full grid."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, ROOT)

from benchmarks import cases, engines, report, system  # noqa: E402


def test_harness_end_to_end_on_the_seed_size(tmp_path):
    """minirnn + GEMM floor (+ the torch-cudnn probe) at 1x8x2x3 write JSON and Markdown."""
    argv = ["--engines", "minirnn,gemm-floor,torch-cudnn", "--cells", "LSTM",
            "--sizes", "1x8x2x3", "--dtype", "float32", "--repeat-seconds", "0.05",
            "--min-samples", "3", "--out", str(tmp_path), "--name", "smoke"]
    done = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / system.machine_name()
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

    assert "| (B, T, D, M) | minirnn | gemm-floor | torch-cudnn |" in markdown
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


def test_model_mode_times_a_saved_model(tmp_path):
    """python -m benchmarks --model: minirnn and Keras' tf.function on a user's model,
    each in its own process, outputs checked against minirnn's float64 run."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.GRU(2)])
    path = tmp_path / "small.keras"
    model.save(path)
    argv = ["--model", str(path), "--engines", "minirnn,keras-function", "--batch", "2",
            "--timesteps", "5", "--repeat-seconds", "0.05", "--min-samples", "3"]
    done = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
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
