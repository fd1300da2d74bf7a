"""A formula inside a spec file (a custom activation, a [model] line) that does not parse is shown as a
formula typed on the command line is: the one-line error, then the formula with a caret under the fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent
ACTIVATION = '[network]\ninputs = 2\n\n[[layers]]\nunits = 3\nactivation = "np.tanh(x)"\n'
MODEL = ('[model]\ninputs = { X = [2, "m"], Y = [1, "m"] }\nparameters = { W1 = [1, 2] }\n'
         'forward = ["a1 = np.tanh(W1 @ X)", "C = sum((a1 - Y)^2)"]\n')
MESSAGE = "'.' is only allowed in numbers and in '.T', '.*', './', '.^' (there is no attribute access)"
HINT = "drop 'np.': functions are called by name, as in tanh(x)"


@pytest.mark.parametrize("text, where, position, shown", [
    (ACTIVATION, "[[layers]] #1: custom activation 'np.tanh(x)'", 2, "np.tanh(x)"),
    (MODEL, "[model]: forward line 1 (a1 = np.tanh(W1 @ X))", 3, " np.tanh(W1 @ X)"),
])
def test_a_spec_formula_error_is_one_line_then_the_formula_and_a_caret(tmp_path, capsys, text, where, position,
                                                                         shown):
    spec = tmp_path / "net.toml"
    spec.write_text(text, encoding="utf-8")
    assert main(["derive", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: {spec}: {where}: {MESSAGE} (at position {position}) (hint: {HINT})",
        f"         {shown}",
        f"         {' ' * position}^",
    ]
    assert main(["derive", str(spec), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert json.loads(captured.err) == {"error": f"{spec}: {where}: {MESSAGE} (at position {position})",
                                        "hint": HINT, "position": position, "type": "SpecError"}


def test_a_module_prefix_in_a_checked_formula_gets_the_hint(capsys):
    assert main(["check", str(ROOT / "examples" / "seed.toml"), "W1", "2 * x * (np.tanh(W1 * x) - y)"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {MESSAGE} (at position 11) (hint: {HINT})"
    assert err[1:] == ["         2 * x * (np.tanh(W1 * x) - y)", "                    ^"]


def test_a_dot_after_another_name_gets_no_module_hint(capsys):
    assert main(["check", str(ROOT / "examples" / "seed.toml"), "W1", "snp.x"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"error: {MESSAGE} (at position 3)"


def test_other_spec_errors_stay_one_line_without_a_position(tmp_path, capsys):
    spec = tmp_path / "net.toml"
    spec.write_text(ACTIVATION.replace("np.tanh(x)", "y**2"), encoding="utf-8")
    assert main(["derive", str(spec), "--format", "json"]) == 2
    document = json.loads(capsys.readouterr().err)
    assert document["position"] is None and "unknown name 'y'" in document["error"]
