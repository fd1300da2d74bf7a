"""From a network to its gradients: the derivation.

:func:`derive` writes the forward pass as named quantities
(``z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾ + b⁽ˡ⁾1ᵀ``, ``a⁽ˡ⁾ = σ(z⁽ˡ⁾)``), builds the cost, and runs
the chain rule of :mod:`symbackprop.calculus.autodiff` backwards one definition at a
time.  Each ``δ⁽ˡ⁾ = ∂C/∂z⁽ˡ⁾`` is named once and reused by the layer below, so
the work and the size of the result grow linearly with depth.

The :class:`Derivation` holds everything a renderer needs — definitions, deltas,
gradients, the ordered chain-rule steps and the assumptions used — so renderers
never compute mathematics themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import sympy
from sympy import Basic, Expr, MatrixSymbol, OneMatrix

from . import naming
from .model.activations import Activation
from .calculus.autodiff import backward
from .calculus.expressions import hadamard_power
from .model.costs import distribution_assumption
from .calculus.expressions import Adjoint, Broadcast, Elementwise, Named, SumEntries, new_scope
from .model.network import Network
from .calculus.simplify import _Atoms, _from_scalar, tidy
from .calculus.trees import expand_names, mentions, substitute, walk

__all__ = ["Derivation", "Step", "derive", "expand_names"]


@dataclass(frozen=True)
class Step:
    """One step of the backward pass: ``lhs = general = rhs``.

    ``general`` is the step as the rule states it, in terms of the adjoint just
    above (``∂C/∂a⁽ˡ⁾ ⊙ σ'(z⁽ˡ⁾)``); ``rhs`` the same with that adjoint written
    out and simplified.  ``rule`` names the chain rules applied; ``note`` says
    which assumption, if any, the step uses.
    """

    lhs: Expr
    general: Expr
    rhs: Expr
    rule: str
    layer: int
    note: str | None = None


@dataclass(frozen=True)
class Derivation:
    """The result of :func:`derive`.

    * ``symbols`` — ``"X"``, ``"Y"``, ``"W1"``, ``"b1"``, … as ``MatrixSymbol``;
    * ``forward`` — ``z1, a1, …, zL, aL`` as :class:`~symbackprop.calculus.expressions.Named`;
    * ``cost`` — C in terms of ``aL`` (and the weights, with weight decay);
    * ``deltas`` — ``"delta1"`` … ``"deltaL"``, each ∂C/∂z⁽ˡ⁾;
    * ``gradients`` — ``"W1"``, ``"b1"``, … → ∂C/∂W⁽¹⁾, … of the parameter's shape;
    * ``steps`` — the chain-rule steps from ∂C/∂a⁽ᴸ⁾ down to layer 1;
    * ``assumptions`` — standing assumptions the derivation used.
    """

    network: Network
    symbols: Mapping[str, MatrixSymbol]
    forward: tuple[Named, ...]
    cost: Expr
    deltas: Mapping[str, Named]
    gradients: Mapping[str, Expr]
    steps: tuple[Step, ...]
    assumptions: tuple[str, ...]

    @property
    def output(self) -> Named:
        """``a⁽ᴸ⁾``, the network's output."""
        return self.forward[-1]

    def quantity(self, name: str) -> Expr:
        """Any named quantity: ``"X"``, ``"W2"``, ``"z1"``, ``"a0"``, ``"delta2"``, ``"Y"``."""
        if name in self.symbols:
            return self.symbols[name]
        if name == "a0":
            return self.symbols[naming.INPUT]
        for node in self.forward:
            if node.name == name:
                return node
        if name in self.deltas:
            return self.deltas[name]
        known = [*self.symbols, "a0", *(n.name for n in self.forward), *self.deltas]
        from .errors import UnknownNameError

        raise UnknownNameError("quantity", name, known)

    def cost_expression(self) -> Expr:
        """The cost written out in inputs, targets and parameters only (no names)."""
        return expand_names(self.cost)

    def text(self) -> str:
        """The derivation as readable Unicode text (what ``symbackprop derive`` prints)."""
        from .printing.text import render_text

        return render_text(self)

    def evaluate(self, expr: "Expr | str", values: Mapping[str, object]):
        """Evaluate an expression, or a quantity's name, at ``values`` (see :func:`symbackprop.evaluate`)."""
        from .calculus.numeric import evaluate

        return evaluate(self.quantity(expr) if isinstance(expr, str) else expr, values)

    def latex(self, standalone: bool = False, *, template_dir: "str | None" = None, **notation) -> str:
        r"""The derivation in LaTeX (``align*``): a body to ``\input``, or with ``standalone`` a whole document.

        ``notation``: ``bold``, ``learning_rate``, ``symbols``, ``scalar``, ``inline``,
        ``line_width`` (see :mod:`symbackprop.outputs.documents`); ``template_dir`` a folder
        whose templates replace the bundled ones of the same name.

        >>> from symbackprop import Dense, Network
        >>> d = derive(Network(3, [Dense(2, "sigmoid")]))
        >>> r"\delta^{(1)} = \frac{\partial C}{\partial z^{(1)}}" in d.latex()
        True
        """
        from .outputs.documents import render_latex

        return render_latex(self, standalone, template_dir, **notation)

    def markdown(self, *, template_dir: "str | None" = None, **notation) -> str:
        """The derivation in Markdown with ``$$`` blocks, for GitHub and notebooks; options as :meth:`latex`."""
        from .outputs.documents import render_markdown

        return render_markdown(self, template_dir, **notation)

    def _repr_latex_(self) -> str:
        from .outputs.documents import render_summary

        return render_summary(self)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def numpy(self):
        """The executable update functions, compiled in this process (see :class:`symbackprop.outputs.codegen.UpdateFunctions`).

        >>> import numpy as np
        >>> from symbackprop import Dense, Network
        >>> f = derive(Network(1, [Dense(1, bias=False)])).numpy()
        >>> f.gradients({"W1": np.array([[-23.1]])}, np.array([[5.7]]), np.array([[50.1]]))["W1"].round(3)
        array([[-2072.178]])
        """
        from .outputs.codegen import compile_numpy

        return compile_numpy(self)

    def numpy_source(self) -> str:
        """The text of a standalone NumPy module with ``forward``, ``cost``, ``gradients``, ``step``, … (see :mod:`symbackprop.outputs.codegen`)."""
        from .outputs.codegen import module_source

        return module_source(self)


def _size_of(expr: Basic) -> int:
    """How many nodes an expression has, not counting inside names: the shorter form wins."""
    count, stack = 0, [expr]
    while stack:
        node = stack.pop()
        count += 1
        if not isinstance(node, (Named, MatrixSymbol, sympy.Lambda)):
            stack.extend(node.args)
    return count


def _output_form(activation: Activation, output: Named) -> Expr:
    """σ'(z) written through the layer's output a = σ(z), e.g. a ⊙ (1 − a) for the sigmoid."""
    from .model.activations import y

    atoms = _Atoms()
    atoms.symbol_of[output] = y
    atoms.matrix_of[y] = output
    return _from_scalar(activation.output_derivative, atoms, output.shape)


def derive(network: Network) -> Derivation:
    """Derive ∂C/∂W⁽ˡ⁾ and ∂C/∂b⁽ˡ⁾ for every layer of ``network``.

    >>> from symbackprop import Dense, Network
    >>> from symbackprop.printing import to_text
    >>> d = derive(Network(3, [Dense(2, "sigmoid")], cost="binary_cross_entropy"))
    >>> to_text(d.deltas["delta1"].definition), to_text(d.gradients["W1"])
    ('a⁽¹⁾ − Y', 'δ⁽¹⁾ Xᵀ')
    """
    if not isinstance(network, Network):
        from .errors import SymbackpropError

        raise SymbackpropError(f"derive takes a Network, not {type(network).__name__}")
    net = network
    columns = net.layout == "columns"
    n = net.sizes
    X = MatrixSymbol(naming.INPUT, *net.data_shape(n[0]))
    Y = MatrixSymbol(naming.TARGET, *net.data_shape(n[-1]))
    symbols: dict[str, MatrixSymbol] = {naming.INPUT: X, naming.TARGET: Y}
    for name, shape in net.parameter_shapes().items():
        symbols[name] = MatrixSymbol(name, *shape)

    # forward pass
    scope = new_scope()
    forward: list[Named] = []
    a: Expr = X
    for l, (layer, activation) in enumerate(zip(net.layers, net.activations), 1):
        W = symbols[naming.weight(l)]
        pre = W * a if columns else a * W
        if layer.bias:
            b = symbols[naming.bias(l)]
            # one sample needs no broadcast: z = W a + b
            pre = pre + (b if net.batch == 1 else Broadcast(b, *net.data_shape(n[l])))
        z = Named(naming.preactivation(l), pre, scope)
        a = Named(naming.activation(l), activation.apply(z, 0 if columns else 1), scope)
        forward += [z, a]
    output = forward[-1]

    weights = [symbols[naming.weight(l)] for l in range(1, net.depth + 1)]
    cost = net.cost.build(output, Y)
    if net.weight_decay != 0:
        cost = cost + net.weight_decay * sympy.Add(*(SumEntries(hadamard_power(W, 2)) for W in weights))

    # backward pass, one definition at a time
    steps: list[Step] = []
    assumptions: list[str] = []
    top = backward(cost, sympy.Integer(1), [output, *weights])
    g = tidy(top.adjoints[output])
    steps.append(Step(Adjoint(output), g, g, ", ".join(top.rules), net.depth))
    decay = {W: tidy(top.adjoints[W]) for W in weights if W in top.adjoints}

    deltas: dict[str, Named] = {}
    gradients: dict[str, Expr] = {}
    for l in range(net.depth, 0, -1):
        layer, activation = net.layers[l - 1], net.activations[l - 1]
        z, a = forward[2 * l - 2], forward[2 * l - 1]
        general = backward(a.definition, Adjoint(a), [z])
        stated = substitute(general.adjoints[z], {a.definition: a})  # the rule, in terms of ∂C/∂a
        concrete = substitute(stated, {Adjoint(a): g})
        candidates = [tidy(concrete)]
        note = None
        if activation.output_derivative is not None and mentions(concrete, a):
            # σ' written through the output can cancel against ∂C/∂a (sigmoid + cross-entropy)
            derivative = Elementwise(activation.name, activation.function, z, 1)
            candidates.append(tidy(substitute(concrete, {derivative: _output_form(activation, a)})))
        if activation.definition is None and l == net.depth and net.cost.distribution_targets:
            with_assumption = _assume_distributions(candidates[0], Y, columns)
            if with_assumption != candidates[0]:
                candidates.append(with_assumption)
        best = min(candidates, key=_size_of)  # min keeps the first of equals: the textbook product form
        if net.cost.distribution_targets and best is not candidates[0] and activation.definition is None:
            note = distribution_assumption(net.layout)
            assumptions.append(note)
        delta = Named(naming.delta(l), best, scope)
        deltas[delta.name] = delta
        steps.append(Step(delta, tidy(stated), best, ", ".join(general.rules), l, note))

        inputs = [symbols[naming.weight(l)]]
        if layer.bias:
            inputs.append(symbols[naming.bias(l)])
        below = forward[2 * l - 3] if l > 1 else None
        if below is not None:
            inputs.append(below)
        local = backward(z.definition, delta, inputs)
        for parameter in inputs[: 1 + layer.bias]:
            gradient = tidy(local.adjoints[parameter])
            if parameter in decay:
                gradient = sympy.MatAdd(gradient, decay[parameter]).doit(deep=False)
            rule = "matrix product" if parameter.name.startswith("W") else "bias broadcast" if net.batch != 1 else "sum"
            if parameter in decay:
                rule += ", weight decay"
            steps.append(Step(Adjoint(parameter), gradient, gradient, rule, l))
            gradients[parameter.name] = gradient
        if below is not None:
            g = tidy(local.adjoints[below])
            steps.append(Step(Adjoint(below), g, g, "matrix product", l))

    order = [name for name in net.parameter_shapes()]
    return Derivation(
        network=net,
        symbols=MappingProxyType(symbols),
        forward=tuple(forward),
        cost=cost,
        deltas=MappingProxyType({k: deltas[k] for k in sorted(deltas, key=lambda k: int(k[5:]))}),
        gradients=MappingProxyType({name: gradients[name] for name in order}),
        steps=tuple(steps),
        assumptions=tuple(dict.fromkeys(assumptions)),
    )


def _assume_distributions(expr: Expr, Y: MatrixSymbol, columns: bool) -> Expr:
    """Use 1ᵀY = 1ᵀ (columns) or Y1 = 1 (rows): each sample's targets sum to one."""
    rows, cols = Y.shape
    replacement = {}
    for node in walk(expr):
        if isinstance(node, sympy.MatMul) and len(node.args) == 2:
            first, second = node.args
            if columns and second == Y and isinstance(first, OneMatrix):
                replacement[node] = OneMatrix(first.shape[0], cols)
            elif not columns and first == Y and isinstance(second, OneMatrix):
                replacement[node] = OneMatrix(rows, second.shape[1])
    return tidy(substitute(expr, replacement)) if replacement else expr
