"""What the printers share: how a textbook orders terms and factors, and how it writes a sum.

Every printer writes ``a − y`` rather than SymPy's ``-y + a``, puts an
activation's derivative last in a Hadamard product (``∂C/∂a ⊙ σ'(z)``) and
writes ``c (A ⊙ B)`` as ``c A ⊙ B``; keeping those rules here keeps the text,
LaTeX and Markdown renderings of one derivation alike.
"""

from __future__ import annotations

from sympy import Add, HadamardPower, HadamardProduct, MatMul, MatrixExpr, Mul, fraction

from ..calculus.expressions import Elementwise
from .precedence import ADD

__all__ = [
    "is_negative",
    "is_reciprocal",
    "is_scalar_entry",
    "matrix_fraction",
    "positive_first",
    "hadamard_order",
    "scaled_hadamard",
    "split_sign",
    "shape_text",
    "SumPrinting",
]


def shape_text(shape) -> str:
    """``(n_1, 3)`` → ``'n_1×3'``, as messages and documents write a matrix's shape."""
    return "×".join(str(d) for d in shape)


def split_sign(factors) -> tuple[bool, list]:
    """``(negative, factors)``: a leading −1 dropped, a negative leading number made positive."""
    factors = list(factors)
    if factors and getattr(factors[0], "is_number", False):
        if factors[0] == -1:
            return True, factors[1:]
        if factors[0].is_negative:
            return True, [-factors[0], *factors[1:]]
    return False, factors


def is_negative(term) -> bool:
    """A term printed with a leading minus sign."""
    if isinstance(term, (MatMul, Mul)) and term.args:
        first = term.args[0]
        return bool(getattr(first, "is_number", False) and first.is_negative)
    return bool(getattr(term, "is_number", False) and term.is_negative)


def positive_first(terms):
    """Positive terms first, so ``-Y + a2`` reads ``a2 − Y``; order otherwise kept."""
    return sorted(terms, key=is_negative)


def is_reciprocal(factor) -> bool:
    """``X^∘−1``, printed as a Hadamard division."""
    return isinstance(factor, HadamardPower) and factor.args[1] == -1


def is_scalar_entry(expr) -> bool:
    """``M[0, 0]`` of a 1×1 matrix ``M``: printers write it as ``M``, the scalar it holds."""
    parent = expr.args[0]
    return getattr(parent, "shape", None) == (1, 1) and expr.args[1] == 0 and expr.args[2] == 0


def matrix_fraction(expr):
    """``(factors, denominator)`` when the scalar of a matrix product divides by a quantity made of
    matrices (``x / √(xᵀx)``, ``a bᵀ / (aᵀXb)``), which printers write as a fraction; else None."""
    if not isinstance(expr, MatMul):
        return None
    coefficient = Mul(*(a for a in expr.args if not a.is_Matrix))
    numerator, denominator = fraction(coefficient)
    if denominator == 1 or not denominator.has(MatrixExpr):
        return None
    matrices = [a for a in expr.args if a.is_Matrix]
    return ([numerator] if numerator != 1 else []) + matrices, denominator


def hadamard_order(factors):
    """Hadamard factors as a textbook orders them: activation derivatives last, ``∂C/∂a ⊙ σ'(z)``."""
    return sorted(factors, key=lambda f: isinstance(f, Elementwise) and f.order > 0)


def scaled_hadamard(expr):
    """``(c, H)`` when ``expr`` is a scalar times a Hadamard product, else ``(None, None)``.

    Printers write ``c (A ⊙ B)`` as the textbook's ``c A ⊙ B``: a scale
    commutes with the Hadamard product.
    """
    if isinstance(expr, MatMul) and len(expr.args) == 2 and not expr.args[0].is_Matrix \
            and isinstance(expr.args[1], HadamardProduct):
        return expr.args[0], expr.args[1]
    return None, None


class SumPrinting:
    """``_print_`` methods for sums, for a printer that sets ``minus`` (``−`` or ``-``)."""

    minus = "-"

    def _print_sum(self, terms) -> str:
        out = ""
        for index, term in enumerate(positive_first(terms)):
            if is_negative(term):
                body = self.parenthesize(-term, ADD, strict=bool(index))
                out += f" {self.minus} {body}" if index else f"{self.minus}{body}"
            else:
                out += (" + " if index else "") + self.parenthesize(term, ADD)
        return out

    def _print_MatAdd(self, expr) -> str:
        return self._print_sum(expr.args)

    def _print_Add(self, expr, order=None) -> str:
        return self._print_sum(Add.make_args(expr))


class WrittenPrinting:
    """``_print_`` methods for classes that a text or LaTeX printer writes as the matrices they are made of."""

    def _print_Normalize(self, expr) -> str:
        return self._print(expr.written())  # (x − 1μ) ⊘ 1σ
