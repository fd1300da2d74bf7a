"""The model as a program: named definitions over inputs and parameters.

Every network symbackprop derives — a stack of layers or a forward pass
written as equations — becomes a :class:`Program`: an ordered list of
:class:`Definition` ``name = expression`` over the :class:`Input` matrices, the
:class:`Parameter` matrices and earlier names, the last one the scalar cost.
Each definition carries a *role* and the layer (or block) that emitted it, so
the derivation, the renderers, the code generators and the checkers read
roles, never list positions or name prefixes.

>>> from symbackprop import Dense, Network
>>> p = Network(3, [Dense(4, "tanh"), Dense(2)]).program()
>>> [(d.name, d.role, d.layer) for d in p.definitions]
[('z1', 'preactivation', 1), ('a1', 'activation', 1), ('z2', 'preactivation', 2), ('a2', 'output', 2), ('C', 'cost', None)]
>>> [q.name for q in p.trained]
['W1', 'b1', 'W2', 'b2']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator, Mapping

import numpy as np
import sympy
from sympy import Basic, Expr, MatrixSymbol

from .. import naming
from ..calculus.expressions import Elementwise, Named
from ..calculus.trees import walk
from ..errors import SpecError, UnknownNameError
from ..printing.common import shape_text
from .activations import Activation

__all__ = ["ROLES", "INPUT_ROLES", "INPUT_KINDS", "Input", "Parameter", "Definition", "Program", "fixed_value"]

#: what a definition is, as the renderers and code generators ask
ROLES = ("preactivation", "activation", "output", "cost", "intermediate", "statistic")
#: what an input is: the samples, their targets, or another given matrix (a mask)
INPUT_ROLES = ("input", "target", "data")
#: what an input's entries are: any numbers, one-hot columns or rows (an embedding's input, which
#: generated code also takes as integer ids), or a 0/1 mask (dropout's)
INPUT_KINDS = ("real", "one_hot", "mask")
#: how a parameter starts when ``init_params`` draws it
INITS = ("weight", "zeros", "ones")


def fixed_value(name: str, value: object, shape: tuple) -> np.ndarray:
    """A fixed parameter's value, checked: finite numbers, one number or an array of the parameter's shape."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(f"fixed {name}: a value is a number or a list of numbers, not {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise SpecError(f"fixed {name}: values must be finite, not {value!r}")
    if array.ndim:
        if not all(d.is_Integer for d in shape):
            raise SpecError(f"fixed {name}: its shape {shape_text(shape)} has symbolic sizes; "
                            f"give one number for every entry")
        wanted = tuple(int(d) for d in shape)
        if array.ndim == 1 and 1 in wanted and array.size == max(wanted):
            array = array.reshape(wanted)
        if array.shape != wanted:
            raise SpecError(f"fixed {name}: expected shape {wanted} (or one number), given {array.shape}")
    return array


@dataclass(frozen=True)
class Input:
    """A matrix the caller gives with every call: ``X``, ``Y``, or another one a layer reads."""

    symbol: MatrixSymbol
    role: str = "data"
    kind: str = "real"
    #: for a dropout mask, the probability p of dropping an entry; for a one-hot input, None
    rate: Any = None
    layer: int | None = None

    def __post_init__(self) -> None:
        if self.role not in INPUT_ROLES:
            raise SpecError(f"unknown input role {self.role!r}; known: {', '.join(INPUT_ROLES)}")
        if self.kind not in INPUT_KINDS:
            raise SpecError(f"unknown input kind {self.kind!r}; known: {', '.join(INPUT_KINDS)}")

    @property
    def name(self) -> str:
        return self.symbol.name

    @property
    def shape(self) -> tuple:
        return self.symbol.shape


@dataclass(frozen=True)
class Parameter:
    """A parameter matrix: trained (it gets a gradient) or fixed at ``value``.

    ``init`` says how random initial values are drawn (``"weight"``: N(0, 1/fan-in)
    with ``fan_in`` the axis of the shape that counts inputs; ``"zeros"``,
    ``"ones"``); ``layer`` is the layer or block that owns it.
    """

    symbol: MatrixSymbol
    trained: bool = True
    value: Any = None
    init: str = "weight"
    fan_in: int = 1
    layer: int | None = None

    @property
    def name(self) -> str:
        return self.symbol.name

    @property
    def shape(self) -> tuple:
        return self.symbol.shape

    def fixed_array(self, shape: tuple[int, int]) -> np.ndarray:
        """The fixed value as a float64 array of ``shape`` (a number fills every entry)."""
        array = np.asarray(self.value, dtype=np.float64)
        if array.ndim == 0:
            return np.full(shape, float(array))
        return array.reshape(shape)


@dataclass(frozen=True)
class Definition:
    """``name = expression``: a matrix as the :class:`~symbackprop.calculus.expressions.Named` node ``node``.

    ``role`` is one of :data:`ROLES` (a ``"statistic"`` is a mean or deviation
    that a normalisation reads and its rule accounts for); ``layer`` the layer
    or block that emitted it (``None`` for the cost and for definitions outside
    any layer).  ``named`` asks the derivation to name this quantity's adjoint
    (``∂C/∂P``) even when it feeds one quantity only, as published derivations
    do for attention.  The scalar cost is no matrix: its ``node`` is its
    expression and ``label`` its name.
    """

    node: Basic
    role: str
    layer: int | None = None
    label: str | None = None
    named: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SpecError(f"unknown role {self.role!r}; known: {', '.join(ROLES)}")

    @property
    def name(self) -> str:
        return self.label if self.label is not None else self.node.name

    @property
    def expr(self) -> Expr:
        return self.node.definition if isinstance(self.node, Named) else self.node

    @property
    def shape(self) -> tuple | None:
        return self.node.shape if getattr(self.node, "is_Matrix", False) else None


@dataclass(frozen=True)
class Program:
    """A model as named definitions; built by :meth:`Network.program` or :class:`~symbackprop.model.equations.Model`.

    * ``inputs``, ``parameters``, ``definitions`` — in reading order; the last
      definition is the scalar cost (role ``"cost"``);
    * ``layout`` — ``"columns"`` (samples are columns) or ``"rows"``;
    * ``size_symbols`` — the symbolic sizes, in order of first appearance;
    * ``scalars`` — scalar symbols the caller gives (a weight decay ``lam``);
    * ``activations`` — the named scalar functions the definitions apply;
    * ``numeric_cost`` — the cost in the form code should compute (the
      cross-entropies through z, never a log of a rounded probability);
    * ``cost_name`` — the registered cost the cost definition is (``"squared_error"``), if it is one;
    * ``target_kind`` — what valid targets are: ``"real"``, ``"probabilities"``
      (in (0, 1)) or ``"distributions"`` (each sample's targets sum to 1);
    * ``title`` — what it is, in a phrase (``the network 3 → 4 → 2 (tanh, identity), cost …``);
      ``header`` — the one-line description the text derivation opens with;
    * ``source`` — the :class:`~symbackprop.model.network.Network` or
      :class:`~symbackprop.model.equations.Model` it was built from.
    """

    inputs: tuple[Input, ...]
    parameters: tuple[Parameter, ...]
    definitions: tuple[Definition, ...]
    layout: str = "columns"
    size_symbols: tuple[sympy.Symbol, ...] = ()
    scalars: tuple[sympy.Symbol, ...] = ()
    activations: tuple[Activation, ...] = ()
    numeric_cost: Expr | None = None
    target_kind: str = "real"
    cost_name: str | None = None
    title: str = "the model"
    header: str = ""
    source: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [q.name for q in (*self.inputs, *self.parameters, *self.definitions)]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise SpecError(f"the name {name!r} is defined twice")
            seen.add(name)
        if not self.definitions or self.definitions[-1].role != "cost":
            raise SpecError("a program ends with the definition of its scalar cost")
        cost = self.definitions[-1].expr
        if getattr(cost, "is_Matrix", False):
            raise SpecError(f"the cost {self.cost.name} must be a scalar, not a "
                            f"{cost.shape[0]}×{cost.shape[1]} matrix (sum its entries: sum(...))")
        if self.numeric_cost is None:
            object.__setattr__(self, "numeric_cost", cost)

    # --- what exists --------------------------------------------------------------------

    @property
    def cost(self) -> Definition:
        """The definition of the scalar cost."""
        return self.definitions[-1]

    @property
    def forward(self) -> tuple[Definition, ...]:
        """Every definition but the cost."""
        return self.definitions[:-1]

    @property
    def output(self) -> Definition:
        """The network's output: the definition with role ``"output"``, else the last before the cost."""
        for definition in reversed(self.forward):
            if definition.role == "output":
                return definition
        return self.forward[-1]

    @property
    def trained(self) -> tuple[Parameter, ...]:
        """The parameters that get a gradient."""
        return tuple(p for p in self.parameters if p.trained)

    @property
    def fixed(self) -> tuple[Parameter, ...]:
        """The parameters held at a given value."""
        return tuple(p for p in self.parameters if not p.trained)

    def input(self, role: str) -> Input:
        """The input with ``role`` (``"input"`` or ``"target"``)."""
        for item in self.inputs:
            if item.role == role:
                return item
        raise SpecError(f"the model has no {role} ({', '.join(i.name for i in self.inputs)} are its inputs)")

    @property
    def depth(self) -> int:
        """The highest layer number any definition carries (0 when none does)."""
        return max((d.layer for d in self.definitions if d.layer is not None), default=0)

    def definitions_of(self, layer: int, *roles: str) -> tuple[Definition, ...]:
        """The definitions layer ``layer`` emitted, of the given roles (every role when none is given)."""
        return tuple(d for d in self.definitions if d.layer == layer and (not roles or d.role in roles))

    def definition(self, name: str) -> Definition:
        """The definition of ``name``."""
        found = self._by_name.get(name)
        if found is None:
            raise UnknownNameError("definition", name, [d.name for d in self.definitions])
        return found

    @cached_property
    def _by_name(self) -> dict[str, Definition]:
        return {d.name: d for d in self.definitions}

    def symbols(self) -> dict[str, MatrixSymbol]:
        """Inputs and parameters by name, in reading order (inputs first)."""
        return {q.name: q.symbol for q in (*self.inputs, *self.parameters)}

    def readers(self) -> dict[str, list[Definition]]:
        """Each name → the definitions whose expressions read it, in program order."""
        readers: dict[str, list[Definition]] = {}
        for d in self.definitions:
            for name in self.reads(d):
                readers.setdefault(name, []).append(d)
        return readers

    def reads(self, definition: Definition) -> list[str]:
        """The inputs, parameters and earlier definitions ``definition`` reads: parameters first
        (in program order), then definitions, then inputs."""
        found = {node.name for node in walk(definition.expr) if isinstance(node, (MatrixSymbol, Named))}
        position = self._reading_position
        return sorted((name for name in found if name in position), key=position.__getitem__)

    @cached_property
    def _reading_position(self) -> dict[str, int]:
        order = [p.name for p in self.parameters] + [d.name for d in self.definitions] + [i.name for i in self.inputs]
        return {name: index for index, name in enumerate(order)}

    def activation_of(self, node: Basic) -> Activation | None:
        """The activation an :class:`Elementwise` node applies, when the program knows it."""
        if not isinstance(node, Elementwise):
            return None
        for activation in self.activations:
            if activation.is_elementwise and activation.name == node.name and activation.function == node.definition:
                return activation
        return None

    def fixed_values(self, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
        """The fixed parameters' values, at the concrete ``sizes``."""
        numbers = {s: sympy.Integer(sizes[s.name]) for s in self.size_symbols if s.name in sizes}
        return {p.name: p.fixed_array(tuple(int(sympy.sympify(d).xreplace(numbers)) for d in p.shape))
                for p in self.fixed}

    def __iter__(self) -> Iterator[Definition]:
        return iter(self.definitions)

    @property
    def kinked(self) -> tuple[Expr, ...]:
        """The arguments of activations with a kink (ReLU, leaky ReLU), where finite differences must not step across 0."""
        found = []
        for d in self.definitions:
            for node in walk(d.expr):
                if isinstance(node, Elementwise) and node.order == 0 and \
                        sympy.diff(node.definition.expr, node.definition.variables[0]).has(sympy.Piecewise):
                    found.append(node.arg)
        return tuple(dict.fromkeys(found))

    def naming_of(self, definition: Definition) -> str:
        """The name of ``definition``'s adjoint when the derivation names it."""
        if definition.role == "preactivation":
            return naming.delta_of(definition.name, definition.layer)
        return naming.adjoint(definition.name)
