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
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import sympy
from sympy import MatAdd, MatrixSymbol

from .. import naming
from ..calculus.expressions import Broadcast, Named, SumEntries, hadamard_power, new_scope
from ..calculus.trees import substitute
from .activations import Activation, get_activation
from .costs import Cost, get_cost
from ..errors import SpecError, UnknownNameError

from .layers import KINDS as LAYER_KINDS, Builder, Embedding
from .program import fixed_value

if TYPE_CHECKING:
    from .program import Program

__all__ = ["Dense", "Network", "LAYOUTS", "REDUCTIONS", "size_symbol"]

LAYOUTS = ("columns", "rows")
#: how the cost combines the samples: their sum (the default) or their mean, as PyTorch's losses do
REDUCTIONS = ("sum", "mean")

_SYMBOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# the names of quantities, as the formula language reads them too (W_1 is W1)
_RESERVED = re.compile(r"^(X|Y|x|y|C|(" + "|".join(naming.LAYERED_KINDS) + r")_?[0-9]+)$")

Size = sympy.Expr
#: the largest weight decay: code computes 2λW, which must stay within float64
_LARGEST_DECAY = 1e300


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
        if name.isdigit():
            raise SpecError(f"{what} {value!r} is a number in quotes; write it without them: {name}")
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
    ``bias`` is ``True`` (one per unit), ``False``, or ``"shared"`` (one scalar
    added to every unit).  ``skip_from = k`` adds the output of layer ``k``
    (``k = 0``: the input X) to this layer's output, a⁽ˡ⁾ = σ(z⁽ˡ⁾) + a⁽ᵏ⁾;
    ``tied_to = k`` uses W⁽ᵏ⁾ᵀ instead of a weight of its own.
    """

    units: int | str
    activation: str | Activation = "identity"
    bias: bool | str = True
    skip_from: int | None = None
    tied_to: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", _size(self.units, "layer width"))
        object.__setattr__(self, "activation", get_activation(self.activation))
        if self.bias not in (True, False, "shared") or isinstance(self.bias, (int, float)) and \
                not isinstance(self.bias, bool):
            raise SpecError(f"bias must be true, false or \"shared\", not {self.bias!r}")
        for key in ("skip_from", "tied_to"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(f"{key} must be a layer number (0 for the input), not {value!r}")

    kind = "dense"

    @property
    def shared_bias(self) -> bool:
        return self.bias == "shared"

    def output_width(self, below):
        return self.units

    def parameter_specs(self, layer: int, below, columns: bool) -> dict:
        one = sympy.Integer(1)
        specs = {}
        if self.tied_to is None:
            specs[naming.weight(layer)] = ((self.units, below) if columns else (below, self.units), "weight",
                                           1 if columns else 0)
        if self.shared_bias:
            specs[naming.bias(layer)] = ((one, one), "zeros", 0)
        elif self.bias:
            specs[naming.bias(layer)] = ((self.units, one) if columns else (one, self.units), "zeros", 0)
        return specs

    def check(self, net: "Network", layer: int, below) -> None:
        pass

    def label(self) -> str:
        return self.activation.name


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
    fixed: Mapping[str, object] = field(default_factory=dict)
    reduction: str = "sum"
    activations: tuple[Activation, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _size(self.inputs, "inputs"))
        object.__setattr__(self, "batch", _size(self.batch, "batch"))
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Sequence):
            raise SpecError("layers must be a list of Dense layers")
        layers = tuple(self.layers)
        if not layers:
            raise SpecError("the network has no layers; give at least one Dense layer")
        kinds = (Dense, *LAYER_KINDS.values())
        for index, layer in enumerate(layers, 1):
            if not isinstance(layer, kinds):
                raise SpecError(f"layer {index} must be a layer (Dense, {', '.join(k.__name__ for k in kinds[1:])}), "
                                f"not {type(layer).__name__}")
        object.__setattr__(self, "layers", layers)
        if self.reduction not in REDUCTIONS:
            raise SpecError(f"unknown reduction {self.reduction!r}; known: {', '.join(REDUCTIONS)}")
        try:
            object.__setattr__(self, "cost", get_cost(self.cost))
        except UnknownNameError as error:
            last = layers[-1].activation.name
            if isinstance(self.cost, str) and "cross" in self.cost.lower() and last in ("softmax", "sigmoid"):
                # a cross-entropy after a softmax is the softmax one, after a sigmoid the binary one
                error.hint = f"did you mean {('softmax' if last == 'softmax' else 'binary') + '_cross_entropy'!r}?"
            raise
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
        self._check_connections()
        n = self.sizes
        for l, layer in enumerate(layers, 1):
            layer.check(self, l, n[l - 1])
        object.__setattr__(self, "fixed", self._fixed(self.fixed))

    def _check_connections(self) -> None:
        """``skip_from`` reaches an earlier layer of the same width; ``tied_to`` a weight of the transposed shape."""
        n = self.sizes
        for l, layer in enumerate(self.layers, 1):
            if layer.skip_from is not None:
                k = layer.skip_from
                if k == 0 and isinstance(self.layers[0], Embedding):
                    raise SpecError(f"layer {l}: skip_from = 0 adds the input X, but the input is one-hot words "
                                    f"the embedding reads; skip from layer 1 or later")
                if k >= l:
                    raise SpecError(f"layer {l}: skip_from = {k} must name an earlier layer (0 to {l - 1}; 0 is the input)")
                if n[k] != n[l]:
                    raise SpecError(f"layer {l}: skip_from = {k} adds a⁽{k}⁾ of width {n[k]} to a layer of width "
                                    f"{n[l]}; a skip connection needs equal widths")
            if layer.tied_to is not None:
                k = layer.tied_to
                if not 1 <= k <= self.depth or k == l:
                    raise SpecError(f"layer {l}: tied_to = {k} must name another layer (1 to {self.depth})")
                if not isinstance(self.layers[k - 1], Dense):
                    raise SpecError(f"layer {l}: tied_to = {k}, but layer {k} is a {self.layers[k - 1].kind} "
                                    f"layer; tie to a dense layer's weight")
                if self.layers[k - 1].tied_to is not None:
                    raise SpecError(f"layer {l}: tied_to = {k}, but layer {k} is itself tied to layer "
                                    f"{self.layers[k - 1].tied_to}; tie to a layer with a weight of its own")
                if (n[l], n[l - 1]) != (n[k - 1], n[k]):
                    raise SpecError(f"layer {l}: tied_to = {k} uses W⁽{k}⁾ᵀ, which maps width {n[k]} to "
                                    f"{n[k - 1]}, but layer {l} maps {n[l - 1]} to {n[l]}")

    def _fixed(self, fixed: object) -> MappingProxyType:
        """Fixed parameters: known names, finite values shaped like the parameter (or one number)."""
        if not isinstance(fixed, Mapping):
            raise SpecError(f"fixed must map parameter names to values, not {type(fixed).__name__}")
        shapes = self.parameter_shapes()
        values: dict[str, np.ndarray] = {}
        for name, value in fixed.items():
            if name not in shapes:
                raise UnknownNameError("parameter", name, list(shapes))
            array = fixed_value(name, value, shapes[name])
            values[name] = array
        return MappingProxyType(values)

    @staticmethod
    def _weight_decay(value: object) -> sympy.Expr:
        problem = f"weight_decay must be a finite number ≥ 0 or a symbol name, not {value!r}"
        if isinstance(value, bool):
            raise SpecError(problem)
        if isinstance(value, (int, float, np.integer, np.floating)):
            try:
                magnitude = float(value)
            except OverflowError:
                magnitude = float("inf")
            if not (np.isfinite(magnitude) and magnitude <= _LARGEST_DECAY):
                shown = repr(value) if len(repr(value)) <= 24 else f"{repr(value)[:12]}… ({len(repr(value))} digits)"
                raise SpecError(f"weight_decay must be a finite number from 0 to at most {_LARGEST_DECAY:g} "
                                f"(2λ must stay a float) or a symbol name, not {shown}")
            # exact: the decimal the user wrote, not a nearby "nice" number
            decay = sympy.Rational(Fraction(str(value)))
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
        identity = get_activation("identity")
        activations = [layer.activation if isinstance(layer, Dense) else identity for layer in layers]
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
        widths = [self.inputs]
        for layer in self.layers:
            widths.append(layer.output_width(widths[-1]))
        return tuple(widths)

    def data_shape(self, width: Size) -> tuple[Size, Size]:
        """The shape of a batch of ``width``-wide vectors: (width, m) or (m, width)."""
        return (width, self.batch) if self.layout == "columns" else (self.batch, width)

    def parameter_shapes(self) -> dict[str, tuple[Size, Size]]:
        """Ordered parameter names ("W1", "b1", …) and their shapes in this layout (fixed ones too)."""
        return {name: spec[0] for name, spec in self.parameter_specs().items()}

    def parameter_specs(self) -> dict[str, tuple[tuple[Size, Size], str, int]]:
        """Each parameter → (shape, how it starts, the axis of its shape that counts inputs)."""
        specs: dict = {}
        n = self.sizes
        columns = self.layout == "columns"
        for l, layer in enumerate(self.layers, 1):
            specs.update(layer.parameter_specs(l, n[l - 1], columns))
        return specs

    @property
    def size_symbols(self) -> tuple[sympy.Symbol, ...]:
        """The symbolic sizes, in order of first appearance (n₀ … n_L, then m)."""
        seen: list[sympy.Symbol] = []
        shapes = [d for shape in self.parameter_shapes().values() for d in shape]
        for size in (*self.sizes, self.batch, *shapes):
            if isinstance(size, sympy.Symbol) and size not in seen:
                seen.append(size)
        return tuple(seen)

    def describe_widths(self) -> str:
        """``3 → 4 → 2 (tanh, identity)``: the widths and the activations."""
        widths = " → ".join(str(n) for n in self.sizes)
        return f"{widths} ({', '.join(layer.label() for layer in self.layers)})"

    def describe(self) -> str:
        """The network in one line, as ``symbackprop derive`` opens with it."""
        parts = [f"network: {self.describe_widths()}", f"cost {self.cost.name}", f"layout {self.layout}",
                 f"batch {self.batch}"]
        if self.weight_decay != 0:
            parts.append(f"weight decay {self.weight_decay}")
        if self.reduction == "mean":
            parts.append("mean over the samples")
        for l, layer in enumerate(self.layers, 1):
            if layer.skip_from is not None:
                parts.append(f"layer {l} adds a{layer.skip_from}")
            if layer.tied_to is not None:
                parts.append(f"layer {l} uses W{layer.tied_to}ᵀ")
            if isinstance(layer, Dense) and layer.shared_bias:
                parts.append(f"layer {l} shares one bias")
        if self.fixed:
            parts.append("fixed " + ", ".join(self.fixed))
        return "; ".join(parts)

    # --- the program ---------------------------------------------------------------------

    @cached_property
    def _program(self) -> "Program":
        return _build_program(self)

    def program(self) -> "Program":
        """The network as a :class:`~symbackprop.model.program.Program` of named definitions.

        >>> net = Network(2, [Dense(2, "tanh"), Dense(2, skip_from=1)])
        >>> print(net.program().definition("a2").expr)
        identity(z2) + a1
        """
        return self._program


def _dense(b: Builder, l: int, layer: Dense, activation: Activation, below):
    """z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾1ᵀ, then σ(z⁽ˡ⁾) (the layer's output before any skip)."""
    W = b.parameter(naming.weight(l)) if layer.tied_to is None else b.parameter(naming.weight(layer.tied_to)).T
    pre = W * below if b.columns else below * W
    if layer.bias:
        bias = b.parameter(naming.bias(l))
        shape = b.net.data_shape(b.net.sizes[l])
        # one sample needs no broadcast: z = W a + b
        pre = pre + (bias if bias.shape == shape else Broadcast(bias, *shape))
    z = b.define(naming.preactivation(l), pre, "preactivation", l)
    return activation.apply(z, 0 if b.columns else 1)


def _build_program(net: Network) -> "Program":
    """Each layer appends its definitions (a dense layer z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾1ᵀ and a⁽ˡ⁾ = σ(z⁽ˡ⁾)),
    then a⁽ˡ⁾ (+ a⁽ᵏ⁾ for a skip); the cost comes last."""
    from .program import Definition, Input, Parameter, Program

    columns = net.layout == "columns"
    n = net.sizes
    first = net.layers[0]
    X = MatrixSymbol(naming.INPUT, *net.data_shape(n[0]))
    Y = MatrixSymbol(naming.TARGET, *net.data_shape(n[-1]))
    parameters: dict[str, Parameter] = {}
    for name, (shape, init, fan_in) in net.parameter_specs().items():
        kind = naming.split_layer_name(name)
        parameters[name] = Parameter(MatrixSymbol(name, *shape), trained=name not in net.fixed,
                                     value=net.fixed.get(name), init=init, fan_in=fan_in,
                                     layer=kind[1] if kind else None)
    b = Builder(net, parameters, new_scope())
    outputs: list = [X]
    for l, (layer, activation) in enumerate(zip(net.layers, net.activations), 1):
        below = outputs[-1]
        if isinstance(layer, Dense):
            out = _dense(b, l, layer, activation, below)
        else:
            out = layer.append(b, l, below)
        if layer.skip_from is not None:
            if isinstance(layer, Dense):
                out = out + outputs[layer.skip_from]
            else:  # the layer's own terms first, as written (γ ⊙ x̂ + β + a⁽ᵏ⁾)
                out = MatAdd(*(out.args if isinstance(out, MatAdd) else (out,)), outputs[layer.skip_from],
                             evaluate=False)
        outputs.append(b.define(naming.activation(l), out, "output" if l == net.depth else "activation", l))
    definitions = b.definitions
    output = outputs[-1]
    data_loss = net.cost.build(output, Y)
    mean = net.reduction == "mean" and net.batch != 1
    cost = data_loss / net.batch if mean else data_loss
    decayed = [p.symbol for p in parameters.values() if p.trained and p.init == "weight"]
    decay = net.weight_decay * sympy.Add(*(SumEntries(hadamard_power(W, 2)) for W in decayed)) \
        if net.weight_decay != 0 and decayed else 0
    numeric_loss = data_loss
    last = net.layers[-1]
    if net.cost.stable is not None and net.activations[-1].name == net.cost.stable_output \
            and isinstance(last, Dense) and last.skip_from is None:
        numeric_loss = net.cost.stable(definitions[-2].node, Y, 0 if columns else 1)
    numeric_cost = (numeric_loss / net.batch if mean else numeric_loss) + decay
    cost = cost + decay
    definitions.append(Definition(cost, "cost", label=naming.COST))
    return Program(
        inputs=(Input(X, "input", "one_hot" if isinstance(first, Embedding) else "real"), *b.inputs,
                Input(Y, "target")),
        parameters=tuple(parameters.values()),
        definitions=tuple(definitions),
        layout=net.layout,
        size_symbols=net.size_symbols,
        scalars=(net.weight_decay,) if isinstance(net.weight_decay, sympy.Symbol) else (),
        activations=tuple(dict.fromkeys(net.activations)),
        numeric_cost=numeric_cost,
        target_kind=net.cost.target_kind,
        cost_name=net.cost.name,
        title=f"the network {net.describe_widths()}, cost {net.cost.name}",
        header=net.describe(),
        source=net,
    )
