"""The chain-rule engine: Matrix Cookbook identities, SymPy cross-checks, one rule per class."""

import numpy as np
import pytest
import sympy
from sympy import (
    Determinant,
    Identity,
    Inverse,
    MatrixSymbol,
    Trace,
    log,
)

from symbackprop import grad
from symbackprop.calculus.rules import VJP, rule_for
from symbackprop.calculus.autodiff import backward
from symbackprop.calculus.expressions import hadamard, hadamard_power
from symbackprop.errors import MissingRuleError, SymbackpropError
from symbackprop.calculus.numeric import evaluate
from symbackprop.calculus.expressions import (
    Broadcast,
    Elementwise,
    LogSoftmax,
    Named,
    Softmax,
    SumEntries,
)
from symbackprop.model.activations import ACTIVATIONS
from symbackprop.checking.gradients import directional_difference

n = 3
A = MatrixSymbol("A", n, n)
B = MatrixSymbol("B", n, n)
X = MatrixSymbol("X", n, n)
a = MatrixSymbol("a", n, 1)
b = MatrixSymbol("b", n, 1)
x = MatrixSymbol("x", n, 1)

# (Cookbook equation, scalar expression, variable, expected gradient)
COOKBOOK = [
    ("(100) d tr(X)/dX = I", Trace(X), X, Identity(n)),
    ("(101) d tr(XA)/dX = Aᵀ", Trace(X * A), X, A.T),
    ("(102) d tr(AXB)/dX = AᵀBᵀ", Trace(A * X * B), X, A.T * B.T),
    ("(103) d tr(AXᵀB)/dX = BA", Trace(A * X.T * B), X, B * A),
    ("(104) d tr(XᵀA)/dX = A", Trace(X.T * A), X, A),
    ("(107) d tr(X²)/dX = 2Xᵀ", Trace(X * X), X, 2 * X.T),
    ("(108) d tr(X²B)/dX = (XB + BX)ᵀ", Trace(X * X * B), X, (X * B + B * X).T),
    ("(111) d tr(XᵀBX)/dX = BX + BᵀX", Trace(X.T * B * X), X, B * X + B.T * X),
    ("(113) d tr(XᵀX)/dX = 2X", Trace(X.T * X), X, 2 * X),
    ("(70) d aᵀx/dx = a", a.T * x, x, a),
    ("(71) d aᵀXb/dX = abᵀ", a.T * X * b, X, a * b.T),
    ("(72) d aᵀXᵀb/dX = baᵀ", a.T * X.T * b, X, b * a.T),
    ("(81) d xᵀBx/dx = (B + Bᵀ)x", x.T * B * x, x, (B + B.T) * x),
    ("(49) d det(X)/dX = det(X) X⁻ᵀ", Determinant(X), X, Determinant(X) * Inverse(X).T),
    ("(57) d log det(X)/dX = X⁻ᵀ", log(Determinant(X)), X, Inverse(X).T),
    ("(61) d aᵀX⁻¹b/dX = −X⁻ᵀabᵀX⁻ᵀ", a.T * Inverse(X) * b, X, -Inverse(X).T * a * b.T * Inverse(X).T),
    ("(103') ‖X − A‖²_F = tr((X−A)ᵀ(X−A))", Trace((X - A).T * (X - A)), X, 2 * (X - A)),
    ("Σ(X ⊙ A)", SumEntries(hadamard(X, A)), X, A),
    ("Σ(X^∘2)", SumEntries(hadamard_power(X, 2)), X, 2 * X),
]


def _random_values(rng, *symbols):
    values = {}
    for s in symbols:
        values[s.name] = rng.normal(size=tuple(int(d) for d in s.shape))
    values["X"] = values.get("X", np.zeros((n, n))) + 3 * np.eye(n)  # invertible, positive determinant
    return values


@pytest.mark.parametrize("label, expr, wrt, expected", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_grad_reproduces_matrix_cookbook_identity(label, expr, wrt, expected):
    result = grad(expr, wrt)
    assert result.shape == wrt.shape
    rng = np.random.default_rng(0)
    values = _random_values(rng, A, B, X, a, b, x)
    np.testing.assert_allclose(evaluate(result, values), evaluate(expected, values), rtol=1e-10, atol=1e-12)
    direction = rng.normal(size=tuple(int(d) for d in wrt.shape))
    numeric = directional_difference(expr, values, wrt.name, direction)
    assert np.sum(evaluate(result, values) * direction) == pytest.approx(numeric, rel=1e-7)


def test_grad_gives_the_textbook_form_for_a_trace_identity():
    assert grad(Trace(A * X * B), X) == A.T * B.T
    assert grad(Trace(X.T * X), X) == 2 * X


@pytest.mark.parametrize(
    "expr, wrt",
    [
        (Trace((X * A - B).T * (X * A - B)), X),
        (Trace(A * X * B * X.T), X),
        (Trace(X.T * A * X * B), X),
    ],
)
def test_grad_agrees_with_sympys_own_diff_where_sympy_can(expr, wrt):
    ours = grad(expr, wrt)
    sympys = expr.diff(wrt)
    values = _random_values(np.random.default_rng(1), A, B, X)
    np.testing.assert_allclose(evaluate(ours, values), evaluate(sympys, values), rtol=1e-10)


def test_grad_looks_through_named_quantities():
    z = Named("z1", A * x)
    cost = SumEntries(hadamard_power(z - b, 2))
    result = grad(cost, A)
    values = _random_values(np.random.default_rng(2), A, x, b)
    expected = 2 * (values["A"] @ values["x"] - values["b"]) @ values["x"].T
    np.testing.assert_allclose(evaluate(result, values), expected, rtol=1e-12)


def test_grad_of_an_expression_that_does_not_depend_on_the_variable_is_zero():
    assert grad(Trace(A), X) == sympy.ZeroMatrix(n, n)


def test_grad_refuses_non_scalar_expressions_and_non_symbols():
    with pytest.raises(SymbackpropError, match="scalar"):
        grad(A * X, X)
    with pytest.raises(SymbackpropError, match="MatrixSymbol"):
        grad(Trace(X), X.T)
    with pytest.raises(SymbackpropError, match="SymPy expression"):
        grad("trace(X)", X)


def test_a_class_without_a_rule_raises_an_error_naming_it():
    expr = Trace(sympy.Adjoint(X))
    with pytest.raises(MissingRuleError, match="Adjoint"):
        grad(expr, X)


def test_every_library_expression_class_has_a_rule():
    for cls in (Named, Elementwise, Softmax, LogSoftmax, Broadcast, SumEntries):
        assert cls in VJP, cls
    assert rule_for(A * X).name == "matrix product"


def _elementwise_cases():
    z = MatrixSymbol("z", n, 2)
    weights = MatrixSymbol("V", n, 2)
    for activation in ACTIVATIONS.values():
        yield activation.name, SumEntries(hadamard(weights, activation.apply(z, 0))), z, weights
        if activation.name == "softmax":
            yield "softmax rows", SumEntries(hadamard(weights, activation.apply(z, 1))), z, weights
    for axis in (0, 1):
        yield f"log-softmax axis {axis}", SumEntries(hadamard(weights, LogSoftmax(z, axis))), z, weights


@pytest.mark.parametrize("name, expr, z, weights", list(_elementwise_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_rules_for_activations_match_finite_differences(name, expr, z, weights):
    rng = np.random.default_rng(3)
    values = {"z": rng.normal(size=(n, 2)), "V": rng.normal(size=(n, 2))}
    result = grad(expr, z)
    direction = rng.normal(size=(n, 2))
    numeric = directional_difference(expr, values, "z", direction)
    assert np.sum(evaluate(result, values) * direction) == pytest.approx(numeric, rel=1e-7)


@pytest.mark.parametrize("along_columns", [True, False])
def test_bias_broadcast_rule_sums_over_the_batch(along_columns):
    m = 4
    vector = MatrixSymbol("b", n, 1) if along_columns else MatrixSymbol("b", 1, n)
    shape = (n, m) if along_columns else (m, n)
    weights = MatrixSymbol("V", *shape)
    expr = SumEntries(hadamard(weights, Broadcast(vector, *shape)))
    result = grad(expr, vector)
    values = {"b": np.ones(vector.shape), "V": np.arange(n * m, dtype=float).reshape(shape)}
    expected = values["V"].sum(axis=1, keepdims=True) if along_columns else values["V"].sum(axis=0, keepdims=True)
    np.testing.assert_allclose(evaluate(result, values), expected)


def test_backward_reports_the_rules_it_applied_in_order():
    result = backward(Trace(A * X), sympy.Integer(1), [X])
    assert result.rules == ("trace", "matrix product")
    assert result.adjoints[X] == A.T * Identity(n) or result.adjoints[X] == A.T
