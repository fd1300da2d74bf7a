"""Depth without limits: time and retained memory of derive, LaTeX, NumPy source and check at 256 and 512 layers.

For a tanh network of width 3 with a batch m, and a residual one (a skip every
two layers), it measures each stage at 256 and 512 layers and prints the
ratio 512/256 (2.0 is linear growth), as the median of interleaved rounds:
each round times 256 then 512 back to back, so the drift of a shared machine
cancels in the per-round ratio, and each run starts with SymPy's caches
emptied, so that one depth does not find the other's work cached.  Retained memory is what tracemalloc still
counts once the stage's result is built (the derivation, the text), also as a
512/256 ratio.  It also times deriving 64 layers, dense and residual.

    python benchmarks/bench_depth.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc

from sympy.core.cache import clear_cache

from symbackprop import Dense, Network, check, derive


def network(depth: int, residual: bool) -> Network:
    layers = [Dense(3, "tanh", skip_from=l - 2 if residual and l >= 3 and l % 2 else None)
              for l in range(1, depth + 1)]
    return Network(3, layers, batch="m")


STAGES = {
    "derive": lambda net, d: derive(net),
    "latex": lambda net, d: d.latex(),
    "numpy source": lambda net, d: d.numpy_source(),
    "check": lambda net, d: check(d, "W1", "delta1 @ X.T"),
}


def timed(stage, net, d) -> float:
    """One run of a stage, from the same state each time: SymPy's caches emptied, garbage collected."""
    clear_cache()
    gc.collect()
    start = time.perf_counter()
    STAGES[stage](net, d)
    return time.perf_counter() - start


def retained(stage, depth: int, residual: bool) -> int:
    """Bytes still allocated once the stage's result exists (the network built outside the count)."""
    net = network(depth, residual)
    d = derive(net) if stage != "derive" else None
    gc.collect()
    tracemalloc.start()
    result = STAGES[stage](net, d)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del result
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for residual in (False, True):
        kind = "residual (a skip every two layers)" if residual else "dense"
        start = time.perf_counter()
        derive(network(64, residual))
        print(f"{kind}: derive 64 layers in {(time.perf_counter() - start) * 1e3:.0f} ms (a fresh network)")
        nets = {depth: network(depth, residual) for depth in (256, 512)}
        derivations = {depth: derive(net) for depth, net in nets.items()}
        print(f"  {'stage':13s} {'t(256)':>8s} {'t(512)':>8s} {'time 512/256':>17s} {'memory 512/256':>15s}")
        for stage in STAGES:
            ratios, small, large = [], [], []
            for _ in range(args.rounds):
                a = timed(stage, nets[256], derivations[256])
                b = timed(stage, nets[512], derivations[512])
                small.append(a)
                large.append(b)
                ratios.append(b / a)
            memory = retained(stage, 512, residual) / retained(stage, 256, residual)
            spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
            print(f"  {stage:13s} {statistics.median(small):7.2f}s {statistics.median(large):7.2f}s "
                  f"{statistics.median(ratios):6.2f} ({spread}) {memory:15.2f}")


if __name__ == "__main__":
    main()
