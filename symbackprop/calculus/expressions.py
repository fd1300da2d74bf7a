"""Matrix expression classes that SymPy lacks.

SymPy's ``ElementwiseApplyFunction`` cannot be differentiated, printed readably
or turned into NumPy code (see the design notes), so symbackprop carries its own
small set of :class:`~sympy.matrices.expressions.MatrixExpr` subclasses.  Each
arrives complete: a vector-Jacobian rule in :mod:`symbackprop.calculus.rules`, a
``_print_`` method in every printer and a row in the tests.

* :class:`Named` — a named intermediate (``z3``, ``a3``, ``delta3``) that keeps
  its definition, so an expression that mentions it stays self-contained;
* :class:`Elementwise` — a named scalar function applied entry by entry,
  ``σ(z)`` or its derivative ``σ'(z)``;
* :class:`Softmax` — softmax over each column (``axis=0``) or each row (``axis=1``),
  optionally causal (each token attends to itself and the tokens before it);
* :class:`Normalize` — a matrix standardised by its own mean and deviation along
  an axis, x̂ = (x − μ) ⊘ σ (layer and batch normalisation);
* :class:`Deviation` — the deviation σ = √(mean((x − μ)^∘2) + ε) along an axis;
* :class:`Broadcast` — a bias vector repeated across the batch, ``b 1ᵀ`` or ``1 b``;
* :class:`SumEntries` — the scalar sum of all entries of a matrix;
* :class:`Adjoint` — the symbol ``∂C/∂X`` used on the left of derivation steps;
* :class:`UnitMatrix` — the matrix ``E_ij`` with one 1 at ``(i, j)``, the gradient of an entry;
* :class:`Entry` — an entry ``M[i, j]`` of a matrix expression, kept as it is written
  (SymPy's ``MatrixElement`` expands ``(xᵀa)[0, 0]`` into a sum over indices);
* :class:`KroneckerAdjoint` — one factor's share of the adjoint of a Kronecker product.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import sympy
from sympy import (
    Basic,
    Expr,
    HadamardPower,
    HadamardProduct,
    Identity,
    Integer,
    Lambda,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Symbol,
    ZeroMatrix,
)
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixElement

__all__ = [
    "Named",
    "new_scope",
    "Elementwise",
    "Softmax",
    "LogSoftmax",
    "Normalize",
    "Deviation",
    "Broadcast",
    "Constant",
    "SumEntries",
    "Adjoint",
    "UnitMatrix",
    "Entry",
    "KroneckerAdjoint",
    "SCALAR_VARIABLE",
    "LEAVES",
    "is_ones",
    "hadamard",
    "hadamard_power",
    "spread",
]

#: the variable in which scalar functions (activations, log) are defined
SCALAR_VARIABLE = Symbol("x", real=True)


def _as_str(name: str | Str) -> Str:
    return name if isinstance(name, Str) else Str(name)


_scopes = itertools.count(1)


def new_scope() -> Integer:
    """A fresh scope for the named quantities of one derivation."""
    return Integer(next(_scopes))


class Named(MatrixExpr):
    """A named intermediate quantity that carries its definition.

    Printers show only the name; the chain rule and the numeric evaluator look
    through to :attr:`definition`, so a gradient written with ``delta2`` can be
    evaluated from the inputs and parameters alone.

    ``scope`` tells apart the quantities of different derivations: two
    ``z1`` of two networks are different quantities, and comparing them stops
    at the name or the scope instead of walking both definitions down the
    whole network.  Sorting (SymPy orders the terms of a sum) looks at the name
    and scope only, for the same reason.

    >>> from sympy import MatrixSymbol
    >>> W, x = MatrixSymbol("W", 2, 3), MatrixSymbol("X", 3, 1)
    >>> z = Named("z1", W * x)
    >>> z.shape, str(z)
    ((2, 1), 'z1')
    """

    is_commutative = False

    def __new__(cls, name: str | Str, definition: MatrixExpr, scope: int | Integer = 0) -> "Named":
        # The definition is held beside the arguments, not among them: SymPy's own walks (xreplace,
        # has, printing's preprocessing) then stop at a name instead of recursing down every layer
        # below it, and nothing keeps a copy of everything below each name.
        obj = Basic.__new__(cls, _as_str(name), Integer(scope))
        obj._definition = definition
        obj._shape = definition.shape
        return obj

    def __getnewargs__(self):
        return (self.args[0], self._definition, self.args[1])

    def _hashable_content(self):
        name, scope = self.args
        return (name, scope, self._definition)  # cheap parts first: unequal names or scopes end a comparison

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def definition(self) -> MatrixExpr:
        return self._definition

    def sort_key(self, order=None):
        return self.class_key(), (2, (self.name, self.scope)), (), sympy.Integer(1)

    @property
    def scope(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):  # type: ignore[override]
        return self._shape

    @property
    def free_symbols(self):
        """The symbols below the name, found without recursion (and not kept: that would hold every
        symbol below every name, quadratic in depth)."""
        found, seen, stack = set(), set(), [self._definition]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if isinstance(node, Named):
                stack.append(node.definition)
            elif isinstance(node, (sympy.Symbol, MatrixSymbol)):
                found.add(node)
            elif isinstance(node, Basic) and not isinstance(node, Lambda):
                stack.extend(node.args)
        return found

    def doit(self, **hints):  # a name stays a name
        return self

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer) -> str:
        return self.name

    def _eval_is_symbol(self):
        return True


@lru_cache(maxsize=None)
def _derivative_lambda(definition: Lambda, order: int) -> Lambda:
    (variable,) = definition.variables
    return Lambda(variable, sympy.diff(definition.expr, variable, order))


class Elementwise(MatrixExpr):
    """A scalar function, or its ``order``-th derivative, applied to every entry.

    ``name`` is how printers write the function (``sigmoid`` prints as ``σ``);
    ``definition`` is the scalar function as a SymPy ``Lambda`` in ``x``, from
    which derivatives are derived.

    >>> from sympy import MatrixSymbol, Lambda, exp
    >>> from symbackprop.calculus.expressions import SCALAR_VARIABLE as x
    >>> z = MatrixSymbol("z", 3, 1)
    >>> s = Elementwise("sigmoid", Lambda(x, 1 / (1 + exp(-x))), z)
    >>> str(s), str(s.derivative())
    ('sigmoid(z)', "sigmoid'(z)")
    """

    is_commutative = False

    def __new__(cls, name: str | Str, definition: Lambda, arg: MatrixExpr, order: int = 0) -> "Elementwise":
        return Basic.__new__(cls, _as_str(name), definition, arg, Integer(order))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def definition(self) -> Lambda:
        return self.args[1]

    @property
    def arg(self) -> MatrixExpr:
        return self.args[2]

    @property
    def order(self) -> int:
        return int(self.args[3])

    @property
    def shape(self):  # type: ignore[override]
        return self.arg.shape

    def scalar_function(self) -> Lambda:
        """The scalar function applied here (the derivative, when ``order`` > 0)."""
        if self.order == 0:
            return self.definition
        return _derivative_lambda(self.definition, self.order)

    def derivative(self) -> "Elementwise":
        return Elementwise(self.args[0], self.definition, self.arg, self.order + 1)

    def doit(self, **hints):
        if hints.get("deep", True):
            return self.func(self.args[0], self.definition, self.arg.doit(**hints), self.order)
        return self

    def _sympystr(self, printer) -> str:
        return f"{self.name}{chr(39) * self.order}({printer._print(self.arg)})"


class _PerSample(MatrixExpr):
    """A function applied to each column (``axis=0``, columns layout) or each row (``axis=1``)."""

    is_commutative = False

    def __new__(cls, arg: MatrixExpr, axis: int = 0):
        if int(axis) not in (0, 1):
            raise ValueError(f"{cls.__name__.lower()} axis must be 0 (columns) or 1 (rows)")
        return Basic.__new__(cls, arg, Integer(axis))

    @property
    def arg(self) -> MatrixExpr:
        return self.args[0]

    @property
    def axis(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):  # type: ignore[override]
        return self.arg.shape

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"{type(self).__name__.lower()}({printer._print(self.arg)}, axis={self.axis})"


class Softmax(_PerSample):
    """Softmax of each column (``axis=0``, columns layout) or each row (``axis=1``).

    ``causal`` masks the logits of later tokens: with the tokens along the other
    axis, entry (i, j) takes part only when the attending token is not before
    the attended one (``j ≤ i`` for rows, ``i ≤ j`` for columns); masked entries
    are exactly 0.
    """

    def __new__(cls, arg: MatrixExpr, axis: int = 0, causal: bool = False):
        if int(axis) not in (0, 1):
            raise ValueError("softmax axis must be 0 (columns) or 1 (rows)")
        if causal:
            if arg.shape[0] != arg.shape[1]:
                raise ValueError("a causal softmax takes a square matrix of token-to-token scores")
            return Basic.__new__(cls, arg, Integer(axis), Integer(1))
        return Basic.__new__(cls, arg, Integer(axis))

    @property
    def causal(self) -> bool:
        return len(self.args) > 2 and bool(self.args[2])

    def _sympystr(self, printer) -> str:
        extra = ", causal" if self.causal else ""
        return f"softmax({printer._print(self.arg)}, axis={self.axis}{extra})"


class LogSoftmax(_PerSample):
    """log(softmax(z)) of each column or row, computed from z.

    The stable cost of softmax with cross-entropy is written with it, so no
    logarithm of a rounded probability is ever taken.
    """


def _argument(index: int, convert=None, doc: str = "") -> property:
    """A property reading ``args[index]`` (through ``convert``): the classes' fields, declared once each."""
    if convert is None:
        return property(lambda self: self.args[index], doc=doc)
    return property(lambda self: convert(self.args[index]), doc=doc)


def spread(vector: MatrixExpr, shape) -> MatrixExpr:
    """A row or column (statistics, a per-feature γ) spread to ``shape``: ``Broadcast``, or the vector itself
    when it already has that shape."""
    return vector if vector.shape == tuple(shape) else Broadcast(vector, *shape)


class Normalize(MatrixExpr):
    """``x`` standardised along ``axis`` by its own statistics: x̂ = (x − μ) ⊘ σ.

    ``axis = 0`` normalises each column over its rows (μ and σ are rows of
    statistics, 1×cols), ``axis = 1`` each row over its columns.  ``mean`` and
    ``deviation`` are x's own mean and :class:`Deviation` along ``axis``, given
    (usually by name) so the forward pass computes them once.  They are
    *statistics* of ``x``, not independent inputs: the chain rule differentiates
    the whole map x ↦ x̂ (:data:`STATISTICS` lists the arguments it does not
    differentiate separately), which gives Ioffe & Szegedy's compact form.
    """

    is_commutative = False
    #: the arguments that are functions of ``x`` already accounted for by the rule for ``x``
    statistics = (1, 2)

    def __new__(cls, x: MatrixExpr, mean: MatrixExpr, deviation: MatrixExpr, axis: int = 0) -> "Normalize":
        axis = int(axis)
        if axis not in (0, 1):
            raise ValueError("normalisation axis must be 0 (over rows) or 1 (over columns)")
        wanted = (1, x.shape[1]) if axis == 0 else (x.shape[0], 1)
        for what, stat in (("mean", mean), ("deviation", deviation)):
            if tuple(stat.shape) != wanted:
                raise ValueError(f"the {what} of a {x.shape[0]}×{x.shape[1]} matrix along axis {axis} is "
                                 f"{wanted[0]}×{wanted[1]}, not {stat.shape[0]}×{stat.shape[1]}")
        return Basic.__new__(cls, x, mean, deviation, Integer(axis))

    arg = _argument(0, doc="x, the matrix normalised")
    mean = _argument(1, doc="μ, x's mean along the axis")
    deviation = _argument(2, doc="σ, x's deviation along the axis")
    axis = _argument(3, int, doc="0: each column over its rows; 1: each row over its columns")

    @property
    def count(self):
        """N, the number of entries normalised together."""
        return self.arg.shape[self.axis]

    @property
    def shape(self):  # type: ignore[override]
        return self.arg.shape

    def written(self) -> MatrixExpr:
        """x̂ as the matrices it is made of: (x − spread μ) ⊘ spread σ, for printers."""
        centred = self.arg - spread(self.mean, self.shape)
        return HadamardProduct(centred, HadamardPower(spread(self.deviation, self.shape), -1), evaluate=False)

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"normalize({printer._print(self.arg)}, axis={self.axis})"


class Deviation(MatrixExpr):
    """σ = √(mean along ``axis`` of (x − μ)^∘2 + ε): the biased deviation (1/N, as PyTorch), a row
    (``axis = 0``) or a column (``axis = 1``) of statistics.  ``mean`` is x's own mean along ``axis``,
    a statistic as in :class:`Normalize`."""

    is_commutative = False
    statistics = (1,)

    def __new__(cls, x: MatrixExpr, mean: MatrixExpr, axis: int = 0, epsilon=sympy.Rational(1, 10**5)):
        axis = int(axis)
        if axis not in (0, 1):
            raise ValueError("deviation axis must be 0 (over rows) or 1 (over columns)")
        epsilon = sympy.nsimplify(epsilon) if not isinstance(epsilon, Basic) else epsilon
        return Basic.__new__(cls, x, mean, Integer(axis), epsilon)

    arg = _argument(0, doc="x")
    mean = _argument(1, doc="μ, x's mean along the axis")
    axis = _argument(2, int, doc="0: over the rows of each column; 1: over the columns of each row")
    epsilon = _argument(3, doc="ε, added to the variance")

    @property
    def count(self):
        return self.arg.shape[self.axis]

    @property
    def shape(self):  # type: ignore[override]
        rows, cols = self.arg.shape
        return (Integer(1), cols) if self.axis == 0 else (rows, Integer(1))

    def variance(self) -> MatrixExpr:
        """(1/N) Σ (x − μ)^∘2 along the axis, as the matrices it is made of, for printers."""
        rows, cols = self.arg.shape
        square = HadamardPower(self.arg - spread(self.mean, self.arg.shape), 2)
        ones = OneMatrix(1, rows) * square if self.axis == 0 else square * OneMatrix(cols, 1)
        return sympy.MatMul(1 / self.count, ones) if self.count != 1 else ones

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"deviation({printer._print(self.arg)}, axis={self.axis}, eps={self.epsilon})"


class Broadcast(MatrixExpr):
    """A column vector repeated across ``cols`` columns, or a row vector down ``rows`` rows.

    In the columns layout the bias term is ``Broadcast(b, n, m)`` = ``b 1ᵀ``; in
    the rows layout it is ``Broadcast(b, m, n)`` = ``1 b``; a bias shared by every
    unit is a 1×1 ``b`` repeated both ways, ``1 b 1ᵀ``.  Code printers
    broadcast instead of multiplying by a matrix of ones.
    """

    is_commutative = False

    def __new__(cls, vector: MatrixExpr, rows, cols) -> "Broadcast":
        rows, cols = sympy.sympify(rows), sympy.sympify(cols)
        vrows, vcols = vector.shape
        if vcols != 1 and vrows != 1:
            raise ValueError("only a row or a column vector can be broadcast")
        if (vrows != 1 and vrows != rows) or (vcols != 1 and vcols != cols):
            raise ValueError(f"a {vrows}×{vcols} vector cannot be broadcast to {rows}×{cols}")
        return Basic.__new__(cls, vector, rows, cols)

    @property
    def vector(self) -> MatrixExpr:
        return self.args[0]

    @property
    def along_columns(self) -> bool:
        """True when a column vector is repeated across columns (``b 1ᵀ``)."""
        vrows, vcols = self.vector.shape
        return vcols == 1 and vrows == self.args[1]

    @property
    def along_both(self) -> bool:
        """True when a 1×1 value is repeated down the rows and across the columns (``1 b 1ᵀ``)."""
        return self.vector.shape == (1, 1) and self.args[1] != 1 and self.args[2] != 1

    @property
    def shape(self):  # type: ignore[override]
        return self.args[1], self.args[2]

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        if self.along_both:
            return f"1*{printer._print(self.vector)}*1ᵀ"
        if self.along_columns:
            return f"{printer._print(self.vector)}*1ᵀ"
        return f"1*{printer._print(self.vector)}"


class Constant(Expr):
    """A named scalar constant, such as attention's τ = 1/√d_k: printed by name in a derivation
    (``τ⁽¹⁾``), by value in code; it depends on no parameter, so the chain rule passes it by.

    >>> from sympy import sqrt
    >>> tau = Constant("tau1", 1 / sqrt(64))
    >>> str(tau), tau.value
    ('tau1', 1/8)
    """

    is_commutative = True
    is_real = True

    def __new__(cls, name: str | Str, value) -> "Constant":
        return Basic.__new__(cls, _as_str(name), sympy.sympify(value))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def value(self) -> Expr:
        return self.args[1]

    def _eval_is_positive(self):
        return self.value.is_positive

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return self.name


class SumEntries(Expr):
    """The sum of all entries of a matrix, a scalar: ``1ᵀ M 1``."""

    is_commutative = True

    def __new__(cls, arg: MatrixExpr) -> "SumEntries":
        if not getattr(arg, "is_Matrix", False):
            raise TypeError("SumEntries takes a matrix expression")
        return Basic.__new__(cls, arg)

    @property
    def arg(self) -> MatrixExpr:
        return self.args[0]

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"sum({printer._print(self.arg)})"


class Adjoint(MatrixExpr):
    """``∂C/∂target``, the symbol on the left of a derivation step; shaped like its target."""

    is_commutative = False

    def __new__(cls, target: MatrixExpr, cost: str | Str = "C") -> "Adjoint":
        return Basic.__new__(cls, target, _as_str(cost))

    @property
    def target(self) -> MatrixExpr:
        return self.args[0]

    @property
    def cost_name(self) -> str:
        return self.args[1].name

    @property
    def shape(self):  # type: ignore[override]
        return self.target.shape

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"d{self.cost_name}/d{printer._print(self.target)}"


class UnitMatrix(MatrixExpr):
    """The ``rows``×``cols`` matrix with a 1 at ``(i, j)`` and zeros elsewhere: ``E_ij = e_i e_jᵀ``.

    >>> from sympy import Symbol
    >>> UnitMatrix(3, 2, Symbol("i"), 1).shape
    (3, 2)
    """

    is_commutative = False

    def __new__(cls, rows, cols, row, col) -> "UnitMatrix":
        return Basic.__new__(cls, *(sympy.sympify(v) for v in (rows, cols, row, col)))

    @property
    def shape(self):  # type: ignore[override]
        return self.args[0], self.args[1]

    @property
    def row(self):
        return self.args[2]

    @property
    def col(self):
        return self.args[3]

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"E({printer._print(self.row)}, {printer._print(self.col)})"


class Entry(MatrixElement):
    """The entry ``(i, j)`` of a matrix expression, a scalar; ``(aᵀXb)[0, 0]`` is the scalar aᵀXb.

    A :class:`~sympy.matrices.expressions.matexpr.MatrixElement` that ``doit``
    leaves alone: SymPy's rewrites ``(xᵀa)[0, 0]`` as ``Sum(x[i, 0] a[i, 0], (i, 0, k − 1))``.

    >>> from sympy import MatrixSymbol, Symbol
    >>> x, a = MatrixSymbol("x", 3, 1), MatrixSymbol("a", 3, 1)
    >>> Entry(x.T * a).doit()
    (x.T*a)[0, 0]
    """

    def __new__(cls, parent, i=0, j=0) -> "Entry":
        return super().__new__(cls, parent, i, j)

    def doit(self, **hints):
        if hints.get("deep", True):
            return self.func(self.parent.doit(**hints), self.i, self.j)
        return self


class KroneckerAdjoint(MatrixExpr):
    """The adjoint of one factor of a Kronecker product ``A ⊗ B`` from the adjoint ``G`` of the product.

    With ``A`` p×q and ``B`` m×n, ``G`` is (pm)×(qn), made of p×q blocks ``G_ij``
    of size m×n.  For ``side=0`` this is the p×q matrix of ``⟨G_ij, B⟩`` (each
    block contracted with ``B``); for ``side=1`` the m×n matrix
    ``Σ_ij A_ij G_ij``.

    >>> from sympy import MatrixSymbol
    >>> G, B = MatrixSymbol("G", 6, 6), MatrixSymbol("B", 3, 2)
    >>> KroneckerAdjoint(G, B, 0).shape
    (2, 3)
    """

    is_commutative = False

    def __new__(cls, adjoint, other, side: int) -> "KroneckerAdjoint":
        return Basic.__new__(cls, adjoint, other, Integer(side))

    @property
    def adjoint(self):
        return self.args[0]

    @property
    def other(self):
        return self.args[1]

    @property
    def side(self) -> int:
        return int(self.args[2])

    @property
    def shape(self):  # type: ignore[override]
        (rows, cols), (other_rows, other_cols) = self.adjoint.shape, self.other.shape
        return sympy.cancel(rows / other_rows), sympy.cancel(cols / other_cols)

    def doit(self, **hints):
        return self

    def _sympystr(self, printer) -> str:
        return f"KroneckerAdjoint({printer._print(self.adjoint)}, {printer._print(self.other)}, {self.side})"


# --- constructors ----------------------------------------------------------------------

#: nodes no tree walk looks inside
LEAVES = (MatrixSymbol, Lambda, Str, OneMatrix, Identity, ZeroMatrix, UnitMatrix, Constant)


def is_ones(matrix: Expr) -> bool:
    """A matrix of ones; SymPy writes the 1×1 one as an identity matrix."""
    return isinstance(matrix, OneMatrix) or (isinstance(matrix, Identity) and matrix.shape == (1, 1))


def hadamard(*factors: Expr) -> Expr:
    """The Hadamard product, without SymPy folding ``A ⊙ A`` into a power."""
    first = factors[0]
    factors = tuple(f for f in factors if not is_ones(f))
    if not factors:
        return OneMatrix(*first.shape)
    if len(factors) == 1:
        return factors[0]
    return HadamardProduct(*factors, evaluate=False)


def hadamard_power(base: Expr, exponent) -> Expr:
    exponent = sympy.sympify(exponent)
    if exponent == 1:
        return base
    if exponent == 0:
        return OneMatrix(*base.shape)
    return HadamardPower(base, exponent)
