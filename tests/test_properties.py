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

from network_strategies import concrete_sizes, networks

from symbackprop import check_gradients, derive, evaluate, random_values


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=networks(), seed=st.integers(0, 2**16))
def test_every_gradient_equals_finite_differences(net, seed):
    derivation = derive(net)
    values = random_values(net, seed=seed, sizes=concrete_sizes(net, seed))
    # a saturated output (σ(z) = 1 in float64) makes log(1 − a) infinite: no gradient to check
    output = evaluate(derivation.output, values)
    assume(np.all(np.isfinite(output)) and (net.cost.name == "squared_error" or net.cost.name.endswith("squared_error")
                                            or np.all((output > 1e-9) & (output < 1 - 1e-9))))
    result = check_gradients(derivation, values, seed=seed)
    assert result.ok, result.message
    for name, gradient in derivation.gradients.items():
        assert gradient.shape == derivation.symbols[name].shape
