"""Odd but valid input gets a result, and wrong input one line of error: never a traceback."""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main


def spec_file(tmp_path: Path, activation: str, train: str = "") -> str:
    path = tmp_path / "net.toml"
    path.write_text(f'[network]\ninputs = 1\n[[layers]]\nunits = 1\nbias = false\nactivation = "{activation}"\n'
                    + train)
    return str(path)


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = "[train]\nx = 2.0\ny = 4.0\ninit = { W1 = 0.5 }\nlr = 0.05\nsteps = 3\n"


@pytest.mark.parametrize("activation", ["x", "(x)", "2*x/2", "x+0", "x**1"])
def test_identity_like_activations_generate_working_deterministic_code(tmp_path, capsys, activation):
    spec = spec_file(tmp_path, activation, TRAIN)
    assert main(["train", spec, "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [step["params"]["W1"] for step in history["steps"]] == pytest.approx([0.5, 1.1, 1.46, 1.676])
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    assert main(["derive", spec, "--numpy", str(first)]) == 0
    assert main(["derive", spec, "--numpy", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    module = load_module(first)
    X = np.array([[2.0]])
    out = module.forward({"W1": np.array([[0.5]])}, X)
    assert out.tolist() == [[1.0]] and out is not X


@pytest.mark.parametrize("activation, latex", [("2*pi", r"2 \pi"), ("pi + pi", r"2 \pi"), ("x/(2*pi)", r"2 \pi"),
                                               ("pi*x", r"\pi")])
def test_activations_with_pi_typeset(tmp_path, capsys, activation, latex):
    assert main(["derive", spec_file(tmp_path, activation), "--latex", "-"]) == 0
    out = capsys.readouterr().out
    assert latex in out and r"\text{\Pi}" not in out


# --- the generated module's support functions ---------------------------------------------------


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    """A generated module with a symbolic input size, batch and weight decay, mean squared error."""
    folder = tmp_path_factory.mktemp("module")
    spec = folder / "net.toml"
    spec.write_text('[network]\ninputs = "n_0"\nbatch = "m"\ncost = "mean_squared_error"\nweight_decay = "lam"\n'
                    '[[layers]]\nunits = 1\n')
    assert main(["derive", str(spec), "--numpy", str(folder / "generated.py")]) == 0
    return load_module(folder / "generated.py")


PARAMS = {"W1": np.ones((1, 2)), "b1": np.zeros((1, 1))}
X, Y = np.ones((2, 3)), np.ones((1, 3))


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.cost(PARAMS, np.ones((2, 0)), np.ones((1, 0)), lam=0.0), "ShapeError", "X: an empty array"),
    (lambda m: m.step(PARAMS, X, Y, 10**400, lam=0.0), "ArgumentError", "lr: .* beyond float64's range"),
    (lambda m: m.cost(PARAMS, X, Y, lam=10**400), "ArgumentError", "lam: .* beyond float64's range"),
    (lambda m: m.cost(PARAMS, [[1, 2, 3], [1, 2]], Y, lam=0.0), "ArgumentError", r"X: .*\(rows of equal length\)"),
    (lambda m: m.cost({"W1": [[1], [1, 2]], "b1": [[0]]}, X, Y, lam=0.0), "ArgumentError", "W1: .*equal length"),
    (lambda m: m.init_params(seed=-1, n_0=2), "ArgumentError", "seed: expected a whole number ≥ 0, given -1"),
    (lambda m: m.init_params(seed=1.5, n_0=2), "ArgumentError", "seed: expected a whole number ≥ 0"),
    (lambda m: m.init_params(dtype="bogus", n_0=2), "ArgumentError", "dtype: expected float32 or float64, given 'bogus'"),
    (lambda m: m.init_params(n_0=10**12), "ShapeError", r"would have 1000000000001 entries in all \(W1 is \(1, 1000000000000\)\)"),
    (lambda m: m.init_params(n_0=10**30), "ShapeError", "would have"),
])
def test_bad_arguments_raise_the_modules_own_errors(module, call, error, message):
    with pytest.raises(getattr(module, error), match=message):
        call(module)


def test_good_arguments_still_work(module):
    params = module.init_params(seed=0, n_0=2)
    assert params["W1"].shape == (1, 2)
    assert module.step(params, X, Y, 10**2, lam=1) is not None


# --- spec values of the wrong type --------------------------------------------------------------


@pytest.mark.parametrize("line, message", [
    ("cost = { a = 1 }", "[network]: cost must be the name of a cost (binary_cross_entropy, "),
    ("cost = [1, 2]", "not list [1, 2]"),
    ("cost = 3", "not int 3"),
])
def test_a_cost_that_is_not_a_name_is_a_spec_error(tmp_path, capsys, line, message):
    spec = tmp_path / "net.toml"
    spec.write_text(f"[network]\ninputs = 1\n{line}\n[[layers]]\nunits = 1\n")
    assert main(["derive", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("line", ["activation = { a = 1 }", "activation = [1, 2]", "activation = 3"])
def test_an_activation_that_is_not_a_name_is_a_spec_error(tmp_path, capsys, line):
    spec = tmp_path / "net.toml"
    spec.write_text(f"[network]\ninputs = 1\n[[layers]]\nunits = 1\n{line}\n")
    assert main(["derive", str(spec)]) == 2
    assert "[[layers]] #1: activation must be a name or a formula in x, not " in capsys.readouterr().err


# --- training data files ------------------------------------------------------------------------


def train_spec_with(tmp_path: Path, data: str) -> str:
    spec = tmp_path / "net.toml"
    spec.write_text(f'[network]\ninputs = 1\n[[layers]]\nunits = 1\n[train]\nx = "{data}"\ny = 1.0\nlr = 0.1\n')
    return str(spec)


@pytest.mark.parametrize("name, content, message", [
    ("x.npz", b"not a zip file", "x.npz' is not a .npz file (a zip archive of .npy arrays, as numpy.savez writes)"),
    ("x.npz", bytes(range(256)), "is not a .npz file"),
    ("x.npy", b"garbage", "x.npy' is not a .npy file (as numpy.save writes)"),
])
def test_a_data_file_that_is_not_what_its_name_says_is_refused_before_numpy_reads_it(tmp_path, capsys, name,
                                                                                       content, message):
    (tmp_path / name).write_bytes(content)
    assert main(["train", train_spec_with(tmp_path, name)]) == 2
    err = capsys.readouterr().err
    assert message in err and "pickle" not in err and err.count("\n") == 1


def test_a_npz_whose_arrays_unpack_beyond_the_bound_is_refused_unread(tmp_path, capsys, monkeypatch):
    from symbackprop import training

    monkeypatch.setattr(training, "MAX_DATA_BYTES", 1000)
    np.savez_compressed(tmp_path / "x.npz", x=np.zeros((1, 1000)))  # 8 kB unpacked, a few hundred bytes packed
    assert main(["train", train_spec_with(tmp_path, "x.npz")]) == 2
    assert "bytes of data; training reads at most" in capsys.readouterr().err


# --- overflow in training ------------------------------------------------------------------------


def test_data_too_large_for_float64_are_blamed_not_the_learning_rate(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text("[network]\ninputs = 1\n[[layers]]\nunits = 1\n[train]\nx = 1e200\ny = 1.0\nlr = 0.1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warning, with a line of generated code, is an error here
        assert main(["train", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: the cost is inf at the start, before any step: the data or the initial values are "
                            "too large for float64 arithmetic (the largest value is 1e+200) "
                            "(hint: scale the data, e.g. to [-1, 1])\n")


def test_a_cost_undefined_at_the_start_is_reported_without_a_numpy_warning(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninputs = 1\n[[layers]]\nunits = 1\nbias = false\nactivation = "log(x)"\n'
                    "[train]\nx = -1.0\ny = 1.0\ninit = { W1 = 1.0 }\nlr = 0.1\n")
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the cost is nan at the start, before any step: an activation or the cost is "
                          "undefined at these values") and err.count("\n") == 1
