"""Walking and rebuilding expression trees without recursion limits.

Every walk visits each distinct node once; named quantities
(:class:`~.expressions.Named`) are looked into only when asked, so a walk over
one definition does not descend through every layer below it.
"""

from __future__ import annotations

from typing import Callable

from sympy import Basic

from .expressions import LEAVES, Named

__all__ = ["children", "differentiated", "walk", "mentions", "transform", "substitute", "expand_names"]


def children(node: Basic) -> tuple:
    """What ``node`` is made of: a named quantity's definition, or the arguments of any other node."""
    return (node.definition,) if isinstance(node, Named) else node.args


def differentiated(node: Basic) -> tuple:
    """``(index, child)`` for each part of ``node`` the chain rule sends a share to: every child but the
    *statistics* a class declares (x̂'s mean and deviation, which its rule already accounts for)."""
    skipped = getattr(type(node), "statistics", ())
    return tuple((i, child) for i, child in enumerate(children(node)) if i not in skipped)


def walk(expr: Basic, *, into_names: bool = False):
    """Every node of ``expr`` once; inside the definitions of named quantities only when asked."""
    seen, stack = set(), [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        if isinstance(node, Named):
            if into_names:
                stack.append(node.definition)
        elif not isinstance(node, LEAVES):
            stack.extend(node.args)


def mentions(expr: Basic, target: Basic) -> bool:
    """True when ``target`` occurs in ``expr`` outside the definitions of named quantities."""
    return any(node == target for node in walk(expr))


def transform(expr: Basic, replace: Callable[[Basic], Basic | None], *, again: bool = False) -> Basic:
    """Rebuild ``expr`` bottom-up, each distinct node once, without recursion.

    ``replace(node)`` returns a replacement for ``node`` or ``None`` to rebuild
    ``node`` from its rebuilt arguments.  With ``again``, a replacement is itself
    transformed (``expand_names`` writes a name's definition out, names in it
    included).  Named quantities are kept as they are unless ``replace`` says
    otherwise.
    """
    memo: dict[Basic, Basic] = {}
    redirect: dict[Basic, Basic] = {}
    stack: list[tuple[Basic, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if node in memo:
            continue
        if expanded:
            if node in redirect:
                memo[node] = memo[redirect[node]]
            else:
                args = tuple(memo[a] for a in node.args)
                memo[node] = node if args == node.args else node.func(*args)
            continue
        result = replace(node)
        if result is not None and result is not node:
            if not again:
                memo[node] = result
                continue
            redirect[node] = result
            stack.append((node, True))
            if result not in memo:
                stack.append((result, False))
            continue
        if isinstance(node, (*LEAVES, Named)) or not node.args:
            memo[node] = node
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in memo)
    return memo[expr]


def substitute(expr: Basic, mapping: dict) -> Basic:
    """``expr`` with each key of ``mapping`` replaced, looking inside no named quantity.

    Unlike ``xreplace``, the definition a :class:`Named` carries is left alone, so
    replacing ``softmax(z)`` by the name ``a`` does not rewrite ``a`` itself.
    """
    return transform(expr, mapping.get)


def expand_names(expr: Basic) -> Basic:
    """``expr`` with every named quantity replaced by its definition, recursively."""
    return transform(expr, lambda node: node.definition if isinstance(node, Named) else None, again=True)
