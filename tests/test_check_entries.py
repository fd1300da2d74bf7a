"""check of one entry: ``symbackprop check SPEC 'W2[0,0]' FORMULA`` with a scalar formula over entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symbackprop import Dense, FormulaError, FormulaSyntaxError, Network, check
from symbackprop.cli import main
from symbackprop.language.syntax import Entry, Name, parse, unparse

ROOT = Path(__file__).resolve().parent.parent
SEED2 = str(ROOT / "examples" / "seed_two_layer.toml")
WORKED = str(ROOT / "examples" / "worked_2_2_2.toml")
# ∂E/∂w5 of the classic 2-2-2 example: (out_o1 − target_o1) · out_o1 (1 − out_o1) · out_h1
W5 = "(a2[0] - y[0]) * a2[0] * (1 - a2[0]) * a1[0]"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text, tree", [
    ("W2[0, 1]", Entry(Name("W2"), (0, 1))),
    ("a1[0]", Entry(Name("a1"), (0,))),
    ("a^{(1)}[2]", Entry(Name("a", 1), (2,))),
    ("W2.T[1,0]", Entry(parse("W2.T"), (1, 0))),
])
def test_an_index_touching_a_name_is_an_entry_and_prints_back(text, tree):
    assert parse(text) == tree
    assert parse(unparse(tree)) == tree


def test_brackets_that_are_not_whole_number_indices_stay_products():
    assert parse("a [0]") == parse("a 0")
    assert parse("a[b + c]") == parse("a (b + c)")


@pytest.mark.parametrize("text, message", [
    ("W2[i, j]", "whole numbers counted from 0"),
    ("W2[0, j]", "whole numbers counted from 0"),
    ("W2[0, 1, 2]", "at most two indices"),
    ("W2[100000]", "at most 9999"),
])
def test_bad_indices_are_syntax_errors_with_a_position(text, message):
    with pytest.raises(FormulaSyntaxError, match=message) as caught:
        parse(text)
    assert caught.value.position is not None


def test_the_seeds_entry_formula_is_right_and_the_slip_is_named(capsys):
    code, out, _ = run(capsys, "check", SEED2, "W2[0,0]", "a1[0] * 2 * (a2[0] - y[0])")
    assert code == 0 and out.startswith("right: a1[0] * 2 * (a2[0] - y[0]) is ∂C/∂W⁽²⁾[0, 0]\n")
    code, out, _ = run(capsys, "check", SEED2, "W2[0,0]", "a2[0] * 2 * (a2[0] - y[0])")
    assert code == 1
    assert "    your formula gives 0.00237437, ∂C/∂W⁽²⁾[0, 0] is 0.0226345\n" in out
    assert out.rstrip().endswith("hint: an off-by-one layer index: a1 in place of a2 makes it right: "
                                 "a1[0] * 2 * (a2[0] - y[0])")


def test_one_index_names_an_entry_of_a_vector_and_a_1x1_formula_is_its_number(capsys):
    assert run(capsys, "check", SEED2, "W2[0]", "a1 * 2 * (a2 - y)")[0] == 0
    assert run(capsys, "check", SEED2, "W1[0,0]", "a0[0] * W2[0, 0] * 2 * (a1[0] * W2[0] - y[0])")[0] == 0


def test_the_worked_examples_w5_entry(capsys):
    code, out, _ = run(capsys, "check", WORKED, "W2[0,0]", W5)
    assert code == 0 and "checked: equal at 5 random points" in out


def test_another_entry_is_named_swapped_or_counted_from_one(capsys):
    code, out, _ = run(capsys, "check", WORKED, "W2[0,1]", "(a2[1] - y[1]) * a2[1] * (1 - a2[1]) * a1[0]")
    assert code == 1
    assert out.rstrip().endswith("hint: another entry: your formula is ∂C/∂W⁽²⁾[1, 0], not [0, 1]: "
                                 "the row and the column swapped")
    code, out, _ = run(capsys, "check", WORKED, "W2[1,1]", W5)
    assert code == 1 and out.rstrip().endswith("your formula is ∂C/∂W⁽²⁾[0, 0], not [1, 1]: indices count from 0")


def test_a_matrix_formula_for_an_entry_is_wrong_with_both_shapes():
    result = check(Network(2, [Dense(3, "tanh")]), "W1[0, 1]", "delta1 @ a0.T")
    assert not result.ok
    assert result.message.splitlines()[0] == "wrong: delta1 @ a0.T is 3×2, ∂C/∂W⁽¹⁾[0, 1] is a number"


def test_entries_of_symbolic_sizes_are_checked_at_sizes_that_hold_them():
    net = Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2")])
    result = check(net, "W2[1, 3]", "delta2[1] * a1[3]")
    assert result.ok and "sizes from 4 to 7" in result.message
    assert check(net, "delta1[2]", "(W2.T @ delta2)[2] * a1[2] * (1 - a1[2])").ok
    assert not check(net, "delta1[2]", "(W2.T @ delta2)[2]").ok


def test_an_update_of_one_entry():
    seed = Network(1, [Dense(1, bias=False)])
    result = check(seed, "W1[0, 0]", "W1[0, 0] - R * 2 * x[0] * (W1[0, 0] * x[0] - y[0])")
    assert result.ok and result.message.startswith("right: W1[0, 0] - R * 2 * x[0] * (W1[0, 0] * x[0] - y[0]) is "
                                                   "entry [0, 0] of the update W⁽¹⁾ − R ∂C/∂W⁽¹⁾")


@pytest.mark.parametrize("param, formula, message", [
    ("W2[1,0]", "a1[0]", "W2[1,0]: the parameter is 1×1, its rows are numbered 0 to 0 (hint: indices count from 0"),
    ("W2[0,0]", "a1[3]", "a1 is 1×1: its rows are numbered 0 to 0, so 3 is out of range (position 0)"),
    ("W2[0,0]", "W2[0][0]", "W2[0] is a scalar, which has no entries"),
    ("W2[i,0]", "a1[0]", "unknown parameter 'W2[i,0]'"),
])
def test_bad_entries_are_one_line_errors_with_exit_2(capsys, param, formula, message):
    code, out, err = run(capsys, "check", SEED2, param, formula)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err


def test_a_symbolic_size_takes_a_bounded_index():
    net = Network("n_0", [Dense("n_1", "sigmoid")])
    with pytest.raises(FormulaError, match="below 8"):
        check(net, "W1[0, 0]", "delta1[20] * a0[0]")
    with pytest.raises(FormulaError, match="below 8"):
        check(net, "W1[20, 0]", "delta1[0] * a0[0]")


def test_entry_json_gives_the_entry_as_the_counterexamples_index(capsys):
    code, out, _ = run(capsys, "check", WORKED, "W2[0,1]", "a1[1]", "--format", "json")
    document = json.loads(out)
    assert code == 1 and document["counterexample"]["index"] == [0, 1] and document["param"] == "W2[0,1]"
    assert document["derived"]["text"] == "(δ⁽²⁾ a⁽¹⁾ᵀ)[0, 1]"


def test_a_scalar_custom_activation_refuses_entries():
    with pytest.raises(Exception, match="no entries"):
        Network(1, [Dense(1, "x[0]")])


@pytest.mark.parametrize("param, formula", [
    ("W2[0,1]", "(δ⁽²⁾ a⁽¹⁾ᵀ)[0, 1]"),  # the derived entry as the JSON's text prints it
    ("W⁽²⁾[0, 1]", "δ⁽²⁾[0] a⁽¹⁾[1]"),
    ("W^{(2)}[0, 1]", r"\delta^{(2)}[0] a^{(1)}[1]"),
])
def test_entries_in_the_printed_and_latex_notations(capsys, param, formula):
    assert run(capsys, "check", WORKED, param, formula)[0] == 0
