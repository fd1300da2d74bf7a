"""From a program of named definitions to its gradients: the derivation.

:func:`derive` sweeps the program's definitions in reverse.  Each
definition's adjoint ``∂C/∂name`` is the sum of what the definitions that read
it send back — one application of the chain rule of
:mod:`symbackprop.calculus.autodiff` per definition — so fan-out from skip
connections, tied weights and shared parameters needs nothing special.  The
adjoint of a pre-activation is named ``δ`` once and reused (as is any adjoint
that feeds more than one quantity), so the work and the size of the result
grow linearly with depth.  Textbook forms (δᴸ = aᴸ − y) come from
:mod:`symbackprop.textbook`.

The :class:`Derivation` holds everything a renderer needs — the program,
deltas, gradients, the ordered chain-rule steps and the assumptions used — so
renderers never compute mathematics themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import sympy
from sympy import Expr, MatAdd, MatrixSymbol

from . import naming, textbook
from .calculus.autodiff import backward
from .calculus.expressions import Adjoint, Named
from .calculus.simplify import tidy
from .calculus.trees import expand_names, substitute
from .errors import SpecError, SymbackpropError, UnknownNameError
from .model.network import Network
from .model.program import Definition, Program

__all__ = ["Derivation", "Step", "derive", "expand_names", "program_of"]


@dataclass(frozen=True)
class Step:
    """One step of the backward pass: ``lhs = general = rhs``.

    ``general`` is the step as the rule states it, in terms of the adjoints just
    above (``∂C/∂a⁽ˡ⁾ ⊙ σ'(z⁽ˡ⁾)``); ``rhs`` the same with those adjoints written
    out and simplified.  ``rule`` names the chain rules applied; ``note`` says
    which assumption, if any, the step uses.  ``quantity`` is the name whose
    adjoint the step gives and ``role`` its role (a definition's role, or
    ``"parameter"``); ``layer`` the layer whose backward pass produced it.
    """

    lhs: Expr
    general: Expr
    rhs: Expr
    rule: str
    layer: int | None
    note: str | None = None
    quantity: str = ""
    role: str = ""


@dataclass(frozen=True)
class Derivation:
    """The result of :func:`derive`.

    * ``program`` — the :class:`~symbackprop.model.program.Program` derived;
    * ``symbols`` — inputs and parameters (``"X"``, ``"Y"``, ``"W1"``, …) as ``MatrixSymbol``;
    * ``forward`` — every definition but the cost (``z1, a1, …, zL, aL``) as
      :class:`~symbackprop.calculus.expressions.Named`;
    * ``cost`` — C in terms of the output (and the weights, with weight decay);
    * ``deltas`` — ``"delta1"`` … ``"deltaL"``, each ∂C/∂z⁽ˡ⁾;
    * ``adjoints`` — each definition's name → its adjoint as the derivation uses
      it (a named δ, a named ∂C/∂a, or an expression);
    * ``gradients`` — each trained parameter → ∂C/∂W⁽¹⁾, … of the parameter's shape;
    * ``steps`` — the chain-rule steps from the cost down to the inputs;
    * ``assumptions`` — standing assumptions the derivation used.
    """

    program: Program
    symbols: Mapping[str, MatrixSymbol]
    forward: tuple[Named, ...]
    cost: Expr
    deltas: Mapping[str, Named]
    adjoints: Mapping[str, Expr]
    gradients: Mapping[str, Expr]
    steps: tuple[Step, ...]
    assumptions: tuple[str, ...]

    @property
    def network(self) -> "Network | None":
        """The layer stack the program was built from (``None`` for a model written as equations)."""
        return self.program.source if isinstance(self.program.source, Network) else None

    @property
    def output(self) -> Named:
        """The network's output (``a⁽ᴸ⁾`` of a layer stack)."""
        return self.program.output.node

    def quantity(self, name: str) -> Expr:
        """Any named quantity: ``"X"``, ``"W2"``, ``"z1"``, ``"a0"``, ``"delta2"``, ``"Y"``."""
        if name in self.symbols:
            return self.symbols[name]
        if name == "a0" and naming.INPUT in self.symbols:
            return self.symbols[naming.INPUT]
        for node in self.forward:
            if node.name == name:
                return node
        if name in self.deltas:
            return self.deltas[name]
        named = {node.name: node for node in self.adjoints.values() if isinstance(node, Named)}
        if name in named:
            return named[name]
        known = [*self.symbols, *(["a0"] if naming.INPUT in self.symbols else []), *(n.name for n in self.forward),
                 *self.deltas, *(n for n in named if n not in self.deltas)]
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
        """A notebook's display: the summary block, no heading (an output cell is not a document)."""
        from .outputs.documents import render_summary

        return render_summary(self)

    def _repr_markdown_(self) -> str:
        """The same summary as :meth:`_repr_latex_`, so that every front end shows the same; the whole
        derivation is ``display(Markdown(d.markdown()))``."""
        return self._repr_latex_()

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

    def code(self, target: str = "numpy") -> str:
        """The update code for ``target`` — ``"numpy"``, ``"torch"``, ``"jax"`` or ``"octave"`` — as text.

        Every target prints the same statement plan (see :mod:`symbackprop.outputs.targets`).

        >>> from symbackprop import Dense, Network
        >>> "def step(params, X, Y, lr):" in derive(Network(1, [Dense(1, bias=False)])).code("torch")
        True
        """
        from .outputs.targets import source

        return source(self, target)

    def compiled(self, target: str = "numpy"):
        """The generated functions of ``target`` (``"numpy"``, ``"torch"`` or ``"jax"``), run in this process."""
        from .outputs.targets import compile

        return compile(self, target)

    def numpy_source(self) -> str:
        """The text of a standalone NumPy module with ``forward``, ``cost``, ``gradients``, ``step``, … (see :mod:`symbackprop.outputs.codegen`)."""
        from .outputs.codegen import module_source

        return module_source(self)



def program_of(model: object) -> Program:
    """The program of a :class:`Network`, a :class:`~symbackprop.model.equations.Model` or a :class:`Program`."""
    if isinstance(model, Program):
        return model
    build = getattr(model, "program", None)
    if callable(build):
        program = build()
        if isinstance(program, Program):
            return program
    raise SymbackpropError(f"derive takes a Network or a Model, not {type(model).__name__}")


def derive(model: "Network | Program") -> Derivation:
    """Derive ∂C/∂θ for every trained parameter θ of ``model`` (a :class:`Network` or a ``Model``).

    >>> from symbackprop import Dense, Network
    >>> from symbackprop.printing import to_text
    >>> d = derive(Network(3, [Dense(2, "sigmoid")], cost="binary_cross_entropy"))
    >>> to_text(d.deltas["delta1"].definition), to_text(d.gradients["W1"])
    ('a⁽¹⁾ − Y', 'δ⁽¹⁾ Xᵀ')
    """
    return _Sweep(program_of(model)).run()


@dataclass(frozen=True)
class _Contribution:
    """What one reader sends back to a quantity it reads, in terms of the reader's adjoint placeholder."""

    reader: Definition
    stated: Expr
    rules: tuple[str, ...]


class _Sweep:
    """The reverse sweep: one backward pass per definition, adjoints completed at their first reader."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.definitions = {d.name: d for d in program.definitions}
        self.index = {d.name: i for i, d in enumerate(program.definitions)}
        self.trained = {p.name: p for p in program.trained}
        self.reads = {d.name: [x for x in program.reads(d) if x in self.trained or x in self.definitions]
                      for d in program.definitions}
        self.first_reader: dict[str, int] = {}
        for d in program.definitions:
            for x in self.reads[d.name]:
                self.first_reader.setdefault(x, self.index[d.name])
        self.scope = next((d.node.scope for d in program.definitions if isinstance(d.node, Named)), 0)
        self.contributions: dict[str, list[_Contribution]] = {}
        self.adjoint: dict[str, Expr] = {}  # a processed definition → its adjoint, as readers below use it
        self.named: set[str] = set()  # definitions whose adjoint is a name
        self.steps: list[Step] = []
        self.deltas: dict[str, Named] = {}
        self.delta_of: dict[str, str] = {}  # δ's name → its pre-activation's
        self.gradients: dict[str, Expr] = {}
        self.assumptions: list[str] = []

    def run(self) -> Derivation:
        program = self.program
        for name in self.trained:
            if name not in self.first_reader:
                raise SpecError(f"the cost does not depend on the parameter {name}; remove it or mark it fixed")
        for d in reversed(program.definitions):
            if d.role == "cost":
                seed: Expr = sympy.Integer(1)
            elif d.name in self.adjoint:
                seed = Adjoint(d.node)
            else:
                # nothing below the cost reads it (or only as a statistic its reader's rule accounts
                # for): it sends nothing back, but what it reads may be complete now
                for x in self.reads[d.name]:
                    if self.first_reader[x] == self.index[d.name]:
                        self._complete(x)
                continue
            targets = {x: self.definitions[x].node if x in self.definitions else self.trained[x].symbol
                       for x in self.reads[d.name]}
            result = backward(d.expr, seed, targets.values())
            for x, target in targets.items():
                if target in result.adjoints:
                    stated = result.adjoints[target]
                    if isinstance(d.node, Named):  # a rule that repeats the node (softmax) names it instead
                        stated = substitute(stated, {d.expr: d.node})
                    self.contributions.setdefault(x, []).append(_Contribution(d, stated, result.paths[target]))
            for x in targets:
                if self.first_reader[x] == self.index[d.name]:
                    self._complete(x)
        for name in self.trained:
            if name not in self.gradients:
                raise SpecError(f"the cost does not depend on the parameter {name}; remove it or mark it fixed")
        # deltas in the order of their pre-activations (δ⁽¹⁾ first), as the program defines them
        ordered_deltas = sorted(self.deltas.values(), key=lambda n: self.index[self.delta_of[n.name]])
        return Derivation(
            program=program,
            symbols=MappingProxyType(program.symbols()),
            forward=tuple(d.node for d in program.forward),
            cost=program.cost.expr,
            deltas=MappingProxyType({n.name: n for n in ordered_deltas}),
            adjoints=MappingProxyType(dict(self.adjoint)),
            gradients=MappingProxyType({p.name: self.gradients[p.name] for p in program.trained}),
            steps=tuple(self.steps),
            assumptions=tuple(dict.fromkeys(self.assumptions)),
        )

    def _terms(self, x: str, named_only: bool) -> Expr:
        """``x``'s adjoint: each contribution with its reader's adjoint put in (only the named ones, for
        the general form of a step), tidied, summed in program order."""
        terms = []
        for c in sorted(self.contributions[x], key=lambda c: self.index[c.reader.name]):
            if c.reader.role == "cost":
                terms.append(tidy(c.stated))
                continue
            reader = c.reader.name
            if named_only and reader not in self.named:
                terms.append(tidy(c.stated))
            else:
                terms.append(tidy(substitute(c.stated, {Adjoint(c.reader.node): self.adjoint[reader]})))
        return terms[0] if len(terms) == 1 else MatAdd(*terms).doit(deep=False)

    def _complete(self, x: str) -> None:
        """Every reader of ``x`` has sent its share: state ``x``'s adjoint as a step."""
        contributions = sorted(self.contributions.get(x, []), key=lambda c: self.index[c.reader.name])
        if not contributions:
            return  # x reaches the cost through nothing differentiable
        parameter = x in self.trained
        rule = textbook.label([c.rules for c in contributions], parameter)
        layer = contributions[0].reader.layer
        if parameter:
            gradient = self._terms(x, named_only=False)
            self.gradients[x] = gradient
            symbol = self.trained[x].symbol
            self.steps.append(Step(Adjoint(symbol), gradient, gradient, rule,
                                   layer if layer is not None else self.trained[x].layer, quantity=x, role="parameter"))
            return
        d = self.definitions[x]
        concrete = self._terms(x, named_only=False)
        if all(c.reader.role == "cost" or c.reader.name in self.named for c in contributions):
            general = concrete  # every reader's adjoint is a name: the rule's form is already the written one
        else:
            general = self._terms(x, named_only=True)
        best, note = textbook.compact(self.program, d, [c.reader for c in contributions], concrete)
        if note is not None:
            self.assumptions.append(note)
        if layer is None:
            layer = d.layer
        # named: δ for a pre-activation; an adjoint that feeds several quantities, or whose quantity or a
        # reader asks for it (x̂ and its input, attention's Q, K, V, S, P, O)
        if d.role == "preactivation" or d.named or any(c.reader.named for c in contributions) \
                or len(self.reads[x]) > 1:
            # named once and reused: δ for a pre-activation, ∂C/∂x for a quantity that feeds several
            node = Named(self.program.naming_of(d), best, self.scope)
            self.adjoint[x] = node
            self.named.add(x)
            if d.role == "preactivation":
                self.deltas[node.name] = node
                self.delta_of[node.name] = x
                self.steps.append(Step(node, general, best, rule, layer, note, quantity=x, role=d.role))
                return
        else:
            self.adjoint[x] = best
        self.steps.append(Step(Adjoint(d.node), general, best, rule, layer, note, quantity=x, role=d.role))
