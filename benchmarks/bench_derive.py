"""How long deriving every gradient takes, and how it grows with depth.

Derives all gradients of tanh networks with symbolic widths (n_0 … n_L, batch
m) at depths 8, 16, 32 and 64, and, as the baseline measured in the same run,
SymPy's own ``diff`` of the same kind of cost on a linear network (SymPy's
matrix calculus cannot differentiate through activations).  Prints medians and
the ratios that matter: time(64)/time(32) (2.0 is linear growth) and
symbackprop against SymPy's diff at depth 16.

    python benchmarks/bench_derive.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from sympy import MatrixSymbol, Symbol, Trace

from _timing import median_time, tanh_network

from symbackprop import Dense, Network, derive


def linear_network(depth: int) -> Network:
    return Network("n_0", [Dense(f"n_{l}", bias=False) for l in range(1, depth + 1)], batch="m")


def sympy_diff_all(depth: int) -> None:
    """SymPy's own matrix diff of ‖W_L … W_1 X − Y‖²_F for every W_l."""
    size = [Symbol(f"n_{l}", integer=True, positive=True) for l in range(depth + 1)]
    m = Symbol("m", integer=True, positive=True)
    X, Y = MatrixSymbol("X", size[0], m), MatrixSymbol("Y", size[-1], m)
    weights = [MatrixSymbol(f"W{l}", size[l], size[l - 1]) for l in range(1, depth + 1)]
    out = X
    for W in weights:
        out = W * out
    cost = Trace((out - Y).T * (out - Y))
    for W in weights:
        cost.diff(W)


COLD = """
import time
start = time.perf_counter()
from symbackprop import Dense, Network, derive
imported = time.perf_counter()
derive(Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, 65)], batch="m"))
print(imported - start, time.perf_counter() - imported)
"""


def cold_start() -> tuple[float, float]:
    """Import time and first 64-layer derive in a fresh interpreter (empty SymPy caches)."""
    out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True).stdout
    imported, derived = map(float, out.split())
    return imported, derived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    networks = {depth: tanh_network(depth) for depth in (8, 16, 32, 64)}
    derive(networks[8])  # warm SymPy's caches once, as a long-running session would be
    times = {depth: median_time(lambda net=net: derive(net), args.repeat) for depth, net in networks.items()}
    # growth measured pairwise: each round times depth 32 and depth 64 back to back, and the
    # median of the per-round ratios is robust to the drift of a shared machine
    paired = statistics.median(
        median_time(lambda: derive(networks[64]), 1) / median_time(lambda: derive(networks[32]), 1)
        for _ in range(3 * args.repeat))
    linear16 = linear_network(16)
    ours16 = median_time(lambda: derive(linear16), args.repeat)
    sympy16 = median_time(lambda: sympy_diff_all(16), max(1, args.repeat // 2))

    print(f"derive, tanh network, symbolic widths (median of {args.repeat}):")
    for depth, seconds in times.items():
        print(f"  depth {depth:3d}: {seconds * 1e3:8.1f} ms   ({seconds / depth * 1e3:.2f} ms per layer)")
    print(f"  growth 16/8 = {times[16] / times[8]:.2f}, 32/16 = {times[32] / times[16]:.2f}, "
          f"64/32 = {times[64] / times[32]:.2f}   (2.00 is linear)")
    print(f"  growth 64/32, median of {3 * args.repeat} interleaved pairs: {paired:.2f}")
    imported, first = cold_start()
    print(f"  fresh interpreter: import {imported * 1e3:.0f} ms, first depth-64 derive {first * 1e3:.0f} ms")
    print("linear network, depth 16, every gradient:")
    print(f"  symbackprop derive: {ours16 * 1e3:8.1f} ms")
    print(f"  SymPy's diff:       {sympy16 * 1e3:8.1f} ms   (symbackprop is {sympy16 / ours16:.1f}x faster)")


if __name__ == "__main__":
    main()
