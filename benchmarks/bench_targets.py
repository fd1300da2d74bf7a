"""How fast the generated PyTorch and JAX steps are, against each framework's own autodiff.

The network of the issue: 784 → 256 → 256 → 10, sigmoid hidden layers, softmax
with cross-entropy, samples as rows (the frameworks' habit), float32, batches
of 1, 64 and 1024.  In the same run it times, interleaved round by round:

* ``torch step``      — the generated ``step`` (in place, ``torch.no_grad``);
* ``torch autograd``  — the generated ``cost`` (the same forward pass), then
                        ``loss.backward()`` and ``torch.optim.SGD.step()``;
* ``jax step``        — the generated ``step`` under ``jax.jit``;
* ``jax jit(grad)``   — ``jax.jit`` of ``jax.grad`` of the generated ``cost``
                        and the update ``p - lr g``, as one jitted function.

Each round times every contender for ``--calls`` calls back to back, in a
rotating order; a contender's time is the median over rounds of its per-call
time, and a ratio is the median over rounds of (generated / autodiff) in that
round, so drift of a shared machine cancels; each is printed with the quartiles
of its rounds, as its spread.  A missing framework is skipped.

    python benchmarks/bench_targets.py [--rounds N] [--calls K] [--batches 1 64 1024] [--threads T]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np

from symbackprop import Dense, Network, derive

NETWORK = Network(784, [Dense(256, "sigmoid"), Dense(256, "sigmoid"), Dense(10, "softmax")],
                  cost="softmax_cross_entropy", layout="rows", batch="m")
LR = 0.01


def per_call(function, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def data(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return X, Y


def torch_contenders(d, batch):
    import torch

    f = d.compiled("torch")
    X, Y = (torch.from_numpy(a) for a in data(batch))
    generated = f.init_params(0, torch.float32)
    model = {k: v.clone().requires_grad_(True) for k, v in generated.items()}
    optimizer = torch.optim.SGD(list(model.values()), lr=LR)

    def step():
        f.step(generated, X, Y, LR)

    def autograd():
        optimizer.zero_grad(set_to_none=True)
        f.cost(model, X, Y).backward()
        optimizer.step()

    return {"torch step": step, "torch autograd": autograd}, f"torch {torch.__version__}, " \
        f"{torch.get_num_threads()} threads"


def jax_contenders(d, batch):
    import jax

    f = d.compiled("jax")
    X, Y = (jax.numpy.asarray(a) for a in data(batch))
    state = {"generated": f.init_params(0, jax.numpy.float32)}
    state["autodiff"] = dict(state["generated"])
    step = jax.jit(f.step)

    @jax.jit
    def grad_step(params, X, Y, lr):
        gradients = jax.grad(f.cost)(params, X, Y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, gradients)

    def generated():
        state["generated"] = step(state["generated"], X, Y, LR)
        jax.block_until_ready(state["generated"])

    def autodiff():
        state["autodiff"] = grad_step(state["autodiff"], X, Y, LR)
        jax.block_until_ready(state["autodiff"])

    generated(), autodiff()  # compile outside the timing
    return {"jax step": generated, "jax jit(grad)": autodiff}, f"jax {jax.__version__}"


def quartiles(values):
    """The lower quartile, the median and the upper quartile of the rounds: the spread beside the median."""
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


PAIRS = [("torch step", "torch autograd"), ("jax step", "jax jit(grad)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=0, help="calls per round (default: by batch size)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads for PyTorch (default: its own choice); a shared machine with "
                             "fewer free cores than threads makes PyTorch's small kernels spin")
    args = parser.parse_args()
    if args.threads and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(args.threads)
    d = derive(NETWORK)
    print("network 784 → 256 → 256 → 10 (sigmoid, sigmoid, softmax), softmax cross-entropy, rows, float32")
    for batch in args.batches:
        contenders, versions = {}, []
        for package, build in (("torch", torch_contenders), ("jax", jax_contenders)):
            if importlib.util.find_spec(package) is None:
                print(f"  ({package} is not installed: skipped)")
                continue
            found, version = build(d, batch)
            contenders.update(found)
            versions.append(version)
        calls = args.calls or {1: 200, 64: 50}.get(batch, 10)
        times = {name: [] for name in contenders}
        names = list(contenders)
        for name in names:  # warm up
            per_call(contenders[name], 3)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(per_call(contenders[name], calls))
        print(f"batch {batch} ({'; '.join(versions)}; {args.rounds} rounds of {calls} calls)")
        for name in names:
            low, middle, high = quartiles(times[name])
            print(f"  {name:16s} {middle * 1e6:10.1f} µs  (quartiles {low * 1e6:.1f}–{high * 1e6:.1f})")
        for mine, theirs in PAIRS:
            if mine in times:
                low, ratio, high = quartiles([a / b for a, b in zip(times[mine], times[theirs])])
                print(f"  {mine} / {theirs}: {ratio:.2f}  (quartiles {low:.2f}–{high:.2f})")


if __name__ == "__main__":
    main()
