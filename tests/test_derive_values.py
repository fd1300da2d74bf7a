"""derive --values: every quantity of the derivation evaluated, at the [train] data and initial values or at
random ones, so that a hand computation can be compared with each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main
from symbackprop.spec import read_spec
from symbackprop.training import derivation_values, quantity_values, training_setup

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "examples" / "seed.toml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_seeds_values_are_its_hand_computation(capsys):
    code, out, err = run(capsys, "derive", SEED, "--values", "--digits", "8")
    assert code == 0 and err == ""
    derivation, values = out.split("\nvalues at the [train] data and initial values:\n")
    assert derivation.startswith("network: 1 → 1 (identity)")
    # ∂C/∂w = 2a(aw − y) at a = 5.7, w = −23.1, y = 50.1; one step of 0.007 gives the seed's −8.5948
    assert values.splitlines()[-2:] == ["  dC/dW1 (1×1) =", "    -2072.178"]
    assert "  C (1×1) =\n    33040.333\n" in values
    assert -23.1 - 0.007 * -2072.178 == pytest.approx(-8.594754)


@pytest.mark.parametrize("example", ["softmax_classifier.toml", "residual.toml", "worked_2_2_2.toml"])
def test_values_are_those_of_eval_and_the_generated_gradients(example):
    spec = read_spec(ROOT / "examples" / example)
    at, values = derivation_values(spec)
    setup = training_setup(spec)
    assert at == "the [train] data and initial values"
    for name in ("X", "z1", "a1", "delta1"):
        np.testing.assert_allclose(values[name], quantity_values(setup, name), rtol=1e-12)
    gradients = setup.functions.gradients(setup.params, setup.X, setup.Y)
    for name, gradient in gradients.items():
        np.testing.assert_allclose(values[f"dC/d{name}"], gradient, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(values["C"], setup.functions.cost(setup.params, setup.X, setup.Y), rtol=1e-9)


def test_without_a_train_table_the_values_are_random_and_say_so(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninputs = "n_0"\nbatch = "m"\n[[layers]]\nunits = 2\nactivation = "tanh"\n')
    code, out, _ = run(capsys, "derive", str(spec), "--values")
    assert code == 0
    assert ("\nvalues at random inputs, targets and parameters (seed 0; sizes n_0 = 2, m = 2; add a [train] table "
            "for your own):\n  X (2×2) =\n") in out
    assert run(capsys, "derive", str(spec), "--values")[1] == out  # the same on every run


def test_values_in_json(capsys):
    code, out, _ = run(capsys, "derive", SEED, "--values", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["values"]["at"] == "the [train] data and initial values"
    assert document["values"]["quantities"]["dC/dW1"] == [[pytest.approx(-2072.178)]]
    assert list(document["values"]["quantities"]) == ["X", "Y", "W1", "z1", "a1", "C", "delta1", "dC/dW1"]


def test_with_a_file_option_only_the_values_are_printed(tmp_path, capsys):
    code, out, _ = run(capsys, "derive", SEED, "--values", "--latex", str(tmp_path / "seed.tex"))
    assert code == 0 and out.startswith("values at the [train] data and initial values:\n  X (1×1) =\n")
    assert (tmp_path / "seed.tex").exists()


@pytest.mark.parametrize("argv, message", [
    (["--digits", "3"], "error: symbackprop derive: --digits sets the digits of --values (hint: add --values)"),
    (["--values", "--digits", "0"], "error: --digits: expected a whole number from 1 to 17, given 0"),
])
def test_bad_values_options_are_one_line_with_exit_2(capsys, argv, message):
    code, out, err = run(capsys, "derive", SEED, *argv)
    assert code == 2 and out == "" and err.splitlines()[0].startswith(message) and err.count("\n") == 1


def test_bad_train_data_are_reported_as_training_is(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninputs = 2\n[[layers]]\nunits = 1\n[train]\nx = [[1, 2, 3], [4, 5, 6]]\ny = 1\n'
                    'lr = 0.1\n')
    code, out, err = run(capsys, "derive", str(spec), "--values")
    assert code == 2 and out == "" and "holds 3 samples, but the network's batch is 1" in err


def test_eval_and_show_give_the_worked_examples_hidden_outputs_with_its_fixed_biases(capsys):
    worked = str(ROOT / "examples" / "worked_2_2_2.toml")
    code, out, err = run(capsys, "eval", worked, "a1", "--digits", "9")
    assert code == 0 and out == "a1 at the initial values (2×1) =\n  0.593269992\n  0.596884378\n"  # out_h1, out_h2
    code, out, _ = run(capsys, "train", worked, "--steps", "1", "--show", "a1", "--quiet")
    assert code == 0 and out.startswith("a1 at step 0 (2×1) =\n  0.59327\n  0.59688\n")


def test_a_dropout_layer_is_evaluated_in_evaluation_mode(tmp_path, capsys):
    spec = tmp_path / "drop.toml"
    spec.write_text('[network]\ninputs = 3\nbatch = "m"\n[[layers]]\nunits = 4\nactivation = "tanh"\n'
                    '[[layers]]\nkind = "dropout"\np = 0.5\n[[layers]]\nunits = 1\n'
                    '[train]\nx = [[1, 2], [3, 4], [5, 6]]\ny = [[1, 0]]\nlr = 0.1\nsteps = 2\n')
    parsed = read_spec(spec)
    setup = training_setup(parsed)
    np.testing.assert_array_equal(quantity_values(setup, "a2"), quantity_values(setup, "a1"))  # nothing dropped
    _, values = derivation_values(parsed)
    np.testing.assert_allclose(values["C"], setup.functions.cost(setup.params, setup.X, setup.Y), rtol=1e-12)
    assert run(capsys, "train", str(spec), "--show", "a2", "--quiet")[0] == 0
