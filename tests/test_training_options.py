"""symbackprop train's options as a user types them: mini-batches, epochs, shuffling, the optimisers
(against a hand-written NumPy reference), the log (--every, --quiet, --digits, --show), --save and
init from .npz, Ctrl-C, validation and accuracy, and the eval command."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "examples" / "seed.toml")
CLASSIFIER = str(ROOT / "examples" / "softmax_classifier.toml")

#: one tanh unit on two inputs, samples as columns: a = tanh(W X + b), C = Σ (a − Y)²
NETWORK = """
[network]
inputs = 2
batch = "m"

[[layers]]
units = 1
activation = "tanh"
"""

RNG = np.random.default_rng(7)
X = RNG.normal(size=(2, 10))
Y = np.tanh(0.8 * X[:1] - 0.3 * X[1:] + 0.1)
W0 = np.array([[0.3, -0.2]])
B0 = np.array([[0.05]])


def write(folder: Path, train: str, network: str = NETWORK) -> Path:
    np.savez(folder / "data.npz", x=X, y=Y)
    path = folder / "net.toml"
    path.write_text(textwrap.dedent(network) + '\n[train]\nx = "data.npz"\ny = "data.npz"\n'
                    'init = { W1 = [[0.3, -0.2]], b1 = 0.05 }\n' + textwrap.dedent(train), encoding="utf-8")
    return path


def reference_gradients(W, b, X, Y):
    """By hand: δ = 2 (a − Y) ⊙ (1 − a²), ∂C/∂W = δ Xᵀ, ∂C/∂b = δ 1."""
    a = np.tanh(W @ X + b)
    delta = 2 * (a - Y) * (1 - a**2)
    return delta @ X.T, delta.sum(axis=1, keepdims=True)


def reference(optimizer, lr, epochs, batch_size, shuffle=False, seed=0, mu=0.9, b1=0.9, b2=0.999, eps=1e-8):
    W, b = W0.copy(), B0.copy()
    vW, vb, mW, mb = (np.zeros_like(W), np.zeros_like(b), np.zeros_like(W), np.zeros_like(b))
    rng = np.random.default_rng(seed)
    t = 0
    n = X.shape[1]
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            gW, gb = reference_gradients(W, b, X[:, index], Y[:, index])
            t += 1
            if optimizer == "sgd":
                W, b = W - lr * gW, b - lr * gb
            elif optimizer == "momentum":
                vW, vb = mu * vW + gW, mu * vb + gb
                W, b = W - lr * vW, b - lr * vb
            else:
                mW, mb = b1 * mW + (1 - b1) * gW, b1 * mb + (1 - b1) * gb
                vW, vb = b2 * vW + (1 - b2) * gW**2, b2 * vb + (1 - b2) * gb**2
                c1, c2 = 1 - b1**t, 1 - b2**t
                W = W - lr * (mW / c1) / (np.sqrt(vW / c2) + eps)
                b = b - lr * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return W, b


def cost(W, b, X=X, Y=Y):
    return float(np.sum((np.tanh(W @ X + b) - Y) ** 2))


@pytest.mark.parametrize("optimizer, options", [
    ("sgd", []),
    ("momentum", ["--momentum", "0.8"]),
    ("adam", ["--beta1", "0.85", "--beta2", "0.99", "--eps", "1e-6"]),
])
@pytest.mark.parametrize("shuffle", [False, True])
def test_optimisers_on_mini_batches_match_a_hand_written_reference(tmp_path, capsys, optimizer, options, shuffle):
    spec = write(tmp_path, "lr = 0.05\n")
    saved = tmp_path / "out.npz"
    argv = ["train", str(spec), "--optimizer", optimizer, "--batch-size", "3", "--epochs", "4", "--seed", "5",
            "--shuffle" if shuffle else "--no-shuffle", "--save", str(saved), *options]
    assert main(argv) == 0
    hyper = {"--momentum": "mu", "--beta1": "b1", "--beta2": "b2", "--eps": "eps"}
    given = {hyper[options[i]]: float(options[i + 1]) for i in range(0, len(options), 2)}
    W, b = reference(optimizer, 0.05, 4, 3, shuffle=shuffle, seed=5, **given)
    with np.load(saved) as params:
        np.testing.assert_allclose(params["W1"], W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(params["b1"], b, rtol=1e-12, atol=1e-14)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", str(k)] for k in range(5)]
    assert lines[-1].startswith(f"epoch 4  cost {cost(W, b):.5g}  b1 = {b[0, 0]:.5g}")


def test_shuffling_is_seeded_and_changes_the_order(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\nbatch_size = 2\nepochs = 3\n")
    runs = []
    for seed in ("1", "1", "2"):
        assert main(["train", str(spec), "--seed", seed, "--quiet", "--digits", "15"]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] != runs[2]
    assert main(["train", str(spec), "--no-shuffle", "--quiet", "--digits", "15"]) == 0
    assert capsys.readouterr().out not in runs


def test_mini_batch_steps_without_epochs_cycle_through_the_data(tmp_path, capsys):
    """--steps counts updates; 5 steps of batches of 5 are two and a half epochs, unshuffled."""
    spec = write(tmp_path, "lr = 0.05\nshuffle = false\n")
    assert main(["train", str(spec), "--batch-size", "5", "--steps", "4", "--save", str(tmp_path / "p.npz")]) == 0
    W, b = reference("sgd", 0.05, 2, 5)
    with np.load(tmp_path / "p.npz") as params:
        np.testing.assert_allclose(params["W1"], W, rtol=1e-12)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"step 4  cost {cost(W, b):.5g}")


def test_the_default_is_still_full_batch_gradient_descent_for_steps(capsys):
    assert main(["train", SEED, "--steps", "2"]) == 0
    assert capsys.readouterr().out == ("step 0  cost 33040  W1 = -23.1\nstep 1  cost 9818.8  W1 = -8.5948\n"
                                       "step 2  cost 2917.9  W1 = -0.68736\n")


def test_every_prints_every_nth_step_and_the_last(capsys):
    assert main(["train", SEED, "--every", "6"]) == 0
    steps = [int(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert steps == [0, 6, 12, 18, 20]


def test_quiet_prints_only_the_last_line(capsys):
    assert main(["train", SEED, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("step 20  cost 9.536e-07")


def test_digits_prints_costs_to_more_significant_digits(capsys):
    assert main(["train", SEED, "--steps", "1", "--digits", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "step 0  cost 33040.3329  W1 = -23.1"  # (5.7 · −23.1 − 50.1)² = 33040.3329
    assert lines[1].split("W1 = ")[1] == f"{-23.1 - 0.007 * 2 * (5.7 * -23.1 - 50.1) * 5.7:.10g}"


def test_show_prints_a_parameter_of_any_shape_and_a_forward_quantity_at_start_and_end(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\nsteps = 3\n")
    assert main(["train", str(spec), "--show", "W1", "--show", "a1", "--quiet"]) == 0
    out = capsys.readouterr().out
    start = np.tanh(W0 @ X + B0)
    assert out.startswith("a1 at step 0 (1×10) =\n")
    assert out.splitlines()[1].split() == [f"{v:.5g}" for v in start[0]]
    assert "W1 at step 3 (1×2) =" in out and "a1 at step 3 (1×10) =" in out
    W, b = W0.copy(), B0.copy()
    for _ in range(3):
        gW, gb = reference_gradients(W, b, X, Y)
        W, b = W - 0.05 * gW, b - 0.05 * gb
    shown = out.split("W1 at step 3 (1×2) =\n")[1].split("\n")[0].split()
    np.testing.assert_allclose([float(v) for v in shown], W[0], rtol=1e-4)


def test_show_with_json_gives_the_start_and_end_values(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\nsteps = 2\n")
    assert main(["train", str(spec), "--show", "a1", "--show", "b1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["show"]
    np.testing.assert_allclose(shown["a1"]["start"], np.tanh(W0 @ X + B0), rtol=1e-14)
    assert shown["b1"]["start"] is None and len(shown["b1"]["end"]) == 1


def test_show_of_an_unknown_name_is_one_line_before_training(capsys):
    assert main(["train", SEED, "--show", "a7"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "--show" in captured.err and "a7" in captured.err


def test_save_writes_the_parameters_and_init_reads_them_back(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\nsteps = 5\n")
    assert main(["train", str(spec), "--save", str(tmp_path / "p.npz"), "--quiet"]) == 0
    first = capsys.readouterr().out
    resumed = tmp_path / "resumed.toml"
    resumed.write_text(textwrap.dedent(NETWORK) + '\n[train]\nx = "data.npz"\ny = "data.npz"\ninit = "p.npz"\n'
                       'lr = 0.05\nsteps = 5\n', encoding="utf-8")
    assert main(["train", str(resumed), "--steps", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "step 0" + first.split("step 5", 1)[1].rstrip("\n")


@pytest.mark.parametrize("argv, message", [
    (["--save", "p.txt"], "--save: cannot write 'p.txt': the name must end in .npz"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--every", "0"], "--every: expected a positive whole number, given 0"),
    (["--digits", "30"], "--digits: a float64 holds at most 17 significant digits"),
    (["--batch-size", "2"], "error: --batch-size: 2 is more than the 1 training samples"),
    (["--validation", "1.5"], "error: --validation: expected a fraction"),
    (["--momentum", "1.5"], "error: --momentum: expected a number in [0, 1), given 1.5"),
    (["--seed", "-3"], "error: --seed: expected a whole number ≥ 0, given -3"),
    (["--save", "no/such/folder/p.npz"], "--save: cannot write"),
])
def test_bad_options_are_one_line_and_exit_two(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", SEED, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.count("\n") <= 2


@pytest.mark.parametrize("table, message", [
    ('optimizer = "rmsprop"\n', "[train].optimizer: expected one of 'sgd', 'momentum', 'adam', given 'rmsprop'"),
    ("batch_size = 0\n", "[train].batch_size: expected a positive whole number, given 0"),
    ("epochs = 1.5\n", "[train].epochs: expected a positive whole number, given 1.5"),
    ('shuffle = "yes"\n', "[train].shuffle: expected true or false, given 'yes'"),
    ("momentum = 1.0\n", "[train].momentum: expected a number in [0, 1), given 1.0"),
    ("batch_size = 11\n", "[train].batch_size: 11 is more than the 10 training samples"),
    ('init = "params.csv"\n', "[train].init: expected \"random\", a table of parameters or a .npz file"),
    ("validation = { x = [[1.0]] }\n", "[train].validation needs the key 'y'"),
    ("optimiser = \"adam\"\n", "optimiser"),
])
def test_bad_train_keys_are_one_line_naming_the_key(tmp_path, capsys, table, message):
    spec = write(tmp_path, "lr = 0.05\n")
    text = spec.read_text().replace('init = { W1 = [[0.3, -0.2]], b1 = 0.05 }\n', "") if "init" in table else \
        spec.read_text()
    spec.write_text(text + table, encoding="utf-8")
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1 and err.count("\n") <= 2


def interrupt_after(monkeypatch, updates):
    from symbackprop import training

    real = training._Optimizer.__call__
    calls = []

    def update(self, params, X, Y):
        if len(calls) == updates:
            raise KeyboardInterrupt
        calls.append(1)
        real(self, params, X, Y)

    monkeypatch.setattr(training._Optimizer, "__call__", update)


def test_init_from_a_npz_that_lacks_a_parameter_names_it(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\n")
    np.savez(tmp_path / "half.npz", W1=W0)
    spec.write_text(spec.read_text().replace("init = { W1 = [[0.3, -0.2]], b1 = 0.05 }", 'init = "half.npz"'))
    assert main(["train", str(spec)]) == 2
    assert "[train].init: no initial value for b1" in capsys.readouterr().err


def test_ctrl_c_keeps_the_parameters_reached_says_the_step_and_exits_130(tmp_path, capsys, monkeypatch):
    spec = write(tmp_path, "lr = 0.05\nsteps = 100\n")
    interrupt_after(monkeypatch, 7)
    saved, plot = tmp_path / "p.npz", tmp_path / "cost.png"
    assert main(["train", str(spec), "--save", str(saved), "--plot", str(plot), "--every", "5"]) == 130
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].split()[:3] == ["step", "7", "cost"]
    assert "interrupted after 7 steps" in captured.err and str(saved) in captured.err
    W, b = W0.copy(), B0.copy()
    for _ in range(7):
        gW, gb = reference_gradients(W, b, X, Y)
        W, b = W - 0.05 * gW, b - 0.05 * gb
    with np.load(saved) as params:
        np.testing.assert_allclose(params["W1"], W, rtol=1e-12)
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_ctrl_c_between_a_step_and_its_cost_keeps_the_last_recorded_step(tmp_path, capsys, monkeypatch):
    """Ctrl-C after the 4th update but before its cost: the run reports 3 steps, and saves step 3's values."""
    from symbackprop import training

    spec = write(tmp_path, "lr = 0.05\nsteps = 100\n")
    setup = training.training_setup(training.read_spec(spec))
    real_cost, calls = setup.functions.cost, []

    def cost(params, X, Y):
        calls.append(1)
        if len(calls) == 5:  # steps 0..3, then step 4's
            raise KeyboardInterrupt
        return real_cost(params, X, Y)

    monkeypatch.setattr(training, "training_setup", lambda *a, **k: setup)
    monkeypatch.setattr(setup.functions, "cost", cost)
    assert main(["train", str(spec), "--save", str(tmp_path / "p.npz"), "--quiet"]) == 130
    assert "interrupted after 3 steps" in capsys.readouterr().err
    W, b = W0.copy(), B0.copy()
    for _ in range(3):
        gW, gb = reference_gradients(W, b, X, Y)
        W, b = W - 0.05 * gW, b - 0.05 * gb
    with np.load(tmp_path / "p.npz") as params:
        np.testing.assert_allclose(params["W1"], W, rtol=1e-12)


def test_ctrl_c_with_json_prints_the_json_reached(tmp_path, capsys, monkeypatch):
    spec = write(tmp_path, "lr = 0.05\nsteps = 100\n")
    interrupt_after(monkeypatch, 3)
    assert main(["train", str(spec), "--format", "json"]) == 130
    result = json.loads(capsys.readouterr().out)
    assert result["interrupted"] == 3 and result["final"]["step"] == 3 and len(result["steps"]) == 4


def test_validation_fraction_and_accuracy_for_a_cross_entropy_classifier(capsys):
    assert main(["train", CLASSIFIER, "--validation", "0.25", "--optimizer", "adam", "--lr", "0.01",
                 "--epochs", "40", "--batch-size", "6", "--quiet", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    final = result["final"]
    assert result["unit"] == "epoch" and set(final) >= {"val_cost", "accuracy", "val_accuracy"}
    assert final["accuracy"] == 1.0 and final["val_accuracy"] == 1.0
    assert result["steps"][0]["accuracy"] < 0.8
    assert final["val_cost"] < result["steps"][0]["val_cost"]


def test_accuracy_is_the_share_of_argmax_matches(tmp_path, capsys):
    network = """
    [network]
    inputs = 2
    cost = "softmax_cross_entropy"
    batch = "m"
    [[layers]]
    units = 2
    activation = "softmax"
    bias = false
    """
    spec = tmp_path / "c.toml"
    # W = I: the predicted class is the larger input; samples 1 and 3 are right, 2 and 4 wrong, 5 right
    spec.write_text(textwrap.dedent(network) + "[train]\nx = [[2.0, 0.0, 1.0, 3.0, 0.0], [0.0, 1.0, 0.0, 1.0, 5.0]]\n"
                    "y = [[1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0]]\n"
                    "init = { W1 = [[1.0, 0.0], [0.0, 1.0]] }\nlr = 0.1\nsteps = 1\n", encoding="utf-8")
    assert main(["train", str(spec)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split("accuracy ")[1] == "0.6"


def test_validation_from_a_table_of_held_out_data(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\nsteps = 2\nvalidation = { x = [[1.0, -1.0], [0.5, 2.0]], "
                           "y = [[0.2, -0.4]] }\n")
    assert main(["train", str(spec)]) == 0
    Xv, Yv = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([[0.2, -0.4]])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"step 0  cost {cost(W0, B0):.5g}  val_cost {cost(W0, B0, Xv, Yv):.5g}")


def test_plot_draws_validation_and_accuracy(tmp_path, capsys):
    plot = tmp_path / "acc.png"
    assert main(["train", CLASSIFIER, "--validation", "0.25", "--epochs", "3", "--plot", str(plot), "--quiet"]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_eval_prints_a_forward_quantity_on_the_train_data_as_a_hand_computation_gives_it(capsys):
    assert main(["eval", SEED, "a1"]) == 0
    assert capsys.readouterr().out == f"a1 at the initial values (1×1) =\n  {5.7 * -23.1:.5g}\n"


def test_eval_of_a_hidden_activation_matches_numpy(tmp_path, capsys):
    spec = write(tmp_path, "lr = 0.05\n")
    assert main(["eval", str(spec), "a1", "--digits", "12", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["quantity"] == "a1" and result["shape"] == [1, 10]
    np.testing.assert_allclose(result["values"], np.tanh(W0 @ X + B0), rtol=1e-14)
    assert main(["eval", str(spec), "z1", "--digits", "4"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "z1 at the initial values (1×10) =" and rows[1].split() == [f"{v:.4g}" for v in (W0 @ X + B0)[0]]


def test_eval_of_an_unknown_quantity_names_the_known_ones(capsys):
    assert main(["eval", SEED, "a9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown quantity 'a9'; known: X, Y, W1, a0, z1, a1, delta1" in err


DIGITS = str(ROOT / "examples" / "digits.toml")


def test_the_digits_example_reaches_its_documented_accuracy_in_under_30_seconds(capsys):
    import time

    start = time.perf_counter()
    assert main(["train", DIGITS, "--every", "5"]) == 0
    assert time.perf_counter() - start < 30
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["0", "5", "10", "15", "20"]
    assert lines[-1] == "epoch 20  cost 123.92  val_cost 62.996  accuracy 0.965  val_accuracy 0.93"


def test_pytorch_reaches_the_same_accuracy_on_the_digits_example():
    pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_torch", ROOT / "benchmarks" / "digits_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours, theirs = module.symbackprop_run(), module.torch_run()
    assert ours["accuracy"] == theirs["accuracy"] == 0.965
    assert ours["val_accuracy"] == theirs["val_accuracy"] == 0.93
    assert ours["cost"] == pytest.approx(theirs["cost"], rel=1e-9)


def test_a_progress_bar_is_drawn_on_a_terminal_only(capsys, monkeypatch):
    import sys

    assert main(["train", SEED, "--every", "10"]) == 0
    assert capsys.readouterr().err == ""  # not a terminal: no bar
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["train", SEED, "--every", "10"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 3
    assert "\r[" + "#" * 30 + "] 20/20" in captured.err and captured.err.endswith("\n")
    assert main(["train", SEED, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
