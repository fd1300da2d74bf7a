"""Property tests: every derived gradient of random networks equals central finite differences.

Networks of depth 1-5 and widths 1-6 (numbers or symbols) with every
activation (including custom formulas) and cost, both layouts, one sample or a
batch, with and without biases and weight decay.  The check evaluates each
gradient and compares it along a random direction with a Richardson-extrapolated
central difference of the evaluated cost (relative error < 1e-6, float64).
"""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbackprop import ACTIVATIONS, COSTS, Dense, Network, check_gradients, derive, evaluate, random_values

HIDDEN = [name for name, a in ACTIVATIONS.items() if not a.last_layer_only] + ["x**3/3 + x", "log(1 + exp(x))", "x*tanh(x)"]
OUTPUT_FOR_COST = {
    "squared_error": HIDDEN + ["softmax"],
    "half_squared_error": HIDDEN + ["softmax"],
    "mean_squared_error": HIDDEN + ["softmax"],
    "binary_cross_entropy": ["sigmoid"],
    "softmax_cross_entropy": ["softmax"],
}
assert set(OUTPUT_FOR_COST) == set(COSTS)


@st.composite
def networks(draw):
    depth = draw(st.integers(1, 5))
    cost = draw(st.sampled_from(sorted(COSTS)))
    layers = []
    for l in range(1, depth + 1):
        choices = OUTPUT_FOR_COST[cost] if l == depth else HIDDEN
        activation = draw(st.sampled_from(choices))
        smallest = 2 if activation == "softmax" else 1  # softmax of one unit is the constant 1
        width = draw(st.one_of(st.integers(smallest, 6), st.just(f"n_{l}")))
        layers.append(Dense(width, activation, draw(st.booleans())))
    return Network(
        inputs=draw(st.one_of(st.integers(1, 6), st.just("n_0"))),
        layers=layers,
        cost=cost,
        layout=draw(st.sampled_from(["columns", "rows"])),
        batch=draw(st.sampled_from([1, 3, "m"])),
        weight_decay=draw(st.sampled_from([0, 0.1, "lam"])),
    )


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(), seed=st.integers(0, 2**16))
def test_every_gradient_equals_finite_differences(net, seed):
    derivation = derive(net)
    sizes = {s.name: (seed % 5) + 1 for s in net.size_symbols}
    if net.activations[-1].name == "softmax" and not net.sizes[-1].is_Integer:
        sizes[net.sizes[-1].name] = max(2, sizes[net.sizes[-1].name])
    values = random_values(net, seed=seed, sizes=sizes)
    # a saturated output (σ(z) = 1 in float64) makes log(1 − a) infinite: no gradient to check
    output = evaluate(derivation.output, values)
    assume(np.all(np.isfinite(output)) and (net.cost.name == "squared_error" or net.cost.name.endswith("squared_error")
                                            or np.all((output > 1e-9) & (output < 1 - 1e-9))))
    result = check_gradients(derivation, values, seed=seed)
    assert result.ok, result.message
    for name, gradient in derivation.gradients.items():
        assert gradient.shape == derivation.symbols[name].shape
