r"""Matrix formulas (hand-derived gradients) from the formula parser's tree to SymPy.

The text is parsed by :mod:`symbackprop.language.syntax`; this module turns the tree
into a SymPy matrix expression over one derivation's quantities, checking
every shape on the way.  Nothing is evaluated: only the names, functions and
operators listed here can appear, each mapped to a SymPy constructor.

>>> from symbackprop import Dense, Network, derive
>>> d = derive(Network(3, [Dense(4, "sigmoid"), Dense(2, "sigmoid")], batch="m"))
>>> parse_matrix(r"(W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})", d)
HadamardProduct(W2.T*delta2, sigmoid'(z1))
>>> parse_matrix("delta1 @ ones(m, 1)", d).shape
(4, 1)

Values are scalars (numbers, sizes such as ``m``, a learning rate, ``sum`` and
``trace``) or matrices.  The rules, in short (``docs/formula-language.md`` has
them all):

* ``@`` is the matrix product; juxtaposition (``W2.T delta2``, ``2 a1``) is a
  matrix product between matrices and a scalar product otherwise;
* ``*``, ``.*``, ``⊙`` multiply entry by entry; ``/`` and ``./`` divide entry
  by entry; ``+`` and ``-`` add entry by entry.  In these elementwise
  operations a scalar, or a 1×1 matrix, stands for every entry (``1 - a1``),
  and a column (r×1) or a row (1×c) against an r×c matrix is broadcast as
  NumPy does (``W1 @ x + b1``, ``(x - mu) / sigma``); a column against a row
  is not;
* ``sum``, ``mean``, ``softmax`` and ``log_softmax`` take an optional
  dimension, 1 (each column) or 2 (each row); ``sqrt``, ``exp`` and ``log``
  apply entry by entry to a matrix and are SymPy's functions of a scalar;
* ``^``, ``**`` and ``.^`` raise every entry to a whole power of at most
  :data:`MAX_EXPONENT` in size (there is no matrix power);
* ``.T``, ``'``, ``ᵀ``, ``^\top`` transpose.

Operands whose shapes do not fit raise :class:`~symbackprop.errors.ShapeError`
naming the operation and both shapes; an unknown name or function raises
:class:`~symbackprop.errors.UnknownNameError` listing the known ones; any other
misuse raises :class:`~symbackprop.errors.FormulaError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

import sympy
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy import (
    Expr,
    MatAdd,
    MatMul,
    OneMatrix,
    Trace,
    Transpose,
)

from . import syntax as ast
from ..model.activations import ACTIVATIONS, MATH_FUNCTIONS, Activation
from ..calculus.expressions import Named, hadamard, hadamard_power
from ..derive import Derivation
from ..errors import FormulaError, ShapeError, SymbackpropError, UnknownNameError
from ..calculus.expressions import (SCALAR_VARIABLE, Broadcast, Deviation, Elementwise, LogSoftmax, Normalize, Softmax,
                                    SumEntries)
from .scalar import MAX_EXPONENT, number
from ..printing.common import shape_text as matrix_shape_text

__all__ = [
    "LAYERED_NAME",
    "LEARNING_RATE_NAMES",
    "MAX_EXPONENT",
    "MAX_SYMBOLIC_INDEX",
    "MatrixBuilder",
    "Vocabulary",
    "broadcast_shape",
    "canonical_name",
    "children",
    "learning_rates",
    "parse_matrix",
    "shape_of",
    "shape_text",
]

#: spellings of a learning rate in an update rule (``W1 - eta * ...``); ``η`` and ``α`` parse as eta and alpha
LEARNING_RATE_NAMES = ("R", "eta", "lr", "alpha")

#: an entry along a symbolic size (``a1[i]`` with n_1 units) has an index below this, so that the sizes
#: a check draws (from this up) hold it
MAX_SYMBOLIC_INDEX = 8
#: numbers in a formula stay within float64's range, so evaluating them never overflows
_LARGEST = sympy.Integer(10) ** 300
_MAX_DERIVATIVE = 3
#: exp of a number larger than this in size leaves float64's range (e^690 ≈ 10^299.7)
_LARGEST_EXPONENT = 690
#: digits to which a number given to sqrt, exp or log is checked
_DIGITS = 30
#: other spellings of the math functions (``\ln`` is read as ``ln``)
_MATH_ALIASES = {"ln": "log"}
#: a per-layer name as typed: kind, an optional ``_``, the layer (``W2``, ``delta_1``)
LAYERED_NAME = re.compile(r"^(W|b|z|a|delta)(_?)([0-9]+)$")
_LATEX_NAME = re.compile(r"^\\(?:operatorname\{([A-Za-z]+)\}|([A-Za-z]+))(?:_\{?([A-Za-z0-9]+)\}?)?$")


def canonical_name(node: ast.Name, depth: int) -> str:
    r"""The name a :class:`~symbackprop.language.syntax.Name` stands for: ``W_2``, ``W^{(2)}`` → ``W2``.

    ``depth`` is the network's number of layers, the value of ``L`` in a
    layer superscript such as ``a^{(L-1)}``.

    >>> canonical_name(ast.parse("a^{(L-1)}"), 3), canonical_name(ast.parse("delta_2"), 3)
    ('a2', 'delta2')
    """
    if node.layer is None:
        match = LAYERED_NAME.match(node.id)
        return f"{match.group(1)}{int(match.group(3))}" if match else node.id
    if node.id not in ("W", "b", "z", "a", "delta"):
        raise FormulaError(f"{node.id} has no layers; only W, b, z, a and delta take a superscript "
                           f"such as ^{{(2)}} (position {node.pos})")
    if isinstance(node.layer, int):
        return f"{node.id}{node.layer}"
    if node.layer.symbol != "L":
        raise FormulaError(f"unknown layer {node.layer.symbol!r} in {ast.unparse(node)} (position {node.pos}); "
                           "a layer is a number, L (the last layer) or L minus a number")
    layer = depth + node.layer.offset
    if layer < 0:
        raise FormulaError(f"{ast.unparse(node)} is layer {layer}: the network has layers 0 (the input) to {depth}")
    return f"{node.id}{layer}"


def learning_rates(tree: ast.Node, vocabulary: "Vocabulary") -> list[str]:
    """The learning-rate names ``tree`` mentions, in order of first appearance."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.layer is None and node.id in vocabulary.learning_rates \
                and node.id not in found:
            found.append(node.id)
    return found


def shape_text(shape: tuple | None) -> str:
    """``(n_1, 3)`` → ``'n_1×3'``; ``None`` (a scalar) → ``'a scalar'``."""
    return "a scalar" if shape is None else matrix_shape_text(shape)


def _latex_alias(latex: str) -> str | None:
    r"""``\operatorname{ReLU}`` → ``ReLU``, ``\sigma`` → ``sigma``, ``\phi_{1}`` → ``phi_1``."""
    match = _LATEX_NAME.match(latex)
    if match is None:
        return None
    name = match.group(1) or match.group(2)
    return f"{name}_{match.group(3)}" if match.group(3) else name


@dataclass(frozen=True)
class Vocabulary:
    """What a formula may mention for one derivation.

    * ``quantities`` — ``"X"``, ``"x"``, ``"a0"``, ``"Y"``, ``"y"``, ``"W1"``,
      ``"b1"``, ``"z1"``, ``"a1"``, …, ``"delta1"``, … → SymPy matrices;
    * ``scalars`` — the network's size symbols (``"m"``, ``"n_1"``), ``"m"``
      for the batch size even when it is a number, and a weight-decay symbol;
    * ``learning_rates`` — the learning-rate spellings not taken by the above;
    * ``functions`` — activation names and aliases (``"sigma"``, ``"ReLU"``);
    * ``sizes`` — what a size in ``ones(r, c)`` may be: 1 and the network's sizes;
    * ``depth`` — L; ``axis`` — the axis ``softmax(M)`` and ``log_softmax(M)``
      normalise over when no dimension is given (0: each column, 1: each row).
    """

    quantities: Mapping[str, Expr]
    scalars: Mapping[str, Expr]
    sizes: tuple[Expr, ...]
    learning_rates: tuple[str, ...]
    functions: Mapping[str, Activation]
    depth: int
    axis: int

    @classmethod
    def of(cls, derivation: Derivation) -> "Vocabulary":
        """The vocabulary of ``derivation``'s network.

        >>> from symbackprop import Dense, Network, derive
        >>> v = Vocabulary.of(derive(Network(2, [Dense(3, "tanh")])))
        >>> list(v.quantities)
        ['X', 'x', 'a0', 'Y', 'y', 'W1', 'b1', 'z1', 'a1', 'delta1']
        """
        program = derivation.program
        quantities: dict[str, Expr] = {}
        for item in program.inputs:
            quantities[item.name] = item.symbol
            alias = {"input": ("x", "a0"), "target": ("y",)}.get(item.role, ())
            quantities.update((a, item.symbol) for a in alias if a not in program.symbols())
        quantities.update((p.name, p.symbol) for p in program.parameters)
        quantities.update((node.name, node) for node in derivation.forward)
        quantities.update(derivation.deltas)
        quantities.update((n.name, n) for n in derivation.adjoints.values() if isinstance(n, Named))
        scalars: dict[str, Expr] = {symbol.name: symbol for symbol in program.size_symbols}
        data = program.input("input").shape
        batch = data[1] if program.layout == "columns" else data[0]
        scalars.setdefault("m", batch)
        for symbol in program.scalars:
            scalars[symbol.name] = symbol
        if len(program.scalars) == 1:
            # λ and \lambda (the parser's name "lambda") are how papers write the decay, whatever its name
            scalars.setdefault("lambda", program.scalars[0])
        functions: dict[str, Activation] = {}
        for activation in (*ACTIVATIONS.values(), *program.activations):
            for alias in (activation.name, _latex_alias(activation.latex)):
                if alias is not None:
                    functions.setdefault(alias, activation)
        rates = tuple(name for name in LEARNING_RATE_NAMES if name not in scalars and name not in quantities)
        shapes = [d for q in (*program.inputs, *program.parameters) for d in q.shape]
        return cls(
            quantities=MappingProxyType(quantities),
            scalars=MappingProxyType(scalars),
            sizes=tuple(dict.fromkeys([sympy.Integer(1), *program.size_symbols, *shapes, batch])),
            learning_rates=rates,
            functions=MappingProxyType(functions),
            depth=program.depth,
            axis=0 if program.layout == "columns" else 1,
        )

    def known_names(self) -> list[str]:
        """Every name a formula may use, for error messages."""
        return [*self.quantities, *self.scalars, *(f"{r} (a learning rate)" for r in self.learning_rates)]

    def known_functions(self) -> list[str]:
        """Every function a formula may call, for error messages."""
        activations = sorted(self.functions, key=str.lower)
        return [*activations, "sqrt", "exp", "log", "ln", "log_softmax", "causal_softmax", "normalize", "sum", "mean",
                "trace", "tr", "ones",
                "and derivatives such as sigmoid'(z1) or dsigmoid(z1)"]


def children(node: ast.Node) -> tuple[ast.Node, ...]:
    """The operands of a formula tree's node, left to right."""
    if isinstance(node, ast.BinOp):
        return node.left, node.right
    if isinstance(node, (ast.Neg, ast.Transpose, ast.Entry)):
        return (node.operand,)
    return node.args if isinstance(node, ast.Call) else ()


def _show(node: ast.Node) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def shape_of(value: Expr) -> tuple | None:
    """A built value's shape, or None for a scalar."""
    return value.shape if value.is_Matrix else None


class MatrixBuilder:
    """Builds SymPy expressions from formula trees over one :class:`Vocabulary`.

    Every node built is remembered, by identity, so trees that share their
    subtrees (the changed formulas of :func:`symbackprop.check`'s hints) build
    only the nodes they do not share.  ``learning_rate`` is the SymPy symbol
    the learning-rate spellings stand for.

    >>> from symbackprop import Dense, Network, derive
    >>> builder = MatrixBuilder(Vocabulary.of(derive(Network(1, [Dense(1, bias=False)]))))
    >>> builder.build(ast.parse("2 x (W1 x - y)"))
    (2*X)*(W1*X - Y)
    """

    def __init__(self, vocabulary: Vocabulary, learning_rate: sympy.Symbol | None = None) -> None:
        self.vocabulary = vocabulary
        self.learning_rate = learning_rate
        # id → (node, value); the node is kept so its id is never reused.  Identity, not equality:
        # hashing a tree hashes all of it, which made long formulas slow.
        self.memo: dict[int, tuple[ast.Node, Expr]] = {}
        # id → (node, error) for subtrees that do not make sense: a changed formula that keeps one fails at
        # once, without building (and wording the error) again
        self.failed: dict[int, tuple[ast.Node, SymbackpropError]] = {}

    def build(self, tree: ast.Node) -> Expr:
        """The SymPy expression ``tree`` stands for; raises on anything outside the language."""
        memo, failed = self.memo, self.failed
        pending, stack = [], [tree]
        while stack:  # no recursion, however deep the tree
            node = stack.pop()
            if id(node) in failed:
                raise failed[id(node)][1].with_traceback(None)
            if id(node) not in memo:
                pending.append(node)
                stack.extend(children(node))
        for node in reversed(pending):  # pre-order reversed: children before their parents
            if id(node) not in memo:
                try:
                    memo[id(node)] = (node, self._node(node))
                except SymbackpropError as err:
                    failed[id(node)] = (node, err)
                    raise
        return memo[id(tree)][1]

    def _value(self, node: ast.Node) -> Expr:
        return self.memo[id(node)][1]

    def _node(self, node: ast.Node) -> Expr:
        if isinstance(node, ast.Number):
            return _checked(number(node.text), node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Neg):
            return _times(sympy.Integer(-1), self._value(node.operand))
        if isinstance(node, ast.Transpose):
            value = self._value(node.operand)
            if not shape_of(value):
                return value
            # Transpose(...) as written: .T would push the transpose down the whole subtree, slowly
            return value.arg if isinstance(value, Transpose) else Transpose(value)
        if isinstance(node, ast.Call):
            return self._call(node, [self._value(arg) for arg in node.args])
        if isinstance(node, ast.Entry):
            return self._entry(node, self._value(node.operand))
        return self._binary(node, self._value(node.left), self._value(node.right))

    def _entry(self, node: ast.Entry, value: Expr) -> Expr:
        """``M[i, j]``, or ``v[i]`` of a vector: a scalar.  A numeric size bounds its index; a symbolic one
        is given a value above every index when evaluated (:func:`entry_floor`)."""
        shape = shape_of(value)
        if shape is None:
            raise FormulaError(f"{_show(node.operand)} is a scalar, which has no entries (position {node.pos})")
        indices = node.indices
        if len(indices) == 1:
            if shape[1] == 1:
                indices = (indices[0], 0)
            elif shape[0] == 1:
                indices = (0, indices[0])
            else:
                raise FormulaError(f"{_show(node.operand)} is {shape_text(shape)}, not a vector: give a row and a "
                                   f"column, as in {_show(node.operand)}[{indices[0]}, 0] (position {node.pos})")
        for index, size, what in zip(indices, shape, ("rows", "columns")):
            if size.is_Integer and index >= size:
                raise FormulaError(f"{_show(node.operand)} is {shape_text(shape)}: its {what} are numbered 0 to "
                                   f"{size - 1}, so {index} is out of range (position {node.pos})")
            if not size.is_Integer and index >= MAX_SYMBOLIC_INDEX:
                raise FormulaError(f"{_show(node.operand)} is {shape_text(shape)}: an index along the symbolic "
                                   f"size {size} is below {MAX_SYMBOLIC_INDEX}, not {index} (position {node.pos})")
        return MatrixElement(value, *indices)

    # --- names and calls ---------------------------------------------------------------

    def _name(self, node: ast.Name) -> Expr:
        vocabulary = self.vocabulary
        name = canonical_name(node, vocabulary.depth)
        if name in vocabulary.quantities:
            return vocabulary.quantities[name]
        if name in vocabulary.scalars:
            return vocabulary.scalars[name]
        if name in vocabulary.learning_rates and self.learning_rate is not None:
            return self.learning_rate
        if name in vocabulary.learning_rates:
            raise FormulaError(f"{name} is a learning rate; it only appears in an update rule such as W1 - {name} * (...)")
        raise UnknownNameError("name", name, vocabulary.known_names())

    def _call(self, node: ast.Call, args: list[Expr]) -> Expr:
        func = node.func
        builtin = {
            "sum": self._sum, "mean": self._mean, "trace": self._trace, "tr": self._trace, "ones": self._ones,
            "log_softmax": self._log_softmax, "normalize": self._normalize, "causal_softmax": self._causal_softmax,
        }.get(func)  # fmt: skip
        if builtin is not None:
            if node.derivative:
                raise FormulaError(f"{func} has no derivative mark (position {node.pos})")
            return builtin(node, args)
        activation, order = self._function(node)
        if not activation.is_elementwise:
            return self._per_sample(node, args, Softmax)
        if len(args) != 1:
            raise FormulaError(f"{func} takes one argument, not {len(args)} (position {node.pos})")
        (arg,) = args
        if shape_of(arg) is None:
            if activation.name in MATH_FUNCTIONS and not order:
                return self._scalar_function(node, activation, arg)
            raise FormulaError(f"{func} applies to a matrix, and {_show(node.args[0])} is a scalar (position {node.pos})")
        return Elementwise(activation.name, activation.function, arg, order)

    def _function(self, node: ast.Call) -> tuple[Activation, int]:
        """The function a call names and the derivative order: ``dsigmoid`` and ``sigmoid'`` give 1.

        ``sqrt``, ``exp`` and ``log`` (also ``ln``) are always the math functions; other names are
        the vocabulary's activations.
        """
        functions = self.vocabulary.functions
        name, order = node.func, node.derivative
        math = MATH_FUNCTIONS.get(_MATH_ALIASES.get(name, name))
        if math is not None:
            activation = math
        else:
            if name not in functions and name.startswith("d") and name[1:] in functions and not order:
                name, order = name[1:], 1
            if name not in functions:
                raise UnknownNameError("function", node.func, self.vocabulary.known_functions())
            activation = functions[name]
        if order and not activation.is_elementwise:
            raise FormulaError(f"{name} is not applied entry by entry and has no derivative {name}' "
                               f"(position {node.pos}); write its Jacobian product out")
        if order > _MAX_DERIVATIVE:
            raise FormulaError(f"at most {_MAX_DERIVATIVE} derivative marks (position {node.pos})")
        return activation, order

    def _scalar_function(self, node: ast.Call, function: Activation, arg: Expr) -> Expr:
        """``sqrt``, ``exp`` or ``log`` of a scalar: the SymPy function, refused where it is not a finite real."""
        if arg.is_number:
            value = arg.evalf(_DIGITS)
            if not value.is_real:
                raise FormulaError(f"{_show(node.args[0])} is not a real number (position {node.pos})")
            if function.name == "log" and not value > 0:
                raise FormulaError(f"log needs a positive number, not {_show(node.args[0])} (position {node.pos})")
            if function.name == "sqrt" and value < 0:
                raise FormulaError(f"sqrt needs a number that is not negative, not {_show(node.args[0])} "
                                   f"(position {node.pos})")
            if function.name == "exp" and abs(value) > _LARGEST_EXPONENT:
                # refuse before computing: exp(10^300) has no float64 value
                raise FormulaError(f"the number {_show(node)} is out of range (position {node.pos})")
        return _checked(function.definition.xreplace({SCALAR_VARIABLE: arg}), node)

    def _dimension(self, node: ast.Call, args: list[Expr]) -> int:
        """The dimension argument of ``sum``, ``mean``, ``softmax``, ``log_softmax``: 1 (down each column),
        2 (along each row), or 0 when there is none."""
        if len(args) not in (1, 2):
            raise FormulaError(f"{node.func} takes a matrix and an optional dimension 1 or 2, not {len(args)} "
                               f"arguments (position {node.pos})")
        if len(args) == 1:
            return 0
        if args[1] not in (1, 2):
            raise FormulaError(f"the dimension of {node.func} is 1 (down each column) or 2 (along each row), "
                               f"not {_show(node.args[1])} (position {node.pos})")
        return int(args[1])

    def _matrix_argument(self, node: ast.Call, args: list[Expr]) -> Expr:
        if shape_of(args[0]) is None:
            raise FormulaError(f"{node.func} applies to a matrix, and {_show(node.args[0])} is a scalar "
                               f"(position {node.pos})")
        return args[0]

    def _sum(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``sum(M)``: all entries, a scalar; ``sum(M, 1)``: each column (1×c); ``sum(M, 2)``: each row (r×1)."""
        dimension = self._dimension(node, args)
        value = args[0]
        if shape_of(value) is None:
            if dimension:
                raise ShapeError(f"sum(..., {dimension}) needs a matrix, and {_show(node.args[0])} is a scalar")
            return value  # the sum of a scalar is the scalar
        return _sum_along(value, dimension)

    def _mean(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``mean(M)``: of all entries, a scalar; ``mean(M, 1)``: of each column (1×c); ``mean(M, 2)``: of each row (r×1)."""
        dimension = self._dimension(node, args)
        return _mean_along(self._matrix_argument(node, args), dimension)

    def _per_sample(self, node: ast.Call, args: list[Expr], cls: type) -> Expr:
        """``softmax(M)`` / ``log_softmax(M)``: over the vocabulary's axis; ``(M, 1)``: each column; ``(M, 2)``: each row."""
        dimension = self._dimension(node, args)
        value = self._matrix_argument(node, args)
        axis = self.vocabulary.axis if dimension == 0 else dimension - 1
        return cls(value, axis)

    def _log_softmax(self, node: ast.Call, args: list[Expr]) -> Expr:
        return self._per_sample(node, args, LogSoftmax)

    def _causal_softmax(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``causal_softmax(S, k)``: softmax of the square scores S with each token's later tokens masked."""
        softmax = self._per_sample(node, args, Softmax)
        if softmax.arg.shape[0] != softmax.arg.shape[1]:
            raise ShapeError(f"causal_softmax takes a square matrix of token-to-token scores, and "
                             f"{_show(node.args[0])} is {shape_text(softmax.arg.shape)}")
        return Softmax(softmax.arg, softmax.axis, causal=True)

    def _normalize(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``normalize(M, 1)``: each column of M standardised, (x − μ) ⊘ √(σ² + ε) with the biased variance
        and ε = 1e-5 (layer normalisation in the columns layout); ``normalize(M, 2)``: each row."""
        dimension = self._dimension(node, args)
        value = self._matrix_argument(node, args)
        if dimension == 0:
            raise FormulaError(f"normalize takes a dimension: 1 (each column) or 2 (each row) "
                               f"(position {node.pos})")
        axis = dimension - 1
        count = value.shape[axis]
        if count == 1:
            raise ShapeError(f"normalize(..., {dimension}) of {_show(node.args[0])} normalises a single entry "
                             f"({shape_text(value.shape)}): every result would be 0")
        mean = _mean_along(value, dimension)
        return Normalize(value, mean, Deviation(value, mean, axis), axis)

    def _trace(self, node: ast.Call, args: list[Expr]) -> Expr:
        if len(args) != 1:
            raise FormulaError(f"{node.func} takes one argument, not {len(args)} (position {node.pos})")
        (value,) = args
        shape = shape_of(value)
        if shape is None:
            return value
        if shape[0] != shape[1]:
            raise ShapeError(f"the trace needs a square matrix, and {_show(node.args[0])} is {shape_text(shape)}")
        return Trace(value)

    def _ones(self, node: ast.Call, args: list[Expr]) -> Expr:
        if len(args) != 2:
            raise FormulaError(f"ones takes two sizes, ones(rows, columns), not {len(args)} arguments "
                               f"(position {node.pos})")
        sizes = self.vocabulary.sizes
        for arg, tree in zip(args, node.args):
            # only sizes that fit some quantity: ones(10^6, 10^6) would allocate terabytes when evaluated
            if arg not in sizes:
                raise FormulaError(f"a size in ones(...) is one of the network's sizes "
                                   f"({', '.join(map(str, sizes))}), not {_show(tree)} (position {node.pos})")
        return _ones(*args)

    def _det(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``det(M)``: the determinant of a square matrix, a scalar."""
        return sympy.Determinant(self._square(node, args, "determinant"))

    def _inverse(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``inv(M)``: the inverse of a square matrix."""
        return sympy.Inverse(self._square(node, args, "inverse"))

    def _square(self, node: ast.Call, args: list[Expr], what: str) -> Expr:
        if len(args) != 1:
            raise FormulaError(f"{node.func} takes one argument, not {len(args)} (position {node.pos})")
        shape = shape_of(args[0])
        if shape is None or shape[0] != shape[1]:
            raise ShapeError(f"the {what} needs a square matrix, and {_show(node.args[0])} is {shape_text(shape)}")
        return args[0]

    # --- operators ------------------------------------------------------------------------

    def _binary(self, node: ast.BinOp, left: Expr, right: Expr) -> Expr:
        op = node.op
        if op == "pow":
            return self._power(node, left, right)
        if op in ("matmul", "juxt"):
            return self._product(node, left, right)
        if op in ("add", "sub"):
            right = right if op == "add" else _times(sympy.Integer(-1), right)
            return self._elementwise(node, left, right, "+" if op == "add" else "-")
        if op in ("div", "hdiv"):
            if right == 0:
                raise FormulaError(f"division by zero (position {node.pos})")
            reciprocal = hadamard_power(right, -1) if shape_of(right) else 1 / right
            return self._elementwise(node, left, reciprocal, "/" if op == "div" else "./")
        return self._elementwise(node, left, right, "*" if op == "mul" else ".*")

    def _elementwise(self, node: ast.BinOp, left: Expr, right: Expr, symbol: str) -> Expr:
        """An entry-by-entry sum or product, broadcasting as NumPy does.

        A scalar or a 1×1 matrix stands for every entry; a column (r×1) against
        an r×c matrix is repeated across the columns, a row (1×c) down the rows,
        as a :class:`~symbackprop.calculus.expressions.Broadcast`.
        """
        left_shape, right_shape = shape_of(left), shape_of(right)
        if left_shape != right_shape:
            if left_shape == (1, 1) and right_shape is not None:
                left, left_shape = SumEntries(left), None
            elif right_shape == (1, 1) and left_shape is not None:
                right, right_shape = SumEntries(right), None
            elif left_shape is not None and right_shape is not None:
                shape = broadcast_shape(left_shape, right_shape)
                if shape is None:
                    raise ShapeError(
                        f"'{symbol}' works entry by entry, but {_show(node.left)} is {shape_text(left_shape)} "
                        f"and {_show(node.right)} is {shape_text(right_shape)}{_misfit_advice(symbol, left_shape, right_shape)}"
                    )
                left, right = _spread(left, shape), _spread(right, shape)
                left_shape = right_shape = shape
        if symbol in "+-":
            if left_shape is None and right_shape is not None:
                left = _times(left, _ones(*right_shape))
            elif right_shape is None and left_shape is not None:
                right = _times(right, _ones(*left_shape))
            return MatAdd(left, right) if left_shape or right_shape else left + right
        if left_shape is None or right_shape is None:
            return _checked(_times(left, right), node)
        return hadamard(left, right)

    def _product(self, node: ast.BinOp, left: Expr, right: Expr) -> Expr:
        """``@``: the matrix product.  Juxtaposition: the matrix product of matrices, else a scalar product."""
        left_shape, right_shape = shape_of(left), shape_of(right)
        if left_shape is not None and right_shape is not None and left_shape[1] == right_shape[0]:
            return _times(left, right)
        if node.op == "matmul":
            if left_shape is None or right_shape is None:
                scalar = node.left if left_shape is None else node.right
                raise ShapeError(f"'@' multiplies two matrices, and {_show(scalar)} is a scalar (use * to scale)")
            raise ShapeError(f"'@' needs as many columns on the left as rows on the right, but "
                             f"{_show(node.left)} is {shape_text(left_shape)} and "
                             f"{_show(node.right)} is {shape_text(right_shape)}")
        if left_shape is not None and right_shape is not None and (1, 1) not in (left_shape, right_shape):
            raise ShapeError(f"{_show(node.left)} ({shape_text(left_shape)}) and {_show(node.right)} "
                             f"({shape_text(right_shape)}) cannot be multiplied: the matrix product needs "
                             "as many columns on the left as rows on the right")
        return self._elementwise(node, left, right, "*")

    def _power(self, node: ast.BinOp, base: Expr, exponent: Expr) -> Expr:
        if shape_of(exponent) is not None or not exponent.is_Integer or abs(exponent) > MAX_EXPONENT:
            raise FormulaError(f"an exponent is a whole number from {-MAX_EXPONENT} to {MAX_EXPONENT}, "
                               f"not {_show(node.right)} (position {node.pos})")
        if shape_of(base) is not None:
            return hadamard_power(base, exponent)
        if base.is_Rational and base != 0:
            # refuse before computing: (10^300)^64 would be a number of 19 200 digits
            digits = abs(int(exponent)) * max(math.log10(abs(base.p)), math.log10(base.q))
            if digits > 300:
                raise FormulaError(f"the number {_show(node)} is out of range (position {node.pos})")
        if base == 0 and exponent < 0:
            raise FormulaError(f"division by zero in {_show(node)} (position {node.pos})")
        return _checked(base**exponent, node)


def _sum_along(value: Expr, dimension: int) -> Expr:
    """All entries (dimension 0), each column (1, a 1×c row) or each row (2, an r×1 column) of a matrix."""
    rows, cols = value.shape
    if dimension == 0:
        return SumEntries(value)
    return _times(_ones(1, rows), value) if dimension == 1 else _times(value, _ones(cols, 1))


def _mean_along(value: Expr, dimension: int) -> Expr:
    """The mean of all entries (dimension 0), of each column (1) or of each row (2) of a matrix."""
    rows, cols = value.shape
    count = (rows * cols, rows, cols)[dimension]
    total = _sum_along(value, dimension)
    if count == 1:
        return total
    return _times(total, 1 / count) if dimension == 0 else _times(1 / count, *_factors(total))


def _factors(product: Expr) -> tuple[Expr, ...]:
    return product.args if isinstance(product, MatMul) else (product,)


@lru_cache(maxsize=256)
def _ones(rows: Expr, cols: Expr) -> Expr:
    """A matrix of ones, made once per shape: SymPy's constructor compares sizes symbolically, slowly."""
    return OneMatrix(rows, cols)


def broadcast_shape(left: tuple, right: tuple) -> tuple | None:
    """The shape two matrices broadcast to entry by entry, or None when they do not fit.

    Equal shapes fit; so does a column (r×1) or a row (1×c) against an r×c
    matrix.  A column against a row (NumPy's outer broadcast) does not: it
    hides too many mistakes.

    >>> broadcast_shape((3, 1), (3, 5)), broadcast_shape((1, 5), (3, 5)), broadcast_shape((3, 1), (1, 5))
    ((3, 5), (3, 5), None)
    """
    if left == right:
        return left
    for vector, full in ((left, right), (right, left)):
        if (vector[1] == 1 and vector[0] == full[0]) or (vector[0] == 1 and vector[1] == full[1]):
            return full
    return None


def _misfit_advice(symbol: str, left: tuple, right: tuple) -> str:
    if symbol == "*" and left[1] == right[0]:
        return " (for a matrix product write @)"
    if (left[1] == 1 and right[0] == 1) or (left[0] == 1 and right[1] == 1):
        return " (a column and a row are not broadcast against each other)"
    return ""


def _spread(value: Expr, shape: tuple) -> Expr:
    """``value`` broadcast to ``shape``; a scalar coefficient stays outside: ``-b`` becomes ``-(b 1ᵀ)``."""
    if value.shape == shape:
        return value
    if isinstance(value, MatMul):
        coefficient = sympy.Mul(*(a for a in value.args if not a.is_Matrix))
        matrices = [a for a in value.args if a.is_Matrix]
        if coefficient != 1:
            inner = matrices[0] if len(matrices) == 1 else MatMul(*matrices)
            return _times(coefficient, Broadcast(inner, *shape))
    return Broadcast(value, *shape)


def _times(*factors: Expr) -> Expr:
    """The product, left as written: SymPy's canonical forms cost milliseconds per operation, and
    :func:`~symbackprop.calculus.simplify.tidy` brings formulas to them when they are compared symbolically."""
    if any(shape_of(f) for f in factors):
        return MatMul(*factors)
    return sympy.Mul(*factors)


def _checked(value: Expr, node: ast.Node) -> Expr:
    """``value``, unless it is, or has as a factor, a number outside float64's range."""
    for part in (value, *(value.args if isinstance(value, (MatMul, sympy.Mul)) else ())):
        if part.is_Rational and part != 0 and not (1 / _LARGEST <= abs(part) <= _LARGEST):
            raise FormulaError(f"the number {_show(node)} is out of range (position {node.pos})")
        if part.is_number and not part.is_Rational:  # sqrt(2), exp(3): irrational, checked numerically
            size = abs(part.evalf(_DIGITS))
            if not size.is_real or (size != 0 and not (1 / _LARGEST <= size <= _LARGEST)):
                raise FormulaError(f"the number {_show(node)} is out of range (position {node.pos})")
    return value


def parse_matrix(text: str, derivation: Derivation, learning_rate: sympy.Symbol | None = None) -> Expr:
    """Parse ``text`` into a SymPy expression over ``derivation``'s quantities."""
    return MatrixBuilder(Vocabulary.of(derivation), learning_rate).build(ast.parse(text))
