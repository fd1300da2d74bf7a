"""NumPy code for symbackprop's matrix expressions.

:class:`NumPyCodePrinter` subclasses SymPy's ``NumPyPrinter`` with a
``_print_<Class>`` method for each expression class the derivations use: a
matrix product prints as ``@``, a Hadamard product as ``*``, a transpose as
``.T``, a broadcast bias as the bare vector (NumPy broadcasts it), a product
with a matrix of ones as a sum along an axis, and an elementwise function as a
call of the stable helper of :mod:`symbackprop.calculus.runtime` that implements it.

>>> from sympy import MatrixSymbol, OneMatrix, Symbol
>>> from symbackprop.calculus.expressions import Broadcast
>>> m = Symbol("m", integer=True, positive=True)
>>> W, X, b = MatrixSymbol("W1", 2, 3), MatrixSymbol("X", 3, m), MatrixSymbol("b1", 2, 1)
>>> to_numpy(W * X + Broadcast(b, 2, m))
'W1 @ X + b1'
>>> to_numpy(2 * (W * X) * OneMatrix(m, 1))
'2 * np.sum(W1 @ X, axis=1, keepdims=True)'

NumPy broadcasting means some printed expressions hold fewer rows or columns
than their symbolic shape (a bias vector, a row of column sums); such a piece
is "narrow".  It is correct wherever it meets a full-shaped operand (a sum, a
Hadamard product); where the shape matters (an operand of ``@``, a total sum,
a whole right-hand side) the printer spreads it with ``np.broadcast_to``.
"""

from __future__ import annotations

from typing import Mapping

import sympy
from sympy import (
    HadamardPower,
    HadamardProduct,
    Identity,
    MatAdd,
    MatMul,
    MatrixSymbol,
    OneMatrix,
    Transpose,
    ZeroMatrix,
)
from sympy.printing.numpy import NumPyPrinter

from ..model.activations import ACTIVATIONS, MATH_FUNCTIONS, Activation, y
from ..calculus.expressions import SCALAR_VARIABLE, Broadcast, Constant, Deviation, Elementwise, Named, Normalize, Softmax

__all__ = ["NumPyCodePrinter", "to_numpy", "helper_name", "scaled", "is_negative_term", "REGISTERED"]

#: elementwise functions with a stable NumPy helper in :mod:`symbackprop.calculus.runtime`
REGISTERED: dict[str, Activation] = {a.name: a for a in (*ACTIVATIONS.values(), *MATH_FUNCTIONS.values()) if a.runtime}

# Python's operator precedence, as far as generated code needs it
_ATOM, _POWER, _UNARY, _PRODUCT, _SUM = 100, 60, 55, 50, 40


def helper_name(name: str, order: int) -> str:
    """The generated function for the ``order``-th derivative of ``name``: ``sigmoid``, ``sigmoid_grad``, ``phi_grad2``.

    >>> helper_name("tanh", 0), helper_name("tanh", 1), helper_name("phi", 2)
    ('tanh', 'tanh_grad', 'phi_grad2')
    """
    if order == 0:
        return name
    return f"{name}_grad" if order == 1 else f"{name}_grad{order}"


def registered_activation(node: Elementwise) -> Activation | None:
    """The registry entry ``node`` applies, when it has a runtime helper for that order."""
    entry = REGISTERED.get(node.name)
    if entry is not None and entry.function == node.definition and node.order <= 1:
        return entry
    return None


def scaled(coefficient, expr):
    """``coefficient · expr`` as one flat matrix product, built without SymPy's (slow) canonicalisation.

    >>> from sympy import MatrixSymbol, Symbol
    >>> A, B, lr = MatrixSymbol("A", 2, 2), MatrixSymbol("B", 2, 2), Symbol("lr")
    >>> scaled(-lr, 2 * A * B).args
    (-2*lr, A, B)
    """
    if isinstance(expr, MatMul):
        scalars = sympy.Mul(coefficient, *(a for a in expr.args if not a.is_Matrix))
        matrices = [a for a in expr.args if a.is_Matrix]
    else:
        scalars, matrices = sympy.sympify(coefficient), [expr]
    if scalars == 1 and len(matrices) == 1:
        return matrices[0]
    return MatMul(scalars, *matrices) if scalars != 1 else MatMul(*matrices)


def is_negative_term(term) -> bool:
    """A term printed after a minus sign: ``-Y``, ``-2 * A``, ``-lr * G``."""
    coefficient = term.args[0] if isinstance(term, (MatMul, sympy.Mul)) and term.args else term
    if getattr(coefficient, "is_Matrix", True):
        return False
    return bool(coefficient.could_extract_minus_sign())


class NumPyCodePrinter(NumPyPrinter):
    """Prints symbackprop's matrix expressions as NumPy code (``import numpy as np``).

    Settings:

    * ``outputs`` — maps a pre-activation ``z`` (a :class:`Named`) to its
      activation ``a = σ(z)``; an activation derivative with a textbook output
      form (``σ' = σ(1 − σ)``, ``tanh' = 1 − tanh²``) then prints through the
      stored ``a``, which saves computing σ again.

    While printing it records what the code needs: :attr:`names` (the matrix
    names read), :attr:`symbols` (scalar symbols such as sizes, by printed name), :attr:`helpers`
    (runtime helpers called) and :attr:`custom` (custom elementwise functions
    to define, as ``helper name → (variable, SymPy expression)``).
    """

    printmethod = "_symbackprop_numpy"
    _default_settings = {**NumPyPrinter._default_settings, "outputs": {}, "one_hot": {}}

    def __init__(self, settings: Mapping | None = None) -> None:
        super().__init__(dict(settings or {}))
        self.names: dict[str, None] = {}
        self.symbols: dict[str, sympy.Symbol] = {}
        self.helpers: dict[str, None] = {}
        self.custom: dict[str, tuple[sympy.Symbol, sympy.Expr]] = {}

    # --- modules: numpy is imported as np -------------------------------------------------

    def _handle_UnevaluatedExpr(self, expr):
        # symbackprop builds no UnevaluatedExpr; SymPy's version walks (and rebuilds) every expression printed
        return expr

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            return "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    # --- shape bookkeeping -----------------------------------------------------------------

    def is_full(self, expr) -> bool:
        """Whether the printed ``expr`` has all of its symbolic shape (see the module notes)."""
        if isinstance(expr, (MatrixSymbol, Named, Softmax)) or not getattr(expr, "is_Matrix", True):
            return True
        if isinstance(expr, (Broadcast, OneMatrix, ZeroMatrix)):
            return expr.shape == (1, 1)
        if isinstance(expr, Identity):
            return True  # printed as 1 only when 1×1
        if isinstance(expr, Elementwise):
            return self._output_form(expr) is not None or self.is_full(expr.arg)
        if isinstance(expr, (MatAdd, HadamardProduct)):
            return any(self.is_full(a) for a in expr.args)
        if isinstance(expr, (Transpose, HadamardPower)):
            return self.is_full(expr.args[0])
        if isinstance(expr, MatMul):
            factors = self._matmul_parts(expr)[1]
            if len(factors) == 1:
                return self.is_full(factors[0])
            # a sum over rows (leading ones) or columns (trailing ones) keeps one row or column
            rows = not isinstance(factors[0], OneMatrix) or factors[0].shape[0] == 1
            cols = not isinstance(factors[-1], OneMatrix) or factors[-1].shape[1] == 1
            return rows and cols
        return True

    def _shape(self, shape) -> str:
        return "(" + ", ".join(self._print(d) for d in shape) + ")"

    def full(self, expr) -> str:
        """``expr`` printed with its whole symbolic shape, spread by ``np.broadcast_to`` if narrow."""
        if self.is_full(expr):
            return self._print(expr)
        return f"{self._module_format('numpy.broadcast_to')}({self._print(expr)}, {self._shape(expr.shape)})"

    # --- operators ---------------------------------------------------------------------------

    def _precedence(self, expr) -> int:
        if isinstance(expr, Broadcast):  # printed as its vector
            return self._precedence(expr.vector)
        if isinstance(expr, Elementwise) and self._output_form(expr) is not None:
            return self._precedence(self._output_form(expr))
        if isinstance(expr, (MatAdd, sympy.Add)):
            return _SUM
        if isinstance(expr, MatMul):
            coefficient, factors = self._matmul_parts(expr)
            if coefficient == 1 and len(factors) > 1 and OneMatrix in (type(factors[0]), type(factors[-1])):
                return _ATOM  # printed as a call of np.sum
            if coefficient == 1 and self._embedding(factors) is not None:
                return _ATOM  # printed as a call of embed
        if isinstance(expr, Normalize):  # (x - mu) / sigma
            return _PRODUCT
        if isinstance(expr, Constant):  # printed as its value
            return self._precedence(expr.value)
        if isinstance(expr, (MatMul, HadamardProduct, sympy.Mul)) or (
            isinstance(expr, sympy.Rational) and not expr.is_Integer
        ):
            return _UNARY if is_negative_term(expr) else _PRODUCT
        if isinstance(expr, (HadamardPower, sympy.Pow)):
            return _POWER
        if getattr(expr, "is_number", False) and expr.is_negative:
            return _UNARY
        return _ATOM

    def _operand(self, expr, printed: str | None = None) -> str:
        """An operand of ``*`` or ``@``: anything but a name, a call or a number is parenthesised."""
        text = self._print(expr) if printed is None else printed
        return text if self._precedence(expr) == _ATOM else f"({text})"

    def _print_MatrixSymbol(self, expr) -> str:
        self.names[expr.name] = None
        return expr.name

    def _print_Named(self, expr) -> str:
        self.names[expr.name] = None
        return expr.name

    def _print_Symbol(self, expr) -> str:
        printed = super()._print_Symbol(expr)  # a Python keyword gets a suffix: lambda_
        self.symbols[printed] = expr
        return printed

    def _print_Pow(self, expr, rational=False) -> str:
        if expr.exp == -1:
            return f"1 / {self._operand(expr.base)}"
        return super()._print_Pow(expr, rational)

    def _print_Transpose(self, expr) -> str:
        return f"{self._operand(expr.arg)}.T"

    def _print_MatAdd(self, expr) -> str:
        terms = sorted(expr.args, key=is_negative_term)  # a − Y, not −Y + a
        out = ""
        for index, term in enumerate(terms):
            if index and is_negative_term(term):
                negated = scaled(-1, term)
                text = self._print(negated)
                out += f" - ({text})" if self._precedence(negated) <= _SUM else f" - {text}"
            else:
                out += (" + " if index else "") + self._print(term)
        return out

    def _matmul_parts(self, expr):
        """The scalar coefficient and the matrix factors, runs of ones merged and 1×1 ones dropped."""
        coefficient = sympy.Mul(*(a for a in expr.args if not a.is_Matrix))
        factors: list = []
        for factor in (a for a in expr.args if a.is_Matrix):
            if isinstance(factor, Identity) and factor.shape == (1, 1):
                factor = OneMatrix(1, 1)
            if factors and isinstance(factor, OneMatrix) and isinstance(factors[-1], OneMatrix):
                # 1 (p×q) 1 (q×r) = q · 1 (p×r)
                coefficient *= factor.shape[0]
                factor = OneMatrix(factors.pop().shape[0], factor.shape[1])
            factors.append(factor)
        if len(factors) > 1:
            factors = [f for f in factors if f.shape != (1, 1) or not isinstance(f, OneMatrix)] or factors[:1]
        return coefficient, factors

    def _sum_along(self, factors, axis: int | None) -> str:
        text = self._print_product_of(factors) if len(factors) > 1 else self.full(factors[0])
        keep = "" if axis is None else f", axis={axis}, keepdims=True"
        return f"{self._module_format('numpy.sum')}({text}{keep})"

    @staticmethod
    def product_operator(left) -> str:
        """``*`` when ``left`` has one column: an outer product by broadcasting is many times faster than a rank-1 GEMM."""
        return "*" if left.shape[1] == 1 else "@"

    def _print_product_of(self, factors) -> str:
        out = self._operand(factors[0], self.full(factors[0]))
        for left, right in zip(factors, factors[1:]):
            out += f" {self.product_operator(left)} {self._operand(right, self.full(right))}"
        return out

    def is_product(self, expr) -> bool:
        """Whether ``expr`` prints as a product of matrices (``@`` or outer ``*``), which makes a new full array."""
        if not isinstance(expr, MatMul):
            return False
        factors = self._matmul_parts(expr)[1]
        return len(factors) > 1 and not any(isinstance(f, OneMatrix) for f in factors) \
            and self._embedding(factors) is None

    def _embedding(self, factors) -> tuple | None:
        """``(helper, rest, X, axis, vocab)`` when the product is ``A X`` or ``G Xᵀ`` (rows: ``X A``, ``Xᵀ G``)
        for a one-hot input X, which code may be given as integer ids: printed as a gather or a scatter-add
        instead of a product (``_embed``); None for any other product."""
        one_hot: Mapping = self._settings["one_hot"]
        if len(factors) < 2 or not one_hot:
            return None
        for name, (axis, vocab) in one_hot.items():
            end = factors[-1] if axis == 0 else factors[0]
            rest = factors[:-1] if axis == 0 else factors[1:]
            if getattr(end, "name", None) == name:
                return "embed", rest, end, axis, None
            if isinstance(end, Transpose) and getattr(end.arg, "name", None) == name:
                return "embed_grad", rest, end.arg, axis, vocab
        return None

    def _embed(self, helper: str, rest, X, axis: int, vocab=None) -> str:
        self.helpers[helper] = None
        extra = "" if vocab is None else f", {self._print(vocab)}"
        other = self._print_product_of(rest) if len(rest) > 1 else self.full(rest[0])
        return f"{helper}({other}, {self._print(X)}, {axis}{extra})"

    def _print_MatMul(self, expr) -> str:
        coefficient, factors = self._matmul_parts(expr)
        embedding = self._embedding(factors)
        if embedding is not None:
            embedded = self._embed(*embedding)
            return embedded if coefficient == 1 else self._scaled(coefficient, embedded)
        left = len(factors) > 1 and isinstance(factors[0], OneMatrix)
        right = len(factors) > 1 and isinstance(factors[-1], OneMatrix)
        inner = factors[int(left) : len(factors) - int(right)]
        if not inner:  # a product of ones alone
            body = "1"
        elif left or right:  # 1ᵀ M sums the columns, M 1 the rows, 1ᵀ M 1 everything
            body = self._sum_along(inner, None if left and right else 0 if left else 1)
        elif len(inner) == 1:
            body = self._operand(inner[0])
        else:
            body = self._print_product_of(inner)
            if coefficient != 1 and self._larger_than(inner[0], expr):
                # c A B with A larger than the product (τ dS K): scale the product, not A
                return f"{self._operand(coefficient)} * ({body})"
        return body if coefficient == 1 else self._scaled(coefficient, body)

    @staticmethod
    def _larger_than(factor, product) -> bool:
        """Whether ``factor`` has more entries than ``product``, when both sizes are numbers."""
        sizes = [sympy.Mul(*factor.shape), sympy.Mul(*product.shape)]
        return all(n.is_Integer for n in sizes) and sizes[0] > sizes[1]

    def _scaled(self, coefficient, body: str) -> str:
        if coefficient == -1:
            return f"-{body}"
        if coefficient.is_number and coefficient.is_negative:
            return f"-{self._operand(-coefficient)} * {body}"
        return f"{self._operand(coefficient)} * {body}"

    def _print_HadamardProduct(self, expr) -> str:
        """``a * b``; a reciprocal factor divides (``a / sigma``), one operation instead of two."""
        factors = [f for f in expr.args if not (isinstance(f, HadamardPower) and f.args[1] == -1)]
        divisors = [f.args[0] for f in expr.args if isinstance(f, HadamardPower) and f.args[1] == -1]
        if not factors or not divisors:
            return " * ".join(self._operand(f) for f in expr.args)
        text = " * ".join(self._operand(f) for f in factors)
        return text + "".join(f" / {self._operand(d)}" for d in divisors)

    def _print_HadamardPower(self, expr) -> str:
        base, exponent = expr.args
        if exponent == -1:
            return f"1 / {self._operand(base)}"
        return f"{self._operand(base)} ** {self._operand(exponent)}"

    def _print_OneMatrix(self, expr) -> str:
        return "1"

    def _print_ZeroMatrix(self, expr) -> str:
        return "0"

    def _print_Identity(self, expr) -> str:
        if expr.shape == (1, 1):
            return "1"
        return f"{self._module_format('numpy.eye')}({self._print(expr.shape[0])})"

    # --- matrix calculus: traces, determinants, entries ------------------------------------

    def _print_Trace(self, expr) -> str:
        return f"{self._module_format('numpy.trace')}({self.full(expr.arg)})"

    def _print_Determinant(self, expr) -> str:
        return f"{self._module_format('numpy.linalg.det')}({self.full(expr.arg)})"

    def _print_Inverse(self, expr) -> str:
        return f"{self._module_format('numpy.linalg.inv')}({self.full(expr.arg)})"

    def _print_MatPow(self, expr) -> str:
        base, exponent = expr.args
        if exponent.is_Integer or base.shape != (1, 1):
            return f"{self._module_format('numpy.linalg.matrix_power')}({self.full(base)}, {self._print(exponent)})"
        return f"{self._operand(base)} ** {self._operand(exponent)}"

    def _print_KroneckerProduct(self, expr) -> str:
        out = self.full(expr.args[-1])
        for factor in reversed(expr.args[:-1]):
            out = f"{self._module_format('numpy.kron')}({self.full(factor)}, {out})"
        return out

    def _print_KroneckerAdjoint(self, expr) -> str:
        if expr.side == 0:
            (p, q), (m, n), script = expr.shape, expr.other.shape, "ikjl,kl->ij"
        else:
            (p, q), (m, n), script = expr.other.shape, expr.shape, "ikjl,ij->kl"
        blocks = f"{self._operand(expr.adjoint, self.full(expr.adjoint))}.reshape({', '.join(self._print(d) for d in (p, m, q, n))})"
        return f"{self._module_format('numpy.einsum')}('{script}', {blocks}, {self.full(expr.other)})"

    def _print_DiagMatrix(self, expr) -> str:
        return f"{self._module_format('numpy.diagflat')}({self.full(expr.args[0])})"

    def _print_DiagonalOf(self, expr) -> str:
        return f"{self._module_format('numpy.diagonal')}({self.full(expr.arg)}).reshape(-1, 1)"

    def _print_MatrixElement(self, expr) -> str:
        return f"{self._operand(expr.parent, self.full(expr.parent))}[{self._print(expr.i)}, {self._print(expr.j)}]"

    def _print_UnitMatrix(self, expr) -> str:
        rows, cols = (self._print(d) for d in expr.shape)
        row, col = self._print(expr.row), self._print(expr.col)
        return f"{self._module_format('numpy.eye')}(1, {rows} * {cols}, {row} * {cols} + {col}).reshape({rows}, {cols})"

    def _print_KroneckerDelta(self, expr) -> str:
        return f"float({self._print(expr.args[0])} == {self._print(expr.args[1])})"

    def _print_ElementwiseApplyFunction(self, expr) -> str:
        (variable,) = expr.function.variables
        name = f"f_{type(expr.function.expr).__name__.lower()}"
        self.custom[name] = (SCALAR_VARIABLE, expr.function.expr.xreplace({variable: SCALAR_VARIABLE}))
        return f"{name}({self._print(expr.expr)})"

    # --- symbackprop's own classes -------------------------------------------------------

    def _print_Broadcast(self, expr) -> str:
        return self._print(expr.vector)

    def _print_SumEntries(self, expr) -> str:
        return f"{self._module_format('numpy.sum')}({self.full(expr.arg)})"

    def _print_Softmax(self, expr) -> str:
        name = "causal_softmax" if expr.causal else "softmax"
        self.helpers[name] = None
        return f"{name}({self._print(expr.arg)}, axis={expr.axis})"

    def _print_Constant(self, expr) -> str:
        return self._print(expr.value)

    def _print_Normalize(self, expr) -> str:
        centred = f"{self._operand(expr.arg, self.full(expr.arg))} - {self._operand(expr.mean)}"
        return f"({centred}) / {self._operand(expr.deviation)}"

    def _print_Deviation(self, expr) -> str:
        self.helpers["deviation"] = None
        return (f"deviation({self.full(expr.arg)}, {self._print(expr.mean)}, {expr.axis}, "
                f"{self._print(sympy.Float(expr.epsilon))})")

    def _print_LogSoftmax(self, expr) -> str:
        self.helpers["log_softmax"] = None
        return f"log_softmax({self._print(expr.arg)}, axis={expr.axis})"

    def _output_form(self, expr: Elementwise):
        """σ'(z) as a polynomial in the stored a = σ(z), when the registry states one and a is known."""
        entry = registered_activation(expr)
        a = self._settings["outputs"].get(expr.arg)
        if expr.order != 1 or entry is None or entry.output_derivative is None or a is None:
            return None
        return entry.output_derivative.xreplace({y: sympy.Symbol(a.name, real=True)})

    def _numpy_function(self, expr: Elementwise) -> str | None:
        """``np.exp`` for an elementwise function named ``exp`` that is SymPy's exp, else None."""
        body = expr.definition.expr
        name = _NUMPY_FUNCTIONS.get(type(body))
        if name is None or body.args != expr.definition.variables or expr.name not in (name, type(body).__name__):
            return None
        return self._module_format(f"numpy.{name}")

    def _print_Elementwise(self, expr) -> str:
        entry = registered_activation(expr)
        if entry is not None and entry.name == "identity" and expr.order == 0:
            return self._print(expr.arg)
        through_output = self._output_form(expr)
        if through_output is not None:
            a = self._settings["outputs"][expr.arg].name
            text = self._print(through_output)
            self.symbols.pop(a)  # a is a matrix, printed through a scalar symbol
            self.names[a] = None
            return text
        if entry is not None and entry.name in MATH_FUNCTIONS and expr.order == 0:
            return f"{self._module_format('numpy.' + entry.name)}({self._print(expr.arg)})"  # stable as NumPy has it
        if entry is not None:
            name = helper_name(entry.runtime, expr.order)
            self.helpers[name] = None
        elif expr.order == 0 and self._numpy_function(expr) is not None:
            return f"{self._numpy_function(expr)}({self._print(expr.arg)})"
        else:
            name = helper_name(expr.name, expr.order)
            self.custom[name] = (SCALAR_VARIABLE, expr.scalar_function().expr)
        return f"{name}({self._print(expr.arg)})"


#: SymPy functions that NumPy has under the same name
_NUMPY_FUNCTIONS = {sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
                    sympy.tanh: "tanh", sympy.Abs: "abs"}


def to_numpy(expr, **settings) -> str:
    """``expr`` as NumPy code of its whole shape, with ``np`` the numpy module.

    >>> from sympy import MatrixSymbol, HadamardProduct
    >>> A, B = MatrixSymbol("A", 2, 2), MatrixSymbol("B", 2, 2)
    >>> to_numpy(HadamardProduct(A.T * B, A, evaluate=False))
    '(A.T @ B) * A'
    """
    return NumPyCodePrinter(settings).full(expr)
