"""The vector-Jacobian rules of the matrix chain rule: one per expression class, in one table.

:data:`VJP` holds one rule per class.  A rule takes the adjoint ``G = ∂C/∂node``
(shaped like ``node``), the node and the index of one of its arguments, and
returns that argument's share of ``∂C/∂arg``.  Its docstring is the identity it
implements, in the Matrix Cookbook's terms.  :mod:`.autodiff` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy
from sympy import (
    Add,
    Basic,
    Determinant,
    Expr,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    Lambda,
    MatAdd,
    MatMul,
    MatPow,
    MatrixSymbol,
    Mul,
    OneMatrix,
    Pow,
    Trace,
    Transpose,
    ZeroMatrix,
)
from sympy.core.symbol import Str

from ..errors import MissingRuleError
from .expressions import (
    Broadcast,
    Elementwise,
    LogSoftmax,
    Named,
    Softmax,
    SumEntries,
    hadamard,
    hadamard_power,
)

__all__ = ["VJP", "VJPRule", "defvjp", "rule_for"]

Rule = Callable[[Expr, Basic, int], Expr]


@dataclass(frozen=True)
class VJPRule:
    """A vector-Jacobian rule and the name a derivation prints for it."""

    name: str
    function: Rule


#: expression class → its vector-Jacobian rule
VJP: dict[type, VJPRule] = {}


def defvjp(cls: type, name: str) -> Callable[[Rule], Rule]:
    """Register ``function(G, node, i) -> ∂C/∂node.args[i]`` as the rule for ``cls``."""

    def register(function: Rule) -> Rule:
        VJP[cls] = VJPRule(name, function)
        return function

    return register


def _product(factors: list[Expr]) -> Expr:
    return factors[0] if len(factors) == 1 else MatMul(*factors).doit(deep=False)


# --- products and sums ---------------------------------------------------------


@defvjp(MatMul, "matrix product")
def _matmul(g, node, i):
    """C = f(A X B):  ∂C/∂X = Aᵀ G Bᵀ (scalar factors: ∂C/∂s = Σ G ⊙ (node / s))."""
    args = node.args
    if not args[i].is_Matrix:
        rest = MatMul(*(a for j, a in enumerate(args) if j != i)).doit(deep=False)
        return SumEntries(hadamard(g, rest))
    scalars = Mul(*(a for a in args if not a.is_Matrix))
    left = [a for a in args[:i] if a.is_Matrix]
    right = [a for a in args[i + 1 :] if a.is_Matrix]
    factors = ([_product(left).T] if left else []) + [g] + ([_product(right).T] if right else [])
    return scalars * _product(factors)


@defvjp(MatAdd, "sum")
def _matadd(g, node, i):
    """C = f(A + X):  ∂C/∂X = G."""
    return g


@defvjp(Transpose, "transpose")
def _transpose(g, node, i):
    """C = f(Xᵀ):  ∂C/∂X = Gᵀ."""
    return g.T


@defvjp(HadamardProduct, "Hadamard product")
def _hadamard(g, node, i):
    """C = f(A ⊙ X):  ∂C/∂X = G ⊙ A."""
    return hadamard(g, *(a for j, a in enumerate(node.args) if j != i))


@defvjp(HadamardPower, "Hadamard power")
def _hadamard_power(g, node, i):
    """C = f(X^{∘k}):  ∂C/∂X = k G ⊙ X^{∘(k−1)} (constant k)."""
    base, exponent = node.args
    if i == 1:
        raise MissingRuleError("the chain rule does not differentiate a Hadamard power by its exponent")
    return exponent * hadamard(g, hadamard_power(base, exponent - 1))


@defvjp(MatPow, "matrix power")
def _matpow(g, node, i):
    """C = f(Xᵏ):  ∂C/∂X = Σ_{r<k} (Xᵀ)ʳ G (Xᵀ)^{k−1−r} (integer k ≥ 1)."""
    base, exponent = node.args
    if i == 1 or not (exponent.is_Integer and exponent >= 1):
        raise MissingRuleError(f"the chain rule handles matrix powers with a positive integer exponent, not {exponent}")
    k = int(exponent)
    terms = [_product([*([base.T**r] if r else []), g, *([base.T ** (k - 1 - r)] if k - 1 - r else [])])
             for r in range(k)]
    return MatAdd(*terms).doit(deep=False)


@defvjp(Inverse, "matrix inverse")
def _inverse(g, node, i):
    """C = f(X⁻¹):  ∂C/∂X = −X⁻ᵀ G X⁻ᵀ (Cookbook eq. 59)."""
    return -_product([node.T, g, node.T])


# --- functions applied entry by entry -------------------------------------------


@defvjp(Elementwise, "elementwise function")
def _elementwise(g, node, i):
    """C = f(φ(X)) entry by entry:  ∂C/∂X = G ⊙ φ'(X)."""
    return hadamard(g, node.derivative())


@defvjp(Softmax, "softmax")
def _softmax(g, node, i):
    """S = softmax of each column of X:  ∂C/∂X = S ⊙ (G − 1 (1ᵀ (S ⊙ G))); rows: S ⊙ (G − ((S ⊙ G) 1) 1ᵀ)."""
    rows, cols = node.shape
    weighted = hadamard(node, g)
    if node.axis == 0:
        spread = OneMatrix(rows, 1) * (OneMatrix(1, rows) * weighted)
    else:
        spread = (weighted * OneMatrix(cols, 1)) * OneMatrix(1, cols)
    return hadamard(node, g - spread)


@defvjp(LogSoftmax, "log-softmax")
def _log_softmax(g, node, i):
    """L = log softmax of each column of X:  ∂C/∂X = G − S ⊙ (1 (1ᵀ G)); rows: G − S ⊙ ((G 1) 1ᵀ)."""
    rows, cols = node.shape
    probabilities = Softmax(node.arg, node.axis)
    if node.axis == 0:
        spread = OneMatrix(rows, 1) * (OneMatrix(1, rows) * g)
    else:
        spread = (g * OneMatrix(cols, 1)) * OneMatrix(1, cols)
    return g - hadamard(probabilities, spread)


@defvjp(Broadcast, "bias broadcast")
def _broadcast(g, node, i):
    """C = f(b 1ᵀ):  ∂C/∂b = G 1;   C = f(1 b):  ∂C/∂b = 1ᵀ G;   C = f(1 b 1ᵀ):  ∂C/∂b = 1ᵀ G 1."""
    rows, cols = node.shape
    if node.along_both:
        return OneMatrix(1, rows) * g * OneMatrix(cols, 1)
    if node.along_columns:
        return g * OneMatrix(cols, 1)
    return OneMatrix(1, rows) * g


# --- scalars made of matrices ------------------------------------------------------


@defvjp(SumEntries, "sum of entries")
def _sum_entries(g, node, i):
    """C = f(Σᵢⱼ Xᵢⱼ):  ∂C/∂X = g 1 1ᵀ."""
    return g * OneMatrix(*node.arg.shape)


@defvjp(Trace, "trace")
def _trace(g, node, i):
    """C = f(tr X):  ∂C/∂X = g I (Cookbook eq. 100)."""
    return g * Identity(node.arg.shape[0])


@defvjp(Determinant, "determinant")
def _determinant(g, node, i):
    """C = f(det X):  ∂C/∂X = g det(X) X⁻ᵀ (Cookbook eq. 49)."""
    return g * node * Inverse(node.arg).T


@defvjp(Add, "sum")
def _add(g, node, i):
    """C = f(s + t):  ∂C/∂t = g."""
    return g


@defvjp(Mul, "scalar product")
def _mul(g, node, i):
    """C = f(s t):  ∂C/∂t = g s."""
    return g * Mul(*(a for j, a in enumerate(node.args) if j != i))


@defvjp(Pow, "scalar power")
def _pow(g, node, i):
    """C = f(tᵏ):  ∂C/∂t = g k tᵏ⁻¹;  ∂C/∂k = g tᵏ log t."""
    base, exponent = node.args
    if i == 1:
        return g * node * sympy.log(base)
    return g * exponent * base ** (exponent - 1)


@defvjp(sympy.log, "logarithm")
def _log(g, node, i):
    """C = f(log t):  ∂C/∂t = g / t."""
    return g / node.args[0]


@defvjp(sympy.exp, "exponential")
def _exp(g, node, i):
    """C = f(eᵗ):  ∂C/∂t = g eᵗ."""
    return g * node


# --- names ---------------------------------------------------------------------------


@defvjp(Named, "definition")
def _named(g, node, i):
    """A named quantity passes its adjoint to its definition."""
    return g


# ---------------------------------------------------------------------------------------


def rule_for(node: Basic) -> VJPRule:
    """The rule registered for ``node``'s class (or the nearest base class)."""
    for cls in type(node).__mro__:
        rule = VJP.get(cls)
        if rule is not None:
            return rule
    raise MissingRuleError(
        f"the chain rule has no rule for {type(node).__name__} (in {node}); "
        f"known: {', '.join(sorted(c.__name__ for c in VJP))}"
    )
