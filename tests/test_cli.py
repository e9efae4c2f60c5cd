"""The ``minirnn`` command line: demo, shapes, trace, verify, run in-process.

Keras-dependent tests skip when TensorFlow is not installed; the paths taken
without Keras (or without matplotlib) are tested by making the import fail.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minirnn
from minirnn import cli, plotting
from minirnn.cli import demo, keras_support, progress, shapes, tables, trace, verify
from minirnn.cli.keras_support import reference


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``minirnn *argv``."""
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def no_keras(monkeypatch):
    """Make Keras look uninstalled to the command line."""
    def unavailable():
        raise keras_support.KerasUnavailable("ModuleNotFoundError: No module named 'keras'")
    monkeypatch.setattr(keras_support, "import_keras", unavailable)


@pytest.fixture
def keras_side():
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")


# ---- the command itself -------------------------------------------------------

def test_help_lists_the_four_commands(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in ("demo", "shapes", "trace", "verify"):
        assert command in out


def test_no_command_prints_help_and_fails(capsys):
    status, out, _ = run(capsys)
    assert status == 2
    assert "demo" in out and "verify" in out


def test_bad_argument_is_a_usage_error(capsys):
    status, _, err = run(capsys, "verify", "--cases", "0")
    assert status == 2
    assert "positive integer" in err


def test_python_dash_m_and_no_heavy_imports():
    """`python -m minirnn` works; importing the CLI imports neither Keras nor matplotlib."""
    result = subprocess.run([sys.executable, "-m", "minirnn", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "shapes" in result.stdout
    check = ("import sys, minirnn, minirnn.cli, minirnn.plotting; "
             "heavy = [m for m in ('keras', 'tensorflow', 'matplotlib') if m in sys.modules]; "
             "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


# ---- demo --------------------------------------------------------------------

def test_demo_prints_the_experiments_and_every_claim_passes(capsys):
    status, out, _ = run(capsys, "demo", "--no-keras")
    assert status == 0
    for name in ("lstm1:", "lstm2:", "gru1:", "gru2:"):
        assert f"\n{name}\n" in out
    assert out.count("[PASS]") == 4
    assert "[FAIL]" not in out
    assert "\nc: [[" in out and "\nh: [[" in out and "\no: [[[" in out


def test_demo_seed_changes_the_numbers(capsys):
    _, first, _ = run(capsys, "demo", "--no-keras", "--seed", "1")
    _, second, _ = run(capsys, "demo", "--no-keras", "--seed", "2")
    _, again, _ = run(capsys, "demo", "--no-keras", "--seed", "1")
    assert first != second
    assert first == again


def test_demo_without_keras_says_how_to_install(capsys, no_keras):
    status, out, _ = run(capsys, "demo")
    assert status == 0
    assert "skipped" in out
    assert 'pip install "minirnn[keras]"' in out


def test_demo_matches_keras(capsys, keras_side):
    status, out, _ = run(capsys, "demo")
    assert status == 0, out
    assert out.count("max |minirnn - Keras|") == 4
    assert out.count("[PASS]") == 8
    assert "agrees with Keras" in out
    from minirnn import bitwise
    if bitwise.bitwise_support():
        assert out.count("elements identical") == 4
        assert "(bit for bit with bitwise=True)" in out
    else:
        assert "bitwise mode not checked" in out


def test_demo_fails_when_the_bits_differ(capsys, keras_side, monkeypatch):
    from minirnn import bitwise
    if not bitwise.bitwise_support():
        pytest.skip(f"bitwise mode: {bitwise.bitwise_support().reason}")
    monkeypatch.setattr(demo, "bitwise_differences", lambda ours, theirs: (2, 9))
    status, out, _ = run(capsys, "demo")
    assert status == 1
    assert out.count("bitwise=True: 2 of 9 elements DIFFER") == 4
    assert "or, with bitwise=True, in its bits." in out


def good_outputs(seed=0):
    _, _, results = demo.seed_experiment(seed)
    return {name: [a.copy() for a in arrays] for name, (_, arrays) in results.items()}


def test_claims_hold_on_the_real_results():
    claims = demo.check_claims(good_outputs())
    assert [c.number for c in claims] == [1, 2, 3, 4]
    assert all(c.passed for c in claims)


def test_each_claim_catches_its_own_violation():
    bad = good_outputs()
    bad["lstm1"][0] = bad["lstm1"][0] + 0.1           # o is not h
    assert [c.passed for c in demo.check_claims(bad)] == [False, True, True, True]

    bad = good_outputs()
    bad["gru2"][0] = bad["gru2"][0][:, :-1]            # T - 1 steps only
    assert not demo.check_claims(bad)[1].passed

    bad = good_outputs()
    bad["lstm2"][2] = bad["lstm2"][2] * 2              # c differs between lstm1 and lstm2
    passed = [c.passed for c in demo.check_claims(bad)]
    assert passed == [True, True, False, True]

    bad = good_outputs()
    bad["gru1"] = bad["gru1"] + [bad["gru1"][1]]       # a GRU returning three arrays
    passed = [c.passed for c in demo.check_claims(bad)]
    assert passed == [True, True, True, False]

    bad = good_outputs()
    bad["lstm1"] = bad["lstm1"][:1]                    # no states at all: no crash
    assert not any(c.passed for c in demo.check_claims(bad)[:1] + demo.check_claims(bad)[2:])


def test_rounding_level_differences_still_pass_but_are_reported():
    outputs = good_outputs()
    outputs["lstm1"][0] = np.nextafter(outputs["lstm1"][0], np.float32(1))
    claim = demo.check_claims(outputs)[0]
    assert claim.passed
    assert "within" in claim.evidence[0]


def test_demo_exits_non_zero_when_a_claim_fails(capsys, monkeypatch):
    real = demo.seed_experiment

    def broken(seed, sizes=demo.SEED_SIZES):
        x, weights, results = real(seed, sizes)
        arguments, arrays = results["gru1"]
        results["gru1"] = (arguments, [arrays[0], arrays[1] + 1])
        return x, weights, results

    monkeypatch.setattr(demo, "seed_experiment", broken)
    status, out, _ = run(capsys, "demo", "--no-keras")
    assert status == 1
    assert "[FAIL] 1." in out
    assert "FAILED" in out


# ---- shapes ------------------------------------------------------------------

def test_shapes_table(capsys):
    status, out, _ = run(capsys, "shapes", "--no-keras")
    assert status == 0
    lines = out.splitlines()
    lstm_sequences = [l for l in lines if l.split()[:5] == ["LSTM", "True", "False", "False", "1"]]
    assert lstm_sequences and "o (1, 8, 3)" in lstm_sequences[0]
    lstm_states = [l for l in lines if l.split()[:5] == ["LSTM", "True", "True", "False", "3"]]
    assert "o (1, 8, 3); h, c (1, 3)" in lstm_states[0]
    gru_states = [l for l in lines if l.split()[:5] == ["GRU", "False", "True", "False", "2"]]
    assert "o, h (1, 3)" in gru_states[0]
    concat = [l for l in lines if l.split()[:2] == ["concat", "False"]]
    assert "o (1, 8, 6)" in concat[0]             # 2 * M features
    none_states = [l for l in lines if l.split()[:2] == ["None", "True"]]
    assert none_states[0].split()[2] == "6"
    assert "Keras check skipped" in out


def test_shapes_follow_the_sizes(capsys):
    status, out, _ = run(capsys, "shapes", "--no-keras", "--batch", "2", "--timesteps", "5",
                         "--features", "4", "--units", "7")
    assert status == 0
    assert "o (2, 5, 7)" in out
    assert "o (2, 5, 14)" in out


def test_shapes_without_keras(capsys, no_keras):
    status, out, _ = run(capsys, "shapes")
    assert status == 0
    assert "not installed" in out
    assert 'pip install "minirnn[keras]"' in out


def test_shapes_confirmed_by_keras(capsys, keras_side):
    status, out, _ = run(capsys, "shapes")
    assert status == 0, out
    kinds = ("LSTM", "GRU", "SimpleRNN", "concat", "sum", "mul", "ave", "None")
    rows = [l for l in out.splitlines()
            if l.split()[:1] and l.split()[0] in kinds and "(1, " in l]
    assert len(rows) == 25
    assert all(l.rstrip().endswith("same") for l in rows)
    assert "Every row confirmed" in out


def test_describe_returns_groups_equal_shapes():
    names = ["o", "h_fwd", "c_fwd", "h_bwd", "c_bwd"]
    returned = [(1, 8, 6)] + [(1, 3)] * 4
    assert shapes.describe_returns(names, returned) == "o (1, 8, 6); h_fwd, c_fwd, h_bwd, c_bwd (1, 3)"


# ---- trace -------------------------------------------------------------------

@pytest.mark.parametrize("cell, rows", [("lstm", "i f g o c h"), ("gru", "z r hh h"),
                                        ("simple_rnn", "h")])
def test_trace_summary(capsys, cell, rows):
    status, out, _ = run(capsys, "trace", "--cell", cell, "--units", "4", "--timesteps", "6")
    assert status == 0
    table = [line.split() for line in out.splitlines()
             if line.startswith("  ") and not line.strip().startswith("-")]
    names = [r[0] for r in table if r and len(r) >= 7 and r[-1].endswith(("%", "-"))]
    assert names == rows.split()
    assert "6 steps x 4 units" in out


def test_trace_prints_the_equations(capsys):
    _, out, _ = run(capsys, "trace")
    assert "i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i)" in out
    assert "c_t = f_t * c_{t-1} + i_t * g_t" in out
    assert "h_t = o_t * tanh(c_t)" in out


def test_gate_statistics():
    stats = trace.gate_statistics(np.array([0.01, 0.5, 0.97, 0.99]), "sigmoid")
    assert stats["low"] == 0.25 and stats["high"] == 0.5
    assert stats["min"] == 0.01 and stats["max"] == 0.99
    assert trace.gate_statistics(np.array([-0.99, 0.0]), "tanh")["low"] == 0.5
    assert trace.gate_statistics(np.array([5.0, 7.0]), None)["high"] is None


def test_trace_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "trace.png"
    status, out, _ = run(capsys, "trace", "--cell", "gru", "--plot", str(path))
    assert status == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in out


def test_trace_plot_needs_matplotlib(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(plotting, "matplotlib_available", lambda: False)
    status, out, _ = run(capsys, "trace", "--plot", str(tmp_path / "t.png"))
    assert status == 1
    assert 'pip install "minirnn[plot]"' in out
    assert not (tmp_path / "t.png").exists()
    status, out, _ = run(capsys, "trace")       # no --plot: still a success
    assert status == 0


def test_plot_titles_carry_the_equations():
    layer = minirnn.LSTM(2, seed=0)
    entries = plotting.describe_trace(layer)
    assert [e.name for e in entries] == ["i", "f", "g", "o", "c", "h"]
    assert entries[0].equation == "i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i)"
    gru = plotting.describe_trace(minirnn.GRU(2, reset_after=False, use_bias=False))
    assert gru[2].equation == "hh_t = tanh(x_t W_h + (r_t * h_{t-1}) U_h)"


def test_trace_of_a_saved_keras_model(capsys, tmp_path, keras_side):
    import keras

    model = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(5),
                              keras.layers.Bidirectional(keras.layers.LSTM(3)),
                              keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    status, out, _ = run(capsys, "trace", "--model", str(path), "--timesteps", "4")
    assert status == 0, out
    assert "forward layer: LSTM(3)" in out and "backward layer: LSTM(3)" in out
    assert "Statistics over 1 sequence x 4 steps x 3 units" in out

    dense = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(5)])
    dense.save(tmp_path / "dense.keras")
    status, _, err = run(capsys, "trace", "--model", str(tmp_path / "dense.keras"))
    assert status == 1
    assert "no LSTM, GRU" in err


# ---- verify ------------------------------------------------------------------

def test_verify_writes_every_case(capsys, tmp_path, keras_side):
    path = tmp_path / "verify.json"
    status, out, err = run(capsys, "verify", "--cases", "5", "--seed", "3", "--json", str(path))
    report = json.loads(path.read_text())
    assert status == (1 if report["summary"]["fail"] + report["summary"]["error"] else 0)
    assert report["seed"] == 3 and report["cases"] == 5
    assert [r["index"] for r in report["results"]] == list(range(5))
    for record in report["results"]:
        assert record["status"] in ("pass", "ill-conditioned", "fail", "error")
        assert {"kind", "wrapper", "dtype", "seed", "mask"} <= set(record["case"])
        assert "max_abs" in record and "max_ulp" in record
    assert sum(report["summary"].values()) == 5
    assert "5/5 done" in err and "\r" not in err   # not a terminal: a summary, no frames
    assert "By layer" in out and "By argument value" in out
    assert "ill-conditioned" in out and "amplification" in out


def test_verify_dtype_is_forced(capsys, tmp_path, keras_side):
    path = tmp_path / "verify.json"
    run(capsys, "verify", "--cases", "3", "--dtype", "float64", "--json", str(path))
    report = json.loads(path.read_text())
    assert {r["case"]["dtype"] for r in report["results"]} == {"float64"}


def test_verify_reports_a_failure_so_it_can_be_rerun(capsys, monkeypatch, keras_side):
    cases = reference("cases")

    def failing(case):
        return {"max_abs": 0.5, "max_ulp": 1e6, "units": 2e5, "amplification": 1.0,
                "status": "fail"}

    monkeypatch.setattr(cases, "run_case", failing)
    status, out, _ = run(capsys, "verify", "--cases", "2", "--seed", "7")
    assert status == 1
    assert "[FAIL] case 1 (the last one of --seed 7 --cases 2)" in out
    assert f"from {cases.__name__} import run_case; print(run_case({{" in out
    assert "kind=" in out and "2 fail" in out


def test_verify_without_keras(capsys, no_keras):
    status, out, _ = run(capsys, "verify", "--cases", "2")
    assert status == 2
    assert 'pip install "minirnn[keras]"' in out


def test_verify_helpers():
    assert tables.json_safe({"a": [float("inf"), 1.0, float("nan")]}) == {"a": ["inf", 1.0, "nan"]}
    record = {"status": "pass", "max_abs": 1e-3, "case": {"dtype": "float64"}}
    tolerances = {"float64": (1e-12, 1e-12), "float32": (1e-6, 1e-6)}
    assert verify.divergent_pass(record, tolerances, 1e3)           # |Keras| must be > 1e3
    assert not verify.divergent_pass({**record, "max_abs": 1e-13}, tolerances, 1e3)
    case = {"kind": "GRU_v1", "wrapper": "bidirectional"}
    assert verify.layer_label(case) == "GRU_v1 (bidirectional)"


def test_progress_bar(capsys):
    bar = progress.ProgressBar(10, stream=sys.stderr, width=10, interactive=True)
    bar.update(5)
    bar.close()
    assert "[#####     ] 5/10" in capsys.readouterr().err


def test_progress_bar_draws_only_on_a_terminal(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = progress.ProgressBar(3, stream=terminal, width=3)
    for done in (1, 2, 3):
        bar.update(done, " 0 failed")
    bar.close()
    assert terminal.getvalue().count("\r") == 3 and terminal.getvalue().endswith("\n")

    with open(tmp_path / "log.txt", "w") as log:   # redirected: one plain line at the end
        bar = progress.ProgressBar(3, stream=log)
        for done in (1, 2, 3):
            bar.update(done, " 0 failed")
        bar.close()
    assert (tmp_path / "log.txt").read_text() == "3/3 done: 0 failed\n"


# ---- verify --bitwise ----------------------------------------------------------

def test_verify_bitwise_reports_each_case(capsys, tmp_path, keras_side):
    from minirnn import bitwise
    if not bitwise.bitwise_support():
        pytest.skip(f"bitwise mode: {bitwise.bitwise_support().reason}")
    path = tmp_path / "bitwise.json"
    status, out, _ = run(capsys, "verify", "--bitwise", "--cases", "4", "--seed", "5",
                         "--json", str(path))
    report = json.loads(path.read_text())
    assert status == 0, out
    assert "bitwise mode: supported" in out and "self-test: passed" in out
    assert out.count("identical (") == 4
    assert "Result: 4 of 4 cases identical bit for bit" in out
    assert [r["index"] for r in report["results"]] == list(range(4))
    assert all(r["identical"] and r["differing"] == 0 and r["total"] > 0
               for r in report["results"])
    assert {r["case"]["dtype"] for r in report["results"]} == {"float32"}


def test_verify_bitwise_counts_differing_elements(capsys, monkeypatch, keras_side):
    from minirnn import bitwise
    cases = reference("cases")
    if not bitwise.bitwise_support():
        pytest.skip(f"bitwise mode: {bitwise.bitwise_support().reason}")
    monkeypatch.setattr(cases, "run_bitwise_case", lambda case: {
        "identical": False, "differing": 3, "total": 40, "max_abs": 1.2e-7})
    status, out, _ = run(capsys, "verify", "--bitwise", "--cases", "2", "--seed", "1")
    assert status == 1
    assert out.count("DIFFERENT: 3 of 40 elements, max abs 1.2e-07") == 2
    assert f"from {cases.__name__} import run_bitwise_case" in out
    assert "Result: 0 of 2 cases identical" in out


def test_verify_bitwise_unsupported_platform(capsys, monkeypatch):
    from minirnn import bitwise
    monkeypatch.setattr(bitwise, "bitwise_support",
                        lambda refresh=False: bitwise.BitwiseSupport(False, "no AVX-512."))
    status, out, _ = run(capsys, "verify", "--bitwise", "--cases", "2")
    assert status == 2
    assert "not supported: no AVX-512." in out


def test_verify_bitwise_refuses_float64(capsys):
    status, out, _ = run(capsys, "verify", "--bitwise", "--dtype", "float64")
    assert status == 2
    assert "--dtype float64 does not apply" in out


# ---- bad paths and sizes: exit 2 before any work, naming the path or the sizes ----

def refused(capsys, *argv):
    """The message of a command that must stop with exit status 2 and no output."""
    status, out, err = run(capsys, *argv)
    assert status == 2, (out, err)
    assert "Traceback" not in out + err
    return err


def test_verify_json_into_a_missing_folder_is_refused_before_any_case(capsys, tmp_path,
                                                                      monkeypatch):
    def no_case(*args, **kwargs):
        raise AssertionError("a case ran")

    monkeypatch.setattr(verify, "run_verify_cases", no_case)
    path = tmp_path / "missing" / "verify.json"
    for bitwise in ((), ("--bitwise",)):
        err = refused(capsys, "verify", *bitwise, "--cases", "2", "--json", str(path))
        assert f"argument --json: cannot write '{path}'" in err
        assert f"the folder '{tmp_path / 'missing'}' does not exist" in err
    err = refused(capsys, "verify", "--json", str(tmp_path))
    assert f"cannot write '{tmp_path}': it is a folder" in err
    err = refused(capsys, "verify", "--json", "")
    assert "expected a file name" in err


def test_trace_plot_paths_are_checked_first(capsys, tmp_path):
    err = refused(capsys, "trace", "--plot", str(tmp_path / "missing" / "t.png"))
    assert f"the folder '{tmp_path / 'missing'}' does not exist" in err
    err = refused(capsys, "trace", "--plot", str(tmp_path / "t.bogus"))
    assert "unknown picture format '.bogus'" in err and ".png" in err and ".svg" in err
    err = refused(capsys, "trace", "--plot", str(tmp_path))
    assert "it is a folder" in err
    assert list(tmp_path.iterdir()) == []


def test_trace_plot_without_an_extension_reports_the_file_it_writes(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, _ = run(capsys, "trace", "--plot", str(tmp_path / "gates"))
    assert status == 0
    assert [p.name for p in tmp_path.iterdir()] == ["gates.png"]
    assert f"Wrote {tmp_path / 'gates.png'}:" in out
    status, out, _ = run(capsys, "trace", "--plot", str(tmp_path / "gates.SVG"))
    assert status == 0 and (tmp_path / "gates.SVG").read_text().lstrip().startswith("<?xml")


def test_trace_model_paths_are_checked_first(capsys, tmp_path):
    import zipfile

    err = refused(capsys, "trace", "--model", str(tmp_path / "none.keras"))
    assert f"cannot read '{tmp_path / 'none.keras'}': no such file or folder" in err
    archive = tmp_path / "no_config.keras"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("model.weights.h5", b"")
    err = refused(capsys, "trace", "--model", str(archive))
    assert f"cannot read '{archive}': a zip, but not a .keras model (it has no config.json)" in err
    err = refused(capsys, "trace", "--model", str(tmp_path))
    assert ("neither an unzipped .keras model (it has no config.json) nor a SavedModel "
            "(no saved_model.pb)") in err
    text = tmp_path / "notes.h5"
    text.write_text("not a model")
    err = refused(capsys, "trace", "--model", str(text))
    assert f"cannot read '{text}': not a saved Keras model" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not stop the superuser")
def test_unreadable_and_unwritable_paths(capsys, tmp_path):
    locked = tmp_path / "locked.keras"
    locked.write_bytes(b"PK")
    locked.chmod(0)
    err = refused(capsys, "trace", "--model", str(locked))
    assert f"cannot read '{locked}': Permission denied" in err
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    err = refused(capsys, "verify", "--json", str(folder / "v.json"))
    assert "permission denied" in err


def test_sizes_that_cannot_fit_in_memory_are_refused(capsys):
    err = refused(capsys, "shapes", "--units", "50000", "--no-keras")
    assert "--units 50000 would need about 671 GiB of memory" in err
    err = refused(capsys, "trace", "--timesteps", "2000000000")
    assert "--timesteps 2000000000 --features 2 would need about" in err
    err = refused(capsys, "trace", "--units", "100000", "--cell", "gru")
    assert "--cell gru --units 100000" in err


def test_the_memory_bound_is_the_budget(capsys, monkeypatch):
    from minirnn.cli import limits

    monkeypatch.setattr(limits, "memory_budget", lambda: (2**20, "a 1 MiB test cap"))
    err = refused(capsys, "shapes", "--no-keras")
    assert "more than the 1 MiB allowed (a 1 MiB test cap)" in err
    monkeypatch.setattr(limits, "memory_budget", lambda: (2**30, "a 1 GiB test cap"))
    status, _, _ = run(capsys, "shapes", "--no-keras", "--units", "64", "--timesteps", "100")
    assert status == 0
    assert limits.human_bytes(1536) == "1.5 KiB" and limits.human_bytes(3) == "3 B"


def test_an_unexpected_error_is_one_line_not_a_traceback(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(demo, "seed_experiment", broken)
    monkeypatch.delenv("MINIRNN_TRACEBACK", raising=False)
    status, _, err = run(capsys, "demo", "--no-keras")
    assert status == 1
    assert "internal error: RuntimeError: something inside broke" in err
    monkeypatch.setattr(demo, "seed_experiment", lambda *a, **k: (_ for _ in ()).throw(
        MemoryError()))
    status, _, err = run(capsys, "demo", "--no-keras")
    assert status == 2 and "out of memory" in err


def test_no_traceback_in_a_real_process():
    result = subprocess.run([sys.executable, "-m", "minirnn", "shapes", "--units", "50000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--units 50000 would need about" in result.stderr
    assert "Traceback" not in result.stderr


def test_trace_model_that_cannot_be_loaded(capsys, tmp_path):
    import zipfile

    archive = tmp_path / "broken.keras"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("config.json", "{not json")
    err = refused(capsys, "trace", "--model", str(archive))
    assert str(archive) in err and "JSON" in err
