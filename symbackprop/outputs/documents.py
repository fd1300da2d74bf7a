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
``rules``         ``tags``    where each step's rules go: ``tags`` (a ``\tag*`` beside the step; a tag
                              wider than ``line_width`` goes below it instead, wrapped), ``below``
                              (every rule on a wrapped line below its step) or ``none``
``parts``         all         the parts written, in their order, from :data:`PARTS`: ``network``,
                              ``forward``, ``cost``, ``backward``, ``deltas``, ``gradients``, ``updates``
``layer_by_layer`` ``True``   with the general form, each layer written out too
``numbered``      ``False``   every equation numbered (``align``), with a ``\label`` of a stable key;
                              the rules then go below their steps, the number taking the tag's place
``every_step``    ``False``   the softmax δ also as the Jacobian-vector product it simplifies from
``gradient``      ``partial`` ``partial``: ∂C/∂W; ``nabla``: ∇_W C
``sized_ones``    ``False``   a vector of ones with its length, ``\mathbf{1}_{m}``
``label_prefix``  ``bp``      the labels' prefix: ``\label{bp:backward:z-L}``; see :func:`label_keys`
================  ==========  ====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import jinja2
from sympy import Basic, Integer, MatrixSymbol, Piecewise, Symbol, diff

from .. import naming
from ..calculus.expressions import SCALAR_VARIABLE, Adjoint, Constant, Deviation, Elementwise, Named, Softmax
from ..calculus.trees import expand_names, transform, walk
from ..errors import NotationError, OutputError
from ..model.activations import ACTIVATIONS, Activation
from ..printing.common import shape_text
from ..printing.latex import KINDS, OUTPUT_LABEL, LatexPrinter, superscript
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
    "label_keys",
    "PARTS",
    "RULES",
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
    rules: str = "tags"
    parts: tuple[str, ...] = ("network", "forward", "cost", "backward", "deltas", "gradients", "updates")
    layer_by_layer: bool = True
    numbered: bool = False
    label_prefix: str = "bp"
    every_step: bool = False
    gradient: str = "partial"
    sized_ones: bool = False

    @classmethod
    def from_options(cls, derivation: "Derivation", options: Mapping[str, Any]) -> "Notation":
        """Validated notation options for ``derivation``; bad ones raise :class:`NotationError`."""
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                raise NotationError(f"unknown notation option {key!r}; known: {', '.join(known)}")
        options = dict(options)
        if "parts" in options:
            options["parts"] = _parts(options["parts"])
        notation = cls(**options)
        for key in ("bold", "scalar", "inline", "layer_by_layer", "numbered", "every_step", "sized_ones"):
            if not isinstance(getattr(notation, key), bool):
                raise NotationError(f"notation option {key} must be true or false, not {getattr(notation, key)!r}")
        _check_latex("learning_rate", notation.learning_rate)
        width = notation.line_width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 10 <= width <= 1000:
            raise NotationError(f"notation option line_width must be a number of em from 10 to 1000, not {width!r}")
        if not isinstance(notation.label_prefix, str) or not _LABEL_PREFIX.fullmatch(notation.label_prefix):
            raise NotationError(f"notation option label_prefix must be a letter then letters, digits or '-', "
                                f"not {notation.label_prefix!r}")
        if notation.gradient not in ("partial", "nabla"):
            raise NotationError(f"notation option gradient must be partial or nabla, not {notation.gradient!r}")
        if notation.rules not in RULES:
            raise NotationError(f"notation option rules must be one of {', '.join(RULES)}, not {notation.rules!r}")
        if not isinstance(notation.symbols, Mapping):
            raise NotationError(f"notation option symbols must map names to LaTeX, not {notation.symbols!r}")
        names = _renamable(derivation)
        for name, latex in notation.symbols.items():
            if name not in names:
                raise NotationError(f"symbols: unknown quantity {name!r}; known: {', '.join(names)}")
            _check_latex(f"symbols[{name!r}]", latex)
        renamed: dict[str, str] = {}
        for name, latex in notation.symbols.items():
            other = renamed.get(latex.strip())
            if other is not None and _kind(other) != name and _kind(name) != other:
                raise NotationError(f"symbols: {other!r} and {name!r} are both renamed to "
                                    f"{latex.strip()!r}; each quantity needs a symbol of its own")
            renamed[latex.strip()] = name
        if notation.scalar:
            for name, symbol in derivation.symbols.items():
                if symbol.shape != (1, 1):
                    raise NotationError(
                        f"scalar notation needs every quantity 1×1 (one input, one unit per layer, one sample); "
                        f"{name} is {shape_text(symbol.shape)}")
        return replace(notation, symbols=dict(notation.symbols))


#: the values of the ``rules`` option
RULES = ("tags", "below", "none")
#: the parts of a derivation, in the order they are written
PARTS = ("network", "forward", "cost", "backward", "deltas", "gradients", "updates")
_LABEL_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


def _kind(name: str) -> str:
    split = naming.split_layer_name(name)
    return split[0] if split else name


def _parts(value: object) -> tuple[str, ...]:
    """The ``parts`` option, a list or a comma-separated string, as a tuple of known parts."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise NotationError(f"notation option parts must be a list of parts, not {value!r}")
    parts = tuple(item.strip() for item in items if item.strip())
    for part in parts:
        if part not in PARTS:
            raise NotationError(f"notation option parts: no part {part!r}; the parts are {', '.join(PARTS)}")
    if not parts:
        raise NotationError(f"notation option parts names no part; the parts are {', '.join(PARTS)}")
    if len(set(parts)) != len(parts):
        raise NotationError(f"notation option parts names a part twice: {', '.join(parts)}")
    return tuple(part for part in PARTS if part in parts)

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
    names = [*(n for n in derivation.symbols if n not in (naming.INPUT, naming.TARGET)),
             *(n.name for n in derivation.forward), *derivation.deltas]
    used = {split[0] for split in map(naming.split_layer_name, names) if split is not None}
    kinds = [k for k in KINDS if k in naming.LAYERED_KINDS[:5] or k in used]  # a dense layer's kinds, then any used
    return ["C", naming.INPUT, naming.TARGET, *kinds, *names]


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
        elif key in ("bold", "scalar", "inline", "layer_by_layer", "numbered", "every_step", "sized_ones"):
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
    rule_below: bool = False
    key: str = ""
    label: str = ""


_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.S)
_WIDTHS = {
    "+": 1.25, "-": 1.25, "=": 1.35, "(": 0.4, ")": 0.4, "[": 0.3, "]": 0.3, ",": 0.45, "'": 0.3, "|": 0.3,
    " ": 0.0, "&": 0.0, r"\odot": 1.25, r"\oslash": 1.25, r"\times": 1.25, r"\cdot": 0.8, r"\in": 1.2,
    r"\leftarrow": 1.55, r"\top": 0.8, r"\circ": 0.5, r"\quad": 1.0, r"\,": 0.17, r"\dots": 1.2,
    r"\sum": 1.45, r"\lVert": 0.5, r"\rVert": 0.5, r"\left": 0.0, r"\right": 0.0, "\\\\": 0.0,
    r"\nabla": 0.85, r"\tanh": 2.0, r"\log": 1.5, r"\det": 1.5, r"\exp": 1.7, r"\biggl": 0.2, r"\biggr": 0.2,
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


#: em per character of a rule tag: ``\small`` text, measured at about 0.41 em, erring on the wide side
_TAG_CHARACTER = 0.45


def tag_width(rule: str) -> float:
    r"""An estimate, in em, of the width of the tag ``\small[rule]``.

    >>> tag_width("matrix product")
    7.2
    """
    return round(_TAG_CHARACTER * (len(rule) + 2), 6)


def place_rules(equations: Sequence[Equation], rules: str, line_width: float) -> list[Equation]:
    """Each equation's rule as a tag (``tags``, where the tag fits the measure), below it, or dropped (``none``)."""
    placed = []
    for equation in equations:
        if equation.rule and rules == "none":
            equation = replace(equation, rule=None)
        elif equation.rule and (rules == "below" or tag_width(equation.rule) > line_width):
            equation = replace(equation, rule_below=True)
        placed.append(equation)
    return placed


def _equation(lhs: str, *rows: str, relation: str = "=", rule: str | None = None,
              note: str | None = None, key: str = "") -> Equation:
    """An equation of unbroken rows, identical rows written once."""
    unique = list(dict.fromkeys(rows))
    return Equation(lhs, tuple(Row(relation, (text,)) for text in unique), rule, note, key=key)


#: the matrix rules of the chain rule as an ordinary derivative names them (``None``: nothing to name)
_SCALAR_RULES = {
    "matrix product": "product rule", "scalar product": "product rule", "Hadamard product": "product rule",
    "Hadamard power": "power rule", "scalar power": "power rule", "matrix power": "power rule",
    "elementwise function": "chain rule", "scalar function": "chain rule", "bias broadcast": "sum rule",
    "sum": "sum rule", "sum of entries": None, "transpose": None,
}


def _scalar_rule(rule: str | None) -> str | None:
    """``rule`` (rules joined by ``, ``) in the words of ordinary derivatives: ``matrix product`` → ``product rule``.

    >>> _scalar_rule("sum of entries, Hadamard power, sum")
    'power rule, sum rule'
    """
    if not rule:
        return rule
    named = [_SCALAR_RULES.get(part, part) for part in rule.split(", ")]
    return ", ".join(dict.fromkeys(part for part in named if part)) or None


def _key(name: str, label: str | None = None) -> str:
    """A quantity's part of a label key: ``z3``, or in the general form ``z-l`` (``label`` ``l``)."""
    if label is None:
        return name
    split = naming.split_layer_name(name)
    return f"{split[0] if split else name}-{label}"


def label_keys() -> str:
    r"""How ``numbered=True`` labels equations: ``\label{PREFIX:PART:KEY}``, stable across versions.

    ========================  ===================================================================
    key                       equation
    ========================  ===================================================================
    ``forward:z-l``           the general forward step (``z-L``, ``a-L``: the output layer's)
    ``forward:z3``            layer 3's, written out (``a3``, …)
    ``cost``                  the cost
    ``backward:z-L``          BP1, δ⁽ᴸ⁾ = ∂C/∂z⁽ᴸ⁾ (``backward:a-L``: ∂C/∂a⁽ᴸ⁾)
    ``backward:z-l``          BP2, δ⁽ˡ⁾ from δ⁽ˡ⁺¹⁾ (``backward:a-l``: ∂C/∂a⁽ˡ⁾)
    ``backward:b-l``          BP3, ∂C/∂b⁽ˡ⁾; ``backward:W-l``: BP4, ∂C/∂W⁽ˡ⁾
    ``backward:z3``           the same steps of layer 3, written out (``backward:W3``, …)
    ``delta:delta3``          the delta recursion
    ``gradient:W3``           the gradients
    ``update:W-l``            the general update; ``update:W3``: layer 3's
    ========================  ===================================================================

    A key met twice (two groups of layers that read differently) gets ``-2``, ``-3``, … in order.
    """
    return label_keys.__doc__


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


def _is_layered(program) -> bool:
    """A layer stack: layers 1, …, L each define a pre-activation and then an activation, and nothing else."""
    if program.depth == 0:
        return False
    roles = [(d.layer, d.role) for d in program.forward]
    expected = [(l, role) for l in range(1, program.depth + 1) for role in ("preactivation", "activation")]
    return [(l, "activation" if r == "output" else r) for l, r in roles] == expected \
        and program.forward[-1].role == "output"


def _fixed_latex(value) -> str:
    """A fixed value as LaTeX: the number, or the matrix in brackets."""
    import numpy as np

    array = np.atleast_2d(np.asarray(value, dtype=float))
    numbers = [[f"{x:g}" for x in row] for row in array]
    if array.size == 1:
        return numbers[0][0]
    return r"egin{bmatrix}" + r" \ ".join(" & ".join(row) for row in numbers) + r"\end{bmatrix}"


def written_out(expr: Basic) -> Basic:
    r"""``expr`` with every named quantity replaced by its definition, identity activations dropped, tidied.

    >>> from symbackprop import Dense, Network, derive
    >>> from symbackprop.printing import to_latex
    >>> d = derive(Network(1, [Dense(1, bias=False)]))
    >>> to_latex(written_out(d.gradients["W1"]))
    '2 (W^{(1)} a^{(0)} - y) a^{(0)\\top}'
    """
    def identity(node: Basic) -> Basic | None:
        if isinstance(node, Named):
            return node.definition
        if isinstance(node, Elementwise) and node.order == 0:
            (variable,) = node.definition.variables
            if node.definition.expr == variable:  # id(x) = x
                return node.arg
        return None

    return tidy(transform(expr, identity, again=True))


class _Relative(Mapping):
    """Every layer written relative to ``layer``: ``l-1``, ``l``, ``l+1`` (or ``L-1``, ``L``, …).

    Computed when asked, so a deep network's general forms do not each hold a label for every layer.
    """

    def __init__(self, layer: int, name: str, depth: int) -> None:
        self.layer, self.name, self.depth = layer, name, depth

    def __getitem__(self, k: int) -> str:
        if not isinstance(k, int) or not 0 <= k <= self.depth + 1:
            raise KeyError(k)
        if k == self.layer:
            return self.name
        return f"{self.name}-{self.layer - k}" if k < self.layer else f"{self.name}+{k - self.layer}"

    def __iter__(self):
        return iter(range(self.depth + 2))

    def __len__(self) -> int:
        return self.depth + 2

    def __hash__(self) -> int:
        return hash((self.layer, self.name, self.depth))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Relative) and (self.layer, self.name, self.depth) == \
            (other.layer, other.name, other.depth)


class _Context:
    """Prints every part of a derivation once and groups the layers that read alike."""

    def __init__(self, derivation: "Derivation", notation: Notation) -> None:
        self.d = derivation
        self.program = derivation.program
        self.notation = notation
        self.depth = self.program.depth
        self.layered = _is_layered(self.program)
        # the scalar notation reads as a derivation by hand would: no general form in W^{(l)}, no shapes
        self.general_form = self.layered and not notation.scalar
        self.functions = {a.name: a.latex for a in self.program.activations}
        self.printer = self._printer()
        self._general: dict[tuple, LatexPrinter] = {}
        self._labels: dict[str, int] = {}
        self._widest = (0.0, "")  # the widest an equation stays when broken wherever it may be, and its left side
        # indexes, so that finding a layer's parts costs the same at any depth
        self._by_layer: dict = {}
        for d in self.program.definitions:
            self._by_layer.setdefault(d.layer, []).append(d)
        self._steps_by_layer: dict = {}
        for s in derivation.steps:
            self._steps_by_layer.setdefault(s.layer, []).append(s)
        self._step_by_quantity = {s.quantity: s for s in reversed(derivation.steps)}
        self._parameters_by_layer: dict = {}
        for q in self.program.parameters:
            split = naming.split_layer_name(q.name)
            if split is not None:
                self._parameters_by_layer.setdefault(split[1], {})[split[0]] = q

    def _printer(self, labels: Mapping[int, str] | None = None, generic: bool = False) -> LatexPrinter:
        return LatexPrinter({
            "bold": self.notation.bold,
            "symbols": self.notation.symbols,
            "functions": self.functions,
            "scalar": self.notation.scalar,
            "layer_labels": labels,
            "generic_activations": generic,
            "gradient": self.notation.gradient,
            "sized_ones": self.notation.sized_ones,
        })

    def general(self, labels: Mapping[int, str], generic: bool = False) -> LatexPrinter:
        key = (labels, generic)
        if key not in self._general:
            self._general[key] = self._printer(labels, generic)
        return self._general[key]

    def labels(self, layer: int, name: str) -> _Relative:
        return _Relative(layer, name, self.depth)

    def fit(self, equations: Sequence[Equation], **block: Any) -> Block:
        width = self.notation.line_width
        for equation in equations:  # the narrowest an equation can be set: its left side and its widest piece
            pieces = [p for row in equation.rows for line in row.lines for segment in _split(line, _is_operator_cut)
                      for p in _split(segment, _is_factor_cut)]
            narrowest = latex_width(equation.lhs) + _WIDTHS["="] + max((latex_width(p) for p in pieces), default=0.0)
            if narrowest > self._widest[0]:
                self._widest = (narrowest, equation.lhs)
        rules = "below" if self.notation.numbered and self.notation.rules == "tags" else self.notation.rules
        placed = place_rules(fit(equations, width), rules, width)
        if self.notation.numbered:
            placed = [replace(e, label=self._label(e.key)) for e in placed]
        return Block(tuple(placed), **block)

    def _label(self, key: str) -> str:
        label = f"{self.notation.label_prefix}:{key}"
        count = self._labels.get(label, 0) + 1
        self._labels[label] = count
        return label if count == 1 else f"{label}-{count}"

    # --- what the program holds, by layer and role ---------------------------------------

    def definitions_of(self, layer: int, *roles: str) -> list:
        return [d for d in self._by_layer.get(layer, []) if not roles or d.role in roles]

    def layer_definition(self, layer: int, *roles: str):
        return self.definitions_of(layer, *roles)[0]

    def activation(self, layer: int) -> Activation | None:
        """The activation layer ``layer`` applies to its pre-activation."""
        z = self.layer_definition(layer, "preactivation").node
        a = self.layer_definition(layer, "activation", "output")
        for node in walk(a.expr):
            if isinstance(node, Softmax) and node.arg == z:
                return ACTIVATIONS["softmax"]
            found = self.program.activation_of(node)
            if found is not None and node.arg == z:
                return found
        return None

    def width(self, layer: int):
        """The width of layer ``layer`` (0: the input)."""
        shape = self.program.input("input").shape if layer == 0 else \
            self.layer_definition(layer, "activation", "output").shape
        return shape[0] if self.program.layout == "columns" else shape[1]

    @property
    def batch(self):
        shape = self.program.input("input").shape
        return shape[1] if self.program.layout == "columns" else shape[0]

    # the parts, in the order a reader meets them

    def network(self) -> dict[str, Any]:
        p = self.printer
        source = self.program.source
        sizes = []
        if self.layered:
            for l in range(self.depth + 1):
                size = self.width(l)
                if size != Symbol(f"n_{l}", integer=True, positive=True):
                    sizes.append(f"n_{{{l}}} = {p.doprint(size)}")
        if isinstance(self.batch, Integer):
            sizes.append(f"m = {self.batch}")
        groups: list[dict[str, Any]] = []
        activations = [self.activation(l) for l in range(1, self.depth + 1)] if self.layered else []
        for l, activation in enumerate(activations, 1):
            latex = activation.latex if activation is not None else r"\operatorname{id}"
            if groups and groups[-1]["activation"] == latex:
                groups[-1]["last"] = l
            else:
                groups.append({"activation": latex, "first": l, "last": l})
        custom = []
        for activation in dict.fromkeys(a for a in self.program.activations if a.formula is not None):
            custom.append(rf"{activation.latex}(x) = {p.doprint(activation.definition)}")
        cost = self.program.cost_name
        decay = getattr(source, "weight_decay", 0)
        fixed = [rf"{p.name(q.name)} = {_fixed_latex(q.value)}" for q in self.program.fixed]
        return {
            "layered": self.layered,
            "depth": self.depth,
            "input": p.name(self.program.input("input").name),
            "target": p.name(self.program.input("target").name),
            "sizes": sizes,
            "layout": self.program.layout,
            "activations": groups,
            "custom_activations": custom,
            "cost": f"the {cost.replace('_', ' ')} as cost" if cost is not None else "the cost $C$ below",
            "weight_decay": p.doprint(decay) if decay != 0 else "",
            "fixed": fixed,
            "assumptions": list(self.d.assumptions),
            "scalar": self.notation.scalar,
        }

    def shapes(self) -> tuple[list[list[Cell]], list[list[Cell]]]:
        """The general shapes and every quantity's shape, as rows of ``(quantity, space)`` cells."""
        columns = self.program.layout == "columns"
        m = self.printer.doprint(self.batch) if isinstance(self.batch, Symbol) else "m"
        p = self.printer

        def space(rows: str, cols: str) -> str:
            return rf"\mathbb{{R}}^{{{rows} \times {cols}}}"

        def shape_of(expr) -> str:
            return space(*(p.doprint(s) for s in expr.shape))

        rows: list[list[Cell]] = [[(p.name(i.name), shape_of(i.symbol)) for i in self.program.inputs]]
        if not self.general_form:
            rows += [[(p.name(q.name), shape_of(q.symbol))] for q in self.program.parameters]
            rows += [[(p.doprint(d.node), shape_of(d.node))] for d in self.program.forward]
            return [], self._pack(rows)
        g = self.general(self.labels(1, "l"))
        data = (("n_{l}", m) if columns else (m, "n_{l}"))
        weight = ("n_{l}", "n_{l-1}") if columns else ("n_{l-1}", "n_{l}")
        bias = ("n_{l}", "1") if columns else ("1", "n_{l}")
        kinds = {naming.split_layer_name(q.name)[0] for q in self.program.parameters
                 if naming.split_layer_name(q.name) is not None}
        general: list[Cell] = [(g.name("W1"), space(*weight))] if "W" in kinds else []
        if "b" in kinds:
            shared = all(q.shape == (1, 1) for q in self.program.parameters if q.name.startswith("b"))
            general.append((g.name("b1"), space("1", "1") if shared and self.batch != 1 else space(*bias)))
        z, a = self.layer_definition(1, "preactivation"), self.layer_definition(1, "activation", "output")
        general.append((", ".join(g.name(n) for n in (z.name, a.name, self.program.naming_of(z))), space(*data)))
        for l in range(1, self.depth + 1):
            own = self._parameters_by_layer.get(l, {})
            # a missing weight (tied) or bias leaves its cell empty, keeping the columns aligned
            row: list[tuple[str, str] | None] = [(p.name(own[k].name), shape_of(own[k].symbol)) if k in own else None
                                                 for k in ("W", "b")]
            z, a = self.layer_definition(l, "preactivation"), self.layer_definition(l, "activation", "output")
            names = (z.name, a.name, self.program.naming_of(z))
            row.append((", ".join(p.name(n) for n in names), shape_of(a.node)))
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

    def _generic(self, layers: Iterable[int]) -> bool:
        """Whether the layers apply more than one activation, so the general form writes σ_l."""
        return len({a.name for a in (self.activation(l) for l in layers) if a is not None and a.is_elementwise}) > 1

    def forward(self) -> tuple[list[Block], Block]:
        p = self.printer
        explicit = [_equation(p.doprint(n), p.doprint(n.definition), key=f"forward:{n.name}") for n in self.d.forward]
        if not self.general_form:
            return [], self.fit(explicit)
        generic = self._generic(range(1, self.depth + 1))

        def general(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(self.labels(l, name), generic)
            return tuple(_equation(g.doprint(d.node), g.doprint(d.expr), key=f"forward:{_key(d.name, name)}")
                         for d in self.definitions_of(l))

        blocks = self._grouped(range(1, self.depth + 1), general, descending=False, generic=generic)
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
                key = equations(self.depth, OUTPUT_LABEL)
            uses_generic = generic and any(r"\sigma_{" in row.lines[0] for e in key for row in e.rows)
            blocks.append(self.fit(key, layers=_layer_range(ls, self.depth, descending), generic=uses_generic))
        return blocks

    def cost(self) -> Block:
        cost = self.notation.symbols.get("C", "C")
        return self.fit([_equation(cost, self.printer.doprint(self.d.cost), key="cost")])

    def _step(self, step, p: LatexPrinter, label: str | None = None) -> Equation:
        lhs = p.doprint(step.lhs)
        if step.role == "preactivation":  # δ⁽ˡ⁾, said to be ∂C/∂z⁽ˡ⁾
            lhs += " = " + p.doprint(Adjoint(self.program.definition(step.quantity).node))
        rule = _scalar_rule(step.rule) if self.notation.scalar else step.rule
        rows = [p.doprint(step.general), p.doprint(step.rhs)]
        if not self.notation.every_step and step.rule and "softmax" in step.rule.split(", "):
            rows = rows[1:]  # the textbook form, a − y, not the Jacobian-vector product it simplifies from
        return _equation(lhs, *rows, rule=rule, note=step.note,
                         key=f"backward:{_key(step.quantity, label)}")

    def _steps_of(self, layer: int | None):
        return self._steps_by_layer.get(layer, [])

    def _step_for(self, quantity: str):
        return self._step_by_quantity[quantity]

    def backward_general(self) -> dict[str, Any]:
        """The chain rule in general: at the output layer, through the hidden layers, to the parameters."""
        if not self.general_form:
            return {"output": self.fit([]), "hidden": [], "parameters": []}
        L = self.depth
        z, a = self.layer_definition(L, "preactivation"), self.layer_definition(L, "activation", "output")
        g = self.general(self.labels(L, OUTPUT_LABEL))
        output = self.fit([self._step(self._step_for(q.name), g, OUTPUT_LABEL) for q in (a, z)])
        generic = self._generic(range(1, L))

        def hidden(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(self.labels(l, name), generic)
            z, a = self.layer_definition(l, "preactivation"), self.layer_definition(l, "activation", "output")
            return (self._step(self._step_for(a.name), g, name), self._step(self._step_for(z.name), g, name))

        def parameters(l: int, name: str) -> tuple[Equation, ...]:
            g = self.general(self.labels(l, name))
            return tuple(self._step(s, g, name) for s in self._steps_of(l) if s.role == "parameter")

        return {
            "output": output,
            "hidden": self._grouped(range(L - 1, 0, -1), hidden, descending=True, generic=generic),
            "parameters": self._grouped(range(L, 0, -1), parameters, descending=True),
        }

    def backward_explicit(self) -> list[Block]:
        p = self.printer
        if not self.general_form:
            return [self.fit([self._step(s, p) for s in self.d.steps], layers="", title="")]
        return [self.fit([self._step(s, p) for s in self._steps_of(l)], layers=str(l),
                         title="output layer" if l == self.depth else "")
                for l in range(self.depth, 0, -1)]

    def deltas(self) -> Block:
        """Every named adjoint (each δ, and ∂C/∂a where a feeds several quantities), from the output down."""
        p = self.printer
        named = [node for node in self.d.adjoints.values() if isinstance(node, Named)]
        return self.fit([_equation(p.doprint(d), p.doprint(d.definition), key=f"delta:{d.name}") for d in named])

    def gradients(self) -> Block:
        p = self.printer
        return self.fit([_equation(p.doprint(Adjoint(self.d.symbols[name])), p.doprint(gradient),
                                   key=f"gradient:{name}") for name, gradient in self.d.gradients.items()])

    def _update(self, p: LatexPrinter, parameter: Basic, gradient: Basic, key: str) -> Equation:
        name = p.doprint(parameter)
        factor = p.factor(gradient)
        joint = r" \cdot " if factor[:1].isdigit() else " "
        return _equation(name, f"{name} - {self.notation.learning_rate}{joint}{factor}", relation=r"\leftarrow",
                         key=f"update:{key}")

    def updates(self) -> tuple[Block, Block]:
        explicit = []
        for name, gradient in self.d.gradients.items():
            if self.notation.inline:
                gradient = written_out(gradient)
            explicit.append(self._update(self.printer, self.d.symbols[name], gradient, name))
        if not self.general_form:
            return self.fit([]), self.fit(explicit)
        g = self.general(self.labels(1, "l"))
        kinds = {naming.split_layer_name(name)[0] for name in self.d.gradients if naming.split_layer_name(name)}
        names = [k for k, name in (("W", naming.weight(1)), ("b", naming.bias(1))) if k in kinds]
        general = [self._update(g, parameter, Adjoint(parameter), _key(parameter.name, "l"))
                   for parameter in (MatrixSymbol(n, 1, 1) for n in
                                     [naming.weight(1) if k == "W" else naming.bias(1) for k in names])]
        return self.fit(general), self.fit(explicit)

    def glossary(self, parts: Mapping[str, Any]) -> str:
        """A sentence defining each symbol the printed parts use that is not a quantity's: ⊙, ⊘, 𝟏, f'(0)…

        It also links a renamed input, target or output to its name in the general form.
        """
        texts: list[str] = []

        def collect(value: Any) -> None:
            if isinstance(value, Block):
                texts.extend(line for e in value.equations for row in e.rows for line in row.lines)
            elif isinstance(value, Mapping):
                for item in value.values():
                    collect(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    collect(item)

        collect([parts[k] for k in ("forward_general", "forward", "cost", "backward_general", "backward",
                                    "deltas", "gradients", "update_general", "updates")])
        text = " ".join(texts)
        said = []
        if r"\odot" in text and r"\oslash" in text:
            said.append(r"$\odot$ and $\oslash$ are the entrywise product and division")
        elif r"\odot" in text:
            said.append(r"$\odot$ is the entrywise (Hadamard) product")
        elif r"\oslash" in text:
            said.append(r"$\oslash$ is the entrywise division")
        if self.notation.sized_ones and r"\mathbf{1}_{" in text:
            said.append(r"$\mathbf{1}_{k}$ is a column of $k$ ones")
        elif r"\mathbf{1}" in text:
            lengths = []
            if self.batch != 1 and any(q.name.startswith("b") for q in self.program.parameters):
                lengths.append(f"of length ${self.printer.doprint(self.batch)}$ (the number of samples) beside a bias")
            if r"\mathbf{1}\,\mathbf{1}^\top" in text and any(d.role == "statistic" or isinstance(d.expr, Softmax)
                                                               and d.role == "intermediate" for d in self.program.forward):
                lengths.append(r"$\mathbf{1}\,\mathbf{1}^\top$ sums along the axis it multiplies and spreads the sums "
                               r"back")
            elif r"\mathbf{1}\,\mathbf{1}^\top" in text:
                lengths.append(r"of the output layer's width in $\mathbf{1}\,\mathbf{1}^\top$")
            said.append(r"$\mathbf{1}$ is a column of ones" + (": " + " and ".join(lengths) if lengths else ""))
        for activation in dict.fromkeys(self.program.activations):
            definition = activation.definition
            if isinstance(definition, Piecewise) and f"{activation.latex}'" in text:
                at_zero = diff(definition, SCALAR_VARIABLE).subs(SCALAR_VARIABLE, 0)
                said.append(f"${activation.latex}'(0)$ is taken as ${self.printer.doprint(at_zero)}$")
        said += self._layer_symbols(text)
        if self.general_form:
            # the general form writes a renamed per-layer quantity (or the input, a^{(0)}) by its kind, except
            # in the output layer's own equations; the targets and the cost keep their symbols everywhere
            by_kind = LatexPrinter({
                "bold": self.notation.bold, "functions": self.functions, "scalar": self.notation.scalar,
                "symbols": {k: v for k, v in self.notation.symbols.items() if k in KINDS},
                "layer_labels": {self.depth: OUTPUT_LABEL}})
            links = []
            for name in self.notation.symbols:
                if name != naming.INPUT and (name in KINDS or naming.split_layer_name(name) is None):
                    continue
                general, renamed = by_kind.name(name), self.printer.name(name)
                if general != renamed:
                    links.append(f"${renamed} = {general}$")
            if links:
                said.append("in the general form " + ", ".join(links))
        if not said:
            return ""
        return "Here " + "; ".join(said) + "."

    def _layer_symbols(self, text: str) -> list[str]:
        """τ, ε and the causal softmax of the layer library, as the printed parts use them."""
        constants: dict[str, Constant] = {}
        epsilons: list = []
        causal = False
        for definition in self.program.definitions:
            for node in walk(definition.expr):
                if isinstance(node, Constant):
                    constants.setdefault(node.name, node)
                elif isinstance(node, Deviation) and node.epsilon not in epsilons:
                    epsilons.append(node.epsilon)
                elif isinstance(node, Softmax) and node.causal:
                    causal = True
        said = []
        for name, constant in constants.items():
            symbol = self.printer.name(name)
            if symbol in text:
                value = self.printer.doprint(constant.value)
                said.append(f"${symbol} = 1/\\sqrt{{d_k}} = {value}$ scales the attention scores"
                            if naming.split_layer_name(name)[0] == "tau" else f"${symbol} = {value}$")
        if r"\epsilon" in text and epsilons:
            values = ", ".join(f"$10^{{-{len(str(e.q)) - 1}}}$" if e.p == 1 and str(e.q).strip("0") == "1"
                               else f"${self.printer.doprint(e)}$" for e in epsilons)
            said.append(rf"$\epsilon$ is the normalisation's small constant ({values})")
        for item in self.program.inputs:
            symbol = self.printer.name(item.name)
            if item.kind == "mask" and symbol in text:
                said.append(f"${symbol}$ is a dropout mask of 0s and 1s, each entry kept with probability "
                            f"$1 - {item.rate:g}$")
            elif item.kind == "one_hot" and symbol in text:
                said.append(f"${symbol}$ holds one-hot samples, so a product with ${superscript(symbol, chr(92) + 'top')}$ adds each "
                            f"sample's adjoint into the embedding of its word (a scatter-add)")
        if r"\mathrm{causal}" in text and causal:
            said.append(r"$\operatorname{softmax}_{\mathrm{causal}}$ gives a later token's score the weight 0 "
                        r"(a token attends to itself and the tokens before it)")
        return said

    def all(self) -> dict[str, Any]:
        context = self._all()
        if self._widest[0] > self.notation.line_width:
            raise NotationError(f"notation option line_width={self.notation.line_width:g} em is too narrow: the "
                                f"equation of ${self._widest[1]}$ needs {self._widest[0]:.1f} em however it is broken")
        context["glossary"] = self.glossary(context)
        return context

    def _all(self) -> dict[str, Any]:
        shapes_general, shapes = self.shapes()
        forward_general, forward = self.forward()
        update_general, updates = self.updates()
        return {
            "layered": self.general_form,
            "scalar": self.notation.scalar,
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
            "parts": self.notation.parts,
            "deltas_title": (rf"Recursion of ${self.notation.symbols['delta']}$" if "delta" in self.notation.symbols
                             else "Delta recursion"),
            "layer_by_layer": self.notation.layer_by_layer or not self.general_form,
            "rules": self.notation.rules,
            "line_width": self.notation.line_width,
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
    r"""Equations as an ``align*`` environment, each rule in a ``\tag*`` or, set below, with its notes in a ``\stepnote``.

    What is set below a step stays with it: its row ends with ``\\*``, and ``\stepnote`` (which
    ``derivation.tex.j2`` provides) begins with ``\nobreak``, so no page or column break falls between them;
    one may fall after it (with ``\allowdisplaybreaks``).  amsmath's ``\intertext`` does the opposite (a break
    may fall before its text, never after), as it introduces the rows below it.  Below the last equation the
    rule and notes follow the environment instead, as text, and ``\postdisplaypenalty=10000``, in a group
    around the environment, keeps them with it.

    >>> print(align([_equation("z", "W a", rule="matrix product")]))
    \begin{align*}
    z &= W a \tag*{\small[matrix product]}
    \end{align*}
    >>> print(align([_equation("z", "W a", rule="matrix product", note="W ≠ 0"), _equation("a", "z")]))
    \begin{align*}
    z &= W a \tag*{\small[matrix product]} \\*
    \stepnote{\small Assuming W ≠ 0.}
    a &= z
    \end{align*}
    """
    equations = list(equations)
    numbered = any(e.label for e in equations)
    rows: list[tuple[list[str], list[str]]] = []  # each equation's rows, and what goes below it
    for equation in equations:
        lines = _rows(equation, rule_column=False)
        if equation.rule and not equation.rule_below:
            lines[0] += rf" \tag*{{\small[{equation.rule}]}}"
        if numbered:
            lines = [line + (rf" \label{{{equation.label}}}" if i == 0 and equation.label else r" \nonumber")
                     for i, line in enumerate(lines)]
        below = [rf"\small[{equation.rule}]"] if equation.rule and equation.rule_below else []
        if equation.note:
            below.append(rf"\small Assuming {equation.note}.")
        rows.append((lines, below))
    after = [f"{{{text}}}\\par" for text in rows[-1][1]] if rows else []
    if after:
        rows[-1] = (rows[-1][0], [])
        # what follows continues the text the display interrupted: not a new, indented paragraph
        after[-1] += r"\noindent"
    body = []
    for index, (lines, below) in enumerate(rows):
        last = index == len(rows) - 1
        body += [line + " \\\\" for line in lines[:-1]]
        if below:  # \endgraf: the body of an alignment cannot hold \par
            body += [lines[-1] + " \\\\*", r"\stepnote{" + "\\endgraf\\noindent ".join(below) + "}"]
        else:
            body.append(lines[-1] + ("" if last else " \\\\"))
    environment = "align" if numbered else "align*"
    display = [f"\\begin{{{environment}}}", *(body or [""]), f"\\end{{{environment}}}"]
    if after:
        display = [r"\begingroup\postdisplaypenalty=10000", *display[:-1], display[-1] + r"\endgroup", *after]
    return "\n".join(display)


#: em per character of a rule in a Markdown display's text column (display size, not ``\small``), erring wide
_TEXT_CHARACTER = 0.5
#: em between the equations and the text column of an ``aligned`` environment (MathJax sets 2 em, amsmath 1)
_COLUMN_GAP = 2.0


def _wrapped_rule(rule: str, width: float) -> list[str]:
    """``[rule]`` cut after its commas into lines of at most ``width`` em of text (a single rule is never cut)."""
    lines: list[str] = []
    for part in f"[{rule}]".split(", "):
        if lines and _TEXT_CHARACTER * (len(lines[-1]) + 2 + len(part)) <= width:
            lines[-1] += ", " + part
        else:
            lines[-1:] = [lines[-1] + ","] if lines else []
            lines.append(part)
    return lines


def aligned(equations: Iterable[Equation], line_width: float | None = None, rules: str = "tags") -> str:
    r"""Equations as the rows of an ``aligned`` environment (MathJax, KaTeX), each rule in a text column.

    The text column starts after the block's widest right-hand side.  With ``line_width`` (em), a rule that
    would end beyond it there goes on rows of its own below its step instead, cut after commas to fit (a display
    cannot wrap text by itself), as a ``\tag*`` too wide for the LaTeX measure does; with ``rules="below"`` every
    rule does.

    >>> print(aligned([_equation("z", "W a", rule="matrix product")]))
    z &= W a && \text{[matrix product]}
    >>> print(aligned([_equation("z", "W a", rule="matrix product, bias broadcast")], line_width=10))
    z &= W a \\
    &\quad \text{[matrix product,} \\
    &\quad \text{bias broadcast]}
    """
    equations = list(equations)
    left = max((latex_width(e.lhs) for e in equations), default=0.0)
    right = max((latex_width(f"{row.relation} {line}") for e in equations for row in e.rows for line in row.lines),
                default=0.0)
    room = (line_width if line_width is not None else float("inf")) - left - _WIDTHS[r"\quad"]
    lines = []
    for equation in equations:
        below = bool(equation.rule) and (rules == "below" or line_width is not None and left + right + _COLUMN_GAP
                                         + _TEXT_CHARACTER * (len(equation.rule) + 2) > line_width)
        lines += _rows(equation, rule_column=not below)
        if below:
            lines += [rf"&\quad \text{{{text}}}" for text in _wrapped_rule(equation.rule, room)]
    return " \\\\\n".join(lines)


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
