"""Training a [model] written as equations: a registered cross-entropy cost makes it a classifier with an
accuracy, counted as for the same network written as a layer stack."""

from __future__ import annotations

import json

from symbackprop.cli import main

DATA = """
[train]
x = [[0, 0], [1, 0], [0, 1], [1, 1], [0.1, 0.9], [0.9, 0.1]]
y = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1], [0, 1, 0]]
init = { W1 = [[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]], b1 = [[0.0, 0.0, 0.0]] }
lr = 0.5
steps = 10
"""
MODEL = """
[model]
inputs = { X = ["m", 2], Y = ["m", 3] }
parameters = { W1 = [2, 3], b1 = [1, 3] }
forward = ["z1 = X @ W1 + b1", "a1 = softmax(z1)", "C = -sum(Y * log(a1))"]
layout = "rows"
"""
STACK = """
[network]
inputs = 2
cost = "softmax_cross_entropy"
layout = "rows"
batch = "m"

[[layers]]
units = 3
activation = "softmax"
"""


def train_json(capsys, tmp_path, name: str, text: str) -> dict:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert main(["train", str(path), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_softmax_model_shows_the_accuracy_the_same_stack_does(tmp_path, capsys):
    model = train_json(capsys, tmp_path, "model.toml", MODEL + DATA)
    stack = train_json(capsys, tmp_path, "stack.toml", STACK + DATA)
    accuracies = [step["accuracy"] for step in model["steps"]]
    assert accuracies == [step["accuracy"] for step in stack["steps"]]
    assert accuracies[0] < accuracies[-1] == 1.0
    assert model["final"]["accuracy"] == 1.0


def test_a_binary_cross_entropy_model_counts_outputs_on_the_targets_side_of_one_half(tmp_path, capsys):
    model = """
[model]
inputs = { X = [2, "m"], Y = [1, "m"] }
parameters = { W1 = [1, 2], b1 = [1, 1] }
forward = ["z1 = W1 @ X + b1", "a1 = sigmoid(z1)", "C = -sum(Y * log(a1) + (1 - Y) * log(1 - a1))"]

[train]
x = [[0, 1, 0, 1], [0, 0, 1, 1]]
y = [[0, 1, 1, 1]]
init = { W1 = [[0.0, 0.0]], b1 = 0.0 }
lr = 0.5
steps = 20
"""
    document = train_json(capsys, tmp_path, "or.toml", model)
    assert document["steps"][0]["accuracy"] == 0.25  # every output 0.5, not above it: only the target 0 is right
    assert document["final"]["accuracy"] == 1.0


def test_a_model_whose_cost_is_not_a_registered_cross_entropy_has_no_accuracy(tmp_path, capsys):
    text = (MODEL.replace("-sum(Y * log(a1))", "sum((a1 - Y)^2)") + DATA)
    assert "accuracy" not in train_json(capsys, tmp_path, "squared.toml", text)["final"]
