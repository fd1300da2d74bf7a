"""Scalar formulas (custom activations) from the formula parser's tree to SymPy.

Only what is listed here can appear: the variables the caller names, the
constants ``e`` and ``pi``, the functions in :data:`FUNCTIONS`, numbers,
``+ - * /``, juxtaposition and powers with a small constant exponent.  The
text is parsed by :mod:`symbackprop.language.syntax`; nothing is evaluated.

>>> from sympy import Symbol
>>> x = Symbol("x")
>>> parse_scalar("log(1 + exp(x))", {"x": x})
log(exp(x) + 1)
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Callable, Mapping

import sympy

from . import syntax as ast
from ..errors import FormulaError

__all__ = ["parse_scalar", "FUNCTIONS", "MAX_EXPONENT", "MAX_DIGITS"]

#: the largest |exponent| a power may have, so ``9**9**9**9`` is refused, not computed
MAX_EXPONENT = 64
#: the most digits a constant's numerator or denominator may have (after the first), so that every
#: constant is within float64's range (1e±308) and ``(9**64)**64`` is refused, not computed
MAX_DIGITS = 308
_LARGEST = 10**MAX_DIGITS

FUNCTIONS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "ln": sympy.log,
    "sqrt": sympy.sqrt,
    "tanh": sympy.tanh,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "atan": sympy.atan,
    "arctan": sympy.atan,
    "abs": sympy.Abs,
    "sigmoid": lambda t: 1 / (1 + sympy.exp(-t)),
    "sigma": lambda t: 1 / (1 + sympy.exp(-t)),
}

CONSTANTS = {"e": sympy.E, "pi": sympy.pi}

_NUMBER = re.compile(r"^(\d*\.?\d*)(?:[eE]([+-]?\d+))?$")


def number(text: str) -> sympy.Rational:
    """A number literal as an exact rational, refusing absurd exponents (``1e99999999``)."""
    match = _NUMBER.match(text)
    if match is None or match.group(1) in ("", "."):
        raise FormulaError(f"{text!r} is not a number")
    if len(match.group(1)) > MAX_DIGITS or (match.group(2) is not None and abs(int(match.group(2))) > 300):
        raise FormulaError(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is out of range")
    value = Fraction(text)
    return sympy.Rational(value.numerator, value.denominator)


def parse_scalar(text: str, variables: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    """Parse ``text`` as a scalar formula in ``variables`` (e.g. ``{"x": x}``)."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, not {type(text).__name__}")
    tree = ast.parse(text)
    known = [*variables, *CONSTANTS, *(f"{f}(...)" for f in FUNCTIONS)]
    return _Builder(variables, known).build(tree)


class _Builder:
    def __init__(self, variables: Mapping[str, sympy.Symbol], known: list[str]) -> None:
        self.variables = variables
        self.known = known

    def build(self, node: ast.Node) -> sympy.Expr:
        method = getattr(self, f"_{type(node).__name__}")
        return method(node)

    def _Number(self, node: ast.Number) -> sympy.Expr:
        return _checked(number(node.text), node)

    def _Name(self, node: ast.Name) -> sympy.Expr:
        if node.layer is not None:
            raise FormulaError(f"a scalar formula has no layers ({node.id} at position {node.pos})")
        if node.id in self.variables:
            return self.variables[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise FormulaError(f"unknown name {node.id!r} at position {node.pos}; known: {', '.join(self.known)}")

    def _Call(self, node: ast.Call) -> sympy.Expr:
        function = FUNCTIONS.get(node.func)
        if function is None:
            raise FormulaError(f"unknown function {node.func!r}; known: {', '.join(sorted(FUNCTIONS))}")
        if node.derivative:
            raise FormulaError(f"write the derivative of {node.func} out; {node.func}{chr(39) * node.derivative}(...) "
                               "is not allowed in a scalar formula")
        if len(node.args) != 1:
            raise FormulaError(f"{node.func} takes one argument, not {len(node.args)}")
        return _checked(function(self.build(node.args[0])), node)

    def _Neg(self, node: ast.Neg) -> sympy.Expr:
        return -self.build(node.operand)

    def _Transpose(self, node: ast.Transpose) -> sympy.Expr:
        raise FormulaError(f"a scalar formula has no transposes (position {node.pos})")

    def _Entry(self, node: ast.Entry) -> sympy.Expr:
        raise FormulaError(f"a scalar formula has no entries (position {node.pos})")

    def _BinOp(self, node: ast.BinOp) -> sympy.Expr:
        if node.op in ("matmul", "hdiv"):
            raise FormulaError(f"a scalar formula uses + - * / and powers, not {node.op} (position {node.pos})")
        left = self.build(node.left)
        right = self.build(node.right)
        return _checked(self._operation(node, left, right), node)

    def _operation(self, node: ast.BinOp, left: sympy.Expr, right: sympy.Expr) -> sympy.Expr:
        if node.op == "add":
            return left + right
        if node.op == "sub":
            return left - right
        if node.op in ("mul", "juxt", "hadamard"):
            return left * right
        if node.op == "div":
            if right == 0:
                raise FormulaError(f"division by zero at position {node.pos}")
            return left / right
        if node.op == "pow":
            if right.free_symbols or not right.is_number or not right.is_real or abs(right) > MAX_EXPONENT:
                raise FormulaError(
                    f"an exponent must be a number from {-MAX_EXPONENT} to {MAX_EXPONENT} (position {node.pos})")
            for base in (left, *(left.args if isinstance(left, sympy.Mul) else ())):
                if base.is_Rational and base != 0:  # refuse before computing: (9**64)**64 has 3 900 digits
                    digits = abs(float(right)) * max(math.log10(abs(base.p)), math.log10(base.q))
                    if digits > MAX_DIGITS:
                        raise FormulaError(f"a constant in the power at position {node.pos} is out of range: it "
                                           f"would have about {digits:.0f} digits (at most {MAX_DIGITS})")
            if left == 0 and right < 0:
                raise FormulaError(f"division by zero at position {node.pos}")
            return left**right
        raise FormulaError(f"unsupported operator {node.op}")


def _checked(value: sympy.Expr, node: ast.Node) -> sympy.Expr:
    """``value``, unless a number in it (itself, a factor or a term) is beyond float64's range: a rational
    with more than :data:`MAX_DIGITS` digits, or a constant such as ``exp(9e300)`` larger than 1e308."""
    for part in (value, *(value.args if isinstance(value, (sympy.Mul, sympy.Add, sympy.Pow)) else ())):
        if part.is_Rational:
            if not (abs(part.p) <= _LARGEST and part.q <= _LARGEST):
                raise FormulaError(f"a constant at position {node.pos} is out of range: it has more than "
                                   f"{MAX_DIGITS + 1} digits (float64 reaches about 1e308)")
        elif part.is_number and not _within_float64(part):
            raise FormulaError(f"a constant at position {node.pos} is out of range: {str(part)[:40]} is beyond "
                               f"float64's range (about 1e308)")
    return value


def _within_float64(constant: sympy.Expr) -> bool:
    """Whether a constant expression (``exp(700)``, ``2*pi``) is at most float64's largest number in size."""
    if constant.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):  # not a number: refused by the caller, by name
        return True
    try:
        value = complex(constant.evalf(15))
    except (TypeError, ValueError, ZeroDivisionError):  # not a number (zoo, nan): refused elsewhere, by name
        return True
    except (OverflowError, ArithmeticError):  # mpmath's exponent beyond its own range
        return False
    return abs(value) <= 1.7976931348623157e308
