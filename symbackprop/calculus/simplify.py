"""Bringing derived expressions to the compact forms a textbook prints.

The chain rule produces correct but raw expressions (``1 ⊙ 2(A − Y)``,
``−Y ⊘ A + (1 − Y) ⊘ (1 − A)``).  :func:`tidy` rewrites every maximal
elementwise part of an expression — sums, Hadamard products and powers, scalar
multiples, matrices of ones — as an ordinary scalar expression in which each
other matrix is a symbol, lets SymPy simplify that, and keeps the result only
when it is shorter.  This is sound because elementwise algebra on matrices of
one shape is the commutative algebra of their entries.
"""

from __future__ import annotations

from typing import Callable

import sympy
from sympy import (
    Add,
    Basic,
    Expr,
    HadamardPower,
    HadamardProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    Mul,
    OneMatrix,
    Pow,
    Symbol,
    Transpose,
    ZeroMatrix,
)

from .expressions import SCALAR_VARIABLE as _X
from .expressions import LEAVES, Elementwise, Named, hadamard, hadamard_power, is_ones

__all__ = ["tidy", "operation_count"]


def _is_scalar_multiple(node: Basic) -> bool:
    return isinstance(node, MatMul) and sum(1 for a in node.args if a.is_Matrix) == 1


def _is_elementwise(node: Basic) -> bool:
    return isinstance(node, (MatAdd, HadamardProduct, HadamardPower)) or _is_scalar_multiple(node)


def _algebraic(node: Elementwise) -> Expr | None:
    """The scalar function of ``node`` when it is no longer than its name, else None.

    Such functions (the identity, its derivative 1, log' = 1/x) are written
    out, so that ``G ⊙ id'(Z)`` becomes ``G`` and ``G ⊙ log'(A)`` becomes
    ``G ⊘ A``; every other function keeps its name (``σ'(z)``, ``φ'(z)``).
    """
    function = node.scalar_function()
    (variable,) = function.variables
    expr = function.expr.xreplace({variable: _X})
    return expr if expr.is_rational_function(_X) and operation_count(expr) <= 1 else None


class _Atoms:
    """Matrices that are opaque to elementwise algebra, each given a scalar symbol."""

    def __init__(self) -> None:
        self.symbol_of: dict[Expr, Symbol] = {}
        self.matrix_of: dict[Symbol, Expr] = {}

    def symbol(self, matrix: Expr) -> Symbol:
        symbol = self.symbol_of.get(matrix)
        if symbol is None:
            # deterministic names, unusable in user text (which rejects a leading underscore)
            symbol = Symbol(f"_m{len(self.symbol_of)}")
            self.symbol_of[matrix] = symbol
            self.matrix_of[symbol] = matrix
        return symbol


class _Tidier:
    def __init__(self) -> None:
        self.memo: dict[Basic, Basic] = {}

    def __call__(self, node: Basic) -> Basic:
        result = self.memo.get(node)
        if result is None:
            result = self._tidy(node)
            self.memo[node] = result
        return result

    def _tidy(self, node: Basic) -> Basic:
        if isinstance(node, (*LEAVES, Named)) or not node.args or not isinstance(node, Expr):
            return node
        if getattr(node, "is_Matrix", False) and _is_elementwise(node):
            return self._elementwise(node)
        args = tuple(self(a) for a in node.args)
        if args == node.args:
            rebuilt = node
        elif isinstance(node, HadamardProduct):
            rebuilt = hadamard(*args)
        else:
            rebuilt = node.func(*args)
        if isinstance(rebuilt, (MatMul, MatAdd, Transpose)):
            rebuilt = rebuilt.doit(deep=False)
        return rebuilt

    def _elementwise(self, node: Expr) -> Expr:
        atoms = _Atoms()
        scalar = self._to_scalar(node, atoms)
        best = _shortest_form(scalar, set(atoms.matrix_of))
        return _from_scalar(best, atoms, node.shape)

    def _to_scalar(self, node: Expr, atoms: _Atoms) -> Expr:
        if isinstance(node, MatAdd):
            return Add(*(self._to_scalar(a, atoms) for a in node.args))
        if isinstance(node, HadamardProduct):
            return Mul(*(self._to_scalar(a, atoms) for a in node.args))
        if isinstance(node, HadamardPower):
            return Pow(self._to_scalar(node.args[0], atoms), node.args[1])
        if _is_scalar_multiple(node):
            return Mul(*(self._to_scalar(a, atoms) if a.is_Matrix else self._coefficient(a, atoms) for a in node.args))
        if is_ones(node):
            return sympy.Integer(1)
        if isinstance(node, ZeroMatrix):
            return sympy.Integer(0)
        if isinstance(node, Elementwise):
            inlined = _algebraic(node)
            if inlined is not None:
                return inlined.subs(_X, self._to_scalar(self(node.arg), atoms))
        tidied = self(node)
        if tidied != node and getattr(tidied, "is_Matrix", False) and _is_elementwise(tidied):
            return self._to_scalar(tidied, atoms)
        return atoms.symbol(tidied)


    def _coefficient(self, scalar: Expr, atoms: _Atoms) -> Expr:
        """A scalar factor; one made of matrices (tr X, (aᵀXb)[0, 0]) is an opaque symbol, since
        SymPy's polynomial algebra cannot take noncommutative parts apart."""
        if scalar.is_number or not scalar.has(MatrixExpr):
            return scalar
        return Mul(*(f if f.is_number or not f.has(MatrixExpr) else atoms.symbol(self(f)) for f in Mul.make_args(scalar)))


def operation_count(expr: Expr) -> int:
    """How long an expression reads: SymPy's operation count, used to pick the shorter form."""
    return int(sympy.count_ops(expr, visual=False))


def _is_monomial(expr: Expr, atoms: set[Symbol]) -> bool:
    factors = Mul.make_args(expr)
    return all(
        f.is_Number or f in atoms or (f.is_Pow and f.base in atoms and f.exp.is_Integer and f.exp > 0)
        or not (f.free_symbols & atoms)
        for f in factors
    )


def _shortest_form(expr: Expr, atoms: set[Symbol]) -> Expr:
    if _is_monomial(expr, atoms):
        return expr
    best, best_count = expr, operation_count(expr)
    # factor_terms first: on a tie the earlier candidate wins, and it pulls out a
    # common factor without the sign flips of factor (2(a − y), not −2(y − a))
    for candidate in (sympy.factor_terms(expr), sympy.factor_terms(sympy.cancel(expr)), sympy.factor(expr)):
        count = operation_count(candidate)
        if count < best_count:
            best, best_count = candidate, count
    return best


def _from_scalar(expr: Expr, atoms: _Atoms, shape) -> Expr:
    matrices = {s for s, m in atoms.matrix_of.items() if getattr(m, "is_Matrix", False)}
    if expr in matrices:
        return atoms.matrix_of[expr]
    if not (expr.free_symbols & matrices):
        if expr == 0:
            return ZeroMatrix(*shape)
        expr = expr.xreplace(atoms.matrix_of)
        return expr * OneMatrix(*shape) if expr != 1 else OneMatrix(*shape)
    if expr.is_Add:
        return MatAdd(*(_from_scalar(t, atoms, shape) for t in expr.args)).doit(deep=False)
    if expr.is_Pow:
        return hadamard_power(_from_scalar(expr.base, atoms, shape), expr.exp)
    if expr.is_Mul:
        coefficient, factors = [], []
        for factor in expr.args:
            if factor.free_symbols & matrices:
                factors.append(_from_scalar(factor, atoms, shape))
            else:
                coefficient.append(factor.xreplace(atoms.matrix_of))
        matrices = factors
        product = hadamard(*matrices)
        scale = Mul(*coefficient)
        # no doit: SymPy would distribute the scale over a sum, 2(A − Y) → 2A − 2Y
        return product if scale == 1 else MatMul(scale, product)
    raise TypeError(f"cannot write {expr} back as a matrix expression")


def tidy(expr: Expr) -> Expr:
    """``expr`` in a canonical, compact form; the same input always gives the same output.

    >>> from sympy import MatrixSymbol, OneMatrix
    >>> A, Y = MatrixSymbol("A", 3, 2), MatrixSymbol("Y", 3, 2)
    >>> tidy(hadamard(OneMatrix(3, 2), 2 * (A - Y)))
    2*(A - Y)
    """
    return _Tidier()(expr)
