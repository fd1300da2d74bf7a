"""Operator precedence shared by the printers, covering symbackprop's own classes."""

from __future__ import annotations

from sympy import (
    Add,
    HadamardPower,
    HadamardProduct,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatPow,
    Mul,
    Pow,
    Transpose,
)
from sympy.matrices.expressions.matexpr import MatrixElement

from ..calculus.expressions import Normalize

ADD = 40
PRODUCT = 50
HADAMARD = 48
NEGATIVE = 45
POWER = 60
POSTFIX = 70
ATOM = 1000


def precedence(expr) -> int:
    """How tightly ``expr`` binds when printed; a lower value gets parentheses sooner."""
    if isinstance(expr, MatrixElement) and getattr(expr.parent, "shape", None) == (1, 1):
        return precedence(expr.parent)  # printed as the 1×1 matrix itself
    if isinstance(expr, KroneckerProduct):
        return PRODUCT
    if isinstance(expr, (MatAdd, Add)):
        return ADD
    if isinstance(expr, (MatMul, Mul)):
        coefficient = expr.args[0] if expr.args else 1
        if getattr(coefficient, "is_number", False) and coefficient.is_negative:
            return NEGATIVE
        return PRODUCT
    if isinstance(expr, (HadamardProduct, Normalize)):  # x̂ prints as (x − μ) ⊘ σ
        return HADAMARD
    if isinstance(expr, (HadamardPower, Pow, MatPow)):
        return POWER
    if isinstance(expr, Transpose):
        return POSTFIX
    if getattr(expr, "is_Number", False) and expr.is_negative:
        return NEGATIVE
    if getattr(expr, "is_Rational", False) and not expr.is_Integer:
        return PRODUCT
    return ATOM
