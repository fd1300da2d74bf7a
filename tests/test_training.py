"""Training with the generated step: the seed's twenty iterations, data files, plots and bad [train] tables."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main
from symbackprop.errors import ShapeError, TrainingError
from symbackprop.spec import read_spec
from symbackprop.training import format_step, train, train_spec, training_setup

ROOT = Path(__file__).resolve().parent.parent

#: the seed's MATLAB listing (format short: five significant digits), one value per iteration
SEED_W = [-8.5948, -0.68736, 3.6233, 5.9732, 7.2542, 7.9525, 8.3332, 8.5408, 8.6539, 8.7156,
          8.7492, 8.7675, 8.7775, 8.7829, 8.7859, 8.7875, 8.7884, 8.7889, 8.7892, 8.7893]

NETWORK = """
[network]
inputs = 2
batch = "m"

[[layers]]
units = 3
activation = "tanh"

[[layers]]
units = 1
"""


def write_spec(folder: Path, train: str, network: str = NETWORK) -> Path:
    path = folder / "net.toml"
    path.write_text(textwrap.dedent(network) + "\n[train]\n" + textwrap.dedent(train), encoding="utf-8")
    return path


def test_seed_prints_the_seeds_twenty_values_to_the_digits_it_prints(capsys):
    assert main(["train", str(ROOT / "examples" / "seed.toml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "step  0  cost 33040  W1 = -23.1"
    assert [line.split("W1 = ")[1] for line in lines[1:]] == [f"{w:.5g}" for w in SEED_W]
    assert lines[1] == "step  1  cost 9818.8  W1 = -8.5948"
    assert lines[-1].startswith("step 20  cost 9.536e-07")


def test_training_lowers_the_cost_and_returns_the_history():
    history = train_spec(ROOT / "examples" / "seed.toml")
    assert len(history.costs) == 21 and history.costs[-1] < 1e-5 * history.costs[0]
    assert history.scalar == {"W1": True}
    assert history.values["W1"][1:] == pytest.approx(SEED_W, abs=5e-5)


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".csv"])
def test_data_come_from_files_next_to_the_spec(tmp_path, suffix):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 8))
    Y = np.tanh(X[:1] - 0.5 * X[1:])
    for name, array in (("x", X), ("y", Y)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".npz":
            np.savez(path, **{name: array})
        elif suffix == ".npy":
            np.save(path, array)
        else:
            np.savetxt(path, array, delimiter=",")
    spec = write_spec(tmp_path, f'x = "x{suffix}"\ny = "y{suffix}"\nlr = 0.05\nsteps = 30\nseed = 1\n')
    history = train_spec(spec)
    assert history.costs[-1] < 0.5 * history.costs[0]
    assert history.scalar == {"W1": False, "b1": False, "W2": False, "b2": True}


def test_one_dimensional_lists_are_samples_for_a_one_input_network(tmp_path):
    spec = write_spec(tmp_path, 'x = [1.0, 2.0, 3.0]\ny = [2.0, 4.0, 6.0]\nlr = 0.02\nsteps = 400\n'
                                'init = { W1 = 0.0, b1 = 0.0 }\n',
                      network='[network]\ninputs = 1\nbatch = "m"\n[[layers]]\nunits = 1\n')
    setup = training_setup(read_spec(spec))
    assert setup.X.shape == (1, 3) and setup.Y.shape == (1, 3)
    assert train(setup).values["W1"][-1] == pytest.approx(2.0, abs=0.05)


def test_a_one_dimensional_list_is_one_sample_of_several_features(tmp_path):
    spec = write_spec(tmp_path, 'x = [1.0, 2.0]\ny = 0.5\nlr = 0.1\nsteps = 1\n')
    setup = training_setup(read_spec(spec))
    assert setup.X.shape == (2, 1) and setup.Y.shape == (1, 1)


def test_random_initial_values_are_seeded_and_weights_scaled_by_fan_in(tmp_path):
    spec = write_spec(tmp_path, 'x = [[1.0], [2.0]]\ny = 0.5\nlr = 0.1\nsteps = 1\nseed = 7\n'
                                'init = { W1 = "random", b1 = "random", W2 = [[1.0, 2.0, 3.0]], b2 = 0.0 }\n')
    first, second = (training_setup(read_spec(spec)).params for _ in range(2))
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert first["W2"].tolist() == [[1.0, 2.0, 3.0]] and not first["b1"].any()


def test_cli_overrides_steps_and_lr(capsys):
    assert main(["train", str(ROOT / "examples" / "seed.toml"), "--steps", "2", "--lr", "0.001"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].endswith("W1 = -21.028")


def test_format_step_shows_only_one_by_one_parameters():
    params = {"W1": np.array([[0.5, 1.0]]), "b1": np.array([[0.123456]])}
    assert format_step(12, 0.000123456, params, width=3) == "step  12  cost 0.00012346  b1 = 0.12346"


def test_plot_draws_cost_and_parameters(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "seed.png"
    assert main(["train", str(ROOT / "examples" / "seed.toml"), "--plot", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["train", str(ROOT / "examples" / "seed.toml"), "--plot", str(tmp_path / "p.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained before the error
    assert captured.err == "error: --plot needs matplotlib; install it with: pip install 'symbackprop[plot]'\n"


@pytest.mark.parametrize("table, message", [
    ('y = 1.0\nlr = 0.1\n', "[train] needs the key 'x'"),
    ('x = "missing.npz"\ny = 1.0\nlr = 0.1\n', "[train].x: no such file"),
    ('x = "data.txt"\ny = 1.0\nlr = 0.1\n', "[train].x: 'data.txt' is neither numbers nor a .npz, .npy or .csv file"),
    ('x = "bad.csv"\ny = 1.0\nlr = 0.1\n', "[train].x: cannot read"),
    ('x = "bad.npy"\ny = 1.0\nlr = 0.1\n', "bad.npy' is not a .npy file (as numpy.save writes)"),
    ('x = "two.npz"\ny = 1.0\nlr = 0.1\n', "holds a, b; name one 'x' or keep a single array in it"),
    ('x = [[1.0, 2.0], [3.0]]\ny = 1.0\nlr = 0.1\n', "[train].x: expected numbers or nested lists of numbers"),
    ('x = [[1.0], ["a"]]\ny = 1.0\nlr = 0.1\n', "[train].x: expected numbers"),
    ('x = [[1.0], [2.0], [3.0]]\ny = 1.0\nlr = 0.1\n',
     "[train].x: the input X has 3 inputs per sample, but the network has 2 (expected 2×m, got 3×1; a sample per "
     "column)"),
    ('x = [[1.0], [2.0]]\ny = [[1.0, 2.0]]\nlr = 0.1\n',
     "[train].y: the targets Y hold 2 samples, but X holds 1 (expected 1×m, got 1×2; a sample per column)"),
    ('x = [[1.0], [2.0]]\ny = 1.0\n', "[train] needs the key 'lr'"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0\n', "[train].lr: the learning rate must be a positive number, given 0"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = -0.5\n', "the learning rate must be a positive number, given -0.5"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = "fast"\n', "[train].lr: expected a number, given 'fast'"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\nsteps = 0\n', "[train].steps: expected a positive whole number"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\nseed = -1\n', "[train].seed: expected a whole number ≥ 0"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\ninit = { W3 = 1.0 }\n', "[train].init: unknown parameter 'W3'; known: W1"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\ninit = { W1 = "random" }\n', "[train].init: no initial value for b1, W2"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\ninit = 3\n', "[train].init: expected \"random\" or a table"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\ninit = { W1 = [1.0, 2.0], b1 = 0.0, W2 = 0.0, b2 = 0.0 }\n',
     "[train].init.W1: a 1-d list is ambiguous for shape (3, 2)"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\ninit = { W1 = [[1.0, 2.0]], b1 = "random", W2 = "random", b2 = 0.0 }\n',
     "W1: expected shape (3, 2), given (1, 2)"),
    ('x = [[1.0], [2.0]]\ny = 1.0\nlr = 1e6\nsteps = 50\n', "the learning rate 1e+06 is too large for this problem"),
])
def test_bad_train_table_is_one_line_and_exit_code_two(tmp_path, capsys, table, message):
    (tmp_path / "bad.csv").write_text("1,2\n3\n", encoding="utf-8")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    np.savez(tmp_path / "two.npz", a=np.ones(2), b=np.ones(2))
    spec = write_spec(tmp_path, table)
    assert main(["train", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err


def test_spec_without_train_table_or_with_symbolic_sizes_says_what_is_missing(tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text(NETWORK, encoding="utf-8")
    with pytest.raises(TrainingError, match="no \\[train\\] table; add one with x, y, lr and steps"):
        train_spec(plain)
    hidden = write_spec(tmp_path, 'x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\n',
                        network='[network]\ninputs = 2\n[[layers]]\nunits = "n_1"\n[[layers]]\nunits = 1\n')
    with pytest.raises(TrainingError, match="random initial values need the size n_1, which the data do not fix"):
        train_spec(hidden)
    decay = write_spec(tmp_path, 'x = [[1.0], [2.0]]\ny = 1.0\nlr = 0.1\n',
                       network=NETWORK.replace('batch = "m"', 'weight_decay = "lam"'))
    with pytest.raises(TrainingError, match="weight_decay is the symbol lam; training needs a number"):
        train_spec(decay)


def test_data_that_do_not_fit_raise_a_shape_error_naming_the_spec(tmp_path):
    spec = write_spec(tmp_path, 'x = [[1.0, 2.0, 3.0]]\ny = 1.0\nlr = 0.1\n')
    with pytest.raises(ShapeError, match=r"net.toml: \[train\].x: the input X has 1 input per sample, but the network "
                                         r"has 2 \(expected 2×m, got 1×3; a sample per column\)"):
        train_spec(spec)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: np.save(folder / "x.npy", np.zeros((2, 0))), "holds no samples"),
        (lambda folder: np.save(folder / "x.npy", np.ones((2, 3)) + 1j), "holds complex128 values"),
        (lambda folder: (folder / "x.csv").write_text(""), "holds no samples"),
        (lambda folder: np.savez(folder / "x.npz"), "holds no arrays"),
    ],
)
def test_empty_or_complex_training_data_is_refused_in_one_clear_line(tmp_path, capsys, make, message):
    make(tmp_path)
    (data,) = [p.name for p in tmp_path.iterdir()]
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninputs = 2\nbatch = "m"\n[[layers]]\nunits = 1\n'
                    f'[train]\nx = "{data}"\ny = [[1.0, 2.0, 3.0]]\nlr = 0.1\nsteps = 2\n')
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.count("[train].x") == 1
