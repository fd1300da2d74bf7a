"""Every bundled example derives, and its gradients agree with finite differences."""

from pathlib import Path

import pytest

from symbackprop import check_gradients, derive, load_spec, random_values

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))


def test_the_examples_are_there():
    names = {path.stem for path in EXAMPLES}
    assert {"seed", "seed_two_layer", "nielsen", "softmax_classifier", "autoencoder"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_derives_and_its_gradients_are_right(path):
    net = load_spec(path)
    d = derive(net)
    values = random_values(net, sizes={"m": 2, "n_0": 3, "n_1": 4, "n_2": 3, "k": 3}, seed=1)
    assert check_gradients(d, values).ok
