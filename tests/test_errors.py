"""Bad input: a clear symbackprop error naming the thing at fault, never a traceback."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from symbackprop import (
    Dense,
    Network,
    ShapeError,
    SpecError,
    SymbackpropError,
    UnknownNameError,
    derive,
    evaluate,
    load_spec,
    random_values,
)
from symbackprop.cli import main


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: Dense(4, "sigmod"), UnknownNameError, "unknown activation 'sigmod'; known: identity, leaky_relu"),
        (lambda: Network(3, [Dense(2)], cost="l2"), UnknownNameError, "unknown cost 'l2'; known: binary_cross_entropy"),
        (lambda: Dense(0), SpecError, "layer width must be a positive integer"),
        (lambda: Dense(-3), SpecError, "positive integer"),
        (lambda: Dense(2.5), SpecError, "not float"),
        (lambda: Dense(True), SpecError, "not True"),
        (lambda: Dense("n 1"), SpecError, "'n 1' is not a valid symbol name"),
        (lambda: Dense("W1"), SpecError, "a name symbackprop uses"),
        (lambda: Dense(3, "x + y"), SpecError, "unknown name 'y'"),
        (lambda: Dense(3, bias="yes"), SpecError, "bias must be true, false or \"shared\""),
        (lambda: Network(3, [Dense(2, "softmax"), Dense(2)]), SpecError, "layer 1: softmax can only be the last"),
        (lambda: Network(3, [Dense(2, "sigmoid")], cost="softmax_cross_entropy"), SpecError,
         "softmax_cross_entropy needs a softmax output layer; the last layer has sigmoid"),
        (lambda: Network(3, []), SpecError, "the network has no layers"),
        (lambda: Network(3, "dense"), SpecError, "layers must be a list"),
        (lambda: Network(3, [4]), SpecError, "layer 1 must be a layer (Dense, LayerNorm, BatchNorm, Attention, Embedding, Dropout), not int"),
        (lambda: Network(3, [Dense(2)], layout="cols"), SpecError, "unknown layout 'cols'; known: columns, rows"),
        (lambda: Network(3, [Dense(2)], weight_decay=-1), SpecError, "weight_decay must be a finite number"),
        (lambda: Network(3, [Dense(2)], batch=0), SpecError, "batch must be a positive integer"),
        (lambda: derive("net"), SymbackpropError, "derive takes a Network"),
    ],
)
def test_bad_network_raises_a_clear_error(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


def test_evaluate_names_the_parameter_the_expected_and_the_given_shape():
    d = derive(Network(3, [Dense(4, "tanh")], batch="m"))
    values = {"X": np.ones((3, 5)), "Y": np.ones((4, 5)), "W1": np.ones((3, 4)), "b1": np.ones((4, 1))}
    with pytest.raises(ShapeError) as info:
        evaluate(d.gradients["W1"], values)
    assert str(info.value) == "W1: expected shape (4, 3), given (3, 4)"


def test_evaluate_names_a_conflicting_symbolic_size_and_where_it_came_from():
    d = derive(Network("n_0", [Dense(4, "tanh")], batch="m"))
    values = {"X": np.ones((3, 5)), "Y": np.ones((4, 6)), "W1": np.ones((4, 3)), "b1": np.ones((4, 1))}
    with pytest.raises(ShapeError, match=r"Y: expected shape \(4, 5\) \(m = 5 from X\), given \(4, 6\)"):
        evaluate(d.cost, values)


def test_evaluate_reports_a_missing_value():
    d = derive(Network(3, [Dense(4)]))
    with pytest.raises(SymbackpropError, match="no value for W1"):
        evaluate(d.gradients["W1"], {"X": np.ones((3, 1)), "Y": np.ones((4, 1))})


def _write(tmp_path, text, name="net.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("[network]\ninputs = 3\n", "no [[layers]]"),
        ("[[layers]]\nunits = 2\n", "missing [network] table"),
        ("[network]\ninputs = 3\ncolour = 1\n[[layers]]\nunits = 2\n", "unknown key [network].'colour'; known keys: inputs"),
        ("[network]\ninputs = 3\n[[layers]]\nunits = 2\nactivaton = 'tanh'\n", "unknown key in [[layers]] #1: 'activaton'"),
        ("[network]\ninputs = 3\n[[layers]]\nactivation = 'tanh'\n", "[[layers]] #1 needs the key 'units'"),
        ("[network]\ninputs = 3\n[[layers]]\nunits = 2\n[[layers]]\nunits = 2\nactivation = 'sigmod'\n",
         "[[layers]] #2: unknown activation 'sigmod'"),
        ("[network]\ninputs = 3\ncost = 'l1'\n[[layers]]\nunits = 2\n", "[network]: unknown cost 'l1'"),
        ("[network]\ncost = 'l1'\n[[layers]]\nunits = 2\n", "[network] needs the key 'inputs'"),
        ("[network]\ninputs = 3\n[[layers]\nunits = 2\n", "not valid TOML"),
        ("[network]\ninputs = 3\n[[layers]]\nunits = 2\n[extra]\n", "unknown key 'extra'"),
        ("[network]\ninputs = 3\n[[layers]]\nunits = 2\n[train]\nrate = 1\n", "unknown key [train].'rate'"),
    ],
)
def test_spec_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_missing_spec_file_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.toml")


def test_cli_prints_one_line_and_exits_2_on_bad_input(tmp_path, capsys):
    path = _write(tmp_path, "[network]\ninputs = 3\n[[layers]]\nunits = 2\nactivation = 'sigmod'\n")
    assert main(["derive", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown activation 'sigmod'" in lines[0]


def test_cli_in_a_subprocess_shows_no_traceback(tmp_path):
    path = _write(tmp_path, "[network]\ninputs = 'n 0'\n[[layers]]\nunits = 2\n")
    result = subprocess.run([sys.executable, "-m", "symbackprop", "derive", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Network(2, [Dense(3, "tanh")], batch="m", weight_decay="m"), "also the name of a size"),
        (lambda: Network(2, [Dense(3, "tanh")], weight_decay=float("nan")), "finite number"),
        (lambda: Network(2, [Dense(1, "softmax")]), "softmax over a single unit"),
        (lambda: Dense(2, "log(0*x)"), "not a finite real function"),
        (lambda: Dense(2, "sqrt(-1)*x"), "not a finite real function"),
    ],
)
def test_degenerate_networks_are_refused(build, message):
    with pytest.raises(SpecError, match=message):
        build()


def test_evaluate_refuses_names_and_bad_scalar_values_clearly():
    d = derive(Network(2, [Dense(2, "tanh")], weight_decay="lam", batch="m"))
    values = random_values(d.network, seed=0)
    with pytest.raises(SymbackpropError, match="use Derivation.evaluate"):
        evaluate("delta1", values)
    with pytest.raises(SymbackpropError, match="lam must be a real number"):
        evaluate(d.cost, {**values, "lam": "abc"})
    with pytest.raises(SymbackpropError, match="X is not an array of numbers"):
        evaluate(d.cost, {**values, "X": [[1.0, 2.0], [3.0]]})


def test_deep_networks_with_weight_decay_derive_and_evaluate():
    net = Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, 121)], batch="m", weight_decay=0.01)
    d = derive(net)
    values = random_values(net, seed=0, sizes={s.name: 2 for s in net.size_symbols})
    assert np.isfinite(evaluate(d.cost, values))
    assert evaluate(d.gradients["W1"], values).shape == (2, 2)


def test_constants_in_custom_activations_evaluate():
    from symbackprop import check_gradients

    assert check_gradients(derive(Network(2, [Dense(2, "pi*x")], batch=2))).ok


@pytest.mark.parametrize("spec, hint", [
    ('[network]\ninputs = 2\n[[layers]]\nunits = 2\nactivation = "ReLU"\n', "did you mean 'relu'?"),
    ('[network]\ninputs = 2\ncost = "mse"\n[[layers]]\nunits = 2\n', "did you mean 'mean_squared_error'?"),
    ('[network]\ninputs = 2\ncost = "cross_entropy"\n[[layers]]\nunits = 2\nactivation = "softmax"\n',
     "did you mean 'softmax_cross_entropy'?"),
    ('[network]\ninputs = 2\ncost = "cross_entropy"\n[[layers]]\nunits = 2\nactivation = "sigmoid"\n',
     "did you mean 'binary_cross_entropy'?"),
    ('[network]\ninputs = 2\n[[layers]]\nunits = "128"\n', "is a number in quotes; write it without them: 128"),
])
def test_a_first_use_gets_the_hint_it_needs(tmp_path, capsys, spec, hint):
    from symbackprop.cli import main

    path = tmp_path / "net.toml"
    path.write_text(spec)
    assert main(["derive", str(path)]) == 2
    err = capsys.readouterr().err
    assert hint in err and len(err.strip().splitlines()) == 1, err


def test_a_parameter_in_the_wrong_case_is_hinted(tmp_path, capsys):
    from symbackprop.cli import main

    path = tmp_path / "net.toml"
    path.write_text('[network]\ninputs = 2\n[[layers]]\nunits = 2\n')
    assert main(["check", str(path), "w1", "delta1 @ X.T"]) == 2
    assert "did you mean 'W1'?" in capsys.readouterr().err


def test_a_bad_learning_rate_on_the_command_line_is_blamed_on_the_option(capsys):
    from symbackprop.cli import main

    assert main(["train", "examples/seed.toml", "--lr", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: --lr: the learning rate must be a positive number")
