"""Hypothesis strategies for random networks, shared by the property tests."""

from hypothesis import strategies as st

from symbackprop import ACTIVATIONS, COSTS, Dense, Network

#: hidden activations: every registered one that may stand before the last layer, and custom formulas
HIDDEN = [name for name, a in ACTIVATIONS.items() if not a.last_layer_only] + [
    "x**3/3 + x", "log(1 + exp(x))", "x*tanh(x)", "2*x"]

#: the output activations each cost is drawn with (BCE needs outputs in (0, 1))
OUTPUT_FOR_COST = {
    "squared_error": HIDDEN + ["softmax"],
    "half_squared_error": HIDDEN + ["softmax"],
    "mean_squared_error": HIDDEN + ["softmax"],
    "binary_cross_entropy": ["sigmoid"],
    "softmax_cross_entropy": ["softmax"],
}
assert set(OUTPUT_FOR_COST) == set(COSTS)


@st.composite
def networks(draw, max_depth: int = 5, max_width: int = 6):
    """Depth 1..max_depth, widths 1..max_width or symbols, every activation and cost,
    both layouts, one sample or a batch, with and without biases and weight decay."""
    depth = draw(st.integers(1, max_depth))
    cost = draw(st.sampled_from(sorted(COSTS)))
    layers = []
    for l in range(1, depth + 1):
        activation = draw(st.sampled_from(OUTPUT_FOR_COST[cost] if l == depth else HIDDEN))
        smallest = 2 if activation == "softmax" else 1  # softmax over one unit is refused
        width = draw(st.one_of(st.integers(smallest, max_width), st.just(f"n_{l}")))
        layers.append(Dense(width, activation, draw(st.booleans())))
    return Network(
        inputs=draw(st.one_of(st.integers(1, max_width), st.just("n_0"))),
        layers=layers,
        cost=cost,
        layout=draw(st.sampled_from(["columns", "rows"])),
        batch=draw(st.sampled_from([1, 3, "m"])),
        weight_decay=draw(st.sampled_from([0, 0.1, "lam"])),
    )


def concrete_sizes(net: Network, seed: int, largest: int = 5) -> dict[str, int]:
    """A value for each symbolic size, 1..largest, at least 2 for a softmax layer's width."""
    sizes = {s.name: seed % largest + 1 for s in net.size_symbols}
    if net.activations[-1].name == "softmax" and not net.sizes[-1].is_Integer:
        sizes[net.sizes[-1].name] = max(2, sizes[net.sizes[-1].name])
    return sizes
