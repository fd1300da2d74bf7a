"""Training data that do not fit the network are one line saying how: transposed, more samples than a fixed
batch, the wrong number of inputs or outputs, or Y's samples not X's."""

from __future__ import annotations

import json

import pytest

from symbackprop.cli import main

ROWS = [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 1], [1, 1, 1, 1], [2, 2, 2, 2]]  # 5 samples of 4 inputs
TARGETS = [[0, 1], [1, 0], [0, 1], [1, 0], [0, 1]]


def spec(tmp_path, network: str, train: str) -> str:
    path = tmp_path / "net.toml"
    path.write_text(f"{network}\n[[layers]]\nunits = 2\nactivation = \"sigmoid\"\n\n[train]\n{train}\nlr = 0.1\n"
                    f"steps = 1\n", encoding="utf-8")
    return str(path)


def transposed(rows):
    return [list(column) for column in zip(*rows)]


def error(capsys, path: str) -> str:
    assert main(["train", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    return captured.err.removeprefix(f"error: {path}: ").rstrip("\n")


def test_five_samples_for_a_batch_of_one_say_to_set_batch_m(tmp_path, capsys):
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"', f"x = {ROWS}\ny = {TARGETS}")
    assert error(capsys, path) == ("[train].x: the input X holds 5 samples, but the network's batch is 1 (expected "
                                   "1×4, got 5×4) (hint: set batch = \"m\" in [network] to train on any number of "
                                   "samples)")


def test_with_batch_m_five_samples_train(tmp_path, capsys):
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"', f"x = {ROWS}\ny = {TARGETS}")
    assert main(["train", path, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["steps"]) == 2


@pytest.mark.parametrize("layout, x, y, shown, other", [
    ("rows", transposed(ROWS), TARGETS, "expected m×4, got 4×5", "columns"),
    ("columns", ROWS, transposed(TARGETS), "expected 4×m, got 5×4", "rows"),
])
def test_transposed_data_are_said_to_look_transposed(tmp_path, capsys, layout, x, y, shown, other):
    path = spec(tmp_path, f'[network]\ninputs = 4\nlayout = "{layout}"\nbatch = "m"', f"x = {x}\ny = {y}")
    sample = "row" if layout == "rows" else "column"
    assert error(capsys, path) == (f"[train].x: the input X looks transposed ({shown}): the {layout} layout takes a "
                                   f"sample per {sample} (hint: transpose it, or set layout = \"{other}\" in "
                                   f"[network])")


def test_transposed_targets_are_named(tmp_path, capsys):
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"', f"x = {ROWS}\ny = {transposed(TARGETS)}")
    assert error(capsys, path) == ("[train].y: the targets Y look transposed (expected m×2, got 2×5): the rows "
                                   "layout takes a sample per row (hint: transpose it, or set layout = \"columns\" "
                                   "in [network])")


def test_a_wrong_width_names_the_input_the_expected_and_the_given_shape(tmp_path, capsys):
    narrow = [row[:3] for row in ROWS]
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"', f"x = {narrow}\ny = {TARGETS}")
    assert error(capsys, path) == ("[train].x: the input X has 3 inputs per sample, but the network has 4 "
                                   "(expected m×4, got 5×3; a sample per row)")
    wide = [row + [0] for row in TARGETS]
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"', f"x = {ROWS}\ny = {wide}")
    assert error(capsys, path) == ("[train].y: the targets Y have 3 outputs per sample, but the network has 2 "
                                   "(expected m×2, got 5×3; a sample per row)")


def test_targets_for_fewer_samples_than_the_inputs(tmp_path, capsys):
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"', f"x = {ROWS}\ny = {TARGETS[:4]}")
    assert error(capsys, path) == ("[train].y: the targets Y hold 4 samples, but X holds 5 (expected m×2, got 4×2; "
                                   "a sample per row)")


def test_a_symbolic_width_is_named_with_its_value(tmp_path, capsys):
    path = spec(tmp_path, '[network]\ninputs = "n_0"\nlayout = "rows"\nbatch = "m"',
                f"x = {ROWS}\ny = {TARGETS}\nvalidation = {{ x = {[r[:3] for r in ROWS]}, y = {TARGETS} }}")
    assert error(capsys, path) == ("[train].validation.x: the input X has 3 inputs per sample, but the network has "
                                   "n_0 = 4 (expected m×n_0, got 5×3; a sample per row)")


def test_validation_data_may_hold_another_number_of_samples_but_not_look_transposed(tmp_path, capsys):
    fine = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"',
                f"x = {ROWS}\ny = {TARGETS}\nvalidation = {{ x = {ROWS[:2]}, y = {TARGETS[:2]} }}")
    assert main(["train", fine]) == 0
    capsys.readouterr()
    path = spec(tmp_path, '[network]\ninputs = 4\nlayout = "rows"\nbatch = "m"',
                f"x = {ROWS}\ny = {TARGETS}\nvalidation = {{ x = {transposed(ROWS[:3])}, y = {TARGETS[:3]} }}")
    assert error(capsys, path).startswith("[train].validation.x: the input X looks transposed (expected m×4, got 4×3)")


def test_a_model_gets_hints_for_its_inputs_table(tmp_path, capsys):
    model = ('[model]\ninputs = { X = [2, 1], Y = [1, 1] }\nparameters = { W1 = [1, 2] }\n'
             'forward = ["a1 = W1 @ X", "C = sum((a1 - Y)^2)"]\n')
    path = tmp_path / "model.toml"
    path.write_text(model + "[train]\nx = [[1, 2, 3], [4, 5, 6]]\ny = [[1, 2, 3]]\nlr = 0.1\nsteps = 1\n")
    assert error(capsys, str(path)) == ("[train].x: the input X holds 3 samples, but the network's batch is 1 "
                                        "(expected 2×1, got 2×3) (hint: write the samples' size as a symbol, such as "
                                        "\"m\", in [model].inputs)")


def test_a_one_dimensional_list_for_a_one_input_network_is_one_value_per_sample(tmp_path, capsys):
    path = tmp_path / "seed.toml"
    path.write_text('[network]\ninputs = 1\n[[layers]]\nunits = 1\nbias = false\n'
                    '[train]\nx = [1, 2, 3]\ny = [2, 4, 6]\nlr = 0.01\nsteps = 1\n')
    assert error(capsys, str(path)) == ("[train].x: the input X holds 3 samples, but the network's batch is 1 "
                                        "(expected 1×1, got 1×3) (hint: set batch = \"m\" in [network] to train on "
                                        "any number of samples)")
