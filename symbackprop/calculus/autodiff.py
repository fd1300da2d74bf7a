"""Reverse mode over a SymPy expression tree.

:func:`backward` knows no operation: it orders the nodes, walks them from the
root down, looks each rule up in :data:`~.rules.VJP` and adds up the
contributions of every node that feeds several others.  Adding an operation is
adding a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import sympy
from sympy import (
    Basic,
    Expr,
    MatAdd,
    MatrixSymbol,
    OneMatrix,
    ZeroMatrix,
)

from ..errors import SymbackpropError
from .expressions import LEAVES, Named
from .rules import rule_for
from .simplify import tidy
from .trees import children

__all__ = ["backward", "Backward", "grad"]


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
        parts = children(node)
        if isinstance(node, LEAVES) or not parts or node.is_Number:
            depends[node] = False
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(parts) if child not in depends)
            continue
        depends[node] = any(depends[child] for child in parts)
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
    """The result of a reverse pass.

    ``adjoints`` maps each target to its adjoint; ``rules`` names every rule
    applied, in order; ``paths`` names, for each target, the rules applied on
    the way from the root to it (what a derivation step that reads only that
    target applied).
    """

    adjoints: dict
    rules: tuple[str, ...]
    paths: dict = field(default_factory=dict)


def backward(root: Expr, seed: Expr, targets: Iterable[Basic]) -> Backward:
    """Propagate ``seed = ∂C/∂root`` down to ``targets``.

    Targets are treated as leaves: the pass does not look inside a target that
    is a :class:`~symbackprop.calculus.expressions.Named` quantity.  A target ``root``
    does not depend on gets no entry in ``adjoints``.
    """
    targets = frozenset(targets)
    order, depending = _depending_nodes(root, targets)
    adjoint: dict[Basic, Expr] = {root: seed}
    path: dict[Basic, tuple[str, ...]] = {root: ()}
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
        above = (*path.pop(node), rule.name)
        for i, child in enumerate(children(node)):
            if child in depending:
                adjoint[child] = _accumulate(adjoint.get(child), rule.function(g, node, i))
                path[child] = _merge(path[child], above) if child in path else above
    present = [t for t in targets if t in adjoint]
    return Backward({t: adjoint[t] for t in present}, tuple(rules), {t: path[t] for t in present})


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """Two routes to one node: their rule names, each once, in order of first appearance."""
    return tuple(dict.fromkeys((*first, *second)))


def grad(expr: Expr, wrt: MatrixSymbol) -> Expr:
    """The gradient of a scalar matrix expression: entry ``(i, j)`` is ``∂expr/∂wrt[i, j]``.

    ``expr`` is a scalar (``Trace``, :class:`SumEntries`, their sums and
    products) or a 1×1 matrix expression; ``wrt`` a ``MatrixSymbol`` or a
    :class:`~symbackprop.calculus.expressions.Named` quantity.  The result has ``wrt``'s
    shape.

    >>> from sympy import MatrixSymbol, Trace
    >>> A, X, B = MatrixSymbol("A", 2, 3), MatrixSymbol("X", 3, 4), MatrixSymbol("B", 4, 2)
    >>> grad(Trace(A * X * B), X)
    A.T*B.T
    """
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
