"""Formulas over matrices of given shapes, for ``symbackprop grad``: no network needed.

``--shapes X=n,n A=n,n x=n`` names the matrices (a single size is a column
vector) and their sizes; every other size is an error.  The formula language is
the one of ``symbackprop check`` (``docs/formula-language.md``), parsed by
:func:`~symbackprop.language.syntax.parse` and built by a
:class:`~symbackprop.language.matrix.MatrixBuilder`, with the functions general
matrix calculus needs:

* ``det(M)``, ``inv(M)``, ``trace(M)``/``tr(M)``, ``diag(v)`` (a diagonal matrix) or
  ``diag(M)`` (the diagonal of a square matrix, a vector), ``kron(A, B)``;
* ``log``, ``exp``, ``sqrt``, ``abs``, ``sin``, ``cos``, ``tanh`` of a scalar (``log(det(X))``,
  ``sqrt(x' x)``) or entry by entry of a matrix (``log(sum(exp(x)))``).

>>> shapes = parse_shapes(["X=n,n", "A=n,n"])
>>> parse_general("log(det(X)) + trace(A @ X)", shapes)
log(Determinant(X)) + Trace(A*X)
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Iterable, Mapping

import sympy
from sympy import DiagMatrix, DiagonalOf, Expr, KroneckerProduct, Lambda, MatrixSymbol

from ..calculus.expressions import SCALAR_VARIABLE, Elementwise
from ..errors import FormulaError, ShapeError, SpecError
from ..model.activations import ACTIVATIONS
from . import syntax as ast
from .matrix import MatrixBuilder, Vocabulary, shape_of, shape_text

__all__ = ["parse_shapes", "general_vocabulary", "GeneralBuilder", "parse_general", "FUNCTIONS"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_SIZE = re.compile(r"^(?:[1-9][0-9]{0,3}|[A-Za-z][A-Za-z0-9]*)$")

#: scalar functions a formula may apply to a scalar, or entry by entry to a matrix
FUNCTIONS: Mapping[str, sympy.FunctionClass] = MappingProxyType({
    "log": sympy.log, "exp": sympy.exp, "sqrt": sympy.sqrt, "abs": sympy.Abs,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "tanh": sympy.tanh,
})


def parse_shapes(items: Iterable[str]) -> dict[str, MatrixSymbol]:
    """``["X=n,n", "x=n", "b=1,n"]`` → MatrixSymbols; sizes are whole numbers or names.

    >>> parse_shapes(["x=n"])["x"].shape
    (n, 1)
    """
    matrices: dict[str, MatrixSymbol] = {}
    for item in items:
        name, equals, dims = item.partition("=")
        name = name.strip()
        sizes = [d.strip() for d in dims.split(",")]
        if not equals or not _NAME.match(name) or not 1 <= len(sizes) <= 2 or not all(_SIZE.match(d) for d in sizes):
            raise SpecError(f"--shapes takes NAME=ROWS,COLS or NAME=ROWS (a column vector), such as X=n,n or x=3, "
                            f"not {item!r}")
        if name in matrices:
            raise SpecError(f"--shapes gives {name} twice")
        rows, cols = (*sizes, "1") if len(sizes) == 1 else sizes
        matrices[name] = MatrixSymbol(name, _size(rows), _size(cols))
    if not matrices:
        raise SpecError("--shapes names no matrix; give NAME=ROWS,COLS for each, such as --shapes X=n,n")
    return matrices


def _size(text: str) -> Expr:
    return sympy.Integer(int(text)) if text.isdigit() else sympy.Symbol(text, integer=True, positive=True)


def general_vocabulary(matrices: Mapping[str, MatrixSymbol]) -> Vocabulary:
    """What a general formula may mention: the matrices, their size names, the activations."""
    sizes = [sympy.Integer(1)]
    scalars: dict[str, Expr] = {}
    for matrix in matrices.values():
        for dim in matrix.shape:
            if dim not in sizes:
                sizes.append(dim)
            if dim.is_Symbol:
                if dim.name in matrices:
                    raise SpecError(f"{dim.name} is both a matrix and a size in --shapes")
                scalars[dim.name] = dim
    functions = {name: a for name, a in ACTIVATIONS.items() if name not in FUNCTIONS}
    return Vocabulary(quantities=MappingProxyType(dict(matrices)), scalars=MappingProxyType(scalars),
                      sizes=tuple(sizes), learning_rates=(), functions=MappingProxyType(functions),
                      depth=0, axis=0)


class GeneralBuilder(MatrixBuilder):
    """A :class:`MatrixBuilder` that also knows det, inv, diag, kron and scalar functions."""

    def _call(self, node: ast.Call, args: list[Expr]) -> Expr:
        func = node.func
        special = {"det": self._det, "inv": self._inverse, "diag": self._diag, "kron": self._kron}.get(func)
        if special is not None or func in FUNCTIONS:
            if node.derivative:
                raise FormulaError(f"{func} has no derivative mark here (position {node.pos})")
            return special(node, args) if special is not None else self._function_of(node, args)
        return super()._call(node, args)

    def _diag(self, node: ast.Call, args: list[Expr]) -> Expr:
        if len(args) != 1 or shape_of(args[0]) is None:
            raise FormulaError(f"diag takes one vector or square matrix (position {node.pos})")
        rows, cols = args[0].shape
        if cols == 1 or rows == 1:
            return DiagMatrix(args[0])
        if rows != cols:
            raise ShapeError(f"diag of a matrix needs a square one, and {ast.unparse(node.args[0])} is "
                             f"{shape_text(args[0].shape)}")
        return DiagonalOf(args[0])

    def _kron(self, node: ast.Call, args: list[Expr]) -> Expr:
        if len(args) != 2 or any(shape_of(a) is None for a in args):
            raise FormulaError(f"kron takes two matrices, kron(A, B) (position {node.pos})")
        return KroneckerProduct(*args)

    def _function_of(self, node: ast.Call, args: list[Expr]) -> Expr:
        if len(args) != 1:
            raise FormulaError(f"{node.func} takes one argument, not {len(args)} (position {node.pos})")
        (arg,) = args
        function = FUNCTIONS[node.func]
        shape = shape_of(arg)
        if shape is None or shape == (1, 1):
            return function(arg)  # a scalar, or the scalar a 1×1 matrix holds
        return Elementwise(node.func, Lambda(SCALAR_VARIABLE, function(SCALAR_VARIABLE)), arg)


def parse_general(text: str, matrices: Mapping[str, MatrixSymbol]) -> Expr:
    """The SymPy expression of ``text`` over ``matrices`` (from :func:`parse_shapes`)."""
    return GeneralBuilder(general_vocabulary(matrices)).build(ast.parse(text))
