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
    DiagMatrix,
    DiagonalOf,
    Determinant,
    Expr,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    KroneckerProduct,
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
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import MissingRuleError
from ..model.activations import LOG
from .expressions import (
    Broadcast,
    Deviation,
    Normalize,
    Elementwise,
    Entry,
    KroneckerAdjoint,
    LogSoftmax,
    Named,
    Softmax,
    SumEntries,
    UnitMatrix,
    hadamard,
    hadamard_power,
    spread,
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


def _inner(g: Expr, matrix: Expr) -> Expr:
    """Σ G ⊙ M, the scalar ⟨G, M⟩: tr M when G = I, Σ M when G = 1 1ᵀ (each times a scalar)."""
    if matrix.shape == (1, 1):
        return Entry(_product([g.T, matrix]))
    constant = _constant_multiple(g)
    if constant is not None:
        scale, kind = constant
        square = matrix.shape[0] == matrix.shape[1]
        return scale * (Trace(matrix) if kind is Identity and square else SumEntries(matrix))
    return SumEntries(hadamard(g, matrix))


def _constant_multiple(g) -> tuple[Expr, type] | None:
    """``(s, Identity)`` when ``g`` is s I, ``(s, OneMatrix)`` when it is s 1 1ᵀ, else None."""
    factors = g.args if isinstance(g, MatMul) else (g,)
    matrices = [f for f in factors if getattr(f, "is_Matrix", False)]
    if len(matrices) != 1 or not isinstance(matrices[0], (Identity, OneMatrix)):
        return None
    return Mul(*(f for f in factors if not getattr(f, "is_Matrix", False))), type(matrices[0])


# --- products and sums ---------------------------------------------------------


@defvjp(MatMul, "matrix product")
def _matmul(g, node, i):
    """C = f(A X B):  ∂C/∂X = Aᵀ G Bᵀ (scalar factors: ∂C/∂s = Σ G ⊙ (node / s))."""
    args = node.args
    if not args[i].is_Matrix:
        rest = MatMul(*(a for j, a in enumerate(args) if j != i)).doit(deep=False)
        return _inner(g, rest)
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
    """C = f(X^{∘k}):  ∂C/∂X = k G ⊙ X^{∘(k−1)};  ∂C/∂k = Σ G ⊙ X^{∘k} ⊙ log X."""
    base, exponent = node.args
    if getattr(exponent, "is_Matrix", False):
        raise MissingRuleError(f"the chain rule takes a scalar exponent in a Hadamard power (HadamardPower {node})")
    if i == 1:  # ∂C/∂k = Σ G ⊙ X^{∘k} ⊙ log X
        return _inner(g, hadamard(node, Elementwise(LOG.name, LOG.function, base)))
    return exponent * hadamard(g, hadamard_power(base, exponent - 1))


@defvjp(MatPow, "matrix power")
def _matpow(g, node, i):
    """C = f(Xᵏ):  ∂C/∂X = Σ_{r<k} (Xᵀ)ʳ G (Xᵀ)^{k−1−r} (integer k ≥ 1);  X⁻ᵏ = (X⁻¹)ᵏ, then Cookbook eq. 59;
    C = f(tr Xᵏ), k symbolic:  ∂C/∂X = g k (Xᵏ⁻¹)ᵀ (Cookbook eq. 121);
    a 1×1 X to any power p:  ∂C/∂X = p x^{p−1} G, ∂C/∂p = Σ(G) xᵖ log x."""
    base, exponent = node.args
    if base.shape == (1, 1) and not (exponent.is_Integer and exponent >= 1):
        entry = Entry(base)
        if i == 1:
            return SumEntries(g) * entry**exponent * sympy.log(entry)
        return exponent * entry ** (exponent - 1) * g
    constant = _constant_multiple(g)
    if i == 0 and not exponent.is_Integer and constant is not None and constant[1] is Identity:
        # tr(Xᵏ) for a symbolic k:  ∂/∂X = k (Xᵏ⁻¹)ᵀ (Cookbook eq. 121)
        return constant[0] * exponent * MatPow(base, exponent - 1).T
    if i == 1 or not (exponent.is_Integer and exponent != 0):
        raise MissingRuleError(f"the chain rule handles powers of a square matrix with a nonzero integer exponent, "
                               f"not {exponent} (MatPow {node})")
    k = int(exponent)
    power = base if k > 0 else Inverse(base)
    k = abs(k)
    terms = [_product([*([power.T**r] if r else []), g, *([power.T ** (k - 1 - r)] if k - 1 - r else [])])
             for r in range(k)]
    adjoint = MatAdd(*terms).doit(deep=False)
    if power is base:
        return adjoint
    return _inverse(adjoint, power, 0)


@defvjp(Inverse, "matrix inverse")
def _inverse(g, node, i):
    """C = f(X⁻¹):  ∂C/∂X = −X⁻ᵀ G X⁻ᵀ (Cookbook eq. 59)."""
    return -_product([node.T, g, node.T])


# --- functions applied entry by entry -------------------------------------------


@defvjp(Elementwise, "elementwise function")
def _elementwise(g, node, i):
    """C = f(φ(X)) entry by entry:  ∂C/∂X = G ⊙ φ'(X)."""
    return hadamard(g, node.derivative())


def _along(node_shape, axis: int, matrix: Expr) -> Expr:
    """Σ along ``axis`` spread back: 1 1ᵀ M (sums of columns, ``axis = 0``) or M 1 1ᵀ (of rows)."""
    rows, cols = node_shape
    if axis == 0:
        return OneMatrix(rows, 1) * (OneMatrix(1, rows) * matrix)
    return (matrix * OneMatrix(cols, 1)) * OneMatrix(1, cols)


@defvjp(Softmax, "softmax")
def _softmax(g, node, i):
    """S = softmax of each column of X:  ∂C/∂X = S ⊙ (G − 1 (1ᵀ (S ⊙ G))); rows: S ⊙ (G − ((S ⊙ G) 1) 1ᵀ)."""
    return hadamard(node, g - _along(node.shape, node.axis, hadamard(node, g)))


@defvjp(LogSoftmax, "log-softmax")
def _log_softmax(g, node, i):
    """L = log softmax of each column of X:  ∂C/∂X = G − S ⊙ (1 (1ᵀ G)); rows: G − S ⊙ ((G 1) 1ᵀ)."""
    return g - hadamard(Softmax(node.arg, node.axis), _along(node.shape, node.axis, g))


@defvjp(Normalize, "normalisation")
def _normalize(g, node, i):
    """x̂ = (x − μ) ⊘ σ along an axis of N entries (μ, σ x's own statistics), Ĝ = ∂C/∂x̂:
    ∂C/∂x = (1/N) σ^∘−1 ⊙ (N Ĝ − Σ Ĝ − x̂ ⊙ Σ(Ĝ ⊙ x̂)), sums along the axis spread back
    (Ioffe & Szegedy 2015, §3, in matrix form)."""
    if i != 0:
        raise MissingRuleError("the mean and deviation of a normalisation are its input's own statistics; "
                               "the rule for the input accounts for them")
    n = node.count
    inner = MatAdd(n * g, -_along(node.shape, node.axis, g),
                   -hadamard(node, _along(node.shape, node.axis, hadamard(g, node)))).doit(deep=False)
    scaled = hadamard(HadamardPower(spread(node.deviation, node.shape), -1), inner)
    return scaled / n


@defvjp(Deviation, "deviation")
def _deviation(g, node, i):
    """σ = √(mean((x − μ)^∘2) + ε) along an axis of N entries:  ∂C/∂x = (1/N) (x − μ) ⊙ (G ⊘ σ) spread
    (the share through μ vanishes: the deviations from the mean sum to zero)."""
    if i != 0:
        raise MissingRuleError("the mean of a deviation is its input's own statistic; "
                               "the rule for the input accounts for it")
    shape = node.arg.shape
    centred = node.arg - spread(node.mean, shape)
    return hadamard(centred, spread(hadamard(g, HadamardPower(node, -1)), shape)) / node.count


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


@defvjp(sympy.Abs, "absolute value")
def _abs(g, node, i):
    """C = f(|t|):  ∂C/∂t = g |t| / t (t ≠ 0), so log|det X| gives X⁻ᵀ (Cookbook eq. 57)."""
    (t,) = node.args
    return g * node / t


@defvjp(sympy.Function, "scalar function")
def _function(g, node, i):
    """C = f(φ(t)) for a scalar function SymPy knows (sin, tanh, ...):  ∂C/∂t = g φ'(t)."""
    try:
        return g * node.fdiff(i + 1)
    except (sympy.core.function.ArgumentIndexError, NotImplementedError, TypeError):
        raise MissingRuleError(f"the chain rule has no derivative of the function {node.func} "
                               f"in argument {i + 1} (in {node})") from None


# --- entries, diagonals and Kronecker products ------------------------------------------


@defvjp(MatrixElement, "matrix entry")
def _matrix_element(g, node, i):
    """C = f(X_ij):  ∂C/∂X = g E_ij, the matrix with one 1 at (i, j); a 1×1 X: ∂C/∂X = g."""
    parent, row, col = node.args
    if i != 0:
        raise MissingRuleError(f"the chain rule does not differentiate an entry by its index (MatrixElement {node})")
    if parent.shape == (1, 1):
        return g * OneMatrix(1, 1)
    return g * UnitMatrix(*parent.shape, row, col)


@defvjp(DiagMatrix, "diagonal matrix")
def _diag_matrix(g, node, i):
    """C = f(diag(v)):  ∂C/∂v = diag(G), the diagonal of G as a vector shaped like v."""
    vector = node.args[0]
    diagonal = DiagonalOf(g)
    return diagonal if vector.shape[1] == 1 else diagonal.T


@defvjp(DiagonalOf, "diagonal")
def _diagonal_of(g, node, i):
    """C = f(diag(X)) for a square X:  ∂C/∂X = diag(g), the diagonal matrix of the vector g."""
    rows, cols = node.args[0].shape
    if rows != cols:
        raise MissingRuleError(f"the chain rule takes the diagonal of a square matrix only, "
                               f"and {node.args[0]} is {rows}×{cols} (DiagonalOf)")
    return DiagMatrix(g)


@defvjp(KroneckerProduct, "Kronecker product")
def _kronecker(g, node, i):
    """C = f(A ⊗ B):  (∂C/∂A)_ij = ⟨G_ij, B⟩, G's (i, j) block contracted with B;  inside a trace,
    ∂ tr(A ⊗ B)/∂A = tr(B) I (Cookbook eqs. 105, 120); inside a sum of entries, Σ(B) 1 1ᵀ."""
    if len(node.args) != 2:
        raise MissingRuleError(f"the chain rule differentiates a Kronecker product of two matrices; write "
                               f"kron(A, kron(B, C)) (KroneckerProduct {node})")
    arg, other = node.args[i], node.args[1 - i]
    constant = _constant_multiple(g)
    if constant is not None:
        scale, kind = constant
        square = arg.shape[0] == arg.shape[1] and other.shape[0] == other.shape[1]
        if kind is Identity and square:
            return scale * Trace(other) * Identity(arg.shape[0])
        if kind is OneMatrix:
            return scale * SumEntries(other) * OneMatrix(*arg.shape)
    return KroneckerAdjoint(g, other, i)


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
