"""The names symbackprop gives to the quantities of a network.

Every generated name (in SymPy symbols, in generated code, in formulas a user
types) comes from here, so the library speaks one vocabulary:

========  ==========================================  ===============
name      meaning                                     LaTeX
========  ==========================================  ===============
``X``     the input, ``a0`` in formulas               ``a^{(0)}``
``Y``     the targets, ``y`` in formulas              ``y``
``W3``    weight matrix of layer 3                    ``W^{(3)}``
``b3``    bias of layer 3                             ``b^{(3)}``
``z3``    pre-activation of layer 3                   ``z^{(3)}``
``a3``    activation (output) of layer 3              ``a^{(3)}``
``delta3``  ``∂C/∂z3``                                ``\\delta^{(3)}``
========  ==========================================  ===============
"""

from __future__ import annotations

import re

__all__ = [
    "INPUT",
    "TARGET",
    "COST",
    "weight",
    "bias",
    "preactivation",
    "activation",
    "delta",
    "split_layer_name",
    "layered",
    "scaled_gradient",
    "next_value",
    "LAYERED_KINDS",
    "delta_of",
    "adjoint",
    "adjoint_target",
    "delta_target",
]

INPUT = "X"
TARGET = "Y"
COST = "C"

#: kinds of per-layer names, in the order a reader meets them: a dense layer's, then those of the
#: normalisation (x̂, μ, σ, γ, β), attention (W_Q … W_O, Q, K, V, S, P, O), embedding (E) and dropout
#: (the mask M) layers
LAYERED_KINDS = ("W", "b", "z", "a", "delta", "xhat", "mu", "sigma", "gamma", "beta",
                 "WQ", "WK", "WV", "WO", "Q", "K", "V", "S", "P", "O", "tau", "E", "M")

_LAYERED = re.compile(r"^(" + "|".join(sorted(LAYERED_KINDS, key=len, reverse=True)) + r")([0-9]+)$")


def layered(kind: str, layer: int) -> str:
    """The name of a per-layer quantity: ``layered("gamma", 2)`` → ``"gamma2"``."""
    if kind not in LAYERED_KINDS:
        raise ValueError(f"unknown kind of per-layer quantity {kind!r}")
    return f"{kind}{layer}"


def weight(layer: int) -> str:
    return f"W{layer}"


def bias(layer: int) -> str:
    return f"b{layer}"


def preactivation(layer: int) -> str:
    return f"z{layer}"


def activation(layer: int) -> str:
    return f"a{layer}"


def delta(layer: int) -> str:
    return f"delta{layer}"


def delta_of(name: str, layer: int | None) -> str:
    """The name of ``∂C/∂name`` for a pre-activation: ``delta3`` for ``z3`` of layer 3, else ``delta_h``.

    >>> delta_of("z3", 3), delta_of("h", None)
    ('delta3', 'delta_h')
    """
    if layer is not None and name == preactivation(layer):
        return delta(layer)
    return f"delta_{name}"


_ADJOINT = "grad_"


def adjoint(name: str) -> str:
    """The name of the named adjoint ``∂C/∂name`` of a quantity that is not a pre-activation (``grad_a2``)."""
    return f"{_ADJOINT}{name}"


def delta_target(name: str) -> str | None:
    """``"delta_h"`` → ``"h"``: the pre-activation a delta without a layer number belongs to; else None.

    >>> delta_target("delta_h"), delta_target("delta2")
    ('h', None)
    """
    return name[len("delta_"):] if name.startswith("delta_") and len(name) > len("delta_") else None


def adjoint_target(name: str) -> str | None:
    """``"grad_a2"`` → ``"a2"``: the quantity a named adjoint belongs to; None for any other name.

    >>> adjoint_target(adjoint("a2")), adjoint_target("a2")
    ('a2', None)
    """
    return name[len(_ADJOINT):] if name.startswith(_ADJOINT) and len(name) > len(_ADJOINT) else None


def scaled_gradient(parameter: str) -> str:
    """In generated code, the work array holding ``lr`` times ``parameter``'s gradient (``dW1``)."""
    return f"d{parameter}"


def next_value(parameter: str) -> str:
    """In generated code, the new value of ``parameter`` after a step (``W1_next``)."""
    return f"{parameter}_next"


def split_layer_name(name: str) -> tuple[str, int] | None:
    """``"W12"`` → ``("W", 12)``; ``None`` for a name that is not per-layer.

    >>> split_layer_name("delta3")
    ('delta', 3)
    >>> split_layer_name("X") is None
    True
    """
    match = _LAYERED.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))
