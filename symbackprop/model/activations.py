"""The activation registry: one entry per activation function.

An entry gives the scalar definition as a SymPy expression in ``x``; its
derivative is derived by SymPy, never typed in.  ``output_derivative`` states
the textbook identity that writes the derivative through the output
``y = f(x)`` as a polynomial in ``y`` (``σ' = σ(1 − σ)``); the tests prove each
identity against the derived derivative, and the chain rule uses it to reach forms such as
``δ = a − y``.  ``runtime`` names the stable NumPy implementation in
:mod:`symbackprop.calculus.runtime`.

Adding an activation is adding one entry to :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import sympy
from sympy import (
    Expr,
    Lambda,
    Piecewise,
    Rational,
    exp,
    log,
    sqrt,
    tanh,
)

from ..errors import FormulaError, FormulaSyntaxError, SpecError, UnknownNameError
from ..calculus.expressions import SCALAR_VARIABLE as x
from ..calculus.expressions import Elementwise, Softmax

__all__ = [
    "Activation",
    "ACTIVATIONS",
    "LOG",
    "SQRT",
    "EXP",
    "MATH_FUNCTIONS",
    "get_activation",
    "custom_activation",
]

#: the output variable of ``output_derivative`` identities
y = sympy.Symbol("y", real=True)


@dataclass(frozen=True)
class Activation:
    """An activation function.

    ``definition`` is ``None`` only for softmax, which is not elementwise.
    """

    name: str
    latex: str
    definition: Expr | None
    output_derivative: Expr | None = None
    runtime: str | None = None
    last_layer_only: bool = False
    formula: str | None = field(default=None, compare=False)
    text: str | None = None

    @property
    def text_name(self) -> str:
        """How plain text writes the function (``σ`` for the sigmoid)."""
        return self.text or self.name

    @property
    def is_elementwise(self) -> bool:
        return self.definition is not None

    @cached_property
    def function(self) -> Lambda:
        """The scalar function as a SymPy ``Lambda``."""
        if self.definition is None:
            raise TypeError(f"{self.name} is not an elementwise function")
        return Lambda(x, self.definition)

    @cached_property
    def derivative(self) -> Expr:
        """The scalar derivative, derived by SymPy from the definition."""
        if self.definition is None:
            raise TypeError(f"{self.name} is not an elementwise function")
        # from the definition, not from the Lambda: SymPy turns Lambda(x, x) into
        # the identity function, whose variable is not x
        return sympy.diff(self.definition, x)

    def apply(self, z, axis: int = 0):
        """This activation applied to the matrix expression ``z``."""
        if self.definition is None:
            return Softmax(z, axis)
        return Elementwise(self.name, self.function, z)

    def __call__(self, z, axis: int = 0):
        return self.apply(z, axis)


def _piecewise_linear(negative_slope) -> Expr:
    return Piecewise((x, x > 0), (negative_slope * x, True))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", r"\operatorname{id}", x, sympy.Integer(1), "identity", text="id"),
        Activation("sigmoid", r"\sigma", 1 / (1 + exp(-x)), y * (1 - y), "sigmoid", text="σ"),
        Activation("tanh", r"\tanh", tanh(x), 1 - y**2, "tanh"),
        Activation("relu", r"\operatorname{ReLU}", _piecewise_linear(0), None, "relu", text="ReLU"),
        Activation("leaky_relu", r"\operatorname{LReLU}", _piecewise_linear(Rational(1, 100)), None, "leaky_relu",
                   text="LReLU"),
        Activation("softplus", r"\operatorname{softplus}", log(1 + exp(x)), None, "softplus"),
        Activation("softmax", r"\operatorname{softmax}", None, None, "softmax", last_layer_only=True),
    )
}

#: the logarithm, an elementwise function the cross-entropy costs use (not an activation)
LOG = Activation("log", r"\log", log(x), None, "log")
#: the square root and the exponential, entry by entry, for forward passes written as formulas (not activations)
SQRT = Activation("sqrt", r"\sqrt", sqrt(x), None, "sqrt")
EXP = Activation("exp", r"\exp", exp(x), y, "exp")

#: the elementwise functions that are not activations: ``log``, ``sqrt``, ``exp``, by name
MATH_FUNCTIONS: dict[str, Activation] = {a.name: a for a in (LOG, SQRT, EXP)}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def get_activation(name: "str | Activation", *, where: str = "activation") -> Activation:
    """Look up an activation by name, or build a custom one from a formula in ``x``.

    A bare word that is not a registered name is an error listing the known
    names; anything else is read as a formula in ``x`` (``"x**3"``).

    >>> get_activation("sigmoid").latex
    '\\\\sigma'
    >>> get_activation("x**3").derivative
    3*x**2
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise SpecError(f"{where} must be a name or a formula in x, not {type(name).__name__}")
    key = name.strip()
    if key in ACTIVATIONS:
        return ACTIVATIONS[key]
    if _IDENTIFIER.match(key) and key != "x":
        raise UnknownNameError("activation", key, sorted(ACTIVATIONS) + ["or a formula in x such as 'x**3'"])
    return custom_activation(key)


def custom_activation(formula: str, name: str = "phi", latex: str | None = None) -> Activation:
    """An activation given by a scalar formula in ``x``, parsed safely (no eval).

    >>> cube = custom_activation("x**3", name="cube")
    >>> cube.definition, cube.derivative
    (x**3, 3*x**2)
    """
    from ..language.scalar import parse_scalar  # the parser is only needed for custom activations

    if not _IDENTIFIER.match(name):
        raise SpecError(f"custom activation name {name!r} is not an identifier")
    if name in ACTIVATIONS:
        raise SpecError(f"custom activation name {name!r} is taken by a built-in activation")
    try:
        definition = parse_scalar(formula, {"x": x})
    except (FormulaError, FormulaSyntaxError) as err:
        raise SpecError(f"custom activation {formula!r}: {err}") from None
    if definition.free_symbols - {x}:
        raise SpecError(f"custom activation {formula!r} must be a formula of x alone")
    if definition.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan, sympy.I):
        raise SpecError(f"custom activation {formula!r} is not a finite real function ({definition})")
    if latex is None:
        latex = r"\phi" if name == "phi" else rf"\operatorname{{{name}}}"
    return Activation(name, latex, definition, formula=formula)
