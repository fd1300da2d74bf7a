"""How fast the generated NumPy step is, against hand-written NumPy and (when installed) PyTorch and HIPS autograd.

The network of the issue: widths 784 → 256 → 256 → 10, sigmoid hidden layers,
softmax with cross-entropy, columns layout.  For float64 and float32 and
batches of 1, 64 and 1024 it times, interleaved round by round:

* ``hand``          — a plain hand-written NumPy backprop step returning new
                      arrays (``W - lr * gW``): the baseline of every ratio;
* ``step``          — the generated ``step`` (a new dict);
* ``step_inplace``  — the generated in-place step;
* ``hand fused``    — a hand-fused NumPy step that writes each update in place;
* ``torch eager``   — the same backprop written with PyTorch CPU tensors,
                      updating in place (``addmm_``), no autograd;
* ``torch autograd``— ``loss.backward()`` and an in-place SGD update;
* ``HIPS autograd`` — ``autograd.grad`` of the same cost, new arrays.

Single timings on shared machines drift by 20 %, so every round times the
baseline and each contender back to back, in a rotating order, and the ratio
reported is the median over rounds of (contender / baseline) in that round.
The GEMM line gives the machine's matrix-product throughput; each
contender's GFLOP/s (the step's matrix products only) shows how close to
that limit it runs.  The last line is the time to generate the code of a
64-layer network (derive + module source).

    python benchmarks/bench_step.py [--rounds N] [--batches 1 64 1024] [--dtypes float64 float32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import numpy as np

from symbackprop import Dense, Network, derive

WIDTHS = (784, 256, 256, 10)


def network(batch: int | str) -> Network:
    return Network(WIDTHS[0], [Dense(WIDTHS[1], "sigmoid"), Dense(WIDTHS[2], "sigmoid"), Dense(WIDTHS[3], "softmax")],
                   cost="softmax_cross_entropy", batch=batch)


# --- hand-written NumPy ------------------------------------------------------------------


def hand_step(p, X, Y, lr):
    """Textbook NumPy backprop: forward, δ's, gradients, then new arrays ``W - lr * gW``."""
    W1, b1, W2, b2, W3, b3 = p["W1"], p["b1"], p["W2"], p["b2"], p["W3"], p["b3"]
    a1 = 1 / (1 + np.exp(-(W1 @ X + b1)))
    a2 = 1 / (1 + np.exp(-(W2 @ a1 + b2)))
    z3 = W3 @ a2 + b3
    e = np.exp(z3 - z3.max(axis=0, keepdims=True))
    a3 = e / e.sum(axis=0, keepdims=True)
    d3 = a3 - Y
    d2 = (W3.T @ d3) * a2 * (1 - a2)
    d1 = (W2.T @ d2) * a1 * (1 - a1)
    g = {"W1": d1 @ X.T, "b1": d1.sum(axis=1, keepdims=True), "W2": d2 @ a1.T, "b2": d2.sum(axis=1, keepdims=True),
         "W3": d3 @ a2.T, "b3": d3.sum(axis=1, keepdims=True)}
    return {k: p[k] - lr * g[k] for k in p}


def hand_fused_step(p, X, Y, lr, work={}):
    """Hand-fused NumPy: the same backprop, each W updated in place through a cached work array."""
    W1, b1, W2, b2, W3, b3 = p["W1"], p["b1"], p["W2"], p["b2"], p["W3"], p["b3"]
    z1 = W1 @ X
    z1 += b1
    a1 = np.exp(np.negative(z1, out=z1), out=z1)
    a1 += 1
    np.reciprocal(a1, out=a1)
    z2 = W2 @ a1
    z2 += b2
    a2 = np.exp(np.negative(z2, out=z2), out=z2)
    a2 += 1
    np.reciprocal(a2, out=a2)
    z3 = W3 @ a2
    z3 += b3
    z3 -= z3.max(axis=0, keepdims=True)
    a3 = np.exp(z3, out=z3)
    a3 /= a3.sum(axis=0, keepdims=True)
    d3 = np.subtract(a3, Y, out=a3)
    d2 = W3.T @ d3
    d2 *= a2
    d2 *= 1 - a2
    d1 = W2.T @ d2
    d1 *= a1
    d1 *= 1 - a1
    for W, b, d, a in ((W3, b3, d3, a2), (W2, b2, d2, a1), (W1, b1, d1, X)):
        d *= lr
        b -= d.sum(axis=1, keepdims=True)
        key = (W.shape, W.dtype)
        buffer = work.get(key)
        if buffer is None:
            buffer = work[key] = np.empty_like(W)
        np.subtract(W, np.matmul(d, a.T, out=buffer), out=W)


# --- optional contenders ------------------------------------------------------------------


def torch_contenders(params, X, Y, lr) -> dict[str, Callable[[], object]]:
    try:
        import torch
    except ImportError:
        print("note: PyTorch is not installed; its rows are skipped (pip install torch)")
        return {}
    torch.set_num_threads(os.cpu_count() or 1)
    t = {k: torch.from_numpy(v.copy()) for k, v in params.items()}
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

    def eager():
        W1, b1, W2, b2, W3, b3 = t["W1"], t["b1"], t["W2"], t["b2"], t["W3"], t["b3"]
        a1 = torch.sigmoid(torch.addmm(b1, W1, tX))
        a2 = torch.sigmoid(torch.addmm(b2, W2, a1))
        a3 = torch.softmax(torch.addmm(b3, W3, a2), dim=0)
        d3 = a3 - tY
        d2 = (W3.T @ d3) * a2 * (1 - a2)
        d1 = (W2.T @ d2) * a1 * (1 - a1)
        for W, b, d, a in ((W3, b3, d3, a2), (W2, b2, d2, a1), (W1, b1, d1, tX)):
            W.addmm_(d, a.T, alpha=-lr)
            b.sub_(d.sum(dim=1, keepdim=True), alpha=lr)

    g = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in params.items()}

    def autograd():
        a1 = torch.sigmoid(g["W1"] @ tX + g["b1"])
        a2 = torch.sigmoid(g["W2"] @ a1 + g["b2"])
        loss = -(tY * torch.log_softmax(g["W3"] @ a2 + g["b3"], dim=0)).sum()
        loss.backward()
        with torch.no_grad():
            for v in g.values():
                v.sub_(v.grad, alpha=lr)
                v.grad = None

    return {"torch eager": eager, "torch autograd": autograd}


def hips_contender(params, X, Y, lr) -> dict[str, Callable[[], object]]:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        print("note: HIPS autograd is not installed; its row is skipped (pip install autograd)")
        return {}

    def cost(p):
        a1 = 1 / (1 + anp.exp(-(p["W1"] @ X + p["b1"])))
        a2 = 1 / (1 + anp.exp(-(p["W2"] @ a1 + p["b2"])))
        z3 = p["W3"] @ a2 + p["b3"]
        z3 = z3 - anp.max(z3, axis=0, keepdims=True)
        return -anp.sum(Y * (z3 - anp.log(anp.sum(anp.exp(z3), axis=0, keepdims=True))))

    gradient = autograd.grad(cost)
    state = {k: v.copy() for k, v in params.items()}

    def step():
        g = gradient(state)
        for k in state:
            state[k] = state[k] - lr * g[k]

    return {"HIPS autograd": step}


# --- timing ------------------------------------------------------------------------------------


def timed(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def settled(function: Callable[[], object], calls: int, pause: float = 0.1) -> float:
    """``timed`` after a pause: BLAS and OpenMP worker threads of the block before stop spinning first
    (measured here: PyTorch's step ran 2× slower right after a NumPy block without it)."""
    time.sleep(pause)
    return timed(function, calls)


def compare(baseline: Callable[[], object], contenders: dict[str, Callable[[], object]], rounds: int,
            budget: float = 0.02) -> tuple[float, dict[str, tuple[float, float]]]:
    """Median baseline time and, per contender, (median time, median of per-round ratios)."""
    calls = max(1, int(budget / max(timed(baseline, 1), 1e-6)))
    for function in contenders.values():  # warm-up: caches, work arrays, lazy imports
        timed(function, 2)
    names = list(contenders)
    base_times, times, ratios = [], {n: [] for n in names}, {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        base = settled(baseline, calls)
        base_times.append(base)
        for name in order:
            t = settled(contenders[name], calls)
            times[name].append(t)
            ratios[name].append(t / base)
    return statistics.median(base_times), {n: (statistics.median(times[n]), statistics.median(ratios[n])) for n in names}


def step_flops(batch: int) -> float:
    """Floating-point operations of one step's matrix products: L forward, 2L − 1 backward."""
    forward = sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(len(WIDTHS) - 1))
    backward = forward + sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(1, len(WIDTHS) - 1))
    return 2.0 * batch * (forward + backward)


def gemm_throughput(dtype, batch: int) -> float:
    """GFLOP/s of the step's largest product (256×784 by 784×batch), the machine's practical limit here."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((WIDTHS[1], WIDTHS[0])).astype(dtype)
    B = rng.standard_normal((WIDTHS[0], batch)).astype(dtype)
    calls = max(1, int(0.02 / max(timed(lambda: A @ B, 1), 1e-6)))
    best = min(timed(lambda: A @ B, calls) for _ in range(7))
    return 2.0 * A.shape[0] * A.shape[1] * batch / best / 1e9


def generation_time(depth: int = 64, repeat: int = 3) -> float:
    net = Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, depth)] + [Dense(10, "softmax")],
                  cost="softmax_cross_entropy", batch="m")
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        derive(net).numpy_source()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    args = parser.parse_args(argv)
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"widths {' → '.join(map(str, WIDTHS))}, sigmoid, softmax cross-entropy; {args.rounds} rounds")
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name)
        for batch in args.batches:
            f = derive(network(batch)).numpy()
            rng = np.random.default_rng(0)
            params = f.init_params(0, dtype=dtype)
            X = rng.standard_normal((WIDTHS[0], batch)).astype(dtype)
            Y = np.eye(WIDTHS[-1], dtype=dtype)[:, rng.integers(0, WIDTHS[-1], batch)]
            lr = 1e-3
            own = {k: v.copy() for k, v in params.items()}
            fused = {k: v.copy() for k, v in params.items()}
            contenders = {
                "step": lambda: f.step(params, X, Y, lr),
                "step_inplace": lambda: f.step_inplace(own, X, Y, lr),
                "hand fused": lambda: hand_fused_step(fused, X, Y, lr),
                **torch_contenders(params, X, Y, lr),
                **hips_contender(params, X, Y, lr),
            }
            base, results = compare(lambda: hand_step(params, X, Y, lr), contenders, args.rounds)
            peak = gemm_throughput(dtype, batch)
            flops = step_flops(batch)
            print(f"\n{dtype_name}, batch {batch}: GEMM {peak:.1f} GFLOP/s; "
                  f"hand-written step {base * 1e3:.3f} ms ({flops / base / 1e9:.1f} GFLOP/s)")
            for name, (t, ratio) in results.items():
                print(f"  {name:<15} {t * 1e3:9.3f} ms   {ratio:5.2f}× hand   {flops / t / 1e9:6.1f} GFLOP/s "
                      f"({flops / t / 1e9 / peak:4.0%} of GEMM)")
    print(f"\ncode generation, 64 layers (derive + NumPy module source): {generation_time():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
