"""Numeric values of the library's expressions: the reference the tests trust.

:func:`evaluate` walks an expression with NumPy, computing every named
intermediate (``z``, ``a``, ``delta``) from its definition, so the caller gives
only inputs, targets and parameters.  It checks every array's shape against
the symbol it binds, binding symbolic sizes (``n_1``, ``m``) on first use, by
name (SymPy's plain ``symbols("k")`` is the ``k`` of the values).  It is
written for clarity, not speed: generated code is the fast path.

How each class is computed is one entry of :data:`EVALUATORS`, a table keyed
by class like the chain rule's :data:`~.rules.VJP` (looked up along the class's
MRO); ``tests/test_completeness.py`` fails for a class with a rule and no entry.
The walk is iterative: operands are computed before the nodes that use them.
"""

from __future__ import annotations

from functools import lru_cache, reduce
from typing import Callable, Mapping

import numpy as np
import sympy
from sympy import (
    Add,
    Basic,
    DiagMatrix,
    DiagonalOf,
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    KroneckerProduct,
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
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from .. import naming
from . import runtime
from ..model.activations import ACTIVATIONS, MATH_FUNCTIONS
from ..errors import ShapeError, SymbackpropError
from .expressions import (
    Adjoint,
    Broadcast,
    Constant,
    Deviation,
    Elementwise,
    Normalize,
    KroneckerAdjoint,
    LogSoftmax,
    Named,
    Softmax,
    SumEntries,
    UnitMatrix,
)
from .trees import walk

__all__ = ["evaluate", "Evaluator", "EVALUATORS"]

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
        # a size is known by its name, whatever its assumptions: symbols("k") is the k of the values
        by_name = {s.name: sympy.Integer(v) for s, v in self.sizes.items()}
        if size.is_Symbol:
            return int(by_name[size.name]) if size.name in by_name else None
        bound = size.xreplace({s: by_name[s.name] for s in size.free_symbols if s.name in by_name})
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
        """The value of ``node``, its operands already computed: the entry of :data:`EVALUATORS`
        for its class (or the nearest base class)."""
        for cls in type(node).__mro__:
            function = EVALUATORS.get(cls)
            if function is not None:
                return function(self, node)
        if node.is_number:  # 2, 1/3, but also pi and e from a custom activation
            return float(node)
        raise SymbackpropError(f"cannot evaluate {type(node).__name__} ({node})")

    def scalar(self, node: Basic) -> object:
        """The value of a scalar operand; a 1×1 matrix stands for its one entry."""
        value = self(node)
        if isinstance(value, np.ndarray) and value.size == 1:
            return value.reshape(())[()]
        return value

    def symbol_value(self, node: sympy.Symbol):
        if node in self.sizes:
            return self.sizes[node]
        size = self.dimension(node, node.name)
        if size is not None:
            return size
        if node.name in self.values:
            value = self.values[node.name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise SymbackpropError(f"{node.name} must be a real number, not {value!r}")
            return float(value)
        raise SymbackpropError(f"no value for the symbol {node.name}")

    def index(self, node: Basic, owner: str) -> int:
        """An entry's row or column index: a number or a symbol given in the values."""
        value = self(node)
        if float(value) != int(value):
            raise SymbackpropError(f"{owner}: the index {node} = {value} is not a whole number")
        return int(value)


#: the numeric evaluation of each expression class, given an :class:`Evaluator` whose memo
#: holds the node's operands (see :func:`_operands`); looked up along the class's MRO
EVALUATORS: dict[type, Callable[[Evaluator, Basic], object]] = {}


def _matmul(ev: Evaluator, node: MatMul):
    scalars = [ev.scalar(a) for a in node.args if not a.is_Matrix]
    matrices = [ev(a) for a in node.args if a.is_Matrix]
    product = reduce(np.matmul, matrices)
    return product * np.prod(scalars) if scalars else product


def _adjoint(ev: Evaluator, node: Adjoint):
    raise SymbackpropError(f"{node} is a placeholder in a derivation step, not a value")


def _matpow(ev: Evaluator, node: MatPow):
    base, exponent = ev(node.args[0]), ev.scalar(node.args[1])
    if float(exponent).is_integer():
        return np.linalg.matrix_power(base, int(exponent))
    if base.shape == (1, 1):
        return np.power(base, exponent)
    raise SymbackpropError(f"cannot evaluate the fractional matrix power {node}")


def _elementwise_apply(ev: Evaluator, node: ElementwiseApplyFunction):
    (variable,) = node.function.variables
    return _lambdified(sympy.Lambda(variable, node.function.expr))(ev(node.expr))


def _function(ev: Evaluator, node: sympy.Function):
    """A scalar function SymPy knows (sin, tanh, ...), through NumPy."""
    variables = sympy.symbols(f"_t0:{len(node.args)}")
    compiled = _lambdified_scalar(sympy.Lambda(variables, node.func(*variables)))
    return compiled(*(ev.scalar(a) for a in node.args))


def _unit(ev: Evaluator, node: UnitMatrix):
    rows, cols = ev.shape_of(node, "a unit matrix")
    unit = np.zeros((rows, cols))
    unit[ev.index(node.row, "a unit matrix"), ev.index(node.col, "a unit matrix")] = 1.0
    return unit


def _kronecker_adjoint(ev: Evaluator, node: KroneckerAdjoint):
    adjoint, other = ev(node.adjoint), ev(node.other)
    m, n = other.shape
    p, q = adjoint.shape[0] // m, adjoint.shape[1] // n
    blocks = adjoint.reshape(p, m, q, n)
    if node.side == 0:  # A's share: each m×n block contracted with B
        return np.einsum("ikjl,kl->ij", blocks, other)
    p, q = other.shape  # B's share: the blocks weighted by A's entries
    m, n = adjoint.shape[0] // p, adjoint.shape[1] // q
    return np.einsum("ikjl,ij->kl", adjoint.reshape(p, m, q, n), other)


def _matrix_element(ev: Evaluator, node: MatrixElement):
    parent = ev(node.parent)
    return parent[ev.index(node.i, str(node)), ev.index(node.j, str(node))]


EVALUATORS.update({
    MatrixSymbol: lambda ev, node: ev._symbol(node),
    Named: lambda ev, node: ev(node.definition),
    MatMul: _matmul,
    MatAdd: lambda ev, node: reduce(np.add, (ev(a) for a in node.args)),
    Transpose: lambda ev, node: ev(node.arg).T,
    HadamardProduct: lambda ev, node: reduce(np.multiply, (ev(a) for a in node.args)),
    HadamardPower: lambda ev, node: np.power(ev(node.args[0]), ev.scalar(node.args[1])),
    Elementwise: lambda ev, node: _numeric_function(node)(ev(node.arg)),
    ElementwiseApplyFunction: _elementwise_apply,
    Softmax: lambda ev, node: (runtime.causal_softmax if node.causal else runtime.softmax)(ev(node.arg), axis=node.axis),
    Constant: lambda ev, node: ev.scalar(node.value),
    Normalize: lambda ev, node: (ev(node.arg) - ev(node.mean)) / ev(node.deviation),
    Deviation: lambda ev, node: runtime.deviation(ev(node.arg), ev(node.mean), node.axis, float(node.epsilon)),
    LogSoftmax: lambda ev, node: runtime.log_softmax(ev(node.arg), axis=node.axis),
    Broadcast: lambda ev, node: np.broadcast_to(ev(node.vector), ev.shape_of(node, "a bias")),
    SumEntries: lambda ev, node: np.sum(ev(node.arg)),
    Trace: lambda ev, node: np.trace(ev(node.arg)),
    OneMatrix: lambda ev, node: np.ones(ev.shape_of(node, "a matrix of ones")),
    ZeroMatrix: lambda ev, node: np.zeros(ev.shape_of(node, "a zero matrix")),
    Identity: lambda ev, node: np.eye(ev.shape_of(node, "an identity matrix")[0]),
    UnitMatrix: _unit,
    Inverse: lambda ev, node: np.linalg.inv(ev(node.arg)),
    Determinant: lambda ev, node: np.linalg.det(ev(node.arg)),
    MatPow: _matpow,
    KroneckerProduct: lambda ev, node: reduce(np.kron, (ev(a) for a in node.args)),
    DiagMatrix: lambda ev, node: np.diagflat(ev(node.args[0])),
    DiagonalOf: lambda ev, node: np.diagonal(ev(node.arg)).reshape(-1, 1).copy(),
    MatrixElement: _matrix_element,
    KroneckerAdjoint: _kronecker_adjoint,
    Adjoint: _adjoint,
    Add: lambda ev, node: reduce(np.add, (ev.scalar(a) for a in node.args)),
    Mul: lambda ev, node: reduce(np.multiply, (ev.scalar(a) for a in node.args)),
    Pow: lambda ev, node: np.power(np.float64(ev.scalar(node.args[0])), ev.scalar(node.args[1])),
    sympy.log: lambda ev, node: np.log(ev.scalar(node.args[0])),
    sympy.exp: lambda ev, node: np.exp(ev.scalar(node.args[0])),
    sympy.Abs: lambda ev, node: np.abs(ev.scalar(node.args[0])),
    sympy.KroneckerDelta: lambda ev, node: float(ev.index(node.args[0], str(node)) == ev.index(node.args[1], str(node))),
    sympy.Function: _function,
    sympy.Symbol: lambda ev, node: ev.symbol_value(node),
})


@lru_cache(maxsize=None)
def _lambdified_scalar(function: sympy.Lambda) -> Callable:
    # a SymPy function class applied to fresh symbols, never user text
    return sympy.lambdify(function.variables, function.expr, modules="numpy")


#: classes whose value is computed from no operand (their arguments are names and sizes)
_NO_OPERANDS = (MatrixSymbol, OneMatrix, ZeroMatrix, Identity, UnitMatrix, sympy.Symbol, Adjoint, sympy.Lambda)


def _operands(node: Basic) -> tuple[Basic, ...]:
    """The parts of ``node`` whose values its own value is computed from."""
    if isinstance(node, Named):
        return (node.definition,)
    if isinstance(node, (Elementwise, Softmax, LogSoftmax, SumEntries)):
        return (node.arg,)
    if isinstance(node, ElementwiseApplyFunction):
        return (node.expr,)
    if isinstance(node, Broadcast):
        return (node.vector,)
    if isinstance(node, MatrixElement):
        return (node.parent, *(a for a in node.args[1:] if not a.is_Integer))
    if isinstance(node, _NO_OPERANDS) or not node.args:
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
