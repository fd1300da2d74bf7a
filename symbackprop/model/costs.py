"""The cost registry: one entry per cost function.

``C`` is a scalar, ``A`` the last layer's output, ``Y`` the targets, both of the
same shape.  ``build(A, Y)`` returns the cost as a SymPy expression made of the
library's matrix expressions, so the chain rule differentiates it like any
other part of the network.  Adding a cost is adding one entry to :data:`COSTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sympy import Expr, HadamardPower, HadamardProduct, OneMatrix, Rational

from ..calculus.expressions import LogSoftmax, SumEntries, hadamard
from ..errors import SpecError, UnknownNameError
from .activations import ACTIVATIONS, LOG

__all__ = ["Cost", "COSTS", "get_cost", "distribution_assumption"]


def distribution_assumption(layout: str) -> str:
    """The standing assumption under which softmax with cross-entropy gives ``δ = a − y``."""
    sample = "column" if layout == "columns" else "row"
    return f"every target {sample} is a probability distribution (its entries sum to 1)"


@dataclass(frozen=True)
class Cost:
    """A cost function.

    ``requires_output`` names the activation the last layer must have;
    ``distribution_targets`` says the derivation may assume that each sample's
    targets sum to 1 (softmax cross-entropy); ``stable`` rewrites the cost
    through the last pre-activation z, for an output activation
    ``stable_output``, as code computes it: ``stable(z, Y, axis)``.
    """

    name: str
    description: str
    build: Callable[[Expr, Expr], Expr]
    requires_output: str | None = None
    distribution_targets: bool = False
    stable: Callable[[Expr, Expr, int], Expr] | None = None
    stable_output: str | None = None
    target_kind: str = "real"


def _ones(M):
    return OneMatrix(*M.shape)


def _hadamard(*factors):
    return HadamardProduct(*factors, evaluate=False)


def _squared_error(A, Y):
    return SumEntries(HadamardPower(A - Y, 2))


COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        Cost("squared_error", "the sum of (A − Y)² over all entries", _squared_error),
        Cost("half_squared_error", "½ × the sum of (A − Y)² over all entries",
             lambda A, Y: Rational(1, 2) * _squared_error(A, Y)),
        Cost("mean_squared_error", "the mean of (A − Y)² over all entries",
             lambda A, Y: _squared_error(A, Y) / (A.shape[0] * A.shape[1])),
        # the stable forms never take the log of a rounded probability:
        # −Σ Y ⊙ log_softmax(z), and −[y log σ(z) + (1 − y) log(1 − σ(z))] = softplus(z) − y z
        Cost("softmax_cross_entropy", "−Σ Y ⊙ log A, with a softmax output",
             lambda A, Y: -SumEntries(_hadamard(Y, LOG(A))),
             requires_output="softmax", distribution_targets=True,
             stable=lambda z, Y, axis: -SumEntries(hadamard(Y, LogSoftmax(z, axis))), stable_output="softmax",
             target_kind="distributions"),
        Cost("binary_cross_entropy", "−Σ [Y ⊙ log A + (1 − Y) ⊙ log(1 − A)]",
             lambda A, Y: -SumEntries(_hadamard(Y, LOG(A)) + _hadamard(_ones(Y) - Y, LOG(_ones(A) - A))),
             stable=lambda z, Y, axis: SumEntries(ACTIVATIONS["softplus"].apply(z) - hadamard(Y, z)),
             stable_output="sigmoid", target_kind="probabilities"),
    )
}


#: what people call the costs elsewhere → their names here ("cross_entropy": the network picks by its output layer)
ALIASES = {"mse": "mean_squared_error", "sse": "squared_error", "l2": "squared_error",
           "bce": "binary_cross_entropy", "binary_crossentropy": "binary_cross_entropy",
           "log_loss": "binary_cross_entropy", "cross_entropy": "softmax_cross_entropy",
           "crossentropy": "softmax_cross_entropy", "categorical_cross_entropy": "softmax_cross_entropy",
           "categorical_crossentropy": "softmax_cross_entropy", "nll": "softmax_cross_entropy"}


def get_cost(name: str) -> Cost:
    """Look up a cost by name; an unknown name lists the known ones."""
    if isinstance(name, Cost):
        return name
    if not isinstance(name, str):  # a table or a list (unhashable) or a number is not a cost's name
        raise SpecError(f"cost must be the name of a cost ({', '.join(sorted(COSTS))}), not {type(name).__name__} "
                        f"{name!r:.60}")
    key = name.strip()
    if key not in COSTS:
        error = UnknownNameError("cost", name, sorted(COSTS))
        if key.lower() in ALIASES:
            error.hint = f"did you mean {ALIASES[key.lower()]!r}?"
        raise error
    return COSTS[key]
