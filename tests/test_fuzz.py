"""Fuzzing the command line with random spec files and custom activations.

Every outcome is a result (exit 0; 1 for a wrong formula of ``check``) or one line of symbackprop's own error
(exit 2), within a few seconds: never an internal error (exit 3), a traceback
or a hang.  Examples are derandomized, so the suite is the same on every run;
``SYMBACKPROP_FUZZ=2000 python3 -m pytest tests/test_fuzz.py`` runs many more,
at random.
"""

import json
import os
import re
import signal
import time
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbackprop.cli import main

#: seconds one command may take; the bound the test enforces, with an alarm in case it hangs
SECONDS = 8

_MANY = int(os.environ.get("SYMBACKPROP_FUZZ", "0"))
_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                 derandomize=not _MANY)


class Hang(BaseException):
    """Raised by the alarm: not an Exception, so main's own handlers cannot turn it into an exit status."""


@contextmanager
def time_bound(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(capsys, argv: list[str]) -> tuple[int, str]:
    start = time.monotonic()
    with time_bound(SECONDS):
        code = main(argv)
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    assert code in ((0, 1, 2) if argv[0] == "check" else (0, 2)), f"exit {code}: {captured.err}"
    if code == 2 and "json" in argv:
        error = json.loads(captured.err)
        assert "internal error" not in error["error"] and error["type"] != "MemoryError", captured.err
    elif code == 2:
        lines = captured.err.splitlines()
        assert lines and lines[0].startswith("error: ") and "internal error" not in lines[0], captured.err
        assert len(lines) == 1 or all(line.startswith("       ") for line in lines[1:]), captured.err  # a caret
    assert elapsed < SECONDS
    return code, captured.err


# --- custom activations ---------------------------------------------------------------------------

_LEAVES = ["x", "x", "x", "1", "2", "0", "0.5", "3", "64", "1e300", "1e-300", "9e300", "e", "pi", "9**64", "1e308"]
_FUNCTIONS = ["exp", "log", "sqrt", "tanh", "abs", "sigmoid", "sin", "cos", "atan", "sinh", "ln"]
_JUNK = ["x", "1", "(", ")", "+", "*", "**", "^", "/", "-", "'", ",", "y", "@", ".T", "[", "]", "1e309", " ", "e",
         "exp(", "0**-1", "x**x", "\\frac{x}{2}", "\\sigma(x)"]

expressions = st.recursive(
    st.sampled_from(_LEAVES),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(_FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})"),
        inner.map(lambda e: f"-({e})"),
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", " "]), inner).map(lambda t: f"({t[0]}){t[1]}({t[2]})"),
        st.tuples(inner, st.sampled_from(["**", "^"]), st.sampled_from(["2", "3", "-1", "0.5", "64", "-64", "65",
                                                                        "x", "1/2", "(2)"])).map(
            lambda t: f"({t[0]}){t[1]}{t[2]}"),
    ),
    max_leaves=8,
)

formulas = st.one_of(
    expressions, expressions, expressions,
    st.lists(st.sampled_from(_JUNK), min_size=1, max_size=10).map("".join),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


def _toml_string(text: str) -> str:
    """A TOML basic string holding ``text``."""
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                      else f"\\U{ord(c):08x}" for c in text)
    return f'"{escaped}"'


@settings(max_examples=_MANY or 80, **_SETTINGS)
@given(formula=formulas, output=st.sampled_from(["", "--latex", "--numpy", "--markdown"]))
def test_a_custom_activation_is_derived_typeset_and_coded_or_refused(tmp_path_factory, capsys, formula, output):
    folder = tmp_path_factory.mktemp("activation")
    spec = folder / "net.toml"
    spec.write_text(f"[network]\ninputs = 2\n[[layers]]\nunits = 2\nactivation = {_toml_string(formula)}\n"
                    "[[layers]]\nunits = 1\n", encoding="utf-8")
    argv = ["derive", str(spec)] + ([output, str(folder / "out")] if output else [])
    outcome(capsys, argv)


# --- spec files ---------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.integers(-3, 6), st.sampled_from([0, 10**12, 99999999999999999999, -1, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(['"n_0"', '"m"', '"lam"', '"tanh"', '"sigmoid"', '"softmax"', '"x**3"', '"rows"', '"columns"',
                     '"squared_error"', '"softmax_cross_entropy"', '"binary_cross_entropy"', '"random"', '""',
                     '"data.npz"', '"missing.csv"', '"x"', '"2*pi"', '"1e300*x"']),
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    return str(value)


values = st.recursive(_SCALARS.map(_toml_value),
                      lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda v: f"[{', '.join(v)}]"),
                                              st.dictionaries(st.sampled_from(["a", "W1", "b1", "n_1", "x"]), inner,
                                                              max_size=2).map(
                                                  lambda d: "{ " + ", ".join(f"{k} = {v}" for k, v in d.items())
                                                  + " }")),
                      max_leaves=4)

def _matrix(rows: int, cols: int, scale: float) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{scale * ((3 * r + c) % 5 - 2) / 2}" for c in range(cols)) + "]"
                           for r in range(rows)) + "]"


def _valid_network(draw) -> dict[str, dict]:
    """A spec that derives and trains: the base that the mutations below damage one value at a time."""
    depth = draw(st.integers(1, 3))
    cost = draw(st.sampled_from(["squared_error", "mean_squared_error", "half_squared_error", "binary_cross_entropy",
                                 "softmax_cross_entropy"]))
    inputs = draw(st.sampled_from([1, 2, "n_0"]))
    layers, sizes, width = [], {}, 1
    for l in range(1, depth + 1):
        last = l == depth
        activation = {"binary_cross_entropy": '"sigmoid"', "softmax_cross_entropy": '"softmax"'}.get(cost) if last \
            else None
        activation = activation or draw(st.sampled_from(['"tanh"', '"sigmoid"', '"relu"', '"identity"', '"x**3"',
                                                         '"log(1 + exp(x))"', '"x"', '"2*pi*x"', '"leaky_relu"',
                                                         '"x/(1 + abs(x))"', '"sqrt(1 + x^2)"']))
        units = 2 if cost == "softmax_cross_entropy" and last else draw(st.sampled_from([1, 2, f"n_{l}"]))
        width = units if isinstance(units, int) else 2
        if not isinstance(units, int):
            sizes[units] = 2
        units = units if isinstance(units, int) else f'"{units}"'
        layers.append({"units": units, "activation": activation, "bias": draw(st.sampled_from(["true", "false"]))})
    batch = draw(st.sampled_from([1, 3, "m"]))
    columns = draw(st.booleans())
    network = {"inputs": inputs if isinstance(inputs, int) else f'"{inputs}"', "cost": f'"{cost}"',
               "layout": '"columns"' if columns else '"rows"', "batch": batch if batch != "m" else '"m"',
               "weight_decay": draw(st.sampled_from([0, 0.01, 0, 1e-3]))}
    samples = 3 if batch == "m" else batch
    features = inputs if isinstance(inputs, int) else 2
    scale = draw(st.sampled_from([1.0, 1.0, 1e150, 1e-300]))
    x = _matrix(features, samples, scale) if columns else _matrix(samples, features, scale)
    target = (lambda r, c: [[float((r_ + c_) % 2) for c_ in range(c)] for r_ in range(r)])
    y = target(width, samples) if columns else target(samples, width)
    if cost == "softmax_cross_entropy":  # one-hot targets
        y = [[1.0, 0.0] for _ in range(samples)] if not columns else [[1.0] * samples, [0.0] * samples]
    train = {"x": x, "y": str(y), "lr": draw(st.sampled_from(["0.1", "0.007", "10.0"])),
             "steps": draw(st.sampled_from(["2", "5"])), "init": '"random"',
             "sizes": "{ " + ", ".join(f"{k} = {v}" for k, v in sizes.items()) + " }"}
    return {"network": network, "layers": layers, "train": train}


@st.composite
def spec_texts(draw):
    spec = _valid_network(draw)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):  # damage a value or two
        table = draw(st.sampled_from(["network", "layers", "train"]))
        target = draw(st.sampled_from(spec["layers"])) if table == "layers" else spec[table]
        key = draw(st.sampled_from(sorted(target) + ["bogus"]))
        if draw(st.sampled_from([False, False, False, True])):
            target.pop(key, None)
        else:
            target[key] = draw(values)
    lines = ["[network]", *(f"{k} = {v}" for k, v in spec["network"].items())]
    for layer in spec["layers"]:
        lines += ["[[layers]]", *(f"{k} = {v}" for k, v in layer.items())]
    if draw(st.sampled_from([True, True, True, False])):
        lines += ["[train]", *(f"{k} = {v}" for k, v in spec["train"].items())]
    text = "\n".join(lines) + "\n"
    if draw(st.sampled_from([False] * 19 + [True])):  # now and then, a damaged file
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "\x00", "[[", "= =", "\ufeff", "\\", '"']))
    return text


@settings(max_examples=_MANY or 100, **_SETTINGS)
@given(text=spec_texts(), command=st.sampled_from(["derive", "train", "train", "json", "numpy", "check"]))
def test_a_spec_file_is_derived_or_trained_or_refused(tmp_path_factory, capsys, text, command):
    import numpy as np

    folder = tmp_path_factory.mktemp("spec")
    spec = folder / "net.toml"
    spec.write_text(text, encoding="utf-8")
    np.savez(folder / "data.npz", x=np.ones((2, 3)))
    argv = {"derive": ["derive", str(spec)], "train": ["train", str(spec)],
            "json": ["derive", str(spec), "--format", "json"], "numpy": ["derive", str(spec), "--numpy", "-"],
            "check": ["check", str(spec), "W1", "delta1 @ X.T"]}[command]
    outcome(capsys, argv)


def test_the_time_bound_catches_a_hang():
    with pytest.raises(Hang):
        with time_bound(0.05):
            while True:
                pass


# --- defects the fuzz test found, each a test of its own ------------------------------------------------


def _spec(tmp_path, text: str) -> str:
    path = tmp_path / "net.toml"
    path.write_text(text)
    return str(path)


def test_check_with_a_huge_numeric_size_is_refused_before_drawing(tmp_path, capsys):
    spec = _spec(tmp_path, "[network]\ninputs = 1\nbatch = 9223372036854775807\n[[layers]]\nunits = 1\n")
    assert main(["check", spec, "W1", "delta1 @ X.T"]) in (0, 1, 2)
    assert "internal error" not in capsys.readouterr().err


def test_weight_decay_beyond_int64_from_python_is_exact_or_a_spec_error():
    import sympy

    from symbackprop import Dense, Network, SpecError

    assert Network(1, [Dense(1)], weight_decay=10**20).weight_decay == sympy.Integer(10**20)
    with pytest.raises(SpecError, match="at most 1e"):
        Network(1, [Dense(1)], weight_decay=10**400)


def test_weight_decay_near_the_largest_float_is_refused(tmp_path, capsys):
    spec = _spec(tmp_path, "[network]\ninputs = 1\nweight_decay = 1e308\n[[layers]]\nunits = 1\n"
                           "[train]\nx = 1.0\ny = 1.0\nlr = 0.1\nsteps = 2\n")
    assert main(["train", spec]) == 2
    assert "internal error" not in capsys.readouterr().err
