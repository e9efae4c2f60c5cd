"""The PyTorch bridge (minirnn.bridge.torch) against torch itself.

Random weights, every gate different (torch's default initialisation, uniform in
+-1/sqrt(M), plus random biases offset per gate block, so that a misplaced gate block
shows at once), odd sizes down to B = T = D = M = 1, float32 and float64, stacks of 1-3
layers, both directions, both layouts, with and without bias and initial states.

Bounds: float64 within 1e-12 of torch (max abs difference), float32 within
|minirnn - torch| <= 1e-6 + 1e-6 * |torch| (numpy.allclose's rule, atol = rtol = 1e-6).
The float32 differences are rounding: the two libraries sum the products and the two
biases in different orders and have their own tanh and sigmoid. Each float32 case
also checks that minirnn and torch land equally close to torch's float64 result for the
same weights, which is what shows the difference to be rounding and not the maths.
"""

import copy
import subprocess
import sys

import numpy as np
import pytest

import minirnn
from minirnn.bridge.torch import from_torch, run_like_torch, to_torch

torch = pytest.importorskip("torch")

ATOL = RTOL = {"float32": 1e-6, "float64": 1e-12}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}

KINDS = {  # name -> (torch class, extra arguments)
    "lstm": (torch.nn.LSTM, {}),
    "gru": (torch.nn.GRU, {}),
    "rnn-tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn-relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
}

# num_layers, bidirectional, batch_first, bias, B, T, D, M, initial states
SHAPES = [
    (1, False, True, True, 1, 1, 1, 1, False),
    (1, False, False, True, 3, 7, 5, 3, True),
    (1, True, True, True, 1, 1, 2, 1, True),
    (2, True, False, True, 2, 9, 4, 5, True),
    (3, False, True, False, 4, 6, 3, 2, True),
    (2, True, True, False, 1, 5, 2, 1, False),
    (3, True, False, True, 2, 4, 3, 3, True),
]


def shape_id(shape):
    layers, bidirectional, batch_first, bias, B, T, D, M, with_states = shape
    return (f"L{layers}{'-bi' if bidirectional else ''}{'-bf' if batch_first else ''}"
            f"{'' if bias else '-nobias'}-B{B}T{T}D{D}M{M}{'-h0' if with_states else ''}")


def make_module(kind, shape, dtype, seed=0):
    """A torch module with random weights, biases different per gate block."""
    layers, bidirectional, batch_first, bias, _, _, D, M, _ = shape
    cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    module = cls(D, M, num_layers=layers, bidirectional=bidirectional,
                 batch_first=batch_first, bias=bias, **extra)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.startswith("bias"):
                gates = parameter.numel() // M
                offsets = torch.arange(gates).repeat_interleave(M) * 0.25 - 0.4
                parameter.copy_(torch.rand_like(parameter) - 0.5 + offsets)
    return module.to(TORCH_DTYPE[dtype]).eval()


def make_inputs(module, shape, dtype, seed=1):
    """x in the module's layout and hx (or None), as NumPy arrays."""
    layers, bidirectional, batch_first, _, B, T, D, M, with_states = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D) if batch_first else (T, B, D)).astype(dtype)
    if not with_states:
        return x, None
    states = [rng.normal(scale=0.5, size=(layers * (1 + bidirectional), B, M)).astype(dtype)
              for _ in range(2 if isinstance(module, torch.nn.LSTM) else 1)]
    return x, (tuple(states) if len(states) == 2 else states[0])


def torch_run(module, x, hx):
    """torch's (output, h_n) or (output, (h_n, c_n)), as NumPy arrays."""
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    if hx is not None:
        hx = tuple(map(to_tensor, hx)) if isinstance(hx, tuple) else to_tensor(hx)
    with torch.no_grad():
        output, states = module(to_tensor(x), hx)
    if isinstance(states, tuple):
        return output.numpy(), tuple(s.numpy() for s in states)
    return output.numpy(), states.numpy()


def flat(result):
    output, states = result
    return [output, *(states if isinstance(states, tuple) else (states,))]


def assert_close(got, expected, dtype):
    got, expected = flat(got), flat(expected)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape
        if dtype == "float64":
            assert np.abs(a - b).max() <= ATOL[dtype]
        else:
            np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=ATOL[dtype])


def as_double(hx):
    if hx is None:
        return None
    return tuple(s.astype("float64") for s in hx) if isinstance(hx, tuple) else \
        hx.astype("float64")


WORST = {}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_computes_what_torch_computes(kind, shape, dtype):
    module = make_module(kind, shape, dtype)
    x, hx = make_inputs(module, shape, dtype)
    layers = from_torch(module)
    expected = torch_run(module, x, hx)
    got = run_like_torch(layers, x, hx, batch_first=module.batch_first)
    assert_close(got, expected, dtype)
    errors = [np.abs(a - b).max() for a, b in zip(flat(got), flat(expected))]
    WORST[dtype] = max(WORST.get(dtype, 0.0), *errors)
    if dtype == "float32":  # both land as close to the float64 result: rounding
        reference = flat(torch_run(copy.deepcopy(module).double(), x.astype("float64"),
                                   as_double(hx)))
        for mine, theirs, exact in zip(flat(got), flat(expected), reference):
            assert np.abs(mine - exact).max() <= 4 * np.abs(theirs - exact).max() + 2e-7


def test_structure_of_what_from_torch_returns():
    lstm = from_torch(torch.nn.LSTM(3, 4))
    assert isinstance(lstm, minirnn.LSTM) and lstm.return_sequences and lstm.return_state
    assert lstm.dtype == "float32" and lstm.use_bias
    gru = from_torch(torch.nn.GRU(3, 4, bias=False).double())
    assert isinstance(gru, minirnn.GRU) and gru.reset_after and not gru.use_bias
    assert gru.dtype == "float64"
    relu = from_torch(torch.nn.RNN(3, 4, nonlinearity="relu"))
    assert isinstance(relu, minirnn.SimpleRNN) and relu.activation == "relu"
    stack = from_torch(torch.nn.GRU(3, 4, num_layers=3, bidirectional=True, dropout=0.5))
    assert isinstance(stack, list) and len(stack) == 3
    for k, layer in enumerate(stack):
        assert isinstance(layer, minirnn.Bidirectional) and layer.merge_mode == "concat"
        assert not layer.forward_layer.go_backwards and layer.backward_layer.go_backwards
        assert layer.forward_layer.input_dim == (3 if k == 0 else 8)


def test_the_layers_on_their_own_give_torchs_numbers():
    """Without run_like_torch: batch-first x, [output, h, c] per layer."""
    shape = (2, True, True, True, 2, 5, 3, 4, False)
    module = make_module("lstm", shape, "float64")
    x, _ = make_inputs(module, shape, "float64")
    output, (h_n, c_n) = torch_run(module, x, None)
    y = x
    for k, layer in enumerate(from_torch(module)):
        y, forward_h, forward_c, backward_h, backward_c = layer(y)
        assert np.abs(np.stack([forward_h, backward_h]) - h_n[2 * k:2 * k + 2]).max() <= 1e-12
        assert np.abs(np.stack([forward_c, backward_c]) - c_n[2 * k:2 * k + 2]).max() <= 1e-12
    assert np.abs(y - output).max() <= 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input(kind):
    shape = (2, True, False, True, 1, 6, 3, 2, True)
    module = make_module(kind, shape, "float64")
    x, hx = make_inputs(module, shape, "float64")
    x = x[:, 0]
    hx = tuple(s[:, 0] for s in hx) if isinstance(hx, tuple) else hx[:, 0]
    assert_close(run_like_torch(from_torch(module), x, hx), torch_run(module, x, hx),
                 "float64")


def test_dtype_argument_overrides_the_modules():
    """A float32 module's weights computed in float64 = torch's float64 copy of it."""
    shape = (2, False, True, True, 3, 8, 4, 5, True)
    module = make_module("gru", shape, "float32")
    x, hx = make_inputs(module, shape, "float64")
    layers = from_torch(module, dtype="float64")
    assert [layer.dtype for layer in layers] == ["float64", "float64"]
    assert_close(run_like_torch(layers, x, hx, batch_first=True),
                 torch_run(copy.deepcopy(module).double(), x, hx), "float64")
    assert from_torch(module.double(), dtype=np.float32)[0].dtype == "float32"


def test_trace_of_a_torch_module():
    """from_torch(m).trace(x): every gate at every step; its h is torch's output."""
    module = make_module("lstm", (1, False, True, True, 2, 6, 3, 4, False), "float64")
    x = np.random.default_rng(2).normal(size=(2, 6, 3))
    gates = from_torch(module).trace(x)
    assert list(gates) == ["i", "f", "g", "o", "c", "h"]
    output, _ = torch_run(module, x, None)
    assert np.abs(gates["h"] - output).max() <= 1e-12


# ---- minirnn -> torch --------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES[1:5], ids=shape_id)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_minirnn(kind, shape, dtype):
    """to_torch(from_torch(m)) is a module computing what m computes."""
    module = make_module(kind, shape, dtype)
    x, hx = make_inputs(module, shape, dtype)
    back = to_torch(from_torch(module), batch_first=module.batch_first)
    assert type(back) is type(module) and not back.training
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                 "bidirectional"):
        assert getattr(back, name) == getattr(module, name), name
    if isinstance(module, torch.nn.RNN):
        assert back.nonlinearity == module.nonlinearity
    assert {p.dtype for p in back.parameters()} == {TORCH_DTYPE[dtype]}
    assert_close(torch_run(back, x, hx), torch_run(module, x, hx), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [
    lambda dtype: minirnn.LSTM(5, dtype=dtype, seed=3),
    lambda dtype: minirnn.GRU(3, use_bias=False, return_sequences=True, dtype=dtype, seed=4),
    lambda dtype: minirnn.SimpleRNN(1, activation="relu", dtype=dtype, seed=5),
    lambda dtype: minirnn.Bidirectional(minirnn.GRU(4, return_state=True, return_sequences=True,
                                                    dtype=dtype, seed=6)),
], ids=["lstm", "gru-nobias", "rnn-relu", "bidirectional-gru"])
def test_to_torch_computes_what_the_layer_computes(make, dtype):
    rng = np.random.default_rng(7)
    layer = make(dtype)
    x = rng.normal(size=(3, 7, 2)).astype(dtype)
    cells = [layer.forward_layer, layer.backward_layer] if \
        isinstance(layer, minirnn.Bidirectional) else [layer]
    for cell in cells:  # random weights, the biases different per gate block
        cell.build(2)
        weights = [rng.uniform(-0.6, 0.6, size=w.shape) for w in cell.get_weights()]
        if cell.use_bias:
            weights[2] = weights[2] + np.arange(weights[2].size).reshape(weights[2].shape) \
                // cell.units * 0.2
        cell.set_weights(weights)
    module = to_torch(layer)
    output, _ = torch_run(module, x, None)
    mine = layer(x)
    mine = mine[0] if isinstance(mine, list) else mine
    if not layer.return_sequences:
        output = output[:, -1]
    assert_close((mine, ()), (output, ()), dtype)
    copied = from_torch(module)  # and back: the same weights, bit for bit
    copied = [copied.forward_layer, copied.backward_layer] if \
        isinstance(copied, minirnn.Bidirectional) else [copied]
    for cell, back in zip(cells, copied):
        for a, b in zip(cell.get_weights(), back.get_weights()):
            assert np.array_equal(a, b)


def test_to_torch_of_a_stack():
    rng = np.random.default_rng(8)
    stack = [minirnn.LSTM(3, return_sequences=True, dtype="float64", seed=k) for k in range(3)]
    x = rng.normal(size=(2, 5, 4))
    y = x
    for layer in stack:
        y = layer(y)
    output, (h_n, _) = torch_run(to_torch(stack), x, None)
    assert np.abs(output - y).max() <= 1e-12
    assert np.abs(h_n[-1] - y[:, -1]).max() <= 1e-12


def test_importing_the_bridge_does_not_import_torch():
    code = ("import sys, minirnn, minirnn.bridge.torch; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---- refusals ----------------------------------------------------------------

class MyLSTM(torch.nn.LSTM):
    pass


@pytest.mark.parametrize("module, error, words", [
    (torch.nn.Linear(2, 3), TypeError, ["`module`", "torch.nn.LSTM", "Linear"]),
    (torch.nn.LSTMCell(2, 3), TypeError, ["`module`", "LSTMCell"]),
    ("LSTM", TypeError, ["`module`", "str"]),
    (MyLSTM(2, 3), TypeError, ["`module`", "MyLSTM", "subclass"]),
    (torch.nn.LSTM(2, 3, proj_size=2), ValueError, ["proj_size", "0", "received proj_size=2"]),
    (torch.nn.GRU(2, 3).half(), TypeError, ["float32", "float64", "torch.float16"]),
    (torch.nn.RNN(2, 3).to(torch.bfloat16), TypeError, ["float32", "torch.bfloat16"]),
], ids=["linear", "cell", "string", "subclass", "proj_size", "float16", "bfloat16"])
def test_from_torch_refuses(module, error, words):
    with pytest.raises(error) as caught:
        from_torch(module)
    for word in words:
        assert word in str(caught.value)


def test_from_torch_refuses_an_unknown_dtype():
    with pytest.raises(ValueError, match=r"`dtype` must be 'float32', 'float64' or None; "
                                         r"received 'float16'"):
        from_torch(torch.nn.LSTM(2, 3), dtype="float16")


def built(layer, input_dim=2):
    for cell in [layer.forward_layer, layer.backward_layer] if \
            isinstance(layer, minirnn.Bidirectional) else [layer]:
        cell.build(input_dim)
    return layer


@pytest.mark.parametrize("make, error, words", [
    (lambda: "lstm", TypeError, ["`layer`", "str"]),
    (lambda: [], ValueError, ["`layer`", "at least one"]),
    (lambda: minirnn.LSTM(3), ValueError, ["`layer`", "no weights"]),
    (lambda: built(minirnn.LSTM(3, activation="relu")), ValueError,
     ["`layer.activation`", "expected 'tanh'", "received 'relu'"]),
    (lambda: built(minirnn.GRU(3, recurrent_activation="hard_sigmoid")), ValueError,
     ["`layer.recurrent_activation`", "expected 'sigmoid'", "received 'hard_sigmoid'"]),
    (lambda: built(minirnn.SimpleRNN(3, activation="sigmoid")), ValueError,
     ["`layer.activation`", "tanh' or 'relu", "received 'sigmoid'"]),
    (lambda: built(minirnn.GRU(3, reset_after=False)), ValueError,
     ["`layer.reset_after`", "expected True", "received False"]),
    (lambda: built(minirnn.LSTM(3, go_backwards=True)), ValueError,
     ["`layer.go_backwards`", "expected False", "received True"]),
    (lambda: built(minirnn.GRU(3, stateful=True)), ValueError,
     ["`layer.stateful`", "expected False", "received True"]),
    (lambda: built(minirnn.Bidirectional(minirnn.LSTM(3), merge_mode="sum")), ValueError,
     ["`layer.merge_mode`", "expected 'concat'", "received 'sum'"]),
    (lambda: built(minirnn.Bidirectional(minirnn.LSTM(3, dtype="float64"), dtype="float32")),
     ValueError, ["`layer.dtype`", "'float64'", "received 'float32'"]),
    (lambda: built(minirnn.Bidirectional(minirnn.LSTM(3), backward_layer=minirnn.LSTM(
        3, activation="relu", go_backwards=True))), ValueError,
     ["`layer.backward_layer.activation`", "received 'relu'"]),
    (lambda: built(minirnn.Bidirectional(minirnn.LSTM(3), backward_layer=minirnn.LSTM(
        4, go_backwards=True))), ValueError, ["`layer.backward_layer.units`", "received 4"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True)), built(minirnn.LSTM(3), 3)],
     ValueError, ["`layer[1]`", "GRU", "received LSTM"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True)), built(minirnn.GRU(4), 3)],
     ValueError, ["`layer[1].units`", "received 4"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True)),
              built(minirnn.GRU(3, use_bias=False), 3)],
     ValueError, ["`layer[1].use_bias`", "received False"]),
    (lambda: [built(minirnn.GRU(3)), built(minirnn.GRU(3), 3)], ValueError,
     ["`layer[0].return_sequences`", "must be True", "received False"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True)), built(minirnn.GRU(3), 5)],
     ValueError, ["`layer[1]`", "3 rows", "received 5"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True)),
              built(minirnn.Bidirectional(minirnn.GRU(3)), 3)], ValueError,
     ["`layer[1]`", "no Bidirectional", "Bidirectional"]),
    (lambda: [built(minirnn.GRU(3, return_sequences=True, dtype="float64")),
              built(minirnn.GRU(3), 3)], ValueError, ["`layer[1].dtype`", "received 'float32'"]),
], ids=["string", "empty", "unbuilt", "activation", "recurrent_activation", "rnn-activation",
        "reset_after", "go_backwards", "stateful", "merge_mode", "bidirectional-dtype",
        "backward-activation", "backward-units", "stack-class", "stack-units", "stack-bias",
        "stack-return_sequences", "stack-sizes", "stack-bidirectional", "stack-dtype"])
def test_to_torch_refuses(make, error, words):
    with pytest.raises(error) as caught:
        to_torch(make())
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_run_like_torch_refuses():
    gru = from_torch(torch.nn.GRU(2, 3, num_layers=2))
    lstm = from_torch(torch.nn.LSTM(2, 3))
    x = np.zeros((4, 1, 2), "float32")
    with pytest.raises(ValueError, match=r"`x` must be 3-D.*received shape \(2,\)"):
        run_like_torch(gru, np.zeros(2))
    with pytest.raises(ValueError, match=r"`hx` must have shape \(num_layers \* directions, "
                                         r"B, M\) with num_layers \* directions = 2; "
                                         r"received shape \(1, 1, 3\)"):
        run_like_torch(gru, x, np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"`hx` for an LSTM must be the pair \(h0, c0\)"):
        run_like_torch(lstm, x, np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"`hx\[1\] \(c0\)` must have shape"):
        run_like_torch(lstm, x, (np.zeros((1, 1, 3)), np.zeros((1, 3))))
    with pytest.raises(TypeError, match=r"`layers\[1\]` must be a minirnn LSTM"):
        run_like_torch([gru[0], "gru"], x)
    with pytest.raises(ValueError, match=r"`layers\[1\]` must be a GRU like the first layer"):
        run_like_torch([gru[0], lstm], x)
    lstm.return_state = False
    with pytest.raises(ValueError, match=r"`layers\[0\]` must have return_sequences=True and "
                                         r"return_state=True.*return_state=False"):
        run_like_torch(lstm, x)


def test_report_worst_errors(capsys):
    """Prints the worst differences measured above (run with -s to see them)."""
    with capsys.disabled():
        print(f"\nworst |minirnn - torch| over the from_torch cases: {WORST}")


# ---- state dicts: a module saved as data, and `minirnn trace --torch` ----------------

@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape", [SHAPES[1], SHAPES[3], SHAPES[4]], ids=shape_id)
def test_a_state_dict_rebuilds_the_module(kind, shape, tmp_path):
    """The module rebuilt from its saved state dict (kind, sizes, layers, direction and
    biases read off the keys and shapes) computes what the module does."""
    from minirnn.bridge.torch import load_state_dict

    module = make_module(kind, shape, "float64")
    path = tmp_path / "state.pt"
    torch.save(module.state_dict(), path)
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    rebuilt = load_state_dict(str(path), nonlinearity, batch_first=True)
    assert type(rebuilt) is type(module) and rebuilt.batch_first
    assert not load_state_dict(str(path), nonlinearity).batch_first  # torch's default
    for name in ("input_size", "hidden_size", "num_layers", "bias", "bidirectional"):
        assert getattr(rebuilt, name) == getattr(module, name), name
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 5, shape[6])))
    module.batch_first = True
    np.testing.assert_array_equal(rebuilt(x)[0].detach().numpy(), module(x)[0].detach().numpy())


def test_state_dict_refusals(tmp_path):
    from minirnn.bridge.torch import load_state_dict, module_from_state_dict

    gru = torch.nn.GRU(3, 4)
    torch.save(gru, tmp_path / "whole.pt")  # a pickled module: code, not data
    with pytest.raises(ValueError, match="state_dict"):
        load_state_dict(str(tmp_path / "whole.pt"))
    state = gru.state_dict()
    with pytest.raises(ValueError, match="'extra'"):
        module_from_state_dict({**state, "extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="gate blocks"):
        module_from_state_dict({"weight_ih_l0": torch.zeros(8, 3),
                                "weight_hh_l0": torch.zeros(8, 4)})
    with pytest.raises(ValueError, match="weight_hr_l"):
        module_from_state_dict(torch.nn.LSTM(3, 4, proj_size=2).state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        module_from_state_dict({**state, "bias_ih_l0": torch.zeros(5)})
    with pytest.raises(TypeError, match="state_dict"):
        module_from_state_dict([1, 2])
    with pytest.raises(ValueError, match="nonlinearity"):
        module_from_state_dict(state, "sigmoid")
    with pytest.raises(TypeError, match="batch_first"):
        module_from_state_dict(state, batch_first="yes")


def test_run_like_torch_refuses_what_torch_refuses():
    layers = from_torch(torch.nn.GRU(3, 4, num_layers=2))
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(TypeError, match="`x` must be float32"):
        run_like_torch(layers, x.astype(np.float64))
    with pytest.raises(TypeError, match="batch_first"):
        run_like_torch(layers, x, batch_first="no")
    other = from_torch(torch.nn.GRU(4, 6))
    with pytest.raises(ValueError, match=r"`layers\[1\]` must have 4 units"):
        run_like_torch([layers[0], other], x)
    out, h = run_like_torch(layers, torch.from_numpy(x))  # a tensor, as torch takes it
    assert out.shape == (5, 2, 4) and h.shape == (2, 2, 4)


def test_trace_command_traces_a_torch_module(tmp_path, capsys):
    """`minirnn trace --torch STATE.pt`: every level and direction, each traced on what
    reaches it; the last level's h is torch's output."""
    from minirnn.cli.app import main

    torch.manual_seed(3)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    torch.save(module.state_dict(), tmp_path / "lstm.pt")
    x = np.random.default_rng(2).normal(size=(2, 6, 3))
    np.save(tmp_path / "x.npy", x)
    assert main(["trace", "--torch", str(tmp_path / "lstm.pt"), "--input",
                 str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    for part in ("level 0, forward direction", "level 0, backward direction",
                 "level 1, forward direction", "level 1, backward direction"):
        assert part + ": LSTM(4)" in out
    top = from_torch(module)[1].trace(from_torch(module)[0](x)[0])
    expected = module(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(top["forward"]["h"], expected[..., :4], atol=1e-12)
    torch.save(module, tmp_path / "whole.pt")
    assert main(["trace", "--torch", str(tmp_path / "whole.pt")]) != 0
    assert "state_dict" in capsys.readouterr().err
    torch.save(module.half().state_dict(), tmp_path / "half.pt")
    assert main(["trace", "--torch", str(tmp_path / "half.pt")]) != 0
    err = capsys.readouterr().err
    assert "float32 or all float64" in err and "internal error" not in err
