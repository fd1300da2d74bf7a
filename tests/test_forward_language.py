"""The formula language for forward passes: broadcasting, mean, sqrt, exp, log, softmax with a dimension, definitions.

Every construct is proved four ways: the SymPy expression built and its shape;
its value under the numeric evaluator against NumPy written here; the gradient
the chain rule derives through it against central finite differences; and the
NumPy code printed for it, run, against the evaluator.
"""

from __future__ import annotations

import re

from types import MappingProxyType

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy import HadamardPower, MatAdd, MatMul, MatrixSymbol, OneMatrix

from symbackprop.calculus import runtime
from symbackprop.calculus.autodiff import grad
from symbackprop.calculus.expressions import (
    Broadcast,
    Elementwise,
    LogSoftmax,
    Named,
    Softmax,
    SumEntries,
    hadamard,
)
from symbackprop.calculus.numeric import evaluate
from symbackprop.errors import FormulaError, FormulaSyntaxError, ShapeError, SymbackpropError
from symbackprop.language.definitions import MAX_NAME_LENGTH, parse_definition, split_definition
from symbackprop.language.matrix import MatrixBuilder, Vocabulary, broadcast_shape
from symbackprop.language.syntax import MAX_LENGTH, parse
from symbackprop.model.activations import ACTIVATIONS, EXP, LOG, SQRT
from symbackprop.printing.latex import to_latex
from symbackprop.printing.numpy import to_numpy
from symbackprop.printing.text import to_text


def size(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


n0, n1, m = size("n_0"), size("n_1"), size("m")
X, Y, P = MatrixSymbol("X", n0, m), MatrixSymbol("Y", n0, m), MatrixSymbol("P", n0, m)  # P: positive entries
W1, b1, W2 = MatrixSymbol("W1", n1, n0), MatrixSymbol("b1", n1, 1), MatrixSymbol("W2", n0, n1)
c, r = MatrixSymbol("c", n0, 1), MatrixSymbol("r", 1, m)  # a column and a row that fit X
s = MatrixSymbol("s", n0, 1)  # a positive column, to divide by
z1 = Named("z1", MatMul(W1, X) + Broadcast(b1, n1, m))  # an earlier definition, as the model builder makes it

SIZES = {"n_0": 3, "n_1": 4, "m": 5}


def vocabulary(axis: int = 0, quantities: dict | None = None, scalars: dict | None = None) -> Vocabulary:
    """A vocabulary built directly, as a model of named definitions builds one."""
    if quantities is None:
        quantities = {q.name: q for q in (X, Y, P, W1, b1, W2, c, r, s, z1)}
    if scalars is None:
        scalars = {"n_0": n0, "n_1": n1, "m": m}
    return Vocabulary(
        quantities=MappingProxyType(quantities),
        scalars=MappingProxyType(scalars),
        sizes=(sympy.Integer(1), *scalars.values()),
        learning_rates=(),
        functions=MappingProxyType(dict(ACTIVATIONS)),
        depth=0,
        axis=axis,
    )


def build(text: str, axis: int = 0):
    return MatrixBuilder(vocabulary(axis)).build(parse(text))


def values(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    k, h, b = SIZES["n_0"], SIZES["n_1"], SIZES["m"]
    return {
        "X": rng.normal(size=(k, b)), "Y": rng.normal(size=(k, b)), "P": rng.uniform(0.5, 2.0, size=(k, b)),
        "W1": rng.normal(size=(h, k)), "b1": rng.normal(size=(h, 1)), "W2": rng.normal(size=(k, h)),
        "c": rng.normal(size=(k, 1)), "r": rng.normal(size=(1, b)), "s": rng.uniform(0.5, 2.0, size=(k, 1)),
        **SIZES,
    }  # fmt: skip


# --- NumPy, written independently of the library -----------------------------------------


def np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_batchnorm(x):
    mu = x.mean(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=1, keepdims=True) + 0.001)


#: (formula, NumPy of the values, symbolic shape or None for a scalar, the quantities to differentiate by)
CASES = [
    # broadcasting: a column across the columns, a row down the rows, on either side
    ("X + c", lambda v: v["X"] + v["c"], (n0, m), "X c"),
    ("c + X", lambda v: v["c"] + v["X"], (n0, m), "X c"),
    ("X - r", lambda v: v["X"] - v["r"], (n0, m), "X r"),
    ("r - X", lambda v: v["r"] - v["X"], (n0, m), "X r"),
    ("X * c", lambda v: v["X"] * v["c"], (n0, m), "X c"),
    ("r .* X", lambda v: v["r"] * v["X"], (n0, m), "X r"),
    ("X ⊙ r", lambda v: v["X"] * v["r"], (n0, m), "X r"),
    ("X / s", lambda v: v["X"] / v["s"], (n0, m), "X s"),
    ("X ./ r", lambda v: v["X"] / v["r"], (n0, m), "X r"),
    ("c / P", lambda v: v["c"] / v["P"], (n0, m), "c P"),
    ("W1 @ X + b1", lambda v: v["W1"] @ v["X"] + v["b1"], (n1, m), "X W1 b1"),
    ("X - 2 c", lambda v: v["X"] - 2 * v["c"], (n0, m), "X c"),
    ("X * (c + c)", lambda v: v["X"] * (v["c"] + v["c"]), (n0, m), "X c"),
    # mean, of everything and along each dimension
    ("mean(X)", lambda v: np.mean(v["X"]), None, "X"),
    ("mean(X, 1)", lambda v: v["X"].mean(axis=0, keepdims=True), (1, m), "X"),
    ("mean(X, 2)", lambda v: v["X"].mean(axis=1, keepdims=True), (n0, 1), "X"),
    ("X - mean(X)", lambda v: v["X"] - np.mean(v["X"]), (n0, m), "X"),
    ("X - mean(X, 1)", lambda v: v["X"] - v["X"].mean(axis=0, keepdims=True), (n0, m), "X"),
    ("(X - mean(X, 2)) / sqrt(mean((X - mean(X, 2))^2, 2) + 0.001)", lambda v: np_batchnorm(v["X"]), (n0, m), "X"),
    # entrywise math functions and their derivatives
    ("sqrt(P)", lambda v: np.sqrt(v["P"]), (n0, m), "P"),
    ("exp(X)", lambda v: np.exp(v["X"]), (n0, m), "X"),
    ("log(P)", lambda v: np.log(v["P"]), (n0, m), "P"),
    ("ln(P)", lambda v: np.log(v["P"]), (n0, m), "P"),
    ("sqrt'(P)", lambda v: 0.5 / np.sqrt(v["P"]), (n0, m), "P"),
    ("exp'(X)", lambda v: np.exp(v["X"]), (n0, m), "X"),
    ("log'(P)", lambda v: 1 / v["P"], (n0, m), "P"),
    ("log(P) + exp(X) .* sqrt(P)", lambda v: np.log(v["P"]) + np.exp(v["X"]) * np.sqrt(v["P"]), (n0, m), "X P"),
    # sqrt, exp and log of scalars
    ("exp(2) * X", lambda v: np.exp(2) * v["X"], (n0, m), "X"),
    ("sqrt(m) X", lambda v: np.sqrt(SIZES["m"]) * v["X"], (n0, m), "X"),
    ("X / log(m)", lambda v: v["X"] / np.log(SIZES["m"]), (n0, m), "X"),
    ("X / sqrt(sum(P))", lambda v: v["X"] / np.sqrt(v["P"].sum()), (n0, m), "X P"),
    ("exp(mean(X)) * P", lambda v: np.exp(v["X"].mean()) * v["P"], (n0, m), "X P"),
    # softmax and log-softmax of each column (dimension 1) and each row (dimension 2)
    ("softmax(X, 1)", lambda v: np_softmax(v["X"], 0), (n0, m), "X"),
    ("softmax(X, 2)", lambda v: np_softmax(v["X"], 1), (n0, m), "X"),
    ("log_softmax(X, 1)", lambda v: np.log(np_softmax(v["X"], 0)), (n0, m), "X"),
    ("log_softmax(X, 2)", lambda v: np.log(np_softmax(v["X"], 1)), (n0, m), "X"),
    ("softmax(X)", lambda v: np_softmax(v["X"], 0), (n0, m), "X"),
    ("log_softmax(X)", lambda v: np.log(np_softmax(v["X"], 0)), (n0, m), "X"),
    # registered activations by name, and a whole forward pass through a named definition
    ("tanh(z1)", lambda v: np.tanh(v["W1"] @ v["X"] + v["b1"]), (n1, m), "X W1 b1"),
    ("sigmoid(X - c)", lambda v: np_sigmoid(v["X"] - v["c"]), (n0, m), "X c"),
    ("relu(X + r)", lambda v: np.maximum(v["X"] + v["r"], 0), (n0, m), "X r"),
    ("sum((W2 @ tanh(z1) + X - Y)^2)",
     lambda v: np.sum((v["W2"] @ np.tanh(v["W1"] @ v["X"] + v["b1"]) + v["X"] - v["Y"]) ** 2), None,
     "X W1 b1 W2"),
]  # fmt: skip
IDS = [case[0] for case in CASES]


def targets(case) -> list[str]:
    """The names to differentiate by."""
    return case[3].split()


# --- built expressions and their shapes ----------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_construct_builds_with_its_shape(case) -> None:
    text, _, shape = case[:3]
    built = build(text)
    if shape is None:
        assert not built.is_Matrix
    else:
        assert built.shape == shape


def test_broadcasting_builds_a_broadcast_of_the_vector() -> None:
    assert build("X + c") == MatAdd(X, Broadcast(c, n0, m))
    assert build("c + X") == MatAdd(Broadcast(c, n0, m), X)
    assert build("X - r") == MatAdd(X, MatMul(-1, Broadcast(r, n0, m)))  # the sign outside: printed X - r
    assert build("X * c") == hadamard(X, Broadcast(c, n0, m))
    assert build("X / s") == hadamard(X, Broadcast(HadamardPower(s, -1), n0, m))
    assert build("W1 @ X + b1") == MatAdd(MatMul(W1, X), Broadcast(b1, n1, m))
    assert Broadcast(c, n0, m).along_columns and not Broadcast(r, n0, m).along_columns


def test_a_1x1_matrix_still_stands_for_every_entry() -> None:
    one = MatrixSymbol("o", 1, 1)
    builder = MatrixBuilder(vocabulary(quantities={"X": X, "o": one, "c": c}))
    assert builder.build(parse("X + o")) == MatAdd(X, MatMul(SumEntries(one), OneMatrix(n0, m)))
    assert builder.build(parse("c * o")) == MatMul(c, SumEntries(one))  # left as written


def test_mean_is_the_sum_divided_by_the_count() -> None:
    assert build("mean(X)") == SumEntries(X) / (n0 * m)
    assert build("mean(X, 1)") == MatMul(1 / n0, OneMatrix(1, n0), X)
    assert build("mean(X, 2)") == MatMul(1 / m, X, OneMatrix(m, 1))
    one_column = MatrixBuilder(vocabulary(quantities={"c": c}))
    assert one_column.build(parse("mean(c, 2)")) == MatMul(c, OneMatrix(1, 1))  # a mean of one entry is the entry


def test_math_functions_are_elementwise_on_matrices_and_sympy_functions_on_scalars() -> None:
    assert build("sqrt(P)") == Elementwise("sqrt", SQRT.function, P)
    assert build("exp(X)") == Elementwise("exp", EXP.function, X)
    assert build("log(P)") == build("ln(P)") == build(r"\ln P") == Elementwise("log", LOG.function, P)
    assert build("log'(P)") == Elementwise("log", LOG.function, P, 1)
    assert build("exp(2)") == sympy.exp(2)
    assert build("sqrt(m)") == sympy.sqrt(m)
    assert build("log(n_0)") == sympy.log(n0)
    assert build("sqrt(4)") == 2 and build("log(1)") == 0


def test_softmax_dimension_1_is_each_column_and_2_each_row() -> None:
    assert build("softmax(X, 1)") == Softmax(X, 0)
    assert build("softmax(X, 2)") == Softmax(X, 1)
    assert build("log_softmax(X, 1)") == LogSoftmax(X, 0)
    assert build("log_softmax(X, 2)") == LogSoftmax(X, 1)
    # without a dimension, the vocabulary's axis: 0 in the columns layout, 1 in the rows layout
    assert build("softmax(X)") == Softmax(X, 0) and build("softmax(X)", axis=1) == Softmax(X, 1)
    assert build("log_softmax(X)") == LogSoftmax(X, 0) and build("log_softmax(X)", axis=1) == LogSoftmax(X, 1)


def test_new_functions_print_in_text_latex_and_numpy() -> None:
    assert to_text(build("sqrt(P)")) == "sqrt(P)"
    assert to_latex(build("sqrt(P)")) == r"\sqrt{P}"
    assert to_latex(build("exp(P)")) == r"\exp(P)"
    assert to_numpy(build("W1 @ X + b1")) == "W1 @ X + b1"
    assert to_numpy(build("X - r")) == "X - r"
    assert to_numpy(build("X * (c + c)")) == "X * (c + c)"  # a broadcast sum keeps its parentheses
    assert to_numpy(build("log_softmax(X, 2)")) == "log_softmax(X, axis=1)"


# --- numeric proof -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_evaluator_agrees_with_numpy(case) -> None:
    text, expected = case[:2]
    v = values()
    got = evaluate(build(text), v)
    want = expected(v)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _objective(built):
    """A scalar through ``built``: Σ R ⊙ built for a fixed random R, or the scalar itself."""
    if not built.is_Matrix:
        return built
    return SumEntries(hadamard(MatrixSymbol("R", *built.shape), built))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_through_each_construct_match_finite_differences(case) -> None:
    built = build(case[0])
    objective = _objective(built)
    v = values(1)
    if built.is_Matrix:
        shape = tuple(int(d.subs({n0: 3, n1: 4, m: 5})) for d in built.shape)
        v["R"] = np.random.default_rng(2).normal(size=shape)
    symbols = {q.name: q for q in (X, Y, P, W1, b1, W2, c, r, s)}
    for name in targets(case):
        gradient = evaluate(grad(objective, symbols[name]), v)
        numeric = np.zeros_like(v[name])
        step = 1e-6
        for index in np.ndindex(v[name].shape):
            plus, minus = dict(v), dict(v)
            plus[name] = v[name].copy()
            minus[name] = v[name].copy()
            plus[name][index] += step
            minus[name][index] -= step
            numeric[index] = (evaluate(objective, plus) - evaluate(objective, minus)) / (2 * step)
        np.testing.assert_allclose(np.broadcast_to(gradient, numeric.shape), numeric, rtol=1e-5, atol=1e-6,
                                   err_msg=f"d/d{name} of {case[0]}")


def _run_numpy(code: str, v: dict):
    """Run printed code; a named quantity (z1) is a variable of its own in generated code, so it is given."""
    v = {**v, "z1": evaluate(z1, v)} if "W1" in v else v
    namespace = {"np": np, **{k: getattr(runtime, k) for k in dir(runtime) if not k.startswith("_")}, **v}
    # the code is what symbackprop printed for an expression the test built, not user text
    return eval(code, namespace)  # noqa: S307


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_printed_numpy_code_computes_what_the_evaluator_does(case) -> None:
    built = build(case[0])
    v = values(3)
    got = _run_numpy(to_numpy(built), v)
    want = evaluate(built, v)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    left=st.sampled_from(["full", "column", "row", "one"]),
    right=st.sampled_from(["full", "column", "row", "one"]),
    op=st.sampled_from(["+", "-", "*", ".*", "⊙", "/", "./"]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=80, deadline=None)
def test_broadcasting_agrees_with_numpy_for_any_shapes(rows, cols, left, right, op, seed) -> None:
    shapes = {"full": (rows, cols), "column": (rows, 1), "row": (1, cols), "one": (1, 1)}
    a, b = MatrixSymbol("A", *shapes[left]), MatrixSymbol("B", *shapes[right])
    builder = MatrixBuilder(vocabulary(quantities={"A": a, "B": b}, scalars={}))
    rng = np.random.default_rng(seed)
    va = rng.normal(size=shapes[left])
    vb = rng.uniform(0.5, 2.0, size=shapes[right]) * rng.choice([-1, 1], size=shapes[right])
    numpy_ops = {"+": np.add, "-": np.subtract, "*": np.multiply, ".*": np.multiply, "⊙": np.multiply,
                 "/": np.divide, "./": np.divide}  # fmt: skip
    want = numpy_ops[op](va, vb)
    # NumPy's outer broadcast, a column against a row, each spread along the other's axis, is refused
    outer = want.shape not in (va.shape, vb.shape) and (1, 1) not in (va.shape, vb.shape)
    text = f"A {op} B"
    if outer:
        with pytest.raises(ShapeError, match=re.escape(f"'{op.replace('⊙', '.*')}' works entry by entry, but A is {va.shape[0]}×{va.shape[1]} "
                                                       f"and B is {vb.shape[0]}×{vb.shape[1]}")):
            builder.build(parse(text))
        return
    built = builder.build(parse(text))
    assert built.shape == want.shape
    got = evaluate(built, {"A": va, "B": vb})
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(_run_numpy(to_numpy(built), {"A": va, "B": vb}), want, rtol=1e-12)


def test_broadcast_shape() -> None:
    assert broadcast_shape((n0, 1), (n0, m)) == (n0, m)
    assert broadcast_shape((n0, m), (1, m)) == (n0, m)
    assert broadcast_shape((n0, m), (n0, m)) == (n0, m)
    assert broadcast_shape((n0, 1), (1, m)) is None
    assert broadcast_shape((n1, 1), (n0, m)) is None


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, error, message", [
    ("X + b1", ShapeError, r"'\+' works entry by entry, but X is n_0×m and b1 is n_1×1$"),
    ("c + r", ShapeError, r"'\+' works entry by entry, but c is n_0×1 and r is 1×m "
                          r"\(a column and a row are not broadcast against each other\)"),
    ("r + c", ShapeError, r"but r is 1×m and c is n_0×1 \(a column and a row are not broadcast against each other\)"),
    ("c + b1", ShapeError, r"'\+' works entry by entry, but c is n_0×1 and b1 is n_1×1$"),  # two columns: no advice
    ("r + b1.T", ShapeError, r"'\+' works entry by entry, but r is 1×m and b1.T is 1×n_1$"),
    ("X - W1", ShapeError, r"'-' works entry by entry, but X is n_0×m and W1 is n_1×n_0"),
    ("r .* X.T", ShapeError, r"'\.\*' works entry by entry, but r is 1×m and X.T is m×n_0"),
    ("X / b1", ShapeError, r"'/' works entry by entry, but X is n_0×m and b1 is n_1×1"),
    ("W1 * X", ShapeError, r"\(for a matrix product write @\)"),
    ("mean(X, 3)", FormulaError, r"the dimension of mean is 1 \(down each column\) or 2 \(along each row\), not 3"),
    ("mean(X, 0)", FormulaError, "the dimension of mean is 1"),
    ("mean(X, m)", FormulaError, "the dimension of mean is 1"),
    ("softmax(X, 3)", FormulaError, "the dimension of softmax is 1"),
    ("log_softmax(X, 1.5)", FormulaError, "the dimension of log_softmax is 1"),
    ("log_softmax(X, 1, 2)", FormulaError, "log_softmax takes a matrix and an optional dimension 1 or 2, not 3"),
    ("mean(X, 1, 2)", FormulaError, "mean takes a matrix and an optional dimension"),
    ("mean(2)", FormulaError, "mean applies to a matrix, and 2 is a scalar"),
    ("mean(m, 1)", FormulaError, "mean applies to a matrix, and m is a scalar"),
    ("mean(mean(X))", FormulaError, r"mean applies to a matrix, and mean\(X\) is a scalar"),
    ("softmax(2)", FormulaError, "softmax applies to a matrix"),
    ("log_softmax(m, 2)", FormulaError, "log_softmax applies to a matrix"),
    ("log_softmax'(X)", FormulaError, "log_softmax has no derivative mark"),
    ("mean'(X)", FormulaError, "mean has no derivative mark"),
    ("sqrt(X, 2)", FormulaError, "sqrt takes one argument, not 2"),
    ("log(0)", FormulaError, "log needs a positive number, not 0"),
    ("log(-2)", FormulaError, "log needs a positive number, not -2"),
    ("sqrt(-1)", FormulaError, "sqrt needs a number that is not negative, not -1"),
    ("exp(691)", FormulaError, r"the number exp\(691\) is out of range"),
    ("exp(1e300)", FormulaError, "out of range"),
    ("exp(-700) * X", FormulaError, "out of range"),
    ("exp(exp(exp(10)))", FormulaError, r"the number exp\(exp\(10\)\) is out of range"),
    ("exp(600)^2", FormulaError, "out of range"),
    ("log'(2)", FormulaError, "log applies to a matrix, and 2 is a scalar"),
    ("sigmoid(2)", FormulaError, "sigmoid applies to a matrix"),
])  # fmt: skip
def test_misuse_raises_an_error_naming_the_fault(text: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build(text)


def test_unknown_function_lists_the_new_ones() -> None:
    with pytest.raises(SymbackpropError) as info:
        build("average(X)")
    for name in ("sqrt", "exp", "log", "log_softmax", "mean"):
        assert name in str(info.value)


# --- definition lines ----------------------------------------------------------------------


@pytest.mark.parametrize("line, name, rhs, offset", [
    ("z1 = W1 @ X + b1", "z1", "W1 @ X + b1", 5),
    ("a1 = tanh(z1)", "a1", "tanh(z1)", 5),
    ("C = sum((a2 - Y)^2)", "C", "sum((a2 - Y)^2)", 4),
    ("  mu=mean(X, 2)  ", "mu", "mean(X, 2)", 5),
    ("x_hat_2 =\t(X - mu) / sigma", "x_hat_2", "(X - mu) / sigma", 10),
    ("type = X", "type", "X", 7),  # a soft keyword is a name in the formula language too
])  # fmt: skip
def test_split_definition(line: str, name: str, rhs: str, offset: int) -> None:
    assert split_definition(line) == (name, rhs, offset)
    assert line[offset:].startswith(rhs)


def test_parse_definition_counts_positions_in_the_whole_line() -> None:
    name, tree = parse_definition("z1 = W1 @ X + b1")
    assert name == "z1" and tree == parse("W1 @ X + b1")
    assert (tree.pos, tree.left.pos, tree.right.pos) == (5, 5, 14)
    with pytest.raises(FormulaSyntaxError) as info:
        parse_definition("a1 = tanh(z1")
    assert info.value.position == len("a1 = tanh(z1")
    assert info.value.caret() == ["  a1 = tanh(z1", "              ^"]


@pytest.mark.parametrize("line, position, message", [
    ("= x", 0, "expected a name before '='"),
    ("a b = x", 0, "'a b' is not one name"),
    ("a == b", 2, "'==' compares, it does not define"),
    ("a = b == c", 6, "'==' compares"),
    ("a <= b", 2, "'<=' compares"),
    ("a != b", 2, "'!=' compares"),
    ("1a = x", 0, "'1a' starts with a digit"),
    ("_a = x", 0, "'_a' starts with '_'"),
    ("a = ", 4, "expected an expression after 'a ='"),
    ("a =   \t", 7, "expected an expression after 'a ='"),
    ("a", 1, "no '='"),
    ("", 0, "no '='"),
    ("a = b = c", 6, "a second '='"),
    ("lambda = x", 0, "'lambda' is a reserved word"),
    ("for = x", 0, "'for' is a reserved word"),
    ("eval = x", 0, "'eval' is a reserved word"),
    ("δ = x", 0, "'δ' is not one name"),
    ("a\u202e = x", 0, "'a\\u202e' is not one name"),  # the bidirectional mark is shown escaped
    ("W^{(1)} = x", 0, "is not one name"),
    ("f(a) = x", 0, "is not one name"),
    ("x" * (MAX_NAME_LENGTH + 1) + " = 1", 0, f"is longer than {MAX_NAME_LENGTH} characters"),
])  # fmt: skip
def test_malformed_definition_lines_say_what_is_expected(line: str, position: int, message: str) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        split_definition(line)
    assert message in info.value.message
    assert info.value.message.endswith("a definition is name = expression")
    assert info.value.position == position


def test_definition_line_limits() -> None:
    name = "x" * MAX_NAME_LENGTH
    assert split_definition(f"{name} = 1")[0] == name
    longest = "a = " + "1" * (MAX_LENGTH - 4)
    assert split_definition(longest)[2] == 4
    with pytest.raises(FormulaSyntaxError, match=f"definition is longer than {MAX_LENGTH} characters"):
        split_definition(longest + " ")
    with pytest.raises(FormulaError, match="a definition must be text, not bytes"):
        split_definition(b"a = b")  # type: ignore[arg-type]


def test_an_equals_sign_inside_brackets_is_left_to_the_parser() -> None:
    assert split_definition("a = f(b = 1)") == ("a", "f(b = 1)", 4)
    with pytest.raises(FormulaSyntaxError, match="'=' is not allowed"):
        parse_definition("a = f(b = 1)")


def test_a_forward_pass_of_definition_lines_builds_and_evaluates() -> None:
    """What the model builder will do: each line over the quantities defined before it."""
    lines = ["z1 = W1 @ X + b1", "a1 = tanh(z1)", "a2 = W2 @ a1 + X", "C = sum((a2 - Y)^2)"]
    quantities: dict = {q.name: q for q in (X, Y, W1, b1, W2)}
    scalars = {"n_0": n0, "n_1": n1, "m": m}
    for line in lines:
        name, tree = parse_definition(line)
        value = MatrixBuilder(vocabulary(quantities=quantities, scalars=scalars)).build(tree)
        quantities[name] = Named(name, value) if value.is_Matrix else value
    v = values(4)
    want = np.sum((v["W2"] @ np.tanh(v["W1"] @ v["X"] + v["b1"]) + v["X"] - v["Y"]) ** 2)
    assert np.isclose(evaluate(quantities["C"], v), want)
