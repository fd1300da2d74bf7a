r"""symbackprop.check: hand-derived formulas judged right or wrong, with a counterexample and a hint."""

from __future__ import annotations

import re
import shlex
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import sympy

from symbackprop import (
    ACTIVATIONS,
    CheckResult,
    Dense,
    Derivation,
    FormulaError,
    FormulaSyntaxError,
    Network,
    ShapeError,
    SymbackpropError,
    UnknownNameError,
    check,
    derive,
    evaluate,
    load_spec,
    random_values,
)
from symbackprop.checking import verdicts as checking
from symbackprop.checking.verdicts import RTOL, TRIALS
from symbackprop.cli import main
from symbackprop.calculus.expressions import Broadcast, Elementwise, Softmax, SumEntries, hadamard
from symbackprop.language.syntax import parse
from symbackprop.language.matrix import (
    MAX_EXPONENT,
    MatrixBuilder,
    Vocabulary,
    canonical_name,
    parse_matrix,
)

ROOT = Path(__file__).resolve().parent.parent
SEED_SPEC = ROOT / "examples" / "seed.toml"

NETWORKS = {
    # the seed question's two-layer scalar extension: a⁽²⁾ = W⁽²⁾ W⁽¹⁾ a⁽⁰⁾, C = (a⁽²⁾ − y)²
    "seed2": Network(1, [Dense(1, bias=False), Dense(1, bias=False)]),
    "columns": Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], batch="m"),
    "rows": Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], layout="rows", batch="m"),
    "bce": Network(3, [Dense(4, "tanh"), Dense(1, "sigmoid")], cost="binary_cross_entropy", batch="m"),
    "half": Network(3, [Dense(2, "tanh")], cost="half_squared_error"),
    "deep": Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid"), Dense("n_3")], batch="m"),
    "softmax": Network(3, [Dense(4, "relu"), Dense(3, "softmax")], cost="softmax_cross_entropy", batch="m"),
    "decay": Network(3, [Dense(2, "tanh")], weight_decay="lam"),
}


@cache
def derivation(name: str) -> Derivation:
    return derive(NETWORKS[name])


def judge(network: str, param: str, formula: str) -> CheckResult:
    return check(derivation(network), param, formula)


# ---------------------------------------------------------------------------
# The seed question


def test_seed_final_update_gradient_for_w1_is_right() -> None:
    result = judge("seed2", "W1", "a0 * W2 * 2 * (a1 * W2 - y)")
    assert result.ok and bool(result)
    assert result.counterexample is None and result.hint is None
    assert result.message.startswith("right: a0 * W2 * 2 * (a1 * W2 - y) is ∂C/∂W⁽¹⁾")


def test_seed_slip_for_w2_is_rejected_with_counterexample_and_the_a1_hint() -> None:
    result = judge("seed2", "W2", "a2 * 2 * (a2 - y)")
    assert not result.ok and not bool(result)
    assert result.hint == "an off-by-one layer index: a1 in place of a2 makes it right: a1 * 2 * (a2 - y)"
    example = result.counterexample
    assert example is not None and example.sizes == {} and example.index == (0, 0)
    assert set(example.values) == {"X", "Y", "W1", "W2"}
    assert example.expected == pytest.approx(evaluate(derivation("seed2").gradients["W2"], example.values)[0, 0])
    assert example.got == pytest.approx(evaluate(result.formula, example.values)[0, 0])
    assert abs(example.got - example.expected) > 1e-3 * abs(example.expected)
    assert f"your formula gives {example.got:.6g}, ∂C/∂W⁽²⁾ is {example.expected:.6g}" in result.message
    assert "a1 in place of a2" in result.message


def test_seed_update_rules_in_the_questions_own_latex_notation_are_right() -> None:
    one_weight = check(load_spec(SEED_SPEC), "W^{(L)}", r"W^{(L)} - R a^{(L-1)} 2(a^{(L-1)} W^{(L)} - y)")
    two_layers = judge("seed2", "W^{(L-1)}", r"W^{(L-1)} - R a^{(L-2)} W^{(L)} 2(a^{(L-1)} W^{(L)} - y)")
    assert one_weight.ok and two_layers.ok
    assert "the update W⁽¹⁾ − R ∂C/∂W⁽¹⁾ = W⁽¹⁾ − R δ⁽¹⁾ Xᵀ" in two_layers.message


def test_derived_formula_is_shown_with_the_deltas_it_uses() -> None:
    lines = judge("seed2", "W1", "a0 * W2 * 2 * (a1 * W2 - y)").message.splitlines()
    assert lines[1:4] == [
        "  derived: ∂C/∂W⁽¹⁾ = δ⁽¹⁾ Xᵀ",
        "    where δ⁽¹⁾ = W⁽²⁾ᵀ δ⁽²⁾",
        "          δ⁽²⁾ = 2 (a⁽²⁾ − Y)",
    ]


# ---------------------------------------------------------------------------
# Textbook formulas: the four backpropagation equations, both layouts, three notations

TEXTBOOK = [
    # BP1  δ⁽ᴸ⁾ = ∇ₐC ⊙ σ'(z⁽ᴸ⁾)
    ("columns", "delta2", "2 * (a2 - y) .* sigmoid'(z2)"),
    ("columns", "delta2", r"2 (a^{(L)} - y) \odot \sigma'(z^{(L)})"),
    ("columns", "delta2", "2 * (a2 - y) .* a2 .* (1 - a2)"),
    ("rows", "delta2", "2 * (a2 - y) ⊙ dsigmoid(z2)"),
    # BP2  δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ σ'(z⁽ˡ⁾), rows: (δ⁽ˡ⁺¹⁾ W⁽ˡ⁺¹⁾ᵀ) ⊙ σ'(z⁽ˡ⁾)
    ("columns", "delta1", "(W2.T @ delta2) .* sigmoid'(z1)"),
    ("columns", "delta1", r"(W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})"),
    ("columns", "delta1", "(W2' @ delta2) .* a1 .* (1 - a1)"),
    ("rows", "delta1", "(delta2 @ W2.T) .* sigmoid'(z1)"),
    ("rows", "delta1", r"(\delta^{(2)} W^{(2)\top}) \odot \sigma'(z^{(1)})"),
    # BP3  ∂C/∂b⁽ˡ⁾ = δ⁽ˡ⁾ 1, rows: 1ᵀ δ⁽ˡ⁾
    ("columns", "b1", "delta1 @ ones(m, 1)"),
    ("columns", "b2", "sum(delta2, 2)"),
    ("rows", "b1", "ones(1, m) @ delta1"),
    ("rows", "b2", "sum(delta2, 1)"),
    # BP4  ∂C/∂W⁽ˡ⁾ = δ⁽ˡ⁾ a⁽ˡ⁻¹⁾ᵀ, rows: a⁽ˡ⁻¹⁾ᵀ δ⁽ˡ⁾
    ("columns", "W1", "delta1 @ a0.T"),
    ("columns", "W2", r"\delta^{(2)} a^{(1)\top}"),
    ("columns", "W1", "((W2.T @ delta2) .* sigmoid'(z1)) @ x.T"),
    ("rows", "W1", "a0.T @ delta1"),
    ("rows", "W2", r"a^{(1)\top} \delta^{(2)}"),
    ("rows", "W1", "x' @ ((delta2 @ W2') .* sigmoid'(z1))"),
    # output deltas that cancel σ', weight decay, updates
    ("bce", "delta2", "a2 - y"),
    ("softmax", "delta2", "a^{(L)} - y"),
    ("softmax", "W1", "((W2.T @ (a2 - y)) .* relu'(z1)) @ x.T"),
    ("decay", "W1", "delta1 @ x.T + 2 lam W1"),
    ("decay", "W1", "W1 - eta * (delta1 @ x.T + 2 lam W1)"),
    ("columns", "W2", "W2 - α delta2 @ a1.T"),
]


@pytest.mark.parametrize("network, param, formula", TEXTBOOK)
def test_textbook_formula_is_right(network: str, param: str, formula: str) -> None:
    result = judge(network, param, formula)
    assert result.ok, result.message


def test_formula_with_the_derived_structure_is_proved_symbolically() -> None:
    assert judge("columns", "delta1", "(W2.T @ delta2) .* sigmoid'(z1)").message.endswith(
        "checked: symbolically identical")


def test_formula_equal_only_in_value_is_checked_at_random_points_and_sizes() -> None:
    message = judge("columns", "delta1", "(W2.T @ delta2) .* a1 .* (1 - a1)").message
    assert message.endswith(f"checked: equal at {TRIALS} random points with sizes from 2 to 5 "
                            f"(relative tolerance {RTOL:g})")


def test_formula_that_would_expand_hugely_is_judged_numerically_within_a_second() -> None:
    # SymPy's cancel and factor take seconds on this; the symbolic step is skipped
    formula = "(a1 + z1 + delta1 + W2.T @ a2 + W2.T @ y + W2.T @ z2) .^ 8 .* sigmoid'(z1)"
    start = time.perf_counter()
    result = judge("columns", "delta1", formula)
    assert time.perf_counter() - start < 1.0
    assert not result.ok and result.counterexample is not None
    same = "((a1 + 1) .^ 8 - (a1 + 1) .^ 8 + W2.T @ delta2) .* sigmoid'(z1)"
    assert judge("columns", "delta1", same).message.endswith("with sizes from 2 to 5 (relative tolerance 1e-09)")


def test_float64_rounding_is_tolerated_but_a_relative_error_of_1e_minus_6_is_not() -> None:
    assert judge("columns", "delta2", "2 * (a2 - y) .* a2 .* (1 - a2)").ok
    assert not judge("columns", "delta2", "1.000001 * 2 * (a2 - y) .* sigmoid'(z2)").ok


# ---------------------------------------------------------------------------
# The usual slips, each caught with its hint

SLIPS = [
    ("columns", "W1", "delta1 @ a0", "a missing transpose: a0.T in place of a0 makes it right: delta1 @ a0.T"),
    ("columns", "W2", "a1 @ delta2.T", "a missing transpose: (a1 @ delta2.T).T is right"),
    ("columns", "W2", "delta2.T @ a1.T",
     "an extra transpose: delta2 in place of delta2.T makes it right: delta2 @ a1.T"),
    ("columns", "W1", "(W2.T @ delta2) @ a0.T",
     "a missing σ' factor: W2.T @ delta2 .* sigmoid'(z1) in place of W2.T @ delta2 makes it right: "
     "W2.T @ delta2 .* sigmoid'(z1) @ a0.T"),
    ("columns", "delta1", r"W^{(2)\top} \delta^{(2)}",
     "a missing σ' factor: (W^{(2)}.T delta^{(2)}) .* sigmoid'(z^{(1)}) is right"),
    ("bce", "delta2", "(a2 - y) .* sigmoid'(z2)", "an extra σ' factor: a2 - y is right"),
    ("columns", "delta2", "(a2 - y) .* sigmoid'(z2)", "a missing factor 2: 2 * ((a2 - y) .* sigmoid'(z2)) is right"),
    ("half", "W1", "2 * (a1 - y) .* tanh'(z1) @ x.T",
     "an extra factor 2: a1 - y in place of 2 * (a1 - y) makes it right: (a1 - y) .* tanh'(z1) @ x.T"),
    ("half", "W1", "(2 a1 - 2 y) .* tanh'(z1) @ x.T", "a missing factor 1/2: (2 a1 - 2 y) .* tanh'(z1) @ x.T / 2 is right"),
    ("decay", "W1", "delta1 @ x.T + lam W1",
     "a missing factor 2: 2 * (lam W1) in place of lam W1 makes it right: delta1 @ x.T + 2 * (lam W1)"),
    ("seed2", "W2", "a2 * 2 * (a2 - y)", "an off-by-one layer index: a1 in place of a2 makes it right: a1 * 2 * (a2 - y)"),
    ("columns", "delta1", "(W1.T @ delta2) .* sigmoid'(z1)",
     "an off-by-one layer index: W2 in place of W1 makes it right: W2.T @ delta2 .* sigmoid'(z1)"),
    ("deep", "delta2", "(W2.T @ delta2) .* sigmoid'(z1)",
     "every layer index one higher: W3.T @ delta3 .* sigmoid'(z2) is right"),
    ("columns", "delta2", "2 * (y - a2) .* sigmoid'(z2)", "a sign: -(2 * (y - a2) .* sigmoid'(z2)) is right"),
    ("columns", "W2", "W2 + eta * delta2 @ a1.T",
     "a sign: W2 - eta * delta2 @ a1.T is right"),
    ("decay", "W1", "W1 - eta * (delta1 @ x.T - 2 lam W1)",
     "a sign: delta1 @ x.T + 2 lam W1 in place of delta1 @ x.T - 2 lam W1 makes it right: "
     "W1 - eta * (delta1 @ x.T + 2 lam W1)"),
    ("columns", "delta1", "W2.T * delta2 .* sigmoid'(z1)",
     "a product of the wrong kind: W2.T @ delta2 in place of W2.T * delta2 makes it right: "
     "W2.T @ delta2 .* sigmoid'(z1)"),
]


@pytest.mark.parametrize("network, param, formula, hint", SLIPS)
def test_usual_slip_is_wrong_and_hinted(network: str, param: str, formula: str, hint: str) -> None:
    result = judge(network, param, formula)
    assert not result.ok
    assert result.hint == hint
    assert result.message.endswith(f"  hint: {hint}")
    fixed = hint.rsplit(": ", 1)[1].removesuffix(" is right")
    assert judge(network, param, fixed).ok  # the hint's formula really is right


def test_wrong_formula_no_slip_nor_pair_of_slips_explains_says_so() -> None:
    result = judge("columns", "W1", "a0 @ a0.T")
    assert not result.ok and result.hint is None
    assert result.message.endswith("alone or two together, explains it")


def test_hint_search_stops_after_max_candidates(monkeypatch) -> None:
    formula = "2 * (y - a2) .* sigmoid'(z2)"  # the sign comes late in the order of slips
    assert judge("columns", "delta2", formula).hint is not None
    monkeypatch.setattr(checking, "MAX_CANDIDATES", 3)
    assert judge("columns", "delta2", formula).hint is None


# ---------------------------------------------------------------------------
# Shapes first


def test_formula_of_the_transposed_shape_names_both_shapes_and_suggests_a_transpose() -> None:
    result = judge("columns", "W2", "a1 @ delta2.T")
    assert result.message.splitlines()[0] == "wrong: a1 @ delta2.T is n_1×n_2, ∂C/∂W⁽²⁾ is n_2×n_1 — a missing transpose?"
    assert result.counterexample is None and result.formula is not None


def test_formula_of_another_shape_names_both_shapes() -> None:
    first = judge("columns", "b1", "delta1").message.splitlines()[0]
    assert first == "wrong: delta1 is n_1×m, ∂C/∂b⁽¹⁾ is n_1×1"


def test_scalar_formula_for_a_matrix_parameter_is_wrong() -> None:
    assert judge("columns", "W1", "sum(delta1)").message.startswith("wrong: sum(delta1) is a scalar, ∂C/∂W⁽¹⁾ is n_1×n_0")


def test_scalar_formula_for_a_1x1_parameter_is_compared_as_1x1() -> None:
    assert judge("seed2", "W1", "sum(a0 * W2 * 2 * (a1 * W2 - y))").ok


def test_formula_whose_shapes_do_not_fit_is_wrong_and_names_operation_and_shapes() -> None:
    result = judge("columns", "W1", "delta1 @ a0")
    assert result.formula is None and result.counterexample is None
    assert result.message.splitlines()[0] == (
        "wrong: the shapes in delta1 @ a0 do not fit: '@' needs as many columns on the left as rows on the right, "
        "but delta1 is n_1×m and a0 is n_0×m")


# ---------------------------------------------------------------------------
# Update rules, results, determinism


def test_update_rule_with_the_wrong_gradient_is_wrong() -> None:
    result = judge("seed2", "W1", "W1 - R * a0 * 2 * (a2 - y)")
    assert not result.ok and result.counterexample is not None
    assert "R" in result.counterexample.values


def test_learning_rate_in_a_delta_formula_is_bad_input() -> None:
    with pytest.raises(FormulaError, match="only a parameter has an update rule"):
        judge("columns", "delta1", "eta * delta1")


def test_two_learning_rates_are_bad_input() -> None:
    with pytest.raises(FormulaError, match="two learning rates, R and eta"):
        judge("columns", "W1", "W1 - R * delta1 @ x.T - eta * W1")


def test_result_carries_derived_and_parsed_expressions() -> None:
    d = derivation("columns")
    result = judge("columns", "W1", "delta1 @ a0.T")
    assert result.derived == d.gradients["W1"]
    assert result.formula == d.deltas["delta1"] * d.symbols["X"].T


def test_check_accepts_a_network_and_is_deterministic() -> None:
    first = check(NETWORKS["columns"], "W1", "delta1 @ a0")
    second = check(NETWORKS["columns"], "W1", "delta1 @ a0")
    assert first.message == second.message
    third, fourth = judge("columns", "delta2", "(a2 - y) .* sigmoid'(z2)"), judge("columns", "delta2", "(a2 - y) .* sigmoid'(z2)")
    assert third.message == fourth.message and third.counterexample.values["X"].tolist() == \
        fourth.counterexample.values["X"].tolist()


def test_counterexample_lists_symbolic_sizes_and_the_entry_that_differs_most() -> None:
    result = judge("columns", "delta2", "(a2 - y) .* sigmoid'(z2)")
    example = result.counterexample
    assert example is not None and example.sizes == {"n_0": 2, "n_1": 2, "n_2": 2, "m": 2}
    error = np.abs(evaluate(result.formula, example.values | example.sizes)
                   - evaluate(result.derived, example.values | example.sizes))
    assert np.unravel_index(np.argmax(error), error.shape) == example.index
    assert "    sizes: n_0 = 2, n_1 = 2, n_2 = 2, m = 2" in result.message


def test_trials_must_be_a_positive_integer() -> None:
    with pytest.raises(SymbackpropError, match="trials"):
        check(derivation("columns"), "W1", "delta1 @ a0.T", trials=0)


# ---------------------------------------------------------------------------
# Bad input: clear errors


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        judge("columns", "W1", "delta1 @ q.T")
    assert str(info.value).startswith("unknown name 'q'; known: X, x, a0, Y, y, W1, b1, W2, b2, z1, a1, z2, a2, "
                                      "delta1, delta2, n_0, n_1, n_2, m, R (a learning rate)")


def test_unknown_function_lists_the_known_functions() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown function 'sigmod'; known: .*sigmoid.*ones"):
        judge("columns", "delta2", "sigmod'(z2)")


@pytest.mark.parametrize("param", ["W3", "b", "q1", "W1 + 1", ""])
def test_a_parameter_the_network_does_not_have_lists_the_known_ones(param: str) -> None:
    with pytest.raises(UnknownNameError, match="known: W1, b1, W2, b2, delta1, delta2"):
        judge("columns", param, "delta1")


def test_empty_formula_is_a_syntax_error() -> None:
    with pytest.raises(FormulaSyntaxError, match="empty formula"):
        judge("columns", "W1", "  ")


def test_syntax_error_shows_the_position_with_a_caret() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        judge("columns", "W1", "delta1 @ (a0.T")
    assert str(info.value).splitlines()[1:] == ["  delta1 @ (a0.T", "                ^"]


def test_formula_that_is_not_text_is_refused() -> None:
    with pytest.raises(FormulaError, match="must be text"):
        judge("columns", "W1", 3)  # type: ignore[arg-type]


def test_check_refuses_what_is_not_a_network() -> None:
    with pytest.raises(SymbackpropError, match="Network, a Model or a Derivation"):
        check("net.toml", "W1", "delta1")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The command line


def test_cli_check_right_prints_the_verdict_and_exits_0(capsys) -> None:
    assert main(["check", str(SEED_SPEC), "W1", "2 * x * (W1 * x - y)"]) == 0
    assert capsys.readouterr().out.startswith("right: 2 * x * (W1 * x - y) is ∂C/∂W⁽¹⁾\n")


def test_cli_check_wrong_prints_counterexample_and_hint_and_exits_1(capsys) -> None:
    assert main(["check", str(SEED_SPEC), "W1", "2 * x * (W1 * x + y)"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("wrong: 2 * x * (W1 * x + y) is not ∂C/∂W⁽¹⁾\n")
    assert "  counterexample:\n" in out
    assert "  hint: a sign: W1 * x - y in place of W1 * x + y makes it right: 2 * x * (W1 * x - y)\n" in out


def test_cli_check_update_rule_and_a_formula_after_double_dash(capsys) -> None:
    assert main(["check", str(SEED_SPEC), "W^{(L)}", "W^{(L)} - R a^{(L-1)} 2(a^{(L-1)} W^{(L)} - y)"]) == 0
    assert main(["check", str(SEED_SPEC), "W1", "--", "-2 * x * (y - W1 * x)"]) == 0


@pytest.mark.parametrize("param, formula, message", [
    ("W2", "x", "error: unknown parameter 'W2'; known: W1, delta1"),
    ("W1", "q", "error: unknown name 'q'; known: X, x, a0"),
    ("W1", "", "error: empty formula (at position 0)"),
    ("W1", "2 * (x", "error: expected ')' to close '(' at position 4"),
])
def test_cli_check_bad_input_is_one_error_and_exits_2(capsys, param: str, formula: str, message: str) -> None:
    assert main(["check", str(SEED_SPEC), param, formula]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(message)


def test_cli_check_syntax_error_shows_a_caret(capsys) -> None:
    assert main(["check", str(SEED_SPEC), "W1", "2 * (x"]) == 2
    assert capsys.readouterr().err.splitlines()[1:] == ["         2 * (x", "               ^"]


# ---------------------------------------------------------------------------
# The formula language (symbackprop.language.matrix)


def build(text: str, network: str = "columns"):
    return parse_matrix(text, derivation(network))


def test_star_is_elementwise_between_matrices_and_scalar_otherwise() -> None:
    d = derivation("columns")
    a1 = d.quantity("a1")
    assert build("a1 * a1") == build("a1 .* a1") == build("a1 ⊙ a1")
    assert build("a1 * a1").shape == a1.shape
    assert build("2 * a1") == build("2 a1") == 2 * a1


def test_juxtaposition_is_a_matrix_product_between_matrices() -> None:
    d = derivation("columns")
    assert build("W2.T delta2") == build("W2.T @ delta2") == sympy.MatMul(d.symbols["W2"].T, d.deltas["delta2"])


def test_a_1x1_matrix_stands_for_a_scalar_in_elementwise_operations() -> None:
    d = derive(Network(3, [Dense(4, "tanh"), Dense(1)]))  # one sample, one output: a2 is 1×1
    values = random_values(d.network, seed=1)
    a1, a2 = d.evaluate("a1", values), d.evaluate("a2", values)
    assert np.allclose(evaluate(parse_matrix("a2 * a1", d), values), a2[0, 0] * a1)
    assert np.allclose(evaluate(parse_matrix("a1 - a2", d), values), a1 - a2[0, 0])
    assert np.allclose(evaluate(parse_matrix("a1 a2", d), values), a1 @ a2)  # n×1 by 1×1: a matrix product
    # a2 is 1×m in the bce network: against the 4×m delta1 it is a row, broadcast down the rows as NumPy does
    bce = derivation("bce")
    assert build("a2 * delta1", "bce") == hadamard(Broadcast(bce.quantity("a2"), 4, bce.network.batch), bce.deltas["delta1"])
    with pytest.raises(ShapeError, match="works entry by entry"):
        build("a2 * W1", "bce")  # 1×m against 4×3: a real misfit


def test_a_number_added_to_a_matrix_is_added_to_every_entry() -> None:
    d = derivation("columns")
    values = {"n_0": 2, "n_1": 3, "n_2": 1, "m": 2, "X": np.ones((2, 2)), "W1": np.zeros((3, 2)), "b1": np.zeros((3, 1))}
    assert np.allclose(evaluate(parse_matrix("1 - a1", d), values), 0.5)
    assert np.allclose(evaluate(parse_matrix("a1 ./ 2 + a1 / 2", d), values), 0.5)
    assert np.allclose(evaluate(parse_matrix("a1 .^ 2 + a1^-1", d), values), 2.25)


def test_operands_whose_shapes_do_not_fit_raise_shape_error_naming_both() -> None:
    with pytest.raises(ShapeError, match=r"'\*' works entry by entry, but W2.T is n_1×n_2 and delta2 is n_2×m "
                                         r"\(for a matrix product write @\)"):
        build("W2.T * delta2")
    with pytest.raises(ShapeError, match="'@' multiplies two matrices, and 2 is a scalar"):
        build("2 @ W1")
    with pytest.raises(ShapeError, match="cannot be multiplied"):
        build("a1 a1")
    with pytest.raises(ShapeError, match="needs a square matrix"):
        build("trace(W1)")


def test_sum_trace_and_ones() -> None:
    d = derivation("columns")
    delta1 = d.deltas["delta1"]
    assert build("sum(delta1)") == SumEntries(delta1)
    assert build("sum(delta1, 2)").shape == (d.symbols["b1"].shape[0], 1)
    assert build("sum(delta1, 1)").shape == (1, delta1.shape[1])
    assert build("trace(W1 @ W1.T)") == build("tr(W1 @ W1')") == sympy.Trace(d.symbols["W1"] * d.symbols["W1"].T)
    assert build("ones(n_1, m)").shape == delta1.shape
    assert build("ones(m, 1)", "seed2").shape == (1, 1)  # m names the batch size even when it is a number


@pytest.mark.parametrize("text, message", [
    ("ones(10^9, 10^9)", r"a size in ones\(...\) is one of the network's sizes \(1, n_0, n_1, n_2, m\)"),
    ("ones(m)", "ones takes two sizes"),
    ("sum(delta1, 3)", "the dimension of sum is 1"),
    ("sum(a1, 1, 2)", "sum takes a matrix and an optional dimension"),
    ("trace(a1, a1)", "trace takes one argument"),
    ("sigmoid(z1, z2)", "sigmoid takes one argument"),
    ("sigmoid(2)", "sigmoid applies to a matrix"),
    ("softmax'(z2)", "softmax is not applied entry by entry"),
    ("sum'(a1)", "sum has no derivative mark"),
    ("sigmoid''''(z1)", "at most 3 derivative marks"),
    ("a1 ^ a1", "an exponent is a whole number"),
    ("a1 ^ (1/2)", "an exponent is a whole number"),
    (f"a1 ^ {MAX_EXPONENT + 1}", "an exponent is a whole number"),
    ("9**9**9**9", "an exponent is a whole number"),
    ("(10^60)^6", r"the number \(10\^60\)\^6 is out of range"),
    ("1e300 * 1e300 * a1", "out of range"),
    ("a1 / 0", "division by zero"),
    ("0^-1 * a1", "division by zero"),
    ("eta * a1", "eta is a learning rate; it only appears in an update rule"),
    ("q^{(1)}", "q has no layers"),
    ("a^{(l)}", "unknown layer 'l'"),
    ("a^{(L-3)}", "is layer -1"),
])
def test_misuse_is_a_formula_error_naming_the_fault(text: str, message: str) -> None:
    with pytest.raises(FormulaError, match=message):
        build(text)


def test_names_in_every_spelling_mean_the_same_quantity() -> None:
    d = derivation("columns")
    assert build("x") == build("X") == build("a0") == build("a^{(0)}") == d.symbols["X"]
    assert build("y") == build("Y") == d.symbols["Y"]
    assert build("W_2") == build("W^{(2)}") == build("W^{(L)}") == d.symbols["W2"]
    assert build("δ2") == build(r"\delta^{(L)}") == build("delta_2") == d.deltas["delta2"]
    assert build("a^{(L-1)}") == d.quantity("a1")
    assert canonical_name(parse("z_{2}"), 3) == "z2"


def test_activations_and_their_derivatives_in_every_spelling() -> None:
    d = derivation("columns")
    z1, sigmoid = d.quantity("z1"), NETWORKS["columns"].activations[0]
    derivative = Elementwise("sigmoid", sigmoid.function, z1, 1)
    assert build("sigmoid'(z1)") == build("dsigmoid(z1)") == build(r"\sigma'(z^{(1)})") == build("σ'(z1)") == derivative
    assert build("sigmoid(z1)") == d.quantity("a1").definition
    assert build("tanh''(z1)") == Elementwise("tanh", ACTIVATIONS["tanh"].function, z1, 2)
    assert build("ReLU(z1)").name == build(r"\operatorname{ReLU}(z1)").name == "relu"
    assert build("softmax(z2)", "softmax") == Softmax(derivation("softmax").quantity("z2"), 0)


def test_custom_activations_are_known_by_their_names() -> None:
    d = derive(Network(2, [Dense(3, "x**3"), Dense(2, "x**2 + x")]))
    assert parse_matrix("phi1'(z1)", d).name == "phi1"
    assert check(d, "delta1", "(W2.T @ delta2) .* (3 z1 .^ 2)").ok


def test_builder_remembers_shared_subtrees_by_identity() -> None:
    builder = MatrixBuilder(Vocabulary.of(derivation("columns")))
    tree = parse("W2.T @ delta2 .* sigmoid'(z1)")
    first = builder.build(tree)
    size = len(builder.memo)
    assert builder.build(tree) is first and len(builder.memo) == size


# ---------------------------------------------------------------------------
# The documentation stays true


def _blocks(doc: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / doc).read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("doc", ["checking.md", "formula-language.md"])
def test_python_examples_in_the_documentation_run(doc: str, capsys) -> None:
    for block in _blocks(doc, "python"):
        exec(compile(block, f"docs/{doc}", "exec"), {})


def test_command_line_sessions_in_checking_md_print_what_they_show(monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    sessions = [block for block in _blocks("checking.md", "text") if block.startswith("$ symbackprop check")]
    assert len(sessions) == 2
    for session in sessions:
        command, *shown = session.splitlines()
        code = main(shlex.split(command)[2:])
        assert capsys.readouterr().out.splitlines() == shown
        assert code == (0 if shown[0].startswith("right") else 1)


def test_messages_in_formula_language_md_are_the_real_ones(capsys) -> None:
    syntax, unknown, misfit, updates = _blocks("formula-language.md", "text")
    assert main(["check", str(SEED_SPEC), "W1", "2 * (x"]) == 2
    assert capsys.readouterr().err == syntax
    assert main(["check", str(SEED_SPEC), "W1", "q"]) == 2
    assert capsys.readouterr().err == unknown
    assert judge("columns", "W1", "delta1 @ a0").message.splitlines()[0] == misfit.strip()
    networks = [load_spec(SEED_SPEC), NETWORKS["seed2"], NETWORKS["decay"]]
    for network, update in zip(networks, updates.splitlines(), strict=True):
        assert check(network, "W1", update).ok, update


def test_lambda_stands_for_the_weight_decay_whatever_its_name():
    from symbackprop import Dense, Network, check

    net = Network(3, [Dense(2, "tanh")], batch="m", weight_decay="lam")
    assert check(net, "W1", r"\delta^{(1)} x^\top + 2\lambda W^{(1)}").ok
    assert check(net, "W1", "delta1 @ a0.T + 2 λ W1").ok
    assert not check(net, "W1", "delta1 @ a0.T + λ W1").ok


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_check_accepts_what_symbackprop_itself_prints(layout):
    from symbackprop.printing import to_text

    net = Network(3, [Dense(4, "sigmoid"), Dense(2, "tanh"), Dense(2)], batch="m", layout=layout)
    d = derive(net)
    for name in ("W1", "W2", "W3"):
        printed = to_text(d.gradients[name])  # such as 'Xᵀ δ⁽¹⁾'
        assert check(d, name, printed).ok, printed
    for name, delta in d.deltas.items():
        printed = to_text(delta.definition)  # such as '(W⁽³⁾ᵀ δ⁽³⁾) ⊙ tanh'(z⁽²⁾)'
        assert check(d, name, printed).ok, printed
