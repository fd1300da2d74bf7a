"""The derivation: textbook forms, the seed's formulas, SymPy cross-checks, linear growth."""

import numpy as np
import pytest
import sympy
from sympy import Trace

from symbackprop import Dense, Network, check_gradients, derive, evaluate, random_values
from symbackprop.derive import expand_names
from symbackprop.printing import to_text


def _text(d, name):
    return to_text(d.gradients[name])


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_sigmoid_with_binary_cross_entropy_gives_delta_a_minus_y(layout):
    d = derive(Network("n_0", [Dense("n_1", "tanh"), Dense("n_2", "sigmoid")],
                       cost="binary_cross_entropy", layout=layout, batch="m"))
    assert to_text(d.deltas["delta2"].definition) == "a⁽²⁾ − Y"
    assert d.assumptions == ()


@pytest.mark.parametrize("layout, sample", [("columns", "column"), ("rows", "row")])
def test_softmax_with_cross_entropy_gives_delta_a_minus_y_and_states_the_assumption(layout, sample):
    d = derive(Network(4, [Dense(5, "relu"), Dense(3, "softmax")], cost="softmax_cross_entropy",
                       layout=layout, batch="m"))
    assert to_text(d.deltas["delta2"].definition) == "a⁽²⁾ − Y"
    (assumption,) = d.assumptions
    assert f"every target {sample} is a probability distribution" in assumption
    step = next(s for s in d.steps if s.lhs == d.deltas["delta2"])
    assert step.note == assumption and step.rule == "softmax"
    assert check_gradients(d).ok


def test_squared_error_gives_the_textbook_output_delta():
    d = derive(Network(3, [Dense(2, "sigmoid")], batch="m"))
    assert to_text(d.steps[0].rhs) == "2 (a⁽¹⁾ − Y)"
    assert to_text(d.deltas["delta1"].definition) == "2 (a⁽¹⁾ − Y) ⊙ σ'(z⁽¹⁾)"


@pytest.mark.parametrize(
    "layout, hidden_delta, weight, bias",
    [
        ("columns", "(W⁽³⁾ᵀ δ⁽³⁾) ⊙ tanh'(z⁽²⁾)", "δ⁽²⁾ a⁽¹⁾ᵀ", "δ⁽²⁾ 1"),
        ("rows", "(δ⁽³⁾ W⁽³⁾ᵀ) ⊙ tanh'(z⁽²⁾)", "a⁽¹⁾ᵀ δ⁽²⁾", "1ᵀ δ⁽²⁾"),
    ],
)
def test_hidden_layers_follow_the_four_backprop_equations(layout, hidden_delta, weight, bias):
    d = derive(Network("n_0", [Dense("n_1", "relu"), Dense("n_2", "tanh"), Dense("n_3", "sigmoid")],
                       layout=layout, batch="m"))
    assert to_text(d.deltas["delta2"].definition) == hidden_delta
    assert _text(d, "W2") == weight
    assert _text(d, "b2") == bias
    assert _text(d, "W1") == ("δ⁽¹⁾ Xᵀ" if layout == "columns" else "Xᵀ δ⁽¹⁾")


def test_gradients_are_ordered_and_shaped_like_their_parameters():
    net = Network("n_0", [Dense("n_1", "tanh"), Dense(3, bias=False), Dense("n_3", "sigmoid")], batch="m")
    d = derive(net)
    assert list(d.gradients) == ["W1", "b1", "W2", "W3", "b3"]
    for name, gradient in d.gradients.items():
        assert gradient.shape == d.symbols[name].shape == net.parameter_shapes()[name]
    n_1 = sympy.Symbol("n_1", integer=True, positive=True)
    assert d.symbols["W2"].shape == (3, n_1)


def test_weight_decay_adds_two_lambda_w():
    d = derive(Network(3, [Dense(2, "tanh")], weight_decay="lam", batch="m"))
    assert _text(d, "W1") == "2·lam W⁽¹⁾ + δ⁽¹⁾ Xᵀ"
    assert check_gradients(d).ok


# --- the seed question -------------------------------------------------------------

def test_seed_gradient_is_two_a_times_aw_minus_y():
    d = derive(Network(1, [Dense(1, bias=False)]))
    a, w, y = sympy.symbols("a w y")
    gradient = expand_names(d.gradients["W1"])
    values = {"X": [[5.7]], "Y": [[50.1]], "W1": [[-23.1]]}
    assert evaluate(gradient, values)[0, 0] == pytest.approx(2 * 5.7 * (5.7 * -23.1 - 50.1))
    assert to_text(d.deltas["delta1"].definition) == "2 (a⁽¹⁾ − Y)"
    assert _text(d, "W1") == "δ⁽¹⁾ Xᵀ"


def test_seed_twenty_iterations_reach_8_7893():
    d = derive(Network(1, [Dense(1, bias=False)]))
    values = {"X": [[5.7]], "Y": [[50.1]], "W1": np.array([[-23.1]])}
    trace = []
    for _ in range(20):
        values["W1"] = values["W1"] - 0.007 * evaluate(d.gradients["W1"], values)
        trace.append(values["W1"][0, 0])
    assert trace[0] == pytest.approx(-8.5948, abs=5e-5)
    assert trace[1] == pytest.approx(-0.68736, abs=5e-6)
    assert trace[-1] == pytest.approx(8.7893, abs=5e-5)


def test_seed_two_layer_extension_matches_the_readers_final_update():
    # a2 = a1 W2, a1 = a0 W1: dC/dW1 = 2 a0 W2 (a1 W2 − y)
    d = derive(Network(1, [Dense(1, bias=False), Dense(1, bias=False)]))
    rng = np.random.default_rng(7)
    for _ in range(5):
        a0, w1, w2, y = rng.normal(size=4)
        values = {"X": [[a0]], "Y": [[y]], "W1": [[w1]], "W2": [[w2]]}
        a1 = a0 * w1
        assert evaluate(d.gradients["W1"], values)[0, 0] == pytest.approx(2 * a0 * w2 * (a1 * w2 - y))
        assert evaluate(d.gradients["W2"], values)[0, 0] == pytest.approx(2 * a1 * (a1 * w2 - y))


# --- SymPy's own diff on linear networks ----------------------------------------------

@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_linear_network_gradients_equal_sympys_diff(depth, layout):
    net = Network(3, [Dense(2 + l % 2, bias=False) for l in range(depth)], layout=layout, batch=4)
    d = derive(net)
    X, Y = d.symbols["X"], d.symbols["Y"]
    out = X
    for l in range(1, depth + 1):
        W = d.symbols[f"W{l}"]
        out = W * out if layout == "columns" else out * W
    cost = Trace((out - Y).T * (out - Y))
    values = random_values(net, seed=depth)
    for l in range(1, depth + 1):
        W = d.symbols[f"W{l}"]
        np.testing.assert_allclose(evaluate(d.gradients[W.name], values), evaluate(cost.diff(W), values), rtol=1e-10)


def test_cost_expression_expands_every_name():
    d = derive(Network(2, [Dense(3, "tanh"), Dense(1)], batch="m"))
    full = d.cost_expression()
    assert not any(type(node).__name__ == "Named" for node in sympy.preorder_traversal(full))
    values = random_values(d.network, seed=3)
    assert evaluate(full, values) == pytest.approx(evaluate(d.cost, values))


# --- growth with depth ------------------------------------------------------------------

def _derivation_size(depth):
    from symbackprop.textbook import size_of as _size_of

    d = derive(Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, depth + 1)], batch="m"))
    return sum(_size_of(s.rhs) + _size_of(s.general) for s in d.steps) + sum(
        _size_of(delta.definition) for delta in d.deltas.values())


def test_derivation_size_grows_linearly_with_depth():
    small, large = _derivation_size(8), _derivation_size(16)
    assert 1.8 < large / small < 2.2


def test_derivation_is_deterministic():
    net = Network("n_0", [Dense("n_1", "sigmoid"), Dense(2, "softmax")], cost="softmax_cross_entropy", batch="m")
    assert derive(net).text() == derive(net).text()


def test_distinct_custom_activations_get_distinct_names_and_correct_gradients():
    net = Network(2, [Dense(3, "x**3/3 + x"), Dense(3, "x*tanh(x)"), Dense(2, "x**3/3 + x")], batch="m")
    names = [a.name for a in net.activations]
    assert names == ["phi1", "phi2", "phi1"]
    d = derive(net)
    assert to_text(d.deltas["delta1"].definition) == "(W⁽²⁾ᵀ δ⁽²⁾) ⊙ phi1'(z⁽¹⁾)"
    assert check_gradients(d).ok
