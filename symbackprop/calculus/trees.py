"""Walking and rebuilding expression trees without recursion limits.

Every walk visits each distinct node once; named quantities
(:class:`~.expressions.Named`) are looked into only when asked, so a walk over
one definition does not descend through every layer below it.
"""

from __future__ import annotations

from typing import Callable

from sympy import Basic

from .expressions import LEAVES, Named

__all__ = ["walk", "mentions", "transform", "substitute", "expand_names"]


def walk(expr: Basic, *, into_names: bool = False):
    """Every node of ``expr`` once; inside the definitions of named quantities only when asked."""
    seen, stack = set(), [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        if not isinstance(node, LEAVES) and (into_names or not isinstance(node, Named)):
            stack.extend(node.args)


def mentions(expr: Basic, target: Basic) -> bool:
    """True when ``target`` occurs in ``expr`` outside the definitions of named quantities."""
    return any(node == target for node in walk(expr))


def transform(expr: Basic, replace: Callable[[Basic, Callable], Basic | None]) -> Basic:
    """Rebuild ``expr`` bottom-up, each distinct node once.

    ``replace(node, visit)`` returns a replacement for ``node`` (it may call
    ``visit`` on other nodes) or ``None`` to rebuild ``node`` from its visited
    arguments.  Named quantities are kept as they are unless ``replace`` says
    otherwise.
    """
    memo: dict[Basic, Basic] = {}

    def visit(node: Basic) -> Basic:
        if node in memo:
            return memo[node]
        result = replace(node, visit)
        if result is None:
            if isinstance(node, (*LEAVES, Named)) or not node.args:
                result = node
            else:
                args = tuple(visit(a) for a in node.args)
                result = node if args == node.args else node.func(*args)
        memo[node] = result
        return result

    return visit(expr)


def substitute(expr: Basic, mapping: dict) -> Basic:
    """``expr`` with each key of ``mapping`` replaced, looking inside no named quantity.

    Unlike ``xreplace``, the definition a :class:`Named` carries is left alone, so
    replacing ``softmax(z)`` by the name ``a`` does not rewrite ``a`` itself.
    """
    return transform(expr, lambda node, visit: mapping.get(node))


def expand_names(expr: Basic) -> Basic:
    """``expr`` with every named quantity replaced by its definition, recursively."""
    return transform(expr, lambda node, visit: visit(node.definition) if isinstance(node, Named) else None)
