"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time

from symbackprop import Dense, Network


def median_time(function, repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``function``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tanh_network(depth: int) -> Network:
    """``depth`` tanh layers with symbolic widths n_1 … n_depth and batch m."""
    return Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, depth + 1)], batch="m")
