"""Hostile formulas given to symbackprop.check: refused fast, and never run.

Two guards prove that nothing ran.  A sentinel: the hostile formulas would
call :func:`trip` in this module if anything executed them as Python.  And a
spy on Python's code runners (``eval``, ``exec``, ``compile``, ``__import__``):
a formula the parser refuses must reach none of them; a formula that parses
(and is refused when its names and numbers are read) may let SymPy and NumPy
use them for their own internal code, but never on text from the formula.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbackprop import (
    Dense,
    FormulaError,
    FormulaSyntaxError,
    Network,
    UnknownNameError,
    check,
    derive,
)
from symbackprop.checking import verdicts as checking
from symbackprop.language import matrix as formula_matrix
from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent
DERIVATION = derive(Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], batch="m"))

SENTINEL = {"tripped": False}


def trip(*_: object) -> int:
    SENTINEL["tripped"] = True
    return 0


_MODULE = f"__import__('sys').modules[{__name__!r}]"
RUNNERS = ("eval", "exec", "compile", "__import__")
DANGEROUS_MODULES = {"os", "subprocess", "shutil", "socket", "pty", "ctypes"}


@pytest.fixture(autouse=True)
def sentinel_never_trips() -> Iterator[None]:
    SENTINEL["tripped"] = False
    yield
    assert not SENTINEL["tripped"], "a formula was executed"


@contextlib.contextmanager
def runners_watched(refuse: bool) -> Iterator[list[tuple[str, str]]]:
    """Record what reaches eval, exec, compile and __import__; with ``refuse``, make any call fail."""
    seen: list[tuple[str, str]] = []
    saved = {name: getattr(builtins, name) for name in RUNNERS}

    def spy(name: str):
        def runner(*args: object, **kwargs: object) -> object:
            seen.append((name, str(args[0]) if args else ""))
            if refuse:
                raise AssertionError(f"{name} was called while checking a formula")
            return saved[name](*args, **kwargs)

        return runner

    for name in RUNNERS:
        setattr(builtins, name, spy(name))
    try:
        yield seen
    finally:
        for name, original in saved.items():
            setattr(builtins, name, original)


def test_tripwires_would_fire_if_run() -> None:
    eval(f"{_MODULE}.trip()")  # proving the tripwire is live
    assert SENTINEL["tripped"]
    SENTINEL["tripped"] = False


def test_spy_sees_and_refuses_code_runners() -> None:
    with runners_watched(refuse=False) as seen:
        eval("1 + 1")
    assert seen == [("eval", "1 + 1")]
    with pytest.raises(AssertionError), runners_watched(refuse=True):
        exec("x = 1")


# ---------------------------------------------------------------------------
# Refused by the parser: nothing at all runs.

PARSE_REFUSED = [
    ("dunder-import-system", "__import__('os').system('echo pwned')"),
    ("sentinel-call", f"{_MODULE}.trip()"),
    ("attribute-access", "a1.__class__"),
    ("attribute-on-transpose", "W1.T.__dict__"),
    ("method-call", "W1.dot(x)"),
    ("subclasses-walk", "().__class__.__bases__[0].__subclasses__()"),
    ("lambda", f"(lambda: {_MODULE}.trip())()"),
    ("list-comprehension", f"[{_MODULE}.trip() for _ in 'x']"),
    ("generator", "sum(trip() for _ in a1)"),
    ("dict-comprehension", "{k: trip() for k in a1}"),
    ("exec-string", f'exec("{_MODULE}.trip()")'),
    ("eval-call", "eval('trip()')"),
    ("getattr", f"getattr({_MODULE}, 'trip')()"),
    ("walrus", "(t := trip())"),
    ("f-string", 'f"{trip()}"'),
    ("conditional", "trip() if a1 else W1"),
    ("statement-after-newline", "W1\nimport os"),
    ("semicolon-statement", "W1; trip()"),
    ("assignment", "W1 = trip()"),
    ("open-file", "open('/etc/passwd').read()"),
    ("string-literal", "'W1'"),
    ("slice", "W1[0:1]"),
    ("keyword-import", "import os"),
    ("latex-write18", r"\write18{rm -rf ~}"),
    ("latex-input", r"\input{/etc/passwd}"),
    ("fullwidth-letters", "ｅｖａｌ(a1)"),
    ("cyrillic-homoglyph", "W1 + а1"),
    ("zero-width-space", "W1\u200b + a1"),
    ("rtl-override", "\u202eW1 + a1"),
    ("nul-byte", "W1\x00"),
    ("lone-surrogate", "W1 + \ud800"),
    ("million-characters", "a" * 10**6),
    ("nested-parentheses-10k", "(" * 10**4 + "a1" + ")" * 10**4),
    ("nested-minus-10k", "-" * 10**4 + "a1"),
    ("exponent-tower-deep", "a1^" * 200 + "2"),
]


@pytest.mark.parametrize("text", [t for _, t in PARSE_REFUSED], ids=[n for n, _ in PARSE_REFUSED])
def test_formula_the_parser_refuses_is_a_syntax_error_within_a_second_and_nothing_runs(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(FormulaSyntaxError) as info, runners_watched(refuse=True) as seen:
        check(DERIVATION, "W1", text)
    assert time.perf_counter() - start < 1.0
    assert seen == [] and not SENTINEL["tripped"]
    assert info.value.position is not None


# ---------------------------------------------------------------------------
# Parsed, then refused when read: no code runner ever sees the formula.

READ_REFUSED = [
    ("python-function-call", "trip(a1)", UnknownNameError),
    ("module-name", "os", UnknownNameError),
    ("system-call", "system(a1)", UnknownNameError),
    ("open-call", "open(a1)", UnknownNameError),
    ("power-tower", "9**9**9**9", FormulaError),
    ("matrix-power-tower", "a1 .^ 64 .^ 64", FormulaError),
    ("huge-number", "(((99^64)^64)^64)^64 * a1", FormulaError),
    ("overflowing-product", "1e300 * 1e300 * W1", FormulaError),
    ("huge-ones", "sum(ones(10^9, 10^9)) * W1", FormulaError),
    ("fractional-exponent", "W1 ^ (1/2)", FormulaError),
    ("division-by-zero", "W1 / 0", FormulaError),
]


@pytest.mark.parametrize("text, error", [(t, e) for _, t, e in READ_REFUSED], ids=[n for n, _, _ in READ_REFUSED])
def test_formula_refused_when_read_is_an_error_within_a_second_and_never_reaches_a_code_runner(
        text: str, error: type) -> None:
    start = time.perf_counter()
    with pytest.raises(error), runners_watched(refuse=False) as seen:
        check(DERIVATION, "W1", text)
    assert time.perf_counter() - start < 1.0
    code = [source for runner, source in seen if runner != "__import__"]
    assert not any(text in source or "trip" in source for source in code), code
    assert not {module for runner, module in seen if runner == "__import__"} & DANGEROUS_MODULES
    assert not SENTINEL["tripped"]


def test_enough_hostile_inputs() -> None:
    assert len(PARSE_REFUSED) + len(READ_REFUSED) >= 30
    assert len({n for n, _ in PARSE_REFUSED} | {n for n, _, _ in READ_REFUSED}) == len(PARSE_REFUSED) + len(READ_REFUSED)


def test_cli_refuses_a_hostile_formula_with_one_error_and_exit_2(capsys) -> None:
    with runners_watched(refuse=False) as seen:
        code = main(["check", str(ROOT / "examples" / "seed.toml"), "W1", "__import__('os').system('echo pwned')"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: names must not start with '_'")
    assert not any("pwned" in source for _, source in seen)  # reading the spec file may import what it needs


@pytest.mark.parametrize("module", [checking, formula_matrix], ids=lambda m: m.__name__)
def test_checker_source_uses_no_code_runner(module) -> None:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    functions = {"eval", "exec", "compile", "__import__", "getattr", "sympify", "parse_expr", "lambdify"}
    methods = {"eval", "exec", "sympify", "parse_expr", "lambdify", "literal_eval", "S"}  # re.compile is fine
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in functions, f"{module.__name__} calls {node.func.id}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in methods, f"{module.__name__} calls .{node.func.attr}"
