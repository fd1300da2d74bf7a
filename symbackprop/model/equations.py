"""A forward pass written as equations: ``Model``.

Instead of a stack of layers, a user may write the forward pass line by line
in symbackprop's formula language, over declared inputs and parameters::

    Model(inputs={"X": ("n_0", "m"), "Y": ("n_0", "m")},
          parameters={"W1": ("n_1", "n_0"), "b1": ("n_1", 1), "W2": ("n_0", "n_1")},
          forward=["z1 = W1 @ X + b1", "a1 = tanh(z1)", "a2 = W2 @ a1 + X", "C = sum((a2 - Y)^2)"])

Each line defines one name from the inputs, the parameters and the names
above it; the last line defines the scalar cost.  Each line is read by the
package's own parser and built by :class:`~symbackprop.language.matrix.MatrixBuilder`
(a whitelist: nothing is evaluated).  Roles are read from the structure: a
name an activation is applied to is a pre-activation, the application an
activation; names such as ``z2``/``a2`` also give the layer, so a model
written like a layer stack derives and typesets like one.

>>> from symbackprop import derive
>>> from symbackprop.printing import to_text
>>> seed = Model(inputs={"X": (1, 1), "Y": (1, 1)}, parameters={"W1": (1, 1)},
...              forward=["a1 = W1 @ X", "C = sum((a1 - Y)^2)"])
>>> to_text(derive(seed).gradients["W1"])
'2 (a⁽¹⁾ − Y) Xᵀ'
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
import sympy
from sympy import MatAdd, MatrixSymbol

from .. import naming
from ..calculus.expressions import Elementwise, Named, Softmax, SumEntries, new_scope
from ..calculus.simplify import tidy
from ..calculus.trees import walk
from ..errors import FormulaError, FormulaSyntaxError, ShapeError, SpecError, UnknownNameError
from ..language import syntax
from ..language.matrix import MatrixBuilder, Vocabulary
from ..printing.common import shape_text
from .activations import ACTIVATIONS, LOG, Activation
from .costs import COSTS
from .network import LAYOUTS, _size
from .program import Definition, Input, Parameter, Program, fixed_value

__all__ = ["Model", "MAX_DEFINITIONS"]

#: a model has at most this many lines
MAX_DEFINITIONS = 10_000
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _shape(value: object, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise SpecError(f"{what}: a shape is a list of two sizes, such as [\"n_1\", 1], not {value!r}")
    return tuple(_size(size, f"{what}: a size") for size in value)


def _identifier(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise SpecError(f"{what} {name!r} is not a valid name (a letter, then letters, digits or '_')")
    return name


@dataclass(frozen=True)
class Model:
    """A model written as equations over ``inputs`` and ``parameters`` (names → shapes).

    ``inputs`` must hold ``X`` (the samples) and ``Y`` (the targets); shapes are
    pairs of integers or size names.  ``forward`` is the list of lines
    ``name = expression``; the last defines the scalar cost.  ``layout`` says
    whether samples are columns (the default) or rows; ``fixed`` holds
    parameters at a value (not trained); ``scalars`` names scalar symbols the
    cost may use (a weight decay ``lam``), given at evaluation time.
    """

    inputs: Mapping[str, Sequence]
    parameters: Mapping[str, Sequence]
    forward: Sequence[str]
    layout: str = "columns"
    fixed: Mapping[str, object] = field(default_factory=dict)
    scalars: Sequence[str] = ()

    def __post_init__(self) -> None:
        for key in ("inputs", "parameters", "fixed"):
            if not isinstance(getattr(self, key), Mapping):
                raise SpecError(f"{key} must map names to {'values' if key == 'fixed' else 'shapes'}")
        if isinstance(self.forward, (str, bytes)) or not isinstance(self.forward, Sequence) or not self.forward:
            raise SpecError("forward must be a list of lines 'name = expression', the last one defining the cost")
        if len(self.forward) > MAX_DEFINITIONS:
            raise SpecError(f"forward has {len(self.forward)} lines; at most {MAX_DEFINITIONS}")
        if self.layout not in LAYOUTS:
            raise SpecError(f"unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}")
        inputs = {_identifier(n, "input"): _shape(s, f"input {n}") for n, s in self.inputs.items()}
        for name in (naming.INPUT, naming.TARGET):
            if name not in inputs:
                raise SpecError(f"inputs must declare {name} ({'the samples' if name == 'X' else 'the targets'}), "
                                f"with its shape")
        parameters = {_identifier(n, "parameter"): _shape(s, f"parameter {n}") for n, s in self.parameters.items()}
        if not parameters:
            raise SpecError("the model has no parameters; declare at least one (parameters = { W1 = [...] })")
        for name in parameters:
            if name in inputs:
                raise SpecError(f"{name} is declared both as an input and as a parameter")
        if isinstance(self.scalars, (str, bytes)) or not isinstance(self.scalars, Sequence):
            raise SpecError("scalars must be a list of names")
        scalars = tuple(_identifier(s, "scalar") for s in self.scalars)
        object.__setattr__(self, "inputs", MappingProxyType(inputs))
        object.__setattr__(self, "parameters", MappingProxyType(parameters))
        object.__setattr__(self, "forward", tuple(self.forward))
        object.__setattr__(self, "scalars", scalars)
        for name in self.fixed:
            if name not in parameters:
                raise UnknownNameError("parameter", name, list(parameters))
        object.__setattr__(self, "fixed", MappingProxyType({n: fixed_value(n, v, parameters[n])
                                                           for n, v in self.fixed.items()}))
        self.program()  # every line is checked now, so a bad model fails where it is made

    @cached_property
    def _program(self) -> Program:
        return _build(self)

    def program(self) -> Program:
        """The model as a :class:`~symbackprop.model.program.Program`."""
        return self._program


def _split(line: object, number: int) -> tuple[str, str]:
    """``"z1 = W1 @ X"`` → ``("z1", "W1 @ X")``."""
    where = f"forward line {number}"
    if not isinstance(line, str):
        raise SpecError(f"{where}: a line is text 'name = expression', not {type(line).__name__}")
    name, equals, rhs = line.partition("=")
    name = name.strip()
    if not equals or rhs.startswith("="):
        raise SpecError(f"{where} ({line.strip()!r}): expected 'name = expression'")
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise SpecError(f"{where} ({line.strip()!r}): {name!r} is not a name to define "
                        f"(a letter, then letters, digits or '_')")
    if not rhs.strip():
        raise SpecError(f"{where} ({line.strip()!r}): nothing after '='")
    return name, rhs


def _applied(expr) -> list:
    """The activations applied to a named quantity at the top of ``expr``: σ(z), or σ(z) + a skip term."""
    terms = expr.args if isinstance(expr, MatAdd) else (expr,)
    found = [t for t in terms if isinstance(t, (Elementwise, Softmax)) and isinstance(t.arg, Named)
             and (not isinstance(t, Elementwise) or t.order == 0)]
    others = [t for t in terms if t not in found]
    return found if len(found) == 1 and all(isinstance(t, (Named, MatrixSymbol)) for t in others) else []


def _build(model: Model) -> Program:
    columns = model.layout == "columns"
    inputs = {name: MatrixSymbol(name, *shape) for name, shape in model.inputs.items()}
    parameters = {name: MatrixSymbol(name, *shape) for name, shape in model.parameters.items()}
    scalars = {name: sympy.Symbol(name, positive=True) for name in model.scalars}
    sizes: list[sympy.Symbol] = []
    for shape in (*model.inputs.values(), *model.parameters.values()):
        sizes += [d for d in shape if isinstance(d, sympy.Symbol) and d not in sizes]
    for name in scalars:
        if name in inputs or name in parameters or name in {s.name for s in sizes}:
            raise SpecError(f"scalar {name!r} is also the name of an input, a parameter or a size")
    lines = [_split(line, number) for number, line in enumerate(model.forward, 1)]
    defined_at = {}
    for number, (name, _) in enumerate(lines, 1):
        if name in inputs or name in parameters or name in scalars:
            raise SpecError(f"forward line {number}: {name} is already an input, a parameter or a scalar")
        if name in defined_at:
            raise SpecError(f"forward line {number}: {name} is defined twice (first on line {defined_at[name]})")
        defined_at[name] = number
    registry = {a.name: a for a in ACTIVATIONS.values()}
    quantities: dict[str, Any] = {**inputs, **parameters}
    vocabulary_scalars = {s.name: s for s in sizes} | scalars
    data = inputs[naming.INPUT].shape
    batch = data[1] if columns else data[0]
    scope = new_scope()
    built: list[tuple[str, Any]] = []
    for number, (name, text) in enumerate(lines, 1):
        vocabulary = Vocabulary(
            quantities=MappingProxyType(dict(quantities)), scalars=MappingProxyType(vocabulary_scalars),
            sizes=tuple(dict.fromkeys([sympy.Integer(1), *sizes, batch])), learning_rates=(),
            functions=MappingProxyType(registry), depth=0, axis=0 if columns else 1)
        where = f"forward line {number} ({name} = {text.strip()})"
        try:
            expr = MatrixBuilder(vocabulary).build(syntax.parse(text))
        except UnknownNameError as err:
            later = defined_at.get(err.name) if hasattr(err, "name") else None
            if later is not None:
                raise SpecError(f"{where}: {err.name} is defined later, on line {later}; each line may use only "
                                f"the inputs, the parameters and the names defined above it") from None
            raise SpecError(f"{where}: {err}", hint=getattr(err, "hint", None)) from None
        except (ShapeError, FormulaError, FormulaSyntaxError) as err:
            raise SpecError(f"{where}: {err}") from None
        last = number == len(lines)
        if last:
            if getattr(expr, "is_Matrix", False):
                if expr.shape != (1, 1):
                    raise SpecError(f"{where}: the last line defines the cost, a scalar, but this is "
                                    f"{shape_text(expr.shape)}; sum its entries with sum(...)")
                expr = SumEntries(expr)
        elif not getattr(expr, "is_Matrix", False):
            raise SpecError(f"{where}: only the last line (the cost) may be a scalar; this one is {expr}")
        else:
            quantities[name] = Named(name, expr, scope)
        built.append((name, quantities.get(name, expr)))
    return _program(model, inputs, parameters, scalars, sizes, built)


def _program(model, inputs, parameters, scalars, sizes, built) -> Program:
    columns = model.layout == "columns"
    nodes = [node for _, node in built[:-1]]
    cost_name, cost = built[-1]
    roles = {node.name: "intermediate" for node in nodes}
    for node in nodes:
        for applied in _applied(node.definition):
            roles[node.name] = "activation"
            if roles.get(applied.arg.name) == "intermediate":
                roles[applied.arg.name] = "preactivation"
    if nodes and roles[nodes[-1].name] == "activation":
        roles[nodes[-1].name] = "output"
    definitions = []
    for node in nodes:
        split = naming.split_layer_name(node.name)
        kind = {"preactivation": "z", "activation": "a", "output": "a"}.get(roles[node.name])
        layer = split[1] if split is not None and split[0] == kind else None
        definitions.append(Definition(node, roles[node.name], layer))
    definitions.append(Definition(cost, "cost", label=cost_name))
    used = set()
    for _, node in built:
        expr = node.definition if isinstance(node, Named) else node
        used |= {n.name for n in walk(expr) if isinstance(n, MatrixSymbol)}
    for name in parameters:
        if name not in used:
            raise SpecError(f"parameter {name} is not used by any line of the forward pass; remove it")
    for name in (naming.INPUT, naming.TARGET):
        if name not in used:
            raise SpecError(f"the forward pass never reads the input {name}")
    activations = []
    for node in nodes:
        for part in walk(node.definition):
            if isinstance(part, Elementwise):
                entry = ACTIVATIONS.get(part.name) or (LOG if part.name == LOG.name else None)
                if entry is not None and entry not in activations:
                    activations.append(entry)
    output = definitions[-2] if len(definitions) > 1 else None
    target_kind, numeric_cost, cost_name = "real", cost, None
    Y = inputs[naming.TARGET]
    if output is not None:
        for entry in COSTS.values():
            if output.shape == Y.shape and tidy(entry.build(output.node, Y)) == tidy(cost):
                target_kind, cost_name = entry.target_kind, entry.name
                z = getattr(output.expr, "arg", None)
                if entry.stable is not None and isinstance(z, Named) and \
                        getattr(output.expr, "name", "softmax" if isinstance(output.expr, Softmax) else None) \
                        == entry.stable_output:
                    numeric_cost = entry.stable(z, Y, 0 if columns else 1)
                break
    fan_in = 1 if columns else 0
    params = []
    for name, symbol in parameters.items():
        split = naming.split_layer_name(name)
        vector = 1 in (symbol.shape[0], symbol.shape[1])
        init = "zeros" if (split is not None and split[0] == "b") or (split is None and vector) else "weight"
        params.append(Parameter(symbol, trained=name not in model.fixed, value=model.fixed.get(name), init=init,
                                fan_in=fan_in, layer=split[1] if split else None))
    declared = "; ".join([
        "inputs " + ", ".join(f"{n} ({shape_text(s.shape)})" for n, s in inputs.items()),
        "parameters " + ", ".join(f"{n} ({shape_text(s.shape)})" for n, s in parameters.items()),
    ])
    header = f"model: {declared}; layout {model.layout}" + (f"; fixed {', '.join(model.fixed)}" if model.fixed else "")
    return Program(
        inputs=tuple(Input(symbol, "input" if name == naming.INPUT else "target" if name == naming.TARGET
                           else "data") for name, symbol in inputs.items()),
        parameters=tuple(params),
        definitions=tuple(definitions),
        layout=model.layout,
        size_symbols=tuple(sizes),
        scalars=tuple(scalars.values()),
        activations=tuple(activations),
        numeric_cost=numeric_cost,
        target_kind=target_kind,
        cost_name=cost_name,
        title=f"the model of parameters {', '.join(parameters)}",
        header=header,
        source=model,
    )
