"""Odd but valid input gets a result, and wrong input one line of error: never a traceback."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main


def spec_file(tmp_path: Path, activation: str, train: str = "") -> str:
    path = tmp_path / "net.toml"
    path.write_text(f'[network]\ninputs = 1\n[[layers]]\nunits = 1\nbias = false\nactivation = "{activation}"\n'
                    + train)
    return str(path)


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = "[train]\nx = 2.0\ny = 4.0\ninit = { W1 = 0.5 }\nlr = 0.05\nsteps = 3\n"


@pytest.mark.parametrize("activation", ["x", "(x)", "2*x/2", "x+0", "x**1"])
def test_identity_like_activations_generate_working_deterministic_code(tmp_path, capsys, activation):
    spec = spec_file(tmp_path, activation, TRAIN)
    assert main(["train", spec, "--format", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [step["params"]["W1"] for step in history["steps"]] == pytest.approx([0.5, 1.1, 1.46, 1.676])
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    assert main(["derive", spec, "--numpy", str(first)]) == 0
    assert main(["derive", spec, "--numpy", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    module = load_module(first)
    X = np.array([[2.0]])
    out = module.forward({"W1": np.array([[0.5]])}, X)
    assert out.tolist() == [[1.0]] and out is not X


@pytest.mark.parametrize("activation, latex", [("2*pi", r"2 \pi"), ("pi + pi", r"2 \pi"), ("x/(2*pi)", r"2 \pi"),
                                               ("pi*x", r"\pi")])
def test_activations_with_pi_typeset(tmp_path, capsys, activation, latex):
    assert main(["derive", spec_file(tmp_path, activation), "--latex", "-"]) == 0
    out = capsys.readouterr().out
    assert latex in out and r"\text{\Pi}" not in out
