"""Every bundled example derives (text and JSON), trains, typesets, and passes the check its comment shows."""

import importlib.util
import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symbackprop import check_gradients, derive, load_spec, random_values
from symbackprop.cli import main
from symbackprop.printing import to_text
from symbackprop.spec import read_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
DATA = ROOT / "examples" / "data"
CHECK_COMMAND = re.compile(r"^#\s+(symbackprop check .*)$", re.M)


def test_the_examples_are_there():
    names = {path.stem for path in EXAMPLES}
    assert {"seed", "seed_two_layer", "nielsen", "softmax_classifier", "autoencoder", "worked_2_2_2",
            "residual", "digits", "transformer_block", "batchnorm_mlp"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_derives_and_its_gradients_are_right(path):
    net = load_spec(path)
    d = derive(net)
    values = random_values(net, sizes={"m": 2, "n_0": 3, "n_1": 4, "n_2": 3, "k": 3}, seed=1)
    assert check_gradients(d, values).ok


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_derives_on_the_command_line_as_text_and_as_json(path, capsys):
    assert main(["derive", str(path)]) == 0
    text = capsys.readouterr().out
    assert "forward pass:" in text and "backward pass:" in text and "gradients:" in text
    assert main(["derive", str(path), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    d = derive(load_spec(path))
    assert list(document["gradients"]) == [p.name for p in d.program.trained]
    assert list(document["deltas"]) == list(d.deltas)
    for name, gradient in document["gradients"].items():
        assert f"∂C/∂{to_text(d.symbols[name])}" in text and gradient["text"] in text and gradient["latex"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_and_its_cost_goes_down(path, capsys):
    assert main(["train", str(path), "--steps", "3", "--format", "json"]) == 0
    costs = [step["cost"] for step in json.loads(capsys.readouterr().out)["steps"]]
    assert len(costs) == 4 and all(later < earlier for earlier, later in zip(costs, costs[1:])), costs


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trained_as_its_table_says_ends_ten_times_lower(path, capsys):
    assert main(["train", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first, last = (float(line.split("cost ")[1].split()[0]) for line in (lines[0], lines[-1]))
    table = read_spec(path).train
    assert len(lines) == (table["epochs"] if "epochs" in table else table["steps"]) + 1
    assert last < first / 10


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_shows_a_check_command_that_passes(path, monkeypatch, capsys):
    commands = CHECK_COMMAND.findall(path.read_text(encoding="utf-8"))
    assert commands, f"{path.name} has no '#   symbackprop check …' comment line"
    monkeypatch.chdir(ROOT)
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
        assert capsys.readouterr().out.startswith("right: ")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_latex_document_compiles_without_errors_or_overfull_boxes(path, pdflatex, tmp_path, capsys):
    assert main(["derive", str(path), "--latex", str(tmp_path / "doc.tex"), "--standalone"]) == 0
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(encoding="utf-8", errors="replace")
    problems = [line for line in log.splitlines() if line.startswith(("!", "Overfull \\hbox"))]
    assert result.returncode == 0 and not problems, problems or result.stdout[-2000:]
    assert (tmp_path / "doc.pdf").read_bytes().startswith(b"%PDF")


# --- the data ---------------------------------------------------------------------------------------


def _make_data():
    spec = importlib.util.spec_from_file_location("make_data", DATA / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path) as loaded:
            return {name: loaded[name] for name in loaded.files}
    return {"csv": np.loadtxt(path, delimiter=",", ndmin=2)}


def test_data_files_are_small_and_the_script_makes_them_again(tmp_path):
    _make_data().main(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in DATA.iterdir() if p.suffix in (".npz", ".csv"))
    assert made == shipped
    for name in shipped:
        assert (DATA / name).stat().st_size < 100_000, name
        again, committed = _arrays(tmp_path / name), _arrays(DATA / name)
        assert again.keys() == committed.keys()
        assert all(np.array_equal(again[key], committed[key]) for key in again), name


def test_nielsen_digits_are_28_by_28_images_in_0_1_with_one_hot_targets():
    data = _arrays(DATA / "nielsen_digits.npz")
    x, y = data["x"].astype(float), data["y"].astype(float)
    assert x.shape == (784, 32) and y.shape == (10, 32)
    assert x.min() == 0 and x.max() == 1 and x.mean() > 0.05
    assert np.array_equal(y.sum(axis=0), np.ones(32)) and set(np.unique(y)) == {0.0, 1.0}
    assert set(y.argmax(axis=0)) == set(range(10))  # every digit appears
