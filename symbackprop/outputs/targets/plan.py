"""The statement plan every code target prints: which quantities, in which order, as which expressions.

A :class:`Plan` is target-neutral.  It lists the fixed parameters, then each
forward quantity (``z1``, ``a1``, …) and each named adjoint (``delta2``, …) in
the order the derivation made them, each with its SymPy expression; then the
gradients and the cost in its stable form.  A target (NumPy, PyTorch, JAX,
Octave) prints each expression once with its own printer; what a printed
statement reads (a target may read a stored ``a = σ(z)`` instead of ``z``)
comes from that printing, and decides which statements a function needs.

>>> from symbackprop import Dense, Network, derive
>>> p = plan(derive(Network(2, [Dense(3, "tanh"), Dense(1)])))
>>> [q.target for q in p.quantities]
['z1', 'a1', 'z2', 'a2', 'delta2', 'delta1']
>>> list(p.gradients)
['W1', 'b1', 'W2', 'b2']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import sympy

from ...calculus.expressions import Elementwise, Named
from ...derive import Derivation
from ...errors import SpecError

__all__ = ["Quantity", "Plan", "plan"]


@dataclass(frozen=True)
class Quantity:
    """``target = expr``: one quantity computed once per call; ``kind`` is "fixed", "forward" or "adjoint"."""

    target: str
    expr: object
    kind: str


@dataclass(frozen=True)
class Plan:
    """The ordered quantities of a derivation and what its functions return.

    ``outputs`` maps a pre-activation ``z`` to its stored activation ``a = σ(z)``,
    so that a printer may write σ'(z) through ``a``.
    """

    derivation: Derivation
    quantities: tuple[Quantity, ...]
    gradients: Mapping[str, object]
    cost: sympy.Expr
    output: str
    params: tuple[str, ...]
    outputs: Mapping[object, Named]

    @property
    def title(self) -> str:
        return self.derivation.program.title


def plan(derivation: Derivation) -> Plan:
    """The statement plan of ``derivation`` (the same for every target)."""
    if not isinstance(derivation, Derivation):
        raise SpecError(f"code generation takes a Derivation, not {type(derivation).__name__}")
    program = derivation.program
    # a = σ(z) stored: σ'(z) may print through a (σ' = σ(1 − σ))
    outputs = {d.expr.arg: d.node for d in program.forward
               if isinstance(d.expr, Elementwise) and d.expr.order == 0 and isinstance(d.expr.arg, Named)}
    quantities = [Quantity(parameter.name, parameter, "fixed") for parameter in program.fixed]
    quantities += [Quantity(node.name, node.definition, "forward") for node in derivation.forward]
    # the named adjoints (δ, and ∂C/∂x of a quantity that feeds several), in the order the sweep made them
    quantities += [Quantity(node.name, node.definition, "adjoint") for node in derivation.adjoints.values()
                   if isinstance(node, Named)]
    return Plan(derivation=derivation, quantities=tuple(quantities), gradients=dict(derivation.gradients),
                cost=program.numeric_cost, output=derivation.output.name,
                params=tuple(p.name for p in program.trained), outputs=outputs)
