"""Spec files and the command line on good input."""

import textwrap
from pathlib import Path

import sympy

from symbackprop import load_spec
from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_seed_example_is_the_one_weight_network():
    net = load_spec(ROOT / "examples" / "seed.toml")
    assert net.sizes == (1, 1)
    assert net.cost.name == "squared_error"
    assert not net.layers[0].bias
    assert net.layers[0].activation.name == "identity"


def test_spec_with_symbols_layout_batch_and_weight_decay(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(textwrap.dedent("""
        [network]
        inputs = "n_0"
        cost = "softmax_cross_entropy"
        layout = "rows"
        batch = "m"
        weight_decay = 0.01

        [[layers]]
        units = "n_1"
        activation = "x**3"

        [[layers]]
        units = 10
        activation = "softmax"
        bias = false
    """))
    net = load_spec(path)
    assert [str(s) for s in net.size_symbols] == ["n_0", "n_1", "m"]
    assert net.layout == "rows" and net.weight_decay == sympy.Rational(1, 100)
    assert net.layers[0].activation.definition == sympy.Symbol("x", real=True) ** 3
    assert list(net.parameter_shapes()) == ["W1", "b1", "W2"]


def test_cli_derive_prints_forward_pass_deltas_and_gradients(capsys):
    assert main(["derive", str(ROOT / "examples" / "seed.toml")]) == 0
    out = capsys.readouterr().out
    assert "z⁽¹⁾ = W⁽¹⁾ X" in out
    assert "δ⁽¹⁾ = ∂C/∂a⁽¹⁾ = 2 (a⁽¹⁾ − Y)" in out
    assert "∂C/∂W⁽¹⁾ = δ⁽¹⁾ Xᵀ" in out


def test_cli_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    assert capsys.readouterr().out.startswith("symbackprop ")
