r"""Rendering a derivation as LaTeX or Markdown, from Jinja2 templates.

The mathematics is printed here, by :class:`~symbackprop.printing.latex.LatexPrinter`;
the templates in ``templates/`` receive only printed strings (blocks of
:class:`Equation` rows, labels, sentences' parts) and lay them out.  Long
right-hand sides are broken across lines here too, where the printed width is
known.

>>> from symbackprop import Dense, Network, derive
>>> d = derive(Network(1, [Dense(1, bias=False)]))
>>> tex = d.latex(symbols={"W1": "w", "X": "a", "Y": "y"}, learning_rate="R", scalar=True, inline=True)
>>> r"w &\leftarrow w - R \cdot 2 a (a w - y)" in tex
True

Notation options (keyword arguments of :meth:`Derivation.latex` and
:meth:`Derivation.markdown`; ``symbackprop derive --notation KEY=VALUE``):

================  ==========  ====================================================
option            default     meaning
================  ==========  ====================================================
``bold``          ``False``   matrices and vectors in bold
``learning_rate`` ``\eta``    the LaTeX of the learning rate
``symbols``       ``{}``      quantity or kind → LaTeX: ``{"W1": "w", "delta": r"\epsilon"}``
``scalar``        ``False``   a network of 1×1 quantities written as scalars
``inline``        ``False``   the updates with every named quantity written out
``line_width``    ``34``      the width, in em, beyond which a line is broken
================  ==========  ====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import jinja2
from sympy import Basic, Integer, MatrixSymbol, Symbol

from .. import naming
from ..derive import expand_names
from ..errors import NotationError, OutputError
from ..calculus.expressions import Adjoint, Elementwise, Named
from ..printing.common import shape_text
from ..printing.latex import KINDS, LatexPrinter
from ..calculus.simplify import tidy
from .templating import environment, render, user_environment

if TYPE_CHECKING:
    from ..derive import Derivation

__all__ = [
    "Notation",
    "Equation",
    "Row",
    "OutputError",
    "Block",
    "break_lines",
    "latex_width",
    "written_out",
    "render_latex",
    "render_markdown",
    "render_summary",
    "parse_notation",
    "write_output",
]


# --- notation options ------------------------------------------------------------


@dataclass(frozen=True)
class Notation:
    """How a derivation is written; see the module docstring for each option."""

    bold: bool = False
    learning_rate: str = r"\eta"
    symbols: Mapping[str, str] = field(default_factory=dict)
    scalar: bool = False
    inline: bool = False
    line_width: float = 34

    @classmethod
    def from_options(cls, derivation: "Derivation", options: Mapping[str, Any]) -> "Notation":
        """Validated notation options for ``derivation``; bad ones raise :class:`NotationError`."""
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                raise NotationError(f"unknown notation option {key!r}; known: {', '.join(known)}")
        notation = cls(**options)
        for key in ("bold", "scalar", "inline"):
            if not isinstance(getattr(notation, key), bool):
                raise NotationError(f"notation option {key} must be true or false, not {getattr(notation, key)!r}")
        _check_latex("learning_rate", notation.learning_rate)
        width = notation.line_width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 10 <= width <= 1000:
            raise NotationError(f"notation option line_width must be a number of em from 10 to 1000, not {width!r}")
        if not isinstance(notation.symbols, Mapping):
            raise NotationError(f"notation option symbols must map names to LaTeX, not {notation.symbols!r}")
        names = _renamable(derivation)
        for name, latex in notation.symbols.items():
            if name not in names:
                raise NotationError(f"symbols: unknown quantity {name!r}; known: {', '.join(names)}")
            _check_latex(f"symbols[{name!r}]", latex)
        if notation.scalar:
            for name, symbol in derivation.symbols.items():
                if symbol.shape != (1, 1):
                    raise NotationError(
                        f"scalar notation needs every quantity 1×1 (one input, one unit per layer, one sample); "
                        f"{name} is {shape_text(symbol.shape)}")
        return replace(notation, symbols=dict(notation.symbols))


_UNESCAPED = re.compile(r"(?<!\\)[$&%#]")


def _check_latex(what: str, latex: object) -> None:
    if not isinstance(latex, str) or not latex.strip():
        raise NotationError(f"notation option {what} must be a non-empty LaTeX string, not {latex!r}")
    depth = 0
    for character in re.sub(r"\\[{}]", "", latex):
        depth += {"{": 1, "}": -1}.get(character, 0)
        if depth < 0:
            break
    if depth != 0:
        raise NotationError(f"notation option {what} has unbalanced braces: {latex!r}")
    if _UNESCAPED.search(latex):
        raise NotationError(f"notation option {what} must be math-mode LaTeX, without an unescaped $, &, % or #: "
                            f"{latex!r}")


def _renamable(derivation: "Derivation") -> list[str]:
    """Names ``symbols`` may rename: the cost, the kinds of per-layer quantities, every quantity."""
    return ["C", naming.INPUT, naming.TARGET, *KINDS, *(n for n in derivation.symbols if n not in
            (naming.INPUT, naming.TARGET)), *(n.name for n in derivation.forward), *derivation.deltas]


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_notation(items: Iterable[str]) -> dict[str, Any]:
    """Notation options from ``KEY=VALUE`` strings, as the command line takes them.

    >>> parse_notation(["learning_rate=R", "scalar=true", "symbols.W1=w", "line_width=40"])
    {'learning_rate': 'R', 'scalar': True, 'symbols': {'W1': 'w'}, 'line_width': 40.0}
    """
    options: dict[str, Any] = {}
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise NotationError(f"notation {item!r} is not KEY=VALUE (e.g. learning_rate=R, symbols.W1=w)")
        if key.startswith("symbols."):
            options.setdefault("symbols", {})[key[len("symbols."):]] = value
        elif key in ("bold", "scalar", "inline"):
            if value.strip().lower() not in _BOOLEANS:
                raise NotationError(f"notation option {key} must be true or false, not {value!r}")
            options[key] = _BOOLEANS[value.strip().lower()]
        elif key == "line_width":
            try:
                options[key] = float(value)
            except ValueError:
                raise NotationError(f"notation option line_width must be a number, not {value!r}") from None
        else:
            options[key] = value  # unknown keys are reported, with the known ones, by Notation
    return options


# --- equations and line breaking ----------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One relation of an equation: ``= text``, broken into ``lines`` that fit."""

    relation: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Equation:
    """``lhs = …`` over one or more rows; ``rule`` names the chain rules applied, ``note`` an assumption."""

    lhs: str
    rows: tuple[Row, ...]
    rule: str | None = None
    note: str | None = None


_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.S)
_WIDTHS = {
    "+": 1.25, "-": 1.25, "=": 1.35, "(": 0.4, ")": 0.4, "[": 0.3, "]": 0.3, ",": 0.45, "'": 0.3, "|": 0.3,
    " ": 0.0, "&": 0.0, r"\odot": 1.25, r"\oslash": 1.25, r"\times": 1.25, r"\cdot": 0.8, r"\in": 1.2,
    r"\leftarrow": 1.55, r"\top": 0.8, r"\circ": 0.5, r"\quad": 1.0, r"\,": 0.17, r"\dots": 1.2,
    r"\sum": 1.45, r"\lVert": 0.5, r"\rVert": 0.5, r"\left": 0.0, r"\right": 0.0, "\\\\": 0.0,
    r"\tanh": 2.0, r"\log": 1.5, r"\det": 1.5, r"\exp": 1.7, r"\biggl": 0.2, r"\biggr": 0.2,
}
_BOXES = {r"\operatorname", r"\mathbf", r"\boldsymbol", r"\mathrm", r"\mathbb", r"\text"}


def latex_width(latex: str) -> float:
    r"""An estimate, in em, of how wide ``latex`` prints in a display; errs on the wide side.

    >>> latex_width("a + b")
    2.45
    """
    tokens = _TOKEN.findall(latex)
    return round(_group_width(tokens, 0)[0], 6)


def _argument_width(tokens: list[str], i: int) -> tuple[float, int]:
    if i >= len(tokens):
        return 0.0, i
    if tokens[i] == "{":
        return _group_width(tokens, i + 1)
    return _token_width(tokens[i]), i + 1


def _group_width(tokens: list[str], i: int) -> tuple[float, int]:
    total = 0.0
    while i < len(tokens) and tokens[i] != "}":
        token = tokens[i]
        if token == "{":
            width, i = _group_width(tokens, i + 1)
        elif token in ("^", "_"):
            width, i = _argument_width(tokens, i + 1)
            width = 0.7 * width + 0.15  # script size, plus the italic correction and script space
        elif token == r"\frac":
            numerator, i = _argument_width(tokens, i + 1)
            denominator, i = _argument_width(tokens, i)
            width = max(numerator, denominator) + 0.2
        elif token in _BOXES:
            width, i = _argument_width(tokens, i + 1)
            width *= 1.15 if token in (r"\mathbf", r"\boldsymbol") else 1.0
        else:
            width, i = _token_width(token), i + 1
        total += width
    return total, i + 1


def _token_width(token: str) -> float:
    if token in _WIDTHS:
        return _WIDTHS[token]
    if token.isdigit():
        return 0.5
    if token.isupper():
        return 0.95
    return 0.6  # a lower-case or Greek letter, another symbol


_OPERATORS = (" + ", " - ", r" \odot ", r" \oslash ")
_NO_BREAK_BESIDE = ("+", "-", "=", "&", r"\odot", r"\oslash", r"\cdot", r"\times", r"\in", r"\leftarrow",
                    r"\lVert", r"\rVert", r"\sum_{i,j}")


def _is_operator_cut(latex: str, i: int) -> bool:
    return latex.startswith(_OPERATORS, i)


def _is_factor_cut(latex: str, i: int) -> bool:
    """A space between two factors of a product, neither of them an operator."""
    if latex[i] != " ":
        return False
    before, after = latex[:i].rstrip(), latex[i + 1:].lstrip()
    return bool(before and after) and not before.endswith(_NO_BREAK_BESIDE) and not after.startswith(_NO_BREAK_BESIDE)


def _split(latex: str, cut) -> list[str]:
    """``latex`` cut where ``cut(latex, i)`` holds, outside braces and ``\\left…\\right``."""
    cuts, braces, sized = [], 0, 0
    i = 0
    while i < len(latex):
        if latex.startswith(r"\left", i) and not latex.startswith(r"\leftarrow", i):
            sized += 1
        elif latex.startswith(r"\right", i):
            sized -= 1
        elif latex[i] == "\\" and i + 1 < len(latex) and latex[i + 1] in "{}":
            i += 1
        elif latex[i] == "{":
            braces += 1
        elif latex[i] == "}":
            braces -= 1
        elif braces == 0 and sized == 0 and i > 0 and cut(latex, i):
            cuts.append(i)
        i += 1
    return [latex[start:end] for start, end in zip([0, *cuts], [*cuts, len(latex)])]


def break_lines(latex: str, width: float) -> tuple[str, ...]:
    r"""``latex`` cut into lines of at most ``width`` em where possible.

    Lines break before a binary operator (``+``, ``-``, ``\odot``, ``\oslash``),
    and only a piece still too wide breaks between two factors of a product.
    Continuation lines begin with their operator or factor.

    >>> break_lines("a + b + c", 3)
    ('a + b', '+ c')
    """
    pieces = []
    for segment in _split(latex, _is_operator_cut):
        pieces += _split(segment, _is_factor_cut) if latex_width(segment) > width else [segment]
    lines: list[str] = []
    current, current_width = "", 0.0
    for piece in pieces:
        piece_width = latex_width(piece)
        if current and current_width + piece_width > width:
            lines.append(current.rstrip())
            current, current_width = piece.lstrip(), piece_width
        else:
            current, current_width = current + piece, current_width + piece_width
    lines.append(current)
    return tuple(lines)


def fit(equations: Sequence[Equation], line_width: float) -> list[Equation]:
    """``equations`` of one aligned block, each row broken to fit beside the block's widest left side.

    In an alignment every right side starts where the widest left side ends;
    continuation lines are indented by a further ``\\quad``.
    """
    left = max((latex_width(e.lhs) for e in equations), default=0.0)
    fitted = []
    for equation in equations:
        rows = []
        for row in equation.rows:
            (text,) = row.lines
            room = line_width - left - latex_width(row.relation) - _WIDTHS["+"]
            rows.append(Row(row.relation, break_lines(text, max(room, 1.0))))
        fitted.append(replace(equation, rows=tuple(rows)))
    return fitted


def _equation(lhs: str, *rows: str, relation: str = "=", rule: str | None = None,
              note: str | None = None) -> Equation:
    """An equation of unbroken rows, identical rows written once."""
    unique = list(dict.fromkeys(rows))
    return Equation(lhs, tuple(Row(relation, (text,)) for text in unique), rule, note)


#: a quantity and the space it lives in, or an empty cell
Cell = "tuple[str, str] | None"


@dataclass(frozen=True)
class Block:
    """Equations set in one alignment; ``layers`` the condition they hold under (``l = L-1, \\dots, 1``)."""

    equations: tuple[Equation, ...]
    layers: str = ""
    generic: bool = False
    title: str = ""


# --- building the context the templates receive --------------------------------------


def _layer_range(layers: Sequence[int], depth: int, descending: bool) -> str:
    """``l = L-1, \\dots, 1`` for every hidden layer (``l = L, \\dots, 1`` for every layer); else the layers."""
    ordered = sorted(layers, reverse=descending)
    for top, last in (("L", depth), ("L-1", depth - 1)):
        if last >= 1 and sorted(ordered) == list(range(1, last + 1)):
            return rf"l = {top}, \dots, 1" if descending else rf"l = 1, \dots, {top}"
    if len(ordered) == 1:
        return f"l = {'L' if ordered[0] == depth else ordered[0]}"
    return "l = " + ", ".join(str(layer) for layer in ordered)


def written_out(expr: Basic) -> Basic:
    r"""``expr`` with every named quantity replaced by its definition, identity activations dropped, tidied.

    >>> from symbackprop import Dense, Network, derive
    >>> from symbackprop.printing import to_latex
    >>> d = derive(Network(1, [Dense(1, bias=False)]))
    >>> to_latex(written_out(d.gradients["W1"]))
    '2 (W^{(1)} a^{(0)} - y) a^{(0)\\top}'
    """
    memo: dict[Basic, Basic] = {}

    def drop(node: Basic) -> Basic:
        if node not in memo:
            args = tuple(drop(a) for a in node.args) if node.args and not isinstance(node, MatrixSymbol) else ()
            rebuilt = node.func(*args) if args and args != node.args else node
            if isinstance(rebuilt, Elementwise) and rebuilt.order == 0:
                (variable,) = rebuilt.definition.variables
                if rebuilt.definition.expr == variable:  # id(x) = x
                    rebuilt = rebuilt.arg
            memo[node] = rebuilt
        return memo[node]

    return tidy(drop(expand_names(expr)))


def _labels(layer: int, name: str) -> dict[int, str]:
    """Layer ``layer`` and its neighbours written ``l-1``, ``l``, ``l+1`` (or ``L-1``, ``L``, …)."""
    return {layer - 1: f"{name}-1", layer: name, layer + 1: f"{name}+1"}


class _Context:
    """Prints every part of a derivation once and groups the layers that read alike."""

    def __init__(self, derivation: "Derivation", notation: Notation) -> None:
        self.d = derivation
        self.notation = notation
        self.net = derivation.network
        self.depth = self.net.depth
        self.functions = {a.name: a.latex for a in self.net.activations}
        self.printer = self._printer()
        self._general: dict[tuple, LatexPrinter] = {}

    def _printer(self, labels: Mapping[int, str] | None = None, generic: bool = False) -> LatexPrinter:
        return LatexPrinter({
            "bold": self.notation.bold,
            "symbols": self.notation.symbols,
            "functions": self.functions,
            "scalar": self.notation.scalar,
            "layer_labels": labels,
            "generic_activations": generic,
        })

    def general(self, labels: Mapping[int, str], generic: bool = False) -> LatexPrinter:
        key = (tuple(sorted(labels.items())), generic)
        if key not in self._general:
            self._general[key] = self._printer(labels, generic)
        return self._general[key]

    def fit(self, equations: Sequence[Equation], **block: Any) -> Block:
        return Block(tuple(fit(equations, self.notation.line_width)), **block)

    # the parts, in the order a reader meets them

    def network(self) -> dict[str, Any]:
        p = self.printer
        sizes = []
        for l, size in enumerate(self.net.sizes):
            if size != Symbol(f"n_{l}", integer=True, positive=True):
                sizes.append(f"n_{{{l}}} = {p.doprint(size)}")
        batch = self.net.batch
        if isinstance(batch, Integer):
            sizes.append(f"m = {batch}")
        groups: list[dict[str, Any]] = []
        for l, activation in enumerate(self.net.activations, 1):
            if groups and groups[-1]["activation"] == activation.latex:
                groups[-1]["last"] = l
            else:
                groups.append({"activation": activation.latex, "first": l, "last": l})
        custom = []
        for activation in dict.fromkeys(a for a in self.net.activations if a.formula is not None):
            custom.append(rf"{activation.latex}(x) = {p.doprint(activation.definition)}")
        return {
            "depth": self.depth,
            "input": p.name(naming.INPUT),
            "target": p.name(naming.TARGET),
            "sizes": sizes,
            "layout": self.net.layout,
            "activations": groups,
            "custom_activations": custom,
            "cost": self.net.cost.name.replace("_", " "),
            "weight_decay": p.doprint(self.net.weight_decay) if self.net.weight_decay != 0 else "",
            "assumptions": list(self.d.assumptions),
        }

    def shapes(self) -> tuple[list[list[Cell]], list[list[Cell]]]:
        """The general shapes and every quantity's shape, as rows of ``(quantity, space)`` cells."""
        columns = self.net.layout == "columns"
        batch = self.net.batch
        m = self.printer.doprint(batch) if isinstance(batch, Symbol) else "m"
        g = self.general(_labels(1, "l"))

        def space(rows: str, cols: str) -> str:
            return rf"\mathbb{{R}}^{{{rows} \times {cols}}}"

        data = (("n_{l}", m) if columns else (m, "n_{l}"))
        weight = ("n_{l}", "n_{l-1}") if columns else ("n_{l-1}", "n_{l}")
        bias = ("n_{l}", "1") if columns else ("1", "n_{l}")
        general: list[Cell] = [(g.name("W1"), space(*weight))]
        if any(layer.bias for layer in self.net.layers):
            general.append((g.name("b1"), space(*bias)))
        general.append((", ".join(g.name(n) for n in ("z1", "a1", "delta1")), space(*data)))

        p = self.printer

        def shape_of(name: str) -> str:
            return space(*(p.doprint(s) for s in self.d.symbols[name].shape))

        rows: list[list[Cell]] = [[(p.name(naming.INPUT), shape_of(naming.INPUT)),
                                   (p.name(naming.TARGET), shape_of(naming.TARGET))]]
        for l, layer in enumerate(self.net.layers, 1):
            row: list[tuple[str, str] | None] = [(p.name(naming.weight(l)), shape_of(naming.weight(l)))]
            # a missing bias leaves its cell empty, keeping the columns aligned
            row.append((p.name(naming.bias(l)), shape_of(naming.bias(l))) if layer.bias else None)
            names = (naming.preactivation(l), naming.activation(l), naming.delta(l))
            data_shape = self.d.forward[2 * l - 1].shape
            row.append((", ".join(p.name(n) for n in names), space(*(p.doprint(s) for s in data_shape))))
            rows.append(row)
        return self._pack([general]), self._pack(rows)

    def _pack(self, rows: list[list[Cell]]) -> list[list[Cell]]:
        """Cells wrapped so that the alignment's columns, side by side, fit the line width."""
        for per_row in (3, 2, 1):
            wrapped = [row[i:i + per_row] for row in rows for i in range(0, len(row), per_row)]
            wrapped = [row for row in wrapped if any(row)]
            widths = [0.0] * per_row
            for row in wrapped:
                for column, cell in enumerate(row):
                    if cell is not None:
                        widths[column] = max(widths[column], latex_width(cell[0]) + latex_width(cell[1]) + 1.7)
            if sum(widths) + 2 * (per_row - 1) <= self.notation.line_width or per_row == 1:
                return wrapped
        raise AssertionError("unreachable")

    def forward(self) -> tuple[list[Block], Block]:
        generic = len({a.name for a in self.net.activations if a.is_elementwise}) > 1

        def general(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(_labels(l, name), generic)
            z, a = self.d.forward[2 * l - 2], self.d.forward[2 * l - 1]
            return (_equation(g.doprint(z), g.doprint(z.definition)), _equation(g.doprint(a), g.doprint(a.definition)))

        blocks = self._grouped(range(1, self.depth + 1), general, descending=False, generic=generic)
        p = self.printer
        explicit = [_equation(p.doprint(n), p.doprint(n.definition)) for n in self.d.forward]
        return blocks, self.fit(explicit)

    def _grouped(self, layers: Iterable[int], equations, descending: bool, generic: bool = False) -> list[Block]:
        """``equations(l, "l")`` of every layer, layers that read alike grouped under one condition.

        A group of the output layer alone is written in ``L``, as ``l = L`` says.
        """
        groups: dict[tuple[Equation, ...], list[int]] = {}
        for l in layers:
            groups.setdefault(equations(l, "l"), []).append(l)
        blocks = []
        for key, ls in groups.items():
            if ls == [self.depth] and len(groups) > 1:
                key = equations(self.depth, "L")
            uses_generic = generic and any(r"\sigma_{" in row.lines[0] for e in key for row in e.rows)
            blocks.append(self.fit(key, layers=_layer_range(ls, self.depth, descending), generic=uses_generic))
        return blocks

    def cost(self) -> Block:
        cost = self.notation.symbols.get("C", "C")
        return self.fit([_equation(cost, self.printer.doprint(self.d.cost))])

    def _step(self, step, p: LatexPrinter) -> Equation:
        lhs = p.doprint(step.lhs)
        if isinstance(step.lhs, Named):  # δ⁽ˡ⁾, said to be ∂C/∂z⁽ˡ⁾
            z = self.d.forward[2 * step.layer - 2]
            lhs += " = " + p.doprint(Adjoint(z))
        return _equation(lhs, p.doprint(step.general), p.doprint(step.rhs), rule=step.rule, note=step.note)

    def _steps_of(self, layer: int):
        return [s for s in self.d.steps if s.layer == layer]

    def backward_general(self) -> dict[str, Any]:
        """The chain rule in general: at the output layer, through the hidden layers, to the parameters."""
        L = self.depth
        output_steps = [s for s in self._steps_of(L) if s.lhs == Adjoint(self.d.output) or isinstance(s.lhs, Named)]
        g = self.general(_labels(L, "L"))
        output = self.fit([self._step(s, g) for s in output_steps])
        hidden_activations = {a.name for a in self.net.activations[:-1] if a.is_elementwise}
        generic = len(hidden_activations) > 1

        def hidden(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(_labels(l, name), generic)
            above = next(s for s in self._steps_of(l + 1) if s.lhs == Adjoint(self.d.forward[2 * l - 1]))
            delta = next(s for s in self._steps_of(l) if isinstance(s.lhs, Named))
            return (self._step(above, g), self._step(delta, g))

        def parameters(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(_labels(l, name))
            steps = [s for s in self._steps_of(l) if isinstance(s.lhs, Adjoint) and s.lhs.target.name in self.d.symbols]
            return tuple(self._step(s, g) for s in steps)

        return {
            "output": output,
            "hidden": self._grouped(range(L - 1, 0, -1), hidden, descending=True, generic=generic),
            "parameters": self._grouped(range(L, 0, -1), parameters, descending=True),
        }

    def backward_explicit(self) -> list[Block]:
        p = self.printer
        return [self.fit([self._step(s, p) for s in self._steps_of(l)], layers=str(l),
                         title="output layer" if l == self.depth else "")
                for l in range(self.depth, 0, -1)]

    def deltas(self) -> Block:
        p = self.printer
        return self.fit([_equation(p.doprint(d), p.doprint(d.definition)) for d in reversed(self.d.deltas.values())])

    def gradients(self) -> Block:
        p = self.printer
        return self.fit([_equation(p.doprint(Adjoint(self.d.symbols[name])), p.doprint(gradient))
                         for name, gradient in self.d.gradients.items()])

    def _update(self, p: LatexPrinter, parameter: Basic, gradient: Basic) -> Equation:
        name = p.doprint(parameter)
        factor = p.factor(gradient)
        joint = r" \cdot " if factor[:1].isdigit() else " "
        return _equation(name, f"{name} - {self.notation.learning_rate}{joint}{factor}", relation=r"\leftarrow")

    def updates(self) -> tuple[Block, Block]:
        g = self.general(_labels(1, "l"))
        kinds = [naming.weight(1)] + [naming.bias(1)] * any(layer.bias for layer in self.net.layers)
        general = [self._update(g, parameter, Adjoint(parameter))
                   for parameter in (MatrixSymbol(name, 1, 1) for name in kinds)]  # only the name prints
        explicit = []
        for name, gradient in self.d.gradients.items():
            if self.notation.inline:
                gradient = written_out(gradient)
            explicit.append(self._update(self.printer, self.d.symbols[name], gradient))
        return self.fit(general), self.fit(explicit)

    def all(self) -> dict[str, Any]:
        shapes_general, shapes = self.shapes()
        forward_general, forward = self.forward()
        update_general, updates = self.updates()
        return {
            "network": self.network(),
            "shapes_general": shapes_general,
            "shapes": shapes,
            "forward_general": forward_general,
            "forward": forward,
            "cost": self.cost(),
            "backward_general": self.backward_general(),
            "backward": self.backward_explicit(),
            "deltas": self.deltas(),
            "gradients": self.gradients(),
            "update_general": update_general,
            "updates": updates,
            "learning_rate": self.notation.learning_rate,
            "inline": self.notation.inline,
        }


# --- filters: how an equation is laid out ----------------------------------------------


def _rows(equation: Equation, rule_column: bool) -> list[str]:
    lines = []
    for index, row in enumerate(equation.rows):
        text = f"{equation.lhs if index == 0 else ''} &{row.relation} {row.lines[0]}"
        if index == 0 and equation.rule and rule_column:
            text += rf" && \text{{[{equation.rule}]}}"
        lines.append(text)
        lines += [rf"&\quad {{}} {line}" for line in row.lines[1:]]
    return lines


def align(equations: Iterable[Equation]) -> str:
    r"""Equations as an ``align*`` environment, each rule in a ``\tag*``, each note in an ``\intertext``.

    A note on the last equation follows the environment instead, as text.

    >>> print(align([_equation("z", "W a", rule="matrix product")]))
    \begin{align*}
    z &= W a \tag*{\small[matrix product]}
    \end{align*}
    """
    parts: list[tuple[bool, str]] = []  # (is a row, text)
    for equation in equations:
        lines = _rows(equation, rule_column=False)
        if equation.rule:
            lines[0] += rf" \tag*{{\small[{equation.rule}]}}"
        parts += [(True, line) for line in lines]
        if equation.note:
            parts.append((False, rf"\small Assuming {equation.note}."))
    after = []
    while parts and not parts[-1][0]:
        after.insert(0, f"{{{parts.pop()[1]}}}\\par")
    body = ""
    for index, (is_row, text) in enumerate(parts):
        if index:
            # a row ends with a row break, an \intertext does not
            body += " \\\\\n" if parts[index - 1][0] else "\n"
        body += text if is_row else rf"\intertext{{{text}}}"
    return "\n".join(["\\begin{align*}", body, "\\end{align*}", *after])


def aligned(equations: Iterable[Equation]) -> str:
    r"""Equations as the rows of an ``aligned`` environment (MathJax, KaTeX), each rule in a text column."""
    return " \\\\\n".join(line for e in equations for line in _rows(e, rule_column=True))


def cells(rows: Iterable[Sequence[Cell]]) -> str:
    r"""Rows of ``(quantity, space)`` cells as ``align*`` rows: ``W^{(1)} &\in \mathbb{R}^{…}, & …``.

    >>> print(cells([[("W", r"\mathbb{R}"), None, ("z", r"\mathbb{R}")]]))
    W &\in \mathbb{R}, & & & z &\in \mathbb{R}
    """
    lines = []
    for row in rows:
        filled = [index for index, cell in enumerate(row) if cell is not None]
        parts = []
        for index, cell in enumerate(row):
            if cell is None:
                parts.append("&")
            else:
                parts.append(rf"{cell[0]} &\in {cell[1]}" + ("," if index != filled[-1] else ""))
        lines.append(" & ".join(parts))
    return " \\\\\n".join(lines)


# --- rendering -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> jinja2.Environment:
    """One environment per template folder: Jinja2 compiles each template once (and again when its file changes).

    A user's folder gets the bounded sandbox (:func:`~symbackprop.outputs.templating.user_environment`),
    symbackprop's own templates the plain environment; the filters are the same in both.
    """
    filters = {"align": align, "aligned": aligned, "cells": cells}
    if template_dir is not None:
        return user_environment(template_dir, filters=filters)
    env = environment()
    env.filters.update(filters)
    return env


def _render(template: str, context: Mapping[str, Any], template_dir: str | Path | None) -> str:
    if template_dir is not None and not Path(template_dir).is_dir():
        raise NotationError(f"template_dir {str(template_dir)!r} is not a folder")
    env = _environment(None if template_dir is None else str(Path(template_dir).resolve()))
    return render(env, template, context)


def _context(derivation: "Derivation", options: Mapping[str, Any]) -> dict[str, Any]:
    return _Context(derivation, Notation.from_options(derivation, options)).all()


def render_latex(derivation: "Derivation", standalone: bool = False, template_dir: str | Path | None = None,
                 **options: Any) -> str:
    """The derivation in LaTeX: the body (``derivation.tex.j2``) or a whole document (``document.tex.j2``)."""
    if not isinstance(standalone, bool):
        raise NotationError(f"standalone must be true or false, not {standalone!r}")
    context = _context(derivation, options)
    return _render("document.tex.j2" if standalone else "derivation.tex.j2", context, template_dir)


def render_markdown(derivation: "Derivation", template_dir: str | Path | None = None, **options: Any) -> str:
    """The derivation in Markdown with ``$$`` blocks (``derivation.md.j2``), for GitHub and notebooks."""
    return _render("derivation.md.j2", _context(derivation, options), template_dir)


def render_summary(derivation: "Derivation", template_dir: str | Path | None = None, **options: Any) -> str:
    """The forward pass, cost, deltas and gradients in one ``$$\\begin{aligned}`` block (``summary.tex.j2``)."""
    return _render("summary.tex.j2", _context(derivation, options), template_dir)


# --- writing ---------------------------------------------------------------------------


def write_output(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` (``"-"``: standard output) whole or not at all.

    The text goes to a temporary file beside ``path`` that is then renamed over
    it, so a failure (or Ctrl-C) never leaves a half-written file or a
    temporary one.  A symbolic link is followed (its target is replaced), an
    existing file keeps its permissions, and a path that is not a regular file
    (a device, a pipe) is written to directly, never replaced.  A name that
    cannot be a file (empty, ending in ``/``, too long, in a missing folder) is
    an :class:`OutputError`.  Several outputs at once, all or none:
    :func:`symbackprop.outputs.files.write_outputs`.
    """
    from .files import write_outputs

    write_outputs([(text, path)])
