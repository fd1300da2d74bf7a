"""The command line: help with examples that run, --version, --format json, one-line errors with hints, exit codes."""

import errno
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import numpy as np
from pathlib import Path

import pytest

from symbackprop import FormulaSyntaxError, SpecError, UnknownNameError, __version__
from symbackprop.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "examples" / "seed.toml")
SOFTMAX = str(ROOT / "examples" / "softmax_classifier.toml")
COMMANDS = ("derive", "train", "check", "grad")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The single line an error prints, checked to be single."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err[:-1]


def help_examples(text: str) -> list[str]:
    """The commands under 'examples:' in a help text."""
    examples = text.split("\nexamples:\n", 1)[1]
    return [line.strip() for line in examples.splitlines() if line.startswith("  symbackprop ")]


# --- help and version -------------------------------------------------------------------------------


def test_main_help_lists_every_command_with_a_summary_and_examples(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert re.search(rf"^    {command} +\S", out, re.M), f"no one-line summary for {command}"
    assert {line.split()[1] for line in help_examples(out)} == set(COMMANDS)
    assert "exit status: 0 done, 1 'check' found the formula wrong, 2 bad input or output." in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_a_description_and_examples_of_itself(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    description = out.split("\n\n")[1]
    assert len(description.split()) > 15
    examples = help_examples(out)
    assert examples and all(line.startswith(f"symbackprop {command} ") for line in examples)
    assert "--format {text,json}" in out


def test_help_is_laid_out_for_80_columns_whatever_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    wide = run(capsys, "derive", "--help")[1]
    monkeypatch.setenv("COLUMNS", "40")
    assert run(capsys, "derive", "--help")[1] == wide
    assert max(len(line) for line in wide.splitlines()) <= 80


def test_every_example_in_the_help_runs(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")  # one example draws a plot
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    texts = [run(capsys, "--help")[1], *(run(capsys, command, "--help")[1] for command in COMMANDS)]
    examples = list(dict.fromkeys(line for text in texts for line in help_examples(text)))
    assert len(examples) >= 15
    for example in examples:
        code, out, err = run(capsys, *shlex.split(example)[1:])
        wrong = "check" in example and "'x * (W1 * x - y)'" in example  # shows a wrong formula's JSON
        assert (code, err) == (1 if wrong else 0, ""), example
    assert {p.name for p in tmp_path.iterdir()} >= {"seed.tex", "nielsen_step.py", "autoencoder.png"}


def test_version_is_the_package_version(capsys):
    assert run(capsys, "--version") == (0, f"symbackprop {__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


# --- --format json ----------------------------------------------------------------------------------


def test_derive_json_holds_the_network_shapes_steps_deltas_and_gradients(capsys):
    code, out, err = run(capsys, "derive", SOFTMAX, "--format", "json")
    assert (code, err) == (0, "") and out.endswith("}\n")
    document = json.loads(out)
    assert list(document) == sorted(document)
    assert document["network"] == {
        "activations": ["relu", "relu", "softmax"], "batch": "m", "biases": [True, True, True],
        "cost": "softmax_cross_entropy", "inputs": "n_0", "layout": "rows", "weight_decay": "0",
        "widths": ["n_1", "n_2", "k"], "skip_from": [None, None, None], "tied_to": [None, None, None], "fixed": [],
        "kinds": ["dense", "dense", "dense"], "reduction": "sum",
    }
    assert document["shapes"]["W1"] == ["n_0", "n_1"] and document["shapes"]["X"] == ["m", "n_0"]
    assert list(document["shapes"]) == ["X", "Y", "W1", "b1", "W2", "b2", "W3", "b3"]
    assert [node["name"] for node in document["forward"]] == ["z1", "a1", "z2", "a2", "z3", "a3"]
    assert document["forward"][0] == {"latex": r"a^{(0)} W^{(1)} + \mathbf{1} b^{(1)}", "name": "z1",
                                      "text": "X W⁽¹⁾ + 1 b⁽¹⁾", "role": "preactivation", "layer": 1}
    assert list(document["gradients"]) == ["W1", "b1", "W2", "b2", "W3", "b3"]  # network order, not sorted
    assert document["gradients"]["W1"] == {"latex": r"a^{(0)\top} \delta^{(1)}", "text": "Xᵀ δ⁽¹⁾"}
    assert document["deltas"]["delta3"]["text"] == "a⁽³⁾ − Y"
    delta3 = next(step for step in document["steps"] if step["lhs"]["text"] == "δ⁽³⁾")
    assert delta3["rule"] == "softmax" and delta3["layer"] == 3 and delta3["rhs"]["text"] == "a⁽³⁾ − Y"
    assert delta3["note"] == document["assumptions"][0] and "probability distribution" in delta3["note"]
    assert set(delta3) == {"general", "layer", "lhs", "note", "rhs", "rule", "quantity", "role"}
    assert (delta3["quantity"], delta3["role"]) == ("z3", "preactivation")


def test_derive_json_is_deterministic_utf8_and_can_go_with_files(capsys, tmp_path):
    first = run(capsys, "derive", SEED, "--format", "json")[1]
    tex, module = tmp_path / "seed.tex", tmp_path / "seed_step.py"
    code, second, _ = run(capsys, "derive", SEED, "--format", "json", "--latex", str(tex), "--numpy", str(module))
    assert code == 0 and first == second  # the files are written, and the JSON printed as well
    assert r"\frac{\partial C}{\partial W^{(1)}}" in tex.read_text() and "def step(" in module.read_text()
    assert "∂C/∂W⁽¹⁾" in first  # UTF-8 text, not \u escapes


def test_derive_json_refuses_a_file_option_on_standard_output(capsys):
    code, out, err = run(capsys, "derive", SEED, "--format", "json", "--latex", "-")
    assert (code, out) == (2, "")
    assert json.loads(one_error_line(err)) == {
        "error": "symbackprop derive: --format json prints JSON on standard output, so --latex cannot print there too",
        "hint": "give --latex a file name", "position": None, "type": "UsageError"}


def test_check_json_right_and_wrong(capsys):
    code, out, _ = run(capsys, "check", SEED, "W1", "2 * x * (W1 * x - y)", "--format", "json")
    right = json.loads(out)
    assert code == 0 and right["ok"] is True and right["hint"] is None and right["counterexample"] is None
    assert right["param"] == "W1" and right["formula"] == "2 * x * (W1 * x - y)"
    assert right["derived"] == {"latex": r"\delta^{(1)} a^{(0)\top}", "text": "δ⁽¹⁾ Xᵀ"}
    assert right["message"].startswith("right: ")

    code, out, _ = run(capsys, "check", SEED, "W1", "x * (W1 * x - y)", "--format", "json")
    wrong = json.loads(out)
    assert code == 1 and wrong["ok"] is False
    assert wrong["hint"] == "a missing factor 2: 2 * (x * (W1 * x - y)) is right"
    example = wrong["counterexample"]
    assert set(example) == {"expected", "got", "index", "sizes", "values"} and example["index"] == [0, 0]
    assert example["got"] == pytest.approx(example["expected"] / 2)
    assert list(example["values"]) == ["X", "Y", "W1"] and len(example["values"]["W1"]) == 1


def test_check_json_counterexample_has_the_sizes_of_a_symbolic_network(capsys):
    code, out, _ = run(capsys, "check", SOFTMAX, "W3", "a2.T @ (a3 - y) + 1", "--format", "json")
    example = json.loads(out)["counterexample"]
    assert code == 1 and example["sizes"] == {"n_0": 2, "n_1": 2, "n_2": 2, "k": 2, "m": 2}
    assert len(example["values"]["W1"]) == 2 and len(example["values"]["W1"][0]) == 2


def test_train_json_has_every_step_and_the_final_parameters(capsys):
    code, text, _ = run(capsys, "train", SEED, "--steps", "3")
    code, out, err = run(capsys, "train", SEED, "--steps", "3", "--format", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert set(document) == {"final", "lr", "steps"} and document["lr"] == 0.007
    assert [step["step"] for step in document["steps"]] == [0, 1, 2, 3]
    assert document["steps"][1]["params"]["W1"] == pytest.approx(-8.594754)
    for line, step in zip(text.splitlines(), document["steps"]):
        assert line == f"step {step['step']}  cost {step['cost']:.5g}  W1 = {step['params']['W1']:.5g}"
    assert document["final"]["step"] == 3 and document["final"]["cost"] == document["steps"][-1]["cost"]
    assert document["final"]["params"]["W1"] == [[pytest.approx(3.6233, abs=1e-4)]]


def test_train_json_gives_whole_matrices_and_the_overridden_learning_rate(capsys):
    code, out, _ = run(capsys, "train", SOFTMAX, "--steps", "1", "--lr", "0.01", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["lr"] == 0.01
    assert all(step["params"] == {} for step in document["steps"])  # no 1×1 parameters
    final = document["final"]["params"]
    assert list(final) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert (len(final["W1"]), len(final["W1"][0])) == (4, 8) and len(final["b3"][0]) == 3  # n_0 = 4, n_1 = 8, k = 3


# --- [train].sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes, message", [
    ("{ n_1 = 8 }", "error: {spec}: [train].init: random initial values need the size n_2, which the data do not "
                    "fix; give it a number in the spec, or give the parameters' values "
                    "(hint: add sizes = { n_2 = 16 } to [train])"),
    ("{ n_1 = 8, n_3 = 2 }", "error: {spec}: [train].sizes: 'n_3' is not a symbolic size of the network; "
                             "known: n_0, n_1, n_2, k, m"),
    ("{ n_1 = 8, n_2 = 0 }", "error: {spec}: [train].sizes.n_2: expected a positive whole number, given 0"),
    ("{ n_1 = 8, n_2 = 6, n_0 = 5 }", "error: {spec}: [train].sizes.n_0: 5, but the data or the initial values "
                                      "make it 4"),
    ("3", "error: {spec}: [train].sizes: expected a table of sizes, such as { n_0 = 16 }"),
])
def test_train_sizes_name_the_hidden_widths_the_data_do_not_fix(capsys, tmp_path, sizes, message):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    spec = tmp_path / "examples" / "softmax_classifier.toml"
    spec.write_text(spec.read_text().replace("sizes = { n_1 = 8, n_2 = 6 }", f"sizes = {sizes}"))
    code, out, err = run(capsys, "train", str(spec), "--steps", "1")
    assert (code, out) == (2, "")
    assert one_error_line(err) == message.replace("{spec}", str(spec))


# --- errors: one line, with a hint ---------------------------------------------------------------------


def _spec(tmp_path, text: str) -> str:
    path = tmp_path / "net.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_a_missing_spec_file_says_where_paths_start(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "derive", "examples/seed.tom")
    assert (code, out) == (2, "")
    assert one_error_line(err) == ("error: examples/seed.tom: no such spec file "
                                   "(hint: paths are relative to the current folder)")
    code, _, err = run(capsys, "derive", str(tmp_path / "none.toml"))
    assert one_error_line(err) == f"error: {tmp_path / 'none.toml'}: no such spec file"  # absolute: no hint


@pytest.mark.parametrize("text, message", [
    ("[network]\ninputs = 3\n[[layers]]\nunits = 2\nactivation = 'sigmod'\n",
     "[[layers]] #1: unknown activation 'sigmod'; known: identity, leaky_relu, relu, sigmoid, softmax, softplus, "
     "tanh, or a formula in x such as 'x**3' (hint: did you mean 'sigmoid'?)"),
    ("[network]\ninputs = 3\n[[layers]]\nunits = 2\nactivaton = 'tanh'\n",
     "unknown key in [[layers]] #1: 'activaton'; known keys: units, activation, bias, skip_from, tied_to (hint: did you mean 'activation'?)"),
    ("[network]\ninputs = 3\n[[layers]]\nunits = 2\n[training]\nlr = 1\n",
     "unknown key 'training'; known keys: network, layers, model, train (hint: did you mean 'train'?)"),
    ("[network]\ninputs = 3\ncost = 'squared_eror'\n[[layers]]\nunits = 2\n",
     "[network]: unknown cost 'squared_eror'; known: binary_cross_entropy, half_squared_error, mean_squared_error, "
     "softmax_cross_entropy, squared_error (hint: did you mean 'squared_error'?)"),
    ("[network]\ninputs = 3\n[[layers]]\nunits = 2\nactivation = tanh\n",
     "not valid TOML: Invalid value (at line 5, column 14) "
     "(hint: names are strings in quotes (activation = \"tanh\"); docs/spec.md shows the format)"),
    ("[network]\ninputs = 3\n[[layers]]\nunits = 2\n",
     "no [train] table; add one with x, y, lr and steps"),
])
def test_spec_errors_are_one_line_with_a_hint_where_a_fix_is_likely(capsys, tmp_path, text, message):
    spec = _spec(tmp_path, text)
    code, out, err = run(capsys, "train", spec)
    assert (code, out) == (2, "")
    assert one_error_line(err) == f"error: {spec}: {message}"


def test_a_training_data_file_that_is_not_there_says_where_paths_start(capsys, tmp_path):
    spec = _spec(tmp_path, "[network]\ninputs = 1\n[[layers]]\nunits = 1\n[train]\nx = 'x.csv'\ny = 1.0\nlr = 0.1\n")
    code, out, err = run(capsys, "train", spec)
    assert (code, out) == (2, "")
    assert one_error_line(err) == (f"error: {spec}: [train].x: no such file {str(tmp_path / 'x.csv')!r} "
                                   "(hint: paths in [train] are relative to the spec file's folder)")


def test_a_diverging_run_suggests_a_smaller_learning_rate(capsys):
    code, out, err = run(capsys, "train", SEED, "--lr", "1", "--steps", "100")
    assert code == 2 and out.startswith("step   0")  # the steps before the blow-up are shown
    assert one_error_line(err) == ("error: the cost is inf after 85 steps: the learning rate 1 is too large for this "
                                   "problem (hint: try --lr 0.1)")


@pytest.mark.parametrize("argv, message", [
    (["deriv", SEED], "error: symbackprop: argument COMMAND: invalid choice: 'deriv' (choose from 'derive', "
                      "'train', 'eval', 'check', 'grad') (hint: did you mean 'derive'?)"),
    ([], "error: symbackprop: the following arguments are required: COMMAND "
         "(hint: 'symbackprop --help' shows the usage and examples)"),
    (["train", SEED, "--steps", "many"], "error: symbackprop train: argument --steps: invalid int value: 'many' "
                                         "(hint: 'symbackprop train --help' shows the usage and examples)"),
    (["derive", SEED, "--format", "jsn"], "error: symbackprop derive: argument --format: invalid choice: 'jsn' "
                                          "(choose from 'text', 'json') (hint: did you mean 'json'?)"),
    (["check", SEED, "W1", "-2*x*(y-W1*x)"], "error: symbackprop check: the following arguments are required: formula "
                                             "(hint: give SPEC PARAM FORMULA; a formula that starts with '-' "
                                             "goes after '--')"),
])
def test_usage_errors_are_one_line_with_a_hint_not_a_usage_block(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert one_error_line(err) == message


def test_a_formula_syntax_error_keeps_its_caret_below_the_one_line_error(capsys):
    code, out, err = run(capsys, "check", SEED, "W1", "2 * (x")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: expected ')' to close '(' at position 4, found the end of the formula (at position 6)",
        "         2 * (x",
        "               ^",
    ]


def test_errors_in_json_mode_are_one_json_line_on_stderr(capsys):
    code, out, err = run(capsys, "check", SEED, "W1", "2 * (x", "--format", "json")
    assert (code, out) == (2, "")
    assert json.loads(one_error_line(err)) == {
        "error": "expected ')' to close '(' at position 4, found the end of the formula (at position 6)",
        "hint": None, "position": 6, "type": "FormulaSyntaxError"}
    code, out, err = run(capsys, "--format=json", "derive", "nowhere.toml")  # usage errors too
    assert code == 2 and json.loads(one_error_line(err))["type"] == "UsageError"
    code, out, err = run(capsys, "derive", "nowhere.toml", "--format=json")
    assert json.loads(one_error_line(err)) == {"error": "nowhere.toml: no such spec file",
                                               "hint": "paths are relative to the current folder",
                                               "position": None, "type": "SpecError"}


def test_a_hint_is_an_attribute_and_a_traceback_note_not_part_of_the_message():
    err = SpecError("net.toml: no such spec file", hint="paths are relative to the current folder")
    assert str(err) == "net.toml: no such spec file" and err.hint == "paths are relative to the current folder"
    assert err.__notes__ == ["hint: paths are relative to the current folder"]
    assert SpecError("plain").hint is None and not hasattr(SpecError("plain"), "__notes__")
    assert UnknownNameError("cost", "l2", ["squared_error"]).hint is None  # nothing close
    syntax = FormulaSyntaxError("unexpected ')'", "x)", 1)
    assert syntax.located() == "unexpected ')' (at position 1)" and syntax.caret() == ["  x)", "   ^"]
    assert str(syntax) == "unexpected ')' (at position 1)\n  x)\n   ^"


def test_an_error_message_with_a_line_break_is_still_shown_on_one_line(capsys, monkeypatch):
    def broken(path):
        raise SpecError("first part\nsecond part", hint="a fix")

    monkeypatch.setattr("symbackprop.cli.load_spec", broken)
    monkeypatch.setattr("symbackprop.cli.read_spec", broken)
    assert run(capsys, "derive", SEED) == (2, "", "error: first part second part (hint: a fix)\n")
    assert run(capsys, "check", SEED, "W1", "x") == (2, "", "error: first part second part (hint: a fix)\n")


# --- exit codes and output failures -----------------------------------------------------------------


def test_exit_codes_are_0_done_1_wrong_2_bad_input(capsys):
    assert run(capsys, "derive", SEED)[0] == 0
    assert run(capsys, "check", SEED, "W1", "2 * x * (W1 * x - y)")[0] == 0
    assert run(capsys, "check", SEED, "W1", "2 * x * (W1 * x + y)")[0] == 1
    assert run(capsys, "check", SEED, "W2", "x")[0] == 2
    assert run(capsys, "train", SEED, "--steps", "0")[0] == 2


class _Failing(io.StringIO):
    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


def test_a_full_disk_on_standard_output_is_one_error_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Failing(OSError(errno.ENOSPC, "No space left on device")))
    assert main(["derive", SEED]) == 2
    assert capsys.readouterr().err == "error: cannot write to standard output: No space left on device\n"


def test_a_reader_that_left_ends_the_output_quietly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["train", SEED]) == 0
    assert capsys.readouterr().err == ""


def test_a_terminal_that_cannot_show_the_formulas_gets_a_hint(capsys, monkeypatch):
    ascii_terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_terminal)
    assert main(["derive", SEED]) == 2
    assert capsys.readouterr().err == ("error: standard output's encoding (ascii) cannot show the formulas "
                                       "(hint: set PYTHONIOENCODING=utf-8, or use --format json (always UTF-8))\n")
    assert main(["derive", SEED, "--format", "json"]) == 0  # JSON is written as UTF-8 bytes
    assert "∂C/∂a⁽¹⁾" in ascii_terminal.buffer.getvalue().decode("utf-8")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_in_a_real_process_a_full_disk_and_a_closed_pipe_leave_no_traceback():
    command = [sys.executable, "-m", "symbackprop", "derive", SEED]
    with open("/dev/full", "w") as full:
        result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (2, "error: cannot write to standard output: No space left on device\n")
    reader = subprocess.Popen([*command[:-2], "train", SEED], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # the reader leaves before the first line
    assert reader.wait(timeout=60) == 0 and reader.stderr.read() == b""
    reader.stderr.close()


def test_an_internal_error_is_one_line_and_exit_status_3_never_a_verdict(monkeypatch, capsys):
    import symbackprop.cli as cli

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "derive", broken)
    assert main(["derive", str(ROOT / "examples" / "seed.toml")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: internal error: RuntimeError: something inside broke")


def test_two_outputs_to_one_file_are_refused(tmp_path, capsys):
    target = tmp_path / "out.tex"
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), "--latex", str(target), "--markdown", str(target)]) == 2
    assert "--latex and --markdown both write" in capsys.readouterr().err
    assert not target.exists()


# --- grad ----------------------------------------------------------------------------------------


def test_grad_prints_the_cookbook_form_of_a_gradient(capsys):
    code, out, _ = run(capsys, "grad", "log(det(X)) + trace(A @ X)", "X", "--shapes", "X=n,n", "A=n,n")
    assert (code, out) == (0, "∂/∂X [tr(A X) + log(det(X))] = X⁻ᵀ + Aᵀ\n")


def test_grad_latex_keeps_the_users_names(capsys):
    code, out, _ = run(capsys, "grad", "log(det(X))", "X", "--shapes", "X=n,n", "--latex")
    assert code == 0 and "X^{-\\top}" in out and "a^{(0)}" not in out


def test_grad_numpy_code_runs_and_is_checked(capsys):
    code, out, _ = run(capsys, "grad", "x' A x", "x", "--shapes", "x=n", "A=n,n", "--numpy", "--sizes", "n=4")
    assert code == 0 and out.rstrip().endswith("(n = 4) to 1e-6")
    namespace: dict = {}
    exec(compile(out, "<grad>", "exec"), namespace)  # the command's own output, not user text
    A, x = np.arange(16.0).reshape(4, 4), np.ones((4, 1))
    np.testing.assert_allclose(namespace["grad_x"](x, A), (A + A.T) @ x)


def test_grad_json_has_the_gradient_code_and_check(capsys):
    code, out, _ = run(capsys, "grad", "trace(X' X)", "X", "--shapes", "X=2,3", "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["gradient"]["text"] == "2 X" and document["check"]["passed"] is True


@pytest.mark.parametrize("argv, message", [
    (["trace(X)", "Y", "--shapes", "X=n,n"], "Y is not one of the matrices of --shapes"),
    (["X", "X", "--shapes", "X=n,n"], "grad needs a scalar expression; this one is n×n"),
    (["trace(X)", "X", "--shapes", "X=n;n"], "--shapes takes NAME=ROWS,COLS"),
    (["det(X)", "X", "--shapes", "X=2,3"], "the determinant needs a square matrix"),
    (["trace(X)", "X", "--shapes", "X=n,n", "--numpy", "--sizes", "n=0"], "--sizes takes SIZE=N"),
])
def test_grad_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, "grad", *argv)
    assert code == 2 and out == "" and err.startswith("error: ") and message in err and err.count("\n") == 1
