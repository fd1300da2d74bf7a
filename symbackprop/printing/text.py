"""Readable Unicode text of derivations, for the terminal and for ``str``.

>>> from sympy import MatrixSymbol
>>> W, d = MatrixSymbol("W2", 3, 4), MatrixSymbol("delta2", 3, 1)
>>> to_text(W.T * d)
'W⁽²⁾ᵀ δ⁽²⁾'
"""

from __future__ import annotations

from sympy import Mul, Pow, S, Transpose
from sympy.printing.str import StrPrinter

from .. import naming
from ..model.activations import ACTIVATIONS
from .common import (
    SumPrinting,
    WrittenPrinting,
    hadamard_order,
    is_reciprocal,
    is_scalar_entry,
    matrix_fraction,
    scaled_hadamard,
    shape_text,
    split_sign,
)
from .precedence import ATOM, NEGATIVE, POSTFIX, POWER, PRODUCT, precedence

__all__ = ["TextPrinter", "to_text", "superscript"]

_SUPERSCRIPT = str.maketrans("0123456789-+()L", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺⁽⁾ᴸ")
_KIND_NAMES = {"delta": "δ", "tau": "τ", "xhat": "x̂", "mu": "μ", "sigma": "σ", "gamma": "γ", "beta": "β",
               "WQ": "W_Q", "WK": "W_K", "WV": "W_V", "WO": "W_O"}


def superscript(text: str) -> str:
    return text.translate(_SUPERSCRIPT)


class TextPrinter(SumPrinting, WrittenPrinting, StrPrinter):
    """Prints matrix expressions as a textbook would, in Unicode."""

    printmethod = "_symbackprop_text"
    minus = "−"

    def parenthesize(self, item, level, strict=False):  # type: ignore[override]
        p = precedence(item)
        if p < level or (strict and p == level):
            return f"({self._print(item)})"
        return self._print(item)

    def _print_name(self, name: str) -> str:
        split = naming.split_layer_name(name)
        if split is None:
            target = naming.adjoint_target(name)
            if target is not None:
                return f"∂C/∂{self._print_name(target)}"
            target = naming.delta_target(name)
            if target is not None:
                return f"δ_{self._print_name(target)}"
            return name
        kind, layer = split
        return f"{_KIND_NAMES.get(kind, kind)}{superscript(f'({layer})')}"

    def _print_MatrixSymbol(self, expr) -> str:
        return self._print_name(expr.name)

    def _print_Named(self, expr) -> str:
        return self._print_name(expr.name)

    def _print_Adjoint(self, expr) -> str:
        return f"∂{expr.cost_name}/∂{self._print(expr.target)}"

    def _print_Elementwise(self, expr) -> str:
        registered = ACTIVATIONS.get(expr.name)
        name = registered.text_name if registered is not None else expr.name
        return f"{name}{chr(39) * expr.order}({self._print(expr.arg)})"

    def _print_Softmax(self, expr) -> str:
        return f"{'causal softmax' if expr.causal else 'softmax'}({self._print(expr.arg)})"

    def _print_Constant(self, expr) -> str:
        return self._print_name(expr.name)

    def _print_Deviation(self, expr) -> str:
        return f"√({self._print(expr.variance())} + ε)"

    def _print_LogSoftmax(self, expr) -> str:
        return f"log softmax({self._print(expr.arg)})"

    def _print_Broadcast(self, expr) -> str:
        vector = self.parenthesize(expr.vector, POSTFIX)
        if expr.along_both:
            return f"1 {vector} 1ᵀ"
        return f"{vector} 1ᵀ" if expr.along_columns else f"1 {vector}"

    def _print_SumEntries(self, expr) -> str:
        return f"Σ({self._print(expr.arg)})"

    def _print_OneMatrix(self, expr) -> str:
        """A column of ones is 1, a row 1ᵀ, a matrix 1 1ᵀ: the shape shows in a product."""
        rows, cols = expr.shape
        if cols == 1:
            return "1"
        if rows == 1:
            return "1ᵀ"
        return "1 1ᵀ"

    def _print_Identity(self, expr) -> str:
        return "1" if expr.shape == (1, 1) else "I"

    def _print_ZeroMatrix(self, expr) -> str:
        return "0"

    def _print_Transpose(self, expr) -> str:
        return f"{self.parenthesize(expr.arg, POSTFIX)}ᵀ"

    def _print_Trace(self, expr) -> str:
        return f"tr({self._print(expr.arg)})"

    def _print_Determinant(self, expr) -> str:
        return f"det({self._print(expr.arg)})"

    def _print_Inverse(self, expr) -> str:
        if isinstance(expr.arg, Transpose):  # X⁻ᵀ, as the Cookbook writes it
            return f"{self.parenthesize(expr.arg.arg, POSTFIX)}⁻ᵀ"
        return f"{self.parenthesize(expr.arg, POSTFIX)}⁻¹"

    def _print_MatPow(self, expr) -> str:
        base, exponent = expr.args
        if isinstance(base, Transpose) and exponent.is_Integer:
            return f"{self.parenthesize(base.arg, POSTFIX)}{superscript(str(exponent)).replace('-', '⁻')}ᵀ"
        if exponent.is_Integer:
            return f"{self.parenthesize(base, POSTFIX)}{superscript(str(exponent))}"
        if exponent == S.Half:
            return f"√{self.parenthesize(base, ATOM, strict=True) if precedence(base) < ATOM else self._print(base)}"
        return f"{self.parenthesize(base, POSTFIX)}^({self._print(exponent)})"

    def _print_KroneckerProduct(self, expr) -> str:
        return " ⊗ ".join(self.parenthesize(a, PRODUCT, strict=True) for a in expr.args)

    def _print_KroneckerAdjoint(self, expr) -> str:
        other = self.parenthesize(expr.other, PRODUCT, strict=True)
        slot = f"· ⊗ {other}" if expr.side == 0 else f"{other} ⊗ ·"
        return f"⟨{self._print(expr.adjoint)}, {slot}⟩"

    def _print_DiagMatrix(self, expr) -> str:
        return f"diag({self._print(expr.args[0])})"

    def _print_DiagonalOf(self, expr) -> str:
        return f"diag({self._print(expr.arg)})"

    def _print_UnitMatrix(self, expr) -> str:
        return f"J^({self._print(expr.row)},{self._print(expr.col)})"

    def _print_MatrixElement(self, expr) -> str:
        if is_scalar_entry(expr):  # the one entry of a 1×1 matrix is that matrix, read as a scalar
            return self._print(expr.parent)
        return f"{self.parenthesize(expr.parent, POSTFIX)}[{self._print(expr.i)}, {self._print(expr.j)}]"

    def _print_KroneckerDelta(self, expr) -> str:
        return f"δ({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Abs(self, expr) -> str:
        return f"|{self._print(expr.args[0])}|"

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        return f"{self._print(expr.function.expr.func)}∘({self._print(expr.expr)})"

    def _print_product(self, factors, separator: str) -> str:
        negative, factors = split_sign(factors)
        sign = "−" if negative else ""
        printed = [self.parenthesize(f, PRODUCT) for f in factors]
        out = printed[0] if printed else ""
        for before, after in zip(printed, printed[1:]):
            # "2·1 1ᵀ", not "2 1 1ᵀ", which reads as 21
            out += ("·" if before[-1:].isdigit() and after[:1].isdigit() else separator) + after
        return sign + out

    def _print_MatMul(self, expr) -> str:
        divided = matrix_fraction(expr)
        if divided is not None:
            factors, denominator = divided
            return f"{self._print_product(factors, ' ')}/{self.parenthesize(denominator, POWER)}"
        scale, hadamard = scaled_hadamard(expr)
        if hadamard is not None:
            return self._print_HadamardProduct(hadamard, scale)
        return self._print_product(expr.args, " ")

    def _print_Mul(self, expr) -> str:
        numerator, denominator = [], []
        for factor in Mul.make_args(expr):
            if isinstance(factor, Pow) and factor.exp.is_negative and factor.exp.is_Rational:
                denominator.append(Pow(factor.base, -factor.exp))
            elif factor.is_Rational and not factor.is_Integer:
                numerator.append(factor.p)
                denominator.append(factor.q)
            else:
                numerator.append(factor)
        numerator = [f for f in numerator if f != 1] or [1]
        top = self._print_product(sorted(numerator, key=lambda f: not getattr(f, "is_number", False)), "·")
        if not denominator:
            return top
        bottom = "·".join(self.parenthesize(f, POWER) for f in denominator)
        return f"{top}/{bottom}" if len(denominator) == 1 else f"{top}/({bottom})"

    def _print_HadamardProduct(self, expr, scale=None) -> str:
        numerator = hadamard_order(a for a in expr.args if not is_reciprocal(a))
        denominator = [a.args[0] for a in expr.args if is_reciprocal(a)]
        printed = [self.parenthesize(f, PRODUCT, strict=True) for f in numerator] or ["1"]
        if scale is not None:
            printed[0] = self._print_product([scale], " ") + " " + printed[0] if scale not in (1, -1) \
                else ("−" if scale == -1 else "") + printed[0]
        top = " ⊙ ".join(printed)
        for factor in denominator:
            top += f" ⊘ {self.parenthesize(factor, PRODUCT, strict=True)}"
        return top

    def _print_HadamardPower(self, expr) -> str:
        base, exponent = expr.args
        if exponent == -1:
            return f"1 ⊘ {self.parenthesize(base, PRODUCT, strict=True)}"
        return f"{self.parenthesize(base, POWER, strict=True)}^∘{self.parenthesize(exponent, ATOM)}"

    def _print_Pow(self, expr, rational=False) -> str:
        if expr.exp.is_negative:
            return self._print_Mul(expr)
        if expr.exp == S.Half:
            return f"√{self.parenthesize(expr.base, ATOM, strict=True) if precedence(expr.base) < ATOM else self._print(expr.base)}"
        return f"{self.parenthesize(expr.base, POWER, strict=True)}^{self.parenthesize(expr.exp, ATOM)}"

    def _print_Rational(self, expr) -> str:
        return f"{expr.p}/{expr.q}"

    def _print_Integer(self, expr) -> str:
        return str(expr.p) if expr.p >= 0 else f"−{-expr.p}"

    def _print_Symbol(self, expr) -> str:
        return expr.name


def to_text(expr) -> str:
    """``expr`` as readable Unicode text."""
    return TextPrinter().doprint(expr)


assert NEGATIVE < PRODUCT  # a negated product needs parentheses inside another product


def render_text(derivation) -> str:
    """The whole derivation as readable text: shapes, forward pass, cost, backward pass, gradients."""
    lines = [
        derivation.program.header,
        "",
        "shapes:",
    ]
    for name, symbol in derivation.symbols.items():
        lines.append(f"  {to_text(symbol)} ∈ R^({shape_text(symbol.shape)})")
    lines += ["", "forward pass:"]
    for node in derivation.forward:
        lines.append(f"  {to_text(node)} = {to_text(node.definition)}")
    lines += ["", "cost:", f"  C = {to_text(derivation.cost)}", "", "backward pass:"]
    for step in derivation.steps:
        general, rhs = to_text(step.general), to_text(step.rhs)
        body = rhs if general == rhs else f"{general} = {rhs}"
        lines.append(f"  {to_text(step.lhs)} = {body}    [{step.rule}]")
        if step.note:
            lines.append(f"      assuming {step.note}")
    lines += ["", "gradients:"]
    for name, gradient in derivation.gradients.items():
        lines.append(f"  ∂C/∂{to_text(derivation.symbols[name])} = {to_text(gradient)}")
    return "\n".join(lines) + "\n"
