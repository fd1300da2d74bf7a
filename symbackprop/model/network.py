"""The network model: small immutable descriptions, validated on construction.

>>> net = Network(3, [Dense(4, "sigmoid"), Dense(1)], cost="squared_error")
>>> net.depth, [str(n) for n in net.sizes]
(2, ['3', '4', '1'])
>>> net.parameter_shapes()["W1"]
(4, 3)
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

import numpy as np
import sympy

from .. import naming
from .activations import Activation, get_activation
from .costs import Cost, get_cost
from ..errors import SpecError

__all__ = ["Dense", "Network", "LAYOUTS", "size_symbol"]

LAYOUTS = ("columns", "rows")

_SYMBOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED = re.compile(r"^(X|Y|x|y|C|(W|b|z|a|delta)[0-9]+)$")

Size = sympy.Expr


def size_symbol(name: str) -> sympy.Symbol:
    """The SymPy symbol for a symbolic size such as ``"n_1"`` or ``"m"``."""
    return sympy.Symbol(name, integer=True, positive=True)


def _size(value: object, what: str) -> Size:
    if isinstance(value, bool):
        raise SpecError(f"{what} must be a positive integer or a symbol name, not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise SpecError(f"{what} must be a positive integer or a symbol name, not {value}")
        return sympy.Integer(value)
    if isinstance(value, sympy.Integer) and value > 0:
        return value
    if isinstance(value, sympy.Symbol):
        value = value.name
    if isinstance(value, str):
        name = value.strip()
        if not _SYMBOL_NAME.match(name) or keyword.iskeyword(name):
            raise SpecError(f"{what} {value!r} is not a valid symbol name (letters, digits, '_'; e.g. 'n_1', 'm')")
        if _RESERVED.match(name):
            raise SpecError(f"{what} {value!r} is a name symbackprop uses for a quantity; pick another (e.g. 'n_1')")
        return size_symbol(name)
    raise SpecError(f"{what} must be a positive integer or a symbol name, not {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class Dense:
    """A fully connected layer: ``units`` outputs, an activation, an optional bias.

    ``activation`` is a registered name (``"sigmoid"``) or a formula in ``x``
    (``"x**3"``); ``units`` a positive integer or a symbol name (``"n_1"``).
    """

    units: int | str
    activation: str | Activation = "identity"
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", _size(self.units, "layer width"))
        object.__setattr__(self, "activation", get_activation(self.activation))
        if not isinstance(self.bias, bool):
            raise SpecError(f"bias must be true or false, not {self.bias!r}")


@dataclass(frozen=True)
class Network:
    """A layered network, its cost and layout.

    ``inputs`` is the input width n₀; ``batch`` the number of samples m (the
    columns of X in the ``"columns"`` layout, its rows in the ``"rows"``
    layout); ``weight_decay`` λ adds λ Σₗ ‖W⁽ˡ⁾‖²_F to the cost.
    """

    inputs: int | str
    layers: Sequence[Dense]
    cost: str | Cost = "squared_error"
    layout: str = "columns"
    batch: int | str = 1
    weight_decay: float | int | str = 0
    activations: tuple[Activation, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _size(self.inputs, "inputs"))
        object.__setattr__(self, "batch", _size(self.batch, "batch"))
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Sequence):
            raise SpecError("layers must be a list of Dense layers")
        layers = tuple(self.layers)
        if not layers:
            raise SpecError("the network has no layers; give at least one Dense layer")
        for index, layer in enumerate(layers, 1):
            if not isinstance(layer, Dense):
                raise SpecError(f"layer {index} must be a Dense layer, not {type(layer).__name__}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "cost", get_cost(self.cost))
        if self.layout not in LAYOUTS:
            raise SpecError(f"unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}")
        object.__setattr__(self, "weight_decay", self._weight_decay(self.weight_decay))
        object.__setattr__(self, "activations", self._activations(layers))
        for index, activation in enumerate(self.activations, 1):
            if activation.last_layer_only and index != len(layers):
                raise SpecError(f"layer {index}: {activation.name} can only be the last layer's activation")
            if activation.name == "softmax" and layers[index - 1].units == 1:
                raise SpecError(f"layer {index}: softmax over a single unit is the constant 1; give it 2 units or more")
        if isinstance(self.weight_decay, sympy.Symbol) and self.weight_decay.name in {s.name for s in self.size_symbols}:
            raise SpecError(f"weight_decay {self.weight_decay.name!r} is also the name of a size; pick another name")
        if self.cost.requires_output and self.activations[-1].name != self.cost.requires_output:
            raise SpecError(
                f"cost {self.cost.name} needs a {self.cost.requires_output} output layer; "
                f"the last layer has {self.activations[-1].name}"
            )

    @staticmethod
    def _weight_decay(value: object) -> sympy.Expr:
        problem = f"weight_decay must be a finite number ≥ 0 or a symbol name, not {value!r}"
        if isinstance(value, bool):
            raise SpecError(problem)
        if isinstance(value, (int, float, np.integer, np.floating)):
            # exact: the decimal the user wrote, not a nearby "nice" number
            decay = sympy.Rational(Fraction(str(value))) if np.isfinite(value) else sympy.nan
        elif isinstance(value, sympy.Expr) and value.is_number:
            decay = value
        elif isinstance(value, sympy.Symbol):
            decay = sympy.Symbol(value.name, positive=True)
        elif isinstance(value, str):
            name = value.strip()
            if not _SYMBOL_NAME.match(name) or _RESERVED.match(name) or keyword.iskeyword(name):
                raise SpecError(f"weight_decay {value!r} is neither a number nor a valid symbol name")
            decay = sympy.Symbol(name, positive=True)
        else:
            raise SpecError(problem)
        if decay.is_number and not (decay.is_extended_real and decay.is_finite and decay >= 0):
            raise SpecError(problem)
        return decay

    @staticmethod
    def _activations(layers: tuple[Dense, ...]) -> tuple[Activation, ...]:
        """The layers' activations, custom ones given distinct names (phi1, phi2, ...)."""
        activations = [layer.activation for layer in layers]
        custom = []
        for activation in activations:
            if activation.formula is not None and activation.definition not in [c.definition for c in custom]:
                custom.append(activation)
        clashing = {a.name for a in custom if sum(c.name == a.name for c in custom) > 1}
        if not clashing:
            return tuple(activations)
        taken = {a.name for a in activations}
        renamed, number = {}, 0
        for activation in (a for a in custom if a.name in clashing):
            number += 1
            while f"{activation.name}{number}" in taken:  # never reuse a name the user chose
                number += 1
            renamed[activation.definition] = Activation(
                f"{activation.name}{number}", rf"{activation.latex}_{{{number}}}", activation.definition,
                formula=activation.formula)
        return tuple(renamed.get(a.definition, a) if a.formula is not None else a for a in activations)

    # --- sizes and shapes ----------------------------------------------------------

    @property
    def depth(self) -> int:
        """The number of layers L."""
        return len(self.layers)

    @property
    def sizes(self) -> tuple[Size, ...]:
        """Widths n₀ (inputs), n₁, …, n_L as SymPy integers or symbols."""
        return (self.inputs, *(layer.units for layer in self.layers))

    def data_shape(self, width: Size) -> tuple[Size, Size]:
        """The shape of a batch of ``width``-wide vectors: (width, m) or (m, width)."""
        return (width, self.batch) if self.layout == "columns" else (self.batch, width)

    def parameter_shapes(self) -> dict[str, tuple[Size, Size]]:
        """Ordered parameter names ("W1", "b1", …) and their shapes in this layout."""
        shapes: dict[str, tuple[Size, Size]] = {}
        n = self.sizes
        for l, layer in enumerate(self.layers, 1):
            if self.layout == "columns":
                shapes[naming.weight(l)] = (n[l], n[l - 1])
                if layer.bias:
                    shapes[naming.bias(l)] = (n[l], sympy.Integer(1))
            else:
                shapes[naming.weight(l)] = (n[l - 1], n[l])
                if layer.bias:
                    shapes[naming.bias(l)] = (sympy.Integer(1), n[l])
        return shapes

    @property
    def size_symbols(self) -> tuple[sympy.Symbol, ...]:
        """The symbolic sizes, in order of first appearance (n₀ … n_L, then m)."""
        seen: list[sympy.Symbol] = []
        for size in (*self.sizes, self.batch):
            if isinstance(size, sympy.Symbol) and size not in seen:
                seen.append(size)
        return tuple(seen)
