"""How fast the generated NumPy step is, against hand-written NumPy, PyTorch and JAX, in the same rounds.

Two networks.  The classifier of issue 12: widths 784 → 256 → 256 → 10,
sigmoid hidden layers, softmax with cross-entropy, columns layout, float64
and float32, batches 1, 64 and 1024.  And a deep narrow one: 16 tanh layers of
64 units, half squared error, batch 32.  Each contender is written as an expert
would write it:

* ``hand``          — a plain hand-written NumPy backprop step returning new
                      arrays (``W - lr * gW``): the baseline of every ratio;
* ``step``          — the generated ``step`` (a new dict);
* ``step_inplace``  — the generated in-place step (workspace, BLAS-fused updates);
* ``hand fused``    — a hand-fused NumPy step: ``out=`` everywhere it can, each
                      update through one cached work array, written in place;
* ``torch eager``   — the same backprop with PyTorch CPU tensors, no autograd,
                      each update one in-place ``addmm_``;
* ``torch autograd``— ``loss.backward()`` and an in-place SGD update;
* ``jax jit``       — ``jax.grad`` of the cost and the update in one ``jax.jit``
                      with the parameters donated (``donate_argnums=0``).

Single timings on shared machines drift by 20 %, so every round times the
baseline and each contender back to back, in a rotating order, and the ratio
reported is the median over rounds of (contender / baseline) in that round,
with the spread (lowest–highest ratio of the middle half of the rounds).  The
GEMM line gives the machine's measured matrix-product throughput; each
contender's GFLOP/s (the step's matrix products only) shows how close to that
limit it runs ("of GEMM": the GEMM lower bound's time over the contender's).
The memory table gives each step's traced peak per call (after warm-up) and
what it keeps between calls (the generated workspace, the hand step's work
array).  Run it again with ``OPENBLAS_NUM_THREADS=1`` for one-thread figures:
PyTorch and JAX then get one thread too.

The training-loop lines run ``step_inplace`` and then the generated ``cost``
(NumPy's matmul) step after step, as ``symbackprop train`` does, with the
step's BLAS NumPy's own and, for comparison, SciPy's copy of OpenBLAS (its
second choice), each in a fresh process per round.

With ``--isolated`` each contender is timed alone in a fresh process, the
processes rotating round by round: in one process the thread pools of
NumPy's OpenBLAS, PyTorch and XLA spin against each other between blocks,
which leaves two-thread figures on two cores meaningless.

    python benchmarks/bench_step.py [--rounds N] [--batches 1 64 1024] [--dtypes float64 float32] [--no-deep]
                                    [--no-loop] [--loop-rounds N] [--loop-only] [--isolated]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import warnings
from typing import Callable

THREADS = int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or (os.cpu_count() or 1)
if THREADS == 1:  # before JAX is imported: XLA's CPU client reads it once
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

from symbackprop import Dense, Network, derive  # noqa: E402

WIDTHS = (784, 256, 256, 10)
DEEP, DEEP_WIDTH, DEEP_BATCH = 16, 64, 32


def network(batch: int | str) -> Network:
    return Network(WIDTHS[0], [Dense(WIDTHS[1], "sigmoid"), Dense(WIDTHS[2], "sigmoid"), Dense(WIDTHS[3], "softmax")],
                   cost="softmax_cross_entropy", batch=batch)


def deep_network() -> Network:
    return Network(DEEP_WIDTH, [Dense(DEEP_WIDTH, "tanh") for _ in range(DEEP)], cost="half_squared_error",
                   batch=DEEP_BATCH)


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
    """Hand-fused NumPy: the same backprop with ``out=`` where it can, each W updated in place
    through a cached work array (NumPy has no fused W ← W − η δ aᵀ)."""
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
    one = X.shape[1] == 1
    for W, b, d, a in ((W3, b3, d3, a2), (W2, b2, d2, a1), (W1, b1, d1, X)):
        d *= lr
        b -= d if one else d.sum(axis=1, keepdims=True)
        key = (W.shape, W.dtype)
        buffer = work.get(key)
        if buffer is None:
            buffer = work[key] = np.empty_like(W)
        if one:  # an outer product by broadcasting, not a rank-1 GEMM
            np.multiply(d, a.T, out=buffer)
        else:
            np.matmul(d, a.T, out=buffer)
        np.subtract(W, buffer, out=W)


def deep_hand_step(p, X, Y, lr):
    """Plain NumPy backprop of the deep tanh network, new arrays."""
    a = [X]
    for l in range(1, DEEP + 1):
        a.append(np.tanh(p[f"W{l}"] @ a[-1] + p[f"b{l}"]))
    d = (a[-1] - Y) * (1 - a[-1] ** 2)
    new = {}
    for l in range(DEEP, 0, -1):
        W = p[f"W{l}"]
        new[f"W{l}"] = W - lr * (d @ a[l - 1].T)
        new[f"b{l}"] = p[f"b{l}"] - lr * d.sum(axis=1, keepdims=True)
        if l > 1:
            d = (W.T @ d) * (1 - a[l - 1] ** 2)
    return new


def deep_hand_fused_step(p, X, Y, lr, work={}):
    """The deep network's step, hand-fused: ``out=`` into cached arrays, updates in place."""
    key = (X.shape, X.dtype)
    if key not in work:
        work[key] = ([np.empty_like(X) for _ in range(DEEP)], np.empty_like(X), np.empty_like(X),
                     np.empty((DEEP_WIDTH, DEEP_WIDTH), X.dtype))
    acts, d, t, g = work[key]
    a = [X, *acts]
    for l in range(1, DEEP + 1):
        np.matmul(p[f"W{l}"], a[l - 1], out=a[l])
        a[l] += p[f"b{l}"]
        np.tanh(a[l], out=a[l])
    np.subtract(a[-1], Y, out=d)
    np.multiply(a[-1], a[-1], out=t)
    np.subtract(1, t, out=t)
    d *= t
    for l in range(DEEP, 0, -1):
        W = p[f"W{l}"]
        if l > 1:
            np.matmul(W.T, d, out=t)
        np.matmul(d, a[l - 1].T, out=g)
        g *= lr
        W -= g
        p[f"b{l}"] -= lr * d.sum(axis=1, keepdims=True)
        if l > 1:
            np.multiply(a[l - 1], a[l - 1], out=d)
            np.subtract(1, d, out=d)
            d *= t


# --- PyTorch and JAX ------------------------------------------------------------------


def torch_contenders(params, X, Y, lr, deep=False) -> dict[str, Callable[[], object]]:
    try:
        import torch
    except ImportError:
        print("note: PyTorch is not installed; its rows are skipped (pip install torch)")
        return {}
    torch.set_num_threads(THREADS)
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

    def deep_eager():
        a = [tX]
        for l in range(1, DEEP + 1):
            a.append(torch.tanh(torch.addmm(t[f"b{l}"], t[f"W{l}"], a[-1])))
        d = (a[-1] - tY) * (1 - a[-1] * a[-1])
        for l in range(DEEP, 0, -1):
            W = t[f"W{l}"]
            below = (W.T @ d) * (1 - a[l - 1] * a[l - 1]) if l > 1 else None
            W.addmm_(d, a[l - 1].T, alpha=-lr)
            t[f"b{l}"].sub_(d.sum(dim=1, keepdim=True), alpha=lr)
            d = below

    if deep:
        return {"torch eager": deep_eager}
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


def jax_contender(params, X, Y, lr, deep=False) -> dict[str, Callable[[], object]]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("note: JAX is not installed; its row is skipped (pip install jax)")
        return {}
    jax.config.update("jax_enable_x64", True)

    def classifier_cost(p, X, Y):
        a1 = jax.nn.sigmoid(p["W1"] @ X + p["b1"])
        a2 = jax.nn.sigmoid(p["W2"] @ a1 + p["b2"])
        return -jnp.sum(Y * jax.nn.log_softmax(p["W3"] @ a2 + p["b3"], axis=0))

    def deep_cost(p, X, Y):
        a = X
        for l in range(1, DEEP + 1):
            a = jnp.tanh(p[f"W{l}"] @ a + p[f"b{l}"])
        return 0.5 * jnp.sum((a - Y) ** 2)

    gradient = jax.grad(deep_cost if deep else classifier_cost)

    def update(p, X, Y):
        g = gradient(p, X, Y)
        return jax.tree_util.tree_map(lambda v, d: v - lr * d, p, g)

    step = jax.jit(update, donate_argnums=0)
    jX, jY = jnp.asarray(X), jnp.asarray(Y)
    state = {"p": {k: jnp.asarray(v.copy()) for k, v in params.items()}}

    def run():
        state["p"] = step(state["p"], jX, jY)
        jax.block_until_ready(state["p"])

    return {"jax jit": run}


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
            budget: float = 0.02):
    """Median baseline time and, per contender, (median time, median of per-round ratios, (q1, q3) of ratios)."""
    calls = max(1, int(budget / max(timed(baseline, 1), 1e-6)))
    for function in contenders.values():  # warm-up: caches, workspaces, compilation, lazy imports
        timed(function, 3)
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
    results = {}
    for n in names:
        results[n] = (statistics.median(times[n]), statistics.median(ratios[n]), spread(ratios[n]))
    # step_inplace against each other contender, round by round
    versus = {n: (statistics.median(r := [a / b for a, b in zip(times["step_inplace"], times[n])]), spread(r))
              for n in names if n != "step_inplace" and "step_inplace" in times}
    return statistics.median(base_times), results, versus


def spread(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (the middle half of the rounds)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def classifier_flops(batch: int) -> float:
    """Floating-point operations of one step's matrix products: L forward, 2L − 1 backward."""
    forward = sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(len(WIDTHS) - 1))
    backward = forward + sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(1, len(WIDTHS) - 1))
    return 2.0 * batch * (forward + backward)


def gemm_throughput(dtype, rows: int, inner: int, batch: int) -> float:
    """GFLOP/s of a rows×inner by inner×batch product, best of 7: the machine's practical limit here."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((rows, inner)).astype(dtype)
    B = rng.standard_normal((inner, batch)).astype(dtype)
    calls = max(1, int(0.02 / max(timed(lambda: A @ B, 1), 1e-6)))
    best = min(timed(lambda: A @ B, calls) for _ in range(7))
    return 2.0 * rows * inner * batch / best / 1e9


def peak_memory(function: Callable[[], object]) -> int:
    """Bytes traced at the peak of one call, after a warm-up call."""
    function()
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def retained(arrays) -> int:
    seen, total = set(), 0
    for array in arrays:
        if isinstance(array, np.ndarray):
            base = array if array.base is None else array.base
            if id(base) not in seen and isinstance(base, np.ndarray):
                seen.add(id(base))
                total += base.nbytes
    return total


def report(title: str, base: float, results, versus, flops: float, peak: float) -> None:
    print(f"\n{title}: GEMM {peak:.1f} GFLOP/s; hand-written step {base * 1e3:.3f} ms ({flops / base / 1e9:.1f} GFLOP/s)")
    for name, (t, ratio, (low, high)) in results.items():
        print(f"  {name:<15} {t * 1e3:9.3f} ms   {ratio:5.2f}× hand ({low:.2f}–{high:.2f})   "
              f"{flops / t / 1e9:6.1f} GFLOP/s ({flops / t / 1e9 / peak:4.0%} of GEMM)")
    print("  step_inplace ÷ " + "; ".join(f"{name} {ratio:.2f} ({low:.2f}–{high:.2f})"
                                          for name, (ratio, (low, high)) in versus.items()))


def data(f, batch, dtype, rows, outputs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, batch)).astype(dtype)
    Y = np.eye(outputs, dtype=dtype)[:, rng.integers(0, outputs, batch)]
    return X, Y


def setup(deep: bool, dtype, batch: int, engines=("torch", "jax")):
    """The baseline and the contenders for the classifier (or the deep network), and what they work on."""
    f = derive(deep_network() if deep else network(batch)).numpy()
    params = f.init_params(0, dtype=dtype)
    X, Y = data(f, batch, dtype, *((DEEP_WIDTH, DEEP_WIDTH) if deep else (WIDTHS[0], WIDTHS[-1])))
    lr = 1e-3
    own = {k: v.copy() for k, v in params.items()}
    fused = {k: v.copy() for k, v in params.items()}
    hand, hand_fused = (deep_hand_step, deep_hand_fused_step) if deep else (hand_step, hand_fused_step)
    contenders = {
        "step": lambda: f.step(params, X, Y, lr),
        "step_inplace": lambda: f.step_inplace(own, X, Y, lr),
        "hand fused": lambda: hand_fused(fused, X, Y, lr),
        **(torch_contenders(params, X, Y, lr, deep=deep) if "torch" in engines else {}),
        **(jax_contender(params, X, Y, lr, deep=deep) if "jax" in engines else {}),
    }
    return (lambda: hand(params, X, Y, lr)), contenders, (f, params, own, fused, X, Y, lr)


def classifier(dtype, batch: int, rounds: int) -> None:
    baseline, contenders, (f, params, own, fused, X, Y, lr) = setup(False, dtype, batch)
    base, results, versus = compare(baseline, contenders, rounds)
    report(f"{np.dtype(dtype).name}, batch {batch}", base, results, versus, classifier_flops(batch),
           gemm_throughput(dtype, WIDTHS[1], WIDTHS[0], batch))
    workspace = retained(a for w in f.namespace["_WORKSPACES"].values() for a in w)
    work = retained(v for (shape, kind), v in hand_fused_step.__defaults__[0].items() if kind == np.dtype(dtype))
    rows = [("hand", peak_memory(lambda: hand_step(params, X, Y, lr)), 0),
            ("hand fused", peak_memory(lambda: hand_fused_step(fused, X, Y, lr)), work),
            ("step", peak_memory(lambda: f.step(params, X, Y, lr)), 0),
            ("step_inplace", peak_memory(lambda: f.step_inplace(own, X, Y, lr)), workspace)]
    print("  memory: " + "; ".join(f"{name} {peak / 1024:.1f} KiB per call + {kept / 1024:.0f} KiB kept"
                                   for name, peak, kept in rows))


def deep(rounds: int, dtype=np.float64) -> None:
    baseline, contenders, _ = setup(True, dtype, DEEP_BATCH)
    base, results, versus = compare(baseline, contenders, rounds)
    flops = 2.0 * DEEP_BATCH * DEEP_WIDTH * DEEP_WIDTH * (3 * DEEP - 1)
    report(f"{DEEP} tanh layers of {DEEP_WIDTH}, {np.dtype(dtype).name}, batch {DEEP_BATCH}", base, results, versus, flops,
           gemm_throughput(dtype, DEEP_WIDTH, DEEP_WIDTH, DEEP_BATCH))


# --- each contender alone in its process ------------------------------------------------------


def isolated_child(network_name: str, dtype_name: str, batch: int, name: str) -> None:
    """Print the median seconds per call of one contender, the only library at work in this process."""
    dtype = np.dtype(dtype_name)
    engines = tuple(engine for engine in ("torch", "jax") if name.startswith(engine))
    baseline, contenders, _ = setup(network_name == "deep", dtype, batch, engines)
    function = baseline if name == "hand" else contenders[name]
    calls = max(1, int(0.05 / max(timed(function, 3), 1e-6)))
    samples = [timed(function, calls) for _ in range(9)]
    print(statistics.median(samples))


def isolated(rounds: int, batches, dtypes, deep_too: bool) -> None:
    """Each contender timed in a fresh process of its own, round after round in a rotating order: with
    several BLAS and OpenMP thread pools in one process (NumPy's OpenBLAS, PyTorch's, XLA's) the pool of
    the block before spins against the next one's, which two-thread figures on two cores cannot survive."""
    import subprocess

    names = ["step", "step_inplace", "hand fused", "torch eager", "torch autograd", "jax jit"]
    configs = [("classifier", d, b) for d in dtypes for b in batches]
    if deep_too:
        configs += [("deep", d, DEEP_BATCH) for d in dtypes]
    print(f"\neach contender in a fresh process of its own, {rounds} rounds (the median of 9 timings each):")
    for network_name, dtype_name, batch in configs:
        wanted = [n for n in names if not (network_name == "deep" and n == "torch autograd")]
        times: dict[str, list[float]] = {n: [] for n in ["hand", *wanted]}
        for r in range(rounds):
            order = ["hand", *wanted]
            order = order[r % len(order):] + order[: r % len(order)]
            for name in order:
                run = subprocess.run([sys.executable, __file__, "--isolated-child", network_name, dtype_name,
                                      str(batch), name], capture_output=True, text=True)
                if run.returncode != 0:  # an engine that is not installed
                    times.pop(name, None)
                    continue
                if name in times:
                    times[name].append(float(run.stdout.split()[-1]))
        title = (f"{DEEP} tanh layers of {DEEP_WIDTH}, {dtype_name}, batch {batch}" if network_name == "deep"
                 else f"{dtype_name}, batch {batch}")
        base = times.pop("hand")
        print(f"  {title}: hand-written step {statistics.median(base) * 1e3:.3f} ms")
        for name, samples in times.items():
            if len(samples) != len(base):
                continue
            ratios = [t / b for t, b in zip(samples, base)]
            low, high = spread(ratios)
            print(f"    {name:<15} {statistics.median(samples) * 1e3:9.3f} ms   {statistics.median(ratios):5.2f}× hand "
                  f"({low:.2f}–{high:.2f})")
        if "step_inplace" in times:
            print("    step_inplace ÷ " + "; ".join(
                f"{name} {statistics.median(r := [a / b for a, b in zip(times['step_inplace'], s)]):.2f} "
                f"({spread(r)[0]:.2f}–{spread(r)[1]:.2f})"
                for name, s in times.items() if name != "step_inplace" and len(s) == len(times["step_inplace"])))


# --- a training loop: the step beside NumPy's own products ----------------------------------


LOOP_BACKENDS = ("numpy", "scipy")


def loop_child(backend: str, batch: int, dtype_name: str, steps: int = 200) -> None:
    """Print the median time (ms) of ``step_inplace`` followed by the generated ``cost`` (NumPy's matmul),
    as ``symbackprop train`` runs each step, with step_inplace calling ``backend``'s BLAS."""
    f = derive(network(batch)).numpy()
    if backend == "scipy":  # the second choice: SciPy's wrappers, SciPy's own copy of OpenBLAS
        f.namespace["_BLAS"][:] = [f.namespace["_scipy_blas"]()]
    dtype = np.dtype(dtype_name)
    params = f.init_params(0, dtype=dtype)
    X, Y = data(f, batch, dtype, WIDTHS[0], WIDTHS[-1])
    samples = []
    for index in range(steps + 20):
        start = time.perf_counter()
        f.step_inplace(params, X, Y, 1e-3)
        f.cost(params, X, Y)
        if index >= 20:
            samples.append(time.perf_counter() - start)
    print(statistics.median(samples) * 1e3)


def training_loop(rounds: int, batches, dtypes) -> None:
    """step_inplace and NumPy's cost, step after step, each backend in a fresh process (a process's BLAS
    thread pools are what is measured), the processes alternating round by round."""
    import subprocess

    print("\ntraining loop (step_inplace, then the cost through NumPy, each step), ms per step; fresh process "
          "per round, backends alternating:")
    for dtype_name in dtypes:
        for batch in batches:
            times = {backend: [] for backend in LOOP_BACKENDS}
            for r in range(rounds):
                for backend in LOOP_BACKENDS[r % 2:] + LOOP_BACKENDS[: r % 2]:
                    run = subprocess.run([sys.executable, __file__, "--loop-child", backend, str(batch), dtype_name],
                                         capture_output=True, text=True, check=True)
                    times[backend].append(float(run.stdout))
            numpy_blas, scipy_blas = (statistics.median(times[b]) for b in LOOP_BACKENDS)
            low, high = spread([a / b for a, b in zip(times["scipy"], times["numpy"])])
            print(f"  {dtype_name}, batch {batch}: NumPy's BLAS {numpy_blas:.3f} ms, SciPy's {scipy_blas:.3f} ms "
                  f"({scipy_blas / numpy_blas:.2f}×, {low:.2f}–{high:.2f})")


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
    parser.add_argument("--no-deep", action="store_true", help="skip the deep narrow network")
    parser.add_argument("--no-generation", action="store_true", help="skip timing code generation")
    parser.add_argument("--no-loop", action="store_true", help="skip the training loop (fresh processes)")
    parser.add_argument("--loop-rounds", type=int, default=5)
    parser.add_argument("--loop-only", action="store_true", help="only the training loop")
    parser.add_argument("--loop-child", nargs=3, metavar=("BACKEND", "BATCH", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--isolated", action="store_true",
                        help="time each contender alone in a fresh process instead (the fair two-thread figures)")
    parser.add_argument("--isolated-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.isolated_child:
        network_name, dtype_name, batch, name = args.isolated_child
        isolated_child(network_name, dtype_name, int(batch), name)
        return 0
    if args.loop_child:
        backend, batch, dtype_name = args.loop_child
        loop_child(backend, int(batch), dtype_name)
        return 0
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, {THREADS} BLAS thread(s), Python {sys.version.split()[0]}; "
          f"{args.rounds} rounds; ratios: median over rounds (middle half of rounds in brackets)")
    print(f"classifier: widths {' → '.join(map(str, WIDTHS))}, sigmoid, softmax cross-entropy")
    if args.isolated:
        isolated(args.rounds, args.batches, args.dtypes, not args.no_deep)
        return 0
    if args.loop_only:
        training_loop(args.loop_rounds, args.batches, args.dtypes)
        return 0
    for dtype_name in args.dtypes:
        for batch in args.batches:
            classifier(np.dtype(dtype_name), batch, args.rounds)
    if not args.no_deep:
        for dtype_name in args.dtypes:
            deep(args.rounds, np.dtype(dtype_name))
    if not args.no_loop:
        training_loop(args.loop_rounds, args.batches, args.dtypes)
    if not args.no_generation:
        print(f"\ncode generation, 64 layers (derive + NumPy module source): {generation_time():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
