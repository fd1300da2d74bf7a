r"""LaTeX of derivations, in the notation papers use.

Layer superscripts in parentheses, ``\odot`` for the Hadamard product, ``\sigma'``
for the derivative of a named activation, ``^\top`` for transposes, ``\mathbf{1}``
for vectors of ones.  The input ``X`` prints as ``a^{(0)}`` and the targets ``Y``
as ``y`` (see :mod:`symbackprop.naming`).

>>> from sympy import MatrixSymbol
>>> W, d = MatrixSymbol("W2", 3, 4), MatrixSymbol("delta2", 3, 1)
>>> to_latex(W.T * d)
'W^{(2)\\top} \\delta^{(2)}'
>>> to_latex(W.T * d, bold=True)
'\\mathbf{W}^{(2)\\top} \\boldsymbol{\\delta}^{(2)}'

Settings (``_default_settings``) beyond SymPy's own:

* ``bold`` — matrices and vectors in bold (``\mathbf{W}``, ``\boldsymbol{\delta}``);
* ``symbols`` — names written another way: a quantity (``"W1"``, ``"X"``, ``"Y"``,
  ``"C"``) or a kind of per-layer quantity (``"W"``, ``"delta"``) → LaTeX;
* ``functions`` — activation names → LaTeX (``"sigmoid"`` → ``\sigma``);
* ``scalar`` — every quantity is 1×1: print ordinary products and powers and no
  transposes, factors ordered as commutative algebra orders them (``2 a (a w - y)``);
* ``layer_labels`` — layer numbers → labels (``{2: "l", 3: "l+1"}``), for the
  general form of a step.  A renamed quantity (``symbols={"a3": r"\hat{Y}"}``)
  keeps its symbol where its layer is labelled ``L``, the output layer, which
  is that one layer in any general form; under any other label (``l``, ``l+1``)
  it is written by its kind;
* ``generic_activations`` — with ``layer_labels``, write every activation as
  ``\sigma_{l}``, subscripted by its layer's label;
* ``gradient`` — ``"partial"`` (the default) writes a gradient ``\frac{\partial C}{\partial W}``,
  ``"nabla"`` writes it ``\nabla_{W} C``;
* ``sized_ones`` — write a vector of ones with its length, ``\mathbf{1}_{m}``, so that
  ``\mathbf{1}_{m} b`` cannot read as the number one times ``b``;
* ``network_names`` — read names as a network's quantities (the default): ``X``
  prints as ``a^{(0)}``, ``Y`` as ``y``, ``W2`` as ``W^{(2)}``.  ``False`` prints
  every name as itself, as :func:`symbackprop.grad` results of general
  expressions need (``X`` stays ``X``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from sympy import (
    Add,
    Basic,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatrixSymbol,
    Mul,
    OneMatrix,
    Pow,
    S,
    Symbol,
    Transpose,
    ZeroMatrix,
)
from sympy.printing.latex import LatexPrinter as SympyLatexPrinter

from .. import naming
from ..model.activations import ACTIVATIONS, MATH_FUNCTIONS
from ..calculus.expressions import Adjoint, Broadcast, Elementwise, Named, Softmax, SumEntries
from .precedence import ATOM, HADAMARD, NEGATIVE, POSTFIX, POWER, PRODUCT, precedence
from .common import (
    SumPrinting,
    WrittenPrinting,
    hadamard_order,
    is_reciprocal,
    is_scalar_entry,
    matrix_fraction,
    scaled_hadamard,
    split_sign,
)

__all__ = ["LatexPrinter", "to_latex", "superscript", "DEFAULT_FUNCTIONS", "KINDS", "OUTPUT_LABEL"]

#: the layer label of the output layer: under it a renamed quantity keeps its symbol in the general form
OUTPUT_LABEL = "L"

#: how each kind of per-layer quantity is written
KINDS: dict[str, str] = {"W": "W", "b": "b", "z": "z", "a": "a", "delta": r"\delta",
                         "xhat": r"\hat{x}", "mu": r"\mu", "sigma": r"\sigma", "gamma": r"\gamma",
                         "beta": r"\beta", "WQ": "W_Q", "WK": "W_K", "WV": "W_V", "WO": "W_O", "Q": "Q",
                         "K": "K", "V": "V", "S": "S", "P": "P", "O": "O", "E": "E", "M": "M", "tau": r"\tau"}

#: activation names (and ``log``, ``sqrt``, ``exp``) → LaTeX
DEFAULT_FUNCTIONS: dict[str, str] = {name: a.latex for name, a in (*ACTIVATIONS.items(), *MATH_FUNCTIONS.items())}

_TARGET = "y"
#: SymPy function names that are LaTeX commands (\sin, \exp)
_LATEX_FUNCTIONS = frozenset("sin cos tan cot sec csc sinh cosh tanh coth exp log arcsin arccos arctan".split())
_TRAILING_SUPERSCRIPT = re.compile(r"\^\{((?:[^{}]|\{[^{}]*\})*)\}$")
_TRAILING_SCRIPT = re.compile(r"\^(\\[A-Za-z]+|[^{}\\])$|\^\{((?:[^{}]|\{[^{}]*\})*)\}$")


def _ends_with_superscript(latex: str) -> bool:
    """True when the last atom of ``latex`` carries a superscript: another one would be a double superscript."""
    return _TRAILING_SCRIPT.search(latex) is not None


def superscript(base: str, script: str) -> str:
    r"""``base`` with a superscript, merged into a superscript ``base`` already carries.

    >>> superscript("W^{(2)}", r"\top")
    'W^{(2)\\top}'
    >>> superscript("x", r"\top")
    'x^\\top'
    >>> superscript("x", r"\circ 2")
    'x^{\\circ 2}'
    """
    match = _TRAILING_SUPERSCRIPT.search(base)
    if match is not None:
        return f"{base[: match.start()]}^{{{match.group(1)}{script}}}"
    if _ends_with_superscript(base):
        base = f"{{{base}}}"
    return f"{base}^{script}" if script == r"\top" else f"{base}^{{{script}}}"


def _bold(base: str) -> str:
    return rf"\boldsymbol{{{base}}}" if base.startswith("\\") else rf"\mathbf{{{base}}}"


def _tall(latex: str) -> bool:
    return r"\frac" in latex


class LatexPrinter(SumPrinting, WrittenPrinting, SympyLatexPrinter):
    """Prints symbackprop's matrix expressions as a paper would."""

    printmethod = "_symbackprop_latex"
    _default_settings: dict[str, Any] = {
        **SympyLatexPrinter._default_settings,
        "bold": False,
        "symbols": {},
        "functions": {},
        "scalar": False,
        "layer_labels": None,
        "generic_activations": False,
        "network_names": True,
        "gradient": "partial",
        "sized_ones": False,
    }

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(dict(settings or {}))
        self._functions = {**DEFAULT_FUNCTIONS, **self._settings["functions"]}
        self._scalar_names: dict[Symbol, str] = {}

    # --- entry point -----------------------------------------------------------

    def doprint(self, expr) -> str:
        if self._settings["scalar"]:
            expr = self._scalar_form(expr)
        return super().doprint(expr)

    def _scalar_form(self, expr):
        """A 1×1 matrix expression as the scalar expression it stands for.

        Each opaque 1×1 quantity becomes a commutative symbol named by its
        LaTeX, so SymPy orders factors as algebra does (``a w``, not ``w a``).
        """
        if not getattr(expr, "is_Matrix", False) and not expr.has(MatrixSymbol, Named, Adjoint):
            return expr
        if isinstance(expr, (MatAdd, Add)):
            return Add(*(self._scalar_form(a) for a in expr.args))
        if isinstance(expr, (MatMul, Mul, HadamardProduct)):
            factors = [self._scalar_form(a) for a in expr.args]
            if len(factors) == 2 and factors[0].is_Number and factors[1].is_Add:
                return Mul(*factors, evaluate=False)  # 2 (a − y), not 2a − 2y
            return Mul(*factors)
        if isinstance(expr, (HadamardPower, Pow)):
            return Pow(self._scalar_form(expr.args[0]), expr.args[1])
        if isinstance(expr, (Transpose, SumEntries, Broadcast)):
            return self._scalar_form(expr.args[0])
        if isinstance(expr, (OneMatrix, Identity)):
            return Add(1)
        if isinstance(expr, ZeroMatrix):
            return Add(0)
        if isinstance(expr, (Elementwise, Softmax)):
            return self._scalar_symbol(self._call(expr, self.doprint(expr.arg)))
        return self._scalar_symbol(self._print(expr))

    def factor(self, expr) -> str:
        """``expr`` as a factor of a product, in parentheses when it needs them."""
        if self._settings["scalar"]:
            expr = self._scalar_form(expr)
        return self.parenthesize(expr, PRODUCT)

    def _scalar_symbol(self, latex: str) -> Symbol:
        symbol = Symbol(latex)
        self._scalar_names[symbol] = latex
        return symbol

    # --- grouping --------------------------------------------------------------

    def _bracket(self, inner: str, left: str = "(", right: str = ")") -> str:
        """Brackets, made taller around a fraction.

        Never ``\\left``/``\\right``: a group they enclose cannot be broken across lines.
        """
        if _tall(inner):
            return rf"\biggl{left}{inner}\biggr{right}"
        return f"{left}{inner}{right}"

    def parenthesize(self, item, level, is_neg=False, strict=False) -> str:  # type: ignore[override]
        p = precedence(item)
        if p < level or (strict and p == level):
            return self._bracket(self._print(item))
        return self._print(item)

    # --- names -----------------------------------------------------------------

    def name(self, name: str) -> str:
        """The LaTeX of a quantity's name: ``"W2"`` → ``W^{(2)}``, ``"X"`` → ``a^{(0)}``."""
        symbols: Mapping[str, str] = self._settings["symbols"]
        labels: Mapping[int, str] | None = self._settings["layer_labels"]
        if not self._settings["network_names"]:
            return symbols.get(name, self._deal_with_super_sub(name))
        if name == naming.TARGET:
            return symbols.get(name, _bold(_TARGET) if self._settings["bold"] else _TARGET)
        split = ("a", 0) if name == naming.INPUT else naming.split_layer_name(name)
        if name in symbols and (labels is None or split is None or labels.get(split[1]) == OUTPUT_LABEL):
            return symbols[name]
        if split is None:
            target = naming.adjoint_target(name)
            if target is not None:
                cost = symbols.get(naming.COST, naming.COST)
                return rf"\frac{{\partial {cost}}}{{\partial {self.name(target)}}}"
            target = naming.delta_target(name)
            if target is not None:
                return rf"{self.kind('delta')}_{{{self.name(target)}}}"
            return self._deal_with_super_sub(name)
        kind, layer = split
        return f"{self.kind(kind)}^{{({self.layer(layer)})}}"

    def kind(self, kind: str) -> str:
        """How a kind of per-layer quantity is written: ``"delta"`` → ``\\delta``."""
        if kind in self._settings["symbols"]:
            return self._settings["symbols"][kind]
        base = KINDS[kind]
        return _bold(base) if self._settings["bold"] else base

    def layer(self, layer: int) -> str:
        labels = self._settings["layer_labels"]
        return labels.get(layer, str(layer)) if labels is not None else str(layer)

    def _print_MatrixSymbol(self, expr) -> str:
        return self.name(expr.name)

    def _print_Named(self, expr) -> str:
        return self.name(expr.name)

    def _print_Symbol(self, expr, style="plain") -> str:
        if expr in self._scalar_names:
            return self._scalar_names[expr]
        return super()._print_Symbol(expr, style)

    def _print_Adjoint(self, expr) -> str:
        cost = self._settings["symbols"].get(expr.cost_name, expr.cost_name)
        if self._settings["gradient"] == "nabla":
            return rf"\nabla_{{{self._print(expr.target)}}} {cost}"
        return rf"\frac{{\partial {cost}}}{{\partial {self._print(expr.target)}}}"

    # --- functions -------------------------------------------------------------

    def _function_name(self, expr) -> str:
        if isinstance(expr, Softmax):
            return self._functions["softmax"]
        name = self._functions.get(expr.name, rf"\{expr.name}" if expr.name in _LATEX_FUNCTIONS
                                   else rf"\operatorname{{{expr.name}}}")
        if self._settings["generic_activations"] and expr.name not in MATH_FUNCTIONS:
            split = naming.split_layer_name(getattr(expr.arg, "name", ""))
            if split is not None:
                name = rf"\sigma_{{{self.layer(split[1])}}}"
        return name + "'" * expr.order

    def _call(self, expr, inner: str) -> str:
        """The function of ``expr`` applied to the printed ``inner``: ``\\sigma(z)``, ``\\sqrt{v}``."""
        name = self._function_name(expr)
        root = r"\sqrt"
        if name.startswith(root) and isinstance(expr, Elementwise):  # a root takes its argument in braces
            marks = name[len(root):]
            return rf"\sqrt{{{inner}}}" if not marks else rf"(\sqrt{{\cdot}}){marks}{self._bracket(inner)}"
        return name + self._bracket(inner)

    def _print_Elementwise(self, expr) -> str:
        return self._call(expr, self._print(expr.arg))

    def _print_Softmax(self, expr) -> str:
        name = self._function_name(expr)
        if expr.causal:
            name += r"_{\mathrm{causal}}"
        return name + self._bracket(self._print(expr.arg))

    def _print_Constant(self, expr) -> str:
        return self.name(expr.name)

    def _print_Deviation(self, expr) -> str:
        return rf"\sqrt{{{self._print(expr.variance())} + \epsilon}}"

    def _print_LogSoftmax(self, expr) -> str:
        return r"\log " + self._functions["softmax"] + self._bracket(self._print(expr.arg))

    def _ones(self, length) -> str:
        """A vector of ones, of ``length`` with the ``sized_ones`` setting."""
        return rf"\mathbf{{1}}_{{{self._print(length)}}}" if self._settings["sized_ones"] else r"\mathbf{1}"

    def _print_Broadcast(self, expr) -> str:
        vector = self.parenthesize(expr.vector, POSTFIX)
        rows, cols = expr.shape
        if expr.along_both:
            return f"{self._ones(rows)} {vector} {self._ones(cols)}^\\top"
        return f"{vector} {self._ones(cols)}^\\top" if expr.along_columns else f"{self._ones(rows)} {vector}"

    def _print_SumEntries(self, expr) -> str:
        arg = expr.arg
        if isinstance(arg, HadamardPower) and arg.args[1] == 2:
            return self._bracket(self._print(arg.args[0]), r"\lVert ", r" \rVert") + "_F^2"
        return rf"\sum_{{i,j}} {self._bracket(self._print(arg), '[', ']')}_{{ij}}"

    def _print_Trace(self, expr) -> str:
        return r"\operatorname{tr}" + self._bracket(self._print(expr.arg))

    def _print_Determinant(self, expr) -> str:
        return r"\det" + self._bracket(self._print(expr.arg))

    # --- constant matrices -----------------------------------------------------

    def _print_OneMatrix(self, expr) -> str:
        return self._ones(expr.shape[0])

    def _ones_factor(self, expr) -> str:
        """A matrix of ones as a factor of a product: ``1``, ``1ᵀ`` or ``1 1ᵀ`` by its shape."""
        rows, cols = expr.shape
        if cols == 1:
            return self._ones(rows)
        if rows == 1:
            return self._ones(cols) + r"^\top"
        return self._ones(rows) + r"\," + self._ones(cols) + r"^\top"  # the thin space keeps it from reading as 11

    def _print_Identity(self, expr) -> str:
        return "I"

    def _print_ZeroMatrix(self, expr) -> str:
        return r"\mathbf{0}"

    # --- postfix ---------------------------------------------------------------

    def _print_Transpose(self, expr) -> str:
        if isinstance(expr.arg, Inverse):
            return self._print_Inverse(Inverse(Transpose(expr.arg.arg)))
        printed = self.parenthesize(expr.arg, POSTFIX)
        if _tall(printed) and not printed.startswith(("(", r"\biggl(", r"\left(")):
            printed = self._bracket(printed)  # (∂C/∂S)ᵀ, not a fraction with a superscript on its bar
        return superscript(printed, r"\top")

    def _print_Inverse(self, expr) -> str:
        if isinstance(expr.arg, Transpose):  # X^{-\top}, as the Cookbook writes it
            return self._power(expr.arg.arg, r"-\top")
        return self._power(expr.arg, "-1")

    def _print_KroneckerProduct(self, expr) -> str:
        return r" \otimes ".join(self.parenthesize(a, PRODUCT, strict=True) for a in expr.args)

    def _print_KroneckerAdjoint(self, expr) -> str:
        other = self.parenthesize(expr.other, PRODUCT, strict=True)
        slot = rf"\cdot \otimes {other}" if expr.side == 0 else rf"{other} \otimes \cdot"
        return rf"\langle {self._print(expr.adjoint)}, {slot} \rangle"

    def _print_DiagMatrix(self, expr) -> str:
        return r"\operatorname{diag}" + self._bracket(self._print(expr.args[0]))

    def _print_DiagonalOf(self, expr) -> str:
        return r"\operatorname{diag}" + self._bracket(self._print(expr.arg))

    def _print_UnitMatrix(self, expr) -> str:
        return rf"J^{{{self._print(expr.row)},{self._print(expr.col)}}}"

    def _print_MatrixElement(self, expr) -> str:
        if is_scalar_entry(expr):  # the one entry of a 1×1 matrix is that matrix, read as a scalar
            return self._print(expr.parent)
        return f"{self.parenthesize(expr.parent, POSTFIX)}_{{{self._print(expr.i)},{self._print(expr.j)}}}"

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        return rf"{self._print(expr.function.expr.func)}_{{\circ}}" + self._bracket(self._print(expr.expr))

    def _print_MatPow(self, expr) -> str:
        return self._power(expr.args[0], self._print(expr.args[1]))

    def _power(self, base, exponent: str) -> str:
        printed = self.parenthesize(base, POWER, strict=True)
        if _ends_with_superscript(printed):  # (a^{(1)})^{2}, never a^{(1) 2}
            printed = self._bracket(printed)
        return f"{printed}^{{{exponent}}}"

    def _print_HadamardPower(self, expr) -> str:
        base, exponent = expr.args
        if exponent == -1:
            return rf"\mathbf{{1}} \oslash {self.parenthesize(base, PRODUCT, strict=True)}"
        return self._power(base, rf"\circ {self._print(exponent)}")

    def _print_Pow(self, expr, rational=False) -> str:
        if expr.exp.is_negative:
            return self._print_Mul(expr)
        if expr.exp == S.Half:
            return rf"\sqrt{{{self._print(expr.base)}}}"
        return self._power(expr.base, self._print(expr.exp))

    # --- sums and products -------------------------------------------------------

    def _print_product(self, factors) -> str:
        negative, factors = split_sign(factors)
        sign = "-" if negative else ""
        printed = [
            self._ones_factor(f) if isinstance(f, OneMatrix) else self.parenthesize(f, PRODUCT) for f in factors
        ]
        joined = printed[0] if printed else ""
        for current in printed[1:]:
            # a factor that starts with a digit needs a visible product sign: 2 \cdot 3, not 23
            joined += (r" \cdot " if current[:1].isdigit() else " ") + current
        return sign + joined

    def _print_MatMul(self, expr) -> str:
        divided = matrix_fraction(expr)
        if divided is not None:
            factors, denominator = divided
            negative, factors = split_sign(factors)
            top = self._print(factors[0]) if len(factors) == 1 else self._print_product(factors) if factors else "1"
            return rf"{'-' if negative else ''}\frac{{{top}}}{{{self._print(denominator)}}}"
        scale, hadamard = scaled_hadamard(expr)
        if hadamard is not None:
            return self._print_HadamardProduct(hadamard, scale)
        return self._print_product(expr.args)

    def _print_Mul(self, expr) -> str:
        numbers, others, denominator = [], [], []
        for factor in Mul.make_args(expr):
            if isinstance(factor, Pow) and factor.exp.is_negative and factor.exp.is_Rational:
                denominator.append(Pow(factor.base, -factor.exp))
            elif factor.is_Rational and not factor.is_Integer:
                numbers.append(factor.p)
                denominator.append(factor.q)
            elif getattr(factor, "is_number", False):
                numbers.append(factor)
            else:
                others.append(factor)
        coefficient = Mul(*numbers)
        # numbers that do not multiply out (2 pi) are printed one by one, never as a Mul of themselves again
        leading = [coefficient] if not isinstance(coefficient, Mul) else list(coefficient.args)
        if not denominator:
            return self._print_product([*leading, *others] if numbers else others)
        sign = "-" if coefficient.is_negative else ""
        bottom = " ".join(self.parenthesize(f, PRODUCT) for f in denominator)
        fraction = rf"{sign}\frac{{{self._print(abs(coefficient))}}}{{{bottom}}}"
        return " ".join([fraction, *(self.parenthesize(f, PRODUCT) for f in others)])

    def _print_HadamardProduct(self, expr, scale=None) -> str:
        numerator = hadamard_order(a for a in expr.args if not is_reciprocal(a))
        denominator = [a.args[0] for a in expr.args if is_reciprocal(a)]
        printed = [self.parenthesize(f, PRODUCT, strict=True) for f in numerator] or [r"\mathbf{1}"]
        if scale is not None:
            if scale == -1:
                printed[0] = "-" + printed[0]
            elif scale != 1:
                printed[0] = self._print_product([scale]) + " " + printed[0]
        top = r" \odot ".join(printed)
        for factor in denominator:
            top += rf" \oslash {self.parenthesize(factor, PRODUCT, strict=True)}"
        return top

    def _print_Rational(self, expr) -> str:
        sign = "-" if expr.p < 0 else ""
        return rf"{sign}\frac{{{abs(expr.p)}}}{{{expr.q}}}"

    def _print_Integer(self, expr) -> str:
        return str(expr.p)

    def _print_Pi(self, expr) -> str:  # SymPy's own LaTeX for it is a method our printmethod does not call
        return r"\pi"


assert NEGATIVE < HADAMARD < PRODUCT < POWER < POSTFIX < ATOM  # the order parenthesize relies on


def to_latex(expr: Basic, **settings: Any) -> str:
    """``expr`` as LaTeX in symbackprop's notation; ``settings`` as :class:`LatexPrinter` takes."""
    return LatexPrinter(settings).doprint(expr)
