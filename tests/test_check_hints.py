"""check's hints beyond one slip: two slips together, and a formula written for the other layout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from symbackprop import Dense, Network, check, derive
from symbackprop.checking import verdicts
from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = derive(Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], batch="m"))
ROWS = derive(Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], batch="m", layout="rows"))
DEEP = derive(Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "tanh"), Dense("n_3", "sigmoid")], batch="m"))


def hint_formula(hint: str) -> str:
    return hint.rsplit(": ", 1)[1].removesuffix(" is right")


@pytest.mark.parametrize("derivation, param, formula, hint", [
    (COLUMNS, "W1", "(W2.T @ delta2) @ a0",
     "two slips: a missing transpose (a0.T in place of a0), and a missing σ' factor "
     "(W2.T @ delta2 .* sigmoid'(z1) in place of W2.T @ delta2): W2.T @ delta2 .* sigmoid'(z1) @ a0.T is right"),
    (COLUMNS, "delta2", "(a2 - y) .* a2 .* (1 + a2)",
     "two slips: a missing factor 2, and a sign (1 - a2 in place of 1 + a2): 2 * ((a2 - y) .* a2 .* (1 - a2)) is right"),
    (COLUMNS, "W2", "-delta2 @ a1",
     "two slips: a missing transpose (a1.T in place of a1), and a sign (delta2 in place of -delta2): "
     "delta2 @ a1.T is right"),
    (COLUMNS, "W1", "W1 - R * delta1 @ a0 / 2",
     "two slips: a missing transpose (a0.T in place of a0), and an extra factor 1/2 "
     "(R * delta1 @ a0.T in place of R * delta1 @ a0.T / 2): W1 - R * delta1 @ a0.T is right"),
    (DEEP, "delta1", "W2 @ delta2 * a1 * (1 + a1)",
     "two slips: a missing transpose (W2.T in place of W2), and a sign (1 - a1 in place of 1 + a1): "
     "W2.T @ delta2 * a1 * (1 - a1) is right"),
])
def test_two_slips_are_named_both_and_the_repaired_formula_is_right(derivation, param, formula, hint):
    result = check(derivation, param, formula)
    assert not result.ok and result.hint == hint
    assert result.message.endswith(f"  hint: {hint}")
    assert check(derivation, param, hint_formula(hint)).ok


def test_a_missing_or_extra_average_over_the_batch():
    net = Network(3, [Dense(2, "tanh"), Dense(1)], cost="mean_squared_error", batch="m")
    assert check(net, "W2", "2 * (a2 - y) @ a1.T").hint == ("a missing factor 1/m: 2 * (a2 - y) @ a1.T / m is right")
    assert check(net, "W2", "2 * (a2 - y) @ a1.T / m / m").hint == "an extra factor 1/m: 2 * (a2 - y) @ a1.T / m is right"
    assert check(Network(3, [Dense(1)], batch="m"), "W1", "2 * (a1 - y) @ a0.T / m").hint.startswith(
        "an extra factor 1/m")


def test_one_slip_is_still_preferred_to_two():
    assert check(COLUMNS, "W1", "delta1 @ a0").hint.startswith("a missing transpose: a0.T in place of a0")


@pytest.mark.parametrize("derivation, param, formula, fixed", [
    (ROWS, "W1", "delta1 @ X.T", "X.T @ delta1"),
    (ROWS, "b1", "delta1 @ ones(m, 1)", "ones(1, m) @ delta1"),
    (ROWS, "b2", "sum(delta2, 2)", "sum(delta2, 1)"),
    (ROWS, "delta1", "(W2.T @ delta2) .* sigmoid'(z1)", "delta2 @ W2.T .* sigmoid'(z1)"),
    (COLUMNS, "W1", "X.T @ delta1", "delta1 @ X.T"),
    (COLUMNS, "W2", "W2 - eta * a1.T @ delta2", "W2 - delta2 @ (eta * a1.T)"),
])
def test_a_formula_for_the_other_layout_is_recognised_and_given_in_this_one(derivation, param, formula, fixed):
    result = check(derivation, param, formula)
    layout, other = ("rows", "columns") if derivation is ROWS else ("columns", "rows")
    sample, other_sample = ("row", "column") if derivation is ROWS else ("column", "row")
    assert result.hint == (f"a formula for the {other} layout (a sample per {other_sample}); this network is in the "
                           f"{layout} layout (a sample per {sample}), where it is {fixed}")
    assert check(derivation, param, fixed).ok


def test_the_other_layout_combines_with_one_slip():
    hint = check(ROWS, "W1", "(W2.T @ delta2) @ X.T").hint
    assert hint == ("two slips: a formula for the columns layout (this network's is rows), and a missing σ' factor "
                    "(delta2 @ W2.T .* sigmoid'(z1) in place of delta2 @ W2.T): "
                    "X.T @ (delta2 @ W2.T .* sigmoid'(z1)) is right")


LONG = "(W2.T @ (W3.T @ delta3 .* dtanh(z2)) .* a1 .* (1 - a1) + 0 * a1) @ a0 * 3"


def test_pairs_are_bounded_refused_cleanly_and_fast():
    start = time.perf_counter()
    result = check(DEEP, "W1", LONG)
    elapsed = time.perf_counter() - start
    assert not result.ok and result.hint is None
    assert result.message.endswith(f"the formula has too many parts to try pairs of them (more than "
                                   f"{verdicts.MAX_PAIRS}): check its parts one at a time")
    assert elapsed < 1.5  # about 0.5 s on a shared 2-core machine


def test_when_no_pair_explains_it_says_so(monkeypatch):
    monkeypatch.setattr(verdicts, "MAX_PAIRS", 10**6)
    assert check(COLUMNS, "W1", "a0 @ a0.T").message.endswith(
        "no usual slip (a transpose, a σ' factor, a factor 2, 1/2 or 1/m, a layer index, a sign, * for @), alone or "
        "two together, explains it")


def test_the_command_line_names_both_slips(capsys):
    spec = ROOT / "examples" / "seed_two_layer.toml"
    assert main(["check", str(spec), "W2", "a2 * (a2 - y)"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("hint: two slips: a missing factor 2, and an off-by-one layer index (a1 in place of a2): "
                                 "2 * (a1 * (a2 - y)) is right")


def test_the_command_line_gives_the_rows_form_of_a_columns_formula(capsys):
    spec = ROOT / "examples" / "softmax_classifier.toml"  # rows layout
    assert main(["check", str(spec), "W1", "delta1 @ X.T"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("hint: a formula for the columns layout (a sample per column); this network is in "
                                 "the rows layout (a sample per row), where it is X.T @ delta1")
    assert main(["check", str(spec), "W1", "X.T @ delta1"]) == 0
