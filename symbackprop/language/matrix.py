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
  operations a scalar, or a 1×1 matrix, stands for every entry (``1 - a1``);
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
from sympy import (
    Expr,
    MatAdd,
    MatMul,
    OneMatrix,
    Trace,
    Transpose,
)

from . import syntax as ast
from ..model.activations import ACTIVATIONS, Activation
from ..calculus.expressions import hadamard, hadamard_power
from ..derive import Derivation
from ..errors import FormulaError, ShapeError, UnknownNameError
from ..calculus.expressions import Elementwise, Softmax, SumEntries
from .scalar import MAX_EXPONENT, number
from ..printing.common import shape_text as matrix_shape_text

__all__ = [
    "LAYERED_NAME",
    "LEARNING_RATE_NAMES",
    "MAX_EXPONENT",
    "MatrixBuilder",
    "Vocabulary",
    "canonical_name",
    "children",
    "learning_rates",
    "parse_matrix",
    "shape_of",
    "shape_text",
]

#: spellings of a learning rate in an update rule (``W1 - eta * ...``); ``η`` and ``α`` parse as eta and alpha
LEARNING_RATE_NAMES = ("R", "eta", "lr", "alpha")

#: numbers in a formula stay within float64's range, so evaluating them never overflows
_LARGEST = sympy.Integer(10) ** 300
_MAX_DERIVATIVE = 3
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
    * ``depth`` — L; ``axis`` — the axis softmax normalises over.
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
        net = derivation.network
        X, Y = derivation.symbols["X"], derivation.symbols["Y"]
        quantities: dict[str, Expr] = {"X": X, "x": X, "a0": X, "Y": Y, "y": Y}
        quantities.update((name, derivation.symbols[name]) for name in net.parameter_shapes())
        quantities.update((node.name, node) for node in derivation.forward)
        quantities.update(derivation.deltas)
        scalars: dict[str, Expr] = {symbol.name: symbol for symbol in net.size_symbols}
        scalars.setdefault("m", net.batch)
        if isinstance(net.weight_decay, sympy.Symbol):
            scalars[net.weight_decay.name] = net.weight_decay
            # λ and \lambda (the parser's name "lambda") are how papers write the decay, whatever its name
            scalars.setdefault("lambda", net.weight_decay)
        functions: dict[str, Activation] = {}
        for activation in (*ACTIVATIONS.values(), *net.activations):
            for alias in (activation.name, _latex_alias(activation.latex)):
                if alias is not None:
                    functions.setdefault(alias, activation)
        rates = tuple(name for name in LEARNING_RATE_NAMES if name not in scalars and name not in quantities)
        return cls(
            quantities=MappingProxyType(quantities),
            scalars=MappingProxyType(scalars),
            sizes=tuple(dict.fromkeys([sympy.Integer(1), *net.sizes, net.batch])),
            learning_rates=rates,
            functions=MappingProxyType(functions),
            depth=net.depth,
            axis=0 if net.layout == "columns" else 1,
        )

    def known_names(self) -> list[str]:
        """Every name a formula may use, for error messages."""
        return [*self.quantities, *self.scalars, *(f"{r} (a learning rate)" for r in self.learning_rates)]

    def known_functions(self) -> list[str]:
        """Every function a formula may call, for error messages."""
        activations = sorted(self.functions, key=str.lower)
        return [*activations, "sum", "trace", "tr", "ones", "and derivatives such as sigmoid'(z1) or dsigmoid(z1)"]


def children(node: ast.Node) -> tuple[ast.Node, ...]:
    """The operands of a formula tree's node, left to right."""
    if isinstance(node, ast.BinOp):
        return node.left, node.right
    if isinstance(node, (ast.Neg, ast.Transpose)):
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

    def build(self, tree: ast.Node) -> Expr:
        """The SymPy expression ``tree`` stands for; raises on anything outside the language."""
        memo = self.memo
        pending, stack = [], [tree]
        while stack:  # no recursion, however deep the tree
            node = stack.pop()
            if id(node) not in memo:
                pending.append(node)
                stack.extend(children(node))
        for node in reversed(pending):  # pre-order reversed: children before their parents
            if id(node) not in memo:
                memo[id(node)] = (node, self._node(node))
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
        return self._binary(node, self._value(node.left), self._value(node.right))

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
        builtin = {"sum": self._sum, "trace": self._trace, "tr": self._trace, "ones": self._ones}.get(func)
        if builtin is not None:
            if node.derivative:
                raise FormulaError(f"{func} has no derivative mark (position {node.pos})")
            return builtin(node, args)
        activation, order = self._function(node)
        if len(args) != 1:
            raise FormulaError(f"{func} takes one argument, not {len(args)} (position {node.pos})")
        (arg,) = args
        if shape_of(arg) is None:
            raise FormulaError(f"{func} applies to a matrix, and {_show(node.args[0])} is a scalar (position {node.pos})")
        if not activation.is_elementwise:
            return Softmax(arg, self.vocabulary.axis)
        return Elementwise(activation.name, activation.function, arg, order)

    def _function(self, node: ast.Call) -> tuple[Activation, int]:
        """The activation a call names and the derivative order: ``dsigmoid`` and ``sigmoid'`` give 1."""
        functions = self.vocabulary.functions
        name, order = node.func, node.derivative
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

    def _sum(self, node: ast.Call, args: list[Expr]) -> Expr:
        """``sum(M)``: all entries, a scalar; ``sum(M, 1)``: each column (1×c); ``sum(M, 2)``: each row (r×1)."""
        if len(args) not in (1, 2):
            raise FormulaError(f"sum takes a matrix and an optional dimension 1 or 2, not {len(args)} arguments "
                               f"(position {node.pos})")
        value = args[0]
        shape = shape_of(value)
        if len(args) == 1:
            return SumEntries(value) if shape else value
        if args[1] not in (1, 2):
            raise FormulaError(f"the dimension of sum is 1 (down each column) or 2 (along each row), "
                               f"not {_show(node.args[1])} (position {node.pos})")
        if shape is None:
            raise ShapeError(f"sum(..., {args[1]}) needs a matrix, and {_show(node.args[0])} is a scalar")
        rows, cols = shape
        return _times(_ones(1, rows), value) if args[1] == 1 else _times(value, _ones(cols, 1))

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
        """An entry-by-entry sum or product; a scalar or a 1×1 matrix stands for every entry."""
        left_shape, right_shape = shape_of(left), shape_of(right)
        if left_shape != right_shape:
            if left_shape == (1, 1) and right_shape is not None:
                left, left_shape = SumEntries(left), None
            elif right_shape == (1, 1) and left_shape is not None:
                right, right_shape = SumEntries(right), None
            elif left_shape is not None and right_shape is not None:
                advice = " (for a matrix product write @)" if symbol == "*" and left_shape[1] == right_shape[0] else ""
                raise ShapeError(
                    f"'{symbol}' works entry by entry, but {_show(node.left)} is {shape_text(left_shape)} "
                    f"and {_show(node.right)} is {shape_text(right_shape)}{advice}"
                )
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


@lru_cache(maxsize=256)
def _ones(rows: Expr, cols: Expr) -> Expr:
    """A matrix of ones, made once per shape: SymPy's constructor compares sizes symbolically, slowly."""
    return OneMatrix(rows, cols)


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
    return value


def parse_matrix(text: str, derivation: Derivation, learning_rate: sympy.Symbol | None = None) -> Expr:
    """Parse ``text`` into a SymPy expression over ``derivation``'s quantities."""
    return MatrixBuilder(Vocabulary.of(derivation), learning_rate).build(ast.parse(text))
