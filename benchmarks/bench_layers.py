"""The generated step of a pre-norm transformer block against a hand-written NumPy forward-and-backward.

The block of the layer-library issue, rows layout, T = 128 tokens, width 64, d_k = 64:
layer norm → attention with a skip from the input → layer norm → dense ReLU →
dense with a skip → softmax with cross-entropy over 10 classes, mean reduction.
For float64 and float32 it times, interleaved round by round in a rotating order:

* ``hand``           — forward, backward and an in-place SGD update written by hand in
                       NumPy as an expert would (fused normalisation backward, the
                       rowsum(dO ⊙ O) attention form, ``W -= lr * (a.T @ d)``): the baseline;
* ``step_inplace``   — the generated in-place step;
* ``step``           — the generated step returning new arrays;
* ``torch eager``    — the same block in PyTorch (``nn.functional`` layer norm and
                       ``softmax``), ``loss.backward()`` and an in-place SGD update, when installed.

The ratio reported is the median over rounds of (contender / hand) in that round,
with the spread (the 10th to the 90th percentile); run it with
``OPENBLAS_NUM_THREADS=1`` for one-thread figures, which are steadier on shared machines.

    python benchmarks/bench_layers.py [--rounds N] [--dtypes float64 float32]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np

from symbackprop import Dense, Network, derive
from symbackprop.model.layers import Attention, LayerNorm

T, WIDTH, D_K, CLASSES = 128, 64, 64, 10
EPS = 1e-5


def network() -> Network:
    return Network(WIDTH, [LayerNorm(), Attention(D_K, skip_from=0), LayerNorm(), Dense(WIDTH, "relu"),
                           Dense(WIDTH, skip_from=2), Dense(CLASSES, "softmax")],
                   cost="softmax_cross_entropy", layout="rows", batch=T, reduction="mean")


# --- by hand -----------------------------------------------------------------------------


def _layer_norm(x, gamma, beta):
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=1, keepdims=True)
    var += EPS
    rstd = 1 / np.sqrt(var)
    xc *= rstd
    return xc * gamma + beta, xc, rstd


def _layer_norm_backward(g, xhat, rstd, gamma):
    gh = g * gamma
    n = xhat.shape[1]
    out = gh * n
    out -= gh.sum(axis=1, keepdims=True)
    out -= xhat * np.sum(gh * xhat, axis=1, keepdims=True)
    out *= rstd / n
    return out


def hand_step(p, X, Y, lr):
    """The block's forward pass, its backward pass and W -= lr · gradient, in place."""
    tau = 1 / math.sqrt(D_K)  # a Python float: a NumPy float64 would make float32 arrays float64
    a1, xh1, rstd1 = _layer_norm(X, p["gamma1"], p["beta1"])
    Q, K, V = a1 @ p["WQ2"], a1 @ p["WK2"], a1 @ p["WV2"]
    S = (tau * Q) @ K.T
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S, out=S)
    P /= P.sum(axis=1, keepdims=True)
    O = P @ V
    a2 = O @ p["WO2"]
    a2 += X
    a3, xh3, rstd3 = _layer_norm(a2, p["gamma3"], p["beta3"])
    z4 = a3 @ p["W4"]
    z4 += p["b4"]
    a4 = np.maximum(z4, 0)
    a5 = a4 @ p["W5"]
    a5 += p["b5"]
    a5 += a2
    z6 = a5 @ p["W6"]
    z6 += p["b6"]
    z6 -= z6.max(axis=1, keepdims=True)
    e = np.exp(z6, out=z6)
    e /= e.sum(axis=1, keepdims=True)
    d6 = e
    d6 -= Y
    d6 *= 1 / T
    ga5 = d6 @ p["W6"].T
    d4 = ga5 @ p["W5"].T
    d4 *= z4 > 0
    ga3 = d4 @ p["W4"].T
    ga2 = _layer_norm_backward(ga3, xh3, rstd3, p["gamma3"])
    ga2 += ga5
    gO = ga2 @ p["WO2"].T
    gV = P.T @ gO
    gS = gO @ V.T
    gS -= np.sum(gO * O, axis=1, keepdims=True)
    gS *= P
    gS *= tau
    gQ, gK = gS @ K, gS.T @ Q
    ga1 = gQ @ p["WQ2"].T
    ga1 += gK @ p["WK2"].T
    ga1 += gV @ p["WV2"].T
    updates = {
        "gamma1": np.sum(ga1 * xh1, axis=0, keepdims=True), "beta1": ga1.sum(axis=0, keepdims=True),
        "WQ2": a1.T @ gQ, "WK2": a1.T @ gK, "WV2": a1.T @ gV, "WO2": O.T @ ga2,
        "gamma3": np.sum(ga3 * xh3, axis=0, keepdims=True), "beta3": ga3.sum(axis=0, keepdims=True),
        "W4": a3.T @ d4, "b4": d4.sum(axis=0, keepdims=True), "W5": a4.T @ ga5, "b5": ga5.sum(axis=0, keepdims=True),
        "W6": a5.T @ d6, "b6": d6.sum(axis=0, keepdims=True),
    }
    for name, gradient in updates.items():
        gradient *= lr
        p[name] -= gradient


# --- PyTorch -----------------------------------------------------------------------------


def torch_step_factory(params, X, Y, dtype):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", torch.get_num_threads())))
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tX, tY = torch.tensor(X), torch.tensor(Y)
    F = torch.nn.functional

    def step(lr):
        x = tX
        a1 = F.layer_norm(x, (WIDTH,), tp["gamma1"][0], tp["beta1"][0], EPS)
        Q, K, V = a1 @ tp["WQ2"], a1 @ tp["WK2"], a1 @ tp["WV2"]
        P = torch.softmax((Q @ K.T) / np.sqrt(D_K), dim=1)
        a2 = P @ V @ tp["WO2"] + x
        a3 = F.layer_norm(a2, (WIDTH,), tp["gamma3"][0], tp["beta3"][0], EPS)
        a4 = torch.relu(a3 @ tp["W4"] + tp["b4"])
        a5 = a4 @ tp["W5"] + tp["b5"] + a2
        loss = F.cross_entropy(a5 @ tp["W6"] + tp["b6"], tY)
        loss.backward()
        with torch.no_grad():
            for value in tp.values():
                value.add_(value.grad, alpha=-lr)
                value.grad = None

    return step, tp


# --- the run -----------------------------------------------------------------------------


def _spread(ratios):
    qs = statistics.quantiles(ratios, n=10) if len(ratios) >= 10 else [min(ratios)] * 9 + [max(ratios)]
    return f"{statistics.median(ratios):.2f}× ({qs[0]:.2f}–{qs[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    args = parser.parse_args()
    d = derive(network())
    f = d.numpy()
    rng = np.random.default_rng(0)
    print(f"pre-norm transformer block, rows layout, T = {T}, width {WIDTH}, d_k = {D_K}, {CLASSES} classes; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; {args.rounds} rounds")
    for dtype in map(np.dtype, args.dtypes):
        base = f.init_params(1, dtype=dtype)
        X = rng.normal(size=(T, WIDTH)).astype(dtype)
        labels = rng.integers(0, CLASSES, T)
        Y = np.eye(CLASSES, dtype=dtype)[labels]
        lr = 1e-6
        # the hand step computes what the generated one does
        mine, theirs = {k: v.copy() for k, v in base.items()}, {k: v.copy() for k, v in base.items()}
        hand_step(mine, X, Y, 0.1)
        f.step_inplace(theirs, X, Y, 0.1)
        worst = max(float(np.max(np.abs(mine[k] - theirs[k]))) for k in mine)
        assert worst < (1e-4 if dtype == np.float32 else 1e-10), worst
        contenders = {
            "hand": lambda p=dict(base): hand_step(p, X, Y, lr),
            "step_inplace": lambda p={k: v.copy() for k, v in base.items()}: f.step_inplace(p, X, Y, lr),
            "step": lambda p=dict(base): f.step(p, X, Y, lr),
        }
        made = torch_step_factory({k: v.copy() for k, v in base.items()}, X, labels, dtype)
        if made is not None:
            contenders["torch eager + autograd"] = lambda s=made[0]: s(lr)
        names = list(contenders)
        times = {name: [] for name in names}
        for name in names:  # warm up: workspaces, caches
            for _ in range(3):
                contenders[name]()
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                start = time.perf_counter()
                for _ in range(5):
                    contenders[name]()
                times[name].append((time.perf_counter() - start) / 5)
        print(f"\n{dtype}: agreement with the hand step {worst:.1e}")
        for name in names:
            ratios = [t / h for t, h in zip(times[name], times["hand"])]
            print(f"  {name:24s} {statistics.median(times[name]) * 1e6:9.1f} µs   {_spread(ratios)} of hand")


if __name__ == "__main__":
    main()
