"""The matrix chain rule: reverse mode over a SymPy expression tree.

:data:`VJP` holds one vector-Jacobian rule per expression class.  A rule takes
the adjoint ``G = ∂C/∂node`` (shaped like ``node``), the node and the index of
one of its arguments, and returns that argument's share of ``∂C/∂arg``.  Its
docstring is the identity it implements, in the Matrix Cookbook's terms.

:func:`backward` knows no operation: it orders the nodes, walks them from the
root down, looks each rule up in the table and adds up the contributions of
every node that feeds several others.  Adding an operation is adding a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

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

from .errors import MissingRuleError, SymbackpropError
from .expressions import Broadcast, Elementwise, LogSoftmax, Named, Softmax, SumEntries

__all__ = ["VJP", "VJPRule", "defvjp", "backward", "Backward", "grad", "hadamard", "hadamard_power", "is_ones"]

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


def is_ones(matrix: Expr) -> bool:
    """A matrix of ones; SymPy writes the 1×1 one as an identity matrix."""
    return isinstance(matrix, OneMatrix) or (isinstance(matrix, Identity) and matrix.shape == (1, 1))


def hadamard(*factors: Expr) -> Expr:
    """The Hadamard product, without SymPy folding ``A ⊙ A`` into a power."""
    first = factors[0]
    factors = tuple(f for f in factors if not is_ones(f))
    if not factors:
        return OneMatrix(*first.shape)
    if len(factors) == 1:
        return factors[0]
    return HadamardProduct(*factors, evaluate=False)


def hadamard_power(base: Expr, exponent) -> Expr:
    exponent = sympy.sympify(exponent)
    if exponent == 1:
        return base
    if exponent == 0:
        return OneMatrix(*base.shape)
    return HadamardPower(base, exponent)


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
    """C = f(b 1ᵀ):  ∂C/∂b = G 1;   C = f(1 b):  ∂C/∂b = 1ᵀ G."""
    rows, cols = node.shape
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


_LEAVES = (MatrixSymbol, Lambda, Str, OneMatrix, Identity, ZeroMatrix)


def _depending_nodes(root: Basic, targets: frozenset) -> tuple[list[Basic], set[Basic]]:
    """The nodes below ``root`` that depend on a target, children before parents.

    Iterative depth-first search with a memo, so shared subexpressions are
    visited once and deep networks do not hit Python's recursion limit.
    """
    depends: dict[Basic, bool] = {}
    order: list[Basic] = []
    stack: list[tuple[Basic, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in depends:
            continue
        if node in targets:
            depends[node] = True
            order.append(node)
            continue
        if isinstance(node, _LEAVES) or not node.args or node.is_Number:
            depends[node] = False
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.args) if child not in depends)
            continue
        depends[node] = any(depends[child] for child in node.args)
        if depends[node]:
            order.append(node)
    return order, {n for n, d in depends.items() if d}


def _accumulate(total: Expr | None, contribution: Expr) -> Expr:
    if total is None:
        return contribution
    if total.is_Matrix:
        return MatAdd(total, contribution).doit(deep=False)
    return total + contribution


@dataclass(frozen=True)
class Backward:
    """The result of a reverse pass: each target's adjoint and the rules applied, in order."""

    adjoints: dict
    rules: tuple[str, ...]


def backward(root: Expr, seed: Expr, targets: Iterable[Basic]) -> Backward:
    """Propagate ``seed = ∂C/∂root`` down to ``targets``.

    Targets are treated as leaves: the pass does not look inside a target that
    is a :class:`~symbackprop.expressions.Named` quantity.  A target ``root``
    does not depend on gets no entry in ``adjoints``.
    """
    targets = frozenset(targets)
    order, depending = _depending_nodes(root, targets)
    adjoint: dict[Basic, Expr] = {root: seed}
    rules: list[str] = []
    for node in reversed(order):
        if node in targets:
            continue
        g = adjoint.pop(node, None)
        if g is None:
            continue
        rule = rule_for(node)
        if rule.name not in rules:
            rules.append(rule.name)
        for i, child in enumerate(node.args):
            if child in depending:
                adjoint[child] = _accumulate(adjoint.get(child), rule.function(g, node, i))
    return Backward({t: adjoint[t] for t in targets if t in adjoint}, tuple(rules))


def grad(expr: Expr, wrt: MatrixSymbol) -> Expr:
    """The gradient of a scalar matrix expression: entry ``(i, j)`` is ``∂expr/∂wrt[i, j]``.

    ``expr`` is a scalar (``Trace``, :class:`SumEntries`, their sums and
    products) or a 1×1 matrix expression; ``wrt`` a ``MatrixSymbol`` or a
    :class:`~symbackprop.expressions.Named` quantity.  The result has ``wrt``'s
    shape.

    >>> from sympy import MatrixSymbol, Trace
    >>> A, X, B = MatrixSymbol("A", 2, 3), MatrixSymbol("X", 3, 4), MatrixSymbol("B", 4, 2)
    >>> grad(Trace(A * X * B), X)
    A.T*B.T
    """
    from .simplify import tidy

    if not isinstance(expr, Basic):
        raise SymbackpropError(f"grad needs a SymPy expression, not {type(expr).__name__}")
    if not isinstance(wrt, (MatrixSymbol, Named)):
        raise SymbackpropError(f"grad differentiates with respect to a MatrixSymbol, not {type(wrt).__name__} {wrt}")
    if getattr(expr, "is_Matrix", False):
        if expr.shape != (1, 1):
            raise SymbackpropError(f"grad needs a scalar expression; this one is {expr.shape[0]}×{expr.shape[1]}")
        seed: Expr = OneMatrix(1, 1)
    elif isinstance(expr, Expr):
        seed = sympy.Integer(1)
    else:
        raise SymbackpropError(f"grad needs a SymPy expression, not {type(expr).__name__}")
    result = backward(expr, seed, [wrt]).adjoints.get(wrt)
    if result is None:
        return ZeroMatrix(*wrt.shape)
    return tidy(result)
