"""Reverse mode over a SymPy expression tree.

:func:`backward` knows no operation: it orders the nodes, walks them from the
root down, looks each rule up in :data:`~.rules.VJP` and adds up the
contributions of every node that feeds several others.  Adding an operation is
adding a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
from typing import Iterable

import sympy
from sympy import (
    Add,
    Basic,
    Determinant,
    Expr,
    HadamardProduct,
    Lambda,
    MatAdd,
    MatMul,
    MatrixSymbol,
    Mul,
    OneMatrix,
    Pow,
    Trace,
    Tuple,
    ZeroMatrix,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import MissingRuleError, SymbackpropError
from ..model.activations import ACTIVATIONS
from .expressions import LEAVES, SCALAR_VARIABLE, Elementwise, Entry, Named, SumEntries, UnitMatrix, hadamard
from .rules import rule_for
from .simplify import tidy
from .trees import children, differentiated, walk

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
        parts = [child for _, child in differentiated(node)]
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
        for i, child in differentiated(node):
            if child in depending:
                adjoint[child] = _accumulate(adjoint.get(child), rule.function(g, node, i))
                path[child] = _merge(path[child], above) if child in path else above
    present = [t for t in targets if t in adjoint]
    return Backward({t: adjoint[t] for t in present}, tuple(rules), {t: path[t] for t in present})


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """Two routes to one node: their rule names, each once, in order of first appearance."""
    return tuple(dict.fromkeys((*first, *second)))


#: classes that take a matrix and give a scalar: their matrix arguments are not 1×1 scalars in disguise
_TAKES_MATRICES = (Trace, Determinant, SumEntries, MatrixElement)


class _Preparer:
    """Rewrites what a user of SymPy writes into what the chain rule's table knows.

    * a scalar function of a 1×1 matrix (``exp(aᵀXb)``, ``log(1ᵀ exp(x))``) takes
      the matrix's one entry, :class:`~.expressions.Entry` ``(aᵀXb)[0, 0]``, a
      commutative scalar, so the product and log rules apply; an entry of a
      matrix expression is an :class:`~.expressions.Entry` too;
    * ``X.applyfunc(f)`` (SymPy's ``ElementwiseApplyFunction``) becomes an
      :class:`~.expressions.Elementwise` function named after ``f``.

    Bottom-up and iterative, each distinct node once; named quantities are kept.
    """

    def __init__(self) -> None:
        self.functions: dict[Lambda, str] = {}

    def __call__(self, expr: Basic) -> Basic:
        return _rebuild_bottom_up(expr, self._rebuild)

    def _rebuild(self, node: Basic, args: list[Basic]) -> Basic:
        if isinstance(node, ElementwiseApplyFunction):
            return self._elementwise(node.function, args[1])
        if isinstance(node, MatrixElement) and not isinstance(node, Entry) and not isinstance(args[0], MatrixSymbol):
            return Entry(*args)
        if isinstance(node, (sympy.Function, Add, Mul, Pow)) and not node.is_Matrix \
                and not isinstance(node, _TAKES_MATRICES):
            args = [Entry(a) if getattr(a, "is_Matrix", False) and a.shape == (1, 1) else a for a in args]
        if list(node.args) == args:
            return node
        if isinstance(node, HadamardProduct):
            return hadamard(*args)
        return node.func(*args)

    def _elementwise(self, function: Lambda, arg: Expr) -> Elementwise:
        (variable,) = function.variables
        body = function.expr.xreplace({variable: SCALAR_VARIABLE})
        definition = Lambda(SCALAR_VARIABLE, body)
        name = self.functions.get(definition)
        if name is None:
            plain = isinstance(body, sympy.Function) and body.args == (SCALAR_VARIABLE,)
            name = type(body).__name__ if plain else "f"
            taken = set(self.functions.values())
            if name in taken:  # two different functions never share a name (generated code defines each)
                name = next(f"{name}_{n}" for n in itertools.count(2) if f"{name}_{n}" not in taken)
            self.functions[definition] = name
        return Elementwise(name, definition, arg)


def _check_rules(expr: Basic, wrt: Basic) -> None:
    """Refuse, naming the class, an expression with a node the rule table does not know."""
    for node in walk(expr):
        if node == wrt or isinstance(node, LEAVES) or not node.args or node.is_Number or node.is_Symbol:
            continue
        if isinstance(node, (Lambda, Tuple)) or not isinstance(node, Basic):
            continue
        if not node.has(wrt):
            continue
        rule_for(node)  # raises MissingRuleError naming the class
        if not getattr(node, "is_Matrix", False) and not isinstance(node, _TAKES_MATRICES):
            for arg in node.args:
                if getattr(arg, "is_Matrix", False) and arg.shape != (1, 1):
                    raise MissingRuleError(
                        f"{type(node).__name__} of the {arg.shape[0]}×{arg.shape[1]} matrix {arg} is a matrix "
                        f"function, which the chain rule does not differentiate; for {type(node).__name__} "
                        f"entry by entry write {arg}.applyfunc({type(node).__name__})")


def grad(expr: Expr, wrt: Basic) -> Expr:
    """The gradient of a scalar expression: entry ``(i, j)`` is ``∂expr/∂wrt[i, j]``.

    ``expr`` is a scalar (``Trace``, ``Determinant``, :class:`SumEntries`, an
    entry ``X[i, j]``, scalar functions of them) or a 1×1 matrix expression;
    ``wrt`` a ``MatrixSymbol`` or a :class:`~symbackprop.calculus.expressions.Named`
    quantity (the result has its shape), a scalar ``Symbol`` (the result is a
    scalar) or an entry ``X[i, j]`` of a ``MatrixSymbol`` (a scalar: that entry
    of the gradient).  An expression with a class the chain rule does not know
    raises :class:`~symbackprop.errors.MissingRuleError` naming it.

    >>> from sympy import MatrixSymbol, Trace
    >>> A, X, B = MatrixSymbol("A", 2, 3), MatrixSymbol("X", 3, 4), MatrixSymbol("B", 4, 2)
    >>> grad(Trace(A * X * B), X)
    A.T*B.T
    """
    if not isinstance(expr, Basic):
        raise SymbackpropError(f"grad needs a SymPy expression, not {type(expr).__name__}")
    if isinstance(wrt, MatrixElement) and isinstance(wrt.parent, MatrixSymbol):
        whole = grad(expr, wrt.parent)
        return sympy.Integer(0) if isinstance(whole, ZeroMatrix) else _named_derivatives(Entry(whole, wrt.i, wrt.j))
    if not isinstance(wrt, (MatrixSymbol, Named, sympy.Symbol)):
        raise SymbackpropError(f"grad differentiates with respect to a MatrixSymbol, a Symbol or an entry X[i, j], "
                               f"not {type(wrt).__name__} {wrt}")
    if getattr(expr, "is_Matrix", False):
        if expr.shape != (1, 1):
            raise SymbackpropError(f"grad needs a scalar expression; this one is {expr.shape[0]}×{expr.shape[1]}")
        seed: Expr = OneMatrix(1, 1)
    elif isinstance(expr, Expr):
        seed = sympy.Integer(1)
    else:
        raise SymbackpropError(f"grad needs a SymPy expression, not {type(expr).__name__}")
    prepared = _Preparer()(expr)
    _check_rules(prepared, wrt)
    try:
        result = backward(prepared, seed, [wrt]).adjoints.get(wrt)
    except SymbackpropError:
        raise
    except (NotImplementedError, TypeError, ValueError, AttributeError) as err:  # SymPy refused a step
        raise MissingRuleError(f"the chain rule failed on {type(expr).__name__} {expr}: {err}") from None
    if result is None:
        return sympy.Integer(0) if isinstance(wrt, sympy.Symbol) else ZeroMatrix(*wrt.shape)
    if isinstance(wrt, sympy.Symbol) and getattr(result, "is_Matrix", False):
        result = Entry(result)
    return _cookbook_form(tidy(_named_derivatives(result)))


def _rebuild_bottom_up(expr: Basic, replace) -> Basic:
    """``expr`` rebuilt children first, without recursion; ``replace(node, args)`` gives each new node."""
    memo: dict[Basic, Basic] = {}
    stack: list[tuple[Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if isinstance(node, (*LEAVES, Named)) or not node.args:
            memo[node] = node
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in node.args if child not in memo)
            continue
        memo[node] = replace(node, [memo[child] for child in node.args])
    return memo[expr]


def _named_derivatives(expr: Basic) -> Basic:
    """``sin'(X)`` as ``cos(X)``, ``exp'(X)`` as ``exp(X)``: the derivative of a SymPy function
    applied entry by entry, when it is itself one function of the entry."""
    def replace(node, args):
        if isinstance(node, Elementwise) and node.order > 0 and node.name not in ACTIVATIONS:
            derivative = node.scalar_function().expr
            if isinstance(derivative, sympy.Function) and derivative.args == (SCALAR_VARIABLE,):
                return Elementwise(type(derivative).__name__, Lambda(SCALAR_VARIABLE, derivative), args[2])
        if isinstance(node, Entry) and isinstance(args[0], UnitMatrix):  # (J^{ij})_{mn} = δ_im δ_jn
            unit = args[0]
            return sympy.KroneckerDelta(unit.row, args[1]) * sympy.KroneckerDelta(unit.col, args[2])
        return node if list(node.args) == args else node.func(*args)

    return _rebuild_bottom_up(expr, replace)


def _cookbook_form(expr: Basic) -> Basic:
    """Sums of products that share their first or last factor written with it factored out,
    as the Matrix Cookbook writes them: ``A x + Aᵀ x`` → ``(A + Aᵀ) x``."""
    def replace(node, args):
        if isinstance(node, MatAdd):
            factored = _factor_sum(args)
            if factored is not None:
                return factored
        return node if list(node.args) == args else node.func(*args)

    return _rebuild_bottom_up(expr, replace)


def _factors(term: Expr) -> tuple[Expr, list[Expr]]:
    if isinstance(term, MatMul):
        return Mul(*(a for a in term.args if not a.is_Matrix)), [a for a in term.args if a.is_Matrix]
    return sympy.Integer(1), [term]


def _factor_sum(terms: list[Expr]) -> Expr | None:
    """The largest group of terms sharing a last (else a first) factor, factored; None if there is none."""
    parts = [_factors(t) for t in terms]
    for side in (-1, 0):
        groups: dict[Expr, list[int]] = {}
        for index, (_, matrices) in enumerate(parts):
            if len(matrices) >= 2:
                groups.setdefault(matrices[side], []).append(index)
        common, members = max(groups.items(), key=lambda item: len(item[1]), default=(None, []))
        if len(members) < 2:
            continue
        rest = [MatMul(parts[i][0], *(parts[i][1][:-1] if side == -1 else parts[i][1][1:])).doit(deep=False)
                for i in members]
        inner = MatAdd(*rest).doit(deep=False)
        factored = MatMul(inner, common) if side == -1 else MatMul(common, inner)
        others = [t for i, t in enumerate(terms) if i not in members]
        return MatAdd(factored, *others) if others else factored
    return None
