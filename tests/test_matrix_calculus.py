"""General matrix calculus: every case of SymPy's derivative tests and the Matrix Cookbook, checked.

Two tables.  :data:`SYMPY` transcribes every case of SymPy 1.14's
``sympy/matrices/expressions/tests/test_derivatives.py`` (read, not imported),
in the file's order; a matrix-valued case is contracted with random vectors
``u``, ``v`` (``uᵀ M v``), as a user who wants a gradient would.
:data:`COOKBOOK` lists identities of the Matrix Cookbook, sections 2.1–2.8,
each citing its equation number (the edition of 15 November 2012, which SymPy's
file cites), and a few forms the Cookbook does not list, marked ``(—)``.

Every result of :func:`symbackprop.grad` is compared with central finite
differences of the expression along a random direction; a case marked
``REFUSED`` must raise :class:`~symbackprop.errors.MissingRuleError` naming a
class listed as unsupported in ``docs/chain-rule.md``.  The counts are in
:func:`test_counts`.  Comments say where SymPy's own ``diff`` is wrong.
"""

from __future__ import annotations

import inspect
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy
from sympy import (
    Abs,
    Determinant,
    DiagMatrix,
    DiagonalOf,
    Identity,
    Inverse,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatrixSymbol,
    OneMatrix,
    Rational,
    S,
    Sum,
    Trace,
    exp,
    log,
    sin,
    sqrt,
    symbols,
    tan,
)
from sympy.matrices.expressions import hadamard_power
from sympy.matrices.expressions.hadamard import hadamard_product
from sympy.matrices.expressions.matexpr import MatrixElement

from symbackprop import grad
from symbackprop.calculus.numeric import evaluate
from symbackprop.calculus.program import numpy_function
from symbackprop.printing import to_latex, to_text
from symbackprop.errors import MissingRuleError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "chain-rule.md"

i, j = symbols("i j")
m, n = symbols("m n")
k = symbols("k")  # SymPy's plain symbol: evaluate binds it from the values by name
mu = symbols("mu")
SIZE = 3

X = MatrixSymbol("X", k, k)
x = MatrixSymbol("x", k, 1)
y = MatrixSymbol("y", k, 1)
A = MatrixSymbol("A", k, k)
B = MatrixSymbol("B", k, k)
C = MatrixSymbol("C", k, k)
D = MatrixSymbol("D", k, k)
a = MatrixSymbol("a", k, 1)
b = MatrixSymbol("b", k, 1)
c = MatrixSymbol("c", k, 1)
d = MatrixSymbol("d", k, 1)

REFUSED = "refused"


def E(parent, row, col):
    """An entry as SymPy's tests write it, ``expr[i, j]``: SymPy's indexing expands a product into
    a ``Sum`` over a symbolic range, which symbackprop refuses; the unexpanded entry is this."""
    return MatrixElement(parent, row, col)


# (label, expression, variable, expectation): expectation is None (checked against finite
# differences) or REFUSED.  Labels name SymPy's test function and, where it gives one, the
# Cookbook equation.
SYMPY = [
    # test_matrix_derivative_by_scalar: ∂/∂i, matrix results contracted with u, v
    ("by_scalar A", A, i, None),
    ("by_scalar A(X + B)c", A * (X + B) * c, i, None),
    ("by_scalar x", x, i, None),
    ("by_scalar xᵀy", x.T * y, i, None),
    ("by_scalar x xᵀ", x * x.T, i, None),
    ("by_scalar x + y", x + y, i, None),
    ("by_scalar x∘2", hadamard_power(x, 2), i, None),
    ("by_scalar x∘i", hadamard_power(x, i), i, None),
    ("by_scalar x ⊙ y", hadamard_product(x, y), i, None),
    ("by_scalar (i 1) ⊙ x ⊙ y", hadamard_product(i * OneMatrix(k, 1), x, y), i, None),
    ("by_scalar i x", i * x, i, None),
    ("by_scalar sin(i) A B x", sin(i) * A * B * x, i, None),
    ("by_scalar sin∘(x)", x.applyfunc(sin), i, None),
    ("by_scalar tr(i² X)", Trace(i**2 * X), i, None),
    ("by_scalar 2 mu x by x", 2 * mu * x, x, None),
    # test_one_matrix
    ("one_matrix xᵀ 1", MatMul(x.T, OneMatrix(k, 1)), x, None),
    # test_matrix_derivative_non_matrix_result: 4-d arrays in SymPy, contracted here
    ("non_matrix_result A", A, A, None),
    ("non_matrix_result Aᵀ", A.T, A, None),
    ("non_matrix_result 2A", 2 * A, A, None),
    ("non_matrix_result A + A", MatAdd(A, A), A, None),
    ("non_matrix_result A + B", A + B, A, None),
    # test_matrix_derivative_trivial_cases (33)
    ("trivial X by A (33)", X, A, None),
    # test_matrix_derivative_with_inverse
    ("inverse aᵀX⁻¹b (61)", a.T * Inverse(X) * b, X, None),
    ("inverse det(X⁻¹) (62)", Determinant(Inverse(X)), X, None),  # SymPy: not implemented
    ("inverse tr(AX⁻¹B) (63)", Trace(A * Inverse(X) * B), X, None),
    ("inverse tr((X + A)⁻¹) (64)", Trace(Inverse(X + A)), X, None),
    # test_matrix_derivative_vectors_and_scalars
    ("vectors x", x, x, None),
    ("vectors x[i, 0] by x[m, 0]", x[i, 0], x[m, 0], None),
    ("vectors xᵀ", x.T, x, None),
    ("vectors xᵀa (69)", x.T * a, x, None),
    ("vectors (xᵀa)[0, 0] by x[m, 0] (69)", E(x.T * a, 0, 0), x[m, 0], None),
    ("vectors aᵀx (69)", a.T * x, x, None),
    ("vectors aᵀXb (70)", a.T * X * b, X, None),
    ("vectors aᵀXᵀb (71)", a.T * X.T * b, X, None),
    ("vectors aᵀXa (72)", a.T * X * a, X, None),
    ("vectors aᵀXᵀa (72)", a.T * X.T * a, X, None),
    ("vectors bᵀXᵀXc (77)", b.T * X.T * X * c, X, None),
    ("vectors (Bx + b)ᵀC(Dx + d) (78)", (B * x + b).T * C * (D * x + d), x, None),
    ("vectors xᵀBx (81)", x.T * B * x, x, None),
    ("vectors bᵀXᵀDXc (82)", b.T * X.T * D * X * c, X, None),
    ("vectors (Xb + c)ᵀD(Xb + c) (83)", (X * b + c).T * D * (X * b + c), X, None),
    ("vectors ((Xb + c)ᵀD(Xb + c))[0, 0] by X[m, n] (83)", E((X * b + c).T * D * (X * b + c), 0, 0), X[m, n], None),
    ("vectors x xᵀ x", x * x.T * x, x, None),
    # test_matrix_derivatives_of_traces
    ("traces tr(A) A", Trace(A) * A, A, None),
    ("traces (tr(A) A)[i, j] by A[m, n]", (Trace(A) * A)[i, j], A[m, n], None),
    ("traces tr(X) (99)", Trace(X), X, None),
    ("traces Σ-form of tr(X) by X[m, n] (99)", Trace(X).rewrite(Sum), X[m, n], REFUSED),
    ("traces tr(XA) (100)", Trace(X * A), X, None),
    ("traces Σ-form of tr(XA) by X[m, n] (100)", Trace(X * A).rewrite(Sum), X[m, n], REFUSED),
    ("traces tr(AXB) (101)", Trace(A * X * B), X, None),
    ("traces Σ-form of tr(AXB) by X[m, n] (101)", Trace(A * X * B).rewrite(Sum), X[m, n], REFUSED),
    ("traces tr(AXᵀB) (102)", Trace(A * X.T * B), X, None),
    ("traces tr(XᵀA) (103)", Trace(X.T * A), X, None),
    ("traces tr(AXᵀ) (104)", Trace(A * X.T), X, None),
    ("traces tr(A ⊗ X) (105)", Trace(KroneckerProduct(A, X)), X, None),  # SymPy: TODO, no TensorProduct
    ("traces tr(X²) (106)", Trace(X**2), X, None),
    ("traces tr(X²B) (107)", Trace(X**2 * B), X, None),
    ("traces tr(X X B) (107)", Trace(MatMul(X, X, B)), X, None),
    ("traces tr(XᵀBX) (108)", Trace(X.T * B * X), X, None),
    ("traces tr(BXXᵀ) (109)", Trace(B * X * X.T), X, None),
    ("traces tr(XXᵀB) (110)", Trace(X * X.T * B), X, None),
    ("traces tr(XBXᵀ) (111)", Trace(X * B * X.T), X, None),
    ("traces tr(BXᵀX) (112)", Trace(B * X.T * X), X, None),
    ("traces tr(XᵀXB) (113)", Trace(X.T * X * B), X, None),
    ("traces tr(AXBX) (114)", Trace(A * X * B * X), X, None),
    ("traces tr(XᵀX) (115)", Trace(X.T * X), X, None),
    ("traces tr(XXᵀ) (115)", Trace(X * X.T), X, None),
    ("traces tr(BᵀXᵀCXB) (116)", Trace(B.T * X.T * C * X * B), X, None),
    ("traces tr(XᵀBXC) (117)", Trace(X.T * B * X * C), X, None),
    ("traces tr(AXBXᵀC) (118)", Trace(A * X * B * X.T * C), X, None),
    ("traces tr((AXB + C)(AXB + C)ᵀ) (119)", Trace((A * X * B + C) * (A * X * B + C).T), X, None),
    ("traces tr(X ⊗ X) (120)", Trace(KroneckerProduct(X, X)), X, None),  # SymPy: TODO
    ("traces tr(X) tr(X) (120)", Trace(X) * Trace(X), X, None),
    ("traces tr(Xᵏ) (121)", Trace(X**k), X, None),  # SymPy: commented out, no answer
    ("traces tr(AXᵏ) (122)", Trace(A * X**k), X, REFUSED),  # needs a sum over powers
    ("traces tr(BᵀXᵀCXXᵀCXB) (123)", Trace(B.T * X.T * C * X * X.T * C * X * B), X, None),
    ("traces tr(AX⁻¹B) (124)", Trace(A * X**-1 * B), X, None),
    # SymPy's answer to 125 agrees with the Cookbook's only for symmetric C (its comment says so)
    ("traces tr((XᵀCX)⁻¹A) (125)", Trace(Inverse(X.T * C * X) * A), X, None),
    ("traces tr((XᵀCX)⁻¹XᵀBX) (126)", Trace((X.T * C * X).inv() * (X.T * B * X)), X, None),
    ("traces tr((A + XᵀCX)⁻¹XᵀBX) (127)", Trace((A + X.T * C * X).inv() * (X.T * B * X)), X, None),
    # test_derivatives_of_complicated_matrix_expr
    ("complicated", a.T * (A * X * (X.T * B + X * A) + B.T * X.T * (a * b.T * (
        X * D * X.T + X * (X.T * B + A * X) * D * B - X.T * C.T * A) * B + B * (
        X * D.T + B * A * X * A.T - 3 * X * D)) * B + 42 * X * B * X.T * A.T * (X + X.T)) * b, X, None),
    # test_mixed_deriv_mixed_expressions
    ("mixed 3 tr(A)", 3 * Trace(A), A, None),
    ("mixed k by A", k, A, None),
    ("mixed tr(A)²", Trace(A) ** 2, A, None),
    ("mixed tr(A) A", Trace(A) * A, A, None),
    ("mixed tr(tr(A) A)", Trace(Trace(A) * A), A, None),
    ("mixed tr(tr(tr(A) A) A)", Trace(Trace(Trace(A) * A) * A), A, None),
    # test_derivatives_matrix_norms
    ("norms xᵀy", x.T * y, x, None),
    ("norms (xᵀy)[0, 0] by x[m, 0]", E(x.T * y, 0, 0), x[m, 0], None),
    ("norms (xᵀy)^½", (x.T * y) ** S.Half, x, None),
    ("norms (xᵀx)^½", (x.T * x) ** S.Half, x, None),
    ("norms (cᵀa xᵀb)^½", (c.T * a * x.T * b) ** S.Half, x, None),
    ("norms (cᵀa xᵀb)^⅓", (c.T * a * x.T * b) ** Rational(1, 3), x, None),
    ("norms (aᵀXb)^½", (a.T * X * b) ** S.Half, X, None),
    ("norms dᵀx (aᵀXb)^½ yᵀc", d.T * x * (a.T * X * b) ** S.Half * y.T * c, X, None),
    # test_derivatives_elementwise_applyfunc
    ("applyfunc tan∘(x)", x.applyfunc(tan), x, None),
    ("applyfunc tan∘(x)[i, 0] by x[m, 0]", x.applyfunc(tan)[i, 0], x[m, 0], None),
    ("applyfunc sin∘(i² x) by i", (i**2 * x).applyfunc(sin), i, None),
    # i is both the index and the variable: SymPy treats the index as a constant
    ("applyfunc sin∘(i² x)[i, 0] by i", (i**2 * x).applyfunc(sin)[i, 0], i, REFUSED),
    ("applyfunc sin∘(log(i) A B) by i", (log(i) * A * B).applyfunc(sin), i, None),
    # SymPy returns the transpose of the Jacobian here (its TODO says so)
    ("applyfunc A exp∘(x)", A * x.applyfunc(exp), x, None),
    ("applyfunc xᵀAx + k sin∘(y)ᵀx", x.T * A * x + k * y.applyfunc(sin).T * x, x, None),
    # SymPy returns the transpose here too (its TODO)
    ("applyfunc sin∘(x)ᵀy", x.applyfunc(sin).T * y, x, None),
    ("applyfunc sin∘(aᵀXb)", (a.T * X * b).applyfunc(sin), X, None),
    ("applyfunc aᵀ sin∘(X) b", a.T * X.applyfunc(sin) * b, X, None),
    ("applyfunc aᵀ sin∘(AXB) b", a.T * (A * X * B).applyfunc(sin) * b, X, None),
    ("applyfunc aᵀ sin∘(AXb) bᵀ", a.T * (A * X * b).applyfunc(sin) * b.T, X, None),  # SymPy: not implemented
    ("applyfunc aᵀA sin∘(X) B b", a.T * A * X.applyfunc(sin) * B * b, X, None),
    # SymPy's test marks the answer it once gave as wrong (a TODO); 1.14 gives an array expression
    ("applyfunc aᵀ log∘(A sin∘(X) B) b", a.T * (A * X.applyfunc(sin) * B).applyfunc(log) * b, X, None),
    # SymPy's test marks the answer it once gave as wrong (a TODO)
    ("applyfunc aᵀ log∘(sin∘(X)) b", a.T * (X.applyfunc(sin)).applyfunc(log) * b, X, None),
    # test_derivatives_of_hadamard_expressions
    ("hadamard a ⊙ x ⊙ b", hadamard_product(a, x, b), x, None),
    ("hadamard aᵀ(A ⊙ X ⊙ B)b", a.T * hadamard_product(A, X, B) * b, X, None),
    ("hadamard x∘2", hadamard_power(x, 2), x, None),
    ("hadamard (xᵀ)∘2", hadamard_power(x.T, 2), x, None),
    ("hadamard x∘½", hadamard_power(x, S.Half), x, None),
    ("hadamard (aᵀXb)∘2", hadamard_power(a.T * X * b, 2), X, None),
    ("hadamard (aᵀXb)∘½", hadamard_power(a.T * X * b, S.Half), X, None),
]

Xd = MatrixSymbol("X", k, k)
# (label with the Cookbook equation, expression, variable, expectation)
COOKBOOK = [
    # 2.1 Determinant
    ("(49) det(X)", Determinant(X), X, None),
    ("(51) det(AXB)", Determinant(A * X * B), X, None),
    ("(53) det(XᵀAX), X square", Determinant(X.T * A * X), X, None),
    ("(54) det(XᵀAX), A not symmetric", Determinant(X.T * A * X), X, None),
    ("(55) ln det(XᵀX)", log(Determinant(X.T * X)), X, None),  # SymPy 1.14: 0, wrong
    ("(57) ln|det(X)|", log(Abs(Determinant(X))), X, None),  # SymPy 1.14: 0, wrong
    ("(57) ln|det(X)|, det(X) < 0", log(Abs(Determinant(-X))), X, None),  # SymPy 1.14: 0, wrong
    ("(57) ln det(X)", log(Determinant(X)), X, None),  # SymPy 1.14: 0, wrong
    ("(58) det(X²)", Determinant(X**2), X, None),
    ("(58) det(X³)", Determinant(X**3), X, None),
    # 2.2 Inverses
    ("(60) (X⁻¹)[i, j] by X[m, n]", E(Inverse(X), i, j), X[m, n], None),
    ("(61) aᵀX⁻¹b", a.T * Inverse(X) * b, X, None),
    ("(62) det(X⁻¹)", Determinant(Inverse(X)), X, None),
    ("(63) tr(AX⁻¹B)", Trace(A * Inverse(X) * B), X, None),
    ("(64) tr((X + A)⁻¹)", Trace(Inverse(X + A)), X, None),
    ("(59) ∂X⁻¹ = −X⁻¹ ∂X X⁻¹, twice: tr(X⁻²)", Trace(X**-2), X, None),
    # 2.3 Derivatives of eigenvalues
    ("(66) Σ eig(X) = tr(X)", Trace(X), X, None),
    ("(67) Π eig(X) = det(X)", Determinant(X), X, None),
    # 2.4 Matrices, vectors and scalar forms
    ("(69) xᵀa", x.T * a, x, None),
    ("(69) aᵀx", a.T * x, x, None),
    ("(70) aᵀXb", a.T * X * b, X, None),
    ("(71) aᵀXᵀb", a.T * X.T * b, X, None),
    ("(72) aᵀXa", a.T * X * a, X, None),
    ("(72) aᵀXᵀa", a.T * X.T * a, X, None),
    ("(73) X[i, j] by X[m, n]", X[i, j], X[m, n], None),
    ("(74) (XA)[i, j] by X[m, n]", E(X * A, i, j), X[m, n], None),
    ("(75) (XᵀA)[i, j] by X[m, n]", E(X.T * A, i, j), X[m, n], None),
    ("(76) (Σ X)²", (OneMatrix(1, k) * X * OneMatrix(k, 1)) ** 2, X, None),
    ("(77) bᵀXᵀXc", b.T * X.T * X * c, X, None),
    ("(78) (Bx + b)ᵀC(Dx + d)", (B * x + b).T * C * (D * x + d), x, None),
    ("(79) (XᵀBX)[i, j] by X[m, n]", E(X.T * B * X, i, j), X[m, n], None),
    ("(81) xᵀBx", x.T * B * x, x, None),
    ("(82) bᵀXᵀDXc", b.T * X.T * D * X * c, X, None),
    ("(83) (Xb + c)ᵀD(Xb + c)", (X * b + c).T * D * (X * b + c), X, None),
    ("(84) (Xb + c)ᵀ(Xb + c)", (X * b + c).T * (X * b + c), X, None),
    ("(90) aᵀX²b", a.T * X**2 * b, X, None),
    ("(90) aᵀX³b", a.T * X**3 * b, X, None),
    ("(91) aᵀ(X²)ᵀX²b", a.T * (X**2).T * X**2 * b, X, None),
    ("(92) xᵀAx + bᵀx", x.T * A * x + b.T * x, x, None),
    # 2.5 Traces
    ("(99) tr(X)", Trace(X), X, None),
    ("(100) tr(XA)", Trace(X * A), X, None),
    ("(101) tr(AXB)", Trace(A * X * B), X, None),
    ("(102) tr(AXᵀB)", Trace(A * X.T * B), X, None),
    ("(103) tr(XᵀA)", Trace(X.T * A), X, None),
    ("(104) tr(AXᵀ)", Trace(A * X.T), X, None),
    ("(105) tr(A ⊗ X)", Trace(KroneckerProduct(A, X)), X, None),
    ("(106) tr(X²)", Trace(X**2), X, None),
    ("(107) tr(X²B)", Trace(X**2 * B), X, None),
    ("(108) tr(XᵀBX)", Trace(X.T * B * X), X, None),
    ("(109) tr(BXXᵀ)", Trace(B * X * X.T), X, None),
    ("(110) tr(XXᵀB)", Trace(X * X.T * B), X, None),
    ("(111) tr(XBXᵀ)", Trace(X * B * X.T), X, None),
    ("(112) tr(BXᵀX)", Trace(B * X.T * X), X, None),
    ("(113) tr(XᵀXB)", Trace(X.T * X * B), X, None),
    ("(114) tr(AXBX)", Trace(A * X * B * X), X, None),
    ("(115) tr(XᵀX)", Trace(X.T * X), X, None),
    ("(116) tr(BᵀXᵀCXB)", Trace(B.T * X.T * C * X * B), X, None),
    ("(117) tr(XᵀBXC)", Trace(X.T * B * X * C), X, None),
    ("(118) tr(AXBXᵀC)", Trace(A * X * B * X.T * C), X, None),
    ("(119) tr((AXB + C)(AXB + C)ᵀ)", Trace((A * X * B + C) * (A * X * B + C).T), X, None),
    ("(120) tr(X ⊗ X)", Trace(KroneckerProduct(X, X)), X, None),
    ("(121) tr(X³)", Trace(X**3), X, None),
    ("(121) tr(Xᵏ), k symbolic", Trace(X**k), X, None),
    ("(122) tr(AX³)", Trace(A * X**3), X, None),
    ("(123) tr(BᵀXᵀCXXᵀCXB)", Trace(B.T * X.T * C * X * X.T * C * X * B), X, None),
    ("(124) tr(AX⁻¹B)", Trace(A * X**-1 * B), X, None),
    ("(125) tr((XᵀCX)⁻¹A)", Trace(Inverse(X.T * C * X) * A), X, None),
    ("(126) tr((XᵀCX)⁻¹(XᵀBX))", Trace(Inverse(X.T * C * X) * (X.T * B * X)), X, None),
    ("(127) tr((A + XᵀCX)⁻¹(XᵀBX))", Trace(Inverse(A + X.T * C * X) * (X.T * B * X)), X, None),
    # SymPy cannot take the trace of sin(X) (a noncommutative scalar), so the function alone
    ("(128) sin(X), a matrix function", sin(X), X, REFUSED),
    # 2.6 Vector norms
    ("(129) ‖x − a‖₂ = ((x − a)ᵀ(x − a))^½", ((x - a).T * (x - a)) ** S.Half, x, None),
    ("(129) ‖x − a‖₂ = √tr((x − a)ᵀ(x − a))", sqrt(Trace((x - a).T * (x - a))), x, None),
    # SymPy 1.14 drops the derivative of the norm: u/‖x − a‖, wrong
    ("(130) uᵀ(x − a)/‖x − a‖₂", MatMul(1 / sqrt(Trace((x - a).T * (x - a))), (x - a)), x, None),
    ("(131) ‖x‖₂² = xᵀx", x.T * x, x, None),
    # 2.7 Matrix norms
    ("(132) ‖X‖_F² = tr(XXᵀ)", Trace(X * X.T), X, None),
    ("(132) ‖X‖_F² = Σ X∘2", OneMatrix(1, k) * hadamard_power(X, 2) * OneMatrix(k, 1), X, None),
    # 2.8 Functions of matrices: the matrix exponential, which SymPy writes exp(X)
    ("(2.8) exp(X), the matrix exponential", exp(X), X, REFUSED),
    # not in the Cookbook: Kronecker products outside a trace
    ("(—) uᵀ(A ⊗ X)v", KroneckerProduct(A, X), X, None),
    ("(—) uᵀ(A ⊗ X)v by A", KroneckerProduct(A, X), A, None),
    ("(—) tr((A ⊗ X)(X ⊗ A))", Trace(KroneckerProduct(A, X) * KroneckerProduct(X, A)), X, None),
    # not in the Cookbook: the scalar functions of 1×1 forms and the diagonals the issue names
    ("(—) exp(aᵀXb)", exp(a.T * X * b), X, None),  # SymPy 1.14: 0, wrong
    ("(—) log(aᵀXb)", log(a.T * X * b), X, None),  # SymPy 1.14: 0, wrong
    ("(—) log-sum-exp log(1ᵀ exp∘(x))", log(OneMatrix(1, k) * x.applyfunc(exp)), x, None),  # SymPy 1.14: 0, wrong
    ("(—) aᵀ diag(x) b", a.T * DiagMatrix(x) * b, x, None),
    ("(—) aᵀ diag(X)", a.T * DiagonalOf(X), X, None),
]

_NAME = re.compile(r"^[A-Za-z]+$")


def _random_values(rng: np.random.Generator, *exprs) -> dict:
    """Positive entries (logarithms, roots and det stay real), square matrices made well conditioned."""
    values: dict = {"k": SIZE, "i": 1, "j": 2, "m": 1, "n": 0, "mu": 0.7}
    for expr in exprs:
        for symbol in getattr(expr, "free_symbols", ()):
            if isinstance(symbol, MatrixSymbol) and symbol.name not in values:
                shape = tuple(int(sympy.sympify(dim).subs(k, SIZE)) for dim in symbol.shape)
                array = rng.uniform(0.2, 1.0, size=shape)
                if shape[0] == shape[1] and shape[0] > 1:
                    array += 2 * np.eye(shape[0])
                values[symbol.name] = array
    return values


def _contracted(expr):
    """A scalar: a matrix-valued ``M`` becomes ``uᵀ M v`` for random vectors ``u``, ``v``."""
    if not getattr(expr, "is_Matrix", False) or expr.shape == (1, 1):
        return expr
    rows, cols = expr.shape
    u, v = MatrixSymbol("u", rows, 1), MatrixSymbol("v", cols, 1)
    if cols == 1:
        return u.T * expr
    if rows == 1:
        return expr * v
    return u.T * expr * v


def _scalar(value) -> float:
    return float(np.asarray(value, dtype=float).reshape(-1)[0]) if np.size(value) == 1 else float(value)


def _finite_difference(expr, values: dict, wrt, direction) -> float:
    """Central difference of ``expr`` along ``direction`` in ``wrt``, step 1e-6."""
    def at(step):
        moved = dict(values)
        if isinstance(wrt, sympy.Symbol):
            moved[wrt.name] = values[wrt.name] + step * direction
        elif isinstance(wrt, MatrixElement):
            array = np.array(values[wrt.parent.name], dtype=float)
            array[int(values.get(str(wrt.i), wrt.i)), int(values.get(str(wrt.j), wrt.j))] += step * direction
            moved[wrt.parent.name] = array
        else:
            moved[wrt.name] = values[wrt.name] + step * direction
        return _scalar(evaluate(expr, moved))

    h = 1e-6
    return (at(h) - at(-h)) / (2 * h)


def _check(label, expr, wrt, expected):
    scalar = _contracted(expr)
    if expected is REFUSED:
        with pytest.raises(MissingRuleError) as refusal:
            grad(scalar, wrt)
        named = set(re.findall(r"\b([A-Za-z]+)\b", str(refusal.value)))
        assert named & _unsupported_classes(), f"{label}: {refusal.value} names no listed class"
        return REFUSED
    result = grad(scalar, wrt)
    rng = np.random.default_rng(zlib.crc32(label.encode()))  # the same inputs in every process
    values = _random_values(rng, scalar, getattr(wrt, "parent", wrt))
    if isinstance(wrt, sympy.Symbol) and wrt.name not in ("k",):
        values[wrt.name] = 1.3
    if isinstance(wrt, (sympy.Symbol, MatrixElement)):
        direction = 1.0
        ours = _scalar(evaluate(result, values)) if result != 0 else 0.0
    else:
        assert result.shape == wrt.shape, label
        direction = rng.normal(size=values[wrt.name].shape)
        ours = float(np.sum(np.broadcast_to(evaluate(result, values), direction.shape) * direction))
    numeric = _finite_difference(scalar, values, wrt, direction)
    assert ours == pytest.approx(numeric, rel=1e-6, abs=1e-7), f"{label}: grad gives {result}"
    _numpy_agrees(result, scalar, wrt, values)
    for printed in (to_text(result), to_latex(result, network_names=False)):
        assert printed and "UnitMatrix" not in printed and "Determinant" not in printed
    return "right"


def _numpy_agrees(result, scalar, wrt, values) -> None:
    """The NumPy function printed for ``result`` computes what the evaluator computes."""
    if not isinstance(wrt, MatrixSymbol) or result == 0:
        return
    source = numpy_function(result, scalar, wrt, name="gradient")
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated code, not user text
    arguments = inspect.signature(namespace["gradient"]).parameters
    computed = namespace["gradient"](*(values[name] for name in arguments))
    expected = evaluate(result, values)
    np.testing.assert_allclose(np.broadcast_to(computed, np.shape(expected)), expected, rtol=1e-9, atol=1e-12)


def _unsupported_classes() -> set[str]:
    """The classes ``docs/chain-rule.md`` lists under "Unsupported"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Unsupported", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Za-z]+)`", section))


@pytest.mark.parametrize("label, expr, wrt, expected", SYMPY, ids=[c[0] for c in SYMPY])
def test_sympy_derivative_case(label, expr, wrt, expected):
    _check(label, expr, wrt, expected)


@pytest.mark.parametrize("label, expr, wrt, expected", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_matrix_cookbook_identity(label, expr, wrt, expected):
    _check(label, expr, wrt, expected)


def test_counts():
    """The note's numbers: how many cases are right and how many refused, in each table."""
    sympy_refused = sum(1 for case in SYMPY if case[3] is REFUSED)
    cookbook_refused = sum(1 for case in COOKBOOK if case[3] is REFUSED)
    assert (len(SYMPY), sympy_refused) == (117, 5)  # 112 right
    assert (len(COOKBOOK), cookbook_refused) == (85, 2)  # 83 right
    cited = {label.split(")")[0] for label, *_ in COOKBOOK if label[1].isdigit() and "." not in label.split(")")[0]}
    assert len(cited) >= 60
    assert sum(1 for label, *_ in COOKBOOK if label.split(")")[0] in cited) >= 60


# --- the forms results print in ---------------------------------------------------------------

FORMS = [
    # (expression, variable, text, LaTeX with the user's names, NumPy)
    (log(Determinant(X)), X, "X⁻ᵀ", r"X^{-\top}", "np.linalg.inv(X.T)"),
    (Determinant(X), X, "det(X) X⁻ᵀ", r"\det(X) X^{-\top}", "np.linalg.det(X) * np.linalg.inv(X.T)"),
    (x.T * B * x, x, "(B + Bᵀ) x", r"(B + B^\top) x", "(B + B.T) @ x"),
    (b.T * X.T * X * c, X, "X (b cᵀ + c bᵀ)", r"X (b c^\top + c b^\top)", "X @ (b * c.T + c * b.T)"),
    (Trace(A * X**-1 * B), X, "−X⁻ᵀ Aᵀ Bᵀ X⁻ᵀ", r"-X^{-\top} A^\top B^\top X^{-\top}",
     "-np.linalg.inv(X.T) @ A.T @ B.T @ np.linalg.inv(X.T)"),
    (log(a.T * X * b), X, "a bᵀ/(aᵀ X b)", r"\frac{a b^\top}{a^\top X b}", "(1 / (a.T @ X @ b)[0, 0]) * a * b.T"),
    ((x.T * x) ** S.Half, x, "x/√(xᵀ x)", r"\frac{x}{\sqrt{x^\top x}}", "(1/np.sqrt((x.T @ x)[0, 0])) * x"),
    (Trace(KroneckerProduct(A, X)), X, "tr(A) I", r"\operatorname{tr}(A) I", "np.trace(A) * np.eye(k)"),
    (a.T * X.applyfunc(sin) * b, X, "(a bᵀ) ⊙ cos(X)", r"(a b^\top) \odot \cos(X)", "(a * b.T) * np.cos(X)"),
    (a.T * DiagMatrix(x) * b, x, "diag(a bᵀ)", r"\operatorname{diag}(a b^\top)",
     "np.diagonal(a * b.T).reshape(-1, 1)"),
    (X[i, j], X[m, n], "δ(i, m)·δ(j, n)", r"\delta_{i m} \delta_{j n}", "float(i == m)*float(j == n)"),
]


@pytest.mark.parametrize("expr, wrt, text, latex, code", FORMS, ids=[f[2] for f in FORMS])
def test_results_print_in_the_cookbooks_form(expr, wrt, text, latex, code):
    from symbackprop.printing.numpy import NumPyCodePrinter

    result = grad(expr, wrt)
    assert to_text(result) == text
    assert to_latex(result, network_names=False) == latex
    printer = NumPyCodePrinter()
    assert (printer.full(result) if result.is_Matrix else printer.doprint(result)) == code


def test_latex_renames_a_user_x_only_in_derivations():
    result = grad(log(Determinant(X)), X)
    assert to_latex(result) == r"(a^{(0)})^{-\top}"  # the default: X is a network's input
    assert to_latex(result, network_names=False) == r"X^{-\top}"


# --- the evaluator: plain SymPy symbols and Lambdas ----------------------------------------------


def test_evaluate_binds_plain_sympy_sizes_and_scalars_by_name():
    rng = np.random.default_rng(5)
    values = {"k": 3, "A": rng.normal(size=(3, 3)), "x": rng.normal(size=(3, 1))}
    assert evaluate(Trace(k * Identity(k)), {"k": 3}) == 9.0
    np.testing.assert_allclose(evaluate(A * x, values), values["A"] @ values["x"])
    with pytest.raises(Exception, match="k"):
        evaluate(Trace(Identity(k)), {})


def test_evaluate_never_asks_for_a_lambdas_dummy():
    values = {"x": np.array([[0.1], [0.2], [0.3]])}
    np.testing.assert_allclose(evaluate(x.applyfunc(sin), values), np.sin(values["x"]))
    np.testing.assert_allclose(evaluate(x.applyfunc(lambda t: t**2 + 1), values), values["x"] ** 2 + 1)


# --- refusals name the class ------------------------------------------------------------------------


@pytest.mark.parametrize("expr, wrt, name", [
    (Trace(sympy.adjoint(X)), X, "Adjoint"),
    (Trace(A * X**k), X, "MatPow"),
    (exp(X), X, "exp"),
    (Trace(X).rewrite(Sum), X, "Sum"),
    (Trace(KroneckerProduct(A, X, B)), X, "KroneckerProduct"),
])
def test_a_refusal_is_a_symbackprop_error_naming_the_class(expr, wrt, name):
    with pytest.raises(MissingRuleError, match=name):
        grad(expr, wrt)
