r"""Checking a hand-derived formula: is it right, and if not, why not.

:func:`check` parses a user's formula for a gradient (or a delta, or a whole
gradient-descent update) with the safe parser of :mod:`symbackprop.language.syntax`,
builds it over the derivation's quantities (:mod:`symbackprop.language.matrix`)
and decides in three steps:

1. **shapes** — a formula whose shapes do not fit together, or whose shape is
   not the parameter's, is wrong, and the message names both shapes;
2. **symbolic** — a formula that :func:`~symbackprop.calculus.simplify.tidy` brings to
   the derived expression (with the named quantities kept, then written out)
   is right;
3. **numeric** — otherwise both are evaluated at several random points
   (random sizes from 2 to 5 when the network's sizes are symbols, random
   values as :func:`~symbackprop.checking.gradients.random_values` draws them) and
   must agree entry by entry to a relative 1e-9 of the largest entry.  The
   first point where they differ is the counterexample.

A wrong formula is then changed in the ways people usually slip — written for
the other layout, a missing or extra transpose, a missing or extra σ' factor, a
factor 2 or 1/2, an off-by-one layer index, a sign, ``*`` for ``@`` — one
change at a time, then (at most :data:`MAX_PAIRS`) two at a time; the first
change that makes it right is the hint, written in the user's notation.  A
formula for one entry (``W2[0, 1]``) that is another entry is told which.

>>> from symbackprop import Dense, Network
>>> seed = Network(1, [Dense(1, bias=False), Dense(1, bias=False)])
>>> check(seed, "W1", "a0 * W2 * 2 * (a1 * W2 - y)").ok
True
>>> result = check(seed, "W2", "a2 * 2 * (a2 - y)")
>>> result.ok, result.hint
(False, 'an off-by-one layer index: a1 in place of a2 makes it right: a1 * 2 * (a2 - y)')
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np
import sympy
from sympy import Expr, OneMatrix
from sympy.matrices.expressions.matexpr import MatrixElement

from ..language import syntax as ast
from ..derive import Derivation, derive, expand_names, program_of
from ..errors import FormulaError, ShapeError, SymbackpropError, UnknownNameError
from ..calculus.numeric import Evaluator
from ..language.matrix import (
    LAYERED_NAME,
    MAX_SYMBOLIC_INDEX,
    MatrixBuilder,
    Vocabulary,
    canonical_name,
    children,
    learning_rates,
    shape_of,
    shape_text,
)
from .gradients import random_values
from .. import naming
from ..calculus.expressions import Elementwise, Named
from ..calculus.trees import walk
from ..printing.text import to_text
from ..calculus.simplify import tidy

__all__ = ["check", "CheckResult", "Counterexample", "RTOL", "ATOL", "TRIALS", "MAX_CANDIDATES", "MAX_PAIRS",
           "SYMBOLIC_LIMIT"]

#: two values agree when they differ by at most RTOL × the largest derived entry + ATOL
RTOL = 1e-9
ATOL = 1e-12
#: random points a formula is evaluated at
TRIALS = 5
#: at most this many changed formulas are tried for a hint
MAX_CANDIDATES = 400
#: at most this many pairs of changes are tried for a two-slip hint (about 0.2 ms each: a quarter of a second)
MAX_PAIRS = 1200
#: formulas whose elementwise algebra may expand to more terms are compared numerically only
SYMBOLIC_LIMIT = 64

_SLIPS = "a transpose, a σ' factor, a factor 2, 1/2 or 1/m, a layer index, a sign, * for @"


@dataclass(frozen=True)
class Counterexample:
    """Where a formula and the derived expression differ.

    ``sizes`` are the symbolic sizes' values (empty when every size is a
    number), ``values`` the inputs, targets, parameters (and learning rate)
    used, ``index`` the entry where they differ most, ``expected`` the
    derived value there and ``got`` the formula's.
    """

    sizes: Mapping[str, int]
    values: Mapping[str, object]
    index: tuple[int, int]
    expected: float
    got: float


@dataclass(frozen=True)
class CheckResult:
    """The verdict of :func:`check`; true when the formula is right.

    ``derived`` is the correct expression (the gradient, delta or update),
    ``formula`` the user's as a SymPy expression (``None`` when its shapes do
    not fit together), ``message`` the verdict as readable text.
    """

    ok: bool
    message: str
    derived: Expr
    formula: Expr | None
    counterexample: Counterexample | None = None
    hint: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def check(
    network_or_derivation: "Network | Model | Derivation",
    param: str,
    formula: str,
    *,
    trials: int = TRIALS,
    seed: int = 0,
) -> CheckResult:
    r"""Decide whether ``formula`` is ∂C/∂``param`` (or ``param``'s update, or the delta ``param``).

    ``param`` is a parameter (``"W2"``, ``"b1"``, also ``"W^{(2)}"``) or a
    delta (``"delta1"``).  A formula that mentions a learning rate (``R``,
    ``eta``, ``lr``, ``alpha``) is a whole update rule and is compared with
    ``param − rate · ∂C/∂param``.  The language is described in
    ``docs/formula-language.md``.  ``trials`` random points, drawn from
    ``seed``, decide when the symbolic step cannot: the same arguments always
    give the same verdict, counterexample and message.

    >>> from symbackprop import Dense, Network
    >>> net = Network(3, [Dense(4, "sigmoid"), Dense(2)], batch="m")
    >>> check(net, "W1", r"(W^{(2)\top} \delta^{(2)} \odot \sigma'(z^{(1)})) a^{(0)\top}").ok
    True
    >>> check(net, "b2", "delta2 @ ones(m, 1)").ok, check(net, "W2", "W2 - eta * delta2 @ a1.T").ok
    (True, True)
    >>> print(check(net, "W1", "delta1 @ a0").message.splitlines()[0])
    wrong: the shapes in delta1 @ a0 do not fit: '@' needs as many columns on the left as rows on the right, but delta1 is 4×m and a0 is 3×m
    """
    derivation = network_or_derivation
    if not isinstance(derivation, Derivation):
        try:
            program = program_of(derivation)
        except SymbackpropError:
            raise SymbackpropError(f"check takes a Network, a Model or a Derivation, "
                                   f"not {type(derivation).__name__}") from None
        derivation = derive(program)
    if not isinstance(formula, str):
        raise FormulaError(f"a formula must be text, not {type(formula).__name__}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SymbackpropError(f"trials must be a positive integer, not {trials!r}")
    vocabulary = Vocabulary.of(derivation)
    name, indices = _parameter(derivation, vocabulary, param)
    tree = ast.parse(formula)

    rates = learning_rates(tree, vocabulary)
    if len(rates) > 1:
        raise FormulaError(f"the formula names two learning rates, {rates[0]} and {rates[1]}; use one")
    learning_rate = sympy.Symbol(rates[0], positive=True) if rates else None
    if name in derivation.gradients:
        quantity = derivation.symbols[name]
        target = f"∂C/∂{to_text(quantity)}"
        derived = derivation.gradients[name]
        shown = to_text(derived)
        if learning_rate is not None:
            target = f"the update {to_text(quantity)} − {rates[0]} {target}"
            step = f"({shown})" if isinstance(derived, sympy.MatAdd) else shown
            shown = f"{to_text(quantity)} − {rates[0]} {step}"
            derived = quantity - learning_rate * derived
    elif learning_rate is not None:
        raise FormulaError(f"{rates[0]} is a learning rate, and only a parameter has an update rule, not {name}")
    else:
        target = to_text(derivation.deltas[name])
        derived = derivation.deltas[name].definition
        shown = to_text(derived)

    builder = MatrixBuilder(vocabulary, learning_rate)
    yours = " ".join(formula.split())  # the parser accepts no whitespace but space, tab, CR and LF
    lines = [f"  derived: {target} = {shown}", *_where(derivation, derived, name)]
    # the value the formula must equal, and its shape (None: one entry, a number)
    entry = None if indices is None else _entry_index(param, derived.shape, indices)
    if entry is not None:
        row, col = entry
        target = f"{target}[{row}, {col}]" if learning_rate is None else f"entry [{row}, {col}] of {target}"
        whole, derived = derived, MatrixElement(derived, row, col)
    shape = None if entry is not None else derived.shape
    try:
        built: Expr | None = _fit(builder.build(tree), shape)
        misfit = None
    except ShapeError as err:
        built, misfit = None, str(err)
    # only now, with the formula known to make sense, is anything evaluated
    judge = _Judge(derivation, derived, learning_rate, trials, seed, least=_least_size(tree, indices))

    def wrong(headline: str, counterexample: Counterexample | None = None) -> CheckResult:
        hint = None
        if entry is not None and built is not None and shape_of(built) is None:
            hint = _other_entry(built, whole, entry, judge, target.split("[")[0] if learning_rate is None else None)
        untried = False
        if hint is None:
            hint, untried = _hint(tree, shape, judge, builder, vocabulary, derivation)
        if not hint and built is not None and shape_of(built) == shape:
            hint = _missing_term(built, derived, derivation, judge)
        if hint:
            advice = hint
        elif untried:
            advice = (f"no single usual slip ({_SLIPS}) explains it; the formula has too many parts to try "
                      f"pairs of them (more than {MAX_PAIRS}): check its parts one at a time")
        else:
            advice = f"no usual slip ({_SLIPS}), alone or two together, explains it"
        if counterexample is not None and entry is not None:
            counterexample = replace(counterexample, index=entry)
        details = _describe(counterexample, target, entry is not None) if counterexample else []
        message = "\n".join([headline, *lines, *details, f"  hint: {advice}"])
        return CheckResult(False, message, derived, built, counterexample, hint)

    def right(how: str) -> CheckResult:
        return CheckResult(True, "\n".join([f"right: {yours} is {target}", *lines, f"  checked: {how}"]),
                           derived, built)

    if built is None:
        return wrong(f"wrong: the shapes in {yours} do not fit: {misfit}")
    if shape_of(built) != shape:
        guess = " — a missing transpose?" if shape and shape_of(built) == shape[::-1] else ""
        return wrong(f"wrong: {yours} is {shape_text(shape_of(built))}, {target} is "
                     f"{shape_text(shape) if shape else 'a number'}{guess}")
    entries = entry is not None or any(isinstance(node, ast.Entry) for node in ast.walk(tree))
    if not entries and _expansion_bound(tree) <= SYMBOLIC_LIMIT and _identical(built, derived):
        return right("symbolically identical")
    counterexample = judge.counterexample(built)
    if counterexample is None:
        return right(judge.describe())
    return wrong(f"wrong: {yours} is not {target}", counterexample)


def _parameter(derivation: Derivation, vocabulary: Vocabulary, param: str) -> tuple[str, tuple[int, ...] | None]:
    """``param``'s canonical name, and its indices when it names one entry (``W2[0, 1]``); it must be a
    parameter or a delta of the network."""
    known = [*derivation.gradients, *derivation.deltas]
    if not isinstance(param, str):
        raise SymbackpropError(f"the parameter must be a name such as {known[0]}, not {type(param).__name__}")
    try:
        node = ast.parse(param)
    except SymbackpropError:
        raise UnknownNameError("parameter", param, known) from None
    indices = None
    if isinstance(node, ast.Entry) and isinstance(node.operand, ast.Name):
        node, indices = node.operand, node.indices
    name = canonical_name(node, vocabulary.depth) if isinstance(node, ast.Name) else param
    if name not in known:
        raise UnknownNameError("parameter", param, known)
    return name, indices


def _entry_index(param: str, shape: tuple, indices: tuple[int, ...]) -> tuple[int, int]:
    """The (row, column) ``param``'s indices name in a matrix of ``shape``: one index is enough for a vector."""
    text = shape_text(shape)
    if len(indices) == 1:
        if shape[1] != 1 and shape[0] != 1:
            raise FormulaError(f"{param}: the parameter is {text}, not a vector: give a row and a column, "
                               f"as in {param.split('[')[0]}[{indices[0]}, 0]")
        indices = (indices[0], 0) if shape[1] == 1 else (0, indices[0])
    for index, size, what in zip(indices, shape, ("rows", "columns")):
        if size.is_Integer and index >= size:
            raise FormulaError(f"{param}: the parameter is {text}, its {what} are numbered 0 to {size - 1}",
                               hint="indices count from 0, as in NumPy")
        if not size.is_Integer and index >= MAX_SYMBOLIC_INDEX:
            raise FormulaError(f"{param}: an entry along the symbolic size {size} is checked with sizes up to "
                               f"{MAX_SYMBOLIC_INDEX + 3}, so its index must be below {MAX_SYMBOLIC_INDEX}")
    return indices[0], indices[1]


def _other_entry(built: Expr, whole: Expr, entry: tuple[int, int], judge: "_Judge",
                 name: str | None) -> str | None:
    """The hint when the formula is another entry of the derived matrix (the row and the column swapped,
    indices counted from 1): the entry it equals at every point, or None."""
    candidates: set | None = None
    for _sizes, _values, evaluator, _expected in judge.points:
        with np.errstate(all="ignore"):
            matrix = np.asarray(evaluator(whole), dtype=np.float64)
            got = float(np.asarray(evaluator(built), dtype=np.float64).reshape(()))
        close = np.abs(matrix - got) <= RTOL * np.max(np.abs(matrix)) + ATOL
        found = {(int(r), int(c)) for r, c in zip(*np.nonzero(close))}
        candidates = found if candidates is None else candidates & found
    candidates = (candidates or set()) - {entry}
    if len(candidates) != 1:
        return None
    (row, col), = candidates
    what = f"{name}[{row}, {col}]" if name else f"entry [{row}, {col}]"
    if (row, col) == entry[::-1]:
        why = "the row and the column swapped"
    elif (row + 1, col + 1) == entry or (row + 1, col) == entry or (row, col + 1) == entry:
        why = "indices count from 0"
    else:
        why = "another entry"
    return f"another entry: your formula is {what}, not [{entry[0]}, {entry[1]}]: {why}"


def _least_size(tree: ast.Node, indices: tuple[int, ...] | None) -> int:
    """The smallest value a symbolic size may take when checking: above every index the formula and the
    parameter name, so every entry exists (at most :data:`MAX_SYMBOLIC_INDEX` + 1)."""
    largest = max([*(indices or ()), *(i for node in ast.walk(tree) if isinstance(node, ast.Entry)
                                       for i in node.indices)], default=0)
    return max(2, min(largest, MAX_SYMBOLIC_INDEX) + 1)


def _fit(value: Expr, shape: tuple | None) -> Expr:
    """``value`` in the target's form: a scalar stands for the 1×1 matrix when the target is 1×1, and a 1×1
    matrix for its entry when the target is one entry (``shape`` None)."""
    if shape is None:
        return MatrixElement(value, 0, 0) if value.is_Matrix and value.shape == (1, 1) else value
    return _as_matrix(value, shape)


def _as_matrix(value: Expr, shape: tuple) -> Expr:
    """A scalar formula stands for the 1×1 matrix when the target is 1×1."""
    if value.is_Matrix or shape != (1, 1):
        return value
    return value * OneMatrix(1, 1)


def _expansion_bound(tree: ast.Node) -> int:
    """An upper bound on the terms the formula's elementwise algebra expands to.

    :func:`~symbackprop.calculus.simplify.tidy` lets SymPy cancel and factor, which
    expands: ``(a + b + c)^64`` or a product of twenty sums would take hours.
    Sums add, products multiply, powers raise; a ``z`` or ``delta`` counts as
    three terms, for the sum it may be written out into.
    """
    bound: dict[int, int] = {}  # by id: hashing a subtree hashes all of it
    for node in reversed(list(ast.walk(tree))):
        if isinstance(node, ast.BinOp):
            left, right = bound[id(node.left)], bound[id(node.right)]
            if node.op in ("add", "sub"):
                value = left + right
            elif node.op == "pow":
                exponent = node.right.text if isinstance(node.right, ast.Number) else ""
                value = left ** min(int(exponent), 64) if exponent.isdigit() else SYMBOLIC_LIMIT + 1
            else:
                value = left * right
        elif isinstance(node, (ast.Neg, ast.Transpose)):
            value = bound[id(node.operand)]
        elif isinstance(node, ast.Name):
            match = LAYERED_NAME.match(node.id)
            kind = node.id if node.layer is not None else match.group(1) if match else None
            value = 3 if kind in ("z", "delta") else 1
        else:
            value = 1
        bound[id(node)] = min(value, SYMBOLIC_LIMIT + 1)
    return bound[id(tree)]


def _identical(formula: Expr, derived: Expr) -> bool:
    """True when tidying both gives one expression, with the names kept or written out."""
    return tidy(formula) == tidy(derived) or tidy(expand_names(formula)) == tidy(expand_names(derived))


def _where(derivation: Derivation, derived: Expr, name: str) -> list[str]:
    """``where δ⁽²⁾ = …`` lines for every named adjoint (δ, ∂C/∂a) the derived expression uses, directly or not."""
    deltas = {node for node in derivation.adjoints.values() if isinstance(node, Named)}
    used: list = []
    seen: set = set()
    stack = [derived]
    while stack:  # each delta's definition read once: linear in depth
        for node in walk(stack.pop()):
            if node in deltas and node not in seen and node.name != name:
                seen.add(node)
                used.append(node)
                stack.append(node.definition)
    lines = [f"          {to_text(d)} = {to_text(d.definition)}" for d in sorted(used, key=lambda d: d.name)]
    if lines:
        lines[0] = "    where " + lines[0].lstrip()
    return lines


class _Judge:
    """Random points, the derived values there, and the comparison of a formula with them."""

    def __init__(self, derivation: Derivation, derived: Expr, learning_rate: sympy.Symbol | None,
                 trials: int, seed: int, least: int = 2) -> None:
        program = derivation.program
        self.symbolic = bool(program.size_symbols)
        self.least = least
        rng = np.random.default_rng(seed)
        self.points: list[tuple[dict[str, int], dict[str, object], Evaluator, np.ndarray]] = []
        for trial in range(trials):
            # the first point has the smallest sizes, so a counterexample is as small as it can be
            sizes = {s.name: least if trial == 0 else int(rng.integers(least, least + 4))
                     for s in program.size_symbols}
            values = random_values(program, sizes=sizes, seed=rng)
            if learning_rate is not None:
                values[learning_rate.name] = float(rng.uniform(0.1, 1.0))
            evaluator = Evaluator(values)
            expected = np.atleast_2d(np.asarray(evaluator(derived), dtype=np.float64))  # one entry is 1×1
            self.points.append((sizes, values, evaluator, expected))
        self.derived = derived

    def describe(self) -> str:
        sizes = f" with sizes from {self.least} to {self.least + 3}" if self.symbolic else ""
        return f"equal at {len(self.points)} random points{sizes} (relative tolerance {RTOL:g})"

    def counterexample(self, formula: Expr) -> Counterexample | None:
        """The first point where ``formula`` differs from the derived expression, or None."""
        for sizes, values, evaluator, expected in self.points:
            with np.errstate(all="ignore"):  # an overflow is a difference like any other
                got = np.asarray(evaluator(formula), dtype=np.float64).reshape(expected.shape)
                error = np.abs(got - expected)
            error = np.where(np.isnan(error), np.inf, error)
            if np.all(error <= RTOL * np.max(np.abs(expected)) + ATOL):
                continue
            index = np.unravel_index(int(np.argmax(error)), error.shape)
            return Counterexample(
                sizes=MappingProxyType(sizes),
                values=MappingProxyType({k: v for k, v in values.items() if k not in sizes}),
                index=(int(index[0]), int(index[1])),
                expected=float(expected[index]),
                got=float(got[index]),
            )
        return None

    def agrees(self, formula: Expr) -> bool:
        return self.counterexample(formula) is None

    def values(self, formula: Expr) -> list[np.ndarray]:
        """``formula``'s value at each point, shaped like the derived one."""
        with np.errstate(all="ignore"):
            return [np.asarray(evaluator(formula), dtype=np.float64).reshape(expected.shape)
                    for _, _, evaluator, expected in self.points]

    def agrees_without(self, formula_values: list[np.ndarray], total: Expr, term: Expr) -> bool:
        """Whether a formula with these values equals the derived expression with ``term`` of the sum
        ``total`` left out."""
        for (sizes, values, _, expected), got in zip(self.points, formula_values):
            evaluator = Evaluator(values)
            with np.errstate(all="ignore"):
                evaluator.bind(self.derived)
                evaluator.memo[total] = evaluator(total) - evaluator(term)
                changed = np.atleast_2d(np.asarray(evaluator(self.derived), dtype=np.float64))
            if np.allclose(changed, expected, rtol=RTOL, atol=ATOL):
                return False  # the term is zero here: leaving it out changes nothing
            if not np.all(np.abs(got - changed) <= RTOL * np.max(np.abs(changed)) + ATOL):
                return False
        return True


#: at most this many terms of sums are tried as the one a formula left out
MAX_TERMS = 40


def _missing_term(built: Expr, derived: Expr, derivation: Derivation, judge: "_Judge") -> str | None:
    """"the term t of ∂C/∂x is missing" when the formula equals the derived one with one term of one of
    its sums left out (the normalisation's x̂ ⊙ Σ(ĝ ⊙ x̂), a skip connection's ∂C/∂a⁽ᵏ⁾): the sums of
    the derived expression and of the named adjoints it reads, each term in turn valued as zero."""
    adjoints = {node for node in derivation.adjoints.values() if isinstance(node, Named)}
    sums: list[tuple[Expr, str]] = []  # a sum, and what it is a part of
    seen: set = set()
    stack: list[tuple[Expr, str]] = [(derived, "the derived formula")]  # then each named adjoint it reads
    while stack and len(sums) < MAX_TERMS:
        root, owner = stack.pop()
        for node in walk(root):
            if isinstance(node, Named) and node in adjoints and node not in seen:
                seen.add(node)
                stack.append((node.definition, to_text(node)))
            elif isinstance(node, sympy.MatAdd) and node not in seen:
                seen.add(node)
                sums.append((node, owner))
    tried = 0
    values = judge.values(built)  # the formula's values at the points, once for every term tried
    for total, owner in sums:
        for term in total.args:
            tried += 1
            if tried > MAX_TERMS:
                return None
            if judge.agrees_without(values, total, term):
                return f"the term {to_text(term)} of {owner} is missing"
    return None


def _number(value: float) -> str:
    return f"{value:.6g}"


def _value_text(value: object) -> str:
    array = np.asarray(value, dtype=np.float64)
    if array.size == 1:
        return _number(float(array.reshape(())))
    return "[" + "; ".join(", ".join(_number(x) for x in row) for row in np.atleast_2d(array)) + "]"


def _describe(counterexample: Counterexample, target: str, entry: bool = False) -> list[str]:
    """The counterexample as message lines: sizes, values if few, both numbers (``entry``: the target is
    one entry, which ``target`` names)."""
    lines = ["  counterexample:"]
    if counterexample.sizes:
        lines.append("    sizes: " + ", ".join(f"{k} = {v}" for k, v in counterexample.sizes.items()))
    entries = sum(np.size(v) for v in counterexample.values.values())
    if entries <= 16:
        lines.append("    values: " + ", ".join(f"{k} = {_value_text(v)}" for k, v in counterexample.values.items()))
    else:
        lines.append("    values: random (CheckResult.counterexample.values holds them)")
    row, col = counterexample.index
    where = "    " if entry else f"    entry [{row}, {col}]: "
    lines.append(f"{where}your formula gives {_number(counterexample.got)}, "
                 f"{target} is {_number(counterexample.expected)}")
    return lines


# --- hints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    """One changed formula: what kind of slip it repairs, and the part before and after (None: the whole)."""

    kind: str
    tree: ast.Node
    old: ast.Node | None = None
    new: ast.Node | None = None
    #: for the whole formula rewritten for the other layout: this network's layout
    layout: str | None = None

    def text(self) -> str:
        fixed = ast.unparse(self.tree)
        if self.layout is not None:
            sample = "row" if self.layout == "rows" else "column"
            other = "column" if self.layout == "rows" else "row"
            return (f"{self.kind} (a sample per {other}); this network is in the {self.layout} layout (a sample "
                    f"per {sample}), where it is {fixed}")
        if self.old is None or self.new is None:
            return f"{self.kind}: {fixed} is right"
        return f"{self.kind}: {ast.unparse(self.new)} in place of {ast.unparse(self.old)} makes it right: {fixed}"

    def part(self) -> str:
        """The slip alone, for a hint that names two: ``a missing transpose (a0.T in place of a0)``."""
        if self.layout is not None:
            return f"{self.kind} (this network's is {self.layout})"
        if self.old is None or self.new is None:
            return f"{self.kind} (of the whole)" if self.kind in ("a missing transpose", "a sign") else self.kind
        return f"{self.kind} ({ast.unparse(self.new)} in place of {ast.unparse(self.old)})"


def _hint(tree: ast.Node, shape: tuple | None, judge: _Judge, builder: MatrixBuilder, vocabulary: Vocabulary,
          derivation: Derivation) -> tuple[str | None, bool]:
    """The first single change that makes the formula right, else the first pair of changes, as text (None
    when none does), and whether pairs were left untried because there are more than :data:`MAX_PAIRS`."""
    tried: set[ast.Node] = {tree}

    def right(candidate: ast.Node) -> bool:
        try:
            built = _fit(builder.build(candidate), shape)
        except SymbackpropError:  # a change that does not make sense (a3 in a two-layer network, say)
            return False
        return shape_of(built) == shape and judge.agrees(built)

    singles: list[_Change] = []
    layout = _other_layout(tree, vocabulary, derivation.program.layout)
    for change in itertools.chain([layout], _changes(tree, vocabulary, derivation)):
        if change.tree in tried:
            continue
        tried.add(change.tree)
        if len(tried) > MAX_CANDIDATES:
            return None, True
        if right(change.tree):
            return change.text(), False
        singles.append(change)
    # two slips: each single change followed by each change of its result, in the order singles are tried
    pairs = 0
    for first in singles:
        for second in _changes(first.tree, vocabulary, derivation):
            if second.tree in tried:
                continue
            tried.add(second.tree)
            pairs += 1
            if pairs > MAX_PAIRS:
                return None, True
            if right(second.tree):
                return f"two slips: {first.part()}, and {second.part()}: {ast.unparse(second.tree)} is right", False
    return None, False


def _other_layout(tree: ast.Node, vocabulary: Vocabulary, layout: str) -> _Change:
    """The formula as it reads in ``layout`` when it was written for the other one.

    Every matrix of one layout is the transpose of its namesake in the other (X, W, δ, a, z alike), so a
    formula F for the other layout is F(Qᵀ)ᵀ here.  The transposes are pushed down to the names, where they
    cancel: products swap their factors, elementwise operations and functions keep their order, ``ones(r, c)``
    becomes ``ones(c, r)``, ``sum(M, 1)`` becomes ``sum(M, 2)`` and an entry's indices swap.
    """
    scalar_names = {*vocabulary.scalars, *vocabulary.learning_rates}
    scalar: dict[int, bool] = {}
    out: dict[int, ast.Node] = {}
    swapped_dimension = {ast.Number("1"): ast.Number("2"), ast.Number("2"): ast.Number("1")}
    for node in reversed(list(ast.walk(tree))):  # children before their parents, no recursion
        kids = children(node)
        new = [out[id(child)] for child in kids]
        if isinstance(node, ast.Number):
            scalar[id(node)], result = True, node
        elif isinstance(node, ast.Name):
            scalar[id(node)] = canonical_name(node, vocabulary.depth) in scalar_names
            result = node
        elif isinstance(node, ast.Entry):
            scalar[id(node)], result = True, replace(node, operand=new[0], indices=node.indices[::-1])
        elif isinstance(node, ast.Transpose):
            scalar[id(node)] = scalar[id(node.operand)]
            result = new[0].operand if isinstance(new[0], ast.Transpose) else ast.Transpose(new[0])
        elif isinstance(node, ast.Neg):
            scalar[id(node)], result = scalar[id(node.operand)], replace(node, operand=new[0])
        elif isinstance(node, ast.BinOp):
            both = scalar[id(node.left)] and scalar[id(node.right)]
            scalar[id(node)] = both
            if node.op in ("matmul", "juxt") and not scalar[id(node.left)] and not scalar[id(node.right)]:
                result = replace(node, left=new[1], right=new[0])
            else:
                result = replace(node, left=new[0], right=new[1])
        else:  # a call
            if node.func == "ones" and len(new) == 2:
                new = new[::-1]
            elif node.func in ("sum", "mean", "softmax", "log_softmax") and len(new) == 2:
                new[1] = swapped_dimension.get(new[1], new[1])
            scalar[id(node)] = node.func != "ones" and (
                (node.func in ("sum", "mean", "trace", "tr") and len(new) == 1) or all(scalar[id(c)] for c in kids))
            result = replace(node, args=tuple(new))
        out[id(node)] = result
    theirs = "columns" if layout == "rows" else "rows"
    return _Change(f"a formula for the {theirs} layout", out[id(tree)], layout=layout)


def _with_child(node: ast.Node, index: int, child: ast.Node) -> ast.Node:
    if isinstance(node, ast.BinOp):
        return replace(node, left=child) if index == 0 else replace(node, right=child)
    if isinstance(node, (ast.Neg, ast.Transpose, ast.Entry)):
        return replace(node, operand=child)
    assert isinstance(node, ast.Call)
    return replace(node, args=(*node.args[:index], child, *node.args[index + 1 :]))


def _subtrees(tree: ast.Node) -> list[tuple[tuple[int, ...], ast.Node]]:
    """Every subtree with its path (child indices from the root), parents first."""
    found, stack = [], [((), tree)]
    while stack:
        path, node = stack.pop()
        found.append((path, node))
        stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(children(node)))))
    return found


def _replace(tree: ast.Node, path: tuple[int, ...], new: ast.Node) -> ast.Node:
    """``tree`` with the subtree at ``path`` replaced by ``new``."""
    spine = [tree]
    for index in path:
        spine.append(children(spine[-1])[index])
    for parent, index in zip(reversed(spine[:-1]), reversed(path)):
        new = _with_child(parent, index, new)
    return new


def _shift(node: ast.Name, by: int) -> ast.Name | None:
    """``node`` one layer up or down (``a2`` → ``a1``, ``a^{(L)}`` → ``a^{(L-1)}``), None if not layered."""
    if node.layer is None:
        match = LAYERED_NAME.match(node.id)
        if match is None or int(match.group(3)) + by < 0:
            return None
        return replace(node, id=f"{match.group(1)}{match.group(2)}{int(match.group(3)) + by}")
    if isinstance(node.layer, int):
        return replace(node, layer=node.layer + by) if node.layer + by >= 0 else None
    return replace(node, layer=ast.LayerRef(node.layer.symbol, node.layer.offset + by))


def _is_derivative(node: ast.Node, vocabulary: Vocabulary) -> bool:
    return isinstance(node, ast.Call) and (
        node.derivative > 0 or (node.func.startswith("d") and node.func[1:] in vocabulary.functions)
    )


def _activations_applied(derivation: Derivation) -> list[Elementwise]:
    """σ(z) for every activation the forward pass applies to a named quantity, in program order."""
    found = []
    for d in derivation.program.forward:
        found += [node for node in walk(d.expr) if isinstance(node, Elementwise) and node.order == 0
                  and isinstance(node.arg, Named)]
    return list(dict.fromkeys(found))


def _changes(tree: ast.Node, vocabulary: Vocabulary, derivation: Derivation) -> Iterator[_Change]:
    """Changed formulas, one slip repaired in each, in the order the hints are tried."""
    nodes = _subtrees(tree)
    products = ("mul", "juxt", "hadamard")

    def fix(kind: str, path: tuple[int, ...], old: ast.Node, new: ast.Node) -> _Change:
        return _Change(kind, _replace(tree, path, new), old if path else None, new if path else None)

    for path, node in nodes:
        if isinstance(node, ast.Transpose):
            yield fix("an extra transpose", path, node, node.operand)
        elif not isinstance(node, ast.Number):
            yield fix("a missing transpose", path, node, ast.Transpose(node))

    # the σ' factor written in the formula's own style: z^{(1)} or z1, ⊙ or *
    latex = any(isinstance(n, ast.Name) and n.layer is not None for _, n in nodes)
    ops = {n.op for _, n in nodes if isinstance(n, ast.BinOp)}
    times = "mul" if "mul" in ops and "hadamard" not in ops else "hadamard"
    for applied in _activations_applied(derivation):
        activation = derivation.program.activation_of(applied)
        if activation is not None and activation.derivative != 1:
            split = naming.split_layer_name(applied.arg.name)
            argument = ast.Name(split[0], split[1]) if latex and split else ast.Name(applied.arg.name)
            factor = ast.Call(activation.name, (argument,), 1)
            for path, node in nodes:
                if not isinstance(node, ast.Number):
                    yield fix("a missing σ' factor", path, node, ast.BinOp(times, node, factor))
    for path, node in nodes:
        if isinstance(node, ast.BinOp) and node.op in products:
            for kept, other in ((node.left, node.right), (node.right, node.left)):
                if _is_derivative(other, vocabulary):
                    yield fix("an extra σ' factor", path, node, kept)

    two = ast.Number("2")
    for path, node in nodes:
        if isinstance(node, ast.BinOp) and node.op in products and two in (node.left, node.right):
            yield fix("an extra factor 2", path, node, node.right if node.left == two else node.left)
        if isinstance(node, ast.BinOp) and node.op == "div" and node.right == two:
            yield fix("an extra factor 1/2", path, node, node.left)
    # scaling a factor of a product scales the product: only the whole formula and the terms of sums
    summands = [((), tree)] + [((*path, side), operand) for path, node in nodes
                               if isinstance(node, ast.BinOp) and node.op in ("add", "sub")
                               for side, operand in enumerate((node.left, node.right))]
    for path, node in summands:
        yield fix("a missing factor 2", path, node, ast.BinOp("mul", two, node))
        yield fix("a missing factor 1/2", path, node, ast.BinOp("div", node, two))
    # an average over the batch forgotten, or one too many, when the batch is a symbol
    batch = vocabulary.scalars.get("m")
    if isinstance(batch, sympy.Symbol):
        size = ast.Name(batch.name)
        for path, node in nodes:
            if isinstance(node, ast.BinOp) and node.op == "div" and node.right == size:
                yield fix(f"an extra factor 1/{batch.name}", path, node, node.left)
        for path, node in summands:
            yield fix(f"a missing factor 1/{batch.name}", path, node, ast.BinOp("div", node, size))

    names = [(path, node) for path, node in nodes if isinstance(node, ast.Name)]
    for by in (-1, 1):
        shifted = tree
        for path, node in names:
            moved = _shift(node, by)
            if moved is not None:
                shifted = _replace(shifted, path, moved)
        yield _Change(f"every layer index one {'lower' if by < 0 else 'higher'}", shifted)
    for path, node in names:
        for by in (-1, 1):
            moved = _shift(node, by)
            if moved is not None:
                yield fix("an off-by-one layer index", path, node, moved)

    # the sign of the whole: a leading minus dropped (-delta2 @ a1.T, not -(-delta2 @ a1.T)), or one put in front
    lead: tuple[int, ...] = ()
    node = tree
    while isinstance(node, ast.BinOp) and node.op in (*products, "matmul", "div", "hdiv"):
        lead, node = (*lead, 0), node.left
    yield fix("a sign", lead, node, node.operand) if isinstance(node, ast.Neg) else _Change("a sign", ast.Neg(tree))
    for path, node in nodes:
        if path and isinstance(node, ast.Neg):
            yield fix("a sign", path, node, node.operand)
    for path, node in nodes:
        if isinstance(node, ast.BinOp) and node.op in ("add", "sub"):
            yield fix("a sign", path, node, replace(node, op="sub" if node.op == "add" else "add"))

    for path, node in nodes:
        if isinstance(node, ast.BinOp) and node.op in ("mul", "hadamard", "matmul"):
            yield fix("a product of the wrong kind", path, node,
                      replace(node, op="hadamard" if node.op == "matmul" else "matmul"))
