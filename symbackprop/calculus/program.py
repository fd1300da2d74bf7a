"""A gradient as a standalone NumPy function, and its finite-difference check.

What the ``symbackprop grad`` command prints for one expression: the code of
``def grad_X(A, X): ...`` (importing only NumPy, with any helper it calls), and
how far the gradient is from central finite differences at random inputs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from ..errors import SymbackpropError
from ..printing.numpy import NumPyCodePrinter
from . import runtime
from .numeric import evaluate
from .trees import walk

__all__ = ["numpy_function", "finite_difference_check", "FiniteDifferenceCheck", "random_inputs"]


def _inputs(expr: Basic, wrt: Basic) -> list[str]:
    names = {node.name for node in walk(expr) if isinstance(node, MatrixSymbol)} | {wrt.name}
    return sorted(names, key=lambda name: (name != wrt.name, name))


def numpy_function(result: Basic, expr: Basic, wrt: MatrixSymbol, name: str | None = None) -> str:
    """Python source of a NumPy function that computes ``result`` (the gradient of ``expr``).

    Its arguments are the matrices ``expr`` mentions, ``wrt`` first; size symbols
    the code needs are read from their shapes.

    >>> from sympy import MatrixSymbol, Trace
    >>> A, X = MatrixSymbol("A", 3, 3), MatrixSymbol("X", 3, 3)
    >>> print(numpy_function(A.T, Trace(X * A), X))
    import numpy as np
    <BLANKLINE>
    <BLANKLINE>
    def grad_X(X, A):
        return A.T
    """
    printer = NumPyCodePrinter()
    try:
        body = printer.full(result) if getattr(result, "is_Matrix", False) else printer._print(result)
    except NotImplementedError as err:  # SymPy's PrintMethodNotImplementedError
        raise SymbackpropError(f"symbackprop cannot write NumPy code for {result}: {err}") from None
    arguments = _inputs(expr, wrt)
    lines = ["import numpy as np"]
    for helper in printer.helpers:
        lines += ["", "", inspect.getsource(getattr(runtime, helper)).rstrip()]
    for helper, (variable, expression) in printer.custom.items():
        code = NumPyCodePrinter().doprint(expression)
        lines += ["", "", f"def {helper}({variable}):", f"    return {code}"]
    sizes, scalars = _size_lines(expr, printer)
    signature = ", ".join([*arguments, *scalars])
    lines += ["", "", f"def {name or 'grad_' + wrt.name}({signature}):", *sizes, f"    return {body}"]
    return "\n".join(lines)


def _size_lines(expr: Basic, printer: NumPyCodePrinter) -> tuple[list[str], list[str]]:
    """``k = X.shape[0]`` for each size symbol the code reads, taken from a matrix that has it;
    and the scalar symbols no shape gives, which become arguments."""
    lines, scalars = [], []
    matrices = sorted({node for node in walk(expr) if isinstance(node, MatrixSymbol)}, key=lambda s: s.name)
    for printed, symbol in printer.symbols.items():
        owner = next((m for m in matrices if symbol in m.shape), None)
        if owner is None:
            scalars.append(printed)
        else:
            lines.append(f"    {printed} = {owner.name}.shape[{owner.shape.index(symbol)}]")
    return lines, scalars


def random_inputs(expr: Basic, sizes: Mapping[str, int], seed: int = 0) -> dict:
    """Positive random values for every matrix ``expr`` mentions, square ones well conditioned."""
    rng = np.random.default_rng(seed)
    values: dict = dict(sizes)
    for symbol in sorted({n for n in walk(expr) if isinstance(n, MatrixSymbol)}, key=lambda s: s.name):
        shape = tuple(_size(d, sizes) for d in symbol.shape)
        array = rng.uniform(0.2, 1.0, size=shape)
        if shape[0] == shape[1] and shape[0] > 1:
            array += 2 * np.eye(shape[0])
        values[symbol.name] = array
    return values


def _size(dimension, sizes: Mapping[str, int]) -> int:
    bound = sympy.sympify(dimension).xreplace(
        {s: sympy.Integer(sizes[s.name]) for s in sympy.sympify(dimension).free_symbols if s.name in sizes})
    if not bound.is_Integer:
        missing = ", ".join(sorted(s.name for s in bound.free_symbols))
        raise SymbackpropError(f"the size {missing} has no value; give it, as in --sizes {missing}=3")
    return int(bound)


@dataclass(frozen=True)
class FiniteDifferenceCheck:
    """The gradient against central differences along a random direction, at random inputs."""

    analytic: float
    numeric: float

    @property
    def relative_error(self) -> float:
        return abs(self.analytic - self.numeric) / max(abs(self.numeric), 1e-12)

    @property
    def passed(self) -> bool:
        return abs(self.analytic - self.numeric) <= 1e-6 * max(abs(self.numeric), 1.0)


def finite_difference_check(expr: Basic, result: Basic, wrt: MatrixSymbol, values: Mapping[str, object],
                            seed: int = 1) -> FiniteDifferenceCheck:
    """⟨grad, D⟩ against (f(X + hD) − f(X − hD)) / 2h for a random direction D, h = 1e-6."""
    rng = np.random.default_rng(seed)
    point = np.asarray(values[wrt.name], dtype=float)
    direction = rng.normal(size=point.shape)
    gradient = np.broadcast_to(np.asarray(evaluate(result, values), dtype=float), point.shape)

    def at(step: float) -> float:
        return float(np.asarray(evaluate(expr, {**values, wrt.name: point + step * direction})).reshape(-1)[0])

    h = 1e-6
    return FiniteDifferenceCheck(float(np.sum(gradient * direction)), (at(h) - at(-h)) / (2 * h))
