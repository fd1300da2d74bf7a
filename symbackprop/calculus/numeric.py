"""Numeric values of the library's expressions: the reference the tests trust.

:func:`evaluate` walks an expression with NumPy, computing every named
intermediate (``z``, ``a``, ``delta``) from its definition, so the caller gives
only inputs, targets and parameters.  It checks every array's shape against
the symbol it binds, binding symbolic sizes (``n_1``, ``m``) on first use.  It
is written for clarity, not speed: generated code is the fast path.
"""

from __future__ import annotations

from functools import lru_cache, reduce
from typing import Callable, Mapping

import numpy as np
import sympy
from sympy import (
    Add,
    Basic,
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixSymbol,
    Mul,
    OneMatrix,
    Pow,
    Trace,
    Transpose,
    ZeroMatrix,
)

from .. import naming
from . import runtime
from ..model.activations import ACTIVATIONS, MATH_FUNCTIONS
from ..errors import ShapeError, SymbackpropError
from .expressions import Adjoint, Broadcast, Elementwise, LogSoftmax, Named, Softmax, SumEntries
from .trees import walk

__all__ = ["evaluate", "Evaluator"]

_REGISTERED = {a.name: a for a in (*ACTIVATIONS.values(), *MATH_FUNCTIONS.values()) if a.runtime}


@lru_cache(maxsize=None)
def _lambdified(function: sympy.Lambda) -> Callable:
    (variable,) = function.variables
    # the expression was built by symbackprop from a whitelisted parse, never from user text
    compiled = sympy.lambdify(variable, function.expr, modules="numpy")
    return lambda x: np.broadcast_to(compiled(x), np.shape(x)).astype(np.result_type(x, np.float32))


def _numeric_function(node: Elementwise) -> Callable:
    registered = _REGISTERED.get(node.name)
    if registered is not None and registered.function == node.definition and node.order <= 1:
        return getattr(runtime, registered.runtime + ("_grad" if node.order else ""))
    return _lambdified(node.scalar_function())


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


class Evaluator:
    """Evaluates expressions at one set of values, remembering shared subexpressions."""

    def __init__(self, values: Mapping[str, object]) -> None:
        if not isinstance(values, Mapping):
            raise SymbackpropError(f"values must be a mapping of names to arrays, not {type(values).__name__}")
        self.values = dict(values)
        self.sizes: dict[sympy.Symbol, int] = {}
        self.bound_by: dict[sympy.Symbol, str] = {}
        self.memo: dict[Basic, object] = {}
        for name, value in self.values.items():
            if not isinstance(name, str):
                raise SymbackpropError(f"values are keyed by names such as 'X' or 'W1', not {name!r}")
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                self.sizes[sympy.Symbol(name, integer=True, positive=True)] = int(value)
                self.bound_by[sympy.Symbol(name, integer=True, positive=True)] = "the values given"
        self.bound: set[Basic] = set()

    def __call__(self, root: Basic):
        """The value of ``root``: its parts are computed children first, without recursion,
        so a network of any depth evaluates."""
        if root in self.memo:
            return self.memo[root]
        if root not in self.bound:
            self.bind(root)
        stack: list[tuple[Basic, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if node in self.memo:
                continue
            if ready:
                self.memo[node] = self._evaluate(node)
                continue
            stack.append((node, True))
            stack.extend((child, False) for child in _operands(node) if child not in self.memo)
        return self.memo[root]

    # --- sizes -------------------------------------------------------------------------

    def dimension(self, size, owner: str) -> int | None:
        """The number a size stands for, or None when it is still unbound."""
        if size.is_Integer:
            return int(size)
        if size in self.sizes:
            return self.sizes[size]
        if size.is_Symbol:
            return None
        bound = size.xreplace({s: sympy.Integer(v) for s, v in self.sizes.items()})
        if bound.is_Integer:
            return int(bound)
        raise ShapeError(f"{owner}: cannot determine the size {size}")

    def shape_of(self, expr, owner: str) -> tuple[int, int]:
        shape = tuple(self.dimension(d, owner) for d in expr.shape)
        if None in shape:
            unbound = [str(d) for d, v in zip(expr.shape, shape) if v is None]
            raise ShapeError(f"{owner}: the size {', '.join(unbound)} is not known; give it in the values")
        return shape  # type: ignore[return-value]

    def _symbol(self, node: MatrixSymbol) -> np.ndarray:
        name = node.name
        if name not in self.values:
            given = ", ".join(sorted(self.values)) or "nothing"
            raise SymbackpropError(f"no value for {name}; values were given for {given}")
        try:
            array = np.asarray(self.values[name])
        except (ValueError, TypeError) as err:
            raise SymbackpropError(f"{name} is not an array of numbers ({err})") from None
        if array.dtype.kind not in "fiub":
            raise SymbackpropError(f"{name} must hold numbers, not {array.dtype}")
        if array.dtype.kind != "f":
            array = array.astype(np.float64)
        if array.ndim < 2 and array.size == 1 and node.shape in ((1, 1),):
            array = array.reshape(1, 1)
        expected = node.shape
        if array.ndim != 2:
            raise ShapeError(f"{name}: expected a 2-d array of shape {_shape_text(expected)}, given shape {array.shape}")
        for size, given in zip(expected, array.shape):
            known = self.dimension(size, name)
            if known is None:
                self.sizes[size] = given
                self.bound_by[size] = name
            elif known != given:
                expected_now = tuple(d if (v := self.dimension(d, name)) is None else v for d in expected)
                source = f" ({size} = {known} from {self.bound_by[size]})" if size in self.bound_by else ""
                raise ShapeError(f"{name}: expected shape {_shape_text(expected_now)}{source}, given {array.shape}")
        return array

    def bind(self, expr: Basic) -> None:
        """Check every matrix ``expr`` uses in the reading order X, W1, b1, …, Y, so a
        size conflict is reported against the quantity a reader expects."""
        self.bound.add(expr)
        symbols = {node for node in walk(expr, into_names=True) if isinstance(node, MatrixSymbol)}

        def reading_order(symbol: MatrixSymbol):
            split = naming.split_layer_name(symbol.name)
            if symbol.name == naming.INPUT:
                return (0, 0, "")
            if split is not None:
                return (1, split[1], split[0])
            return (2 if symbol.name == naming.TARGET else 3, 0, symbol.name)

        for symbol in sorted(symbols, key=reading_order):
            if symbol not in self.memo:
                self.memo[symbol] = self._symbol(symbol)

    # --- the walk ------------------------------------------------------------------------

    def _evaluate(self, node: Basic):
        if isinstance(node, MatrixSymbol):
            return self._symbol(node)
        if isinstance(node, Named):
            return self(node.definition)
        if isinstance(node, MatMul):
            scalars = [self(a) for a in node.args if not a.is_Matrix]
            matrices = [self(a) for a in node.args if a.is_Matrix]
            product = reduce(np.matmul, matrices)
            return product * np.prod(scalars) if scalars else product
        if isinstance(node, MatAdd):
            return reduce(np.add, (self(a) for a in node.args))
        if isinstance(node, Transpose):
            return self(node.arg).T
        if isinstance(node, HadamardProduct):
            return reduce(np.multiply, (self(a) for a in node.args))
        if isinstance(node, HadamardPower):
            return np.power(self(node.args[0]), self(node.args[1]))
        if isinstance(node, Elementwise):
            return _numeric_function(node)(self(node.arg))
        if isinstance(node, Softmax):
            return runtime.softmax(self(node.arg), axis=node.axis)
        if isinstance(node, LogSoftmax):
            return runtime.log_softmax(self(node.arg), axis=node.axis)
        if isinstance(node, Broadcast):
            return np.broadcast_to(self(node.vector), self.shape_of(node, "a bias"))
        if isinstance(node, SumEntries):
            return np.sum(self(node.arg))
        if isinstance(node, Trace):
            return np.trace(self(node.arg))
        if isinstance(node, OneMatrix):
            return np.ones(self.shape_of(node, "a matrix of ones"))
        if isinstance(node, ZeroMatrix):
            return np.zeros(self.shape_of(node, "a zero matrix"))
        if isinstance(node, Identity):
            return np.eye(self.shape_of(node, "an identity matrix")[0])
        if isinstance(node, Inverse):
            return np.linalg.inv(self(node.arg))
        if isinstance(node, Determinant):
            return np.linalg.det(self(node.arg))
        if isinstance(node, MatPow):
            return np.linalg.matrix_power(self(node.args[0]), int(node.args[1]))
        if isinstance(node, Adjoint):
            raise SymbackpropError(f"{node} is a placeholder in a derivation step, not a value")
        if isinstance(node, Add):
            return reduce(np.add, (self(a) for a in node.args))
        if isinstance(node, Mul):
            return reduce(np.multiply, (self(a) for a in node.args))
        if isinstance(node, Pow):
            return np.power(self(node.args[0]), self(node.args[1]))
        if isinstance(node, sympy.log):
            return np.log(self(node.args[0]))
        if isinstance(node, sympy.exp):
            return np.exp(self(node.args[0]))
        if node.is_number:  # 2, 1/3, but also pi and e from a custom activation
            return float(node)
        if isinstance(node, sympy.Symbol):
            if node in self.sizes:
                return self.sizes[node]
            if node.name in self.values:
                value = self.values[node.name]
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise SymbackpropError(f"{node.name} must be a real number, not {value!r}")
                return float(value)
            raise SymbackpropError(f"no value for the symbol {node.name}")
        raise SymbackpropError(f"cannot evaluate {type(node).__name__} ({node})")


def _operands(node: Basic) -> tuple[Basic, ...]:
    """The parts of ``node`` whose values its own value is computed from."""
    if isinstance(node, Named):
        return (node.definition,)
    if isinstance(node, (Elementwise, Softmax, LogSoftmax, SumEntries)):
        return (node.arg,)
    if isinstance(node, Broadcast):
        return (node.vector,)
    if isinstance(node, (MatrixSymbol, OneMatrix, ZeroMatrix, Identity, sympy.Symbol, Adjoint)) or not node.args:
        return ()
    return tuple(a for a in node.args if isinstance(a, sympy.Expr))


def evaluate(expr: Basic, values: Mapping[str, object]):
    """The numeric value of ``expr`` at ``values``.

    ``values`` maps ``"X"``, ``"Y"``, ``"W1"``, ``"b1"``, … to arrays and size
    names (``"m"``) or scalar symbols (``"lambda"``) to numbers.  Named
    intermediates are computed from their definitions.  A scalar expression
    gives a float, a matrix expression a 2-d array.

    >>> import numpy as np
    >>> from symbackprop import Dense, Network, derive
    >>> d = derive(Network(1, [Dense(1, bias=False)]))
    >>> round(float(evaluate(d.gradients["W1"], {"X": [[5.7]], "Y": [[50.1]], "W1": [[-23.1]]})[0, 0]), 6)
    -2072.178
    """
    if not isinstance(expr, Basic):
        raise SymbackpropError(
            f"evaluate takes a SymPy expression, not {type(expr).__name__}; "
            "to evaluate a quantity by name use Derivation.evaluate")
    result = Evaluator(values)(expr)
    if np.ndim(result) == 0:
        return float(result)
    return result
