"""Octave code, run in ``octave-cli``: gradients equal the NumPy module's, and the seed's listing.

One Octave process runs every network of the table and fifteen drawn stacks (each script is sourced in
turn), printing its cost and gradients at full precision; missing
``octave-cli`` skips these tests locally and fails them in CI.
"""

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symbackprop import Dense, Network, derive, random_values
from symbackprop.outputs.codegen import compile_numpy
from symbackprop.spec import load_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_program import connected_networks

ROOT = Path(__file__).resolve().parent.parent
SEED_W = [-8.5948, -0.68736, 3.6233, 5.9732, 7.2542, 7.9525, 8.3332, 8.5408, 8.6539, 8.7156,
          8.7492, 8.7675, 8.7775, 8.7829, 8.7859, 8.7875, 8.7884, 8.7889, 8.7892, 8.7893]


@pytest.fixture(scope="module")
def octave() -> str:
    found = shutil.which("octave-cli")
    if found is None:
        reason = "octave-cli is not installed (apt-get install octave)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run does)")
        pytest.skip(reason)
    return found


def run(octave: str, folder: Path, script: str) -> str:
    (folder / "driver.m").write_text(script, encoding="utf-8")
    done = subprocess.run([octave, "--no-gui", "--quiet", "--norc", "driver.m"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert "error:" not in done.stdout, done.stdout
    return done.stdout


def literal(array) -> str:
    array = np.atleast_2d(np.asarray(array, dtype=float))
    return "[" + "; ".join(", ".join(repr(float(v)) for v in row) for row in array) + "]"


HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "x**3/3 + x", "x*tanh(x)",
          "log(1 + exp(x))"]
OUTPUT = {"squared_error": "tanh", "half_squared_error": "identity", "mean_squared_error": "softmax",
          "binary_cross_entropy": "sigmoid", "softmax_cross_entropy": "softmax"}
TABLE = [
    Network(3, [Dense(4, hidden, bias), Dense("n", HIDDEN[(i + 3) % len(HIDDEN)]), Dense(2, OUTPUT[cost])],
            cost=cost, layout=layout, batch=[1, 3, "m"][i % 3], weight_decay=[0, 0.1, "lam"][i % 3])
    for i, (hidden, (cost, layout, bias)) in enumerate(zip(HIDDEN * 2, itertools.product(
        OUTPUT, ["columns", "rows"], [True, False])))
]


def drawn(count: int) -> list[Network]:
    """Random stacks with skips, tied weights, shared and fixed biases (tests/test_program.py draws them)."""
    found = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(net=connected_networks())
    def collect(net):
        found.append(net)

    collect()
    return found


def test_octave_gradients_equal_the_numpy_module(octave, tmp_path):
    script, expected = [], []
    for k, net in enumerate(TABLE + drawn(15)):
        d = derive(net)
        (tmp_path / f"net{k}.m").write_text(d.code("octave"), encoding="utf-8")
        values = random_values(net, seed=k, sizes={"m": 4, "n": 3})
        params = {name: np.asarray(values[name]) for name in d.gradients}
        extra = {"lam": 0.25} if "lam" in values else {}
        n = compile_numpy(d)
        with np.errstate(all="ignore"):
            assert np.all(np.isfinite(n.cost(params, values["X"], values["Y"], **extra)))
        expected.append([n.cost(params, values["X"], values["Y"], **extra),
                         *n.gradients(params, values["X"], values["Y"], **extra).values(),
                         *n.step(params, values["X"], values["Y"], 0.05, **extra).values()])
        lam = ", 0.25" if extra else ""
        script.append(f'source("net{k}.m");')
        script.append("params = struct(" + ", ".join(f'"{p}", {literal(v)}' for p, v in params.items()) + ");")
        script.append(f"X = {literal(values['X'])}; Y = {literal(values['Y'])};")
        script.append(f'printf("%.17g\\n", cost(params, X, Y{lam})); G = gradients(params, X, Y{lam});')
        script += [f'printf("%.17g ", G.{p}); printf("\\n");' for p in params]
        script.append(f"S = step(params, X, Y, 0.05{lam});")
        script += [f'printf("%.17g ", S.{p}); printf("\\n");' for p in params]
    lines = run(octave, tmp_path, "\n".join(script) + "\n").strip("\n").split("\n")
    for k, values in enumerate(expected):
        got, lines = lines[:len(values)], lines[len(values):]
        for value, text in zip(values, got):
            column_major = np.asarray(value).ravel(order="F")
            assert np.allclose(np.array(text.split(), dtype=float), column_major, rtol=1e-10, atol=1e-12), k
    assert lines == []


def test_seed_twenty_iterations_in_octave_print_the_seed_listing(octave, tmp_path):
    (tmp_path / "seed.m").write_text(derive(load_spec(ROOT / "examples" / "seed.toml")).code("octave"),
                                     encoding="utf-8")
    out = run(octave, tmp_path, 'source("seed.m");\nparams.W1 = -23.1;\nfor i = 1:20\n'
                                '  params = step(params, 5.7, 50.1, 0.007);\n  printf("%.5g\\n", params.W1);\nend\n')
    assert [float(w) for w in out.split()] == SEED_W


def test_octave_errors_name_the_parameter(octave, tmp_path):
    net = Network(3, [Dense(2, "tanh")], batch="m")
    (tmp_path / "net.m").write_text(derive(net).code("octave"), encoding="utf-8")
    done = subprocess.run([octave, "--no-gui", "--quiet", "--norc", "--eval",
                           'source("net.m"); gradients(struct("W1", zeros(3, 2), "b1", zeros(2, 1)), ones(3, 4), '
                           'ones(2, 4))'], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "W1: expected shape (2, 3), given (3, 2)" in done.stderr
    done = subprocess.run([octave, "--no-gui", "--quiet", "--norc", "--eval",
                           'source("net.m"); forward(struct("W1", zeros(2, 3)), ones(3, 4))'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "params: missing b1; expected W1, b1" in done.stderr
