"""Tests of the formula parser: the grammar, its errors, and hostile input."""

from __future__ import annotations

import ast
import builtins
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbackprop.language import syntax as formula
from symbackprop.errors import FormulaSyntaxError
from symbackprop.language.syntax import (
    BINARY_OPS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_TOKENS,
    RESERVED_WORDS,
    BinOp,
    Call,
    LayerRef,
    Name,
    Neg,
    Node,
    Number,
    Transpose,
    parse,
    unparse,
    walk,
)

# ---------------------------------------------------------------------------
# A tripwire: the hostile formulas below would set this flag if anything ran them.

SENTINEL = {"tripped": False}


def trip(*_: object) -> int:
    SENTINEL["tripped"] = True
    return 0


_THIS_MODULE = f"__import__('sys').modules[{__name__!r}]"
TRIPWIRES = {
    "import-call": f"{_THIS_MODULE}.trip()",
    "comprehension": f"[{_THIS_MODULE}.trip() for _ in 'x']",
    "lambda": f"(lambda: {_THIS_MODULE}.trip())()",
    "exec-string": f'exec("{_THIS_MODULE}.trip()")',
    "eval-string": f'eval("{_THIS_MODULE}.trip()")',
    "getattr": f"getattr({_THIS_MODULE}, 'trip')()",
    "conditional": f"{_THIS_MODULE}.trip() if True else 0",
    "walrus": f"(x := {_THIS_MODULE}.trip())",
    "f-string": f'f"{{{_THIS_MODULE}.trip()}}"',
    "dict-update": f"{_THIS_MODULE}.SENTINEL.update(tripped=True)",
    "newline-statement": f"a\nimport sys; sys.modules[{__name__!r}].trip()",
}
CODE_RUNNERS = ("eval", "exec", "compile", "__import__")


def _refuse(*_: object, **__: object) -> None:
    SENTINEL["tripped"] = True
    raise AssertionError("the parser tried to run or import code")


@contextlib.contextmanager
def code_runners_forbidden() -> Iterator[None]:
    """Replace the builtins that run or import code for the duration of a parse."""
    saved = {name: getattr(builtins, name) for name in CODE_RUNNERS}
    for name in CODE_RUNNERS:
        setattr(builtins, name, _refuse)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(builtins, name, original)


def guarded_parse(text: str) -> Node:
    """``parse`` with eval, exec, compile and __import__ made to fail."""
    with code_runners_forbidden():
        return parse(text)


@pytest.fixture(autouse=True)
def sentinel_never_trips() -> Iterator[None]:
    SENTINEL["tripped"] = False
    yield
    assert not SENTINEL["tripped"], "a formula was executed"


def test_tripwires_would_fire_if_executed() -> None:
    for text in TRIPWIRES.values():
        SENTINEL["tripped"] = False
        if "\n" in text:  # a statement
            exec(text)  # proving the tripwire is live
        else:
            eval(text)  # proving the tripwire is live
        assert SENTINEL["tripped"], text
    SENTINEL["tripped"] = False


def test_code_runners_forbidden_really_forbids() -> None:
    with pytest.raises(AssertionError), code_runners_forbidden():
        eval("1")
    assert builtins.eval("1") == 1
    SENTINEL["tripped"] = False


# ---------------------------------------------------------------------------
# Good formulas


def v(id: str, layer: int | LayerRef | None = None) -> Name:
    return Name(id, layer)


def n(text: str) -> Number:
    return Number(text)


def op(name: str, left: Node, right: Node) -> BinOp:
    return BinOp(name, left, right)


def call(func: str, *args: Node, derivative: int = 0) -> Call:
    return Call(func, args, derivative)


a, b, c, x, y = v("a"), v("b"), v("c"), v("x"), v("y")
T = Transpose

GOOD = [
    # sums and products, precedence and associativity
    ("a + b", op("add", a, b)),
    ("a - b - c", op("sub", op("sub", a, b), c)),
    ("a − b", op("sub", a, b)),
    ("a + b * c", op("add", a, op("mul", b, c))),
    ("a * b + c", op("add", op("mul", a, b), c)),
    ("a / b * c", op("mul", op("div", a, b), c)),
    ("a @ b", op("matmul", a, b)),
    ("a * b", op("mul", a, b)),
    ("a / b", op("div", a, b)),
    ("a .* b", op("hadamard", a, b)),
    ("a ⊙ b", op("hadamard", a, b)),
    (r"a \odot b", op("hadamard", a, b)),
    (r"a \circ b", op("hadamard", a, b)),
    ("a./b", op("hdiv", a, b)),
    ("a · b", op("mul", a, b)),
    (r"a \cdot b", op("mul", a, b)),
    ("a × b", op("mul", a, b)),
    (r"a \times b", op("mul", a, b)),
    ("a @ b .* c ./ x", op("hdiv", op("hadamard", op("matmul", a, b), c), x)),
    # juxtaposition
    ("2 a", op("juxt", n("2"), a)),
    ("2a", op("juxt", n("2"), a)),
    ("2(a - y)", op("juxt", n("2"), op("sub", a, y))),
    ("a (b)", op("juxt", a, b)),
    ("a b c", op("juxt", op("juxt", a, b), c)),
    ("a / 2 b", op("juxt", op("div", a, n("2")), b)),
    ("a -b", op("sub", a, b)),
    ("a (-b)", op("juxt", a, Neg(b))),
    ("-a b", op("juxt", Neg(a), b)),
    ("[a + b] c", op("juxt", op("add", a, b), c)),
    ("{a + b} c", op("juxt", op("add", a, b), c)),
    ("δa", op("juxt", v("delta"), a)),
    (
        "a0 W2 2 (a1 W2 - y)",
        op("juxt", op("juxt", op("juxt", v("a0"), v("W2")), n("2")), op("sub", op("juxt", v("a1"), v("W2")), y)),
    ),
    # unary and power
    ("-a", Neg(a)),
    ("+a", a),
    ("--a", Neg(Neg(a))),
    ("−a", Neg(a)),
    ("-a^2", Neg(op("pow", a, n("2")))),
    ("-a * b", op("mul", Neg(a), b)),
    ("a * -b", op("mul", a, Neg(b))),
    ("a - -b", op("sub", a, Neg(b))),
    ("a^2", op("pow", a, n("2"))),
    ("a**2", op("pow", a, n("2"))),
    ("a.^2", op("pow", a, n("2"))),
    ("a^b^c", op("pow", a, op("pow", b, c))),
    ("a^-b", op("pow", a, Neg(b))),
    ("x^{-1}", op("pow", x, Neg(n("1")))),
    ("e^{x}", op("pow", v("e"), x)),
    ("(a + b)^2", op("pow", op("add", a, b), n("2"))),
    ("2 a^2", op("juxt", n("2"), op("pow", a, n("2")))),
    ("x^{(a+b)}", op("pow", x, op("add", a, b))),
    ("a^(T)", op("pow", a, v("T"))),
    ("9**9**9**9", op("pow", n("9"), op("pow", n("9"), op("pow", n("9"), n("9"))))),
    # numbers
    ("0.5", n("0.5")),
    (".5", n(".5")),
    ("1e-3", n("1e-3")),
    ("2E+10", n("2E+10")),
    # transposes
    ("a.T", T(a)),
    ("a'", T(a)),
    ("a''", T(T(a))),
    ("a^T", T(a)),
    ("a^{T}", T(a)),
    (r"a^\top", T(a)),
    (r"a^{\top}", T(a)),
    ("a^⊤", T(a)),
    (r"a^\intercal", T(a)),
    ("aᵀ", T(a)),
    ("a' b", op("juxt", T(a), b)),
    ("(a + b)'", T(op("add", a, b))),
    ("2.T", T(n("2"))),
    ("f(x)'", T(call("f", x))),
    ("a.T^2", op("pow", T(a), n("2"))),
    ("W2' * delta2", op("mul", T(v("W2")), v("delta2"))),
    ("W2'*delta2", op("mul", T(v("W2")), v("delta2"))),
    # layer superscripts
    ("W^{(2)}", v("W", 2)),
    ("a^{(L)}", v("a", LayerRef("L", 0))),
    ("a^{(L-1)}", v("a", LayerRef("L", -1))),
    ("a^{(L − 1)}", v("a", LayerRef("L", -1))),
    ("a^{(l+1)}", v("a", LayerRef("l", 1))),
    (r"W^{(2)\top}", T(v("W", 2))),
    ("W^{(2)T}", T(v("W", 2))),
    (r"W^{(2)}{}^\top", T(v("W", 2))),
    ("W^{(2)}^2", op("pow", v("W", 2), n("2"))),
    (r"\delta^{(2)} a^{(1)\top}", op("juxt", v("delta", 2), T(v("a", 1)))),
    (r"W^{(2)\top} \delta^{(2)}", op("juxt", T(v("W", 2)), v("delta", 2))),
    (r"\boldsymbol{\delta}^{(L)}", v("delta", LayerRef("L", 0))),
    # names
    ("W1", v("W1")),
    ("delta2", v("delta2")),
    ("W_1", v("W_1")),
    ("W_{12}", v("W_12")),
    ("for_1", v("for_1")),
    ("σ", v("sigma")),
    ("δ2", v("delta2")),
    ("δ_{l}", v("delta_l")),
    (r"\delta_{2}", v("delta_2")),
    (r"\eta", v("eta")),
    (r"\varepsilon", v("epsilon")),
    ("λ W", op("juxt", v("lambda"), v("W"))),
    (r"\lambda", v("lambda")),
    (r"\mathbf{W}_{1}", v("W_1")),
    (r"\mathbf{1}", n("1")),
    (r"\mathrm{X}", v("X")),
    # calls
    ("f(x)", call("f", x)),
    ("f (x)", op("juxt", v("f"), x)),
    ("ones(m, 1)", call("ones", v("m"), n("1"))),
    ("sum(x)", call("sum", x)),
    ("trace(A)", call("trace", v("A"))),
    ("dsigmoid(z1)", call("dsigmoid", v("z1"))),
    ("sigmoid'(z1)", call("sigmoid", v("z1"), derivative=1)),
    ("f''(x)", call("f", x, derivative=2)),
    ("σ(z)", call("sigma", v("z"))),
    (r"\sigma'(z^{(1)})", call("sigma", v("z", 1), derivative=1)),
    (r"\sigma^{\prime}(z)", call("sigma", v("z"), derivative=1)),
    (r"\sigma^\prime(z)", call("sigma", v("z"), derivative=1)),
    (r"\sigma^{\prime\prime}(z)", call("sigma", v("z"), derivative=2)),
    (r"\sigma\left(z\right)", call("sigma", v("z"))),
    (r"\operatorname{tr}(A)", call("tr", v("A"))),
    (r"\mathrm{tr}(A)", call("tr", v("A"))),
    (r"\operatorname{diag}(v)", call("diag", v("v"))),
    (r"\log a", call("log", a)),
    (r"\log(a)", call("log", a)),
    (r"\log (a, b)", call("log", a, b)),
    (r"\exp x^2", call("exp", op("pow", x, n("2")))),
    (r"\exp -x", call("exp", Neg(x))),
    (r"\log 2 a", op("juxt", call("log", n("2")), a)),
    (r"\tanh z", call("tanh", v("z"))),
    (r"\tanh'(z)", call("tanh", v("z"), derivative=1)),
    ("f(g(x), -y)", call("f", call("g", x), Neg(y))),
    # grouping and LaTeX layout
    ("(a)", a),
    (r"\left( a + b \right) c", op("juxt", op("add", a, b), c)),
    (r"\left[ a \right]", a),
    (r"\big( a \big)", a),
    (r"\Bigl( a \Bigr)", a),
    (r"\frac{1}{2}", op("div", n("1"), n("2"))),
    (r"\frac{a + b}{c} x", op("juxt", op("div", op("add", a, b), c), x)),
    (r"a \, b", op("juxt", a, b)),
    (r"a\;b\quad c", op("juxt", op("juxt", a, b), c)),
    ("$a + b$", op("add", a, b)),
    ("  $$a$$  ", a),
    ("a\n+\tb", op("add", a, b)),
    # formulas users write
    ("a1 .* (1 - a1)", op("hadamard", v("a1"), op("sub", n("1"), v("a1")))),
    ("delta2 @ ones(m, 1)", op("matmul", v("delta2"), call("ones", v("m"), n("1")))),
    (
        "a0 * W2 * 2 * (a1 * W2 - y)",
        op("mul", op("mul", op("mul", v("a0"), v("W2")), n("2")), op("sub", op("mul", v("a1"), v("W2")), y)),
    ),
    (
        "W1 - R * (a0 * W2 * 2 * (a1 * W2 - y))",
        op(
            "sub",
            v("W1"),
            op(
                "mul",
                v("R"),
                op("mul", op("mul", op("mul", v("a0"), v("W2")), n("2")), op("sub", op("mul", v("a1"), v("W2")), y)),
            ),
        ),
    ),
    (
        r"(W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})",
        op("hadamard", op("juxt", T(v("W", 2)), v("delta", 2)), call("sigma", v("z", 1), derivative=1)),
    ),
    (
        r"(W^{(l+1)T} \delta^{(l+1)}) \odot \sigma'(z^{(l)})",
        op(
            "hadamard",
            op("juxt", T(v("W", LayerRef("l", 1))), v("delta", LayerRef("l", 1))),
            call("sigma", v("z", LayerRef("l", 0)), derivative=1),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[text for text, _ in GOOD])
def test_good_formula_parses_to_expected_tree(text: str, expected: Node) -> None:
    tree = guarded_parse(text)
    assert tree == expected
    assert guarded_parse(unparse(tree)) == tree


UNPARSED = [
    ("a+b*c", "a + b * c"),
    ("(a + b) * c", "(a + b) * c"),
    ("a - (b - c)", "a - (b - c)"),
    ("a - (b + c)", "a - (b + c)"),
    ("(a - b) - c", "a - b - c"),
    ("a^(b^c)", "a^b^c"),
    ("(a^b)^c", "(a^b)^c"),
    ("(-a)^2", "(-a)^2"),
    ("-(a^2)", "-a^2"),
    ("-(a + b)", "-(a + b)"),
    ("a (-b)", "a (-b)"),
    ("a * (b * c)", "a * (b * c)"),
    ("a / 2 b", "(a / 2) b"),
    ("a b / c", "(a b) / c"),
    ("a (b / c)", "a (b / c)"),
    ("a^(T)", "a^(T)"),
    ("a^(T^2)", "a^(T^2)"),
    ("a^{T}", "a.T"),
    ("(a + b)'", "(a + b).T"),
    ("λ", "λ"),
    ("W^{(L-1)}", "W^{(L-1)}"),
    ("W^{(l+2)\\top}", "W^{(l+2)}.T"),
    ("f'(x, y)", "f'(x, y)"),
    ("\\frac{1}{2}", "1 / 2"),
    ("a .* b ./ c @ d", "a .* b ./ c @ d"),
]


@pytest.mark.parametrize(("text", "expected"), UNPARSED, ids=[text for text, _ in UNPARSED])
def test_unparse_gives_canonical_text(text: str, expected: str) -> None:
    assert unparse(guarded_parse(text)) == expected


def test_nodes_carry_their_start_offset() -> None:
    tree = guarded_parse("(a+b)*c - f'(x)ᵀ")
    assert isinstance(tree, BinOp) and tree.pos == 0
    product, transposed = tree.left, tree.right
    assert isinstance(product, BinOp) and product.pos == 0
    assert isinstance(product.left, BinOp) and product.left.pos == 1
    assert product.right.pos == 6
    assert isinstance(transposed, Transpose) and transposed.pos == 10
    assert isinstance(transposed.operand, Call) and transposed.operand.pos == 10
    assert transposed.operand.args[0].pos == 13


def test_positions_count_from_the_start_of_the_text_with_delimiters() -> None:
    tree = guarded_parse(r"$\sigma(z) + -w$")
    assert isinstance(tree, BinOp) and tree.pos == 1
    assert isinstance(tree.right, Neg) and tree.right.pos == 13
    assert tree.right.operand.pos == 14


def test_positions_do_not_take_part_in_equality() -> None:
    assert Name("a", None, 3) == Name("a", None, 7)
    assert hash(Name("a", 2, 3)) == hash(Name("a", 2, 0))


def test_walk_visits_parents_first_left_to_right() -> None:
    tree = guarded_parse("a + f(b, -c)'")
    assert list(walk(tree)) == [
        tree,
        a,
        T(call("f", b, Neg(c))),
        call("f", b, Neg(c)),
        b,
        Neg(c),
        c,
    ]


def test_walk_and_unparse_do_not_recurse() -> None:
    tree: Node = a
    for _ in range(5000):
        tree = BinOp("add", tree, b)
    assert sum(1 for _ in walk(tree)) == 10001
    assert unparse(tree) == " + ".join(["a"] + ["b"] * 5000)


def test_binop_refuses_unknown_operator() -> None:
    with pytest.raises(ValueError, match="unknown operator 'xor'"):
        BinOp("xor", a, b)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(TypeError):
        parse(b"a")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Limits: the largest accepted input of each kind, and one more.


def test_limits_accept_up_to_and_refuse_past_them() -> None:
    assert guarded_parse("a" * MAX_LENGTH) == v("a" * MAX_LENGTH)
    assert guarded_parse("1" * 40) == n("1" * 40)
    assert guarded_parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == a
    assert guarded_parse("-" * MAX_DEPTH + "a") is not None
    assert guarded_parse("f(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH) is not None
    assert guarded_parse("a^" * MAX_DEPTH + "a") is not None
    assert guarded_parse(" + ".join(["a"] * (MAX_DEPTH + 1))) is not None
    group = "(" + "+".join(["a"] * 30) + ")"  # 61 tokens, 29 operations deep
    assert guarded_parse("+".join([group] * 16)) is not None  # 991 tokens
    for text, message in [
        ("a" * (MAX_LENGTH + 1), "longer than 2000 characters"),
        ("1" * 41, "number longer than 40 characters"),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), "nested too deeply"),
        ("-" * (MAX_DEPTH + 1) + "a", "nested too deeply"),
        ("f(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), "nested too deeply"),
        ("a^" * (MAX_DEPTH + 1) + "a", "nested too deeply"),
        (" + ".join(["a"] * (MAX_DEPTH + 2)), "more than 64 operations inside one another"),
        ("+".join(["a"] * ((MAX_TOKENS + 3) // 2)), "more than 1000 tokens"),
    ]:
        with pytest.raises(FormulaSyntaxError, match=message):
            guarded_parse(text)


def test_huge_exponent_tower_parses_quickly_without_evaluating() -> None:
    start = time.perf_counter()
    tree = guarded_parse("9**9**9**9")
    assert time.perf_counter() - start < 0.1
    assert [node.op for node in walk(tree) if isinstance(node, BinOp)] == ["pow"] * 3


# ---------------------------------------------------------------------------
# Errors: what is reported, and where.

ERRORS = [
    ("a + * b", 4, "found '*'"),
    ("a +", 3, "found the end of the formula"),
    ("a.system", 1, "no attribute access"),
    ("x = 1", 2, "give only the right-hand side"),
    (r"\frac{\partial C}{\partial a}", 6, "\\partial' is not supported"),
    ("import os", 0, "'import' is a reserved word"),
    ("lambda", 0, "write λ or \\lambda"),
    ("__x__", 0, "must not start with '_'"),
    ("а", 0, "U+0430 (CYRILLIC SMALL LETTER A)"),
    ("ab\u200b", 2, "U+200B (ZERO WIDTH SPACE)"),
    (r"\input{x}", 0, "unknown LaTeX command '\\input'; known: "),
    ("f()", 2, "at least one argument"),
    ("(a", 2, "expected ')' to close '(' at position 0"),
    ("(a]", 2, "expected ')'"),
    ("a)", 1, "unmatched ')'"),
    ("a, b", 1, "between the arguments of a call"),
    ("", 0, "empty formula"),
    ("  \n ", 0, "empty formula"),
    ("$$", 0, "empty formula"),
    (r"\, \quad", 0, "empty formula"),
    ("a '", 2, "must directly follow"),
    ("a'b", 1, "cannot be followed directly by an operand"),
    ("'a'", 0, "strings are not allowed"),
    ('"a"', 0, "strings are not allowed"),
    ("$a$b$", 2, "'$' is only allowed around the whole formula"),
    ("2.", 1, "'.' is only allowed in numbers"),
    (r"\sigma^{\prime} (z)", 16, "expected '(' right after the derivative mark"),
    ("W_{1,2}", 2, "subscript in braces"),
    ("{}", 0, "empty braces"),
    (r"\left| a \right|", 0, "\\left must be followed by a bracket"),
    (r"\mathbf{a + b}", 0, "must hold a single name or number"),
    (r"\frac12", 5, "\\frac needs two arguments in braces"),
    ("a ^", 3, "found the end of the formula"),
    ("⊤", 0, "found '⊤'"),
    ("\\", 0, "a lone '\\'"),
    ("a b c d e f g)", 13, "unmatched ')'"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), ERRORS, ids=[text for text, _, _ in ERRORS])
def test_error_names_the_fault_and_its_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        guarded_parse(text)
    assert info.value.position == position
    assert fragment in info.value.message
    assert info.value.text == text


def test_error_text_shows_a_caret_under_the_fault() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        guarded_parse("a + * b")
    assert str(info.value) == "expected a number, a name or '(' but found '*' (at position 4)\n  a + * b\n      ^"


def test_unknown_command_error_lists_the_known_commands() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        guarded_parse(r"\write18{rm -rf /}")
    for known in (r"\frac", r"\sigma", r"\odot", r"\top", r"\left", r"\operatorname"):
        assert known in info.value.message


# ---------------------------------------------------------------------------
# Hostile input: refused, fast, and never run.

HOSTILE = [
    *TRIPWIRES.items(),
    ("dunder-import", "__import__('os').system('echo pwned')"),
    ("import-statement", "import os"),
    ("from-import", "from os import system"),
    ("attribute-call", "os.system('ls')"),
    ("dunder-class", "a.__class__"),
    ("subclasses", "().__class__.__bases__[0].__subclasses__()"),
    ("transpose-then-attribute", "a.T.__class__"),
    ("attribute-on-T", "a.Tb"),
    ("open-file", "open('/etc/passwd').read()"),
    ("globals", "globals()"),
    ("breakpoint", "breakpoint()"),
    ("vars", "vars(a)"),
    ("builtins-name", "__builtins__"),
    ("underscore-name", "_x + 1"),
    ("lambda-expression", "lambda x: x"),
    ("list-comprehension", "[x for x in y]"),
    ("generator", "sum(x for x in y)"),
    ("dict-literal", "{x: 1}"),
    ("dict-unpack", "{**a}"),
    ("f-string-plain", 'f"{x}"'),
    ("f-string-single-quotes", "f'{x}'"),
    ("bytes", "b'abc'"),
    ("conditional-expression", "a if b else c"),
    ("not", "not a"),
    ("and", "a and b"),
    ("or", "a or b"),
    ("is", "a is None"),
    ("in", "a in b"),
    ("yield", "yield a"),
    ("await", "await a"),
    ("del", "del a"),
    ("assignment", "x = 1"),
    ("equality", "a == b"),
    ("comparison", "a < b"),
    ("semicolon", "a; b"),
    ("annotation", "a: int"),
    ("comment", "a # b"),
    ("matlab-comment", "a % b"),
    ("backtick", "`a`"),
    ("bitwise", "a | b & c"),
    ("invert", "~a"),
    ("slice", "a[1:2]"),
    ("ellipsis", "a[...]"),
    ("bang", "a!"),
    ("ternary", "a ? b : c"),
    ("dollar-inside", "$a$ + $b$"),
    ("unbalanced-dollars", "$$a$"),
    # LaTeX that a TeX engine would act on
    ("latex-input", r"\input{/etc/passwd}"),
    ("latex-include", r"\include{secrets}"),
    ("latex-write18", r"\write18{rm -rf ~}"),
    ("latex-immediate", r"\immediate\write18{id}"),
    ("latex-def", r"\def\x{y} \x"),
    ("latex-newcommand", r"\newcommand{\a}{b}"),
    ("latex-csname", r"\csname eval\endcsname"),
    ("latex-catcode", r"\catcode`\^^=11"),
    ("latex-openin", r"\openin5=/etc/passwd"),
    ("latex-verb", r"\verb|x|"),
    ("latex-href", r"\href{javascript:alert(1)}{a}"),
    ("latex-double-backslash", r"a \\ b"),
    ("latex-escaped-brace", r"\{a\}"),
    ("latex-wrapped-dunder", r"\mathrm{__import__}(x)"),
    ("latex-wrapped-eval", r"\operatorname{eval}(x)"),
    # Unicode tricks
    ("fullwidth-exec", "ｅｘｅｃ('x')"),
    ("fullwidth-digit", "１ + a"),
    ("cyrillic-a", "а + b"),
    ("cyrillic-e-in-eval", "еval(x)"),
    ("greek-capital-alpha", "Α + b"),
    ("greek-omicron", "cοs(x)"),
    ("math-bold-a", "𝐚 + b"),
    ("script-e", "ℯ^x"),
    ("superscript-two", "a²"),
    ("arabic-indic-digit", "٣ a"),
    ("zero-width-joiner", "ev\u200dal(x)"),
    ("zero-width-space", "a\u200b+ b"),
    ("byte-order-mark", "\ufeffa"),
    ("no-break-space", "a\u00a0+ b"),
    ("line-separator", "a\u2028b"),
    ("rtl-override", "\u202ea + b"),
    ("rtl-isolate", "a\u2067b"),
    ("combining-accent", "a\u0301"),
    ("nul-byte", "a\x00b"),
    ("escape-sequence", "a\x1b[2Jb"),
    ("lone-surrogate", "a\ud800"),
    ("unicode-prime", "σ′(z)"),
    # code behind newlines
    ("newline-import", "a\nimport os"),
    ("newline-dunder", "a\n__import__('os')"),
    ("newline-assignment", "a\r\nx = 1"),
    ("newline-exec", "a\n\nexec('x')"),
    # sizes and depths
    ("million-characters", "a" * 10**6),
    ("million-character-number", "9" * 10**6),
    ("nested-parentheses-10k", "(" * 10**4 + "a" + ")" * 10**4),
    ("nested-unary-minus-10k", "-" * 10**4 + "a"),
    ("long-number", "1" * 41),
    ("long-decimal", "0." + "0" * 39),
    ("too-many-tokens", "a+" * 600 + "a"),
    ("nested-parentheses-unclosed", "(" * 999 + "a"),
    ("nested-braces", "{" * 100 + "a" + "}" * 100),
    ("nested-calls", "f(" * 100 + "x" + ")" * 100),
    ("nested-fracs", r"\frac{" * 100 + "a" + "}{b}" * 100),
    ("nested-logs", r"\log " * 100 + "a"),
    ("exponent-tower", "a^" * 200 + "a"),
    ("nested-unary-minus", "-" * 500 + "a"),
]


@pytest.mark.parametrize("text", [text for _, text in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_hostile_input_is_refused_quickly_and_never_run(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(FormulaSyntaxError) as info:
        guarded_parse(text)
    assert time.perf_counter() - start < 1.0
    assert info.value.position is not None and 0 <= info.value.position <= len(text)
    assert not SENTINEL["tripped"]


def test_enough_hostile_inputs() -> None:
    assert len(HOSTILE) >= 40
    assert len({name for name, _ in HOSTILE}) == len(HOSTILE)


def test_a_call_of_a_python_function_is_only_a_tree() -> None:
    tree = guarded_parse("trip(1)")
    assert tree == call("trip", n("1"))
    assert not SENTINEL["tripped"]


def test_parser_source_uses_no_code_runner() -> None:
    tree = ast.parse(Path(formula.__file__).read_text(encoding="utf-8"))
    forbidden_calls = {"eval", "exec", "compile", "__import__", "getattr", "float", "sympify", "parse_expr"}
    forbidden_methods = {"eval", "exec", "sympify", "parse_expr", "literal_eval"}
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in forbidden_calls, node.func.id
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in forbidden_methods, node.func.attr
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "re", "unicodedata", "collections.abc", "dataclasses", "symbackprop.errors"}


# ---------------------------------------------------------------------------
# Properties

identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,4}", fullmatch=True).filter(
    lambda name: name not in RESERVED_WORDS
) | st.sampled_from(["T", "e", "lambda", "sigma", "W_12", "delta2"])
layers = st.none() | st.integers(0, 99) | st.builds(LayerRef, identifiers, st.integers(-3, 3))
numbers = st.from_regex(r"(?:[0-9]{1,3}(?:\.[0-9]{1,2})?|\.[0-9]{1,2})(?:[eE][+-]?[0-9]{1,2})?", fullmatch=True)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return (
        st.builds(BinOp, st.sampled_from(sorted(BINARY_OPS)), children, children)
        | st.builds(Neg, children)
        | st.builds(Transpose, children)
        | st.builds(Call, identifiers, st.lists(children, min_size=1, max_size=3).map(tuple), st.integers(0, 2))
    )


trees = st.recursive(st.builds(Number, numbers) | st.builds(Name, identifiers, layers), _extend, max_leaves=12)


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, BinOp):
        return node.left, node.right
    if isinstance(node, (Neg, Transpose)):
        return (node.operand,)
    return node.args if isinstance(node, Call) else ()


def _depth(tree: Node) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_unparse_then_parse_gives_the_same_tree(tree: Node) -> None:
    # Brackets and signs each add a nesting level, so a tree of depth d nests at most 2d deep.
    assume(2 * _depth(tree) <= MAX_DEPTH)
    text = unparse(tree)
    assert guarded_parse(text) == tree, text


FRAGMENTS = [
    *"ab12 ()[]{}+-*/^'.,_$=T\\ᵀ⊤−⊙·×σδλ\n",
    "**", ".*", "./", ".^", ".T", "@", "e-3", "W^{(2)}", "^{(L-1)}", "^{\\top}", r"\sigma", r"\frac",
    r"\left(", r"\right)", r"\odot", r"\prime", r"\log", r"\mathbf{", r"\operatorname{", "{}", "__", "lambda",
]  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(st.text() | st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_any_text_parses_or_raises_formula_syntax_error(text: str) -> None:
    try:
        tree = guarded_parse(text)
    except FormulaSyntaxError as error:
        assert error.position is not None and 0 <= error.position <= len(text)
    else:
        assert guarded_parse(unparse(tree)) == tree
